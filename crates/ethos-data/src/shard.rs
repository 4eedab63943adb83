//! Which positions of an epoch one data-parallel rank loads.
//!
//! Positions are indices into the sampler's epoch order; a sample's augmentation draws come from
//! `(seed, epoch, position)` ([`crate::rng::sample_rng`]), so a rank that loads the global
//! position `p` produces exactly the sample one process would have produced there. The ranks
//! split positions, never re-number them.

use std::ops::Range;

/// The part of every epoch a loader delivers when several processes train one model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Shard {
    /// Every position (one process).
    #[default]
    Whole,
    /// Training: global batch `b` covers positions `[b·B, min((b+1)·B, N))`; rank `r` takes the
    /// `r`-th of `world` contiguous, near-equal parts of it. The ranks' batch `b` together are the
    /// single-process batch `b`, in rank order, and every rank sees the same number of batches.
    SplitBatches {
        /// This process's rank.
        rank: usize,
        /// Number of ranks.
        world: usize,
    },
    /// Evaluation: rank `r` takes the `r`-th of `world` contiguous, near-equal parts of the
    /// epoch, in batches of `B`. Concatenated in rank order, the ranks' samples are the epoch in
    /// order.
    Blocks {
        /// This process's rank.
        rank: usize,
        /// Number of ranks.
        world: usize,
    },
}

/// The `rank`-th of `world` contiguous parts of `range` (lengths differ by at most one; the
/// earlier ranks get the shorter parts).
pub fn part(range: Range<usize>, rank: usize, world: usize) -> Range<usize> {
    let world = world.max(1);
    let rank = rank.min(world - 1);
    let len = range.len();
    range.start + len * rank / world..range.start + len * (rank + 1) / world
}

impl Shard {
    /// The shard of `rank` among `world` ranks for training (`world` 1: [`Shard::Whole`]).
    pub fn training(rank: usize, world: usize) -> Shard {
        if world <= 1 {
            Shard::Whole
        } else {
            Shard::SplitBatches { rank, world }
        }
    }

    /// The shard of `rank` among `world` ranks for evaluation (`world` 1: [`Shard::Whole`]).
    pub fn evaluation(rank: usize, world: usize) -> Shard {
        if world <= 1 {
            Shard::Whole
        } else {
            Shard::Blocks { rank, world }
        }
    }

    /// The positions this shard reads of an epoch of `epoch_len`.
    fn block(&self, epoch_len: usize) -> Range<usize> {
        match *self {
            Shard::Blocks { rank, world } => part(0..epoch_len, rank, world),
            _ => 0..epoch_len,
        }
    }

    /// Batches this shard yields in an epoch of `epoch_len` positions with `batch_size` (the
    /// global batch for [`Shard::SplitBatches`]); `drop_last` leaves out an incomplete last batch.
    pub fn num_batches(&self, epoch_len: usize, batch_size: usize, drop_last: bool) -> usize {
        let b = batch_size.max(1);
        let len = self.block(epoch_len).len();
        if drop_last { len / b } else { len.div_ceil(b) }
    }

    /// The epoch positions of this shard's batch `batch` (possibly empty: a last global batch
    /// smaller than the world leaves some ranks without samples).
    pub fn batch_positions(
        &self,
        batch: usize,
        epoch_len: usize,
        batch_size: usize,
    ) -> Range<usize> {
        let b = batch_size.max(1);
        let block = self.block(epoch_len);
        let start = (block.start + batch * b).min(block.end);
        let global = start..(start + b).min(block.end);
        match *self {
            Shard::SplitBatches { rank, world } => part(global, rank, world),
            _ => global,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positions(shard: Shard, n: usize, b: usize) -> Vec<Vec<usize>> {
        (0..shard.num_batches(n, b, false))
            .map(|i| shard.batch_positions(i, n, b).collect())
            .collect()
    }

    #[test]
    fn split_batches_partition_every_global_batch_in_rank_order() {
        for (n, b, world) in [(23, 4, 2), (23, 6, 3), (5, 4, 4), (16, 8, 2), (1, 2, 2)] {
            let whole = positions(Shard::Whole, n, b);
            let ranks: Vec<Vec<Vec<usize>>> = (0..world)
                .map(|r| positions(Shard::training(r, world), n, b))
                .collect();
            for (i, batch) in whole.iter().enumerate() {
                let joined: Vec<usize> = ranks.iter().flat_map(|r| r[i].clone()).collect();
                assert_eq!(&joined, batch, "n {n} b {b} world {world} batch {i}");
            }
            // Equal batch counts on every rank, even where a rank's share is empty.
            assert!(ranks.iter().all(|r| r.len() == whole.len()));
            if b % world == 0 {
                for r in &ranks {
                    for batch in &r[..r.len() - 1] {
                        assert_eq!(batch.len(), b / world);
                    }
                }
            }
        }
        // The last global batch of 1 leaves rank 0 without a sample (earlier ranks get less).
        assert!(Shard::training(0, 2).batch_positions(0, 1, 2).is_empty());
        assert_eq!(Shard::training(1, 2).batch_positions(0, 1, 2), 0..1);
    }

    #[test]
    fn blocks_concatenate_to_the_epoch() {
        for (n, b, world) in [(23, 4, 2), (7, 3, 3), (2, 4, 3), (0, 4, 2)] {
            let mut all = Vec::new();
            for r in 0..world {
                for batch in positions(Shard::evaluation(r, world), n, b) {
                    assert!(!batch.is_empty() && batch.len() <= b);
                    all.extend(batch);
                }
            }
            assert_eq!(all, (0..n).collect::<Vec<_>>(), "n {n} b {b} world {world}");
        }
        assert_eq!(Shard::evaluation(0, 1), Shard::Whole);
        // Rank 1 holds positions 11..23: three whole batches of 4.
        assert_eq!(
            Shard::Blocks { rank: 1, world: 2 }.num_batches(23, 4, true),
            3
        );
    }
}
