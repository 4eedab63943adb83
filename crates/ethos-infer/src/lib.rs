//! Long-video inference of ethos: a streaming [`predict::Predictor`] runs a trained model over
//! sliding windows of a long video (decoded once, sequentially, bounded memory) into per-window
//! probabilities, per-frame probabilities for per-frame heads, and merged behaviour events.

pub mod predict;
