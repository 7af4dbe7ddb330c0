//! The lock file: its schema (docs/lock-format.md), its fingerprint, the digests of its own
//! content and its atomic writing.
//!
//! Everything that reads or writes `lock/bitpoll.lock.json` goes through these types, so the
//! serialised form has one definition: fields in a fixed order, packages sorted, pretty JSON
//! with a trailing newline. Writing goes to a temporary file in the same directory that is
//! renamed over the old lock, so a failed or killed run leaves the previous lock whole.
//!
//! It must not resolve, fetch or guess anything: it holds what it is given, and a lock it
//! cannot read whole is an error, never partly used.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Schema 2 added `content_sha256` and `package_sha256`, `metadata_built_with`, the
/// structured `build_system` and `build_packages`. Schema 1 locks are still read (they are
/// what `diff` compares a refreshed lock with); `check` asks for them to be rewritten.
pub const SCHEMA: u32 = 2;
const OLDEST_READABLE_SCHEMA: u32 = 1;

/// How `package_sha256` names the entries of `build_packages`.
pub const BUILD_PREFIX: &str = "build:";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub schema: u32,
    pub fingerprint: String,
    /// sha256 of the lock's own content (targets and packages), see [`Lock::content_digest`].
    /// Empty in a schema 1 lock.
    #[serde(default)]
    pub content_sha256: String,
    pub inputs: Inputs,
    pub nixpkgs: Option<NixpkgsInfo>,
    pub targets: Vec<TargetInfo>,
    pub packages: Vec<Package>,
    /// What the sdists of `packages` are built with: entries of the same shape, resolved per
    /// target for each sdist's build environment, never part of the runtime environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build_packages: Vec<Package>,
    /// Package name -> sha256 of that name's entries, so `check` can name an edited, added or
    /// removed entry. Last in the document: it is a table for tools, not for reading.
    #[serde(default)]
    pub package_sha256: BTreeMap<String, String>,
}

/// The normalised inputs: everything the resolution depends on besides the indexes' contents.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// Top-level requirement file (as given, relative to the working directory) -> its
    /// requirements and those of its includes, normalised, in file order.
    pub requirements: BTreeMap<String, Vec<String>>,
    /// The same files in the order they were given: top-level requirements are decided in
    /// declaration order, so the order of files can change a lock.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirement_files: Vec<String>,
    pub constraints: BTreeMap<String, Vec<String>>,
    /// Path of the policy file and sha256 of its normalised content.
    pub policy: String,
    pub policy_sha256: String,
    /// Name of the Python index (never its URL).
    pub index: String,
    pub exclude_newer: Option<String>,
    pub no_nixpkgs: bool,
    /// The `min-release-age` in force (policy or command line), as `7 days`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_release_age: Option<String>,
    /// The absolute cut-off that age gave for this run (RFC 3339): files uploaded later were
    /// held back unless pinned with `==`. Recorded so that a re-run can reproduce the lock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_cutoff: Option<String>,
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
    /// Darwin targets: the macOS version wheels may require at most (`11.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macos_deployment_target: Option<String>,
    pub markers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Nixpkgs,
    Index,
}

pub use bitpoll_metadata::MetadataSource;

/// A lock entry's `metadata`: where its dependencies came from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum PackageMetadata {
    Found(MetadataSource),
    /// A schema-1 lock's dependencies guessed from an sdist: read so that such a lock can
    /// still be compared with a new one, never written.
    Guessed(GuessedMetadata),
}

/// What schema 1 called dependencies guessed from an older PKG-INFO or an egg-info.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum GuessedMetadata {
    SdistPkgInfoLegacy,
    SdistEggInfo,
}

impl std::fmt::Display for PackageMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PackageMetadata::Found(source) => source.as_str(),
            PackageMetadata::Guessed(GuessedMetadata::SdistPkgInfoLegacy) => {
                "sdist-pkg-info-legacy"
            }
            PackageMetadata::Guessed(GuessedMetadata::SdistEggInfo) => "sdist-egg-info",
        })
    }
}

impl From<MetadataSource> for PackageMetadata {
    fn from(source: MetadataSource) -> Self {
        PackageMetadata::Found(source)
    }
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
    pub metadata: PackageMetadata,
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
    pub build_system: Option<BuildSystem>,
}

/// How an sdist entry is built: its backend, its build requirements, and the
/// `build_packages` entries (name -> version) that satisfy them on each target that builds it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BuildSystem {
    pub backend: String,
    /// `[build-system].requires` (or the PEP 517 fallback) and what the backend's
    /// `get_requires_for_build_wheel` added.
    pub requires: Vec<String>,
    /// The environment where every target that builds the sdist agrees.
    pub environment: BTreeMap<String, String>,
    /// What differs per target, added to `environment` (a name here replaces its version).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub target_environment: BTreeMap<String, BTreeMap<String, String>>,
}

impl BuildSystem {
    /// The build environment of one target, name -> version.
    pub fn environment_for(&self, target: &str) -> BTreeMap<String, String> {
        let mut env = self.environment.clone();
        if let Some(more) = self.target_environment.get(target) {
            env.extend(more.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        env
    }
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
    /// When the index says the file was uploaded (RFC 3339, to the second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_time: Option<String>,
    /// Who published the file according to its PEP 740 provenance, such as
    /// `GitHub repository=org/app workflow=release.yml environment=pypi`; absent when the
    /// index lists no provenance for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
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
    #[error("{}: lock schema {found} is not supported by this version (it reads schemas {OLDEST_READABLE_SCHEMA} to {SCHEMA}); {}", path.display(), if *found > SCHEMA { "update bitpoll-lock" } else { "re-create the lock with `bitpoll-lock update`" })]
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
        if !(OLDEST_READABLE_SCHEMA..=SCHEMA).contains(&head.schema) {
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
        normalise_entries(&mut self.packages);
        normalise_entries(&mut self.build_packages);
    }

    /// Records the digests of the lock's content; call after [`Lock::normalise`].
    pub fn seal(&mut self) {
        self.package_sha256 = self.package_digests();
        self.content_sha256 = self.content_digest();
    }

    /// sha256 over the canonical JSON of the targets and the packages. It catches what the
    /// per-name digests cannot: a name removed from both `packages` and `package_sha256`,
    /// entries out of order, or an edited target.
    pub fn content_digest(&self) -> String {
        // Serialised from structs, not through `serde_json::Value`, whose key order depends on
        // a cargo feature some other crate may switch on.
        #[derive(Serialize)]
        struct Content<'a> {
            targets: &'a [TargetInfo],
            packages: &'a [Package],
            build_packages: &'a [Package],
        }
        let json = serde_json::to_string(&Content {
            targets: &self.targets,
            packages: &self.packages,
            build_packages: &self.build_packages,
        })
        .expect("lock content serialises");
        hex::encode(Sha256::digest(json.as_bytes()))
    }

    /// For each package name, sha256 over the compact JSON of its entries in lock order;
    /// build packages under `build:NAME`.
    pub fn package_digests(&self) -> BTreeMap<String, String> {
        let mut by_name: BTreeMap<String, Vec<&Package>> = BTreeMap::new();
        for p in &self.packages {
            by_name.entry(p.name.clone()).or_default().push(p);
        }
        for p in &self.build_packages {
            by_name
                .entry(format!("{BUILD_PREFIX}{}", p.name))
                .or_default()
                .push(p);
        }
        by_name
            .into_iter()
            .map(|(name, entries)| {
                let json = serde_json::to_string(&entries).expect("packages serialise");
                (name, hex::encode(Sha256::digest(json.as_bytes())))
            })
            .collect()
    }

    /// Where the lock's content no longer matches the digests it records, naming the
    /// package entries concerned; empty when it matches.
    pub fn content_mismatches(&self) -> Vec<String> {
        if self.schema < 2 {
            return vec![format!(
                "lock schema {} records no digest of its content: rewrite it with `bitpoll-lock update`",
                self.schema
            )];
        }
        let mut found = Vec::new();
        let versions = |key: &str| {
            let (list, name) = match key.strip_prefix(BUILD_PREFIX) {
                Some(name) => (&self.build_packages, name),
                None => (&self.packages, key),
            };
            let v: Vec<&str> = list
                .iter()
                .filter(|p| p.name == name)
                .map(|p| p.version.as_str())
                .collect();
            v.join(", ")
        };
        let actual = self.package_digests();
        for (name, digest) in &actual {
            match self.package_sha256.get(name) {
                Some(recorded) if recorded == digest => {}
                Some(_) => found.push(format!(
                    "package entry {name} {} edited by hand: it does not match its recorded sha256",
                    versions(name)
                )),
                None => found.push(format!(
                    "package entry {name} {} added by hand: the lock records no sha256 for it",
                    versions(name)
                )),
            }
        }
        for name in self.package_sha256.keys() {
            if !actual.contains_key(name) {
                found.push(format!(
                    "package entry {name} removed by hand: the lock records a sha256 for it but has no entry"
                ));
            }
        }
        let mut canonical = self.clone();
        canonical.normalise();
        if canonical.packages != self.packages || canonical.build_packages != self.build_packages {
            found.push("packages edited by hand: entries or their lists are out of order".into());
        }
        if found.is_empty() && self.content_digest() != self.content_sha256 {
            found.push(
                "lock edited by hand: its targets or packages do not match content_sha256".into(),
            );
        }
        found
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

/// Sorts entries, their lists and artifacts into the canonical order.
fn normalise_entries(packages: &mut [Package]) {
    for p in packages.iter_mut() {
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
    packages.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then_with(|| a.targets.first().cmp(&b.targets.first()))
            .then_with(|| a.version.cmp(&b.version))
    });
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

const TEMP_PREFIX: &str = ".bitpoll-lock-";
const TEMP_SUFFIX: &str = ".tmp";

/// Test-only hook, read nowhere else: when set to a file path, [`write_atomic`] writes the
/// temporary file's path into that file once the new content is written and synced, then
/// waits up to a minute before the rename. The tests kill the process in that window to show
/// that the old file survives and the leftover is cleaned up by the next run.
pub const TEST_HOLD_BEFORE_RENAME: &str = "BITPOLL_LOCK_TEST_HOLD_BEFORE_RENAME";

/// Replaces `path` with `bytes` so that readers see either the old or the new content.
///
/// The new content goes to `.bitpoll-lock-*.tmp` in the same directory, which is renamed over
/// `path`. The writer holds an exclusive `flock` on its temporary file until the rename, so a
/// temporary file nobody holds was left by a killed run: each write first removes those (see
/// [`remove_stale_temp_files`]). A run killed before the rename therefore leaves the old file
/// whole and one temporary file, which the next write removes.
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
    remove_stale_temp_files(dir).map_err(werr)?;
    let mut tmp = loop {
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .suffix(TEMP_SUFFIX)
            .tempfile_in(dir)
            .map_err(werr)?;
        hold(tmp.as_file()).map_err(werr)?;
        // Another run's clean-up may have taken the file for stale between its creation and
        // our lock; then it is gone from the directory and we start again.
        if still_linked(&tmp) {
            break tmp;
        }
    };
    tmp.write_all(bytes).map_err(werr)?;
    tmp.as_file().sync_all().map_err(werr)?;
    if let Some(marker) = std::env::var_os(TEST_HOLD_BEFORE_RENAME) {
        let _ = std::fs::write(&marker, tmp.path().as_os_str().as_encoded_bytes());
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
    tmp.persist(path).map_err(|e| werr(e.error))?;
    Ok(())
}

/// Removes the temporary files of [`write_atomic`] in `dir` that no live writer holds, and
/// returns how many it removed. Files another run is writing right now are left alone.
pub fn remove_stale_temp_files(dir: &Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)) {
            continue;
        }
        let Ok(file) = std::fs::File::open(entry.path()) else {
            continue;
        };
        if try_hold(&file) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

#[cfg(unix)]
fn hold(file: &std::fs::File) -> std::io::Result<()> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::LockExclusive).map_err(Into::into)
}

/// True when nobody holds `file`: now we do, until it is closed.
#[cfg(unix)]
fn try_hold(file: &std::fs::File) -> bool {
    rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
}

#[cfg(unix)]
fn still_linked(tmp: &tempfile::NamedTempFile) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(tmp.path()), tmp.as_file().metadata()) {
        (Ok(named), Ok(open)) => named.dev() == open.dev() && named.ino() == open.ino(),
        _ => false,
    }
}

// Without flock nothing tells a killed run's file from a live one, so nothing is removed.
#[cfg(not(unix))]
fn hold(_: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
fn try_hold(_: &std::fs::File) -> bool {
    false
}

#[cfg(not(unix))]
fn still_linked(tmp: &tempfile::NamedTempFile) -> bool {
    tmp.path().exists()
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

/// The lock named on the command line cannot be used, read or written there.
impl bitpoll_error_class::Classify for LockError {
    fn class(&self) -> bitpoll_error_class::ErrorClass {
        bitpoll_error_class::ErrorClass::BadInput
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_of_requirement_files_is_an_input() {
        let inputs = |files: [&str; 2]| Inputs {
            requirements: files.iter().map(|f| (f.to_string(), Vec::new())).collect(),
            requirement_files: files.iter().map(|f| f.to_string()).collect(),
            ..Inputs::default()
        };
        assert_ne!(
            fingerprint(&inputs(["a.in", "b.in"]), None, &[]),
            fingerprint(&inputs(["b.in", "a.in"]), None, &[])
        );
    }

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
            content_sha256: String::new(),
            inputs: Inputs::default(),
            nixpkgs: None,
            targets: vec![],
            packages: vec![],
            build_packages: Vec::new(),
            package_sha256: BTreeMap::new(),
        };
        lock.fingerprint = fingerprint(&lock.inputs, None, &lock.targets);
        lock.seal();
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
        assert!(err.contains("update bitpoll-lock"), "{err}");
        let err = Lock::from_slice(Path::new("l.json"), br#"{"schema": 0}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("re-create the lock"), "{err}");
        let err = Lock::from_slice(Path::new("l.json"), b"{\n  \"schema\": 2,\n  x\n}")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("l.json:3:"), "{err}");
    }

    fn sealed_lock() -> Lock {
        let entry = |name: &str, version: &str| Package {
            name: name.into(),
            version: version.into(),
            source: Source::Index,
            attr: None,
            index: Some("pypi".into()),
            targets: vec!["x86_64-linux".into()],
            extras: vec![],
            requires_python: None,
            dependencies: vec![],
            target_dependencies: BTreeMap::new(),
            metadata_built_with: None,
            metadata: MetadataSource::CoreMetadata.into(),
            yanked: None,
            artifacts: vec![Artifact {
                kind: ArtifactKind::Wheel,
                filename: format!("{name}-{version}-py3-none-any.whl"),
                sha256: "ab".repeat(32),
                hash: sri_from_hex(&"ab".repeat(32)).unwrap(),
                size: Some(10),
                upload_time: None,
                publisher: None,
                targets: vec!["x86_64-linux".into()],
            }],
            build_system: None,
        };
        let mut lock = Lock {
            schema: SCHEMA,
            fingerprint: String::new(),
            content_sha256: String::new(),
            inputs: Inputs::default(),
            nixpkgs: None,
            targets: vec![],
            packages: vec![entry("alpha", "1.0"), entry("beta", "2.0")],
            build_packages: Vec::new(),
            package_sha256: BTreeMap::new(),
        };
        lock.normalise();
        lock.seal();
        lock
    }

    #[test]
    fn content_mismatches_name_the_edited_entry() {
        let lock = sealed_lock();
        assert!(lock.content_mismatches().is_empty());
        // The digests survive the written form.
        let back = Lock::from_slice(Path::new("l.json"), lock.to_json().as_bytes()).unwrap();
        assert!(back.content_mismatches().is_empty());

        let mut edited = lock.clone();
        edited.packages[1].artifacts[0].sha256 = "0".repeat(64);
        let found = edited.content_mismatches();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("beta 2.0 edited by hand"), "{found:?}");

        let mut removed = lock.clone();
        removed.packages.remove(0);
        let found = removed.content_mismatches();
        assert!(found[0].contains("alpha removed by hand"), "{found:?}");

        let mut added = lock.clone();
        let mut gamma = added.packages[0].clone();
        gamma.name = "gamma".into();
        added.packages.push(gamma);
        let found = added.content_mismatches();
        assert!(found[0].contains("gamma 1.0 added by hand"), "{found:?}");

        // Removing a name from both places still shows in the whole-content digest.
        let mut both = lock.clone();
        both.packages.remove(0);
        both.package_sha256.remove("alpha");
        let found = both.content_mismatches();
        assert!(found[0].contains("content_sha256"), "{found:?}");

        let mut reordered = lock.clone();
        reordered.packages.swap(0, 1);
        reordered.package_sha256 = reordered.package_digests();
        let found = reordered.content_mismatches();
        assert!(found[0].contains("out of order"), "{found:?}");
    }

    #[test]
    fn a_schema_1_lock_is_read_and_asked_to_be_rewritten() {
        let mut json: serde_json::Value = serde_json::from_str(&sealed_lock().to_json()).unwrap();
        let obj = json.as_object_mut().unwrap();
        obj.insert("schema".into(), 1.into());
        obj.remove("content_sha256");
        obj.remove("package_sha256");
        let old = Lock::from_slice(Path::new("l.json"), json.to_string().as_bytes()).unwrap();
        assert_eq!(old.packages.len(), 2);
        let found = old.content_mismatches();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("schema 1 records no digest"), "{found:?}");
    }

    #[test]
    fn stale_temp_files_are_removed_and_held_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(".bitpoll-lock-stale.tmp");
        std::fs::write(&stale, "half").unwrap();
        let live = dir.path().join(".bitpoll-lock-live.tmp");
        std::fs::write(&live, "writing").unwrap();
        let holder = std::fs::File::open(&live).unwrap();
        hold(&holder).unwrap();
        let other = dir.path().join("notes.tmp");
        std::fs::write(&other, "").unwrap();

        assert_eq!(remove_stale_temp_files(dir.path()).unwrap(), 1);
        assert!(!stale.exists());
        assert!(live.exists(), "a file a live writer holds stays");
        assert!(other.exists(), "only our own temporary files are touched");
        drop(holder);
        assert_eq!(remove_stale_temp_files(dir.path()).unwrap(), 1);
        assert!(!live.exists());
    }
}
