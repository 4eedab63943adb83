//! Media paths as annotation tools wrote them → videos under `--videos-root`, and the facts of
//! those videos (frame rate, length) from one `ethos_video::probe` per video.
//!
//! Tools write the path the annotator's machine saw (`C:\Users\ana\videos\cam1\day1.mp4`,
//! `/data/upload/3/1a2b3c4d-day1.mp4`). A media path matches the file under the videos root
//! that shares the longest run of trailing path components with it (at least the file name;
//! `/` and `\` both separate components; exact case first, then ignoring case). Several files
//! with the same best run are ambiguous and reported, never guessed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::AnnotError;

/// What a media path resolved to.
#[derive(Clone, Debug, PartialEq)]
pub enum Resolved {
    /// No `--videos-root`: the path as the tool wrote it.
    AsWritten(String),
    /// The video, relative to the videos root (`/`-separated).
    Found(String),
    /// No file under the root has this file name.
    NotFound,
    /// Several files match equally well (relative paths).
    Ambiguous(Vec<String>),
}

/// Facts of a video that importers need.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VideoFacts {
    /// Frames per second (average rate, else the real base rate).
    pub fps: f64,
    /// Length in seconds.
    pub duration_s: f64,
    /// Number of frames.
    pub frames: u64,
}

/// The videos root (if any), its files, and probed facts.
#[derive(Debug, Default)]
pub struct Media {
    root: Option<PathBuf>,
    /// Lower-cased file name → relative paths (as component lists) of files with that name.
    by_name: HashMap<String, Vec<Vec<String>>>,
    facts: HashMap<String, Result<VideoFacts, String>>,
}

/// Splits a tool's media path into components on `/` and `\` (empty ones dropped).
pub fn components(path: &str) -> Vec<String> {
    path.split(['/', '\\'])
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .collect()
}

impl Media {
    /// Indexes every file under `root` (hidden files and folders are skipped).
    pub fn new(root: Option<&Path>) -> Result<Media, AnnotError> {
        let mut media = Media {
            root: root.map(Path::to_path_buf),
            ..Media::default()
        };
        if let Some(root) = root {
            if !root.is_dir() {
                return Err(AnnotError::Usage(format!(
                    "--videos-root {}: not a folder",
                    root.display()
                )));
            }
            let mut stack = vec![(root.to_path_buf(), Vec::<String>::new())];
            while let Some((dir, rel)) = stack.pop() {
                let entries = std::fs::read_dir(&dir).map_err(|source| AnnotError::Read {
                    path: dir.clone(),
                    source,
                })?;
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') {
                        continue;
                    }
                    let mut r = rel.clone();
                    r.push(name.clone());
                    let Ok(ft) = entry.file_type() else { continue };
                    if ft.is_dir() || (ft.is_symlink() && entry.path().is_dir()) {
                        // Bounded depth keeps a symlink loop from running forever.
                        if r.len() < 32 {
                            stack.push((entry.path(), r));
                        }
                    } else {
                        media
                            .by_name
                            .entry(name.to_lowercase())
                            .or_default()
                            .push(r);
                    }
                }
            }
        }
        Ok(media)
    }

    /// The videos root, if any.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// Resolves a media path as a tool wrote it.
    pub fn resolve(&self, media_path: &str) -> Resolved {
        if self.root.is_none() {
            return Resolved::AsWritten(media_path.to_string());
        }
        let want = components(media_path);
        let Some(name) = want.last() else {
            return Resolved::NotFound;
        };
        let Some(cands) = self.by_name.get(&name.to_lowercase()) else {
            return Resolved::NotFound;
        };
        let run = |c: &Vec<String>, fold: bool| {
            c.iter()
                .rev()
                .zip(want.iter().rev())
                .take_while(|(a, b)| {
                    if fold {
                        a.to_lowercase() == b.to_lowercase()
                    } else {
                        a == b
                    }
                })
                .count()
        };
        for fold in [false, true] {
            let scored: Vec<(usize, &Vec<String>)> = cands
                .iter()
                .map(|c| (run(c, fold), c))
                .filter(|(n, _)| *n > 0)
                .collect();
            let Some(best) = scored.iter().map(|(n, _)| *n).max() else {
                continue;
            };
            let top: Vec<String> = scored
                .iter()
                .filter(|(n, _)| *n == best)
                .map(|(_, c)| c.join("/"))
                .collect();
            return if top.len() == 1 {
                Resolved::Found(top.into_iter().next().unwrap_or_default())
            } else {
                let mut top = top;
                top.sort();
                Resolved::Ambiguous(top)
            };
        }
        Resolved::NotFound
    }

    /// Facts of `video` (relative to the root; probed once). `None` without a root.
    pub fn facts(&mut self, video: &str) -> Option<Result<VideoFacts, String>> {
        let root = self.root.as_ref()?;
        let path = root.join(video);
        Some(
            self.facts
                .entry(video.to_string())
                .or_insert_with(|| probe_facts(&path))
                .clone(),
        )
    }
}

/// Probes `path` for its frame rate, length and frame count.
pub fn probe_facts(path: &Path) -> Result<VideoFacts, String> {
    ethos_video::init();
    match ethos_video::probe(path) {
        Ok(info) => {
            let fps = if info.avg_fps > 0.0 {
                info.avg_fps
            } else {
                info.real_fps
            };
            if fps > 0.0 && fps.is_finite() {
                Ok(VideoFacts {
                    fps,
                    duration_s: info.duration_s,
                    frames: info.frame_count,
                })
            } else {
                Err(format!("{}: no frame rate", path.display()))
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_components_pick_the_file_and_ties_are_ambiguous() {
        let dir = tempfile::tempdir().unwrap();
        for p in [
            "cam1/day1.mp4",
            "cam2/day1.mp4",
            "cam2/Day2.MP4",
            "x/y/cam3/day1.mp4",
        ] {
            let f = dir.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, b"").unwrap();
        }
        let m = Media::new(Some(dir.path())).unwrap();
        assert_eq!(
            m.resolve("C:\\farm\\videos\\cam1\\day1.mp4"),
            Resolved::Found("cam1/day1.mp4".into())
        );
        assert_eq!(
            m.resolve("/mnt/cam3/day1.mp4"),
            Resolved::Found("x/y/cam3/day1.mp4".into())
        );
        assert_eq!(
            m.resolve("d:/CAM2/day2.mp4"),
            Resolved::Found("cam2/Day2.MP4".into())
        );
        assert!(matches!(m.resolve("day1.mp4"), Resolved::Ambiguous(v) if v.len() == 3));
        assert_eq!(m.resolve("day9.mp4"), Resolved::NotFound);
        let none = Media::new(None).unwrap();
        assert_eq!(
            none.resolve("a\\b.mp4"),
            Resolved::AsWritten("a\\b.mp4".into())
        );
    }
}
