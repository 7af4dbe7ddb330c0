//! The spinner on stderr while the index is queried: the command line's [`Report`].

use std::sync::Arc;
use std::time::Duration;

use bitpoll_client::{ClientStats, Report, Reporter};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

struct Spinner(ProgressBar);

impl Report for Spinner {
    fn progress(&self, c: ClientStats) {
        self.0.set_message(format!(
            "package index: {} requests, {} from cache, {:.1} MiB",
            c.requests,
            c.cache_hits + c.not_modified,
            c.bytes_downloaded as f64 / (1024.0 * 1024.0)
        ));
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// A spinner for a person at a terminal.
pub fn spinner() -> Reporter {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message("querying the package index");
    Reporter(Arc::new(Spinner(bar)))
}
