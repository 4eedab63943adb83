//! Activation checkpointing per block, built from what tch offers (it has no checkpoint API).
//!
//! A model is seen as a stem (everything before the first trainable block: embeddings and frozen
//! blocks), a sequence of blocks, and a tail (final norm, head and the loss). [`forward_backward`]
//! runs them and back-propagates, in one of two modes that give the same gradients:
//!
//! - plain: one forward that keeps every block's graph, then one backward;
//! - checkpointed: the blocks run forward without a graph (`no_grad`), keeping only each block's
//!   input; the tail runs on a detached, grad-requiring copy of the last block's output and is
//!   back-propagated; then, from the last block to the first, the block is re-run with a graph
//!   from its stored input and the gradient that arrived at its output is pushed through it
//!   (`(out * grad_out).sum().backward()`, whose gradient at `out` is exactly `grad_out`), leaving
//!   its parameters' gradients accumulated and the gradient at its input for the block before.
//!   Peak memory holds the block inputs plus one block's graph instead of every block's graph.
//!
//! Randomness (dropout, drop-path) is replayed: in training, one seed per block is drawn from
//! libtorch's global generator before the blocks run, and the generator is re-seeded with the
//! block's seed before each run of that block, in both modes, so the re-run draws the same masks
//! and the two modes draw identical ones. A last seed is set at the end so that the generator
//! leaves `forward_backward` in the same state in both modes.

use tch::{Kind, Tensor};

/// One block of a [`forward_backward`] sequence: `(input, state) -> (output, state)`. The state
/// is whatever a block needs besides the tokens (MViT's token grid `(T, H, W)`; `()` for ViTs).
pub type Block<'a, S> = Box<dyn Fn(&Tensor, &S) -> (Tensor, S) + 'a>;

/// Runs `blocks` on the stem output `(x, state)`, then `tail_loss` on the last block's output
/// (which must return a scalar loss), and back-propagates into every parameter that requires a
/// gradient, including the stem's when `x` carries a graph. With `checkpointing` the blocks'
/// graphs are recomputed one at a time during the backward (see the module docs). `train` turns
/// on the per-block seeding that replays dropout and drop-path. Returns the loss, detached.
pub fn forward_backward<S: Clone>(
    x: Tensor,
    state: S,
    blocks: &[Block<'_, S>],
    tail_loss: &mut dyn FnMut(&Tensor, &S) -> Tensor,
    train: bool,
    checkpointing: bool,
) -> Tensor {
    let seeds = if train {
        draw_seeds(blocks.len() + 1)
    } else {
        Vec::new()
    };
    let seed = |i: usize| {
        if let Some(&s) = seeds.get(i) {
            tch::manual_seed(s);
        }
    };
    let loss = if checkpointing {
        checkpointed(x, state, blocks, tail_loss, &seed)
    } else {
        let (mut x, mut state) = (x, state);
        for (i, block) in blocks.iter().enumerate() {
            seed(i);
            (x, state) = block(&x, &state);
        }
        let loss = tail_loss(&x, &state);
        loss.backward();
        loss
    };
    seed(blocks.len());
    loss.detach()
}

fn checkpointed<S: Clone>(
    stem_out: Tensor,
    state: S,
    blocks: &[Block<'_, S>],
    tail_loss: &mut dyn FnMut(&Tensor, &S) -> Tensor,
    seed: &dyn Fn(usize),
) -> Tensor {
    let mut inputs: Vec<(Tensor, S)> = Vec::with_capacity(blocks.len());
    let (last, last_state) = tch::no_grad(|| {
        let (mut x, mut state) = (stem_out.detach(), state);
        for (i, block) in blocks.iter().enumerate() {
            inputs.push((x.shallow_clone(), state.clone()));
            seed(i);
            (x, state) = block(&x, &state);
        }
        (x, state)
    });
    let last = last.detach().set_requires_grad(true);
    let loss = tail_loss(&last, &last_state);
    loss.backward();
    let mut grad = last.grad();
    drop(last);
    for (i, block) in blocks.iter().enumerate().rev() {
        let (input, state) = inputs
            .pop()
            .unwrap_or_else(|| unreachable!("one input per block"));
        if !grad.defined() {
            // The tail did not depend on this block's output: nothing flows further back.
            return loss;
        }
        let input = input.detach().set_requires_grad(true);
        seed(i);
        let (out, _) = block(&input, &state);
        vjp(&out, &grad);
        grad = input.grad();
    }
    if stem_out.requires_grad() && grad.defined() {
        vjp(&stem_out, &grad);
    }
    loss
}

/// Accumulates `d(out)/d(params) . grad_out` into the parameters' gradients (and the input's).
fn vjp(out: &Tensor, grad_out: &Tensor) {
    if !out.requires_grad() {
        return;
    }
    let kind = if out.kind() == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    };
    (out * grad_out.to_kind(out.kind())).sum(kind).backward();
}

/// `n` seeds from libtorch's global generator (so a run seed makes them reproducible).
fn draw_seeds(n: usize) -> Vec<i64> {
    let t = Tensor::randint(i64::MAX, [n as i64], (Kind::Int64, tch::Device::Cpu));
    Vec::<i64>::try_from(t).unwrap_or_else(|_| vec![0; n])
}

impl crate::vjepa2::Vjepa2Encoder {
    /// [`forward_backward`] over this encoder: the patch embedding and frozen blocks run once as
    /// the stem (without a graph when any block is frozen), the trainable blocks are the sequence,
    /// and `head_loss` gets the tokens after the final LayerNorm, `(B, N, D)`.
    pub fn forward_backward_with(
        &self,
        input: &Tensor,
        train: bool,
        checkpointing: bool,
        head_loss: &mut dyn FnMut(&Tensor) -> Tensor,
    ) -> Tensor {
        self.forward_backward_with_head_blocks(input, train, checkpointing, Vec::new(), head_loss)
    }

    /// As [`Self::forward_backward_with`], with `head_blocks` (blocks of the head over all
    /// `(B, N, D)` tokens, such as the attentive pooler's self-attention layers) appended to the
    /// checkpointed sequence after the final LayerNorm; `head_loss` then gets their output.
    pub fn forward_backward_with_head_blocks<'a>(
        &'a self,
        input: &Tensor,
        train: bool,
        checkpointing: bool,
        head_blocks: Vec<Block<'a, ()>>,
        head_loss: &mut dyn FnMut(&Tensor) -> Tensor,
    ) -> Tensor {
        let (x, rope) = self.embed_frozen(input, train);
        let rope = &rope;
        let mut blocks: Vec<Block<'_, ()>> = (self.frozen_blocks().min(self.num_blocks())
            ..self.num_blocks())
            .map(|i| {
                Box::new(move |x: &Tensor, _: &()| (self.block_forward(i, x, rope, train), ()))
                    as Block<'_, ()>
            })
            .collect();
        let mut head_blocks = head_blocks.into_iter();
        match head_blocks.next() {
            Some(first) => {
                blocks.push(Box::new(move |x: &Tensor, s: &()| {
                    first(&self.final_norm(x), s)
                }));
                blocks.extend(head_blocks);
                forward_backward(
                    x,
                    (),
                    &blocks,
                    &mut |x, _| head_loss(x),
                    train,
                    checkpointing,
                )
            }
            None => forward_backward(
                x,
                (),
                &blocks,
                &mut |x, _| head_loss(&self.final_norm(x)),
                train,
                checkpointing,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, nn, nn::Module};

    /// Linear blocks with dropout: the checkpointed gradients equal the plain ones exactly.
    #[test]
    fn checkpointed_gradients_equal_plain_ones_with_dropout() {
        let run = |checkpointing: bool| {
            tch::manual_seed(3);
            let vs = nn::VarStore::new(Device::Cpu);
            let stem = nn::linear(vs.root() / "stem", 6, 8, Default::default());
            let lins: Vec<nn::Linear> = (0..3)
                .map(|i| nn::linear(vs.root() / "b" / i, 8, 8, Default::default()))
                .collect();
            let head = nn::linear(vs.root() / "head", 8, 1, Default::default());
            let input = Tensor::randn([4, 6], (Kind::Float, Device::Cpu));
            tch::manual_seed(11);
            let blocks: Vec<Block<'_, ()>> = lins
                .iter()
                .map(|l| {
                    Box::new(move |x: &Tensor, _: &()| {
                        (x + l.forward(x).tanh().dropout(0.3, true), ())
                    }) as Block<'_, ()>
                })
                .collect();
            let loss = forward_backward(
                stem.forward(&input),
                (),
                &blocks,
                &mut |x, _| {
                    head.forward(x)
                        .dropout(0.2, true)
                        .square()
                        .mean(Kind::Float)
                },
                true,
                checkpointing,
            );
            let after = Tensor::randn([1], (Kind::Float, Device::Cpu)).double_value(&[0]);
            let mut grads: Vec<(String, Tensor)> = vs
                .variables()
                .into_iter()
                .map(|(k, v)| (k, v.grad()))
                .collect();
            grads.sort_by(|a, b| a.0.cmp(&b.0));
            (loss.double_value(&[]), grads, after)
        };
        let (loss_a, grads_a, after_a) = run(false);
        let (loss_b, grads_b, after_b) = run(true);
        assert_eq!(loss_a, loss_b);
        assert_eq!(after_a, after_b, "the generator must end in the same state");
        assert_eq!(grads_a.len(), 10);
        for ((name, a), (_, b)) in grads_a.iter().zip(&grads_b) {
            assert!(a.defined() && b.defined(), "{name}");
            let diff = (a - b).abs().max().double_value(&[]);
            assert!(
                diff <= 1e-6 * a.abs().max().double_value(&[]).max(1e-30),
                "{name}: {diff}"
            );
        }
    }
}
