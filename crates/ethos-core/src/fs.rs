//! Atomic file writes and the clean-up of what killed writers leave behind.
//!
//! Every file that matters (checkpoints, reports, predictions, manifests, clips, cache entries) is
//! written to a unique temporary name in the same folder, flushed and fsynced, renamed over the
//! target, and the folder is fsynced, so a kill or power cut at any moment leaves either the old
//! file or the new one, never a torn one. Temporary names say which host and process wrote them
//! (`.NAME.ethos-tmp.HOST.PID.SEQ[.EXT]`), so a later run removes those of dead processes
//! ([`clean_stale_temps`]) and never those of a live writer. Files are created with the mode the
//! umask gives (`0666 & !umask`), like any other file the user makes.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// The marker between a target's name and the writer's identity in a temporary name.
const MARKER: &str = ".ethos-tmp.";

/// Temporary files of another host are removed only when older than this (their process cannot
/// be asked whether it is alive).
const FOREIGN_STALE_AFTER: Duration = Duration::from_secs(2 * 24 * 3600);

static SEQ: AtomicU64 = AtomicU64::new(0);

fn host() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "host".into()
    } else {
        clean
    }
}

/// A fresh temporary name for writing `path`: same folder (so the rename is atomic), hidden,
/// unique per host, process and call, and ending in `path`'s extension (FFmpeg picks containers
/// by extension).
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(
        ".{name}{MARKER}{}.{}.{seq}{ext}",
        host(),
        std::process::id()
    ))
}

/// A file being written under a temporary name; [`AtomicFile::commit`] puts it in place, dropping
/// it uncommitted removes the temporary file.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `path` (nothing at `path` changes until [`commit`](Self::commit)).
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        let tmp = temp_path(path);
        let file = File::create(&tmp)?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            writer: Some(BufWriter::new(file)),
        })
    }

    /// The temporary file's path.
    pub fn temp(&self) -> &Path {
        &self.tmp
    }

    /// Flushes, fsyncs, renames over the target and fsyncs the folder.
    pub fn commit(mut self) -> io::Result<()> {
        let w = self.writer.take().expect("an AtomicFile is committed once");
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        let r = commit_temp(&self.tmp, &self.path);
        if r.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        // Committed or failed: nothing left for Drop to remove.
        self.tmp = PathBuf::new();
        r
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.as_mut().expect("not committed").write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer.as_mut().expect("not committed").write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.as_mut().expect("not committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            drop(self.writer.take());
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `path` atomically, `write` filling the temporary file; on error the temporary file is
/// removed and `path` is untouched.
pub fn write_atomic<F>(path: &Path, write: F) -> io::Result<()>
where
    F: FnOnce(&mut AtomicFile) -> io::Result<()>,
{
    let mut f = AtomicFile::create(path)?;
    write(&mut f)?;
    f.commit()
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
}

/// Puts a temporary file that another writer filled (an encoder, a plotting backend) in place:
/// fsyncs it, renames it over `path` and fsyncs the folder.
pub fn commit_temp(tmp: &Path, path: &Path) -> io::Result<()> {
    File::open(tmp)?.sync_all()?;
    std::fs::rename(tmp, path)?;
    sync_dir(path)
}

/// Fsyncs the folder holding `path`, so a rename survives a power cut.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// The writer of a temporary file named by [`temp_path`]: (host, pid).
fn writer_of(name: &str) -> Option<(&str, u32)> {
    let (_, rest) = name.rsplit_once(MARKER)?;
    let mut parts = rest.splitn(4, '.');
    let host = parts.next()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u64>().ok()?;
    Some((host, pid))
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Removes the temporary files in `dir` (not recursive) that [`temp_path`] named for processes
/// that are gone: those of this host whose process no longer exists, and those of other hosts
/// older than two days. Returns what was removed. A missing `dir` is not an error.
pub fn clean_stale_temps(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let me = host();
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((h, pid)) = writer_of(name) else {
            continue;
        };
        let stale = if h == me {
            !process_alive(pid)
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > FOREIGN_STALE_AFTER)
        };
        if stale {
            let p = entry.path();
            match std::fs::remove_file(&p) {
                Ok(()) => removed.push(p),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_content_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_bytes_atomic(&p, b"one").unwrap();
        write_bytes_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(names(dir.path()), ["a.txt"]);
    }

    #[test]
    fn a_failed_or_dropped_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_bytes_atomic(&p, b"good").unwrap();
        let err = write_atomic(&p, |w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("simulated failure"))
        });
        assert!(err.is_err());
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"abandoned").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&p).unwrap(), b"good");
        assert_eq!(names(dir.path()), ["a.txt"]);
    }

    #[test]
    fn temp_names_are_unique_keep_the_extension_and_name_the_writer() {
        let a = temp_path(Path::new("/d/clip.mp4"));
        let b = temp_path(Path::new("/d/clip.mp4"));
        assert_ne!(a, b);
        assert_eq!(a.parent(), Some(Path::new("/d")));
        assert_eq!(a.extension().unwrap(), "mp4");
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".clip.mp4.ethos-tmp."), "{name}");
        assert_eq!(writer_of(name), Some((host().as_str(), std::process::id())));
        assert_eq!(writer_of("clip.mp4"), None);
        assert_eq!(writer_of(".x.ethos-tmp.h.notapid.0"), None);
    }

    #[test]
    fn files_follow_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ckpt");
        // SAFETY: umask is process-wide; this test sets and restores it around one write.
        let old = unsafe { libc::umask(0o022) };
        write_bytes_atomic(&p, b"x").unwrap();
        unsafe { libc::umask(old) };
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn stale_temps_of_dead_processes_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let live = temp_path(&dir.path().join("a.ckpt"));
        std::fs::write(&live, b"mine").unwrap();
        // A process that has exited: spawn one and wait for it.
        let dead_pid = std::process::Command::new("true")
            .spawn()
            .map(|mut c| {
                let id = c.id();
                c.wait().unwrap();
                id
            })
            .unwrap();
        let dead = dir
            .path()
            .join(format!(".b.clip{MARKER}{}.{dead_pid}.3", host()));
        std::fs::write(&dead, b"left by a kill").unwrap();
        let foreign = dir.path().join(format!(".c.csv{MARKER}otherhost.1.0.csv"));
        std::fs::write(&foreign, b"recent").unwrap();
        std::fs::write(dir.path().join("keep.txt"), b"user file").unwrap();
        let removed = clean_stale_temps(dir.path()).unwrap();
        assert_eq!(removed, vec![dead.clone()]);
        assert!(live.exists() && foreign.exists() && !dead.exists());
        assert!(
            clean_stale_temps(&dir.path().join("missing"))
                .unwrap()
                .is_empty()
        );
    }
}
