//! Test support for bitpoll-lock: a real HTTP package index on 127.0.0.1 built from fixture
//! files, so end-to-end and conformance tests exercise the same client code as a real run
//! without touching the network.
//!
//! Fixtures describe a universe of packages in the shape the packse conformance scenarios use
//! (`[packages.NAME.versions."X"]` with `requires`, `requires_python`, `extras`, `wheel_tags`,
//! `yanked`, `sdist`, `wheel`), so one generator serves both. [`universe::Universe::build`]
//! turns that into a PEP 691 simple index with PEP 658 core-metadata files, real wheels and
//! sdists; [`server::IndexServer`] serves it.
//!
//! Test support only: nothing here may be used by the tool itself, and no fixture may name a
//! registry's host.

pub use bitpoll_test_skip::skip;

pub mod bombs;
pub mod conformance;
pub mod memory;
/// The loopback HTTP server, its own crate so that the client's tests can use it too.
pub use bitpoll_test_server as server;
pub mod universe;

use std::path::{Path, PathBuf};

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Where the test data from outside the repository lives (the packse conformance suite):
/// `BITPOLL_SHARED_DIR`, by default `shared/` beside the checkout.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("BITPOLL_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"))
}
