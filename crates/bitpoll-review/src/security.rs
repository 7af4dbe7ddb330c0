//! The supply-chain side of a lock diff: what a reviewer should weigh before trusting a new
//! pin, beyond what the version numbers say. Fresh releases (within the release-age window),
//! and a publisher identity that disappeared or changed, the signature of a taken-over
//! account. Kept apart from the rest of the diff, which calls [`review`] once.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use bitpoll_lockfile::{Lock, Package, Source};
use bitpoll_simple::Timestamp;
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
    /// A new or changed pin with a known advisory.
    KnownAdvisory,
    /// An advisory that affected the previous pin and no longer applies.
    AdvisoryFixed,
}

impl Signal {
    pub fn describe(self) -> &'static str {
        match self {
            Signal::YoungRelease => "released recently",
            Signal::ProvenanceLost => "provenance lost",
            Signal::PublisherChanged => "publisher changed",
            Signal::KnownAdvisory => "known vulnerability",
            Signal::AdvisoryFixed => "vulnerability fixed",
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
    let window = crate::review_window(new.inputs.min_release_age.as_deref());
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

/// The advisories affecting a pin, `None` when no source could say.
pub type AdvisoryLookup<'a, E> =
    dyn Fn(&bitpoll_audit::Pin) -> Result<Option<Vec<bitpoll_audit::Advisory>>, E> + Sync + 'a;

/// Advisory findings for the pins `new` adds or changes: advisories of the new versions,
/// and advisories of the old versions that the new ones no longer have. `lookup` answers
/// for one pin, `None` when no source could (then nothing is claimed either way).
pub fn advisory_findings<E>(
    old: &Lock,
    new: &Lock,
    lookup: &AdvisoryLookup<'_, E>,
) -> Result<Vec<Finding>, E> {
    let pins = |lock: &Lock| -> BTreeSet<bitpoll_audit::Pin> { crate::pins(lock) };
    let (before, after) = (pins(old), pins(new));
    let mut out = BTreeSet::new();
    let names = |a: &bitpoll_audit::Advisory| {
        std::iter::once(a.id.clone())
            .chain(a.aliases.iter().cloned())
            .collect::<BTreeSet<String>>()
    };
    for pin in after.difference(&before) {
        let Some(found) = lookup(pin)? else {
            continue;
        };
        for a in &found {
            out.insert(Finding {
                package: pin.name.clone(),
                version: pin.version.clone(),
                signal: Signal::KnownAdvisory,
                detail: advisory_detail(a),
            });
        }
    }
    for gone in before.difference(&after) {
        let Some(had) = lookup(gone)? else {
            continue;
        };
        let successors: Vec<&bitpoll_audit::Pin> =
            after.iter().filter(|p| p.name == gone.name).collect();
        let mut still: BTreeSet<String> = BTreeSet::new();
        let mut known = true;
        for s in &successors {
            match lookup(s)? {
                Some(list) => still.extend(list.iter().flat_map(names)),
                None => known = false,
            }
        }
        if !known {
            continue;
        }
        let now = successors
            .iter()
            .map(|p| p.version.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        for a in had.iter().filter(|a| names(a).is_disjoint(&still)) {
            out.insert(Finding {
                package: gone.name.clone(),
                version: if now.is_empty() {
                    gone.version.clone()
                } else {
                    now.clone()
                },
                signal: Signal::AdvisoryFixed,
                detail: format!(
                    "{} {} had {}; {}",
                    gone.name,
                    gone.version,
                    a.id,
                    if now.is_empty() {
                        "the package is gone"
                    } else {
                        "this version does not"
                    }
                ),
            });
        }
    }
    Ok(out.into_iter().collect())
}

fn advisory_detail(a: &bitpoll_audit::Advisory) -> String {
    let mut out = format!("{} ({})", a.id, a.severity);
    if !a.summary.is_empty() {
        out.push_str(": ");
        out.push_str(&a.summary);
    }
    if !a.fixed_in.is_empty() {
        out.push_str(&format!("; fixed in {}", a.fixed_in.join(", ")));
    }
    out
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
