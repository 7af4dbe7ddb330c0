//! The supply-chain side of a lock diff: what a reviewer should weigh before trusting a new
//! pin, beyond what the version numbers say. Fresh releases (within the release-age window),
//! and a publisher identity that disappeared or changed, the signature of a taken-over
//! account. Kept apart from the rest of the diff, which calls [`review`] once.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use bitpoll_client::Timestamp;
use bitpoll_lockfile::{Lock, Package, Source};
use serde::Serialize;

/// One reason for a closer look at a pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    /// A new pin uploaded within the release-age window.
    YoungRelease,
    /// The previous version had a publisher identity (PEP 740) and this one has none.
    ProvenanceLost,
    /// The publisher identity differs from the previous version's.
    PublisherChanged,
}

impl Signal {
    pub fn describe(self) -> &'static str {
        match self {
            Signal::YoungRelease => "released recently",
            Signal::ProvenanceLost => "provenance lost",
            Signal::PublisherChanged => "publisher changed",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub package: String,
    pub version: String,
    pub signal: Signal,
    pub detail: String,
}

/// Every finding for the pins `new` adds or changes relative to `old`, measured at `now`.
pub fn review(old: &Lock, new: &Lock, now: Timestamp) -> Vec<Finding> {
    let window = crate::release_age::review_window(new.inputs.min_release_age.as_deref());
    let mut out = BTreeSet::new();
    for n in new.packages.iter().filter(|p| p.source == Source::Index) {
        let previous: Vec<&Package> = old
            .packages
            .iter()
            .filter(|o| o.name == n.name && o.source == Source::Index)
            .collect();
        if previous.iter().any(|o| o.version == n.version) {
            continue;
        }
        if let Some(uploaded) = newest_upload(n) {
            let age = now.unix_secs() - uploaded.unix_secs();
            if age < window.seconds as i64 {
                out.insert(Finding {
                    package: n.name.clone(),
                    version: n.version.clone(),
                    signal: Signal::YoungRelease,
                    detail: format!(
                        "uploaded {} ({} ago), within the {window} window",
                        uploaded.to_rfc3339(),
                        human_age(age)
                    ),
                });
            }
        }
        let before: BTreeSet<&str> = previous.iter().flat_map(|o| publishers(o)).collect();
        let after: BTreeSet<&str> = publishers(n).collect();
        if before.is_empty() {
            continue;
        }
        let unattested = n.artifacts.iter().any(|a| a.publisher.is_none());
        let was = |o: &&Package| o.version.clone();
        let old_versions: Vec<String> = previous.iter().map(was).collect();
        if unattested {
            out.insert(Finding {
                package: n.name.clone(),
                version: n.version.clone(),
                signal: Signal::ProvenanceLost,
                detail: format!(
                    "{} had provenance from {}; {} has {}",
                    old_versions.join(", "),
                    join(&before),
                    n.version,
                    if after.is_empty() {
                        "none".to_string()
                    } else {
                        format!("files without it (others from {})", join(&after))
                    }
                ),
            });
        } else if after != before {
            out.insert(Finding {
                package: n.name.clone(),
                version: n.version.clone(),
                signal: Signal::PublisherChanged,
                detail: format!("{} -> {}", join(&before), join(&after)),
            });
        }
    }
    out.into_iter().collect()
}

fn publishers(p: &Package) -> impl Iterator<Item = &str> {
    p.artifacts.iter().filter_map(|a| a.publisher.as_deref())
}

/// The latest upload time among an entry's artifacts: the youngest file decides.
fn newest_upload(p: &Package) -> Option<Timestamp> {
    p.artifacts
        .iter()
        .filter_map(|a| a.upload_time.as_deref().and_then(Timestamp::parse))
        .max()
}

fn human_age(secs: i64) -> String {
    match secs {
        s if s < 0 => "in the future".into(),
        s if s < 2 * 3600 => format!("{} minutes", s / 60),
        s if s < 2 * 86_400 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

fn join(items: &BTreeSet<&str>) -> String {
    items.iter().copied().collect::<Vec<_>>().join(", ")
}

/// The findings as plain text lines, for the top of the text diff.
pub fn render_text(findings: &[Finding]) -> String {
    let mut out = String::new();
    if findings.is_empty() {
        return out;
    }
    let _ = writeln!(out, "Security:");
    for f in findings {
        let _ = writeln!(
            out,
            "  ! {} {}: {}: {}",
            f.package,
            f.version,
            f.signal.describe(),
            f.detail
        );
    }
    out
}

/// A short "Security" section for the top of the markdown diff; empty when nothing fired.
pub fn render_markdown(findings: &[Finding]) -> String {
    let mut out = String::new();
    if findings.is_empty() {
        return out;
    }
    let _ = writeln!(out, "### Security\n");
    for f in findings {
        let _ = writeln!(
            out,
            "- **{} {}**: {}: {}",
            f.package,
            f.version,
            f.signal.describe(),
            f.detail
        );
    }
    let _ = writeln!(out);
    out
}
