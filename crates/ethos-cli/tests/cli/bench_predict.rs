//! `ethos bench predict` end to end on a tiny generated source, so the benchmark keeps working.

use std::process::Command;

fn ethos() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ethos"));
    c.env("RUST_LOG", "warn").env("NO_COLOR", "1");
    c
}

#[test]
fn bench_predict_runs_end_to_end_and_reuses_its_source() {
    let tmp = tempfile::tempdir().unwrap();
    let run = || {
        ethos()
            .args([
                "bench",
                "predict",
                "--resolution",
                "320x180",
                "--seconds",
                "2",
                "--input-size",
                "32",
                "--batch",
                "2",
                "--decoder-threads",
                "1,2",
                "--dir",
            ])
            .arg(tmp.path())
            .output()
            .unwrap()
    };
    let out = run();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("writing") && err.contains("vh/wall-h"),
        "{err}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json["results"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, threads) in rows.iter().zip([1, 2]) {
        let f = |k: &str| row[k].as_f64().unwrap_or_else(|| panic!("{k}: {row}"));
        assert_eq!(row["resolution"], "320x180");
        assert_eq!(row["decoder_threads"], threads);
        // 2 s at 8 fps is 16 grid frames: windows of 8 frames every 4 start at frames 0, 4 and 8.
        assert_eq!(row["windows"], 3, "{row}");
        assert!((f("video_s") - 2.0).abs() < 0.2, "{row}");
        for k in ["wall_s", "cpu_s", "decode_s", "model_s", "peak_rss_mb"] {
            assert!(f(k) > 0.0, "{k}: {row}");
        }
        assert!((f("video_h_per_wall_h") - f("video_s") / f("wall_s")).abs() < 1e-9);
        assert!((0.0..=1.0).contains(&f("hidden")), "{row}");
        let bound = row["bound"].as_str().unwrap();
        assert_eq!(bound == "decode", f("decode_s") >= f("model_s"), "{row}");
    }
    // The second run finds the cached source instead of writing it again.
    let again = run();
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{err}");
    assert!(!err.contains("writing"), "{err}");

    let bad = ethos()
        .args(["bench", "predict", "--resolution", "320by180", "--dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--resolution") && err.contains("320by180"),
        "{err}"
    );
}
