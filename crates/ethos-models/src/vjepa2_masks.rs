//! V-JEPA 2's multi-block 3-D masks on the tubelet token grid (the recipe of its own pre-training,
//! `src/masks/multiseq_multiblock3d.py` of facebookresearch/vjepa2, reimplemented).
//!
//! One mask group per [`MaskConfig`]. For each group and step a block size `(t, h, w)` is drawn once and
//! shared by the batch: `t = max(1, int(T' * temporal_scale))`, `n = int(H' * W' * spatial_scale)`,
//! `h = round(sqrt(n * aspect))`, `w = round(sqrt(n / aspect))` (Python rounding, half to even), capped at
//! the grid. Each sample then places `num_blocks` such blocks at uniform random positions; the union of
//! the blocks is the sample's target set, the rest its context (a sample whose blocks cover every token
//! is drawn again). Both index lists are ascending token indices (`t*H'*W' + h*W' + w`), and every
//! sample's lists are cut to the batch's shortest, keeping the tensors rectangular.
//!
//! Every draw comes from a ChaCha stream keyed by (seed, step, group, sample), so the masks of a step
//! never depend on earlier steps, threads or workers, and a resumed run draws exactly the same masks.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

/// How often a sample's blocks may cover the whole grid before the generator gives up.
const MAX_DRAWS_PER_SAMPLE: usize = 1000;

/// Errors of mask configs and mask generation; all are caused by the user's config.
#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    /// A config value is out of range.
    #[error("mask config {index}: `{key}` = {value}: {reason}")]
    InvalidConfig {
        /// Position of the config in the list (the mask group).
        index: usize,
        /// The offending key.
        key: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The token grid is empty or the config list is.
    #[error("mask generator: {0}")]
    Invalid(String),
    /// The blocks of a config cover the whole grid again and again: no context would be left.
    #[error(
        "mask config {index}: {num_blocks} blocks of {t}x{h}x{w} tokens covered the whole {grid:?} grid in \
         {MAX_DRAWS_PER_SAMPLE} draws in a row; lower `num_blocks` or `spatial_scale`"
    )]
    NoContext {
        /// Position of the config in the list.
        index: usize,
        /// Its block count.
        num_blocks: usize,
        /// Block duration in tubelets.
        t: usize,
        /// Block height in patches.
        h: usize,
        /// Block width in patches.
        w: usize,
        /// The token grid `(T', H', W')`.
        grid: [usize; 3],
    },
}

impl ethos_core::Classify for MaskError {
    fn kind(&self) -> ethos_core::ErrorKind {
        ethos_core::ErrorKind::BadInput
    }
}

fn default_temporal_scale() -> [f64; 2] {
    [1.0, 1.0]
}
fn default_aspect_ratio() -> [f64; 2] {
    [0.75, 1.5]
}

/// One mask group of V-JEPA 2's multi-block recipe (a `pretrain.masks` entry). Scales are fractions of
/// the grid: `spatial_scale` of the `H' x W'` patches covered by one block, `temporal_scale` of the `T'`
/// tubelets; `aspect_ratio` is the block's height / width; each `[lo, hi]` range is drawn uniformly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    /// Blocks placed per sample; their union is the target set.
    pub num_blocks: usize,
    /// Spatial fraction of one block, `[lo, hi]` in (0, 1].
    pub spatial_scale: [f64; 2],
    /// Temporal fraction of one block, `[lo, hi]` in (0, 1] (default: the full clip).
    #[serde(default = "default_temporal_scale")]
    pub temporal_scale: [f64; 2],
    /// Block height / width, `[lo, hi]` with lo > 0 (default `[0.75, 1.5]`).
    #[serde(default = "default_aspect_ratio")]
    pub aspect_ratio: [f64; 2],
}

impl MaskConfig {
    /// V-JEPA 2's pre-training recipe: 8 blocks at spatial scale 0.15 and 2 blocks at 0.7, aspect ratio
    /// 0.75-1.5, each over the full temporal extent.
    pub fn vjepa2_default() -> Vec<MaskConfig> {
        let group = |num_blocks, scale| MaskConfig {
            num_blocks,
            spatial_scale: [scale, scale],
            temporal_scale: default_temporal_scale(),
            aspect_ratio: default_aspect_ratio(),
        };
        vec![group(8, 0.15), group(2, 0.7)]
    }

    /// Checks the ranges; `index` names the group in the error.
    pub fn validate(&self, index: usize) -> Result<(), MaskError> {
        let bad = |key: &'static str, value: String, reason: &str| MaskError::InvalidConfig {
            index,
            key,
            value,
            reason: reason.to_string(),
        };
        if self.num_blocks < 1 {
            return Err(bad("num_blocks", "0".into(), "must be at least 1"));
        }
        for (key, [lo, hi]) in [
            ("spatial_scale", self.spatial_scale),
            ("temporal_scale", self.temporal_scale),
        ] {
            if !(lo.is_finite() && hi.is_finite() && 0.0 < lo && lo <= hi && hi <= 1.0) {
                return Err(bad(
                    key,
                    format!("[{lo}, {hi}]"),
                    "must satisfy 0 < lo <= hi <= 1",
                ));
            }
        }
        let [lo, hi] = self.aspect_ratio;
        if !(lo.is_finite() && hi.is_finite() && 0.0 < lo && lo <= hi) {
            return Err(bad(
                "aspect_ratio",
                format!("[{lo}, {hi}]"),
                "must satisfy 0 < lo <= hi",
            ));
        }
        Ok(())
    }
}

/// The masks of one group for a batch: ascending token indices per sample, every row of equal length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskGroup {
    /// Context (visible) token indices, `B` rows of equal length.
    pub context: Vec<Vec<i64>>,
    /// Target (predicted) token indices, `B` rows of equal length.
    pub target: Vec<Vec<i64>>,
}

impl MaskGroup {
    /// `(context, target)` as int64 tensors `(B, K)` and `(B, M)` on `device`.
    pub fn to_tensors(&self, device: Device) -> (Tensor, Tensor) {
        let rows = |r: &[Vec<i64>]| {
            let width = r.first().map_or(0, Vec::len) as i64;
            let flat: Vec<i64> = r.iter().flatten().copied().collect();
            Tensor::from_slice(&flat)
                .reshape([r.len() as i64, width])
                .to_device(device)
        };
        (rows(&self.context), rows(&self.target))
    }

    /// Fraction of the `tokens` grid tokens that are targets (per row).
    pub fn target_fraction(&self, tokens: usize) -> f64 {
        self.target.first().map_or(0, Vec::len) as f64 / tokens as f64
    }
}

/// The multi-block mask generator for one token grid and a list of mask groups.
#[derive(Debug, Clone)]
pub struct MultiBlockMasks {
    grid: [usize; 3],
    configs: Vec<MaskConfig>,
}

/// Stream purposes inside a (seed, step, group) key: the shared block size, then one stream per sample.
const SIZE_STREAM: u64 = u64::MAX;

fn stream(seed: u64, step: u64, group: u64, purpose: u64) -> ChaCha12Rng {
    let mut key = [0u8; 32];
    key[0..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&step.to_le_bytes());
    key[16..24].copy_from_slice(&group.to_le_bytes());
    key[24..32].copy_from_slice(&purpose.to_le_bytes());
    ChaCha12Rng::from_seed(key)
}

fn uniform(rng: &mut ChaCha12Rng, [lo, hi]: [f64; 2]) -> f64 {
    lo + rng.random::<f64>() * (hi - lo)
}

impl MultiBlockMasks {
    /// A generator for the token grid `(T', H', W')` (tubelets, patch rows, patch columns; see
    /// [`crate::vjepa2::Vjepa2Config::token_grid`]) and one mask group per config.
    pub fn new(grid: [i64; 3], configs: Vec<MaskConfig>) -> Result<Self, MaskError> {
        if grid.iter().any(|&g| g < 1) {
            return Err(MaskError::Invalid(format!(
                "token grid {grid:?} must be at least 1x1x1"
            )));
        }
        if configs.is_empty() {
            return Err(MaskError::Invalid(
                "no mask groups configured (an empty list)".into(),
            ));
        }
        for (i, c) in configs.iter().enumerate() {
            c.validate(i)?;
        }
        Ok(Self {
            grid: grid.map(|g| g as usize),
            configs,
        })
    }

    /// The token grid `(T', H', W')`.
    pub fn grid(&self) -> [usize; 3] {
        self.grid
    }

    /// Tokens per clip, `T' * H' * W'`.
    pub fn num_tokens(&self) -> usize {
        self.grid.iter().product()
    }

    /// The mask groups' configs.
    pub fn configs(&self) -> &[MaskConfig] {
        &self.configs
    }

    /// The block size `(t, h, w)` of group `group` at (seed, step), shared by the batch.
    pub fn block_size(&self, seed: u64, step: u64, group: usize) -> [usize; 3] {
        let cfg = &self.configs[group];
        let [duration, height, width] = self.grid;
        let mut rng = stream(seed, step, group as u64, SIZE_STREAM);
        let temporal = uniform(&mut rng, cfg.temporal_scale);
        let t = ((duration as f64 * temporal) as usize).max(1);
        let spatial = uniform(&mut rng, cfg.spatial_scale);
        let keep = (height as f64 * width as f64 * spatial) as usize as f64;
        let aspect = uniform(&mut rng, cfg.aspect_ratio);
        // Python's round (half to even) as the reference; at least one patch, so that a tiny grid or
        // extreme aspect ratio never yields an empty block.
        let h = ((keep * aspect).sqrt().round_ties_even() as usize).clamp(1, height);
        let w = ((keep / aspect).sqrt().round_ties_even() as usize).clamp(1, width);
        [t.min(duration), h, w]
    }

    /// The masks of every group for a batch of `batch` clips at (seed, step).
    pub fn generate(
        &self,
        seed: u64,
        step: u64,
        batch: usize,
    ) -> Result<Vec<MaskGroup>, MaskError> {
        if batch < 1 {
            return Err(MaskError::Invalid("batch size must be at least 1".into()));
        }
        (0..self.configs.len())
            .map(|g| self.generate_group(seed, step, g, batch))
            .collect()
    }

    fn generate_group(
        &self,
        seed: u64,
        step: u64,
        group: usize,
        batch: usize,
    ) -> Result<MaskGroup, MaskError> {
        let [duration, height, width] = self.grid;
        let [t, h, w] = self.block_size(seed, step, group);
        let num_blocks = self.configs[group].num_blocks;
        let mut covered = vec![false; self.num_tokens()];
        let mut context = Vec::with_capacity(batch);
        let mut target = Vec::with_capacity(batch);
        for sample in 0..batch {
            let mut rng = stream(seed, step, group as u64, sample as u64);
            let mut attempts = 0;
            loop {
                covered.fill(false);
                for _ in 0..num_blocks {
                    let top = rng.random_range(0..=height - h);
                    let left = rng.random_range(0..=width - w);
                    let start = rng.random_range(0..=duration - t);
                    for ti in start..start + t {
                        for hi in top..top + h {
                            let row = (ti * height + hi) * width;
                            covered[row + left..row + left + w].fill(true);
                        }
                    }
                }
                let (tgt, ctx): (Vec<i64>, Vec<i64>) =
                    (0..covered.len() as i64).partition(|&i| covered[i as usize]);
                if !ctx.is_empty() {
                    context.push(ctx);
                    target.push(tgt);
                    break;
                }
                attempts += 1;
                if attempts >= MAX_DRAWS_PER_SAMPLE {
                    return Err(MaskError::NoContext {
                        index: group,
                        num_blocks,
                        t,
                        h,
                        w,
                        grid: self.grid,
                    });
                }
            }
        }
        let keep_context = context.iter().map(Vec::len).min().unwrap_or(0);
        let keep_target = target.iter().map(Vec::len).min().unwrap_or(0);
        context.iter_mut().for_each(|c| c.truncate(keep_context));
        target.iter_mut().for_each(|c| c.truncate(keep_target));
        Ok(MaskGroup { context, target })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(grid: [i64; 3]) -> MultiBlockMasks {
        MultiBlockMasks::new(grid, MaskConfig::vjepa2_default()).unwrap()
    }

    #[test]
    fn same_seed_and_step_give_the_same_masks() {
        let g = generator([8, 16, 16]);
        let a = g.generate(7, 123, 4).unwrap();
        let b = g.generate(7, 123, 4).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, g.generate(7, 124, 4).unwrap());
        assert_ne!(a, g.generate(8, 123, 4).unwrap());
        // A step's masks do not depend on which steps ran before (exact resume).
        let _ = g.generate(7, 5, 4).unwrap();
        assert_eq!(a, g.generate(7, 123, 4).unwrap());
    }

    #[test]
    fn masks_are_rectangular_sorted_disjoint_and_in_range() {
        let g = generator([4, 6, 6]);
        let n = g.num_tokens() as i64;
        for step in 0..50 {
            for group in g.generate(1, step, 3).unwrap() {
                assert_eq!(group.context.len(), 3);
                let (kc, kt) = (group.context[0].len(), group.target[0].len());
                assert!(kc >= 1 && kt >= 1);
                for (c, t) in group.context.iter().zip(&group.target) {
                    assert_eq!((c.len(), t.len()), (kc, kt));
                    assert!(c.windows(2).all(|p| p[0] < p[1]));
                    assert!(t.windows(2).all(|p| p[0] < p[1]));
                    assert!(c.iter().chain(t).all(|&i| (0..n).contains(&i)));
                    assert!(
                        c.iter().all(|i| !t.contains(i)),
                        "context and target overlap"
                    );
                }
            }
        }
    }

    #[test]
    fn batch_of_one_is_a_full_partition_and_blocks_span_the_clip() {
        let g = generator([4, 8, 8]);
        for step in 0..20 {
            for (gi, group) in g.generate(3, step, 1).unwrap().iter().enumerate() {
                assert_eq!(group.context[0].len() + group.target[0].len(), 256);
                // Full temporal extent: a token is a target in every frame or in none.
                let targets: std::collections::HashSet<i64> =
                    group.target[0].iter().copied().collect();
                for &i in &group.target[0] {
                    let spatial = i % 64;
                    assert!((0..4).all(|t| targets.contains(&(t * 64 + spatial))));
                }
                let [t, h, w] = g.block_size(3, step, gi);
                assert_eq!(t, 4);
                assert!(h <= 8 && w <= 8);
            }
        }
    }

    #[test]
    fn block_size_follows_the_recipe() {
        // 16x16 patches at scale 0.15: int(38.4) = 38 patches; aspect in [0.75, 1.5].
        let g = generator([8, 16, 16]);
        for step in 0..100 {
            let [t, h, w] = g.block_size(0, step, 0);
            assert_eq!(t, 8);
            assert!((5..=8).contains(&h) && (5..=7).contains(&w), "{h}x{w}");
        }
    }

    #[test]
    fn rejects_bad_configs() {
        let mut bad = MaskConfig::vjepa2_default();
        bad[1].spatial_scale = [0.8, 0.7];
        let err = MultiBlockMasks::new([8, 16, 16], bad).unwrap_err();
        assert!(
            err.to_string().contains("mask config 1: `spatial_scale`"),
            "{err}"
        );
        let mut bad = MaskConfig::vjepa2_default();
        bad[0].aspect_ratio = [0.0, 1.0];
        assert!(MultiBlockMasks::new([8, 16, 16], bad).is_err());
        assert!(MultiBlockMasks::new([8, 16, 16], Vec::new()).is_err());
        assert!(MultiBlockMasks::new([0, 16, 16], MaskConfig::vjepa2_default()).is_err());
        let err = serde_json::from_str::<MaskConfig>(
            r#"{"num_blocks": 2, "spatial_scale": [0.1, 0.2], "scale": 1}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("scale"), "{err}");
        let parsed: MaskConfig =
            serde_json::from_str(r#"{"num_blocks": 8, "spatial_scale": [0.15, 0.15]}"#).unwrap();
        assert_eq!(parsed, MaskConfig::vjepa2_default()[0]);
    }

    #[test]
    fn full_cover_is_an_error_not_a_hang() {
        let cover = vec![MaskConfig {
            num_blocks: 1,
            spatial_scale: [1.0, 1.0],
            temporal_scale: [1.0, 1.0],
            aspect_ratio: [1.0, 1.0],
        }];
        let g = MultiBlockMasks::new([2, 4, 4], cover).unwrap();
        let err = g.generate(0, 0, 1).unwrap_err();
        assert!(
            matches!(err, MaskError::NoContext { index: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn tensors_have_batch_rows() {
        let g = generator([2, 4, 4]);
        let groups = g.generate(0, 0, 2).unwrap();
        let (c, t) = groups[0].to_tensors(Device::Cpu);
        assert_eq!(c.size(), vec![2, groups[0].context[0].len() as i64]);
        assert_eq!(t.size(), vec![2, groups[0].target[0].len() as i64]);
        assert_eq!(c.kind(), tch::Kind::Int64);
    }
}
