//! The interface every ethos video model implements, whatever its architecture.

pub use ethos_core::Layout;

/// A video classifier on libtorch: clips in, class logits out.
pub trait VideoModel: Send {
    /// Logits `(B, classes)`; per-frame heads return `(B, T', classes)`.
    fn forward_t(&self, input: &tch::Tensor, train: bool) -> tch::Tensor;
    /// Eval-mode forward returning every named intermediate (reference names) plus "logits".
    fn forward_named(&self, input: &tch::Tensor) -> Vec<(String, tch::Tensor)>;
    /// The layout `forward_t` and `forward_named` expect their input in.
    fn input_layout(&self) -> Layout;
}
