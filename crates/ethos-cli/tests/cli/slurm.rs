//! `ethos slurm`: generated scripts are valid bash, and the time-limit logic checkpoints and requeues
//! (run against stand-in `ethos`, `scontrol` and `sbatch` programs).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;

fn ethos() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ethos"))
}

/// A folder with stand-ins: `sbatch` and `scontrol` log their arguments, `ethos` logs its arguments,
/// waits, and on USR1 logs it and exits 0 like the real trainer after saving `last.ckpt`.
fn stand_ins(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join("calls.log");
    let log = log.display();
    common::write_exe(
        &bin.join("sbatch"),
        &format!("#!/bin/bash\necho \"sbatch $*\" >> {log}\necho 'Submitted batch job 4242'\n"),
    );
    common::write_exe(
        &bin.join("scontrol"),
        &format!("#!/bin/bash\necho \"scontrol $*\" >> {log}\n"),
    );
    common::write_exe(
        &bin.join("fake-ethos"),
        &format!(
            "#!/bin/bash\necho \"ethos $*\" >> {log}\n\
             trap 'echo \"ethos got USR1, saved last.ckpt\" >> {log}; exit 0' USR1\n\
             touch {dir}/started\n\
             for i in $(seq 1 300); do sleep 0.1; done\n\
             echo 'ethos finished' >> {log}\n",
            dir = dir.display()
        ),
    );
    bin
}

fn config(dir: &Path) -> PathBuf {
    let cfg = dir.join("train.yaml");
    std::fs::write(&cfg, "data: {}\n").unwrap();
    cfg
}

fn bash_n(script: &Path) {
    let st = Command::new("bash").arg("-n").arg(script).status().unwrap();
    assert!(st.success(), "bash -n {} failed", script.display());
}

#[test]
fn train_script_is_valid_bash_with_signal_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let out = dir.path().join("train.sbatch");
    let st = ethos()
        .args(["slurm", "train", "--config"])
        .arg(&cfg)
        .args([
            "--partition",
            "gpu",
            "--account",
            "lab42",
            "--qos",
            "normal",
            "--time",
            "12:00:00",
        ])
        .args([
            "--gpus",
            "1",
            "--env",
            "module load cuda/12.4",
            "--set",
            "optim.lr=2e-5",
            "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    bash_n(&out);
    let s = std::fs::read_to_string(&out).unwrap();
    for needle in [
        "#SBATCH --partition=gpu",
        "#SBATCH --account=lab42",
        "#SBATCH --qos=normal",
        "#SBATCH --time=12:00:00",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --signal=B:USR1@300",
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
        "module load cuda/12.4",
        "train.resume=auto",
        "optim.lr=2e-5",
        "scontrol requeue",
    ] {
        assert!(s.contains(needle), "script lacks {needle:?}:\n{s}");
    }
}

#[test]
fn predict_array_script_is_valid_bash() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("videos.txt");
    std::fs::write(&list, "a.mp4\nb.mp4\n").unwrap();
    let out = ethos()
        .args([
            "slurm",
            "predict",
            "--checkpoint",
            "run/best.ckpt",
            "--list",
        ])
        .arg(&list)
        .args(["--predict-out", "pred", "--array", "8", "--gpus", "0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout).unwrap();
    let path = dir.path().join("p.sbatch");
    std::fs::write(&path, &s).unwrap();
    bash_n(&path);
    assert!(s.contains("#SBATCH --array=0-7"), "{s}");
    assert!(s.contains("\"${SLURM_ARRAY_TASK_ID}/8\""), "{s}");
    assert!(!s.contains("--gres"), "{s}");
}

fn run_and_signal(script: &Path, dir: &Path, bin: &Path) -> String {
    let path = common::path_with(bin);
    let mut child = Command::new("bash")
        .arg(script)
        .env("PATH", path)
        .env("ETHOS_BIN", bin.join("fake-ethos"))
        .env("SLURM_JOB_ID", "1234")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !dir.join("started").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "stand-in ethos never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // What SLURM does `--signal` seconds before the time limit.
    unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
    let st = child.wait().unwrap();
    assert!(st.success(), "job script exited with {st:?}");
    std::fs::read_to_string(dir.join("calls.log")).unwrap()
}

#[test]
fn time_limit_signal_checkpoints_then_requeues() {
    let dir = tempfile::tempdir().unwrap();
    let bin = stand_ins(dir.path());
    let cfg = config(dir.path());
    let script = dir.path().join("train.sbatch");
    let st = ethos()
        .args(["slurm", "train", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&script)
        .status()
        .unwrap();
    assert!(st.success());
    let log = run_and_signal(&script, dir.path(), &bin);
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines[0].starts_with("ethos train --config") && lines[0].contains("train.resume=auto"),
        "{log}"
    );
    assert_eq!(lines[1], "ethos got USR1, saved last.ckpt", "{log}");
    assert_eq!(lines[2], "scontrol requeue 1234", "{log}");
    assert!(!log.contains("ethos finished"), "{log}");
}

#[test]
fn resubmit_mode_submits_itself_and_submit_flag_calls_sbatch() {
    let dir = tempfile::tempdir().unwrap();
    let bin = stand_ins(dir.path());
    let cfg = config(dir.path());
    let script = dir.path().join("train.sbatch");
    let path = common::path_with(&bin);
    let out = ethos()
        .env("PATH", &path)
        .args([
            "slurm",
            "train",
            "--on-timeout",
            "resubmit",
            "--submit",
            "--config",
        ])
        .arg(&cfg)
        .arg("--out")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Submitted batch job 4242"));
    let log = run_and_signal(&script, dir.path(), &bin);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], format!("sbatch {}", script.display()), "{log}");
    assert_eq!(lines[2], "ethos got USR1, saved last.ckpt", "{log}");
    assert_eq!(lines[3], format!("sbatch {}", script.display()), "{log}");
}

#[test]
fn a_job_that_ends_on_its_own_is_not_requeued() {
    let dir = tempfile::tempdir().unwrap();
    let bin = stand_ins(dir.path());
    common::write_exe(
        &bin.join("fake-ethos"),
        &format!(
            "#!/bin/bash\necho \"ethos $*\" >> {}/calls.log\nexit 3\n",
            dir.path().display()
        ),
    );
    let cfg = config(dir.path());
    let script = dir.path().join("train.sbatch");
    assert!(
        ethos()
            .args(["slurm", "train", "--config"])
            .arg(&cfg)
            .arg("--out")
            .arg(&script)
            .status()
            .unwrap()
            .success()
    );
    let path = common::path_with(&bin);
    let st = Command::new("bash")
        .arg(&script)
        .env("PATH", path)
        .env("ETHOS_BIN", bin.join("fake-ethos"))
        .env("SLURM_JOB_ID", "1234")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(3), "the job's exit code is ethos's");
    let log = std::fs::read_to_string(dir.path().join("calls.log")).unwrap();
    assert!(!log.contains("scontrol"), "{log}");
}

#[test]
fn bad_arguments_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let out = ethos()
        .args(["slurm", "train", "--config"])
        .arg(&cfg)
        .args(["--time", "1h"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--time 1h"));
    let out = ethos()
        .args(["slurm", "train", "--config", "/nonexistent/x.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.yaml"));
}
