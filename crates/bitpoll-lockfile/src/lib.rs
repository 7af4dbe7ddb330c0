//! The lock file: its schema (docs/lock-format.md), its fingerprint and its atomic writing.
//!
//! Everything that reads or writes `lock/bitpoll.lock.json` goes through these types, so the
//! serialised form has one definition: fields in a fixed order, packages sorted, pretty JSON
//! with a trailing newline. Writing goes to a temporary file in the same directory that is
//! renamed over the old lock, so a failed or killed run leaves the previous lock whole.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const SCHEMA: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub schema: u32,
    pub fingerprint: String,
    pub inputs: Inputs,
    pub nixpkgs: Option<NixpkgsInfo>,
    pub targets: Vec<TargetInfo>,
    pub packages: Vec<Package>,
}

/// The normalised inputs: everything the resolution depends on besides the indexes' contents.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// Top-level requirement file (as given, relative to the working directory) -> its
    /// requirements and those of its includes, normalised, in file order.
    pub requirements: BTreeMap<String, Vec<String>>,
    pub constraints: BTreeMap<String, Vec<String>>,
    /// Path of the policy file and sha256 of its normalised content.
    pub policy: String,
    pub policy_sha256: String,
    /// Name of the Python index (never its URL).
    pub index: String,
    pub exclude_newer: Option<String>,
    pub no_nixpkgs: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NixpkgsInfo {
    pub identity: String,
    pub revision: Option<String>,
    pub python_attr: String,
    pub python_version: String,
    /// Where the index was read from and the sha256 of its bytes.
    pub index: String,
    pub index_sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetInfo {
    pub name: String,
    pub system: String,
    pub markers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Nixpkgs,
    Index,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    pub targets: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extras: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_python: Option<String>,
    pub dependencies: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub target_dependencies: BTreeMap<String, Vec<String>>,
    pub metadata: String,
    /// For `metadata: sdist-build`, the interpreter that ran the build backend
    /// (`cpython-3.13.1`): a `setup.py` can compute other dependencies on another Python.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_built_with: Option<String>,
    /// Set when the pinned release is yanked on the index (PEP 592): the reason, possibly
    /// empty. Only an exact `==` pin selects a yanked release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yanked: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_system: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    Wheel,
    Sdist,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    pub kind: ArtifactKind,
    pub filename: String,
    pub sha256: String,
    pub hash: String,
    pub size: Option<u64>,
    pub targets: Vec<String>,
}

impl Package {
    /// Dependencies of this entry on one target.
    pub fn dependencies_for<'a>(&'a self, target: &str) -> impl Iterator<Item = &'a String> {
        self.dependencies
            .iter()
            .chain(self.target_dependencies.get(target).into_iter().flatten())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{}: cannot read lock: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: invalid lock: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: lock schema {found} is not supported by this version (expected {SCHEMA})", path.display())]
    Schema { path: PathBuf, found: u32 },
    #[error("{}: cannot write lock: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Lock {
    pub fn read(path: &Path) -> Result<Self, LockError> {
        let bytes = std::fs::read(path).map_err(|source| LockError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_slice(path, &bytes)
    }

    pub fn from_slice(path: &Path, bytes: &[u8]) -> Result<Self, LockError> {
        // Read the schema first so an old tool says "unsupported schema", not "unknown field".
        #[derive(Deserialize)]
        struct Head {
            schema: u32,
        }
        let parse_err = |e: serde_json::Error| LockError::Parse {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        };
        let head: Head = serde_json::from_slice(bytes).map_err(parse_err)?;
        if head.schema != SCHEMA {
            return Err(LockError::Schema {
                path: path.to_path_buf(),
                found: head.schema,
            });
        }
        serde_json::from_slice(bytes).map_err(parse_err)
    }

    /// The committed text form.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("lock serialises");
        s.push('\n');
        s
    }

    /// Writes the lock atomically: temp file in the same directory, fsync, rename.
    pub fn write(&self, path: &Path) -> Result<(), LockError> {
        write_atomic(path, self.to_json().as_bytes())
    }

    /// Sorts packages, their lists and artifacts into the canonical order.
    pub fn normalise(&mut self) {
        for p in &mut self.packages {
            p.targets.sort();
            p.dependencies.sort();
            p.dependencies.dedup();
            p.extras.sort();
            for deps in p.target_dependencies.values_mut() {
                deps.sort();
                deps.dedup();
            }
            for a in &mut p.artifacts {
                a.targets.sort();
            }
            p.artifacts.sort_by(|a, b| {
                a.kind
                    .cmp(&b.kind)
                    .then_with(|| a.filename.cmp(&b.filename))
            });
        }
        self.packages.sort_by(|a, b| {
            a.name
                .cmp(&b.name)
                .then_with(|| a.targets.first().cmp(&b.targets.first()))
                .then_with(|| a.version.cmp(&b.version))
        });
    }

    /// Entries that apply to one target, by name.
    pub fn packages_for<'a>(&'a self, target: &str) -> BTreeMap<&'a str, &'a Package> {
        self.packages
            .iter()
            .filter(|p| p.targets.iter().any(|t| t == target))
            .map(|p| (p.name.as_str(), p))
            .collect()
    }
}

/// The fingerprint of a lock's inputs: sha256 over the canonical JSON of inputs, nixpkgs
/// identity and targets. Packages are not included: they are the output.
pub fn fingerprint(
    inputs: &Inputs,
    nixpkgs: Option<&NixpkgsInfo>,
    targets: &[TargetInfo],
) -> String {
    let canonical = serde_json::json!({ "inputs": inputs, "nixpkgs": nixpkgs, "targets": targets });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Replaces `path` with `bytes` so that readers see either the old or the new content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LockError> {
    let werr = |source| LockError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(werr)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".bitpoll-lock-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(werr)?;
    tmp.write_all(bytes).map_err(werr)?;
    tmp.as_file().sync_all().map_err(werr)?;
    tmp.persist(path).map_err(|e| werr(e.error))?;
    Ok(())
}

/// sha256 as the SRI string Nix expects (`sha256-` + standard base64 of the digest).
pub fn sri_from_hex(hex_digest: &str) -> Option<String> {
    use base64::Engine;
    let bytes = hex::decode(hex_digest).ok()?;
    (bytes.len() == 32).then(|| {
        format!(
            "sha256-{}",
            base64::engine::general_purpose::STANDARD.encode(&bytes)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sri_matches_nix_form() {
        // sha256 of the empty string; Nix prints it as sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=
        let hex_digest = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            sri_from_hex(hex_digest).unwrap(),
            "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert!(sri_from_hex("abcd").is_none());
    }

    #[test]
    fn write_is_atomic_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock/bitpoll.lock.json");
        let mut lock = Lock {
            schema: SCHEMA,
            fingerprint: String::new(),
            inputs: Inputs::default(),
            nixpkgs: None,
            targets: vec![],
            packages: vec![],
        };
        lock.fingerprint = fingerprint(&lock.inputs, None, &lock.targets);
        lock.write(&path).unwrap();
        let back = Lock::read(&path).unwrap();
        assert_eq!(back, lock);
        // No temp file is left behind.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn unsupported_schema_and_bad_json_are_clear() {
        let err = Lock::from_slice(Path::new("l.json"), br#"{"schema": 9}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema 9"), "{err}");
        let err = Lock::from_slice(Path::new("l.json"), b"{\n  \"schema\": 1,\n  x\n}")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("l.json:3:"), "{err}");
    }
}
