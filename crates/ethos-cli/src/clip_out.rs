//! Writes a decoded [`Clip`] for people and tools: a PNG contact sheet (frames in a grid, row by
//! row) and a safetensors file with one uint8 tensor `frames` of shape `(T, H, W, 3)`. Both files
//! are written atomically (temporary name in the same directory, fsync, rename).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ethos_video::Clip;

/// Pixels of dark gap between frames of the contact sheet.
const GAP: usize = 2;

/// The two files written for an output prefix `OUT`: `OUT.png` and `OUT.safetensors`.
pub fn output_paths(out: &Path) -> (PathBuf, PathBuf) {
    let s = out.as_os_str().to_string_lossy();
    (
        PathBuf::from(format!("{s}.png")),
        PathBuf::from(format!("{s}.safetensors")),
    )
}

/// Writes `OUT.png` and `OUT.safetensors` for `clip`; `metadata` goes into the safetensors header.
pub fn write_clip(
    clip: &Clip,
    out: &Path,
    metadata: HashMap<String, String>,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (png, st) = output_paths(out);
    write_contact_sheet(clip, &png)?;
    write_safetensors(clip, &st, metadata)?;
    Ok((png, st))
}

/// Writes the frames of `clip` as a grid (about square, `ceil(sqrt(T))` columns) to a PNG file.
pub fn write_contact_sheet(clip: &Clip, path: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        clip.frames > 0,
        "cannot write an empty clip to {}",
        path.display()
    );
    let cols = (clip.frames as f64).sqrt().ceil() as usize;
    let rows = clip.frames.div_ceil(cols);
    let (w, h) = (clip.width, clip.height);
    let sheet_w = cols * w + (cols - 1) * GAP;
    let sheet_h = rows * h + (rows - 1) * GAP;
    let mut img =
        image::RgbImage::from_pixel(sheet_w as u32, sheet_h as u32, image::Rgb([16, 16, 16]));
    let buf: &mut [u8] = &mut img;
    for t in 0..clip.frames {
        let (r, c) = (t / cols, t % cols);
        let frame = clip.frame(t);
        for y in 0..h {
            let dst = ((r * (h + GAP) + y) * sheet_w + c * (w + GAP)) * 3;
            buf[dst..dst + w * 3].copy_from_slice(&frame[y * w * 3..(y + 1) * w * 3]);
        }
    }
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .with_context(|| format!("encoding PNG for {}", path.display()))?;
    write_atomic(path, &bytes)
}

/// Writes `clip` as safetensors: tensor `frames`, uint8, shape `(T, H, W, 3)`.
pub fn write_safetensors(
    clip: &Clip,
    path: &Path,
    metadata: HashMap<String, String>,
) -> anyhow::Result<()> {
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::U8,
        clip.shape().to_vec(),
        &clip.data,
    )
    .context("building the frames tensor")?;
    let bytes = safetensors::serialize([("frames", view)], Some(metadata))
        .context("serialising safetensors")?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` through a temporary file in the same directory, synced and renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
        .map_err(|e| crate::exit::BadInput(format!("{}: cannot write: {e}", path.display())).into())
}
