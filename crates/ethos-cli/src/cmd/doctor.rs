//! `ethos doctor`: what the engine and FFmpeg see on this machine (JSON to stdout, a table to stderr).

use std::io::Write;

use anyhow::Result;
use ethos_models::engine::{Engine, devices};

/// Reports libtorch (version, path, CUDA library, devices, threads) and FFmpeg (versions, encoders).
#[derive(clap::Args)]
pub struct Args {}

/// FFmpeg packs versions as major << 16 | minor << 8 | micro.
fn version_string(v: u32) -> String {
    format!("{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff)
}

/// Runs `ethos doctor`.
pub fn run(_args: Args) -> Result<()> {
    let engine = Engine::init();
    let dev = devices();
    let cuda_names: Vec<String> = (0..dev.cuda_device_count)
        .map(|i| format!("cuda:{i}"))
        .collect();

    ethos_video::init();
    let encoders: Vec<serde_json::Value> =
        ["libx264", "libx265", "mpeg4", "libopenh264", "h264_nvenc"]
            .iter()
            .map(|name| {
                let found = ffmpeg_next::encoder::find_by_name(name).is_some();
                serde_json::json!({"name": name, "available": found})
            })
            .collect();
    let ffmpeg = serde_json::json!({
        "avutil": version_string(ffmpeg_next::util::version()),
        "avcodec": version_string(ffmpeg_next::codec::version()),
        "avformat": version_string(ffmpeg_next::format::version()),
        "swscale": version_string(ffmpeg_next::software::scaling::version()),
        "encoders": encoders,
    });
    let report = serde_json::json!({
        "ethos_version": env!("CARGO_PKG_VERSION"),
        "libtorch": {
            "version": engine.libtorch_version,
            "lib_dir": engine.libtorch_dir,
            "cuda_library_loaded": engine.cuda_library_loaded,
            "cuda_load_error": engine.cuda_load_error,
        },
        "devices": {
            "cpu": true,
            "cuda_available": dev.cuda_available,
            "cuda_device_count": dev.cuda_device_count,
            "cuda": cuda_names,
            "cudnn_available": dev.cudnn_available,
            "cudnn_version": dev.cudnn_version,
            "mps_available": dev.mps_available,
        },
        "threads": {
            "torch_intra_op": dev.num_threads,
            "torch_inter_op": dev.num_interop_threads,
            "available_parallelism": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        },
        "ffmpeg": ffmpeg,
    });

    let mut e = std::io::stderr().lock();
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".into());
    writeln!(e, "ethos {}", env!("CARGO_PKG_VERSION"))?;
    writeln!(
        e,
        "{:<22} {}",
        "libtorch version",
        opt(&engine.libtorch_version)
    )?;
    writeln!(
        e,
        "{:<22} {}",
        "libtorch path",
        engine
            .libtorch_dir
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "not found".into())
    )?;
    let cuda_lib = match (&engine.cuda_library_loaded, &engine.cuda_load_error) {
        (true, _) => "loaded".to_owned(),
        (false, Some(err)) => format!("not loaded ({err})"),
        (false, None) => "not loaded".to_owned(),
    };
    writeln!(e, "{:<22} {cuda_lib}", "libtorch_cuda")?;
    writeln!(
        e,
        "{:<22} {} ({})",
        "CUDA devices",
        dev.cuda_device_count,
        if dev.cuda_available {
            "available"
        } else {
            "none"
        }
    )?;
    writeln!(
        e,
        "{:<22} {}",
        "cuDNN",
        if dev.cudnn_available {
            dev.cudnn_version.to_string()
        } else {
            "no".into()
        }
    )?;
    writeln!(
        e,
        "{:<22} intra-op {}, inter-op {}",
        "torch threads", dev.num_threads, dev.num_interop_threads
    )?;
    writeln!(
        e,
        "{:<22} avcodec {}, avformat {}, avutil {}",
        "FFmpeg",
        version_string(ffmpeg_next::codec::version()),
        version_string(ffmpeg_next::format::version()),
        version_string(ffmpeg_next::util::version())
    )?;
    let enc: Vec<String> = report["ffmpeg"]["encoders"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| {
                    format!(
                        "{}{}",
                        v["name"].as_str().unwrap_or("?"),
                        if v["available"] == true {
                            ""
                        } else {
                            " (missing)"
                        }
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    writeln!(e, "{:<22} {}", "encoders", enc.join(", "))?;
    println!("{report}");
    Ok(())
}
