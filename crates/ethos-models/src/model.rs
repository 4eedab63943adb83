//! The interface every ethos video model implements, whatever its architecture.

/// Memory layout a model expects for its 5-d video input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputLayout {
    /// `(B, C, T, H, W)`: torchvision video models (MViTv2, R3D-18).
    Bcthw,
    /// `(B, T, C, H, W)`: Hugging Face V-JEPA 2 (`pixel_values_videos`).
    Btchw,
}

/// A video classifier on libtorch: clips in, class logits out.
pub trait VideoModel: Send {
    /// Logits `(B, classes)`; per-frame heads return `(B, T', classes)`.
    fn forward_t(&self, input: &tch::Tensor, train: bool) -> tch::Tensor;
    /// Eval-mode forward returning every named intermediate (reference names) plus "logits".
    fn forward_named(&self, input: &tch::Tensor) -> Vec<(String, tch::Tensor)>;
    /// The layout `forward_t` and `forward_named` expect their input in.
    fn input_layout(&self) -> InputLayout;
}
