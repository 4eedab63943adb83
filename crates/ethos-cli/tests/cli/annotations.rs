//! `ethos import`, `ethos export boris` and `ethos relabel` through the real binary: every kind
//! of problem exits 2 with a message naming the file, the observation (or task, track, line)
//! and the time; policies turn problems into handled, counted cases; and the whole loop runs on
//! `ethos synth` data: export the labels to BORIS → import → train one epoch → predict → export
//! the predictions to BORIS → import them back → relabel.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::common;
use common::{ethos, ok, tmp};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ethos-annotations/tests/fixtures")
        .join(name)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Asserts exit code 2 and returns stderr.
fn bad(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "expected exit 2:\n{err}");
    err
}

/// The v7 BORIS fixture project, edited by `edit`, written to `dir/name`.
fn project_with(dir: &Path, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let mut pj: Value = serde_json::from_str(&read(&fixture("boris_v7.boris"))).unwrap();
    edit(&mut pj);
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec_pretty(&pj).unwrap()).unwrap();
    p
}

fn import_boris(file: &Path, out: &Path, extra: &[&str]) -> Output {
    ethos()
        .args(["import", "boris"])
        .arg(file)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// Rows of a CSV (csv-crate free: the tests' files have no quoted commas).
fn rows(text: &str) -> Vec<HashMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(str::to_string))
                .collect()
        })
        .collect()
}

fn num(r: &HashMap<String, String>, k: &str) -> f64 {
    r[k].parse().unwrap_or_else(|_| panic!("{k} = {:?}", r[k]))
}

#[test]
fn every_kind_of_boris_problem_names_file_observation_and_time() {
    let dir = tmp("annotations-cli", "problems");
    let out = dir.join("events.csv");

    // Unpaired: obs1's last STOP removed → the START at 20 s has no STOP.
    let p = project_with(&dir, "unpaired.boris", |pj| {
        pj["observations"]["obs1"]["events"]
            .as_array_mut()
            .unwrap()
            .pop();
    });
    let err = bad(&import_boris(&p, &out, &[]));
    assert!(err.contains("unpaired.boris"), "{err}");
    assert!(err.contains("observation \"obs1\""), "{err}");
    assert!(err.contains("at 20.000 s"), "{err}");
    assert!(err.contains("START has no STOP"), "{err}");
    assert!(err.contains("--on-unpaired"), "{err}");
    assert!(!out.exists(), "nothing is written on problems");
    // Policies: dropped, or closed at the end of the 60 s file.
    let o = import_boris(&p, &out, &["--on-unpaired", "drop"]);
    ok(&o);
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    let handled = s["handled"].as_array().unwrap();
    assert!(
        handled.iter().any(|h| h["action"] == "dropped"
            && h["problem"].as_str().unwrap().contains("START has no STOP")),
        "{s}"
    );
    let o = import_boris(&p, &out, &["--on-unpaired", "close-at-end"]);
    ok(&o);
    let ev = rows(&read(&out));
    assert!(
        ev.iter().any(|r| r["behavior"] == "ear"
            && (num(r, "start_s") - 20.0).abs() < 1e-9
            && (num(r, "duration_s") - 40.0).abs() < 1e-9),
        "{ev:?}"
    );

    // An event crossing from part1.mp4 into part2.mp4 (obs2: two 30 s files in player 1).
    let p = project_with(&dir, "boundary.boris", |pj| {
        let evs = pj["observations"]["obs2"]["events"].as_array_mut().unwrap();
        evs.push(serde_json::json!([28.0, "calf2", "tail", "", "", "NA"]));
        evs.push(serde_json::json!([33.0, "calf2", "tail", "", "", "NA"]));
        evs.sort_by(|a, b| a[0].as_f64().unwrap().total_cmp(&b[0].as_f64().unwrap()));
    });
    let err = bad(&import_boris(&p, &out, &[]));
    assert!(err.contains("boundary.boris"), "{err}");
    assert!(err.contains("observation \"obs2\""), "{err}");
    assert!(err.contains("28.000 s to 33.000 s"), "{err}");
    assert!(err.contains("--on-boundary"), "{err}");
    ok(&import_boris(&p, &out, &["--on-boundary", "split"]));
    let ev = rows(&read(&out));
    let tails: Vec<_> = ev
        .iter()
        .filter(|r| r["behavior"] == "tail" && r["subject"] == "calf2")
        .collect();
    assert_eq!(tails.len(), 2, "{ev:?}");
    assert!(tails.iter().any(|r| r["video"] == "/data/cam2/part1.mp4"
        && (num(r, "start_s") - 28.0).abs() < 1e-9
        && (num(r, "duration_s") - 2.0).abs() < 1e-9));
    assert!(tails.iter().any(|r| r["video"] == "/data/cam2/part2.mp4"
        && num(r, "start_s") == 0.0
        && (num(r, "duration_s") - 3.0).abs() < 1e-9));

    // A behaviour the ethogram does not declare, a time that is not a number, an event past
    // the end of its media: all listed at once.
    let p = project_with(&dir, "invalid.boris", |pj| {
        let evs = pj["observations"]["obs1"]["events"].as_array_mut().unwrap();
        evs.push(serde_json::json!([30.5, "calf1", "sniff", "", "", 457]));
        evs.push(serde_json::json!(["soon", "calf1", "groom", "", "", 0]));
        evs.push(serde_json::json!([70.25, "calf1", "groom", "", "", 0]));
    });
    let err = bad(&import_boris(&p, &out, &["--point-seconds", "1"]));
    assert!(err.contains("3 problem(s)"), "{err}");
    assert!(err.contains("invalid.boris: observation \"obs1\", event 10, at 30.500 s, value \"sniff\": behaviour code not in the project's ethogram"), "{err}");
    assert!(err.contains("event 11, value \"soon\""), "{err}");
    assert!(err.contains("at 70.250 s"), "{err}");
    assert!(err.contains("starts outside its media"), "{err}");
    let o = import_boris(&p, &out, &["--point-seconds", "1", "--skip-invalid"]);
    ok(&o);
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["handled"].as_array().unwrap().len(), 4, "{s}"); // 3 + the LIVE note

    // Media that is not under --videos-root.
    let videos = dir.join("videos");
    std::fs::create_dir_all(videos.join("cam1")).unwrap();
    std::fs::write(videos.join("cam1/day1.mp4"), b"").unwrap();
    let err = bad(&import_boris(
        &fixture("boris_v7.boris"),
        &out,
        &["--videos-root", videos.to_str().unwrap()],
    ));
    assert!(err.contains("observation \"obs2\""), "{err}");
    assert!(
        err.contains("at 0.000 s to 30.000 s, value \"/data/cam2/part1.mp4\""),
        "{err}"
    );
    assert!(
        err.contains("at 30.000 s to 60.000 s, value \"/data/cam2/part2.mp4\""),
        "{err}"
    );
    let o = import_boris(
        &fixture("boris_v7.boris"),
        &out,
        &[
            "--videos-root",
            videos.to_str().unwrap(),
            "--on-missing-video",
            "skip",
        ],
    );
    ok(&o);
    assert!(
        rows(&read(&out))
            .iter()
            .all(|r| r["video"] == "cam1/day1.mp4")
    );

    // A file that is not BORIS at all, and an XLSX workbook.
    let junk = dir.join("junk.tsv");
    std::fs::write(&junk, "a\tb\n1\t2\n").unwrap();
    let err = bad(&import_boris(&junk, &out, &[]));
    assert!(err.contains("junk.tsv: line 1"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cvat_labelstudio_and_relabel_problems_exit_2_naming_where() {
    let dir = tmp("annotations-cli", "others");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("events.csv");

    // CVAT frames without a frame rate.
    let o = ethos()
        .args(["import", "cvat"])
        .arg(fixture("cvat_video_tracks.xml"))
        .args(["--video", "barn.mp4", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let err = bad(&o);
    assert!(err.contains("cvat_video_tracks.xml: meta"), "{err}");
    assert!(err.contains("--fps"), "{err}");
    let o = ethos()
        .args(["import", "cvat"])
        .arg(fixture("cvat_video_tracks.xml"))
        .args(["--video", "barn.mp4", "--fps", "10", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    ok(&o);
    assert_eq!(rows(&read(&out)).len(), 3);

    // A CVAT track with a label the task does not declare.
    let xml = read(&fixture("cvat_video_tracks.xml")).replace(
        "<track id=\"2\" label=\"tail\">",
        "<track id=\"2\" label=\"sniff\">",
    );
    let bad_xml = dir.join("bad.xml");
    std::fs::write(&bad_xml, xml).unwrap();
    let o = ethos()
        .args(["import", "cvat"])
        .arg(&bad_xml)
        .args(["--video", "barn.mp4", "--fps", "10", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let err = bad(&o);
    assert!(err.contains("bad.xml: track 2, value \"sniff\""), "{err}");

    // Label Studio: a range with its frames reversed (task 1), a whole-video choice without
    // the video's length (task 2).
    let mut tasks: Value = serde_json::from_str(&read(&fixture("labelstudio_video.json"))).unwrap();
    tasks[0]["annotations"][0]["result"][0]["value"]["ranges"][0] =
        serde_json::json!({"start": 45, "end": 16});
    let ls = dir.join("ls.json");
    std::fs::write(&ls, serde_json::to_vec(&tasks).unwrap()).unwrap();
    let o = ethos()
        .args(["import", "labelstudio"])
        .arg(&ls)
        .arg("--label-config")
        .arg(fixture("labelstudio_config.xml"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = bad(&o);
    assert!(
        err.contains("ls.json: task 1, result a1, at frames {\"end\":16,\"start\":45}"),
        "{err}"
    );
    assert!(err.contains("ls.json: task 2, result c1"), "{err}");

    // Relabel: unknown event, unknown class, a duplicate row, all at once.
    let events = dir.join("ev.csv");
    std::fs::write(
        &events,
        "event_idx,video,start_s,duration_s,behavior\n1,a.mp4,0,1,ear\n2,a.mp4,2,1,tail\n3,b.mp4,0,2,ear\n",
    )
    .unwrap();
    let corr = dir.join("corrections.csv");
    std::fs::write(
        &corr,
        "event_idx,action,note\n1,tail,\n9,drop,gone\n2,sniff,\n1,drop,again\n",
    )
    .unwrap();
    let o = ethos()
        .args(["relabel", "--events"])
        .arg(&events)
        .arg("--corrections")
        .arg(&corr)
        .arg("--out")
        .arg(dir.join("ev2.csv"))
        .output()
        .unwrap();
    let err = bad(&o);
    assert!(err.contains("3 problem(s)"), "{err}");
    assert!(
        err.contains("corrections.csv: line 3, column event_idx, value \"9\": unknown event_idx"),
        "{err}"
    );
    assert!(
        err.contains("line 4, column action, value \"sniff\": unknown class"),
        "{err}"
    );
    assert!(
        err.contains(
            "line 5, column event_idx, value \"1\": event corrected twice (first on line 2)"
        ),
        "{err}"
    );
    assert!(!dir.join("ev2.csv").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// (video, start ms, duration ms, behaviour) of an events CSV, sorted.
fn bouts(path: &Path) -> Vec<(String, i64, i64, String)> {
    let mut v: Vec<_> = rows(&read(path))
        .iter()
        .map(|r| {
            (
                r["video"].clone(),
                (num(r, "start_s") * 1000.0).round() as i64,
                (num(r, "duration_s") * 1000.0).round() as i64,
                r["behavior"].clone(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn synth_labels_to_boris_and_back_train_predict_review_and_relabel() {
    let dir = tmp("annotations-cli", "loop");
    let data = dir.join("data");
    ok(&ethos()
        .args(["synth", "--out"])
        .arg(&data)
        .args([
            "--events",
            "12",
            "--long-video",
            "20",
            "--long-video-size",
            "64",
            "--resolution",
            "160x96",
            "--fps",
            "10",
            "--minutes",
            "0.5",
            "--imbalance",
            "2",
            "--codec",
            "mpeg4",
            "--seed",
            "3",
        ])
        .output()
        .unwrap());
    let videos = data.join("videos");

    // Labelled events without overlaps of one class in one video (BORIS pairs START/STOP per
    // behaviour; two calves at once would need subjects).
    let text = read(&data.join("events.csv"));
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let cols: Vec<&str> = header.split(',').collect();
    let at = |n: &str| cols.iter().position(|c| *c == n).unwrap();
    let mut kept: Vec<&str> = Vec::new();
    let mut ends: HashMap<(String, String), f64> = HashMap::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let k = (f[at("video")].to_string(), f[at("behavior")].to_string());
        let s: f64 = f[at("start_s")].parse().unwrap();
        let e = s + f[at("duration_s")].parse::<f64>().unwrap();
        if ends.get(&k).is_some_and(|&end| s < end) {
            continue;
        }
        ends.insert(k, e);
        kept.push(l);
    }
    let labels = dir.join("labels.csv");
    std::fs::write(&labels, format!("{header}\n{}\n", kept.join("\n"))).unwrap();

    // Labels → BORIS project → import: the same events (times in ms), group and camera kept.
    let project = dir.join("labels.boris");
    let o = ethos()
        .args(["export", "boris", "--events"])
        .arg(&labels)
        .arg("--videos-root")
        .arg(&videos)
        .arg("--out")
        .arg(&project)
        .output()
        .unwrap();
    ok(&o);
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["events"].as_u64(), Some(kept.len() as u64), "{s}");
    let imported = dir.join("imported.csv");
    let o = import_boris(
        &project,
        &imported,
        &[
            "--videos-root",
            videos.to_str().unwrap(),
            "--splits",
            "train=0.5,val=0.5",
            "--seed",
            "1",
        ],
    );
    ok(&o);
    assert_eq!(bouts(&imported), bouts(&labels));
    let back = rows(&read(&imported));
    assert!(
        back.iter()
            .all(|r| r["group"].starts_with("pen") && r["camera"].starts_with("cam"))
    );
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        s["splits"]["train"].as_u64().unwrap() > 0 && s["splits"]["val"].as_u64().unwrap() > 0,
        "{s}"
    );

    // Train one epoch on the imported events and splits.
    let run = dir.join("run");
    let mut train = ethos();
    train
        .args(["train", "--config"])
        .arg(data.join("config.yaml"));
    for s in [
        "data.input_size=32",
        "data.cache_short_side=40",
        "data.num_frames=4",
        "data.fps=4",
        "data.batch_size=4",
        "model.arch=r3d_18",
        "model.preset=r3d_demo",
        "train.epochs=1",
        "train.device=cpu",
    ] {
        train.args(["--set", s]);
    }
    let split = |n: &str| dir.join(format!("imported.{n}.csv"));
    train
        .arg("--set")
        .arg(format!("data.events={}", imported.display()))
        .arg("--set")
        .arg(format!("data.splits.train={}", split("train").display()))
        .arg("--set")
        .arg(format!("data.splits.val={}", split("val").display()))
        .arg("--set")
        .arg(format!("data.splits.test_ood={}", split("val").display()))
        .arg("--set")
        .arg(format!("train.run_dir={}", run.display()));
    ok(&train.output().unwrap());
    let ckpt = ["best.ckpt", "last.ckpt"]
        .iter()
        .map(|f| run.join(f))
        .find(|p| p.is_file())
        .expect("a checkpoint");

    // Predict the long video; threshold 0 makes every class one bout, so there is something to
    // review whatever one epoch learned.
    let pred = dir.join("pred");
    let long = data.join("long/closeup.mp4");
    ok(&ethos()
        .args(["predict", "--checkpoint"])
        .arg(&ckpt)
        .arg("--out")
        .arg(&pred)
        .args(["--stride", "0.5", "--threshold", "0", "--min-duration", "0"])
        .arg(&long)
        .output()
        .unwrap());
    let pred_events = pred.join("closeup.mp4.events.csv");
    let predicted = bouts(&pred_events);
    assert!(!predicted.is_empty());

    // Predictions → BORIS (one observation, score as comment) → import: the same bouts.
    let review = dir.join("review.boris.gz");
    ok(&ethos()
        .args(["export", "boris", "--events"])
        .arg(&pred_events)
        .arg("--out")
        .arg(&review)
        .output()
        .unwrap());
    let pj: Value = serde_json::from_str(&gunzip(&review)).unwrap();
    assert_eq!(pj["project_format_version"], "7.0");
    assert_eq!(pj["observations"].as_object().unwrap().len(), 1);
    let reviewed = dir.join("reviewed.csv");
    ok(&import_boris(&review, &reviewed, &[]));
    let round: Vec<_> = bouts(&reviewed);
    assert_eq!(round.len(), predicted.len());
    for (a, b) in round.iter().zip(&predicted) {
        assert_eq!((&a.0, &a.3), (&b.0, &b.3));
        assert!(
            (a.1 - b.1).abs() <= 1 && (a.2 - b.2).abs() <= 1,
            "{a:?} vs {b:?}"
        );
    }

    // The reviewer's corrections: relabel the first event, drop the second (if any).
    let corr = dir.join("corrections.csv");
    let first = rows(&read(&reviewed));
    let other = if first[0]["behavior"] == "ear" {
        "tail"
    } else {
        "ear"
    };
    let mut text = format!(
        "event_idx,action,note\n{},{other},looked again\n",
        first[0]["event_idx"]
    );
    if first.len() > 1 {
        text.push_str(&format!("{},drop,\n", first[1]["event_idx"]));
    }
    std::fs::write(&corr, text).unwrap();
    let v2 = dir.join("reviewed.v2.csv");
    let o = ethos()
        .args(["relabel", "--events"])
        .arg(&reviewed)
        .arg("--corrections")
        .arg(&corr)
        .arg("--out")
        .arg(&v2)
        .output()
        .unwrap();
    ok(&o);
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["relabelled"], 1, "{s}");
    let after = rows(&read(&v2));
    assert_eq!(after.len(), first.len() - usize::from(first.len() > 1));
    assert_eq!(after[0]["behavior"], other);
    assert_eq!(after[0]["event_idx"], first[0]["event_idx"]);
    let changes = rows(&read(&dir.join("reviewed.v2.changes.csv")));
    assert_eq!(changes[0]["new_behavior"], other);
    assert_eq!(changes[0]["note"], "looked again");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A gzip file's text, inflated by the system's `gzip` (an independent reader).
fn gunzip(path: &Path) -> String {
    let o = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(path)
        .output()
        .expect("gzip");
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap()
}
