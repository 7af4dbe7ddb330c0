use std::path::PathBuf;
use std::sync::Arc;

use bitpoll_metadata::MetadataError;

/// Everything that can go wrong talking to the package index.
///
/// Every URL held here has been redacted (credentials replaced by `***`) before it was
/// stored, so printing or logging an error cannot leak an index password. The error is
/// cloneable because one failed fetch is shared with every caller waiting on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("package `{package}` was not found on the package index")]
    NotFound { package: String },

    #[error("network error fetching {url}: {detail}")]
    Network {
        url: String,
        /// The error chain flattened into one line (it carries no URL).
        detail: String,
        source: Arc<reqwest::Error>,
    },

    #[error("{url} answered with HTTP status {status}")]
    Status { url: String, status: u16 },

    #[error("unexpected response from {url}: {reason}")]
    BadResponse { url: String, reason: String },

    #[error("unexpected response from {url}: {source}")]
    Page {
        url: String,
        #[source]
        source: bitpoll_simple::PageError,
    },

    #[error("sha256 of {file} does not match the index: expected {expected}, got {actual}")]
    HashMismatch {
        file: String,
        expected: String,
        actual: String,
    },

    #[error("offline mode: {what} is not in the cache")]
    Offline { what: String },

    #[error("{file} has no static metadata (its PKG-INFO and pyproject.toml leave the dependencies to the build)")]
    NoStaticMetadata { file: String },

    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: Arc<std::io::Error>,
    },

    #[error("cannot read the metadata of {file}: {source}")]
    Metadata { file: String, source: MetadataError },

    #[error("invalid index URL {url}: {reason}")]
    InvalidIndexUrl { url: String, reason: String },

    #[error("cannot find the package index URL: {0}")]
    IndexDiscovery(String),

    #[error("invalid client option: {0}")]
    InvalidOption(String),
}

impl ClientError {
    /// Whether the failure lies with the network or the index (exit code 3) rather than with
    /// the caller's input. `NotFound` is not: it means a requirement names a project the
    /// index does not have, which is the input's fault.
    pub fn is_network(&self) -> bool {
        matches!(
            self,
            ClientError::Network { .. }
                | ClientError::Status { .. }
                | ClientError::BadResponse { .. }
                | ClientError::Page { .. }
                | ClientError::HashMismatch { .. }
                | ClientError::Offline { .. }
                | ClientError::IndexDiscovery(_)
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ClientError::Io {
            path: path.into(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn network(url: String, source: reqwest::Error) -> Self {
        let source = source.without_url();
        let mut detail = source.to_string();
        let mut cause = std::error::Error::source(&source);
        while let Some(err) = cause {
            detail.push_str(": ");
            detail.push_str(&err.to_string());
            cause = err.source();
        }
        ClientError::Network {
            url,
            detail,
            source: Arc::new(source),
        }
    }
}

impl bitpoll_source::Classify for ClientError {
    fn class(&self) -> bitpoll_source::ErrorClass {
        if self.is_network() {
            bitpoll_source::ErrorClass::Unavailable
        } else {
            bitpoll_source::ErrorClass::BadInput
        }
    }
}

impl From<ClientError> for bitpoll_source::SourceError {
    fn from(e: ClientError) -> Self {
        use bitpoll_source::{Classify, SourceError};
        match e {
            ClientError::NotFound { package } => SourceError::NotFound { package },
            ClientError::NoStaticMetadata { file } => SourceError::NoStaticMetadata { file },
            ClientError::Metadata { file, source } => SourceError::Metadata { file, source },
            other => SourceError::Failed {
                class: other.class(),
                source: Arc::new(other),
            },
        }
    }
}
