//! Integration tests of the FFmpeg layer: probing, frame-accurate sampling, geometry, writing,
//! decoders, bad input. One test binary rather than one per file.

mod bad_input;
mod common;
mod decoder;
mod geometry;
mod sampler;
mod writer;
