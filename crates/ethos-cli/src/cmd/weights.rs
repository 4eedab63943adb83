//! `ethos weights convert|fetch|inspect`: weight files between formats, official downloads, listings.

use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args as ClapArgs, Subcommand};
use ethos_models::weights::{read_tensors, read_tensors_raw, write_safetensors_atomic};
use sha2::{Digest, Sha256};

use crate::exit::BadInput;

/// Weight files: convert to safetensors, download official checkpoints, list tensors.
#[derive(ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: WeightsCommand,
}

#[derive(Subcommand)]
enum WeightsCommand {
    /// Converts any readable weight file (safetensors, sharded index, PyTorch .pth/.pt) to safetensors.
    Convert(ConvertArgs),
    /// Downloads official torchvision weights (mvit_v2_s, r3d_18) with resume and SHA-256 check.
    Fetch(FetchArgs),
    /// Lists the tensors of a weight file: key, dtype, shape (JSON to stdout, table to stderr).
    Inspect(InspectArgs),
}

/// Arguments of `ethos weights convert`.
#[derive(ClapArgs)]
struct ConvertArgs {
    /// Input weights (.safetensors, model.safetensors.index.json, folder, .pth/.pt/.bin).
    input: PathBuf,
    /// Output .safetensors file (written atomically).
    output: PathBuf,
    /// Keep half/bfloat16 tensors as they are instead of converting them to float32.
    #[arg(long)]
    keep_dtypes: bool,
}

/// Arguments of `ethos weights fetch`.
#[derive(ClapArgs)]
struct FetchArgs {
    /// Model name: mvit_v2_s or r3d_18 (torchvision Kinetics-400 weights).
    name: String,
    /// Cache folder (default: $XDG_CACHE_HOME/ethos/weights or ~/.cache/ethos/weights).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Download from this URL instead of the official one (a mirror); the file name is kept.
    #[arg(long)]
    url: Option<String>,
    /// Expected SHA-256 (full hex or a prefix of at least 8 hex digits). Default: the 8-hex suffix of
    /// the torchvision file name (`name-<sha256 prefix>.pth`).
    #[arg(long)]
    sha256: Option<String>,
}

/// Arguments of `ethos weights inspect`.
#[derive(ClapArgs)]
struct InspectArgs {
    /// Weight file or folder.
    file: PathBuf,
}

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

/// Runs `ethos weights ...`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        WeightsCommand::Convert(a) => convert(a),
        WeightsCommand::Fetch(a) => fetch(a),
        WeightsCommand::Inspect(a) => inspect(a),
    }
}

fn dtype_name(kind: tch::Kind) -> &'static str {
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

fn convert(a: ConvertArgs) -> Result<()> {
    let tensors = if a.keep_dtypes {
        read_tensors_raw(&a.input)
    } else {
        read_tensors(&a.input)
    }
    .with_context(|| format!("reading {}", a.input.display()))?;
    write_safetensors_atomic(&a.output, &tensors)
        .with_context(|| format!("writing {}", a.output.display()))?;
    let elements: i64 = tensors.iter().map(|(_, t)| t.numel() as i64).sum();
    eprintln!(
        "wrote {} tensors ({elements} elements) to {}",
        tensors.len(),
        a.output.display()
    );
    let out = serde_json::json!({
        "input": a.input, "output": a.output, "tensors": tensors.len(), "elements": elements,
    });
    println!("{out}");
    Ok(())
}

fn inspect(a: InspectArgs) -> Result<()> {
    let tensors =
        read_tensors_raw(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let width = tensors
        .iter()
        .map(|(k, _)| k.len())
        .max()
        .unwrap_or(3)
        .max(3);
    let mut err = std::io::stderr().lock();
    writeln!(err, "{:<width$}  {:<8}  shape", "key", "dtype")?;
    let mut rows = Vec::with_capacity(tensors.len());
    let mut elements = 0i64;
    for (k, t) in &tensors {
        let (dtype, shape) = (dtype_name(t.kind()), t.size());
        writeln!(err, "{k:<width$}  {dtype:<8}  {shape:?}")?;
        elements += t.numel() as i64;
        rows.push(serde_json::json!({"key": k, "dtype": dtype, "shape": shape}));
    }
    writeln!(err, "{} tensors, {elements} elements", tensors.len())?;
    let out = serde_json::json!({"file": a.file, "count": tensors.len(), "elements": elements, "tensors": rows});
    println!("{out}");
    Ok(())
}

fn default_cache_dir() -> Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(x).join("ethos/weights"));
    }
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty());
    match home {
        Some(h) => Ok(PathBuf::from(h).join(".cache/ethos/weights")),
        None => {
            Err(BadInput("neither XDG_CACHE_HOME nor HOME is set: pass --cache-dir".into()).into())
        }
    }
}

/// The expected SHA-256 (lowercase hex, possibly a prefix) from `--sha256` or the file name's
/// torchvision suffix `-<8+ hex>`.
fn expected_hash(file_name: &str, given: Option<&str>) -> Result<String> {
    let is_hex =
        |s: &str| s.len() >= 8 && s.len() <= 64 && s.chars().all(|c| c.is_ascii_hexdigit());
    if let Some(h) = given {
        if !is_hex(h) {
            return Err(BadInput(format!("--sha256 `{h}` is not 8 to 64 hex digits")).into());
        }
        return Ok(h.to_ascii_lowercase());
    }
    let stem = file_name.split('.').next().unwrap_or(file_name);
    match stem.rsplit_once('-') {
        Some((_, suffix)) if is_hex(suffix) => Ok(suffix.to_ascii_lowercase()),
        _ => Err(BadInput(format!(
            "cannot tell the expected SHA-256 of `{file_name}` (no `-<hex>` suffix): pass --sha256"
        ))
        .into()),
    }
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn fetch(a: FetchArgs) -> Result<()> {
    let url = match (&a.url, KNOWN.iter().find(|(n, _)| *n == a.name)) {
        (Some(u), _) => u.clone(),
        (None, Some((_, u))) => (*u).to_owned(),
        (None, None) => {
            let names: Vec<&str> = KNOWN.iter().map(|(n, _)| *n).collect();
            return Err(BadInput(format!(
                "unknown weights `{}` (known: {}; or pass --url)",
                a.name,
                names.join(", ")
            ))
            .into());
        }
    };
    let file_name = url
        .split(['?', '#'])
        .next()
        .and_then(|u| u.rsplit('/').next())
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .ok_or_else(|| BadInput(format!("URL `{url}` does not end in a file name")))?
        .to_owned();
    let expected = expected_hash(&file_name, a.sha256.as_deref())?;
    let dir = match a.cache_dir {
        Some(d) => d,
        None => default_cache_dir()?,
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating cache folder {}", dir.display()))?;
    let target = dir.join(&file_name);
    let part = dir.join(format!("{file_name}.part"));

    if target.is_file() {
        let have = sha256_file(&target)?;
        if have.starts_with(&expected) {
            eprintln!("{} already in the cache: {}", a.name, target.display());
            return report(&a.name, &url, &target, &have);
        }
        tracing::warn!(path = %target.display(), "cached file has SHA-256 {have}, expected {expected}...; downloading again");
        std::fs::remove_file(&target).with_context(|| format!("removing {}", target.display()))?;
    }

    download(&url, &part)?;
    let have = sha256_file(&part)?;
    if !have.starts_with(&expected) {
        let _ = std::fs::remove_file(&part);
        return Err(BadInput(format!(
            "SHA-256 mismatch for {url}: expected {expected}..., downloaded file has {have} (removed; try again)"
        ))
        .into());
    }
    std::fs::rename(&part, &target)
        .with_context(|| format!("renaming {} to {}", part.display(), target.display()))?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    eprintln!("downloaded {} to {}", a.name, target.display());
    report(&a.name, &url, &target, &have)
}

fn report(name: &str, url: &str, path: &Path, sha: &str) -> Result<()> {
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    println!(
        "{}",
        serde_json::json!({"name": name, "url": url, "path": path, "sha256": sha, "bytes": bytes})
    );
    Ok(())
}

/// Downloads `url` into `part`, resuming from the bytes already there with an HTTP Range request;
/// retries a broken transfer a few times, each time from where it stopped. Leaves `part` fsynced.
fn download(url: &str, part: &Path) -> Result<()> {
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
        match download_once(&agent, url, part) {
            Ok(()) => return Ok(()),
            Err(Transfer::Fatal(e)) => return Err(e),
            Err(Transfer::Retry(e)) => {
                tracing::warn!(
                    "download attempt {attempt}/{ATTEMPTS} of {url} stopped: {e:#}; resuming"
                );
                last_err = Some(e);
                std::thread::sleep(Duration::from_millis(500 * attempt as u64));
            }
        }
    }
    Err(last_err
        .unwrap_or_else(|| anyhow::anyhow!("download failed"))
        .context(format!("downloading {url}")))
}

enum Transfer {
    Retry(anyhow::Error),
    Fatal(anyhow::Error),
}

fn download_once(agent: &ureq::Agent, url: &str, part: &Path) -> std::result::Result<(), Transfer> {
    let fatal = Transfer::Fatal;
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut req = agent.get(url);
    if have > 0 {
        req = req.header("Range", format!("bytes={have}-"));
    }
    let mut resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::BadUri(e)) => {
            return Err(fatal(BadInput(format!("bad URL `{url}`: {e}")).into()));
        }
        Err(e) => {
            return Err(Transfer::Retry(
                anyhow::Error::new(e).context(format!("requesting {url}")),
            ));
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
                    return Err(Transfer::Retry(anyhow::anyhow!(
                        "unusable Content-Range `{cr}`"
                    )));
                }
            }
        }
        416 if have > 0 => {
            // Nothing after `have`: the partial file is already complete (the hash check decides).
            return Ok(());
        }
        404 | 403 | 401 | 410 => {
            return Err(fatal(BadInput(format!("{url}: HTTP {status}")).into()));
        }
        _ => return Err(Transfer::Retry(anyhow::anyhow!("{url}: HTTP {status}"))),
    };
    if start == 0 && have > 0 {
        tracing::info!("server ignored the Range request; downloading {url} from the start");
    }
    let io = |e: std::io::Error, what: &str| {
        fatal(anyhow::Error::new(e).context(format!("{what} {}", part.display())))
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
    let progress = Progress::new(url, start, total);
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
                progress.update(done);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                break Err(Transfer::Retry(
                    anyhow::Error::new(e).context("reading the response body"),
                ));
            }
        }
    };
    // Keep what arrived (also on errors) so the next attempt resumes from it.
    file.sync_all().map_err(|e| io(e, "syncing"))?;
    progress.finish(done);
    result?;
    if let Some(t) = total
        && done < t
    {
        return Err(Transfer::Retry(anyhow::anyhow!(
            "connection closed after {done} of {t} bytes"
        )));
    }
    Ok(())
}

/// Download progress: a bar on a terminal, otherwise one flushed line per 10%.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: Option<u64>,
    next_report: std::cell::Cell<u64>,
    started: Instant,
}

impl Progress {
    fn new(url: &str, start: u64, total: Option<u64>) -> Self {
        eprintln!(
            "downloading {url}{}",
            if start > 0 {
                format!(" (resuming at {start} bytes)")
            } else {
                String::new()
            }
        );
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(total.unwrap_or(0));
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.set_position(start);
            b
        });
        let step = total.map(|t| t / 10).unwrap_or(u64::MAX).max(1);
        Progress {
            bar,
            total,
            next_report: std::cell::Cell::new(start + step),
            started: Instant::now(),
        }
    }

    fn update(&self, done: u64) {
        if let Some(b) = &self.bar {
            b.set_position(done);
        } else if let Some(t) = self.total
            && done >= self.next_report.get()
        {
            eprintln!(
                "  {done}/{t} bytes ({:.0}%)",
                100.0 * done as f64 / t.max(1) as f64
            );
            let _ = std::io::stderr().flush();
            self.next_report.set(done + (t / 10).max(1));
        }
    }

    fn finish(&self, done: u64) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        let secs = self.started.elapsed().as_secs_f64();
        tracing::debug!("{done} bytes after {secs:.1} s");
    }
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
