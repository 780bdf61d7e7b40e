//! Progress bars for `put` and `get` on standard error: only when it is a terminal, never with
//! `--json`, and only for transfers of at least [`THRESHOLD`] (a transfer of unknown length —
//! standard input — shows its bar once it has moved that much).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Transfers smaller than this get no bar.
pub(crate) const THRESHOLD: u64 = 8 << 20;

/// Whether a transfer of `len` bytes (`None`: unknown yet) gets a bar right away, a bar once
/// it passes [`THRESHOLD`] (`Later`), or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Show {
    /// No bar.
    Never,
    /// A bar from the start.
    Now,
    /// A bar once [`THRESHOLD`] bytes have moved.
    Later,
}

/// The decision, from what is known.
pub(crate) fn decide(len: Option<u64>, terminal: bool, json: bool) -> Show {
    if json || !terminal {
        return Show::Never;
    }
    match len {
        Some(n) if n >= THRESHOLD => Show::Now,
        Some(_) => Show::Never,
        None => Show::Later,
    }
}

/// A progress bar on standard error, or nothing; cleared when dropped.
#[derive(Debug)]
pub(crate) struct Progress {
    tick: Tick,
}

/// What a transfer reports its bytes to (cheap to clone, for stream adapters).
#[derive(Debug, Clone)]
pub(crate) struct Tick(Option<ProgressBar>);

impl Progress {
    /// A bar for moving `len` bytes (`None`: unknown) of `what`.
    pub(crate) fn new(what: &str, len: Option<u64>, json: bool) -> Progress {
        let show = decide(len, std::io::stderr().is_terminal(), json);
        if show == Show::Never {
            return Progress { tick: Tick(None) };
        }
        let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::hidden());
        let style = match len {
            Some(_) => ProgressStyle::with_template(
                "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}, {eta} left",
            ),
            None => ProgressStyle::with_template(
                "{msg} {spinner} {binary_bytes} {binary_bytes_per_sec}",
            ),
        };
        if let Ok(style) = style {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        if show == Show::Now {
            reveal(&bar);
        }
        Progress {
            tick: Tick(Some(bar)),
        }
    }

    /// The handle transfers report to.
    pub(crate) fn tick(&self) -> Tick {
        self.tick.clone()
    }
}

fn reveal(bar: &ProgressBar) {
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.enable_steady_tick(Duration::from_millis(200));
}

impl Tick {
    /// `n` more bytes moved.
    pub(crate) fn add(&self, n: u64) {
        let Some(b) = &self.0 else { return };
        b.inc(n);
        if b.is_hidden() && b.position() >= THRESHOLD {
            reveal(b);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = &self.tick.0 {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_only_for_large_transfers_on_a_terminal_without_json() {
        assert_eq!(decide(Some(THRESHOLD), true, false), Show::Now);
        assert_eq!(decide(Some(THRESHOLD - 1), true, false), Show::Never);
        assert_eq!(decide(None, true, false), Show::Later);
        assert_eq!(decide(Some(THRESHOLD), false, false), Show::Never);
        assert_eq!(decide(Some(THRESHOLD), true, true), Show::Never);
        assert_eq!(decide(None, false, false), Show::Never);
    }
}
