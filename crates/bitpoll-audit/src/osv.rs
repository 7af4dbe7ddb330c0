//! A local export of the OSV database: one OSV JSON document per advisory, as the PyPI
//! ecosystem's `all.zip` unpacks (files may sit in subdirectories). Advisories of other
//! ecosystems are skipped; withdrawn ones too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep440_rs::Version;
use pep508_rs::PackageName;
use serde::Deserialize;

use crate::{Advisory, Severity, SourceKind};

#[derive(Debug, thiserror::Error)]
pub enum OsvError {
    #[error("{}: cannot read the OSV database: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not an OSV advisory: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}: no OSV advisory (*.json) in this directory", path.display())]
    Empty { path: PathBuf },
}

#[derive(Deserialize)]
struct Entry {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default)]
    affected: Vec<Affected>,
    #[serde(default)]
    database_specific: Option<serde_json::Value>,
    #[serde(default)]
    severity: Vec<SeverityEntry>,
}

#[derive(Deserialize)]
struct SeverityEntry {
    #[serde(default)]
    score: String,
}

#[derive(Deserialize, Clone)]
struct Affected {
    package: Option<AffectedPackage>,
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    ranges: Vec<Range>,
}

#[derive(Deserialize, Clone)]
struct AffectedPackage {
    ecosystem: String,
    name: String,
}

#[derive(Deserialize, Clone)]
struct Range {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// One advisory's part for one package.
struct Record {
    advisory: Advisory,
    affected: Vec<Affected>,
}

/// The PyPI advisories of an OSV export, by normalised package name.
pub struct OsvDb {
    by_package: HashMap<PackageName, Vec<Record>>,
    /// How many advisory documents were read.
    pub documents: usize,
}

impl OsvDb {
    /// Reads every `*.json` below `dir`.
    pub fn load(dir: &Path) -> Result<OsvDb, OsvError> {
        let mut files = Vec::new();
        collect(dir, &mut files, 0)?;
        if files.is_empty() {
            return Err(OsvError::Empty {
                path: dir.to_path_buf(),
            });
        }
        files.sort();
        let mut db = OsvDb {
            by_package: HashMap::new(),
            documents: 0,
        };
        for path in files {
            let bytes = std::fs::read(&path).map_err(|source| OsvError::Read {
                path: path.clone(),
                source,
            })?;
            let entry: Entry = serde_json::from_slice(&bytes).map_err(|e| OsvError::Parse {
                path: path.clone(),
                message: e.to_string(),
            })?;
            db.documents += 1;
            db.add(entry);
        }
        Ok(db)
    }

    fn add(&mut self, entry: Entry) {
        if entry.withdrawn.is_some() {
            return;
        }
        let severity = severity_of(&entry);
        let summary = entry
            .summary
            .clone()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| entry.details.as_deref().map(crate::first_line))
            .unwrap_or_default();
        let mut per_package: HashMap<PackageName, Vec<Affected>> = HashMap::new();
        for affected in &entry.affected {
            let Some(package) = &affected.package else {
                continue;
            };
            if package.ecosystem != "PyPI" {
                continue;
            }
            let Ok(name) = PackageName::from_str(&package.name) else {
                continue;
            };
            per_package.entry(name).or_default().push(affected.clone());
        }
        for (name, affected) in per_package {
            let fixed_in = affected
                .iter()
                .flat_map(|a| &a.ranges)
                .flat_map(|r| &r.events)
                .filter_map(|e| e.get("fixed").and_then(|v| v.as_str()))
                .map(str::to_string)
                .collect();
            self.by_package.entry(name).or_default().push(Record {
                advisory: Advisory {
                    id: entry.id.clone(),
                    aliases: entry.aliases.clone(),
                    summary: summary.clone(),
                    severity,
                    fixed_in,
                    sources: vec![SourceKind::Osv],
                },
                affected,
            });
        }
    }

    /// The advisories affecting `name` at `version` (an empty list is an answer: the export
    /// was searched and names none).
    pub fn advisories(&self, name: &str, version: &str) -> Vec<Advisory> {
        let Ok(name) = PackageName::from_str(name) else {
            return Vec::new();
        };
        let parsed = Version::from_str(version).ok();
        self.by_package
            .get(&name)
            .into_iter()
            .flatten()
            .filter(|r| {
                r.affected
                    .iter()
                    .any(|a| affects(a, version, parsed.as_ref()))
            })
            .map(|r| r.advisory.clone())
            .collect()
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<(), OsvError> {
    let read = std::fs::read_dir(dir).map_err(|source| OsvError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in read {
        let entry = entry.map_err(|source| OsvError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.is_dir() && depth < 4 {
            collect(&path, out, depth + 1)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    Ok(())
}

fn severity_of(entry: &Entry) -> Severity {
    let word = entry
        .database_specific
        .as_ref()
        .and_then(|d| d.get("severity"))
        .and_then(|s| s.as_str())
        .and_then(Severity::from_word);
    if let Some(word) = word {
        return word;
    }
    // A plain number is a base score; vectors would need a CVSS calculator.
    entry
        .severity
        .iter()
        .filter_map(|s| s.score.trim().parse::<f64>().ok())
        .map(Severity::from_score)
        .max_by_key(|s| s.rank())
        .unwrap_or(Severity::Unknown)
}

/// Whether `affected` covers `version`: listed explicitly, or inside one of its
/// `ECOSYSTEM` ranges (PEP 440 order), whose events open (`introduced`) and close (`fixed`,
/// exclusive; `last_affected`, inclusive) intervals in the order given.
fn affects(affected: &Affected, version: &str, parsed: Option<&Version>) -> bool {
    let listed = affected.versions.iter().any(|v| {
        v == version
            || match (parsed, Version::from_str(v)) {
                (Some(p), Ok(l)) => *p == l,
                _ => false,
            }
    });
    if listed {
        return true;
    }
    let Some(v) = parsed else {
        return false;
    };
    affected
        .ranges
        .iter()
        .filter(|r| r.kind == "ECOSYSTEM")
        .any(|range| {
            let mut open: Option<Option<Version>> = None;
            for event in &range.events {
                let get = |key: &str| event.get(key).and_then(|x| x.as_str());
                if let Some(start) = get("introduced") {
                    open = Some(if start == "0" {
                        None
                    } else {
                        Version::from_str(start).ok()
                    });
                } else if let Some(end) = get("fixed") {
                    if let (Some(start), Ok(end)) = (open.take(), Version::from_str(end)) {
                        if start.is_none_or(|s| *v >= s) && *v < end {
                            return true;
                        }
                    }
                } else if let Some(end) = get("last_affected") {
                    if let (Some(start), Ok(end)) = (open.take(), Version::from_str(end)) {
                        if start.is_none_or(|s| *v >= s) && *v <= end {
                            return true;
                        }
                    }
                }
            }
            open.is_some_and(|start| start.is_none_or(|s| *v >= s))
        })
}

/// The OSV export is a directory named on the command line.
impl bitpoll_error_class::Classify for OsvError {
    fn class(&self) -> bitpoll_error_class::ErrorClass {
        bitpoll_error_class::ErrorClass::BadInput
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(docs: &[&str]) -> OsvDb {
        let dir = tempfile::tempdir().unwrap();
        for (i, doc) in docs.iter().enumerate() {
            std::fs::create_dir_all(dir.path().join("PyPI")).unwrap();
            std::fs::write(dir.path().join(format!("PyPI/a{i}.json")), doc).unwrap();
        }
        OsvDb::load(dir.path()).unwrap()
    }

    #[test]
    fn ranges_and_lists_select_the_affected_versions() {
        let db = db(&[
            r#"{"id": "GHSA-1", "aliases": ["CVE-1"], "summary": "bad",
                "database_specific": {"severity": "MODERATE"},
                "affected": [{"package": {"ecosystem": "PyPI", "name": "Some_Pkg"},
                  "ranges": [{"type": "ECOSYSTEM", "events": [
                    {"introduced": "0"}, {"fixed": "1.2"}, {"introduced": "2.0"}, {"last_affected": "2.1"}]}]}]}"#,
            r#"{"id": "PYSEC-9", "affected": [{"package": {"ecosystem": "PyPI", "name": "some-pkg"},
                "versions": ["3.0"]}]}"#,
            r#"{"id": "GHSA-npm", "affected": [{"package": {"ecosystem": "npm", "name": "some-pkg"},
                "versions": ["1.0"]}]}"#,
            r#"{"id": "GHSA-old", "withdrawn": "2024-01-01T00:00:00Z",
                "affected": [{"package": {"ecosystem": "PyPI", "name": "some-pkg"}, "versions": ["1.0"]}]}"#,
        ]);
        let ids = |v: &str| {
            db.advisories("some.pkg", v)
                .into_iter()
                .map(|a| a.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("1.0"), ["GHSA-1"]);
        assert_eq!(ids("1.2"), Vec::<String>::new());
        assert_eq!(ids("2.1"), ["GHSA-1"]);
        assert_eq!(ids("2.2"), Vec::<String>::new());
        assert_eq!(ids("3.0"), ["PYSEC-9"]);
        let a = &db.advisories("some-pkg", "1.0")[0];
        assert_eq!(a.severity, Severity::Medium);
        assert_eq!(a.fixed_in, ["1.2"]);
        assert_eq!(
            db.advisories("some-pkg", "3.0")[0].severity,
            Severity::Unknown
        );
    }
}
