//! Progress of long steps for people: an indicatif bar on a terminal, else one flushed line per
//! ~5% (and every note), so a SLURM log is never empty and never full of escape codes.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use ethos_pipeline::progress::Progress;

/// A progress display for `what` (e.g. `cache`, counting `clips`).
pub struct Bar {
    what: &'static str,
    unit: &'static str,
    bar: Option<indicatif::ProgressBar>,
    start: Instant,
    last_line: Mutex<usize>,
}

impl Bar {
    /// A display labelled `what`, counting `unit`s.
    pub fn new(what: &'static str, unit: &'static str) -> Bar {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            let template =
                format!("{what} {{bar:40}} {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}}");
            bar.set_style(
                indicatif::ProgressStyle::with_template(&template)
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Bar {
            what,
            unit,
            bar,
            start: Instant::now(),
            last_line: Mutex::new(0),
        }
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn step(&self, done: usize, total: usize, note: Option<&str>) {
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            if let Some(n) = note {
                bar.println(n);
            }
            return;
        }
        if let Some(n) = note {
            crate::output::line(format!("{}: {n}", self.what));
        }
        let step = total.div_ceil(20).max(1);
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        if done == total || done >= *last + step {
            *last = done;
            let secs = self.start.elapsed().as_secs_f64();
            crate::output::line(format!(
                "{}: {done}/{total} {} ({:.1} {}/s)",
                self.what,
                self.unit,
                done as f64 / secs.max(1e-9),
                self.unit
            ));
        }
    }
}
