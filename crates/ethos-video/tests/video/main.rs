//! Integration tests of the FFmpeg layer: probing, frame-accurate sampling, geometry, writing,
//! decoders, bad input. One test binary rather than one per file.

mod common;
mod bad_input;
mod decoder;
mod geometry;
mod sampler;
mod writer;
