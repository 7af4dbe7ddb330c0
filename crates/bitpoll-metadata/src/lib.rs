//! Reading Python package metadata without running any Python code.
//!
//! The resolver needs, for every candidate release, its name, version, dependencies
//! (`Requires-Dist`), `Requires-Python` and extras. This crate turns the places that
//! information can be found into one [`CoreMetadata`] value:
//!
//! - a core-metadata file (`METADATA`/`PKG-INFO`, the RFC 822-style format) served next
//!   to a wheel, see [`parse_core_metadata`];
//! - the `*.dist-info/METADATA` member of a wheel, see [`read_wheel_metadata`];
//! - an sdist's top-level `PKG-INFO` (when it is 2.2+ and declares its dependencies
//!   static) or its `pyproject.toml` `[project]` table, see [`read_sdist`].
//!
//! Everything works on bytes in memory: nothing is extracted to disk, archive member
//! names are checked for path traversal, and the amount of decompressed data read from
//! one archive is capped so that a hostile archive cannot exhaust memory.
//!
//! [`MetadataSource`] records which of these places the metadata came from, because the
//! lock states how every package's dependencies were found.
//!
//! It must not run a build backend or any other Python code (that is `bitpoll-build`'s job),
//! nor fetch anything, nor guess dependencies from an older PKG-INFO or an egg-info: what is
//! not static is reported as missing.

mod archive;
mod core;

pub use crate::archive::{
    check_member_path, interpret_sdist, is_tar_gz, is_tar_sdist, read_sdist, read_wheel_metadata,
    read_wheel_metadata_limited, sdist_members, tar_sdist_members, wheel_metadata_bytes, SdistInfo,
    SdistMembers, FALLBACK_BUILD_REQUIRES, MAX_SCANNED_BYTES, MAX_UNCOMPRESSED_BYTES,
};
pub use crate::core::parse_core_metadata;

use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{ExtraName, PackageName, Requirement};

/// Where a package's metadata was found; the lock records it (`metadata`) with the spellings
/// of [`MetadataSource::as_str`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum MetadataSource {
    /// A core-metadata file served by the index next to the artifact (PEP 658/714).
    CoreMetadata,
    /// The `METADATA` file inside a downloaded wheel.
    Wheel,
    /// A static (2.2+) `PKG-INFO` at the top of an sdist.
    SdistPkgInfo,
    /// The `[project]` table of an sdist's `pyproject.toml`.
    SdistPyproject,
    /// The sdist's build backend, run in an isolated environment of locked wheels
    /// (`prepare_metadata_for_build_wheel`, or `build_wheel` where that hook is missing).
    SdistBuild,
    /// A metadata override from the lock policy.
    Policy,
    /// Taken from the nixpkgs package set.
    Nixpkgs,
}

impl MetadataSource {
    /// The stable spelling used in the lock.
    pub fn as_str(&self) -> &'static str {
        match self {
            MetadataSource::CoreMetadata => "core-metadata",
            MetadataSource::Wheel => "wheel",
            MetadataSource::SdistPkgInfo => "sdist-pkg-info",
            MetadataSource::SdistPyproject => "sdist-pyproject",
            MetadataSource::SdistBuild => "sdist-build",
            MetadataSource::Policy => "policy",
            MetadataSource::Nixpkgs => "nixpkgs",
        }
    }
}

impl std::fmt::Display for MetadataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The parts of a distribution's core metadata that resolution needs.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreMetadata {
    pub name: PackageName,
    pub version: Version,
    pub requires_dist: Vec<Requirement>,
    pub requires_python: Option<VersionSpecifiers>,
    pub provides_extra: Vec<ExtraName>,
    /// Field names listed as `Dynamic` (PKG-INFO) or in `project.dynamic` (pyproject), as
    /// written.
    pub dynamic: Vec<String>,
    /// `Metadata-Version` as written; empty when the metadata came from `pyproject.toml`,
    /// which has no such field.
    pub metadata_version: String,
    pub source: MetadataSource,
}

/// Why metadata could not be read.
///
/// Cloneable (no I/O error objects inside) so that callers can memoise a failed read and
/// hand the same error to everyone who asks for that artifact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata has no `{0}` field")]
    MissingField(&'static str),
    #[error("invalid `{field}` value {value:?}: {reason}")]
    InvalidField {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("invalid requirement {line:?} in {origin}: {source}")]
    InvalidRequirement {
        /// `Requires-Dist`, `dependencies` or `optional-dependencies.<extra>`.
        origin: String,
        line: String,
        #[source]
        source: bitpoll_pep508::Pep508Error,
    },
    #[error("wheel contains no top-level `*.dist-info/METADATA`")]
    NoWheelMetadata,
    #[error("archive member {0:?} has an absolute path or a `..` component")]
    UnsafePath(String),
    #[error("archive expands to more than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("unsupported sdist archive format: {0:?} (expected .tar.gz, .tgz, .tar or .zip)")]
    UnsupportedFormat(String),
    #[error("corrupt archive: {0}")]
    Archive(String),
    #[error("invalid pyproject.toml: {0}")]
    Pyproject(String),
}

/// Metadata that cannot be read belongs to a package the input asked for; running again
/// reads the same bytes.
impl bitpoll_error_class::Classify for MetadataError {
    fn class(&self) -> bitpoll_error_class::ErrorClass {
        bitpoll_error_class::ErrorClass::BadInput
    }
}
