//! SLURM job scripts (`ethos slurm train|pretrain|predict`): sbatch scripts that checkpoint before the time limit and resume.
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

use ethos_core::Error;

use crate::Result;
use crate::slurm_parallel::{self, Parallel, Tasks};

/// The kind of job script to write.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Subcommand))]
pub enum Job {
    /// A training job that checkpoints before its time limit and resumes when requeued.
    Train(TrainArgs),
    /// A self-supervised pretraining job (`ethos pretrain`) that checkpoints before its time
    /// limit and resumes when requeued (`train.resume=auto` picks `RUN/last.ckpt`).
    Pretrain(TrainArgs),
    /// A job array of `ethos predict` shards (`--shard $SLURM_ARRAY_TASK_ID/N`).
    Predict(PredictArgs),
}

/// Arguments of `ethos slurm train`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct TrainArgs {
    /// The training config (made absolute in the script).
    #[cfg_attr(feature = "clap", arg(long))]
    pub config: PathBuf,
    /// Run directory handed to `ethos train --out` (default: the config's `train.out_dir`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub run_dir: Option<PathBuf>,
    /// Extra `--set key=value` overrides passed to `ethos train`.
    #[cfg_attr(feature = "clap", arg(long = "set", value_name = "KEY=VALUE"))]
    pub overrides: Vec<String>,
    /// Data parallel across GPUs and nodes (`--nodes`, `--gpus-per-node`).
    #[cfg_attr(feature = "clap", command(flatten))]
    pub parallel: Parallel,
    #[cfg_attr(feature = "clap", command(flatten))]
    pub common: Common,
}

/// Arguments of `ethos slurm predict`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct PredictArgs {
    /// Checkpoint to run.
    #[cfg_attr(feature = "clap", arg(long))]
    pub checkpoint: PathBuf,
    /// Text file with one video path per line.
    #[cfg_attr(feature = "clap", arg(long))]
    pub list: PathBuf,
    /// Output directory of `ethos predict`.
    #[cfg_attr(feature = "clap", arg(long = "predict-out"))]
    pub predict_out: PathBuf,
    /// Number of array tasks; task i runs shard i/N.
    #[cfg_attr(feature = "clap", arg(long))]
    pub array: u32,
    /// Extra arguments passed to `ethos predict` verbatim (e.g. `--window 2 --stride 1`).
    #[cfg_attr(
        feature = "clap",
        arg(long = "predict-arg", allow_hyphen_values = true)
    )]
    pub predict_args: Vec<String>,
    #[cfg_attr(feature = "clap", command(flatten))]
    pub common: Common,
}

/// What to do when the time limit approaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum OnTimeout {
    /// `scontrol requeue $SLURM_JOB_ID` (needs a requeueable job; the script sets `--requeue`).
    Requeue,
    /// `sbatch` the same script again (needs `--out`, so the script has a path).
    Resubmit,
}

/// Resource and environment options shared by both job kinds.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct Common {
    /// Partition (`#SBATCH --partition`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub partition: Option<String>,
    /// Account to charge (`#SBATCH --account`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub account: Option<String>,
    /// Quality of service (`#SBATCH --qos`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub qos: Option<String>,
    /// Wall-time limit, HH:MM:SS or D-HH:MM:SS.
    #[cfg_attr(feature = "clap", arg(long, default_value = "24:00:00"))]
    pub time: String,
    /// GPUs per job (`#SBATCH --gres=gpu:N`; 0 = none).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1))]
    pub gpus: u32,
    /// CPU cores per task (data loading and decoding).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 8))]
    pub cpus: u32,
    /// Memory per job, e.g. 64G.
    #[cfg_attr(feature = "clap", arg(long, default_value = "64G"))]
    pub mem: String,
    /// Job name.
    #[cfg_attr(feature = "clap", arg(long))]
    pub job_name: Option<String>,
    /// Folder for the job logs (`%x-%j.out`; requeued runs append to the same file).
    #[cfg_attr(feature = "clap", arg(long, default_value = "slurm-logs"))]
    pub log_dir: PathBuf,
    /// Seconds before the time limit at which ethos is told to checkpoint.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 300))]
    pub signal_seconds: u32,
    /// What to do when the time limit approaches.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value_t = OnTimeout::Requeue))]
    pub on_timeout: OnTimeout,
    /// A line of environment set-up (repeatable), e.g. `module load cuda/12.4`.
    #[cfg_attr(feature = "clap", arg(long = "env", value_name = "LINE"))]
    pub env_lines: Vec<String>,
    /// A file whose lines are environment set-up (added after `--env` lines).
    #[cfg_attr(feature = "clap", arg(long))]
    pub env_file: Option<PathBuf>,
    /// The libtorch library folder put on LD_LIBRARY_PATH (default: detected from a python3 torch
    /// at job start).
    #[cfg_attr(feature = "clap", arg(long))]
    pub libtorch_lib: Option<PathBuf>,
    /// The ethos binary the job runs (default: this binary's absolute path).
    #[cfg_attr(feature = "clap", arg(long))]
    pub ethos: Option<PathBuf>,
    /// Write the script here instead of stdout.
    #[cfg_attr(feature = "clap", arg(long))]
    pub out: Option<PathBuf>,
    /// Submit the written script with `sbatch` (needs `--out`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub submit: bool,
}

/// What `emit` did with a script.
#[derive(Debug, Clone)]
pub struct Emitted {
    /// The script.
    pub script: String,
    /// Where it was written (`--out`), if anywhere.
    pub written: Option<PathBuf>,
    /// What `sbatch` answered (`--submit`).
    pub submitted: Option<String>,
}

/// Writes the job's script (to `--out`, else returns it for stdout) and submits it with `sbatch`
/// when asked.
pub fn emit(job: &Job) -> Result<Emitted> {
    // Account, partition and QoS are checked against the cluster where its tools answer.
    let mut job = job.clone();
    let common = match &mut job {
        Job::Train(t) | Job::Pretrain(t) => &mut t.common,
        Job::Predict(p) => &mut p.common,
    };
    let checked = crate::slurm_checks::check(
        common.account.as_deref(),
        common.partition.as_deref(),
        common.qos.as_deref(),
        crate::slurm_checks::current_user().as_deref(),
        &crate::slurm_checks::run_tool,
    )?;
    for w in &checked.warnings {
        tracing::warn!("{w}");
    }
    common.account = checked.account;
    let job = &job;
    let (script, common) = match job {
        Job::Train(t) => (train_script(t)?, &t.common),
        Job::Pretrain(t) => (
            resumable_script(t, "pretrain", "ethos-pretrain")?,
            &t.common,
        ),
        Job::Predict(p) => (predict_script(p)?, &p.common),
    };
    match &common.out {
        Some(path) => {
            write_script(path, &script)?;
            let submitted = if common.submit {
                Some(submit(path)?)
            } else {
                None
            };
            Ok(Emitted {
                script,
                written: Some(path.clone()),
                submitted,
            })
        }
        None if common.submit => Err(Error::bad_input(
            "--submit needs --out FILE (sbatch submits a file)",
        )),
        None => Ok(Emitted {
            script,
            written: None,
            submitted: None,
        }),
    }
}

fn train_script(t: &TrainArgs) -> Result<String> {
    resumable_script(t, "train", "ethos-train")
}

/// A job running `ethos <command> --config F --set train.resume=auto ...` (train, pretrain).
fn resumable_script(t: &TrainArgs, command: &str, default_name: &str) -> Result<String> {
    let config = absolute(&t.config)?;
    if !config.is_file() {
        return Err(Error::bad_input(format!(
            "{}: config file not found",
            t.config.display()
        )));
    }
    let mut cmd = vec![
        command.to_string(),
        "--config".into(),
        config.display().to_string(),
        "--set".into(),
        "train.resume=auto".into(),
    ];
    for o in &t.overrides {
        if !o.contains('=') {
            return Err(Error::bad_input(format!("--set {o}: expected KEY=VALUE")));
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
        .unwrap_or_else(|| default_name.into());
    let tasks = t.parallel.tasks(t.common.gpus)?;
    render(
        &t.common,
        &name,
        None,
        &cmd,
        tasks.map(|k| (&t.parallel, k)),
    )
}

fn predict_script(p: &PredictArgs) -> Result<String> {
    if p.array == 0 {
        return Err(Error::bad_input("--array must be at least 1"));
    }
    let list = absolute(&p.list)?;
    if !list.is_file() {
        return Err(Error::bad_input(format!(
            "{}: video list not found",
            p.list.display()
        )));
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
    render(&p.common, &name, Some(p.array), &cmd, None)
}

/// Renders the sbatch script. `ethos_args` are shell words; `${...}` in them is left for the shell.
/// With `tasks`, a data-parallel job: `srun` starts one rank per task.
fn render(
    c: &Common,
    name: &str,
    array: Option<u32>,
    ethos_args: &[String],
    tasks: Option<(&Parallel, Tasks)>,
) -> Result<String> {
    validate_time(&c.time)?;
    if c.on_timeout == OnTimeout::Resubmit && c.out.is_none() {
        return Err(Error::bad_input(
            "--on-timeout resubmit needs --out FILE (the script resubmits itself)",
        ));
    }
    let ethos = match &c.ethos {
        Some(p) => absolute(p)?,
        None => std::env::current_exe()
            .map_err(|e| Error::internal(format!("locating the ethos binary: {e}")))?,
    };
    let log_dir = absolute(&c.log_dir)?;
    let mut env_lines = c.env_lines.clone();
    if let Some(f) = &c.env_file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| Error::bad_input(format!("{}: cannot read env file: {e}", f.display())))?;
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
    match &tasks {
        Some((_, t)) => write!(w, "{}", slurm_parallel::sbatch_lines(t))?,
        None if c.gpus > 0 => writeln!(w, "#SBATCH --gres=gpu:{}", c.gpus)?,
        None => {}
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
    if let Some((p, t)) = &tasks {
        write!(w, "{}", slurm_parallel::environment(p, t))?;
    }
    writeln!(
        w,
        "ETHOS=${{ETHOS_BIN:-{}}}",
        quote(&ethos.display().to_string())
    )?;
    // Before the trap: bash (5.2) fails to run a trap that arrives inside a command
    // substitution ("unexpected EOF while looking for matching `)'"), losing the signal, so no
    // `$(...)` runs between the trap and the start of ethos.
    writeln!(
        w,
        "echo \"ethos-slurm: job ${{SLURM_JOB_ID:-?}} on $(hostname) at $(date -Is)\" >&2"
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
    let words: Vec<String> = ethos_args.iter().map(|a| quote_keep_vars(a)).collect();
    let launcher = tasks
        .as_ref()
        .map(|(_, t)| format!("{} ", slurm_parallel::launcher(t)))
        .unwrap_or_default();
    writeln!(w, "{launcher}\"$ETHOS\" {} &", words.join(" "))?;
    writeln!(w, "child=$!")?;
    // Between the fork and the exec of ethos the child still runs this script's trap, which
    // swallows the signal; before `child=$!` the trap has no pid to forward to. Either way the
    // signal is sent again once ethos has had a moment to start (a second USR1 is harmless).
    writeln!(
        w,
        "# A signal that came while ethos was starting may have been lost: send it again."
    )?;
    writeln!(
        w,
        "if [ \"$timed_out\" = 1 ]; then sleep 1; kill -USR1 \"$child\" 2>/dev/null; fi"
    )?;
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

fn write_script(path: &Path, script: &str) -> Result<()> {
    let out = |e| Error::output_io(path, e);
    let tmp = ethos_core::fs::temp_path(path);
    std::fs::write(&tmp, script).map_err(out)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Executable for whoever may read it, as the umask allows.
        let mode = std::fs::metadata(&tmp).map_err(out)?.permissions().mode();
        std::fs::set_permissions(
            &tmp,
            std::fs::Permissions::from_mode(mode | ((mode & 0o444) >> 2)),
        )
        .map_err(out)?;
    }
    ethos_core::fs::commit_temp(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        out(e)
    })
}

/// Submits `path` with `sbatch`; returns its answer (`Submitted batch job N`).
fn submit(path: &Path) -> Result<String> {
    let out = Command::new("sbatch").arg(path).output().map_err(|e| {
        Error::internal(format!("running sbatch (is this a SLURM login node?): {e}"))
    })?;
    if !out.status.success() {
        return Err(Error::bad_input(format!(
            "sbatch {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::input_io(p, e))
}

fn validate_time(t: &str) -> Result<()> {
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
        Err(Error::bad_input(format!(
            "--time {t}: expected HH:MM:SS or D-HH:MM:SS"
        )))
    }
}

/// Refuses values that would break an `#SBATCH` line (whitespace, quotes, newlines).
fn shell_word_check(v: &str) -> Result<&str> {
    if v.is_empty()
        || v.chars()
            .any(|c| c.is_whitespace() || "'\"`$\\;".contains(c))
    {
        return Err(Error::bad_input(format!(
            "{v:?}: not allowed in an #SBATCH option"
        )));
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
