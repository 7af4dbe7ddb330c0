//! The nixpkgs package index: what one nixpkgs' Python package set provides.
//!
//! The resolver never evaluates Nix. It reads this index instead: for one nixpkgs identity and
//! one Python attribute, every package attribute with its PyPI name, version, propagated Python
//! dependencies (as attributes) and optional-dependency groups. The format is documented in
//! ARCHITECTURE.md; `bitpoll-lock index` writes it from a real nixpkgs, and [`import_subset`]
//! converts a hand-collected snapshot of nixpkgs' Python set (`nixpkgs-python-subset.json`).
//! It also reads which nixpkgs a flake.lock pins ([`flake`]), to say when the two drift apart.
//!
//! It must not run the Nix evaluator (`bitpoll-nixpkgs-eval` does, to write an index) nor
//! decide which package a resolution takes from nixpkgs: it answers lookups.

use std::collections::BTreeMap;
use std::path::Path;

use pep440_rs::Version;
use pep508_rs::PackageName;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub mod flake;
mod subset;
pub use subset::{import_subset, SubsetError};

pub const SCHEMA: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NixpkgsIndex {
    pub schema: u32,
    pub nixpkgs: Identity,
    pub python: PythonInfo,
    /// Attributes that are other names for a package attribute (`django` -> `django_5`).
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Keyed by attribute name in the Python package set.
    pub packages: BTreeMap<String, NixPackage>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// A stable name for this nixpkgs: the git revision when there is one.
    pub identity: String,
    pub revision: Option<String>,
    /// How the index was made, for people reading it.
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PythonInfo {
    /// The attribute of the interpreter, e.g. `python313`.
    pub attr: String,
    /// Its full version, e.g. `3.13.9`.
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NixPackage {
    pub pypi_name: String,
    pub version: String,
    #[serde(default)]
    pub dependencies: Vec<String>,
    #[serde(default)]
    pub optional_dependencies: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub broken: bool,
    /// `disabled` for this Python (nixpkgs' `disabled = pythonOlder ...`).
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{}: cannot read nixpkgs index: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: invalid nixpkgs index: {message}", path.display())]
    Parse {
        path: std::path::PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: invalid nixpkgs index: {message}", path.display())]
    Invalid {
        path: std::path::PathBuf,
        message: String,
    },
}

/// A usable nixpkgs candidate for one PyPI name.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub attr: &'a str,
    pub version: Version,
    pub package: &'a NixPackage,
    /// True for the attribute other nixpkgs packages depend on under this name.
    pub is_default: bool,
}

/// A loaded index with lookups by PyPI name.
#[derive(Debug, Clone)]
pub struct Nixpkgs {
    pub index: NixpkgsIndex,
    /// sha256 of the file's bytes, so a lock can tell a changed index apart.
    pub sha256: String,
    by_name: BTreeMap<PackageName, Vec<String>>,
}

impl Nixpkgs {
    pub fn load(path: &Path) -> Result<Self, IndexError> {
        let bytes = std::fs::read(path).map_err(|source| IndexError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(path, &bytes)
    }

    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self, IndexError> {
        let index: NixpkgsIndex = serde_json::from_slice(bytes).map_err(|e| IndexError::Parse {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let invalid = |message: String| IndexError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if index.schema != SCHEMA {
            return Err(invalid(format!(
                "schema {} is not supported (expected {SCHEMA})",
                index.schema
            )));
        }
        let mut by_name: BTreeMap<PackageName, Vec<String>> = BTreeMap::new();
        for (attr, pkg) in &index.packages {
            let name = PackageName::new(pkg.pypi_name.clone()).map_err(|e| {
                invalid(format!(
                    "package `{attr}`: invalid PyPI name `{}`: {e}",
                    pkg.pypi_name
                ))
            })?;
            Version::from_str_checked(&pkg.version).map_err(|e| {
                invalid(format!(
                    "package `{attr}`: invalid version `{}`: {e}",
                    pkg.version
                ))
            })?;
            by_name.entry(name).or_default().push(attr.clone());
        }
        for (alias, target) in &index.aliases {
            if !index.packages.contains_key(target) {
                return Err(invalid(format!(
                    "alias `{alias}` points to unknown attribute `{target}`"
                )));
            }
        }
        let sha256 = hex::encode(Sha256::digest(bytes));
        Ok(Self {
            index,
            sha256,
            by_name,
        })
    }

    /// Resolves an attribute through the alias table.
    pub fn get(&self, attr: &str) -> Option<(&str, &NixPackage)> {
        let attr = self
            .index
            .aliases
            .get(attr)
            .map(String::as_str)
            .unwrap_or(attr);
        self.index
            .packages
            .get_key_value(attr)
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Usable candidates for a PyPI name, the default attribute first, then newest first.
    /// Broken and disabled packages are not candidates.
    pub fn candidates(&self, name: &PackageName) -> Vec<Candidate<'_>> {
        let Some(attrs) = self.by_name.get(name) else {
            return Vec::new();
        };
        let default_attr = self.get(name.as_ref()).map(|(attr, _)| attr);
        let mut out: Vec<Candidate<'_>> = attrs
            .iter()
            .filter_map(|attr| {
                let package = &self.index.packages[attr];
                (!package.broken && !package.disabled).then(|| Candidate {
                    attr,
                    version: Version::from_str_checked(&package.version)
                        .expect("validated on load"),
                    package,
                    is_default: Some(attr.as_str()) == default_attr,
                })
            })
            .collect();
        out.sort_by(|a, b| {
            b.is_default
                .cmp(&a.is_default)
                .then_with(|| b.version.cmp(&a.version))
        });
        out
    }

    /// Every attribute for a PyPI name, usable or not (for explanations).
    pub fn all_attrs(&self, name: &PackageName) -> &[String] {
        self.by_name.get(name).map(Vec::as_slice).unwrap_or(&[])
    }
}

trait FromStrChecked: Sized {
    fn from_str_checked(s: &str) -> Result<Self, String>;
}

impl FromStrChecked for Version {
    fn from_str_checked(s: &str) -> Result<Self, String> {
        s.parse::<Version>().map_err(|e| e.to_string())
    }
}

impl NixpkgsIndex {
    /// Pretty JSON with sorted keys and a trailing newline: the committed form.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("index serialises");
        s.push('\n');
        s
    }
}

/// The nixpkgs index is an input, named on the command line or recorded in a lock.
impl bitpoll_error_class::Classify for IndexError {
    fn class(&self) -> bitpoll_error_class::ErrorClass {
        bitpoll_error_class::ErrorClass::BadInput
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> &'static str {
        r#"{
  "schema": 1,
  "nixpkgs": {"identity": "test", "revision": null, "source": "test"},
  "python": {"attr": "python313", "version": "3.13.0"},
  "aliases": {"django": "django_5"},
  "packages": {
    "django_5": {"pypi_name": "Django", "version": "5.2.1", "dependencies": ["asgiref"]},
    "django_6": {"pypi_name": "django", "version": "6.0.1"},
    "django_4": {"pypi_name": "django", "version": "4.2.1", "broken": true},
    "asgiref": {"pypi_name": "asgiref", "version": "3.8.1"}
  }
}"#
    }

    #[test]
    fn default_attribute_first_and_broken_skipped() {
        let n = Nixpkgs::from_bytes(Path::new("idx.json"), sample().as_bytes()).unwrap();
        let django = PackageName::new("Django".into()).unwrap();
        let c = n.candidates(&django);
        assert_eq!(
            c.iter().map(|c| c.attr).collect::<Vec<_>>(),
            ["django_5", "django_6"]
        );
        assert!(c[0].is_default && !c[1].is_default);
        assert_eq!(n.get("django").unwrap().0, "django_5");
    }

    #[test]
    fn errors_point_at_the_file() {
        let err =
            Nixpkgs::from_bytes(Path::new("idx.json"), b"{\n \"schema\": 1,\n oops}").unwrap_err();
        assert!(err.to_string().starts_with("idx.json:3:"), "{err}");
        let bad = sample().replace("5.2.1", "not a version");
        let err = Nixpkgs::from_bytes(Path::new("idx.json"), bad.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("django_5") && err.to_string().contains("not a version"),
            "{err}"
        );
    }
}
