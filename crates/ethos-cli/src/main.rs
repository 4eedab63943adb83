//! `ethos`: behaviour-video classification from labelled events to timelines.
//!
//! Output for people goes to stderr; machine-readable results go to files or stdout (JSON).
//! Exit codes: 0 success, 2 bad input or config, 1 internal failure.

mod cmd;
mod exit;

use clap::{Parser, Subcommand};

/// Behaviour-video classification: synthetic data, decoding, training, evaluation, timelines.
#[derive(Parser)]
#[command(name = "ethos", version, about, propagate_version = true)]
struct Cli {
    /// More log output (repeat for more); `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// JSON facts about a video: codec, size, rates, frame count, duration, keyframe interval.
    Probe(cmd::probe::Args),
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Probe(args) => cmd::probe::run(args),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(exit::code(&err));
    }
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
