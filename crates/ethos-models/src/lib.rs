//! Video models of ethos on libtorch (through `tch`): MViTv2, R3D-18, the V-JEPA 2 encoder,
//! classification heads, and weight import (safetensors, a safe PyTorch `.pth` reader).

pub mod model;
pub use model::{InputLayout, VideoModel};
