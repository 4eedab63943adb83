//! CPU seconds and peak RSS of one 16-frame sample (12 fps, short side 256, one decode thread) in a
//! process that links only ethos-video, for comparison with `ethos bench decode` (whose binary also
//! loads libtorch). Usage: `cargo run --release -p ethos-video --example sample_cost -- VIDEO`.

use ethos_video::{ClipRequest, ClipSampler, Resize};

fn rusage() -> (f64, f64) {
    let mut ru: libc_rusage::Rusage = libc_rusage::Rusage::default();
    libc_rusage::get(&mut ru);
    (ru.cpu_s, ru.maxrss_mb)
}

mod libc_rusage {
    /// User + system CPU seconds and peak RSS (MB) from `/proc/self/stat` and `/proc/self/status`.
    #[derive(Default)]
    pub struct Rusage {
        pub cpu_s: f64,
        pub maxrss_mb: f64,
    }

    pub fn get(out: &mut Rusage) {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        // utime and stime are fields 14 and 15 (1-based) of stat, i.e. 11 and 12 after the `)`.
        let ticks: f64 = fields
            .get(11)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            + fields
                .get(12)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
        out.cpu_s = ticks / 100.0;
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        out.maxrss_mb = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0;
    }
}

fn main() {
    let Some(video) = std::env::args().nth(1) else {
        eprintln!("usage: sample_cost VIDEO");
        std::process::exit(2);
    };
    ethos_video::init();
    let (cpu0, rss0) = rusage();
    let req = ClipRequest {
        start_s: 0.0,
        duration_s: 6.0,
        fps: 12.0,
        num_frames: 16,
        roi: None,
        resize: Resize::ShortSide(256),
    };
    match ClipSampler::new(1).sample(std::path::Path::new(&video), &req) {
        Ok(s) => {
            let (cpu1, rss1) = rusage();
            println!(
                "{{\"frames\": {}, \"cpu_s\": {:.3}, \"startup_peak_rss_mb\": {:.1}, \"peak_rss_mb\": {:.1}}}",
                s.clip.frames,
                cpu1 - cpu0,
                rss0,
                rss1
            );
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
