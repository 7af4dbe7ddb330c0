//! The resolution policy in `lock/policy.toml`: the decisions a maintainer makes once and the
//! resolver applies every time.
//!
//! ```toml
//! # Files uploaded less than this long before a run are not candidates unless pinned
//! # with `==` (a fresh release has had no time to be reviewed, or pulled).
//! min-release-age = "7 days"
//!
//! # A requirement on the left is served by the nixpkgs package on the right (with nixpkgs on).
//! [replace]
//! psycopg2-binary = "psycopg2"
//!
//! # Take a package from one source only: "nixpkgs" or "index".
//! [source]
//! uwsgi = "nixpkgs"
//!
//! # Extra constraints, as in a pip constraints file.
//! [constraints]
//! requirements = ["urllib3<3"]
//!
//! # The macOS a darwin target deploys to (default: nixpkgs' minimum, 11.0): wheels that
//! # need a newer macOS are taken only up to this version.
//! [targets."aarch64-darwin"]
//! macos = "14.0"
//!
//! # Dependency metadata for a release whose metadata cannot be read statically.
//! [metadata."django-simple-csp"."0.5.dev1"]
//! requires-dist = ["django>=3.2"]
//! requires-python = ">=3.8"
//! ```
//!
//! It reads and checks that file and turns `min-release-age` into a run's cut-off
//! ([`release_window`]); it must not resolve anything or fetch anything: what the rules
//! mean for a given package is the resolver's to work out.

pub mod release_window;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{PackageName, Requirement};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{}: cannot read policy: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// Which source a package must come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForcedSource {
    Nixpkgs,
    Index,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(
        rename = "min-release-age",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    min_release_age: Option<String>,
    #[serde(default)]
    replace: BTreeMap<String, String>,
    #[serde(default)]
    source: BTreeMap<String, ForcedSource>,
    #[serde(default)]
    constraints: RawConstraints,
    #[serde(default)]
    metadata: BTreeMap<String, BTreeMap<String, RawMetadata>>,
    // Left out of the fingerprint's JSON when empty, so policies without it keep theirs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    targets: BTreeMap<String, RawTarget>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    macos: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawConstraints {
    #[serde(default)]
    requirements: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawMetadata {
    #[serde(default)]
    requires_dist: Vec<String>,
    requires_python: Option<String>,
}

/// Dependency metadata supplied by the policy for one release.
#[derive(Debug, Clone)]
pub struct MetadataOverride {
    pub requires_dist: Vec<Requirement>,
    pub requires_python: Option<VersionSpecifiers>,
}

/// A validated policy.
#[derive(Debug, Default, Clone)]
pub struct Policy {
    pub replace: BTreeMap<PackageName, PackageName>,
    pub source: BTreeMap<PackageName, ForcedSource>,
    pub constraints: Vec<Requirement>,
    pub metadata: BTreeMap<(PackageName, Version), MetadataOverride>,
    /// Darwin system -> its macOS deployment target (major, minor).
    pub macos: BTreeMap<String, (u16, u16)>,
    /// `min-release-age`: how long a file must have been on the index to be a candidate.
    pub min_release_age: Option<ReleaseAge>,
    /// sha256 of the normalised policy, for the lock's fingerprint.
    pub fingerprint: String,
    /// Where it was read from, for messages that tell the user what to add to it.
    pub path: PathBuf,
}

impl Policy {
    /// How messages name the policy file.
    pub fn file_name(&self) -> String {
        if self.path.as_os_str().is_empty() {
            "lock/policy.toml".to_string()
        } else {
            self.path.display().to_string()
        }
    }
}

impl Policy {
    /// Reads the policy; a missing file is an empty policy.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::parse(path, ""),
            Err(source) => Err(PolicyError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|span| line_col(text, span.start))
                .unwrap_or((1, 1));
            PolicyError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        let invalid = |message: String| PolicyError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let name = |section: &str, s: &str| {
            PackageName::from_str(s)
                .map_err(|e| invalid(format!("[{section}] `{s}` is not a package name: {e}")))
        };
        let mut policy = Policy::default();
        if let Some(age) = &raw.min_release_age {
            policy.min_release_age =
                Some(ReleaseAge::parse(age).map_err(|e| invalid(format!("min-release-age: {e}")))?);
        }
        for (from, to) in &raw.replace {
            policy
                .replace
                .insert(name("replace", from)?, name("replace", to)?);
        }
        for (pkg, src) in &raw.source {
            policy.source.insert(name("source", pkg)?, *src);
        }
        for c in &raw.constraints.requirements {
            let req = bitpoll_pep508::parse(c)
                .map_err(|e| invalid(format!("[constraints] `{c}`: {e}")))?;
            policy.constraints.push(req);
        }
        for (pkg, versions) in &raw.metadata {
            let pkg_name = name("metadata", pkg)?;
            for (version, meta) in versions {
                let v = Version::from_str(version).map_err(|e| {
                    invalid(format!(
                        "[metadata.\"{pkg}\"] `{version}` is not a version: {e}"
                    ))
                })?;
                let requires_dist = meta
                    .requires_dist
                    .iter()
                    .map(|r| {
                        bitpoll_pep508::parse(r).map_err(|e| {
                            invalid(format!(
                                "[metadata.\"{pkg}\".\"{version}\"] requires-dist `{r}`: {e}"
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?;
                let requires_python = meta
                    .requires_python
                    .as_deref()
                    .map(VersionSpecifiers::from_str)
                    .transpose()
                    .map_err(|e| {
                        invalid(format!(
                            "[metadata.\"{pkg}\".\"{version}\"] requires-python: {e}"
                        ))
                    })?;
                policy.metadata.insert(
                    (pkg_name.clone(), v),
                    MetadataOverride {
                        requires_dist,
                        requires_python,
                    },
                );
            }
        }
        for (system, target) in &raw.targets {
            if !bitpoll_platform::DEFAULT_SYSTEMS.contains(&system.as_str()) {
                return Err(invalid(format!(
                    "[targets.\"{system}\"]: unknown Nix system (known: {})",
                    bitpoll_platform::DEFAULT_SYSTEMS.join(", ")
                )));
            }
            if let Some(macos) = &target.macos {
                if !system.ends_with("-darwin") {
                    return Err(invalid(format!(
                        "[targets.\"{system}\"] macos: only darwin systems have a macOS version"
                    )));
                }
                let version = bitpoll_platform::parse_macos_version(macos)
                    .map_err(|e| invalid(format!("[targets.\"{system}\"] macos: {e}")))?;
                policy.macos.insert(system.clone(), version);
            }
        }
        // Normalised: serde_json of the raw form with sorted maps; comments and layout don't count.
        let canonical = serde_json::to_string(&raw).expect("policy serialises");
        policy.fingerprint = hex::encode(Sha256::digest(canonical.as_bytes()));
        policy.path = path.to_path_buf();
        Ok(policy)
    }

    pub fn forced_source(&self, name: &PackageName) -> Option<ForcedSource> {
        self.source.get(name).copied()
    }
}

/// Why a release age (`7 days`) was refused: one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReleaseAgeError(String);

impl bitpoll_error_class::Classify for ReleaseAgeError {
    fn class(&self) -> bitpoll_error_class::ErrorClass {
        bitpoll_error_class::ErrorClass::BadInput
    }
}

/// A span of time such as `7 days`: how long a release must have been public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseAge {
    pub seconds: u64,
}

impl ReleaseAge {
    /// Parses `N UNIT` (or `NUNIT`) with UNIT one of seconds, minutes, hours, days, weeks, in
    /// full, singular or abbreviated (`s`, `min`, `h`, `d`, `w`).
    pub fn parse(text: &str) -> Result<ReleaseAge, ReleaseAgeError> {
        Self::parse_inner(text).map_err(ReleaseAgeError)
    }

    fn parse_inner(text: &str) -> Result<ReleaseAge, String> {
        let text = text.trim();
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let (number, unit) = text.split_at(digits);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` does not start with a number (e.g. `7 days`)"))?;
        let unit_seconds = match unit.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "second" | "seconds" => 1,
            "min" | "minute" | "minutes" => 60,
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 7 * 86_400,
            other => {
                return Err(format!(
                    "`{other}` in `{text}` is not a unit (seconds, minutes, hours, days, weeks)"
                ))
            }
        };
        number
            .checked_mul(unit_seconds)
            .map(|seconds| ReleaseAge { seconds })
            .ok_or_else(|| format!("`{text}` is too long"))
    }
}

impl std::fmt::Display for ReleaseAge {
    /// The largest unit that divides the span, so `168 hours` reads `1 week`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let units = [
            (7 * 86_400, "week"),
            (86_400, "day"),
            (3600, "hour"),
            (60, "minute"),
            (1, "second"),
        ];
        let (size, name) = units
            .into_iter()
            .find(|(size, _)| self.seconds.is_multiple_of(*size) && self.seconds >= *size)
            .unwrap_or((1, "second"));
        let n = self.seconds / size;
        write!(f, "{n} {name}{}", if n == 1 { "" } else { "s" })
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map(|i| before.len() - i)
        .unwrap_or(before.len() + 1);
    (line, column)
}

/// The policy is an input: whatever is wrong with it is the input's.
impl bitpoll_error_class::Classify for PolicyError {
    fn class(&self) -> bitpoll_error_class::ErrorClass {
        bitpoll_error_class::ErrorClass::BadInput
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_section() {
        let p = Policy::parse(
            Path::new("policy.toml"),
            r#"
[replace]
psycopg2-binary = "psycopg2"
[source]
UWSGI = "nixpkgs"
[constraints]
requirements = ["urllib3<3"]
[metadata."django-simple-csp"."0.5.dev1"]
requires-dist = ["django>=3.2"]
"#,
        )
        .unwrap();
        let uwsgi = PackageName::from_str("uwsgi").unwrap();
        assert_eq!(p.forced_source(&uwsgi), Some(ForcedSource::Nixpkgs));
        assert_eq!(p.replace.values().next().unwrap().to_string(), "psycopg2");
        assert_eq!(p.constraints.len(), 1);
        assert_eq!(p.metadata.len(), 1);
    }

    #[test]
    fn a_darwin_target_takes_a_macos_version() {
        let p = Policy::parse(
            Path::new("p"),
            "[targets.\"aarch64-darwin\"]\nmacos = \"14.0\"\n",
        )
        .unwrap();
        assert_eq!(p.macos["aarch64-darwin"], (14, 0));
        for (bad, says) in [
            (
                "[targets.\"x86_64-linux\"]\nmacos = \"14.0\"\n",
                "only darwin systems",
            ),
            (
                "[targets.\"aarch64-darwin\"]\nmacos = \"10.9\"\n",
                "invalid macOS version",
            ),
            ("[targets.\"riscv-plan9\"]\n", "unknown Nix system"),
        ] {
            let err = Policy::parse(Path::new("p"), bad).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn release_ages_parse_and_print_in_the_largest_unit() {
        let age = |t: &str| ReleaseAge::parse(t).map(|a| a.to_string());
        assert_eq!(age("7 days").as_deref(), Ok("1 week"));
        assert_eq!(age("36h").as_deref(), Ok("36 hours"));
        assert_eq!(age("1 Day").as_deref(), Ok("1 day"));
        assert_eq!(age("90 min").as_deref(), Ok("90 minutes"));
        assert_eq!(age("0 days").as_deref(), Ok("0 seconds"));
        assert!(age("a week").is_err());
        assert!(age("7 fortnights").is_err());
        let policy = Policy::parse(Path::new("p.toml"), "min-release-age = \"3 days\"\n").unwrap();
        assert_eq!(policy.min_release_age.unwrap().seconds, 3 * 86_400);
        let err = Policy::parse(Path::new("p.toml"), "min-release-age = \"soon\"\n").unwrap_err();
        assert!(err.to_string().contains("min-release-age"), "{err}");
    }

    #[test]
    fn fingerprint_ignores_layout_but_not_content() {
        let a = Policy::parse(Path::new("p"), "[replace]\na = \"b\"\n").unwrap();
        let b = Policy::parse(Path::new("p"), "# comment\n[replace]\na=\"b\"").unwrap();
        let c = Policy::parse(Path::new("p"), "[replace]\na = \"c\"\n").unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
    }

    #[test]
    fn errors_name_file_line_and_problem() {
        let err = Policy::parse(
            Path::new("lock/policy.toml"),
            "[source]\nuwsgi = \"pypi\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("lock/policy.toml:2:"), "{err}");
        let err = Policy::parse(
            Path::new("p.toml"),
            "[constraints]\nrequirements = [\"x >>> 1\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("x >>> 1"), "{err}");
        let err = Policy::parse(Path::new("p.toml"), "[sources]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("p.toml:1:"), "{err}");
    }
}
