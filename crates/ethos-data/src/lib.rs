//! Data layer of ethos: event manifests and splits, the synthetic barn dataset, the decoded-clip
//! cache, clip-consistent transforms, samplers and the parallel deterministic loader.
//!
//! No tensor-engine types here: clips are uint8 [`ethos_video::Clip`]s and batches are plain
//! float32 buffers with their shape.

pub mod cache;
pub mod chunks;
pub mod config;
pub mod corpus;
pub mod dataset;
pub mod error;
pub mod loader;
pub mod manifest;
pub mod rng;
pub mod sampler;
pub mod shard;
pub mod synth;
pub mod transforms;
