// Shared by the examples: start this executable once per rank on this machine (what
// `ethos launch --nproc N` will do), with torchrun's variables.

use std::process::Command;

/// Runs `nproc` copies of the current executable with RANK/WORLD_SIZE/MASTER_* set and the same
/// arguments; returns whether all succeeded.
pub fn launch_local(nproc: usize, threads_per_rank: i32) -> bool {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let exe = std::env::current_exe().expect("executable path");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut children: Vec<_> = (0..nproc)
        .map(|r| {
            Command::new(&exe)
                .args(&args)
                .env("RANK", r.to_string())
                .env("LOCAL_RANK", r.to_string())
                .env("WORLD_SIZE", nproc.to_string())
                .env("LOCAL_WORLD_SIZE", nproc.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .env("ETHOS_RANK_THREADS", threads_per_rank.to_string())
                .spawn()
                .expect("start a rank")
        })
        .collect();
    // Wait for every rank, even after one failed.
    let ok: Vec<bool> = children
        .iter_mut()
        .map(|c| c.wait().map(|s| s.success()).unwrap_or(false))
        .collect();
    ok.into_iter().all(|b| b)
}

/// Value of `--name N` among the arguments, or `default`.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} needs a value, got {v}"))
        })
        .unwrap_or(default)
}
