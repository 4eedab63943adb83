//! `ethos launch --nproc N -- train --config C ...`: N local processes of a data-parallel run on
//! this machine (one per device; Gloo on the CPU), with the variables torchrun sets. Signals are
//! forwarded to every rank; a failed rank is named. Across nodes: `ethos slurm train --nodes`.

use std::ffi::OsString;
use std::time::Duration;

use ethos_pipeline::launch::{LaunchOptions, launch};

/// Arguments of `ethos launch`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Number of processes (ranks), one per device.
    #[arg(long, value_name = "N")]
    pub nproc: usize,
    /// Address of rank 0's rendezvous store.
    #[arg(long, default_value = "127.0.0.1")]
    pub master_addr: String,
    /// Port of the rendezvous store (default: a free one).
    #[arg(long)]
    pub master_port: Option<u16>,
    /// Seconds the other ranks get to stop on their own after one failed, before they are
    /// terminated.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    pub grace: f64,
    /// The ethos command each rank runs, after `--` (e.g. `-- train --config C`).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Runs `ethos launch`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if !(args.grace.is_finite() && args.grace >= 0.0) {
        return Err(ethos_core::Error::bad_input(format!(
            "--grace {}: expected a number of seconds >= 0",
            args.grace
        ))
        .into());
    }
    let program = std::env::current_exe()
        .map_err(|e| ethos_core::Error::internal(format!("locating the ethos binary: {e}")))?;
    let s = launch(&LaunchOptions {
        nproc: args.nproc,
        program,
        args: args.command,
        master_addr: args.master_addr,
        master_port: args.master_port,
        grace: Duration::from_secs_f64(args.grace),
    })?;
    crate::output::line(format!(
        "all {} ranks finished (rendezvous port {})",
        s.ranks.len(),
        s.master_port
    ));
    Ok(())
}
