//! `ethos doctor`: what the engine and FFmpeg see on this machine (JSON to stdout, a table to stderr).

use serde_json::Value;

/// Reports libtorch (version, path, CUDA library, devices, threads) and FFmpeg (versions, encoders).
#[derive(clap::Args)]
pub struct Args {}

/// Runs `ethos doctor`.
pub fn run(_args: Args) -> anyhow::Result<()> {
    let r = ethos_pipeline::inspect::doctor();
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "unknown".into(),
        other => other.to_string(),
    };
    let lib = &r["libtorch"];
    let dev = &r["devices"];
    let cuda_lib = match (&lib["cuda_library_loaded"], &lib["cuda_load_error"]) {
        (Value::Bool(true), _) => "loaded".to_string(),
        (_, Value::String(e)) => format!("not loaded ({e})"),
        _ => "not loaded".to_string(),
    };
    let encoders: Vec<String> = r["ffmpeg"]["encoders"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    let missing = if e["available"] == true {
                        ""
                    } else {
                        " (missing)"
                    };
                    format!("{}{missing}", s(&e["name"]))
                })
                .collect()
        })
        .unwrap_or_default();
    crate::output::lines(&[
        format!("ethos {}", s(&r["ethos_version"])),
        format!("{:<22} {}", "libtorch version", s(&lib["version"])),
        format!("{:<22} {}", "libtorch folder", s(&lib["lib_dir"])),
        format!("{:<22} {cuda_lib}", "libtorch_cuda"),
        format!(
            "{:<22} {} ({})",
            "CUDA devices",
            s(&dev["cuda_device_count"]),
            if dev["cuda_available"] == true {
                "available"
            } else {
                "none"
            }
        ),
        format!(
            "{:<22} {}",
            "cuDNN",
            if dev["cudnn_available"] == true {
                s(&dev["cudnn_version"])
            } else {
                "no".into()
            }
        ),
        format!(
            "{:<22} intra-op {}, inter-op {}",
            "torch threads",
            s(&r["threads"]["torch_intra_op"]),
            s(&r["threads"]["torch_inter_op"])
        ),
        format!(
            "{:<22} avcodec {}, avformat {}, avutil {}",
            "FFmpeg",
            s(&r["ffmpeg"]["avcodec"]),
            s(&r["ffmpeg"]["avformat"]),
            s(&r["ffmpeg"]["avutil"])
        ),
        format!("{:<22} {}", "encoders", encoders.join(", ")),
    ]);
    crate::output::stdout(&r.to_string())
}
