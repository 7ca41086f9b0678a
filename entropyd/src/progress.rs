//! Progress lines for long work (`samples`, `assess`, `generate` while it
//! waits for entropy).
//!
//! Contract: a [`Progress`] draws one line on stderr, with the count, the
//! rate and the time left, through indicatif, and only when stderr is a
//! terminal; otherwise it prints nothing at all, so redirected output and
//! scripts see no extra bytes. Updates are cheap (indicatif limits redraws
//! to a few per second).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Redraws per second at most.
const REDRAW_HZ: u8 = 4;

/// One progress line on stderr (hidden unless stderr is a terminal).
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A line for `total` units of `unit` (e.g. "samples", "bytes"), led by
    /// `what`; shown only when stderr is a terminal and `show` is true.
    #[must_use]
    pub fn new(what: &str, total: u64, unit: &str, show: bool) -> Progress {
        let bar = if show && std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(
                Some(total),
                ProgressDrawTarget::stderr_with_hz(REDRAW_HZ),
            );
            let template = format!(
                "{{msg}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, ETA {{eta}})"
            );
            let style = ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("#>.");
            bar.set_style(style);
            bar.set_message(what.to_owned());
            bar
        } else {
            ProgressBar::hidden()
        };
        Progress { bar }
    }

    /// `done` units so far.
    pub fn set(&self, done: u64) {
        self.bar.set_position(done);
    }

    /// Changes the leading text (e.g. from collecting to assessing).
    pub fn message(&self, what: &str) {
        self.bar.set_message(what.to_owned());
    }

    /// Removes the line (the work is done or failed).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
