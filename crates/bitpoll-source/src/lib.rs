//! The seam between the resolver and where packages come from.
//!
//! The resolver asks a [`PackageSource`] for the files of a project, the metadata of a
//! file, what an sdist says about itself, and a file's bytes; it never speaks HTTP. The index
//! client implements this over the network and its cache, the tests with an in-memory
//! universe (the conformance suite runs that way, without a server).
//!
//! A source must not decide anything about resolution (which version, which file): it
//! answers questions. Its failures say which class they belong to ([`Classify`]),
//! so the command line maps them to exit codes without knowing the source.

use std::sync::Arc;

use bitpoll_metadata::{CoreMetadata, MetadataError, SdistInfo};
pub use bitpoll_simple::{DistFile, ProjectPage};
pub use bytes::Bytes;
use pep508_rs::PackageName;

pub use bitpoll_error_class::{Classify, ErrorClass};

/// Why a source could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    #[error("package `{package}` was not found on the package index")]
    NotFound { package: String },

    #[error("{file} has no static metadata (its PKG-INFO and pyproject.toml leave the dependencies to the build)")]
    NoStaticMetadata { file: String },

    #[error("cannot read the metadata of {file}: {source}")]
    Metadata {
        file: String,
        #[source]
        source: MetadataError,
    },

    /// Anything else, with the source's own error kept as the cause.
    #[error("{source}")]
    Failed {
        class: ErrorClass,
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
}

impl Classify for SourceError {
    fn class(&self) -> ErrorClass {
        match self {
            SourceError::NotFound { .. }
            | SourceError::NoStaticMetadata { .. }
            | SourceError::Metadata { .. } => ErrorClass::BadInput,
            SourceError::Failed { class, .. } => *class,
        }
    }
}

/// A downloaded file that could not be written where it was asked for.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct WriteError {
    pub path: std::path::PathBuf,
    pub source: std::io::Error,
}

/// Picks, from a project page that has just arrived, the file whose metadata is worth
/// fetching ahead of being asked.
pub type Pick = Box<dyn FnOnce(&Arc<ProjectPage>) -> Option<Arc<DistFile>> + Send>;

/// What to do with the metadata of the file a [`Pick`] chose, once it is there: typically,
/// give hints for the dependencies it names, to `hints`.
pub type Then = Box<dyn FnOnce(&dyn Hints, &CoreMetadata) + Send>;

/// Where a [`Then`] gives further hints. Only hints: it runs wherever the source fetched
/// the metadata (inside an async runtime, say), where nothing may block.
pub trait Hints: Send + Sync {
    /// As [`PackageSource::prefetch_then`].
    fn prefetch_then(&self, name: &PackageName, pick: Pick, then: Then);
}

/// Everything the resolver needs to know about packages.
///
/// Calls block until answered; a source may answer many at once from several threads.
pub trait PackageSource: Send + Sync {
    /// A project's files (less those the source's wheel filter dropped).
    fn project(&self, name: &PackageName) -> Result<Arc<ProjectPage>, SourceError>;

    /// Starts fetching a project's page without waiting, then the metadata of the file
    /// `pick` chooses. A hint: a source without latency may ignore it.
    fn prefetch(&self, name: &PackageName, pick: Pick) {
        let _ = (name, pick);
    }

    /// [`Self::prefetch`], and then `then` with the metadata fetched, when it was. A source
    /// that ignores hints ignores this one too.
    fn prefetch_then(&self, name: &PackageName, pick: Pick, then: Then) {
        let _ = then;
        self.prefetch(name, pick);
    }

    /// Starts fetching a file into the source's keeping without waiting, for a
    /// [`Self::download`] or [`Self::download_to`] that will probably follow. A hint, like
    /// [`Self::prefetch`].
    fn prefetch_file(&self, file: &DistFile) {
        let _ = file;
    }

    /// A file's core metadata: the index's metadata file, a wheel's METADATA, or an sdist's
    /// static metadata ([`SourceError::NoStaticMetadata`] when it has none).
    fn core_metadata(&self, file: &DistFile) -> Result<Arc<CoreMetadata>, SourceError>;

    /// What an sdist says about itself without a build.
    fn sdist_info(&self, file: &DistFile) -> Result<Arc<SdistInfo>, SourceError>;

    /// A file's bytes, checked against the sha256 the page declared.
    fn download(&self, file: &DistFile) -> Result<Bytes, SourceError>;

    /// A file's bytes, checked as by [`Self::download`], written to `dest`. A source that
    /// keeps files on disk copies them there without holding them in memory: a build
    /// environment's wheels and sdists run to tens of megabytes, several at once.
    fn download_to(&self, file: &DistFile, dest: &std::path::Path) -> Result<(), SourceError> {
        let bytes = self.download(file)?;
        std::fs::write(dest, &bytes).map_err(|e| SourceError::Failed {
            class: ErrorClass::Unavailable,
            source: Arc::new(WriteError {
                path: dest.to_path_buf(),
                source: e,
            }),
        })
    }

    /// Who published a file, from its PEP 740 provenance: the publisher's kind and identity
    /// in one line; `None` when the source lists no provenance for it.
    fn publisher(&self, file: &DistFile) -> Result<Option<String>, SourceError> {
        let _ = file;
        Ok(None)
    }

    /// [`Self::publisher`] of every file, in order. One at a time unless the source waits on
    /// a network, where it should ask side by side.
    fn publishers(&self, files: &[Arc<DistFile>]) -> Vec<Result<Option<String>, SourceError>> {
        files.iter().map(|file| self.publisher(file)).collect()
    }
}

/// Where the resolver keeps its solves between runs (see `bitpoll-resolver`'s `saved`): one
/// solve per slot, with the key it was kept under, best effort both ways (a solve that is not
/// found, or cannot be kept, only costs a solve). A slot holds the last solve written to it,
/// so the store does not grow with every change of inputs.
pub trait SolveStore: Send + Sync + std::fmt::Debug {
    /// The solve in `slot`, if it was kept under `key`.
    fn read(&self, slot: &[u8; 32], key: &[u8; 32]) -> Option<Vec<u8>>;
    fn write(&self, slot: &[u8; 32], key: &[u8; 32], bytes: &[u8]);
}
