//! The generated SLURM script loses no time-limit signal: a USR1 that reaches the batch shell after
//! its trap is set but before it knows the pid of `ethos` (the window between starting ethos in the
//! background and `child=$!`, or before ethos installs its handler) is still forwarded, so ethos
//! stops and the job is requeued instead of running into the hard time limit.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;

#[test]
fn a_signal_before_the_child_pid_is_known_is_forwarded() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = d.join("calls.log");
    let log = log.display();
    common::write_exe(
        &bin.join("scontrol"),
        &format!("#!/bin/bash\necho \"scontrol $*\" >> {log}\n"),
    );
    common::write_exe(
        &bin.join("sbatch"),
        &format!("#!/bin/bash\necho \"sbatch $*\" >> {log}\n"),
    );
    // Stand-in ethos: the time-limit signal reaches the batch shell at the very moment ethos
    // starts (it signals its parent first thing, before the shell may have run `child=$!` and
    // before its own handler exists); then it handles USR1 like the trainer (checkpoint, exit 0),
    // else runs 30 s.
    common::write_exe(
        &bin.join("fake-ethos"),
        &format!(
            "#!/bin/bash\nkill -USR1 $PPID\n\
             trap 'echo \"ethos got USR1\" >> {log}; exit 0' USR1\n\
             echo \"ethos $*\" >> {log}\n\
             for i in $(seq 1 300); do sleep 0.1; done\n\
             echo 'ethos finished' >> {log}\n"
        ),
    );
    let cfg = d.join("train.yaml");
    std::fs::write(&cfg, "data: {}\n").unwrap();
    let script = d.join("train.sbatch");
    let st = Command::new(env!("CARGO_BIN_EXE_ethos"))
        .args(["slurm", "train", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&script)
        .status()
        .unwrap();
    assert!(st.success());
    let path = common::path_with(&bin);
    let t0 = Instant::now();
    let st = Command::new("bash")
        .arg(&script)
        .env("PATH", path)
        .env("ETHOS_BIN", bin.join("fake-ethos"))
        .env("SLURM_JOB_ID", "77")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let took = t0.elapsed();
    let calls = std::fs::read_to_string(d.join("calls.log")).unwrap_or_default();
    assert!(st.success(), "job script exited with {st:?}:\n{calls}");
    // Forwarded: ethos stopped (by its handler, or by the signal's default action when it came
    // before the handler was installed) instead of running to its end.
    assert!(!calls.contains("ethos finished"), "signal lost:\n{calls}");
    assert!(took < Duration::from_secs(20), "took {took:?}:\n{calls}");
    assert!(
        calls.lines().any(|l| l == "scontrol requeue 77"),
        "not requeued:\n{calls}"
    );
}
