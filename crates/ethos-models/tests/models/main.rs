//! Integration tests of the models: parity with the golden reference vectors of
//! `shared/reference/`, weight import, checkpointing, V-JEPA 2 self-supervised pieces. One test
//! binary (one link of libtorch) rather than one per file.

mod checkpointing;
mod mvit_keys;
mod mvit_parity;
mod r3d_parity;
mod untrusted_weights;
mod vjepa2_feral;
mod vjepa2_mask_stats;
mod vjepa2_parity;
mod vjepa2_ssl_export;
mod vjepa2_ssl_parity;
mod weights_import;
