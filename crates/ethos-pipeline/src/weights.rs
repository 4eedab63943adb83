//! Weight files: `convert` (any readable format to safetensors), `fetch` (official torchvision
//! checkpoints, resumable, SHA-256 checked), `inspect` (keys, dtypes, shapes).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ethos_core::{Error, ErrorKind, ResultExt};
use ethos_models::weights::{read_tensors, read_tensors_raw, write_safetensors_atomic};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Result;
use crate::progress::Progress;

/// Official torchvision checkpoints `ethos weights fetch` knows by name.
const KNOWN: &[(&str, &str)] = &[
    (
        "mvit_v2_s",
        "https://download.pytorch.org/models/mvit_v2_s-ae3be167.pth",
    ),
    (
        "r3d_18",
        "https://download.pytorch.org/models/r3d_18-b3b3357e.pth",
    ),
];

/// The dtype name of a tensor kind, as `weights inspect` lists it.
pub fn dtype_name(kind: tch::Kind) -> &'static str {
    use tch::Kind as K;
    match kind {
        K::Float => "float32",
        K::Double => "float64",
        K::Half => "float16",
        K::BFloat16 => "bfloat16",
        K::Int64 => "int64",
        K::Int => "int32",
        K::Int16 => "int16",
        K::Int8 => "int8",
        K::Uint8 => "uint8",
        K::Bool => "bool",
        _ => "other",
    }
}

/// What `convert` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ConvertReport {
    /// The input weights.
    pub input: PathBuf,
    /// The safetensors file written.
    pub output: PathBuf,
    /// Tensors written.
    pub tensors: usize,
    /// Elements in all.
    pub elements: i64,
}

/// Converts any readable weight file (safetensors, sharded index, PyTorch `.pth`/`.pt`) to one
/// safetensors file; half/bfloat16 tensors become float32 unless `keep_dtypes`.
pub fn convert(input: &Path, output: &Path, keep_dtypes: bool) -> Result<ConvertReport> {
    let tensors = if keep_dtypes {
        read_tensors_raw(input)
    } else {
        read_tensors(input)
    }
    .context(format!("reading {}", input.display()))?;
    write_safetensors_atomic(output, &tensors)?;
    Ok(ConvertReport {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        tensors: tensors.len(),
        elements: tensors.iter().map(|(_, t)| t.numel() as i64).sum(),
    })
}

/// One tensor of a weight file.
#[derive(Debug, Clone, Serialize)]
pub struct TensorRow {
    /// Key.
    pub key: String,
    /// Dtype name.
    pub dtype: &'static str,
    /// Shape.
    pub shape: Vec<i64>,
}

/// Lists the tensors of a weight file or folder: key, dtype, shape (stored dtypes kept).
pub fn inspect(file: &Path) -> Result<Vec<TensorRow>> {
    let tensors = read_tensors_raw(file).context(format!("reading {}", file.display()))?;
    Ok(tensors
        .iter()
        .map(|(k, t)| TensorRow {
            key: k.clone(),
            dtype: dtype_name(t.kind()),
            shape: t.size(),
        })
        .collect())
}

fn default_cache_dir() -> Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(x).join("ethos/weights"));
    }
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty());
    match home {
        Some(h) => Ok(PathBuf::from(h).join(".cache/ethos/weights")),
        None => Err(Error::bad_input(
            "neither XDG_CACHE_HOME nor HOME is set: pass --cache-dir",
        )),
    }
}

/// The expected SHA-256 (lowercase hex, possibly a prefix) from `--sha256` or the file name's
/// torchvision suffix `-<8+ hex>`.
fn expected_hash(file_name: &str, given: Option<&str>) -> Result<String> {
    let is_hex =
        |s: &str| s.len() >= 8 && s.len() <= 64 && s.chars().all(|c| c.is_ascii_hexdigit());
    if let Some(h) = given {
        if !is_hex(h) {
            return Err(Error::bad_input(format!(
                "--sha256 `{h}` is not 8 to 64 hex digits"
            )));
        }
        return Ok(h.to_ascii_lowercase());
    }
    let stem = file_name.split('.').next().unwrap_or(file_name);
    match stem.rsplit_once('-') {
        Some((_, suffix)) if is_hex(suffix) => Ok(suffix.to_ascii_lowercase()),
        _ => Err(Error::bad_input(format!(
            "cannot tell the expected SHA-256 of `{file_name}` (no `-<hex>` suffix): pass --sha256"
        ))),
    }
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::input_io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::input_io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Where `fetch` put a checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct FetchReport {
    /// The model name.
    pub name: String,
    /// Where it came from.
    pub url: String,
    /// The file in the cache.
    pub path: PathBuf,
    /// Its SHA-256.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// True when it was already in the cache.
    pub cached: bool,
}

/// Downloads official torchvision weights (`mvit_v2_s`, `r3d_18`) or `url` into `cache_dir`
/// (default: `$XDG_CACHE_HOME/ethos/weights` or `~/.cache/ethos/weights`), resuming a partial
/// download, and checks the SHA-256 (`sha256`, else the torchvision file name's suffix).
pub fn fetch(
    name: &str,
    cache_dir: Option<&Path>,
    url: Option<&str>,
    sha256: Option<&str>,
    progress: &dyn Progress,
) -> Result<FetchReport> {
    let url = match (url, KNOWN.iter().find(|(n, _)| *n == name)) {
        (Some(u), _) => u.to_string(),
        (None, Some((_, u))) => (*u).to_owned(),
        (None, None) => {
            let names: Vec<&str> = KNOWN.iter().map(|(n, _)| *n).collect();
            return Err(Error::bad_input(format!(
                "unknown weights `{name}` (known: {}; or pass --url)",
                names.join(", ")
            )));
        }
    };
    let file_name = url
        .split(['?', '#'])
        .next()
        .and_then(|u| u.rsplit('/').next())
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .ok_or_else(|| Error::bad_input(format!("URL `{url}` does not end in a file name")))?
        .to_owned();
    let expected = expected_hash(&file_name, sha256)?;
    let dir = match cache_dir {
        Some(d) => d.to_path_buf(),
        None => default_cache_dir()?,
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::output_io(&dir, e))?;
    let target = dir.join(&file_name);
    let part = dir.join(format!("{file_name}.part"));

    if target.is_file() {
        let have = sha256_file(&target)?;
        if have.starts_with(&expected) {
            return Ok(report(name, &url, &target, &have, true));
        }
        tracing::warn!(path = %target.display(), "cached file has SHA-256 {have}, expected {expected}...; downloading again");
        std::fs::remove_file(&target).map_err(|e| Error::output_io(&target, e))?;
    }

    download(&url, &part, progress)?;
    let have = sha256_file(&part)?;
    if !have.starts_with(&expected) {
        let _ = std::fs::remove_file(&part);
        return Err(Error::bad_input(format!(
            "SHA-256 mismatch for {url}: expected {expected}..., downloaded file has {have} (removed; try again)"
        )));
    }
    ethos_core::fs::commit_temp(&part, &target).map_err(|e| Error::output_io(&target, e))?;
    Ok(report(name, &url, &target, &have, false))
}

fn report(name: &str, url: &str, path: &Path, sha: &str, cached: bool) -> FetchReport {
    FetchReport {
        name: name.to_string(),
        url: url.to_string(),
        path: path.to_path_buf(),
        sha256: sha.to_string(),
        bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        cached,
    }
}

/// Downloads `url` into `part`, resuming from the bytes already there with an HTTP Range request;
/// retries a broken transfer a few times, each time from where it stopped. Leaves `part` fsynced.
fn download(url: &str, part: &Path, progress: &dyn Progress) -> Result<()> {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build();
    let agent: ureq::Agent = config.into();
    const ATTEMPTS: usize = 4;
    let mut last_err = None;
    for attempt in 1..=ATTEMPTS {
        match download_once(&agent, url, part, progress) {
            Ok(()) => return Ok(()),
            Err(Transfer::Fatal(e)) => return Err(e),
            Err(Transfer::Retry(e)) => {
                tracing::warn!(
                    "download attempt {attempt}/{ATTEMPTS} of {url} stopped: {e}; resuming"
                );
                last_err = Some(e);
                std::thread::sleep(Duration::from_millis(500 * attempt as u64));
            }
        }
    }
    Err(last_err
        .unwrap_or_else(|| Error::internal("download failed"))
        .context(format!("downloading {url}")))
}

enum Transfer {
    Retry(Error),
    Fatal(Error),
}

fn download_once(
    agent: &ureq::Agent,
    url: &str,
    part: &Path,
    progress: &dyn Progress,
) -> std::result::Result<(), Transfer> {
    let fatal = Transfer::Fatal;
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut req = agent.get(url);
    if have > 0 {
        req = req.header("Range", format!("bytes={have}-"));
    }
    let mut resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::BadUri(e)) => {
            return Err(fatal(Error::bad_input(format!("bad URL `{url}`: {e}"))));
        }
        Err(e) => {
            return Err(Transfer::Retry(Error::internal(format!(
                "requesting {url}: {e}"
            ))));
        }
    };
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (start, total) = match status {
        200 => (
            0,
            header("content-length").and_then(|v| v.parse::<u64>().ok()),
        ),
        206 => {
            // Content-Range: bytes <start>-<end>/<total|*>
            let cr = header("content-range").unwrap_or_default();
            let parsed = cr.strip_prefix("bytes ").and_then(|r| {
                let (range, total) = r.split_once('/')?;
                let start = range.split_once('-')?.0.parse::<u64>().ok()?;
                Some((start, total.parse::<u64>().ok()))
            });
            match parsed {
                Some((s, t)) if s == have => (s, t),
                _ => {
                    tracing::warn!(
                        "server answered Range bytes={have}- with `{cr}`; starting over"
                    );
                    let _ = std::fs::remove_file(part);
                    return Err(Transfer::Retry(Error::internal(format!(
                        "unusable Content-Range `{cr}`"
                    ))));
                }
            }
        }
        416 if have > 0 => {
            // Nothing after `have`: the partial file is already complete (the hash check decides).
            return Ok(());
        }
        404 | 403 | 401 | 410 => {
            return Err(fatal(Error::bad_input(format!("{url}: HTTP {status}"))));
        }
        _ => {
            return Err(Transfer::Retry(Error::internal(format!(
                "{url}: HTTP {status}"
            ))));
        }
    };
    if start == 0 && have > 0 {
        tracing::info!("server ignored the Range request; downloading {url} from the start");
    }
    let io = |e: std::io::Error, what: &str| {
        fatal(
            Error::with_kind(ErrorKind::of_output_io(&e), e)
                .context(format!("{what} {}", part.display())),
        )
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(part)
        .map_err(|e| io(e, "opening"))?;
    file.set_len(start).map_err(|e| io(e, "truncating"))?;
    file.seek(SeekFrom::Start(start))
        .map_err(|e| io(e, "seeking in"))?;
    tracing::info!(
        "downloading {url}{}",
        if start > 0 {
            format!(" (resuming at {start} bytes)")
        } else {
            String::new()
        }
    );
    let total_usize = total.map_or(0, |t| t as usize);
    let mut reader = resp.body_mut().as_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = start;
    let result = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Err(e) = file.write_all(&buf[..n]) {
                    break Err(io(e, "writing"));
                }
                done += n as u64;
                progress.step(done as usize, total_usize, None);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                break Err(Transfer::Retry(Error::internal(format!(
                    "reading the response body: {e}"
                ))));
            }
        }
    };
    // Keep what arrived (also on errors) so the next attempt resumes from it.
    file.sync_all().map_err(|e| io(e, "syncing"))?;
    result?;
    if let Some(t) = total
        && done < t
    {
        return Err(Transfer::Retry(Error::internal(format!(
            "connection closed after {done} of {t} bytes"
        ))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_from_torchvision_names() {
        assert_eq!(
            expected_hash("r3d_18-b3b3357e.pth", None).unwrap(),
            "b3b3357e"
        );
        assert_eq!(
            expected_hash("mvit_v2_s-ae3be167.pth", None).unwrap(),
            "ae3be167"
        );
        assert!(expected_hash("model.pth", None).is_err());
        assert_eq!(
            expected_hash("model.pth", Some("ABCDEF0123")).unwrap(),
            "abcdef0123"
        );
        assert!(expected_hash("model.pth", Some("xyz")).is_err());
    }
}
