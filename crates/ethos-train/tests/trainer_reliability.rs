//! The trainer's guarantees, on a tiny R3D and synthetic batches that depend only on (epoch,
//! position):
//!
//! - a trainer killed with SIGKILL at seeded random moments (inside an epoch, before the first
//!   checkpoint, or while a checkpoint is written) and resumed from its `last.ckpt` ends with
//!   weights, optimiser state and history bit-identical to an uninterrupted run, and leaves no
//!   temporary file behind;
//! - early stopping ends the run after `train.early_stopping_patience` epochs without improvement;
//! - `best.ckpt` holds the weights of the epoch with the best `train.metric_key`;
//! - a loss that stops being finite is an error naming epoch and batch, and keeps the last good
//!   checkpoint.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use ethos_eval::metrics::MetricKey;
use ethos_models::config::{Arch, ModelConfig};
use ethos_models::{Layout, VideoModel};
use ethos_train::checkpoint::{self, Checkpoint};
use ethos_train::config::TrainConfig;
use ethos_train::loss::LossConfig;
use ethos_train::optim::{Accumulation, AdamW, OptimConfig};
use ethos_train::schedule::SchedConfig;
use ethos_train::trainer::{
    BatchSource, FitOutcome, HostBatch, SourceError, Trainer, TrainerSetup,
};
use rand::{Rng, SeedableRng};
use tch::{Device, Tensor, nn};

const CLASSES: [&str; 2] = ["ear", "tail"];
const BATCH: usize = 4;
const SHAPE: [usize; 5] = [BATCH, 3, 4, 16, 16];
/// The environment variable that turns the child test into the trainer to be killed.
const CHILD_ENV: &str = "ETHOS_TRAINER_KILL_CHILD";

/// libtorch's generator and thread count are process-wide: tests that train take turns (under
/// `cargo test`, which runs the tests of a binary as threads of one process).
static TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    TRAINING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Synthetic batches: noise plus a class-dependent offset, drawn from (split, epoch, position).
struct Synth {
    split: &'static str,
    batches: usize,
    /// Written with `epoch batch` before each batch is handed out (the child's progress).
    progress: Option<PathBuf>,
    /// Pause per batch, so a parent can kill the child at a chosen batch.
    pause: Duration,
    /// Non-finite inputs from this batch of epoch 0 on (the non-finite-loss test).
    nan_from: Option<usize>,
}

impl Synth {
    fn new(split: &'static str, batches: usize) -> Synth {
        Synth {
            split,
            batches,
            progress: None,
            pause: Duration::ZERO,
            nan_from: None,
        }
    }

    fn batch(&self, epoch: u64, i: usize) -> HostBatch {
        let salt = if self.split == "train" { 1 } else { 2 };
        // Validation data does not change between epochs.
        let epoch = if self.split == "train" { epoch } else { 0 };
        let mut rng =
            rand_chacha::ChaCha8Rng::seed_from_u64(salt * 1_000_003 + epoch * 1009 + i as u64);
        let labels: Vec<usize> = (0..BATCH).map(|k| (i + k) % 2).collect();
        let per = SHAPE[1..].iter().product::<usize>();
        let mut data = Vec::with_capacity(BATCH * per);
        for &l in &labels {
            for _ in 0..per {
                data.push(rng.random::<f32>() - 0.5 + 0.4 * l as f32);
            }
        }
        if self.nan_from.is_some_and(|n| epoch == 0 && i >= n) {
            data[0] = f32::NAN;
        }
        HostBatch {
            inputs: data.into(),
            shape: SHAPE,
            layout: Layout::Bcthw,
            labels,
            event_idx: (0..BATCH).map(|k| (i * BATCH + k) as u32).collect(),
        }
    }
}

impl BatchSource for Synth {
    fn split(&self) -> &str {
        self.split
    }
    fn num_batches(&self) -> usize {
        self.batches
    }
    fn num_samples(&self) -> usize {
        self.batches * BATCH
    }
    fn batches(
        &self,
        epoch: u64,
        start: usize,
    ) -> Box<dyn Iterator<Item = Result<HostBatch, SourceError>> + '_> {
        Box::new((start..self.batches).map(move |i| {
            if let Some(p) = &self.progress {
                std::fs::write(p, format!("{epoch} {i}\n"))
                    .map_err(|e| Box::new(e) as SourceError)?;
            }
            std::thread::sleep(self.pause);
            Ok(self.batch(epoch, i))
        }))
    }
}

/// What one training call is asked to do.
struct Plan<'a> {
    dir: &'a Path,
    epochs: usize,
    patience: usize,
    min_delta: f64,
    metric: &'a str,
    stop_after_epochs: Option<usize>,
    resume: bool,
}

impl<'a> Plan<'a> {
    fn new(dir: &'a Path) -> Plan<'a> {
        Plan {
            dir,
            epochs: 3,
            patience: 0,
            min_delta: 0.0,
            metric: "val_loss",
            stop_after_epochs: None,
            resume: false,
        }
    }
}

/// Trains as planned; returns the outcome and the model's tensors by name.
fn train(
    plan: &Plan,
    train_src: &Synth,
    val_src: &Synth,
) -> Result<(FitOutcome, Vec<(String, Tensor)>), ethos_train::trainer::TrainError> {
    tch::set_num_threads(1);
    let classes: Vec<String> = CLASSES.map(String::from).to_vec();
    let mut train_cfg = TrainConfig {
        epochs: plan.epochs,
        seed: 11,
        early_stopping_patience: plan.patience,
        min_delta: plan.min_delta,
        metric_key: plan.metric.into(),
        log_every_steps: 1000,
        ..TrainConfig::default()
    };
    train_cfg.run_dir = Some(plan.dir.to_path_buf());
    tch::manual_seed(11);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model_cfg = ModelConfig {
        arch: Arch::R3d18,
        preset: Some("r3d_demo".into()),
        head_dropout: 0.3,
        ..ModelConfig::default()
    };
    let model: Box<dyn VideoModel> =
        ethos_models::factory::build_from_config(&model_cfg, classes.len(), &mut vs).unwrap();
    let optim_cfg = OptimConfig {
        lr: 3e-3,
        ..OptimConfig::default()
    };
    let optim = AdamW::from_var_store(&vs, &optim_cfg).unwrap();
    let schedule = SchedConfig::default()
        .build(optim_cfg.lr, plan.epochs, train_src.num_batches())
        .unwrap();
    let setup = TrainerSetup {
        classes: classes.clone(),
        train: train_cfg,
        metric_key: MetricKey::parse(plan.metric, &classes).unwrap(),
        loss: LossConfig::default().build(vec![1.0, 1.0]).unwrap(),
        mixup_alpha: Some(0.4),
        accumulation: Accumulation { steps: 1 },
        schedule,
        grad_clip: Some(1.0),
        device: Device::Cpu,
        clip_aggregation: model_cfg.clip_aggregation,
        run_dir: plan.dir.to_path_buf(),
        config_json: serde_json::json!({"test": "trainer_reliability"}),
        config_hash: "test".into(),
        stop_after_epochs: plan.stop_after_epochs,
    };
    let last = plan.dir.join("last.ckpt");
    let resume = if plan.resume && last.exists() {
        Some((last.clone(), checkpoint::load(&last).unwrap()))
    } else {
        None
    };
    std::fs::create_dir_all(plan.dir).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tr = Trainer::new(setup, &vs, model.as_ref(), optim, resume, stop)?;
    let outcome = tr.fit(train_src, val_src)?;
    drop(tr);
    Ok((outcome, checkpoint::varstore_tensors(&vs)))
}

fn same_tensors(a: &[(String, Tensor)], b: &[(String, Tensor)], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: tensor count");
    let mut a: Vec<_> = a.iter().collect();
    let mut b: Vec<_> = b.iter().collect();
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb, "{what}");
        assert!(ta.equal(tb), "{what}: tensor `{na}` differs");
    }
}

/// The history without the timing columns (which differ between any two runs).
fn history(ck: &Checkpoint) -> Vec<String> {
    ck.state
        .history
        .iter()
        .map(|r| {
            format!(
                "{} {:e} {:e} {:e} {:?} {:e}",
                r.epoch, r.lr, r.train_loss, r.val_loss, r.val_metrics, r.train_macro_f1
            )
        })
        .collect()
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".ethos-tmp."))
        .collect()
}

/// The child half of the kill test: trains slowly, reporting progress, until it is killed.
#[test]
fn kill_child_trainer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let mut t = Synth::new("train", 6);
    t.progress = Some(dir.join("progress"));
    t.pause = Duration::from_millis(15);
    let v = Synth::new("val", 2);
    let _ = train(&Plan::new(&dir.join("run")), &t, &v);
}

/// Starts the child trainer on `dir` and kills it with SIGKILL once its progress reaches
/// (`epoch`, `batch`), or after `ms` milliseconds when that comes first.
fn kill_child_at(dir: &Path, epoch: u64, batch: usize, ms: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let _ = std::fs::remove_file(dir.join("progress"));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill_child_trainer",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        let reached = std::fs::read_to_string(dir.join("progress"))
            .ok()
            .and_then(|s| {
                let mut it = s.split_whitespace().map(|w| w.parse::<u64>().ok());
                Some((it.next()??, it.next()?? as usize))
            })
            .is_some_and(|p| p >= (epoch, batch));
        if reached || t0.elapsed() >= Duration::from_millis(ms) {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // SIGKILL: no handler, no destructor, possibly in the middle of a checkpoint write.
    let _ = child.kill();
    child.wait().unwrap();
}

#[test]
fn killed_at_random_moments_and_resumed_equals_the_uninterrupted_run() {
    let _turn = one_at_a_time();
    let root = tempfile::tempdir().unwrap();
    let t = Synth::new("train", 6);
    let v = Synth::new("val", 2);
    let full = root.path().join("full");
    let (outcome, reference) = train(&Plan::new(&full), &t, &v).unwrap();
    assert!(
        matches!(outcome, FitOutcome::Finished { epochs: 3, .. }),
        "{outcome:?}"
    );
    let reference_ck = checkpoint::load(&full.join("last.ckpt")).unwrap();

    // Seeded kill points: mid-epoch in the first epoch (no checkpoint yet), inside later epochs,
    // and by time alone (which may land in a checkpoint write or in validation).
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
    let mut points: Vec<(u64, usize, u64)> = vec![(0, 2, 60_000), (1, 3, 60_000)];
    for _ in 0..2 {
        points.push((rng.random_range(0..3), rng.random_range(0..6), 60_000));
    }
    points.push((99, 0, rng.random_range(300..1500)));
    for (k, &(epoch, batch, ms)) in points.iter().enumerate() {
        let dir = root.path().join(format!("killed{k}"));
        kill_child_at(&dir, epoch, batch, ms);
        let run = dir.join("run");
        let progress = std::fs::read_to_string(dir.join("progress")).unwrap_or_default();
        let before = checkpoint::load(&run.join("last.ckpt")).ok();
        if epoch == 0 {
            assert!(
                before.is_none(),
                "killed at {progress}: no checkpoint expected yet"
            );
        }
        // Resumed (or, with no checkpoint yet, started again) to the end.
        let mut plan = Plan::new(&run);
        plan.resume = true;
        let (outcome, weights) = train(&plan, &t, &v).unwrap();
        assert!(
            matches!(outcome, FitOutcome::Finished { epochs: 3, .. }),
            "kill point {k} ({progress}): {outcome:?}"
        );
        same_tensors(
            &weights,
            &reference,
            &format!("kill point {k} ({progress})"),
        );
        let ck = checkpoint::load(&run.join("last.ckpt")).unwrap();
        assert_eq!(history(&ck), history(&reference_ck), "kill point {k}");
        same_tensors(&ck.optim, &reference_ck.optim, "optimiser state");
        assert_eq!(
            temp_files(&run),
            Vec::<String>::new(),
            "kill point {k}: stray files"
        );
    }
}

#[test]
fn early_stopping_ends_the_run_and_best_ckpt_is_the_best_epoch() {
    let _turn = one_at_a_time();
    let root = tempfile::tempdir().unwrap();
    let t = Synth::new("train", 4);
    let v = Synth::new("val", 2);

    // No epoch after the first improves by more than min_delta: patience 1 stops after epoch 2.
    let dir = root.path().join("early");
    let mut plan = Plan::new(&dir);
    plan.epochs = 6;
    plan.patience = 1;
    plan.min_delta = 1e6;
    let (outcome, _) = train(&plan, &t, &v).unwrap();
    let FitOutcome::Finished {
        epochs,
        early_stopped,
        best,
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!((epochs, early_stopped), (2, true));
    assert_eq!(best.map(|b| b.1), Some(1));
    assert_eq!(
        checkpoint::load(&dir.join("best.ckpt"))
            .unwrap()
            .state
            .epochs_done,
        1
    );
    assert_eq!(
        checkpoint::load(&dir.join("last.ckpt"))
            .unwrap()
            .state
            .epochs_done,
        2
    );

    // Without early stopping, best.ckpt is the epoch with the lowest val_loss (first one on a
    // tie), with exactly that epoch's weights.
    let dir = root.path().join("best");
    let mut plan = Plan::new(&dir);
    plan.epochs = 4;
    let (outcome, _) = train(&plan, &t, &v).unwrap();
    let last = checkpoint::load(&dir.join("last.ckpt")).unwrap();
    let losses: Vec<f64> = last.state.history.iter().map(|r| r.val_loss).collect();
    let mut best_epoch = 1;
    for (i, &l) in losses.iter().enumerate() {
        if l < losses[best_epoch - 1] {
            best_epoch = i + 1;
        }
    }
    let FitOutcome::Finished { best, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        best,
        Some((losses[best_epoch - 1], best_epoch)),
        "{losses:?}"
    );
    let best_ck = checkpoint::load(&dir.join("best.ckpt")).unwrap();
    assert_eq!(best_ck.state.epochs_done, best_epoch, "{losses:?}");
    // The same run stopped after `best_epoch` epochs has those weights in its last.ckpt.
    let upto = root.path().join("upto");
    let mut plan = Plan::new(&upto);
    plan.epochs = 4;
    plan.stop_after_epochs = Some(best_epoch);
    train(&plan, &t, &v).unwrap();
    let at_best = checkpoint::load(&upto.join("last.ckpt")).unwrap();
    assert_eq!(at_best.state.epochs_done, best_epoch);
    same_tensors(&best_ck.model, &at_best.model, "best.ckpt weights");
}

#[test]
fn a_non_finite_loss_is_an_error_naming_epoch_and_batch() {
    let _turn = one_at_a_time();
    let root = tempfile::tempdir().unwrap();
    let mut t = Synth::new("train", 4);
    t.nan_from = Some(2);
    let v = Synth::new("val", 1);
    let dir = root.path().join("nan");
    let e = match train(&Plan::new(&dir), &t, &v) {
        Err(e) => e,
        Ok((o, _)) => panic!("expected an error, got {o:?}"),
    };
    let msg = e.to_string();
    assert!(
        msg.contains("not finite") && msg.contains("epoch 1, batch 2"),
        "{msg}"
    );
    assert!(matches!(
        e,
        ethos_train::trainer::TrainError::NonFiniteLoss {
            epoch: 1,
            batch: 2,
            ..
        }
    ));
    // Nothing half-written: no checkpoint existed, none appears.
    assert!(!dir.join("last.ckpt").exists());
    assert_eq!(temp_files(&dir), Vec::<String>::new());
}
