//! Gloo process groups across real processes: this test binary starts itself once per rank (the
//! ignored `rank_process` test, selected by the ETHOS_DIST_TEST_SCENARIO variable) and checks what
//! the ranks report.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ethos_dist::{Backend, DistError, GroupOptions, ProcessGroup, Rendezvous, RendezvousSource};
use tch::{Device, Kind, Tensor};

const SCENARIO: &str = "ETHOS_DIST_TEST_SCENARIO";

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local address").port()
}

/// The rank processes of one test, killed when the test ends (also when it fails).
struct Ranks(Vec<Child>);

impl Ranks {
    fn start(scenario: &str, world: usize) -> Ranks {
        let port = free_port();
        Ranks(
            (0..world)
                .map(|r| spawn_rank(scenario, r, world, port))
                .collect(),
        )
    }
}

impl Drop for Ranks {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn_rank(scenario: &str, rank: usize, world: usize, port: u16) -> Child {
    Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            "rank_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SCENARIO, scenario)
        .env("RANK", rank.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("WORLD_SIZE", world.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .env("OMP_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a rank process")
}

/// Lines of a child's stdout, forwarded through a channel as they arrive.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// Waits for a child up to `limit`; kills it and fails the test when it overruns.
fn wait_within(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{what} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for a line holding `marker` (or the channel's end) up to `limit`. libtest may print
/// `test rank_process ... ` in front of the rank's first line.
fn wait_line(rx: &mpsc::Receiver<String>, marker: &str, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(marker) => return Some(line),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

#[test]
fn two_ranks_all_reduce_broadcast_and_gather_correctly() {
    let mut ranks = Ranks::start("collectives", 2);
    let outputs: Vec<_> = ranks.0.iter_mut().map(lines_of).collect();
    for (r, child) in ranks.0.iter_mut().enumerate() {
        let status = wait_within(child, Duration::from_secs(120), &format!("rank {r}"));
        let err = stderr_of(child);
        assert!(status.success(), "rank {r} failed: {status}\n{err}");
        assert!(
            wait_line(&outputs[r], "collectives ok", Duration::from_secs(1)).is_some(),
            "rank {r} did not report success\n{err}"
        );
    }
}

#[test]
fn a_killed_rank_makes_the_other_fail_within_the_timeout_naming_it() {
    let mut guard = Ranks::start("die", 2);
    let ranks = &mut guard.0;
    let out0 = lines_of(&mut ranks[0]);
    let out1 = lines_of(&mut ranks[1]);
    assert!(
        wait_line(&out1, "ready", Duration::from_secs(60)).is_some(),
        "rank 1 never got ready: {}",
        stderr_of(&mut ranks[1])
    );
    // Rank 0 is blocked in an all-reduce that rank 1 never joins; kill rank 1 now.
    std::thread::sleep(Duration::from_millis(300));
    let killed_at = Instant::now();
    ranks[1].kill().expect("kill rank 1");
    let _ = ranks[1].wait();
    // DIE_TIMEOUT_S in the rank process: the failure must be reported well within it.
    let status = wait_within(&mut ranks[0], Duration::from_secs(20), "rank 0");
    let elapsed = killed_at.elapsed();
    assert!(!status.success(), "rank 0 must fail after losing rank 1");
    let line = wait_line(&out0, "error:", Duration::from_secs(1)).unwrap_or_default();
    assert!(
        line.contains("rank 0: all_reduce failed: rank 1 stopped responding"),
        "rank 0 reported: {line:?}\n{}",
        stderr_of(&mut ranks[0])
    );
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
}

#[test]
fn a_rank_that_stays_away_from_a_collective_is_named_at_the_timeout() {
    let mut guard = Ranks::start("lag", 2);
    let ranks = &mut guard.0;
    let out0 = lines_of(&mut ranks[0]);
    let status = wait_within(&mut ranks[0], Duration::from_secs(60), "rank 0");
    let err = stderr_of(&mut ranks[0]);
    let line = wait_line(&out0, "error:", Duration::from_secs(1)).unwrap_or_default();
    assert!(!status.success(), "rank 0 must time out\n{err}");
    assert!(
        line.contains("timed out") && line.contains("waiting for rank 1"),
        "rank 0 reported: {line:?}\n{err}"
    );
}

#[test]
fn a_rank_that_never_starts_is_named_by_the_join_timeout() {
    let rdv = Rendezvous {
        rank: 0,
        local_rank: 0,
        world_size: 3,
        nodes: 1,
        master_addr: "127.0.0.1".into(),
        master_port: free_port(),
        source: RendezvousSource::Torchrun,
    };
    let err = ProcessGroup::new(Backend::Gloo, &rdv, Duration::from_millis(500))
        .expect_err("ranks 1 and 2 never join");
    assert!(
        matches!(&err, DistError::JoinTimeout { missing, .. } if missing == &[1, 2]),
        "{err}"
    );
}

fn ramp(n: i64, offset: f64, kind: Kind) -> Tensor {
    (Tensor::arange(n, (Kind::Double, Device::Cpu)) + offset).to_kind(kind)
}

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).reshape([-1])).expect("f64 values")
}

fn collectives(pg: &ProcessGroup) {
    let r = pg.rank() as f64;
    // Mixed shapes, dtypes and a non-contiguous tensor; 64-byte buckets force several buckets.
    let mut ts = vec![
        ramp(6, 10.0 * r, Kind::Float).view([2, 3]).tr(),
        ramp(5, r, Kind::Double),
        Tensor::from_slice(&[pg.rank() as i64 + 1]),
        ramp(40, r, Kind::Float),
    ];
    pg.all_reduce_sum(&mut ts).expect("all_reduce_sum");
    // Sums over ranks 0 and 1: (x + 0) + (x + offset).
    let expect = |n: i64, off: f64| values(&(ramp(n, 0.0, Kind::Double) * 2.0 + off));
    assert_eq!(
        values(&ts[0]),
        values(&(ramp(6, 0.0, Kind::Double) * 2.0 + 10.0).view([2, 3]).tr())
    );
    assert_eq!(values(&ts[1]), expect(5, 1.0));
    assert_eq!(values(&ts[2]), [3.0]);
    assert_eq!(values(&ts[3]), expect(40, 1.0));
    let mut mean = vec![ramp(7, r, Kind::Float)];
    pg.all_reduce_mean(&mut mean).expect("all_reduce_mean");
    assert_eq!(values(&mean[0]), values(&ramp(7, 0.5, Kind::Double)));

    let mut b = vec![ramp(4, 100.0 * r, Kind::Float), ramp(3, -r, Kind::Int64)];
    pg.broadcast(&mut b, 1).expect("broadcast");
    assert_eq!(values(&b[0]), values(&ramp(4, 100.0, Kind::Double)));
    assert_eq!(values(&b[1]), [-1.0, 0.0, 1.0]);

    // Unequal lengths along dimension 0: rank r holds r + 2 rows.
    let rows = pg.rank() as i64 + 2;
    let mine = ramp(rows * 3, 1000.0 * r, Kind::Float).view([rows, 3]);
    let all = pg.all_gather(&mine).expect("all_gather");
    assert_eq!(all.len(), 2);
    for (q, t) in all.iter().enumerate() {
        let n = q as i64 + 2;
        assert_eq!(t.size(), [n, 3]);
        assert_eq!(
            values(t),
            values(&ramp(n * 3, 1000.0 * q as f64, Kind::Double))
        );
    }
    // A trailing shape that differs between ranks is refused on both, naming the other rank.
    let odd = Tensor::zeros([2, 3 + pg.rank() as i64], (Kind::Float, Device::Cpu));
    let err = pg.all_gather(&odd).expect_err("shapes differ");
    let other = 1 - pg.rank();
    assert!(
        err.to_string().contains(&format!("rank {other} gathered")),
        "{err}"
    );
    pg.barrier().expect("barrier");
}

const DIE_TIMEOUT_S: u64 = 30;

#[test]
#[ignore = "a rank process of the multi-process tests above; they start it with ETHOS_DIST_TEST_SCENARIO"]
fn rank_process() {
    let Ok(scenario) = std::env::var(SCENARIO) else {
        return;
    };
    tch::set_num_threads(1);
    let rdv = Rendezvous::from_env().expect("rendezvous from the environment");
    let mut opts = GroupOptions::new(Duration::from_secs(60));
    opts.bucket_bytes = 64;
    opts.heartbeat_interval = Duration::from_millis(500);
    match scenario.as_str() {
        "collectives" => {
            let pg = ProcessGroup::with_options(Backend::Gloo, &rdv, &opts).expect("group");
            collectives(&pg);
            let rank = pg.rank();
            pg.shutdown().expect("shutdown");
            println!("collectives ok rank {rank}");
        }
        "die" => {
            opts.timeout = Duration::from_secs(DIE_TIMEOUT_S);
            let pg = ProcessGroup::with_options(Backend::Gloo, &rdv, &opts).expect("group");
            pg.barrier().expect("barrier");
            if pg.rank() == 1 {
                println!("ready");
                std::thread::sleep(Duration::from_secs(120));
                return;
            }
            let mut t = vec![Tensor::ones([1000], (Kind::Float, Device::Cpu))];
            match pg.all_reduce_sum(&mut t) {
                Ok(()) => println!("unexpected success"),
                Err(e) => println!("error: {e}"),
            }
            std::process::exit(3);
        }
        "lag" => {
            opts.timeout = Duration::from_secs(3);
            let pg = ProcessGroup::with_options(Backend::Gloo, &rdv, &opts).expect("group");
            pg.barrier().expect("barrier");
            if pg.rank() == 1 {
                // Alive (heartbeat running) but never joins the next collective.
                std::thread::sleep(Duration::from_secs(60));
                return;
            }
            let mut t = vec![Tensor::ones([10], (Kind::Float, Device::Cpu))];
            match pg.all_reduce_sum(&mut t) {
                Ok(()) => println!("unexpected success"),
                Err(e) => println!("error: {e}"),
            }
            std::process::exit(3);
        }
        other => panic!("unknown scenario {other}"),
    }
}
