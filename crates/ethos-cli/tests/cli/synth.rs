//! `ethos synth`, `ethos probe` on its videos and `ethos extract` (resume, bad manifests), run
//! through the real binary at tiny sizes.

use std::path::Path;
use std::process::{Command, Output};

fn ethos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ethos"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("ethos runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn synth(out: &Path, seed: &str) -> Output {
    ethos(&[
        "synth",
        "--out",
        out.to_str().unwrap(),
        "--seed",
        seed,
        "--cameras",
        "2",
        "--videos-per-camera",
        "1",
        "--events",
        "6",
        "--imbalance",
        "2",
        "--resolution",
        "160x96",
        "--fps",
        "10",
        "--minutes",
        "0.2",
        "--codec",
        "mpeg4",
    ])
}

#[test]
fn synth_probe_extract_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = synth(&data, "5");
    assert!(out.status.success(), "synth failed: {}", stderr(&out));
    for f in [
        "events.csv",
        "splits/train.csv",
        "splits/val.csv",
        "splits/test_ood.csv",
        "config.yaml",
        "videos/cam0_pen0.mp4",
        "videos/cam1_pen0.mp4",
    ] {
        assert!(data.join(f).is_file(), "{f} missing");
    }
    let events = std::fs::read_to_string(data.join("events.csv")).unwrap();
    assert_eq!(events.lines().count(), 7, "{events}");
    // round(6 / 3) = 2 minority events.
    assert_eq!(
        events.lines().filter(|l| l.contains(",tail,")).count(),
        2,
        "{events}"
    );
    assert!(
        events
            .lines()
            .skip(1)
            .filter(|l| l.contains(",cam1,"))
            .all(|l| l.contains(",test_ood,")),
        "{events}"
    );

    // Same seed, same events; another seed, other events.
    let again = dir.path().join("again");
    assert!(synth(&again, "5").status.success());
    assert_eq!(
        events,
        std::fs::read_to_string(again.join("events.csv")).unwrap()
    );
    let other = dir.path().join("other");
    assert!(synth(&other, "6").status.success());
    assert_ne!(
        events,
        std::fs::read_to_string(other.join("events.csv")).unwrap()
    );

    let probe = ethos(&["probe", data.join("videos/cam0_pen0.mp4").to_str().unwrap()]);
    assert!(probe.status.success(), "{}", stderr(&probe));
    let info: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    assert_eq!(info["width"], 160);
    assert_eq!(info["height"], 96);
    assert!(info["frame_count"].as_u64().unwrap() > 50, "{info}");

    let clips = dir.path().join("clips");
    let (events_csv, videos_dir) = (data.join("events.csv"), data.join("videos"));
    let args = [
        "extract",
        "--events",
        events_csv.to_str().unwrap(),
        "--videos",
        videos_dir.to_str().unwrap(),
        "--out",
        clips.to_str().unwrap(),
        "--jobs",
        "2",
        "--codec",
        "mpeg4",
    ];
    let first = ethos(&args);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("6 extracted, 0 skipped"),
        "{}",
        stderr(&first)
    );
    let names: Vec<String> = std::fs::read_dir(&clips)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("evt_") && n.ends_with(".mp4")),
        "{names:?}"
    );
    // A clip holds duration_s * fps frames of the full frame.
    let row: Vec<&str> = events.lines().nth(1).unwrap().split(',').collect();
    let clip = clips.join(format!(
        "evt_{:04}_{}.mp4",
        row[0].parse::<u32>().unwrap(),
        row[4]
    ));
    let info: serde_json::Value =
        serde_json::from_slice(&ethos(&["probe", clip.to_str().unwrap()]).stdout).unwrap();
    let want = (row[3].parse::<f64>().unwrap() * 10.0).round() as u64;
    assert_eq!(info["frame_count"].as_u64(), Some(want), "{info}");
    assert_eq!(info["width"], 160);

    // Second run: everything is complete and skipped. A truncated clip is redone.
    let second = ethos(&args);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("0 extracted, 6 skipped"),
        "{}",
        stderr(&second)
    );
    let bytes = std::fs::read(&clip).unwrap();
    std::fs::write(&clip, &bytes[..bytes.len() / 2]).unwrap();
    let third = ethos(&args);
    assert!(third.status.success(), "{}", stderr(&third));
    assert!(
        stderr(&third).contains("1 extracted, 5 skipped"),
        "{}",
        stderr(&third)
    );
}

#[test]
fn bad_manifests_exit_2_naming_file_line_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let videos = dir.path().join("videos");
    std::fs::create_dir_all(&videos).unwrap();
    let csv = dir.path().join("broken_events.csv");
    std::fs::write(
        &csv,
        "event_idx,video,start_s,duration_s,behavior\n\
1,nothere.mp4,0,2,ear\n\
2,nothere.mp4,0,2,nose\n\
2,nothere.mp4,0,2,ear\n\
4,nothere.mp4,1e,2,ear\n\
5,nothere.mp4,-3,2,tail\n",
    )
    .unwrap();
    let out = ethos(&[
        "extract",
        "--events",
        csv.to_str().unwrap(),
        "--videos",
        videos.to_str().unwrap(),
        "--out",
        dir.path().join("clips").to_str().unwrap(),
        "--classes",
        "ear,tail",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("broken_events.csv"), "{err}");
    assert!(
        err.contains("line 2, column video, value \"nothere.mp4\""),
        "{err}"
    );
    assert!(
        err.contains("line 3, column behavior, value \"nose\": unknown class"),
        "{err}"
    );
    assert!(
        err.contains("line 4, column event_idx, value \"2\": duplicate"),
        "{err}"
    );
    assert!(
        err.contains("line 5, column start_s, value \"1e\""),
        "{err}"
    );
    assert!(
        err.contains("line 6, column start_s, value \"-3\": negative"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let missing_col = dir.path().join("nocol.csv");
    std::fs::write(
        &missing_col,
        "event_idx,video,start_s,behavior\n1,a.mp4,0,ear\n",
    )
    .unwrap();
    let out = ethos(&[
        "extract",
        "--events",
        missing_col.to_str().unwrap(),
        "--videos",
        videos.to_str().unwrap(),
        "--out",
        dir.path().join("c2").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nocol.csv") && stderr(&out).contains("duration_s"),
        "{}",
        stderr(&out)
    );

    let out = ethos(&[
        "synth",
        "--out",
        dir.path().join("s").to_str().unwrap(),
        "--resolution",
        "161x96",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("161x96"), "{}", stderr(&out));
}
