//! Any bytes as a `.pth` file (zip archive or legacy pickle stream): tensors or an error, never a
//! panic, a stack overflow or an allocation beyond libFuzzer's limits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ethos_models::pth::read_pth_bytes(std::path::Path::new("fuzz.pth"), data);
});
