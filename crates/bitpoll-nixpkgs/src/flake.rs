//! The nixpkgs a flake.lock pins: which revision the index and a lock should describe.

use std::path::{Path, PathBuf};

use crate::NixpkgsIndex;

/// A flake.lock that is there but cannot be read as one.
#[derive(Debug, thiserror::Error)]
#[error("{}: invalid JSON: {source}", path.display())]
pub struct FlakeLockError {
    pub path: PathBuf,
    #[source]
    pub source: serde_json::Error,
}

impl bitpoll_error_class::Classify for FlakeLockError {
    fn class(&self) -> bitpoll_error_class::ErrorClass {
        bitpoll_error_class::ErrorClass::BadInput
    }
}

/// The `locked` node of a flake.lock's `nixpkgs` input; `None` when there is no flake.lock.
pub fn flake_nixpkgs_locked(
    flake_lock: &Path,
) -> Result<Option<serde_json::Value>, FlakeLockError> {
    let Ok(text) = std::fs::read_to_string(flake_lock) else {
        return Ok(None);
    };
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|source| FlakeLockError {
        path: flake_lock.to_path_buf(),
        source,
    })?;
    let root = json["root"].as_str().unwrap_or("root");
    let node = json["nodes"][root]["inputs"]["nixpkgs"]
        .as_str()
        .unwrap_or("nixpkgs");
    let locked = &json["nodes"][node]["locked"];
    Ok(locked.is_object().then(|| locked.clone()))
}

/// The nixpkgs revision a flake.lock pins, if any.
pub fn flake_nixpkgs_revision(flake_lock: &Path) -> Result<Option<String>, FlakeLockError> {
    Ok(flake_nixpkgs_locked(flake_lock)?.and_then(|l| l["rev"].as_str().map(str::to_string)))
}

/// What `update` says when the flake now pins a different nixpkgs than the index was
/// built from: the index, and any lock made from it, describe a nixpkgs the flake no
/// longer uses.
pub fn flake_drift(index: &NixpkgsIndex, flake_lock: &Path) -> Option<String> {
    let flake = flake_nixpkgs_revision(flake_lock).ok()??;
    let built = index.nixpkgs.revision.as_deref();
    (built != Some(flake.as_str())).then(|| {
        format!(
            "{} pins nixpkgs {flake}, but the nixpkgs index was built from {}; run `bitpoll-lock index` to rebuild it",
            flake_lock.display(),
            built.unwrap_or(&index.nixpkgs.identity)
        )
    })
}
