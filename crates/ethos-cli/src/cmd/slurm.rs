//! `ethos slurm train|predict`: sbatch scripts that checkpoint before the time limit and resume
//! (see `ethos_pipeline::slurm` for how a job survives its limit).

use ethos_pipeline::slurm::{Job, emit};

/// Arguments of `ethos slurm`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub job: Job,
}

/// Runs `ethos slurm`: the script to `--out` (else stdout), submitted with `--submit`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let e = emit(&args.job)?;
    match &e.written {
        Some(path) => {
            crate::output::line(format!("wrote {}", path.display()));
            if let Some(answer) = &e.submitted {
                crate::output::line(answer);
            }
            Ok(())
        }
        None => {
            // The script without a trailing newline of our own: it ends with one.
            crate::output::stdout(e.script.trim_end_matches('\n'))
        }
    }
}
