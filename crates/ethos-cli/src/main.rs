//! `ethos`: behaviour-video classification from labelled events to timelines.
//!
//! The binary is thin: each command parses its flags, calls one function of the pipeline layer
//! (`ethos-pipeline`) and prints. Output for people goes to stderr; machine-readable results go
//! to files or stdout (JSON). Exit codes: 0 success, 2 bad input or config, 1 internal failure.

mod cmd;
mod exit;
mod output;
mod progress;

use std::io::IsTerminal;

use clap::{Parser, Subcommand, ValueEnum};

/// Behaviour-video classification: synthetic data, decoding, training, evaluation, timelines.
#[derive(Parser)]
#[command(name = "ethos", version, about, propagate_version = true)]
struct Cli {
    /// More log output (repeat for more); `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Colour in log lines: `auto` (only on a terminal, and not when `NO_COLOR` is set), `always`
    /// or `never`.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    color: Color,
    #[command(subcommand)]
    command: Command,
}

/// When log lines carry ANSI colour codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Color {
    /// On a terminal without `NO_COLOR`.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

#[derive(Subcommand)]
enum Command {
    /// The whole pipeline on synthetic data on the CPU: synth, cache, train, evaluate (val + OOD).
    Demo(cmd::demo::Args),
    /// JSON facts about a video: codec, size, rates, frame count, duration, keyframe interval.
    Probe(cmd::probe::Args),
    /// Writes a synthetic barn dataset (videos, events.csv, splits, config.yaml) with known labels.
    Synth(cmd::synth::Args),
    /// Cuts every event of an events CSV into a clip folder (evt_{event_idx:04}_{behavior}.mp4).
    Extract(cmd::extract::Args),
    /// Exports FERAL-format square H.264 clips and the FERAL JSON (splits, per-frame labels).
    ExportFeral(cmd::export_feral::Args),
    /// Builds the decoded-clip cache of a config (every event of every split; resumable).
    Cache(cmd::cache::Args),
    /// Decodes the frames of one window (ROI, short side) to OUT.png (contact sheet) + OUT.safetensors.
    Sample(cmd::sample::Args),
    /// Benchmarks (`ethos bench decode|model|predict`): medians as JSON on stdout, a table on stderr.
    Bench(cmd::bench::Args),
    /// Scores a per-sample predictions CSV (`true` + `prob_<class>` columns): metrics JSON to stdout.
    Metrics(cmd::metrics::Args),
    /// Writes SLURM sbatch scripts that checkpoint before the time limit and resume when requeued.
    Slurm(cmd::slurm::Args),
    /// Metrics and an HTML report of a checkpoint on a split (val, test_ood, ...).
    Eval(cmd::eval::Args),
    /// Bout-level and frame-level agreement of predicted events with labelled events.
    EvalEvents(cmd::eval_events::Args),
    /// Temperature + tuned decision rule from val (`calibration.json`); `--timeline`: the bout rule.
    Calibrate(cmd::calibrate::Args),
    /// HTML review pages: clips worth a look with corrections (`--run`), or timelines (`--predictions`).
    Review(cmd::review::Args),
    /// Sliding-window inference over long videos: per-window probabilities and merged events.
    Predict(cmd::predict::Args),
    /// What libtorch and FFmpeg see here: versions, CUDA devices, encoders, threads (JSON to stdout).
    Doctor(cmd::doctor::Args),
    /// Weight files: `convert` to safetensors, `fetch` official torchvision weights, `inspect`.
    Weights(cmd::weights::Args),
    /// Models: `forward` on a tensor file (parity / weight checks), `summary` (shapes, params, FLOPs).
    Model(cmd::model::Args),
    /// Trains a model from a config into a run directory (resumable; `--set key=value` overrides).
    Train(cmd::train::Args),
    /// The unlabelled-footage clip index of `ethos pretrain` (clips decoded once into the cache).
    PretrainIndex(cmd::pretrain_index::Args),
    /// Self-supervised V-JEPA 2 adaptation on unlabelled footage; RUN/encoder/ = Hugging Face folder.
    Pretrain(cmd::pretrain::Args),
    /// N local data-parallel processes of a command (`ethos launch --nproc 2 -- train --config C`).
    Launch(cmd::launch::Args),
    /// Annotation-tool files (BORIS, CVAT, Label Studio) → the events CSV; every problem listed.
    Import(cmd::import::Args),
    /// Events → an annotation tool's format (`export boris`: a BORIS project to review in).
    Export(cmd::export::Args),
    /// Applies a corrections CSV (`event_idx,action,note`) to an events CSV, recording what changed.
    Relabel(cmd::relabel::Args),
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.color);
    let result = match cli.command {
        Command::Demo(args) => cmd::demo::run(args),
        Command::Probe(args) => cmd::probe::run(args),
        Command::Synth(args) => cmd::synth::run(args),
        Command::Extract(args) => cmd::extract::run(args),
        Command::ExportFeral(args) => cmd::export_feral::run(args),
        Command::Cache(args) => cmd::cache::run(args),
        Command::Sample(args) => cmd::sample::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Metrics(args) => cmd::metrics::run(args),
        Command::Slurm(args) => cmd::slurm::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::EvalEvents(args) => cmd::eval_events::run(args),
        Command::Calibrate(args) => cmd::calibrate::run(args),
        Command::Review(args) => cmd::review::run(args),
        Command::Predict(args) => cmd::predict::run(args),
        Command::Doctor(args) => cmd::doctor::run(args),
        Command::Weights(args) => cmd::weights::run(args),
        Command::Train(args) => cmd::train::run(args),
        Command::PretrainIndex(args) => cmd::pretrain_index::run(args),
        Command::Pretrain(args) => cmd::pretrain::run(args),
        Command::Launch(args) => cmd::launch::run(args),
        Command::Model(args) => cmd::model::run(args),
        Command::Import(args) => cmd::import::run(args),
        Command::Export(args) => cmd::export::run(args),
        Command::Relabel(args) => cmd::relabel::run(args),
    };
    if let Err(err) = result {
        std::process::exit(exit::report(&err));
    }
}

fn init_logging(verbose: u8, color: Color) {
    use tracing_subscriber::EnvFilter;
    // Ranks other than 0 of a data-parallel run: warnings and errors only, whatever RUST_LOG
    // says (a job script exports it for every rank); `-v` still opens them up.
    let quiet_rank = verbose == 0 && ethos_pipeline::distributed::is_secondary_rank();
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let ansi = match color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    let filter = if quiet_rank {
        EnvFilter::new("warn")
    } else {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        // A failing stderr (`2> /dev/full`, a closed pipe) loses log lines; reporting that with
        // `eprintln!` would panic on the same stderr.
        .log_internal_errors(false)
        .init();
}
