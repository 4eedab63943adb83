//! Problems found while reading annotation files, and the policies that decide what happens to
//! each kind.
//!
//! Every parser reports into one [`Collector`]: a problem names the file, the place in it (an
//! observation, a task, a track, a line), the time or frame and the offending value. A problem
//! whose kind has a policy chosen by the user is *handled* (the event is dropped, closed or
//! split, and the summary says so); every other problem is an error, and the import fails with
//! exit code 2 listing all of them at once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// What kind of problem was found. The kinds with a policy flag are noted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// The file is not valid JSON / XML / CSV, or not of the expected tool's layout.
    Unreadable,
    /// A value has the wrong type or is out of range (a negative time, a frame that is not a
    /// number, a missing key). `--skip-invalid` drops the record.
    Invalid,
    /// A behaviour code or label that the file's own ethogram / label list does not declare.
    /// `--skip-invalid` drops the record.
    UnknownBehavior,
    /// A STATE event's START without a STOP (or a STOP without a START). `--on-unpaired`.
    Unpaired,
    /// An event that starts in one media file and ends in the next one of the same player.
    /// `--on-boundary`.
    CrossesFiles,
    /// An event before the start or past the end of its media. `--skip-invalid` drops it.
    OutsideMedia,
    /// A media path with no file under `--videos-root`, or with several equally good matches.
    /// `--on-missing-video skip`.
    MissingVideo,
    /// Frames cannot be turned into seconds: no frame rate from the file, the video or `--fps`,
    /// or no video length for a whole-video label.
    NoFrameRate,
    /// A file or observation layout ethos does not read (e.g. media creation dates as offsets).
    Unsupported,
}

impl ProblemKind {
    /// The flag that chooses a policy for this kind, if any.
    pub fn policy_flag(self) -> Option<&'static str> {
        match self {
            ProblemKind::Unpaired => Some("--on-unpaired drop|close-at-end"),
            ProblemKind::CrossesFiles => Some("--on-boundary split|drop"),
            ProblemKind::MissingVideo => Some("--on-missing-video skip"),
            ProblemKind::Invalid | ProblemKind::UnknownBehavior | ProblemKind::OutsideMedia => {
                Some("--skip-invalid")
            }
            _ => None,
        }
    }
}

/// One problem: where it is and what is wrong.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Problem {
    /// What kind of problem.
    pub kind: ProblemKind,
    /// The file it was found in.
    pub file: PathBuf,
    /// Where in the file: `observation "obs1"`, `task 3`, `track 2`, `line 14`.
    pub place: String,
    /// The time (`12.300 s`) or frame (`frame 45`) it concerns, if any.
    pub time: Option<String>,
    /// The offending value as written, if any.
    pub value: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem of `kind` in `file` at `place`.
    pub fn new(
        kind: ProblemKind,
        file: &Path,
        place: impl Into<String>,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            kind,
            file: file.to_path_buf(),
            place: place.into(),
            time: None,
            value: None,
            message: message.into(),
        }
    }

    /// The same problem at a time in seconds.
    pub fn at_s(mut self, seconds: f64) -> Problem {
        self.time = Some(format!("{seconds:.3} s"));
        self
    }

    /// The same problem at a time given as text (`frame 12`, `12.3 s to 14 s`).
    pub fn at(mut self, time: impl Into<String>) -> Problem {
        self.time = Some(time.into());
        self
    }

    /// The same problem with the offending value.
    pub fn value(mut self, value: impl Into<String>) -> Problem {
        self.value = Some(value.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if !self.place.is_empty() {
            write!(f, ": {}", self.place)?;
        }
        if let Some(t) = &self.time {
            write!(f, ", at {t}")?;
        }
        if let Some(v) = &self.value {
            write!(f, ", value {v:?}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every unhandled problem of an import, printed one per line with the policy flag that would
/// handle each kind.
#[derive(Clone, Debug, PartialEq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            write!(f, "\n  {p}")?;
        }
        let mut flags: Vec<&str> = self.0.iter().filter_map(|p| p.kind.policy_flag()).collect();
        flags.sort_unstable();
        flags.dedup();
        if !flags.is_empty() {
            write!(
                f,
                "\n  (policies for some of these kinds: {})",
                flags.join(", ")
            )?;
        }
        Ok(())
    }
}

/// What to do with a STATE event that has no STOP (or a STOP with no START).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnUnpaired {
    /// A problem (exit 2).
    #[default]
    Error,
    /// Drop the event (counted in the summary).
    Drop,
    /// Close a START at the end of the media file it starts in (a lone STOP is dropped).
    CloseAtEnd,
}

/// What to do with an event that crosses from one media file into the next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnBoundary {
    /// A problem (exit 2).
    #[default]
    Error,
    /// One event per file it covers.
    Split,
    /// Drop the event.
    Drop,
}

/// The user's choices for kinds of problems (all default to "a problem, exit 2").
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Policies {
    /// Unpaired STATE events.
    pub on_unpaired: OnUnpaired,
    /// Events that cross a media-file boundary.
    pub on_boundary: OnBoundary,
    /// POINT events become windows of this many seconds centred on the point; `None` skips them
    /// (counted in the summary, not a problem).
    pub point_seconds: Option<f64>,
    /// Skip media that has no file under `--videos-root` instead of failing.
    pub skip_missing_video: bool,
    /// Drop records with invalid values, unknown behaviours or times outside their media.
    pub skip_invalid: bool,
}

/// Collects problems, applies the policies, and counts what was read, merged and skipped.
#[derive(Debug, Default)]
pub struct Collector {
    /// The user's policies.
    pub policies: Policies,
    errors: Vec<Problem>,
    handled: Vec<(Problem, String)>,
    /// Counts of skipped things by reason (live observations, point events, ...).
    pub skipped: BTreeMap<String, usize>,
    /// Counts of merged things by kind (START/STOP pairs, keyframe spans, ...).
    pub merged: BTreeMap<String, usize>,
    /// Counts of things read by kind (observations, coded events, tracks, tasks, ...).
    pub read: BTreeMap<String, usize>,
    /// Facts worth telling (format versions met, frame rates used).
    pub notes: Vec<String>,
}

impl Collector {
    /// A collector with `policies`.
    pub fn new(policies: Policies) -> Collector {
        Collector {
            policies,
            ..Collector::default()
        }
    }

    /// Reports a problem that no policy handles (or whose policy is "error").
    pub fn error(&mut self, p: Problem) {
        self.errors.push(p);
    }

    /// Reports a problem that a policy handled with `action` (kept for the summary).
    pub fn handled(&mut self, p: Problem, action: impl Into<String>) {
        self.handled.push((p, action.into()));
    }

    /// Reports a problem of a kind that `--skip-invalid` / `--on-missing-video skip` may
    /// handle: handled (dropped) when that policy is on, else an error. True when it was
    /// handled, i.e. the caller drops the record and goes on.
    pub fn invalid(&mut self, p: Problem) -> bool {
        let skip = match p.kind {
            ProblemKind::Invalid | ProblemKind::UnknownBehavior | ProblemKind::OutsideMedia => {
                self.policies.skip_invalid
            }
            ProblemKind::MissingVideo => self.policies.skip_missing_video,
            _ => false,
        };
        if skip {
            self.handled(p, "skipped");
        } else {
            self.error(p);
        }
        skip
    }

    /// Adds `n` to the skipped count of `reason`.
    pub fn skip(&mut self, reason: &str, n: usize) {
        if n > 0 {
            *self.skipped.entry(reason.to_string()).or_default() += n;
        }
    }

    /// Adds `n` to the merged count of `what`.
    pub fn merge(&mut self, what: &str, n: usize) {
        if n > 0 {
            *self.merged.entry(what.to_string()).or_default() += n;
        }
    }

    /// Adds `n` to the read count of `what`.
    pub fn count(&mut self, what: &str, n: usize) {
        *self.read.entry(what.to_string()).or_default() += n;
    }

    /// Adds a note for the summary (once).
    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// The unhandled problems so far.
    pub fn errors(&self) -> &[Problem] {
        &self.errors
    }

    /// The problems a policy handled, with what was done.
    pub fn handled_problems(&self) -> &[(Problem, String)] {
        &self.handled
    }

    /// Takes the unhandled problems out.
    pub fn take_errors(&mut self) -> Vec<Problem> {
        std::mem::take(&mut self.errors)
    }
}

/// Drops events whose times are not finite, negative or of no length (a frame rate or a frame
/// number so extreme that the arithmetic left the representable range), reporting each.
pub(crate) fn keep_sane(
    events: Vec<crate::events::AnnotEvent>,
    file: &Path,
    c: &mut Collector,
) -> Vec<crate::events::AnnotEvent> {
    events
        .into_iter()
        .filter(|e| {
            let ok = e.start_s.is_finite()
                && e.duration_s.is_finite()
                && e.start_s >= 0.0
                && e.duration_s > 0.0;
            if !ok {
                c.invalid(
                    Problem::new(
                        ProblemKind::Invalid,
                        file,
                        e.observation.clone().unwrap_or_default(),
                        format!(
                            "event times out of range (start {} s, duration {} s)",
                            e.start_s, e.duration_s
                        ),
                    )
                    .value(e.behavior.clone()),
                );
            }
            ok
        })
        .collect()
}

/// `value` as it would be read back from a CSV cell (for messages).
pub(crate) fn shown(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => {
            let s = other.to_string();
            if s.len() > 80 {
                format!("{}...", s.chars().take(77).collect::<String>())
            } else {
                s
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_place_time_value_and_the_policy() {
        let p = Problem::new(
            ProblemKind::Unpaired,
            Path::new("a.boris"),
            "observation \"obs1\"",
            "START of ear has no STOP",
        )
        .at_s(12.3)
        .value("ear");
        assert_eq!(
            p.to_string(),
            "a.boris: observation \"obs1\", at 12.300 s, value \"ear\": START of ear has no STOP"
        );
        let all = Problems(vec![p]).to_string();
        assert!(all.contains("--on-unpaired drop|close-at-end"), "{all}");
    }

    #[test]
    fn skip_invalid_handles_only_its_kinds() {
        let mut c = Collector::new(Policies {
            skip_invalid: true,
            ..Policies::default()
        });
        let p = |k| Problem::new(k, Path::new("f"), "", "m");
        assert!(c.invalid(p(ProblemKind::Invalid)));
        assert!(c.invalid(p(ProblemKind::OutsideMedia)));
        assert!(!c.invalid(p(ProblemKind::MissingVideo)));
        assert_eq!(c.errors().len(), 1);
        assert_eq!(c.handled_problems().len(), 2);
    }
}
