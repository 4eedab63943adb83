//! Facts about inputs and the machine: `probe` (a video) and `doctor` (libtorch, devices, FFmpeg).

use std::path::Path;

use ethos_core::ResultExt;
use ethos_models::engine::{Engine, devices};
use serde_json::{Value, json};

use crate::Result;

/// Codec, size, rates, exact frame count, duration, start time, keyframe interval, rotation and
/// B-frames of a video.
pub fn probe(video: &Path) -> Result<ethos_video::VideoInfo> {
    ethos_video::init();
    ethos_video::probe(video).context(format!("probing {}", video.display()))
}

/// What the engine and FFmpeg see on this machine: libtorch (version, folder, CUDA library),
/// devices, threads, FFmpeg versions and encoders.
pub fn doctor() -> Value {
    let engine = Engine::init();
    let dev = devices();
    let cuda_names: Vec<String> = (0..dev.cuda_device_count)
        .map(|i| format!("cuda:{i}"))
        .collect();
    json!({
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
        "ffmpeg": ethos_video::ffmpeg_report(),
    })
}
