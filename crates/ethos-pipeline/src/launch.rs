//! `ethos launch --nproc N -- CMD ...`: N local processes of a data-parallel run on one machine,
//! as `torchrun --standalone` starts them.
//!
//! Each child gets the variables a rank reads (`RANK`, `LOCAL_RANK`, `WORLD_SIZE`,
//! `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`; see `ethos_dist::Rendezvous`) and, unless
//! the caller set it, `OMP_NUM_THREADS` = cores / N so the ranks do not oversubscribe the CPU.
//! Children run in their own process group: a terminal's Ctrl-C reaches only the launcher, which
//! forwards SIGINT, SIGTERM, SIGUSR1, SIGUSR2 and SIGHUP to every live child exactly once (twice
//! would make a rank exit at once instead of checkpointing). A child is sent SIGTERM if the
//! launcher dies.
//!
//! When a rank fails, the others notice on their next collective and stop with an error naming
//! it; the launcher gives them `grace` to do so, then terminates what is left, and reports the
//! first rank that failed. Its exit code is that rank's (2 for bad input), else 1.

use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ethos_core::Error;

use crate::Result;

/// How to start the ranks.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// Number of processes (ranks) on this machine.
    pub nproc: usize,
    /// The program each rank runs (the `ethos` binary).
    pub program: PathBuf,
    /// Its arguments (`train --config C ...`).
    pub args: Vec<OsString>,
    /// Address of rank 0's rendezvous store.
    pub master_addr: String,
    /// Its port; `None` picks a free one.
    pub master_port: Option<u16>,
    /// How long the other ranks may take to stop on their own after one failed, before they are
    /// terminated.
    pub grace: Duration,
}

/// How one rank ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankExit {
    /// The rank.
    pub rank: usize,
    /// Its process id.
    pub pid: u32,
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// True when the launcher terminated it (after another rank failed).
    pub terminated: bool,
}

impl RankExit {
    fn success(&self) -> bool {
        self.code == Some(0)
    }

    fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("rank {} (pid {}) exited with code {c}", self.rank, self.pid),
            (None, Some(s)) => format!(
                "rank {} (pid {}) was killed by signal {s} ({})",
                self.rank,
                self.pid,
                signal_name(s)
            ),
            _ => format!("rank {} (pid {}) ended", self.rank, self.pid),
        }
    }
}

/// What a successful launch did.
#[derive(Debug, Clone)]
pub struct LaunchSummary {
    /// Every rank's end, in rank order.
    pub ranks: Vec<RankExit>,
    /// The rendezvous port the ranks used.
    pub master_port: u16,
}

/// Starts `nproc` ranks of `program args`, forwards signals, waits for all of them. Fails
/// naming the first rank that failed (its exit code or signal), after the others stopped.
pub fn launch(opts: &LaunchOptions) -> Result<LaunchSummary> {
    if opts.nproc == 0 {
        return Err(Error::bad_input("--nproc must be at least 1"));
    }
    if opts.args.is_empty() {
        return Err(Error::bad_input(
            "nothing to launch: give the command after `--`, e.g. `ethos launch --nproc 2 -- train --config C`",
        ));
    }
    let port = match opts.master_port {
        Some(p) => p,
        None => free_port()?,
    };
    let threads = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1);
    let omp = (threads / opts.nproc).max(1).to_string();
    let set_omp = std::env::var_os("OMP_NUM_THREADS").is_none();
    tracing::info!(
        "launching {} ranks of {} on {}:{port}{}",
        opts.nproc,
        opts.program.display(),
        opts.master_addr,
        if set_omp {
            format!(", OMP_NUM_THREADS={omp} each")
        } else {
            String::new()
        }
    );

    // Signals are caught before the first child starts, so none is lost in between.
    let mut signals = signal_hook::iterator::Signals::new(FORWARDED)
        .map_err(|e| Error::internal(format!("installing the signal handlers: {e}")))?;
    let handle = signals.handle();
    let pids: Arc<Mutex<Vec<Option<u32>>>> = Arc::new(Mutex::new(vec![None; opts.nproc]));
    let forwarded = Arc::new(AtomicBool::new(false));
    let forwarder = {
        let pids = Arc::clone(&pids);
        let forwarded = Arc::clone(&forwarded);
        std::thread::spawn(move || {
            for sig in signals.forever() {
                forwarded.store(true, Ordering::SeqCst);
                let live = pids.lock().unwrap_or_else(|e| e.into_inner()).clone();
                for pid in live.into_iter().flatten() {
                    // SAFETY: kill(2) on a child we started and have not reaped (reaped
                    // children are removed from the list under the same lock first).
                    unsafe { libc::kill(pid as libc::pid_t, sig) };
                }
            }
        })
    };

    let mut children: Vec<Option<Child>> = Vec::with_capacity(opts.nproc);
    let mut start_error = None;
    for rank in 0..opts.nproc {
        let mut cmd = Command::new(&opts.program);
        cmd.args(&opts.args)
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", opts.nproc.to_string())
            .env("LOCAL_WORLD_SIZE", opts.nproc.to_string())
            .env("MASTER_ADDR", &opts.master_addr)
            .env("MASTER_PORT", port.to_string())
            .process_group(0);
        if set_omp {
            cmd.env("OMP_NUM_THREADS", &omp);
        }
        // SAFETY: only async-signal-safe calls between fork and exec (prctl).
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        match cmd.spawn() {
            Ok(child) => {
                pids.lock().unwrap_or_else(|e| e.into_inner())[rank] = Some(child.id());
                children.push(Some(child));
            }
            Err(e) => {
                start_error = Some(Error::bad_input(format!(
                    "starting rank {rank} ({}): {e}",
                    opts.program.display()
                )));
                break;
            }
        }
    }

    let mut exits: Vec<Option<RankExit>> = vec![None; children.len()];
    let mut first_failure: Option<usize> = None;
    let mut deadline: Option<Instant> = None;
    let mut terminated = vec![false; children.len()];
    let mut killed_hard = false;
    if start_error.is_some() {
        deadline = Some(Instant::now());
    }
    loop {
        for (rank, slot) in children.iter_mut().enumerate() {
            let Some(child) = slot else { continue };
            let status = match child.try_wait() {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!("waiting for rank {rank}: {e}");
                    continue;
                }
            };
            pids.lock().unwrap_or_else(|e| e.into_inner())[rank] = None;
            let exit = rank_exit(rank, child.id(), status, terminated[rank]);
            if !exit.success() && first_failure.is_none() && !terminated[rank] {
                tracing::error!(
                    "{}; waiting up to {:.0} s for the other ranks to stop",
                    exit.describe(),
                    opts.grace.as_secs_f64()
                );
                first_failure = Some(rank);
                deadline = Some(Instant::now() + opts.grace);
            }
            exits[rank] = Some(exit);
            *slot = None;
        }
        if children.iter().all(Option::is_none) {
            break;
        }
        if let Some(d) = deadline
            && Instant::now() >= d
        {
            let live = pids.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let sig = if killed_hard || terminated.iter().any(|&t| t) {
                killed_hard = true;
                libc::SIGKILL
            } else {
                libc::SIGTERM
            };
            for (rank, pid) in live.iter().enumerate() {
                if let Some(pid) = pid {
                    terminated[rank] = true;
                    // SAFETY: kill(2) on a child we started and have not reaped.
                    unsafe { libc::kill(*pid as libc::pid_t, sig) };
                }
            }
            deadline = Some(Instant::now() + Duration::from_secs(10));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    handle.close();
    let _ = forwarder.join();
    if let Some(e) = start_error {
        return Err(e);
    }
    let ranks: Vec<RankExit> = exits.into_iter().flatten().collect();
    if let Some(rank) = first_failure {
        let failed = &ranks[rank];
        let others: Vec<String> = ranks
            .iter()
            .filter(|r| r.rank != rank)
            .map(|r| {
                if r.terminated {
                    format!("{} after being told to stop", r.describe())
                } else {
                    r.describe()
                }
            })
            .collect();
        let message = format!(
            "{} (the first rank to fail); {}",
            failed.describe(),
            others.join("; ")
        );
        return Err(if failed.code == Some(2) {
            Error::bad_input(message)
        } else {
            Error::internal(message)
        });
    }
    if forwarded.load(Ordering::SeqCst) {
        tracing::info!("every rank stopped after the forwarded signal");
    }
    Ok(LaunchSummary {
        ranks,
        master_port: port,
    })
}

/// Signals the launcher passes on to every rank.
const FORWARDED: [i32; 5] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGHUP,
];

fn rank_exit(rank: usize, pid: u32, status: ExitStatus, terminated: bool) -> RankExit {
    RankExit {
        rank,
        pid,
        code: status.code(),
        signal: status.signal(),
        terminated,
    }
}

/// A TCP port that was free a moment ago on the loopback interface (what torchrun does too;
/// rank 0 binds it right away).
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| Error::internal(format!("finding a free port for the rendezvous: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::internal(format!("finding a free port for the rendezvous: {e}")))
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGHUP => "SIGHUP",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, nproc: usize) -> Result<LaunchSummary> {
        launch(&LaunchOptions {
            nproc,
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            master_addr: "127.0.0.1".into(),
            master_port: None,
            grace: Duration::from_secs(2),
        })
    }

    #[test]
    fn every_rank_gets_the_torchrun_variables() {
        let dir = tempfile::tempdir().unwrap();
        let script = format!(
            "echo \"$RANK $LOCAL_RANK $WORLD_SIZE $LOCAL_WORLD_SIZE $MASTER_ADDR $MASTER_PORT\" > {}/r$RANK",
            dir.path().display()
        );
        let s = sh(&script, 3).unwrap();
        assert_eq!(s.ranks.len(), 3);
        for r in 0..3 {
            let line = std::fs::read_to_string(dir.path().join(format!("r{r}"))).unwrap();
            assert_eq!(
                line.trim(),
                format!("{r} {r} 3 3 127.0.0.1 {}", s.master_port)
            );
        }
    }

    #[test]
    fn a_failed_rank_is_named_and_the_rest_are_stopped_after_the_grace() {
        // Rank 1 fails at once; rank 0 would sleep for a minute: it is terminated.
        let t0 = Instant::now();
        let e = sh("if [ \"$RANK\" = 1 ]; then exit 3; fi; exec sleep 60", 2).unwrap_err();
        let m = e.to_string();
        assert!(
            m.starts_with("rank 1 (pid") && m.contains("exited with code 3"),
            "{m}"
        );
        assert!(
            m.contains("rank 0") && m.contains("after being told to stop"),
            "{m}"
        );
        assert!(!e.is_bad_input());
        assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
        // Bad input in a rank (exit 2) is bad input of the launch.
        let e = sh("exit 2", 2).unwrap_err();
        assert!(e.is_bad_input(), "{e}");
        // A rank killed by a signal is named with it.
        let e = sh("if [ \"$RANK\" = 0 ]; then kill -9 $$; fi; sleep 1", 2).unwrap_err();
        assert!(
            e.to_string().contains("rank 0") && e.to_string().contains("SIGKILL"),
            "{e}"
        );
        assert!(sh("true", 0).unwrap_err().is_bad_input());
    }
}
