//! The memory layout of a 5-d video batch, shared by the loader (which writes batches) and the
//! models (which ask for one).

use serde::{Deserialize, Serialize};

/// Memory layout of a float32 video batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Layout {
    /// `(B, C, T, H, W)`: torchvision video models (MViTv2, R3D-18).
    #[default]
    Bcthw,
    /// `(B, T, C, H, W)`: Hugging Face V-JEPA 2 (`pixel_values_videos`).
    Btchw,
}

impl Layout {
    /// The 5-d shape of a batch of `b` clips of `t` frames of `h` x `w` RGB pixels.
    pub fn shape(self, b: usize, t: usize, h: usize, w: usize) -> [usize; 5] {
        match self {
            Layout::Bcthw => [b, 3, t, h, w],
            Layout::Btchw => [b, t, 3, h, w],
        }
    }
}
