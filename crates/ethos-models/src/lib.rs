//! Video models of ethos on libtorch (through `tch`): MViTv2, R3D-18, the V-JEPA 2 encoder,
//! classification heads, and weight import (safetensors, a safe PyTorch `.pth` reader).

pub mod checkpointing;
pub mod config;
pub mod engine;
pub mod factory;
pub mod feral_head;
pub mod freeze;
pub mod heads;
pub mod model;
pub mod mvit;
pub mod pth;
pub mod r3d;
pub mod vjepa2;
pub mod vjepa2_masks;
pub mod vjepa2_predictor;
pub mod vjepa2_ssl;
pub mod vjepa2_ssl_step;
pub mod weights;
pub use model::{Layout, VideoModel};
