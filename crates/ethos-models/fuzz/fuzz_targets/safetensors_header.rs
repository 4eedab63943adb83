//! Any bytes as a safetensors file: the header checks accept only a file whose header describes
//! the data that is there; never a panic or an allocation beyond libFuzzer's limits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tensors) =
        ethos_models::weights::read_safetensors_bytes(std::path::Path::new("fuzz.safetensors"), data)
    {
        let bytes: usize = tensors
            .iter()
            .map(|(_, t)| t.numel() * t.kind().elt_size_in_bytes())
            .sum();
        assert!(bytes <= data.len(), "tensors larger than the file");
    }
});
