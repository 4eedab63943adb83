//! `ethos weights fetch|convert|inspect` and `ethos doctor`, run as the real binary. Downloads go to a
//! small HTTP server on 127.0.0.1 started by the test (with Range support), never to the network.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

fn ethos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ethos"))
        .args(args)
        .output()
        .expect("run ethos")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Serves `body` at any path; answers `Range: bytes=N-` with 206. Records each request's range start.
struct Server {
    port: u16,
    ranges: Arc<Mutex<Vec<Option<u64>>>>,
}

fn serve(body: Vec<u8>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = ranges.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(r) = lower.strip_prefix("range: bytes=") {
                    range = r.trim().trim_end_matches('-').parse::<u64>().ok();
                }
            }
            seen.lock().unwrap().push(range);
            let len = body.len() as u64;
            let head = match range {
                Some(s) if s >= len => {
                    format!(
                        "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                }
                Some(s) => format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{len}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    len - 1,
                    len - s
                ),
                None => {
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
                }
            };
            let start = match range {
                Some(s) if s < len => s as usize,
                Some(_) => body.len(),
                None => 0,
            };
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body[start..]);
            let _ = stream.flush();
        }
    });
    Server { port, ranges }
}

fn payload() -> (Vec<u8>, String) {
    let body: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let hex: String = Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (body, hex)
}

fn fetch(server: &Server, file: &str, cache: &Path) -> Output {
    let url = format!("http://127.0.0.1:{}/models/{file}", server.port);
    ethos(&[
        "weights",
        "fetch",
        "r3d_18",
        "--url",
        &url,
        "--cache-dir",
        cache.to_str().unwrap(),
    ])
}

#[test]
fn fetch_downloads_verifies_and_reuses_the_cache() {
    let (body, hex) = payload();
    let server = serve(body.clone());
    let cache = tempfile::tempdir().unwrap();
    let file = format!("r3d_18-{}.pth", &hex[..8]);
    let out = fetch(&server, &file, cache.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["sha256"], hex);
    assert_eq!(json["bytes"], body.len());
    let path = PathBuf::from(json["path"].as_str().unwrap());
    assert_eq!(path, cache.path().join(&file));
    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert!(!cache.path().join(format!("{file}.part")).exists());
    assert_eq!(*server.ranges.lock().unwrap(), vec![None]);
    // A second fetch finds the verified file and makes no request.
    let out = fetch(&server, &file, cache.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.ranges.lock().unwrap().len(), 1);
}

#[test]
fn fetch_resumes_a_partial_download_with_a_range_request() {
    let (body, hex) = payload();
    let server = serve(body.clone());
    let cache = tempfile::tempdir().unwrap();
    let file = format!("r3d_18-{}.pth", &hex[..8]);
    std::fs::write(cache.path().join(format!("{file}.part")), &body[..123_456]).unwrap();
    let out = fetch(&server, &file, cache.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        *server.ranges.lock().unwrap(),
        vec![Some(123_456)],
        "resumed from the .part size"
    );
    assert_eq!(std::fs::read(cache.path().join(&file)).unwrap(), body);
}

#[test]
fn fetch_rejects_a_hash_mismatch_and_keeps_nothing() {
    let (body, _) = payload();
    let server = serve(body);
    let cache = tempfile::tempdir().unwrap();
    let file = "r3d_18-deadbeef.pth";
    let out = fetch(&server, file, cache.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("SHA-256 mismatch") && err.contains("deadbeef"),
        "{err}"
    );
    assert!(!cache.path().join(file).exists());
    assert!(!cache.path().join(format!("{file}.part")).exists());
}

#[test]
fn fetch_unknown_name_is_bad_input() {
    let cache = tempfile::tempdir().unwrap();
    let out = ethos(&[
        "weights",
        "fetch",
        "resnet9000",
        "--cache-dir",
        cache.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("mvit_v2_s"), "{}", stderr(&out));
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ethos-models/tests/fixtures/pth")
        .join(name)
}

#[test]
fn convert_and_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("nested.safetensors");
    let out = ethos(&[
        "weights",
        "convert",
        fixture("nested.pth").to_str().unwrap(),
        out_file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ethos(&["weights", "inspect", out_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["count"], 7);
    let t = json["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == "0.weight")
        .unwrap();
    assert_eq!(
        (t["key"].as_str(), t["dtype"].as_str()),
        (Some("0.weight"), Some("float32"))
    );
    assert_eq!(t["shape"], serde_json::json!([3, 4]));
    assert!(stderr(&out).contains("1.num_batches_tracked"));
    // The refused pickle: exit 2, message names the global.
    let out = ethos(&[
        "weights",
        "inspect",
        fixture("malicious.pth").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("posix.system"), "{}", stderr(&out));
}

#[test]
fn doctor_reports_engine_and_ffmpeg() {
    let out = ethos(&["doctor"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["libtorch"]["lib_dir"].is_string(), "{json}");
    assert!(json["devices"]["cuda_device_count"].is_number());
    assert!(
        json["ffmpeg"]["avcodec"]
            .as_str()
            .unwrap()
            .starts_with(|c: char| c.is_ascii_digit())
    );
    assert!(json["threads"]["torch_intra_op"].as_i64().unwrap() >= 1);
    let mut r = BufReader::new(&out.stderr[..]);
    let mut first = String::new();
    r.read_line(&mut first).unwrap();
    assert!(first.starts_with("ethos "));
    let mut rest = String::new();
    r.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("libtorch_cuda"));
}

#[test]
fn fetch_finishes_a_complete_part_file_after_416() {
    let (body, hex) = payload();
    let server = serve(body.clone());
    let cache = tempfile::tempdir().unwrap();
    let file = format!("r3d_18-{}.pth", &hex[..8]);
    std::fs::write(cache.path().join(format!("{file}.part")), &body).unwrap();
    let out = fetch(&server, &file, cache.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        *server.ranges.lock().unwrap(),
        vec![Some(body.len() as u64)]
    );
    assert_eq!(std::fs::read(cache.path().join(&file)).unwrap(), body);
}
