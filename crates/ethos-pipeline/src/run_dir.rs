//! Run directories: which checkpoint a command runs, and where a training run starts or continues.
//!
//! A folder is a run when it holds a checkpoint (`last.ckpt` or `best.ckpt`). A start that failed
//! before its first checkpoint leaves at most `config.yaml`, which the next start overwrites. A
//! resume continues in the checkpoint's own folder unless `--out` names another; a run is never
//! written into a folder that holds another run.

use std::path::{Path, PathBuf};

use ethos_core::Error;

use crate::Result;
use crate::config::RunConfig;

/// The checkpoint of the epoch with the best `train.metric_key`.
pub const BEST_CKPT: &str = "best.ckpt";
/// The checkpoint of the last completed (or interrupted) epoch; resumes start from it.
pub const LAST_CKPT: &str = "last.ckpt";
/// Files a run writes besides its checkpoints (removed by `--force`).
const RUN_FILES: [&str; 7] = [
    "config.yaml",
    "history.csv",
    "per_sample_loss.csv",
    "metrics.json",
    "calibration.json",
    LAST_CKPT,
    BEST_CKPT,
];

/// True when `dir` holds a run (a checkpoint).
pub fn holds_run(dir: &Path) -> bool {
    dir.join(LAST_CKPT).is_file() || dir.join(BEST_CKPT).is_file()
}

/// The checkpoint a run directory offers to evaluation and inference: `best.ckpt`, else
/// `last.ckpt`.
pub fn run_checkpoint(run_dir: &Path) -> Result<PathBuf> {
    [BEST_CKPT, LAST_CKPT]
        .iter()
        .map(|n| run_dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::bad_input(format!(
                "{}: no {BEST_CKPT} or {LAST_CKPT} (not a run directory, or its training never finished an epoch)",
                run_dir.display()
            ))
        })
}

/// Where a training run starts: its folder, and the checkpoint it continues from (serialisable:
/// rank 0 of a data-parallel run sends it to the others).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunStart {
    /// The run directory every file of the run goes to.
    pub run_dir: PathBuf,
    /// The checkpoint to continue from; `None` for a fresh start.
    pub resume: Option<PathBuf>,
}

/// Decides where a run starts and whether it resumes:
///
/// - `--resume P` (or `train.resume: P`): continues from `P` in `P`'s folder, or in `out` when
///   given; a different `out` receives copies of the source run's checkpoints and history first,
///   so it holds a whole run.
/// - `train.resume: auto`: continues from `RUN/last.ckpt` when it exists, else starts fresh.
/// - otherwise a fresh start; a folder that already holds a run is refused unless `force`
///   (which removes that run's files).
pub fn plan_start(
    cfg: &RunConfig,
    explicit_resume: Option<&Path>,
    out: Option<&Path>,
    force: bool,
) -> Result<RunStart> {
    use ethos_train::config::ResumeSpec;
    let configured = cfg.run_dir();
    let resume_from = match (explicit_resume, &cfg.train.resume) {
        (Some(p), _) => Some(p.to_path_buf()),
        (None, Some(ResumeSpec::Path(p))) => Some(p.clone()),
        (None, Some(ResumeSpec::Auto)) => {
            let dir = out.map(Path::to_path_buf).unwrap_or(configured.clone());
            let last = dir.join(LAST_CKPT);
            if last.is_file() {
                return Ok(RunStart {
                    run_dir: dir,
                    resume: Some(last),
                });
            }
            None
        }
        (None, None) => None,
    };
    if let Some(ckpt) = resume_from {
        if !ckpt.is_file() {
            return Err(Error::bad_input(format!(
                "--resume {}: no such checkpoint",
                ckpt.display()
            )));
        }
        let own = absolute(ckpt.parent().unwrap_or(Path::new(".")));
        let run_dir = out.map(absolute).unwrap_or(own.clone());
        if run_dir != own {
            if holds_run(&run_dir) && !force {
                return Err(Error::bad_input(format!(
                    "--out {} already holds another run; resume into an empty folder, or overwrite it with --force",
                    run_dir.display()
                )));
            }
            return adopt(&ckpt, &own, &run_dir);
        }
        return Ok(RunStart {
            run_dir,
            resume: Some(ckpt),
        });
    }
    let run_dir = out.map(absolute).unwrap_or(configured);
    if holds_run(&run_dir) {
        if !force {
            return Err(Error::bad_input(format!(
                "run directory {} already holds a run; resume it with --resume {}, choose another with --out, or overwrite it with --force",
                run_dir.display(),
                run_dir.join(LAST_CKPT).display()
            )));
        }
        for f in RUN_FILES {
            let p = run_dir.join(f);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| Error::output_io(&p, e))?;
            }
        }
    }
    Ok(RunStart {
        run_dir,
        resume: None,
    })
}

/// Copies a run's checkpoints and history into `run_dir`, so a resume into a new folder holds a
/// whole run there (its best checkpoint included) and never writes into the source.
fn adopt(ckpt: &Path, source_dir: &Path, run_dir: &Path) -> Result<RunStart> {
    // A file that is not a checkpoint (of `ethos train` or `ethos pretrain`) is refused before
    // anything is written into `run_dir` (its header is enough to tell).
    ethos_train::checkpoint::kind_of(ckpt)
        .map_err(|e| Error::from(e).context(format!("--resume {}", ckpt.display())))?;
    std::fs::create_dir_all(run_dir).map_err(|e| Error::output_io(run_dir, e))?;
    // Streamed: a V-JEPA 2 checkpoint with its optimiser state is several GB.
    let copy = |from: &Path, name: &str| -> Result<()> {
        let to = run_dir.join(name);
        let mut src = std::fs::File::open(from).map_err(|e| Error::input_io(from, e))?;
        ethos_core::fs::write_atomic(&to, |w| std::io::copy(&mut src, w).map(drop))
            .map_err(|e| Error::output_io(&to, e))
    };
    copy(ckpt, LAST_CKPT)?;
    for name in [BEST_CKPT, "history.csv"] {
        let from = source_dir.join(name);
        if from.is_file() {
            copy(&from, name)?;
        }
    }
    Ok(RunStart {
        run_dir: run_dir.to_path_buf(),
        resume: Some(run_dir.join(LAST_CKPT)),
    })
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path, extra: &[&str]) -> RunConfig {
        let yaml = "data:\n  classes: [ear, tail]\n  events: e.csv\n  splits: {train: t.csv, val: v.csv}\n\
model:\n  arch: r3d_18\n  preset: r3d_demo\ntrain:\n  metric_key: f1_tail\n  run_dir: runs/a\n";
        let sets: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        RunConfig::from_yaml_str(yaml, &dir.join("c.yaml"), &sets).unwrap()
    }

    /// Writes a real (tensor-less) checkpoint: `adopt` refuses files that are not checkpoints.
    fn write_ckpt(path: &Path) {
        let state = ethos_train::checkpoint::TrainState {
            format_version: ethos_train::checkpoint::CHECKPOINT_FORMAT,
            epochs_done: 1,
            global_step: 1,
            best_metric: None,
            best_epoch: None,
            epochs_without_improvement: 0,
            seed: 0,
            config_hash: String::new(),
            scheduler: serde_json::Value::Null,
            scaler: serde_json::Value::Null,
            optimizer: serde_json::Value::Null,
            history: Vec::new(),
            partial_epoch: None,
        };
        ethos_train::checkpoint::save(path, &[], &[], &state, &serde_json::json!({})).unwrap();
    }

    #[test]
    fn a_failed_start_does_not_block_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), &["train.resume=auto"]);
        std::fs::create_dir_all(c.run_dir()).unwrap();
        std::fs::write(c.run_dir().join("config.yaml"), "x").unwrap();
        let s = plan_start(&c, None, None, false).unwrap();
        assert_eq!(s.resume, None);
        let c = cfg(dir.path(), &[]);
        assert_eq!(plan_start(&c, None, None, false).unwrap().resume, None);
    }

    #[test]
    fn a_resume_continues_in_the_checkpoints_own_folder() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), &[]);
        let other = dir.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        write_ckpt(&other.join(LAST_CKPT));
        let s = plan_start(&c, Some(&other.join(LAST_CKPT)), None, false).unwrap();
        assert_eq!(s.run_dir, other);
        assert_eq!(s.resume, Some(other.join(LAST_CKPT)));
        // Into a new folder: the run is copied there first.
        std::fs::write(other.join(BEST_CKPT), "best").unwrap();
        let new = dir.path().join("new");
        let s = plan_start(&c, Some(&other.join(LAST_CKPT)), Some(&new), false).unwrap();
        assert_eq!(s.run_dir, new);
        assert_eq!(std::fs::read(new.join(BEST_CKPT)).unwrap(), b"best");
        assert_eq!(s.resume, Some(new.join(LAST_CKPT)));
        // Never into a folder holding another run.
        let busy = dir.path().join("busy");
        std::fs::create_dir_all(&busy).unwrap();
        std::fs::write(busy.join(BEST_CKPT), "x").unwrap();
        let e = plan_start(&c, Some(&other.join(LAST_CKPT)), Some(&busy), false).unwrap_err();
        assert!(
            e.is_bad_input() && e.to_string().contains("another run"),
            "{e}"
        );
        let e = plan_start(&c, Some(&dir.path().join("nope.ckpt")), None, false).unwrap_err();
        assert!(e.to_string().contains("nope.ckpt"), "{e}");
        // A file that is not a checkpoint is refused before the new folder gets anything.
        let garbage = dir.path().join("garbage.ckpt");
        std::fs::write(&garbage, "not a checkpoint").unwrap();
        let fresh = dir.path().join("fresh");
        let e = plan_start(&c, Some(&garbage), Some(&fresh), false).unwrap_err();
        assert!(
            e.is_bad_input() && e.to_string().contains("garbage.ckpt"),
            "{e}"
        );
        assert!(!fresh.join(LAST_CKPT).exists());
    }

    #[test]
    fn a_fresh_start_refuses_a_run_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), &[]);
        std::fs::create_dir_all(c.run_dir()).unwrap();
        std::fs::write(c.run_dir().join(LAST_CKPT), "ck").unwrap();
        std::fs::write(c.run_dir().join("history.csv"), "h").unwrap();
        assert!(plan_start(&c, None, None, false).is_err());
        plan_start(&c, None, None, true).unwrap();
        assert!(!c.run_dir().join(LAST_CKPT).exists());
        assert!(!c.run_dir().join("history.csv").exists());
        assert!(run_checkpoint(&c.run_dir()).is_err());
    }
}
