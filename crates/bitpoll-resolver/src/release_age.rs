//! Holding back fresh releases (`min-release-age`): a file uploaded after the cut-off is not
//! a candidate unless a top-level `==` pins its version, the same escape hatch PEP 592 gives
//! yanked files. A release that is days old has had time to be noticed if it is malicious
//! or broken, and to be yanked.

use bitpoll_simple::{DistFile, Timestamp};

/// Why `file` is held back by `cutoff`, or `None` when it may be used.
pub(crate) fn held_back(
    file: &DistFile,
    cutoff: Option<&Timestamp>,
    pinned: bool,
) -> Option<String> {
    let cutoff = cutoff?;
    if pinned {
        return None;
    }
    match file.upload_time {
        Some(uploaded) if uploaded <= *cutoff => None,
        Some(uploaded) => Some(format!(
            "it was uploaded at {}, after the release-age cut-off {} (pin it with `==` to take it anyway)",
            uploaded.to_rfc3339(),
            cutoff.to_rfc3339()
        )),
        // Without an upload time, a file cannot be shown to be old enough.
        None => Some(format!(
            "the index gives no upload time, so it cannot be shown to predate the release-age cut-off {}",
            cutoff.to_rfc3339()
        )),
    }
}
