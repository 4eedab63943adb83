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

    /// One training pass: the forward, `loss_of(output)` (a scalar; it may stash what else it needs
    /// from the output, such as detached probabilities), and the backward, which accumulates the
    /// gradients into the parameters. Returns the loss `loss_of` returned, detached.
    ///
    /// With `checkpointing`, models that [`supports_checkpointing`](Self::supports_checkpointing)
    /// recompute each transformer block's activations during the backward instead of keeping them
    /// (see [`crate::checkpointing`]); the gradients are the same. Those models also replay the
    /// blocks' dropout and drop-path from per-block seeds in both modes, so their random stream
    /// differs from `forward_t`'s. Other models ignore `checkpointing`. Under autocast, call this
    /// inside the autocast scope (the recomputation must run under it too).
    fn forward_backward(
        &self,
        input: &tch::Tensor,
        train: bool,
        checkpointing: bool,
        loss_of: &mut dyn FnMut(&tch::Tensor) -> tch::Tensor,
    ) -> tch::Tensor {
        let _ = checkpointing;
        let loss = loss_of(&self.forward_t(input, train));
        loss.backward();
        loss.detach()
    }

    /// Whether [`forward_backward`](Self::forward_backward) can checkpoint activations per block.
    fn supports_checkpointing(&self) -> bool {
        false
    }
}
