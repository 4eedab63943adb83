//! Maps errors to the exit codes of the CLI: 2 for bad input or config, 1 for internal failures.

/// An error caused by the user's input (a file, key or value), reported with exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// The process exit code for an error: 2 when any error in the chain is a bad-input error.
pub fn code(err: &anyhow::Error) -> i32 {
    let bad = err.chain().any(|e| {
        e.downcast_ref::<BadInput>().is_some()
            || e.downcast_ref::<ethos_core::Error>()
                .is_some_and(|c| c.is_bad_input())
            || e.downcast_ref::<ethos_video::VideoError>()
                .is_some_and(|v| v.is_bad_input())
            || e.downcast_ref::<clap::Error>().is_some()
            || e.downcast_ref::<ethos_data::error::DataError>()
                .is_some_and(|d| d.is_bad_input())
            || e.downcast_ref::<ethos_data::config::ConfigError>()
                .is_some()
            || e.downcast_ref::<ethos_data::manifest::ManifestError>()
                .is_some_and(|m| m.is_bad_input())
            || e.downcast_ref::<ethos_data::synth::SynthError>()
                .is_some_and(|s| s.is_bad_input())
            || e.downcast_ref::<ethos_train::predictions_csv::PredictionsCsvError>()
                .is_some_and(|p| p.is_bad_input())
            || e.downcast_ref::<ethos_train::metrics::MetricsError>()
                .is_some_and(|m| m.is_bad_input())
            || e.downcast_ref::<ethos_train::loss::LossError>()
                .is_some_and(|l| l.is_bad_input())
            || e.downcast_ref::<ethos_train::optim::OptimError>()
                .is_some_and(|o| o.is_bad_input())
            || e.downcast_ref::<ethos_train::schedule::SchedError>()
                .is_some_and(|s| s.is_bad_input())
            || e.downcast_ref::<ethos_models::weights::WeightsError>()
                .is_some_and(|w| w.is_bad_input())
            || e.downcast_ref::<ethos_models::engine::DeviceError>()
                .is_some_and(|d| d.is_bad_input())
            || e.downcast_ref::<ethos_models::mvit::MvitError>()
                .is_some_and(|m| m.is_bad_input())
            || e.downcast_ref::<ethos_models::registry::RegistryError>()
                .is_some_and(|r| r.is_bad_input())
            || e.downcast_ref::<ethos_train::trainer::TrainError>()
                .is_some_and(|t| t.is_bad_input())
            || e.downcast_ref::<ethos_train::checkpoint::CheckpointError>()
                .is_some_and(|c| c.is_bad_input())
            || e.downcast_ref::<ethos_models::registry::RegistryError>()
                .is_some_and(|r| r.is_bad_input())
            || e.downcast_ref::<ethos_models::mvit::MvitError>()
                .is_some_and(|m| m.is_bad_input())
            || e.downcast_ref::<ethos_models::vjepa2::Vjepa2Error>()
                .is_some_and(|v| v.is_bad_input())
    });
    if bad { 2 } else { 1 }
}
