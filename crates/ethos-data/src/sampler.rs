//! Samplers: the order of dataset indices for one epoch. Randomness comes only from
//! (seed, epoch), so an epoch's order is the same on every run, worker count and resume.

use rand::Rng;
use rand::seq::SliceRandom;

use crate::rng::{Stream, rng_for};

/// The order in which an epoch visits dataset indices.
pub trait Sampler: Send + Sync {
    /// Dataset indices for `epoch`, position by position.
    fn epoch_order(&self, seed: u64, epoch: u64) -> Vec<usize>;
    /// Number of positions per epoch.
    fn epoch_len(&self) -> usize;
}

/// Every index once, in order (evaluation).
#[derive(Debug, Clone)]
pub struct SequentialSampler {
    len: usize,
}

impl SequentialSampler {
    /// A sampler over `len` indices.
    pub fn new(len: usize) -> Self {
        Self { len }
    }
}

impl Sampler for SequentialSampler {
    fn epoch_order(&self, _seed: u64, _epoch: u64) -> Vec<usize> {
        (0..self.len).collect()
    }
    fn epoch_len(&self) -> usize {
        self.len
    }
}

/// Every index once, in a random permutation per epoch.
#[derive(Debug, Clone)]
pub struct ShuffleSampler {
    len: usize,
}

impl ShuffleSampler {
    /// A sampler over `len` indices.
    pub fn new(len: usize) -> Self {
        Self { len }
    }
}

impl Sampler for ShuffleSampler {
    fn epoch_order(&self, seed: u64, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len).collect();
        order.shuffle(&mut rng_for(seed, epoch, 0, Stream::Sampler));
        order
    }
    fn epoch_len(&self) -> usize {
        self.len
    }
}

/// Class-balanced sampling with replacement: each draw picks a class uniformly (among classes
/// that have samples), then one of its samples uniformly.
#[derive(Debug, Clone)]
pub struct BalancedSampler {
    by_class: Vec<Vec<usize>>,
    epoch_len: usize,
}

impl BalancedSampler {
    /// `labels[i]` is the class index of sample `i`; `epoch_len` defaults to `labels.len()`.
    /// Classes without samples are never drawn.
    pub fn new(labels: &[usize], epoch_len: Option<usize>) -> Self {
        let num_classes = labels.iter().map(|&l| l + 1).max().unwrap_or(0);
        let mut by_class = vec![Vec::new(); num_classes];
        for (i, &label) in labels.iter().enumerate() {
            by_class[label].push(i);
        }
        by_class.retain(|members| !members.is_empty());
        Self {
            by_class,
            epoch_len: epoch_len.unwrap_or(labels.len()),
        }
    }
}

impl Sampler for BalancedSampler {
    fn epoch_order(&self, seed: u64, epoch: u64) -> Vec<usize> {
        if self.by_class.is_empty() {
            return Vec::new();
        }
        let mut rng = rng_for(seed, epoch, 0, Stream::Sampler);
        (0..self.epoch_len)
            .map(|_| {
                let members = &self.by_class[rng.random_range(0..self.by_class.len())];
                members[rng.random_range(0..members.len())]
            })
            .collect()
    }
    fn epoch_len(&self) -> usize {
        if self.by_class.is_empty() {
            0
        } else {
            self.epoch_len
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_sampler_equalises_class_shares() {
        // 6.85:1 imbalance as in the reference data, plus a third rare class.
        let mut labels = vec![0usize; 1199];
        labels.extend(std::iter::repeat_n(1, 175));
        labels.extend(std::iter::repeat_n(2, 20));
        let sampler = BalancedSampler::new(&labels, Some(10_000));
        let order = sampler.epoch_order(42, 0);
        assert_eq!(order.len(), 10_000);
        let mut counts = [0usize; 3];
        for &i in &order {
            counts[labels[i]] += 1;
        }
        for (class, &count) in counts.iter().enumerate() {
            let share = count as f64 / 10_000.0;
            assert!(
                (share - 1.0 / 3.0).abs() < 0.02,
                "class {class} share {share}"
            );
        }
        // Draws inside a class cover its members.
        let tail: std::collections::HashSet<_> =
            order.iter().filter(|&&i| labels[i] == 1).collect();
        assert!(
            tail.len() > 150,
            "only {} distinct tail samples",
            tail.len()
        );
    }

    #[test]
    fn orders_depend_only_on_seed_and_epoch() {
        let labels: Vec<usize> = (0..100usize)
            .map(|i| usize::from(i.is_multiple_of(7)))
            .collect();
        let b = BalancedSampler::new(&labels, None);
        assert_eq!(b.epoch_len(), 100);
        assert_eq!(b.epoch_order(1, 3), b.epoch_order(1, 3));
        assert_ne!(b.epoch_order(1, 3), b.epoch_order(1, 4));
        assert_ne!(b.epoch_order(1, 3), b.epoch_order(2, 3));
        let s = ShuffleSampler::new(100);
        let mut order = s.epoch_order(5, 0);
        assert_eq!(order, s.epoch_order(5, 0));
        assert_ne!(order, s.epoch_order(5, 1));
        order.sort_unstable();
        assert_eq!(order, (0..100).collect::<Vec<_>>());
        assert_eq!(
            SequentialSampler::new(4).epoch_order(9, 9),
            vec![0, 1, 2, 3]
        );
    }
}
