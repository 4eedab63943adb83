//! `ethos slurm train|predict`: writes sbatch scripts that checkpoint before the time limit and resume.
//!
//! How a job survives its time limit: `#SBATCH --signal=B:USR1@S` makes SLURM signal the batch shell
//! S seconds before the limit. The script forwards the signal to `ethos`, which finishes the current
//! step, writes `last.ckpt` (or, for `predict`, the current video's outputs are simply redone) and exits
//! 0. The script then requeues the job (`scontrol requeue`, the default) or submits itself again
//! (`--on-timeout resubmit`, for clusters that forbid requeueing). The next run starts with
//! `train.resume=auto`, which picks `last.ckpt` in the run directory; `predict` skips finished videos.
//! A run that ends on its own (finished, early-stopped or failed) is not resubmitted.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::exit::BadInput;

/// Arguments of `ethos slurm`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub job: Job,
}

/// The kind of job script to write.
#[derive(clap::Subcommand)]
pub enum Job {
    /// A training job that checkpoints before its time limit and resumes when requeued.
    Train(TrainArgs),
    /// A job array of `ethos predict` shards (`--shard $SLURM_ARRAY_TASK_ID/N`).
    Predict(PredictArgs),
}

/// Arguments of `ethos slurm train`.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// The training config (made absolute in the script).
    #[arg(long)]
    pub config: PathBuf,
    /// Run directory handed to `ethos train --out` (default: the config's `train.out_dir`).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Extra `--set key=value` overrides passed to `ethos train`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

/// Arguments of `ethos slurm predict`.
#[derive(clap::Args)]
pub struct PredictArgs {
    /// Checkpoint to run.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Text file with one video path per line.
    #[arg(long)]
    pub list: PathBuf,
    /// Output directory of `ethos predict`.
    #[arg(long = "predict-out")]
    pub predict_out: PathBuf,
    /// Number of array tasks; task i runs shard i/N.
    #[arg(long)]
    pub array: u32,
    /// Extra arguments passed to `ethos predict` verbatim (e.g. `--window 2 --stride 1`).
    #[arg(long = "predict-arg", allow_hyphen_values = true)]
    pub predict_args: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

/// What to do when the time limit approaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnTimeout {
    /// `scontrol requeue $SLURM_JOB_ID` (needs a requeueable job; the script sets `--requeue`).
    Requeue,
    /// `sbatch` the same script again (needs `--out`, so the script has a path).
    Resubmit,
}

/// Resource and environment options shared by both job kinds.
#[derive(clap::Args)]
pub struct Common {
    /// Partition (`#SBATCH --partition`).
    #[arg(long)]
    pub partition: Option<String>,
    /// Account to charge (`#SBATCH --account`).
    #[arg(long)]
    pub account: Option<String>,
    /// Quality of service (`#SBATCH --qos`).
    #[arg(long)]
    pub qos: Option<String>,
    /// Wall-time limit, HH:MM:SS or D-HH:MM:SS.
    #[arg(long, default_value = "24:00:00")]
    pub time: String,
    /// GPUs per job (`#SBATCH --gres=gpu:N`; 0 = none).
    #[arg(long, default_value_t = 1)]
    pub gpus: u32,
    /// CPU cores per task (data loading and decoding).
    #[arg(long, default_value_t = 8)]
    pub cpus: u32,
    /// Memory per job, e.g. 64G.
    #[arg(long, default_value = "64G")]
    pub mem: String,
    /// Job name.
    #[arg(long)]
    pub job_name: Option<String>,
    /// Folder for the job logs (`%x-%j.out`; requeued runs append to the same file).
    #[arg(long, default_value = "slurm-logs")]
    pub log_dir: PathBuf,
    /// Seconds before the time limit at which ethos is told to checkpoint.
    #[arg(long, default_value_t = 300)]
    pub signal_seconds: u32,
    /// What to do when the time limit approaches.
    #[arg(long, value_enum, default_value_t = OnTimeout::Requeue)]
    pub on_timeout: OnTimeout,
    /// A line of environment set-up (repeatable), e.g. `module load cuda/12.4`.
    #[arg(long = "env", value_name = "LINE")]
    pub env_lines: Vec<String>,
    /// A file whose lines are environment set-up (added after `--env` lines).
    #[arg(long)]
    pub env_file: Option<PathBuf>,
    /// The libtorch library folder put on LD_LIBRARY_PATH (default: detected from a python3 torch
    /// at job start).
    #[arg(long)]
    pub libtorch_lib: Option<PathBuf>,
    /// The ethos binary the job runs (default: this binary's absolute path).
    #[arg(long)]
    pub ethos: Option<PathBuf>,
    /// Write the script here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Submit the written script with `sbatch` (needs `--out`).
    #[arg(long)]
    pub submit: bool,
}

/// Runs `ethos slurm`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (script, common) = match &args.job {
        Job::Train(t) => (train_script(t)?, &t.common),
        Job::Predict(p) => (predict_script(p)?, &p.common),
    };
    match &common.out {
        Some(path) => {
            write_script(path, &script)?;
            eprintln!("wrote {}", path.display());
            if common.submit {
                submit(path)?;
            }
        }
        None => {
            if common.submit {
                return Err(
                    BadInput("--submit needs --out FILE (sbatch submits a file)".into()).into(),
                );
            }
            print!("{script}");
        }
    }
    Ok(())
}

fn train_script(t: &TrainArgs) -> anyhow::Result<String> {
    let config = absolute(&t.config)?;
    if !config.is_file() {
        return Err(BadInput(format!("{}: config file not found", t.config.display())).into());
    }
    let mut cmd = vec![
        "train".to_string(),
        "--config".into(),
        config.display().to_string(),
        "--set".into(),
        "train.resume=auto".into(),
    ];
    for o in &t.overrides {
        if !o.contains('=') {
            return Err(BadInput(format!("--set {o}: expected KEY=VALUE")).into());
        }
        cmd.push("--set".into());
        cmd.push(o.clone());
    }
    if let Some(run) = &t.run_dir {
        cmd.push("--out".into());
        cmd.push(absolute(run)?.display().to_string());
    }
    let name = t
        .common
        .job_name
        .clone()
        .unwrap_or_else(|| "ethos-train".into());
    render(&t.common, &name, None, &cmd)
}

fn predict_script(p: &PredictArgs) -> anyhow::Result<String> {
    if p.array == 0 {
        return Err(BadInput("--array must be at least 1".into()).into());
    }
    let list = absolute(&p.list)?;
    if !list.is_file() {
        return Err(BadInput(format!("{}: video list not found", p.list.display())).into());
    }
    let mut cmd = vec![
        "predict".to_string(),
        "--checkpoint".into(),
        absolute(&p.checkpoint)?.display().to_string(),
        "--list".into(),
        list.display().to_string(),
        "--out".into(),
        absolute(&p.predict_out)?.display().to_string(),
        "--shard".into(),
        format!("${{SLURM_ARRAY_TASK_ID}}/{}", p.array),
    ];
    cmd.extend(p.predict_args.iter().cloned());
    let name = p
        .common
        .job_name
        .clone()
        .unwrap_or_else(|| "ethos-predict".into());
    render(&p.common, &name, Some(p.array), &cmd)
}

/// Renders the sbatch script. `ethos_args` are shell words; `${...}` in them is left for the shell.
fn render(
    c: &Common,
    name: &str,
    array: Option<u32>,
    ethos_args: &[String],
) -> anyhow::Result<String> {
    validate_time(&c.time)?;
    if c.on_timeout == OnTimeout::Resubmit && c.out.is_none() {
        return Err(BadInput(
            "--on-timeout resubmit needs --out FILE (the script resubmits itself)".into(),
        )
        .into());
    }
    let ethos = match &c.ethos {
        Some(p) => absolute(p)?,
        None => std::env::current_exe().context("locating the ethos binary")?,
    };
    let log_dir = absolute(&c.log_dir)?;
    let mut env_lines = c.env_lines.clone();
    if let Some(f) = &c.env_file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| BadInput(format!("{}: cannot read env file: {e}", f.display())))?;
        env_lines.extend(text.lines().map(str::to_owned));
    }

    let mut s = String::new();
    let w = &mut s;
    writeln!(w, "#!/bin/bash")?;
    writeln!(
        w,
        "# Written by `ethos slurm` {}.",
        env!("CARGO_PKG_VERSION")
    )?;
    writeln!(w, "#SBATCH --job-name={}", shell_word_check(name)?)?;
    for (flag, value) in [
        ("partition", &c.partition),
        ("account", &c.account),
        ("qos", &c.qos),
    ] {
        if let Some(v) = value {
            writeln!(w, "#SBATCH --{flag}={}", shell_word_check(v)?)?;
        }
    }
    writeln!(w, "#SBATCH --time={}", c.time)?;
    if c.gpus > 0 {
        writeln!(w, "#SBATCH --gres=gpu:{}", c.gpus)?;
    }
    writeln!(w, "#SBATCH --cpus-per-task={}", c.cpus)?;
    writeln!(w, "#SBATCH --mem={}", shell_word_check(&c.mem)?)?;
    if let Some(n) = array {
        writeln!(w, "#SBATCH --array=0-{}", n - 1)?;
        writeln!(w, "#SBATCH --output={}/%x-%A_%a.out", log_dir.display())?;
    } else {
        writeln!(w, "#SBATCH --output={}/%x-%j.out", log_dir.display())?;
    }
    writeln!(w, "#SBATCH --open-mode=append")?;
    if c.on_timeout == OnTimeout::Requeue {
        writeln!(w, "#SBATCH --requeue")?;
    }
    // B: signals only the batch shell, which forwards it: srun steps would get it too early otherwise.
    writeln!(w, "#SBATCH --signal=B:USR1@{}", c.signal_seconds)?;
    writeln!(w)?;
    writeln!(w, "set -u")?;
    writeln!(w, "mkdir -p {}", quote(&log_dir.display().to_string()))?;
    if !env_lines.is_empty() {
        writeln!(w, "# environment")?;
        for l in &env_lines {
            writeln!(w, "{l}")?;
        }
    }
    match &c.libtorch_lib {
        Some(lib) => writeln!(
            w,
            "export LD_LIBRARY_PATH={}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}",
            quote(&absolute(lib)?.display().to_string())
        )?,
        None => {
            writeln!(
                w,
                "# libtorch from the job's python3 torch, when there is one"
            )?;
            writeln!(
                w,
                "if TORCH_LIB=$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),\"lib\"))' 2>/dev/null); then"
            )?;
            writeln!(
                w,
                "  export LD_LIBRARY_PATH=\"$TORCH_LIB${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\""
            )?;
            writeln!(w, "fi")?;
        }
    }
    writeln!(
        w,
        "# ethos writes one flushed log line per step when stderr is not a terminal."
    )?;
    writeln!(w, "export RUST_LOG=${{RUST_LOG:-info}}")?;
    writeln!(
        w,
        "ETHOS=${{ETHOS_BIN:-{}}}",
        quote(&ethos.display().to_string())
    )?;
    writeln!(w)?;
    writeln!(w, "timed_out=0")?;
    writeln!(w, "child=")?;
    writeln!(w, "on_time_limit() {{")?;
    writeln!(w, "  timed_out=1")?;
    writeln!(
        w,
        "  echo \"ethos-slurm: time limit near, asking ethos to checkpoint and stop\" >&2"
    )?;
    writeln!(
        w,
        "  if [ -n \"$child\" ]; then kill -USR1 \"$child\" 2>/dev/null; fi"
    )?;
    writeln!(w, "}}")?;
    writeln!(w, "trap on_time_limit USR1 TERM")?;
    writeln!(
        w,
        "echo \"ethos-slurm: job ${{SLURM_JOB_ID:-?}} on $(hostname) at $(date -Is)\" >&2"
    )?;
    let words: Vec<String> = ethos_args.iter().map(|a| quote_keep_vars(a)).collect();
    writeln!(w, "\"$ETHOS\" {} &", words.join(" "))?;
    writeln!(w, "child=$!")?;
    writeln!(
        w,
        "# wait returns early when a trapped signal arrives: wait until ethos has really exited"
    )?;
    writeln!(w, "while true; do")?;
    writeln!(w, "  wait \"$child\"; status=$?")?;
    writeln!(w, "  kill -0 \"$child\" 2>/dev/null || break")?;
    writeln!(w, "done")?;
    writeln!(w, "if [ \"$timed_out\" = 1 ]; then")?;
    match c.on_timeout {
        OnTimeout::Requeue => {
            writeln!(
                w,
                "  echo \"ethos-slurm: requeueing job $SLURM_JOB_ID; the next run resumes\" >&2"
            )?;
            writeln!(w, "  scontrol requeue \"$SLURM_JOB_ID\"")?;
        }
        OnTimeout::Resubmit => {
            let me = absolute(c.out.as_deref().expect("checked above"))?;
            writeln!(
                w,
                "  echo \"ethos-slurm: resubmitting; the next run resumes\" >&2"
            )?;
            if array.is_some() {
                writeln!(
                    w,
                    "  sbatch --array=\"${{SLURM_ARRAY_TASK_ID}}\" {}",
                    quote(&me.display().to_string())
                )?;
            } else {
                writeln!(w, "  sbatch {}", quote(&me.display().to_string()))?;
            }
        }
    }
    writeln!(w, "  exit 0")?;
    writeln!(w, "fi")?;
    writeln!(w, "exit \"$status\"")?;
    Ok(s)
}

fn write_script(path: &Path, script: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("sbatch.tmp");
    std::fs::write(&tmp, script).with_context(|| format!("writing {}", tmp.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("setting permissions of {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

fn submit(path: &Path) -> anyhow::Result<()> {
    let out = Command::new("sbatch")
        .arg(path)
        .output()
        .context("running sbatch (is this a SLURM login node?)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "sbatch {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    eprintln!("{}", stdout.trim());
    Ok(())
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("making {} absolute", p.display()))
}

fn validate_time(t: &str) -> anyhow::Result<()> {
    let (days, hms) = match t.split_once('-') {
        Some((d, rest)) => (Some(d), rest),
        None => (None, t),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    let numeric = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let ok = days.is_none_or(numeric) && parts.len() == 3 && parts.iter().all(|p| numeric(p));
    if ok {
        Ok(())
    } else {
        Err(BadInput(format!("--time {t}: expected HH:MM:SS or D-HH:MM:SS")).into())
    }
}

/// Refuses values that would break an `#SBATCH` line (whitespace, quotes, newlines).
fn shell_word_check(v: &str) -> anyhow::Result<&str> {
    if v.is_empty()
        || v.chars()
            .any(|c| c.is_whitespace() || "'\"`$\\;".contains(c))
    {
        return Err(BadInput(format!("{v:?}: not allowed in an #SBATCH option")).into());
    }
    Ok(v)
}

/// Single-quotes a shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Double-quotes a word so `${SLURM_...}` expands but nothing else is special.
fn quote_keep_vars(s: &str) -> String {
    let mut out = String::from("\"");
    let mut rest = s;
    while let Some(i) = rest.find("${SLURM_") {
        out.push_str(&escape_dq(&rest[..i]));
        let end = rest[i..].find('}').map_or(rest.len(), |e| i + e + 1);
        out.push_str(&rest[i..end]);
        rest = &rest[end..];
    }
    out.push_str(&escape_dq(rest));
    out.push('"');
    out
}

fn escape_dq(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' | '\\' | '$' | '`' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_formats() {
        assert!(validate_time("24:00:00").is_ok());
        assert!(validate_time("2-12:00:00").is_ok());
        assert!(validate_time("24:00").is_err());
        assert!(validate_time("1h").is_err());
    }

    #[test]
    fn quoting_keeps_slurm_vars_and_escapes_the_rest() {
        assert_eq!(
            quote_keep_vars("${SLURM_ARRAY_TASK_ID}/4"),
            "\"${SLURM_ARRAY_TASK_ID}/4\""
        );
        assert_eq!(quote_keep_vars("a $HOME `x`"), "\"a \\$HOME \\`x\\`\"");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn sbatch_values_with_spaces_are_refused() {
        assert!(shell_word_check("gpu a100").is_err());
        assert!(shell_word_check("gpu-a100").is_ok());
    }
}
