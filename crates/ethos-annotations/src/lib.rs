//! Annotations in and out: the files of the coding tools researchers use (BORIS, CVAT, Label
//! Studio) → the events CSV ethos trains from; events (labelled or predicted) → a BORIS project
//! to review and correct in; and a corrections CSV → a new events CSV (the relabelling loop).
//!
//! - [`import`]: `ethos import boris|cvat|labelstudio FILE... --out events.csv`; every problem
//!   of every file is collected ([`problems`]) and reported at once unless a policy was chosen
//!   for its kind;
//! - [`boris`], [`cvat`], [`labelstudio`]: one reader per tool (see each module for the
//!   formats, versions and time conventions);
//! - [`events`]: the events CSV, written and read with the `csv` crate;
//! - [`media`]: media paths as tools wrote them → videos under `--videos-root`, probed once;
//! - [`boris_export`]: `ethos export boris`;
//! - [`relabel`]: `ethos relabel`.
//!
//! # Corrections CSV
//!
//! The file `ethos relabel` reads (the review page writes it):
//!
//! ```text
//! event_idx,action,note
//! 12,tail,was an ear suck
//! 40,drop,
//! ```
//!
//! - `event_idx`: an event of the events CSV (integer);
//! - `action`: a class name (the event is relabelled to it) or `drop` (the event is removed);
//! - `note`: optional free text (the column may be left out).
//!
//! Unknown `event_idx`, unknown class, an empty action and an `event_idx` listed twice are
//! problems (exit 2, all listed). See [`relabel`] for the outputs.

pub mod boris;
pub mod boris_export;
pub mod cvat;
pub mod error;
pub mod events;
pub mod import;
pub mod labelstudio;
pub mod media;
pub mod problems;
pub mod relabel;

pub use error::AnnotError;
pub use events::AnnotEvent;
pub use problems::{OnBoundary, OnUnpaired, Policies, Problem, ProblemKind};
