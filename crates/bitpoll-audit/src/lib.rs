//! Known vulnerabilities of locked package versions.
//!
//! What it is for: given the (PyPI name, version) pairs a lock pins, say which published
//! advisories affect them, from two sources: the per-release documents of an index's JSON
//! API (its `vulnerabilities` list) and a local export of the OSV database (OSV JSON files,
//! PyPI ecosystem). Each pin ends up with the advisories found and the sources that were
//! actually consulted for it. [`Sources`] asks them about every pin; [`render`] writes the
//! report as text, Markdown or JSON.
//!
//! What it must not do: fetch anything (the caller hands in a function that fetches a
//! release's document, so this crate never decides which hosts are contacted), and report a pin as clean when no source gave
//! an answer for it: such a pin is [`Status::NotChecked`], never an empty list of advisories
//! that reads as "no known vulnerabilities". It does not decide exit codes either; it only
//! ranks severities so that the caller can.

mod gather;
mod osv;
pub mod render;

pub use gather::{LookupError, ReleaseJson, Sources};

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

pub use crate::osv::{OsvDb, OsvError};

/// How bad an advisory says it is. Sources that give no severity (the index's JSON API
/// gives none) produce [`Severity::Unknown`], which ranks as high: not knowing is no reason
/// to let a pin through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
    Unknown,
}

impl Severity {
    /// The rank used by `--fail-on`: unknown counts as high.
    pub fn rank(self) -> u8 {
        match self {
            Severity::Low => 1,
            Severity::Medium => 2,
            Severity::High | Severity::Unknown => 3,
            Severity::Critical => 4,
        }
    }

    /// Whether this is at or above `threshold`.
    pub fn reaches(self, threshold: Severity) -> bool {
        self.rank() >= threshold.rank()
    }

    /// Reads the words advisory databases use (`MODERATE` is GitHub's medium).
    pub fn from_word(word: &str) -> Option<Severity> {
        match word.trim().to_ascii_lowercase().as_str() {
            "low" => Some(Severity::Low),
            "medium" | "moderate" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    /// From a CVSS base score.
    pub fn from_score(score: f64) -> Severity {
        match score {
            s if s >= 9.0 => Severity::Critical,
            s if s >= 7.0 => Severity::High,
            s if s >= 4.0 => Severity::Medium,
            _ => Severity::Low,
        }
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::from_word(s)
            .ok_or_else(|| format!("`{s}` is not a severity (low, medium, high, critical)"))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
            Severity::Unknown => "unknown",
        })
    }
}

/// Where an advisory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// The index's JSON API, per release.
    IndexJson,
    /// A local OSV export.
    Osv,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::IndexJson => "index JSON API",
            SourceKind::Osv => "OSV database",
        })
    }
}

/// One advisory affecting one pin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advisory {
    pub id: String,
    /// Other names of the same advisory (CVE, GHSA, PYSEC identifiers).
    pub aliases: Vec<String>,
    pub summary: String,
    pub severity: Severity,
    /// Versions that fix it, as the source lists them.
    pub fixed_in: Vec<String>,
    pub sources: Vec<SourceKind>,
}

impl Advisory {
    /// Whether `other` is the same advisory under its own or one of its aliases' names.
    fn same_as(&self, other: &Advisory) -> bool {
        let names = |a: &Advisory| {
            std::iter::once(a.id.clone())
                .chain(a.aliases.iter().cloned())
                .collect::<Vec<_>>()
        };
        let mine = names(self);
        names(other).iter().any(|n| mine.contains(n))
    }

    /// Folds `other` (the same advisory from another source) into this one.
    fn merge(&mut self, other: Advisory) {
        for alias in other.aliases.into_iter().chain(std::iter::once(other.id)) {
            if alias != self.id && !self.aliases.contains(&alias) {
                self.aliases.push(alias);
            }
        }
        self.aliases.sort();
        if self.severity == Severity::Unknown {
            self.severity = other.severity;
        }
        if self.summary.is_empty() {
            self.summary = other.summary;
        }
        for v in other.fixed_in {
            if !self.fixed_in.contains(&v) {
                self.fixed_in.push(v);
            }
        }
        for s in other.sources {
            if !self.sources.contains(&s) {
                self.sources.push(s);
            }
        }
        self.sources.sort();
    }
}

/// What is known about one pin.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Status {
    /// At least one source answered for this pin.
    Checked {
        checked_by: Vec<SourceKind>,
        advisories: Vec<Advisory>,
    },
    /// No source answered: nothing is known, which is not the same as nothing being wrong.
    NotChecked { reason: String },
}

/// A pinned release, by PyPI name and version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Pin {
    pub name: String,
    pub version: String,
}

/// The answers gathered for one pin, before they are turned into a [`Status`].
#[derive(Debug, Default)]
pub struct Findings {
    checked_by: Vec<SourceKind>,
    advisories: Vec<Advisory>,
    unanswered: Vec<String>,
}

impl Findings {
    /// Records that `source` answered, with these advisories (possibly none).
    pub fn answered(&mut self, source: SourceKind, advisories: Vec<Advisory>) {
        if !self.checked_by.contains(&source) {
            self.checked_by.push(source);
            self.checked_by.sort();
        }
        for advisory in advisories {
            match self.advisories.iter_mut().find(|a| a.same_as(&advisory)) {
                Some(known) => known.merge(advisory),
                None => self.advisories.push(advisory),
            }
        }
    }

    /// Records why a source gave no answer.
    pub fn unanswered(&mut self, why: String) {
        self.unanswered.push(why);
    }

    pub fn into_status(mut self) -> Status {
        if self.checked_by.is_empty() {
            let reason = if self.unanswered.is_empty() {
                "no advisory source was available".to_string()
            } else {
                self.unanswered.join("; ")
            };
            return Status::NotChecked { reason };
        }
        self.advisories.sort_by(|a, b| a.id.cmp(&b.id));
        Status::Checked {
            checked_by: self.checked_by,
            advisories: self.advisories,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid JSON API document: {0}")]
pub struct JsonApiError(String);

/// The index JSON API's answer for one release: `None` when the document carries no
/// `vulnerabilities` list (the index serves no advisory data), else the advisories, which
/// may be none.
pub fn parse_release_json(body: &[u8]) -> Result<Option<Vec<Advisory>>, JsonApiError> {
    #[derive(serde::Deserialize)]
    struct Release {
        vulnerabilities: Option<Vec<Vulnerability>>,
    }
    #[derive(serde::Deserialize)]
    struct Vulnerability {
        id: String,
        #[serde(default)]
        aliases: Option<Vec<String>>,
        #[serde(default)]
        summary: Option<String>,
        #[serde(default)]
        details: Option<String>,
        #[serde(default)]
        fixed_in: Option<Vec<String>>,
        #[serde(default)]
        withdrawn: Option<serde_json::Value>,
    }
    let release: Release = serde_json::from_slice(body).map_err(|e| JsonApiError(e.to_string()))?;
    Ok(release.vulnerabilities.map(|list| {
        list.into_iter()
            .filter(|v| v.withdrawn.as_ref().is_none_or(|w| w.is_null()))
            .map(|v| Advisory {
                summary: v
                    .summary
                    .filter(|s| !s.trim().is_empty())
                    .or_else(|| v.details.map(|d| first_line(&d)))
                    .unwrap_or_default(),
                id: v.id,
                aliases: v.aliases.unwrap_or_default(),
                severity: Severity::Unknown,
                fixed_in: v.fixed_in.unwrap_or_default(),
                sources: vec![SourceKind::IndexJson],
            })
            .collect()
    }))
}

fn first_line(text: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut out: String = line.chars().take(160).collect();
    if line.chars().count() > 160 {
        out.push('…');
    }
    out
}

/// The advisories of every pin, in pin order.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub pins: BTreeMap<Pin, Status>,
}

impl Report {
    /// The advisories at or above `threshold`, with their pin.
    pub fn at_or_above(&self, threshold: Severity) -> Vec<(&Pin, &Advisory)> {
        self.pins
            .iter()
            .filter_map(|(pin, status)| match status {
                Status::Checked { advisories, .. } => Some((pin, advisories)),
                Status::NotChecked { .. } => None,
            })
            .flat_map(|(pin, list)| list.iter().map(move |a| (pin, a)))
            .filter(|(_, a)| a.severity.reaches(threshold))
            .collect()
    }

    pub fn not_checked(&self) -> usize {
        self.pins
            .values()
            .filter(|s| matches!(s, Status::NotChecked { .. }))
            .count()
    }

    pub fn advisory_count(&self) -> usize {
        self.pins
            .values()
            .map(|s| match s {
                Status::Checked { advisories, .. } => advisories.len(),
                Status::NotChecked { .. } => 0,
            })
            .sum()
    }
}

/// The index served a document it should not have.
impl bitpoll_error_class::Classify for JsonApiError {
    fn class(&self) -> bitpoll_error_class::ErrorClass {
        bitpoll_error_class::ErrorClass::Unavailable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_api_without_vulnerabilities_is_no_answer() {
        assert_eq!(parse_release_json(br#"{"info": {}}"#).unwrap(), None);
        assert_eq!(
            parse_release_json(br#"{"info": {}, "vulnerabilities": []}"#).unwrap(),
            Some(vec![])
        );
        let found = parse_release_json(
            br#"{"vulnerabilities": [
                {"id": "PYSEC-1", "aliases": ["CVE-1"], "summary": null, "details": "Bad thing.\nMore.", "fixed_in": ["2.0"], "withdrawn": null},
                {"id": "PYSEC-2", "aliases": [], "summary": "gone", "fixed_in": [], "withdrawn": "2024-01-01T00:00:00Z"}
            ]}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(found.len(), 1, "withdrawn advisories are dropped");
        assert_eq!(found[0].summary, "Bad thing.");
        assert_eq!(found[0].severity, Severity::Unknown);
    }

    #[test]
    fn no_answer_is_not_clean_and_aliases_merge() {
        let mut none = Findings::default();
        none.unanswered("the index serves no JSON API".into());
        assert!(
            matches!(none.into_status(), Status::NotChecked { reason } if reason.contains("JSON API"))
        );
        let advisory = |id: &str, alias: &str, source| Advisory {
            id: id.into(),
            aliases: vec![alias.into()],
            summary: String::new(),
            severity: if source == SourceKind::Osv {
                Severity::Critical
            } else {
                Severity::Unknown
            },
            fixed_in: vec!["2.0".into()],
            sources: vec![source],
        };
        let mut both = Findings::default();
        both.answered(
            SourceKind::IndexJson,
            vec![advisory("PYSEC-1", "GHSA-x", SourceKind::IndexJson)],
        );
        both.answered(
            SourceKind::Osv,
            vec![advisory("GHSA-x", "PYSEC-1", SourceKind::Osv)],
        );
        let Status::Checked {
            checked_by,
            advisories,
        } = both.into_status()
        else {
            panic!("checked");
        };
        assert_eq!(checked_by, [SourceKind::IndexJson, SourceKind::Osv]);
        assert_eq!(advisories.len(), 1);
        assert_eq!(advisories[0].severity, Severity::Critical);
        assert!(Severity::Unknown.reaches(Severity::High));
        assert!(!Severity::Unknown.reaches(Severity::Critical));
    }
}
