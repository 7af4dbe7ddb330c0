//! Why a lock no longer matches its inputs, in words a maintainer acts on.

use std::collections::BTreeSet;
use std::path::Path;

use bitpoll_lockfile::Lock;
use bitpoll_simple::Timestamp;

use crate::{load, InputPaths, InputsError};

/// Every reason `lock` no longer matches its inputs (read again from the paths it records);
/// empty when it does. `flake_lock` is the flake.lock whose nixpkgs the lock should have been
/// resolved against; a missing one is not a reason.
pub fn stale_reasons(lock: &Lock, flake_lock: &Path) -> Result<Vec<String>, InputsError> {
    let mut reasons = Vec::new();
    let recorded =
        bitpoll_lockfile::fingerprint(&lock.inputs, lock.nixpkgs.as_ref(), &lock.targets);
    if recorded != lock.fingerprint {
        reasons.push(
            "lock edited by hand: its fingerprint does not match the inputs it records".to_string(),
        );
    }
    reasons.extend(lock.content_mismatches());
    // The recorded cut-off is used, so the clock plays no part.
    let current = match load(&InputPaths::recorded_in(lock), Timestamp::now()) {
        Ok(current) => current,
        Err(e) => {
            reasons.push(format!("its inputs cannot be read: {}", one_line(&e)));
            return Ok(reasons);
        }
    };
    for (file, old) in &lock.inputs.requirements {
        let new = current
            .inputs
            .requirements
            .get(file)
            .cloned()
            .unwrap_or_default();
        describe_list_change(&mut reasons, file, old, &new);
    }
    for (file, new) in &current.inputs.constraints {
        let old = lock
            .inputs
            .constraints
            .get(file)
            .cloned()
            .unwrap_or_default();
        describe_list_change(&mut reasons, &format!("{file} (constraints)"), &old, new);
    }
    if current.inputs.policy_sha256 != lock.inputs.policy_sha256 {
        reasons.push(format!("{} changed", lock.inputs.policy));
    }
    match (&lock.nixpkgs, &current.nixpkgs_info) {
        (Some(old), Some(new)) if old != new => {
            if old.identity != new.identity {
                reasons.push(format!(
                    "nixpkgs index is now for {} (lock: {})",
                    new.identity, old.identity
                ));
            } else {
                reasons.push(format!("{} changed", new.index));
            }
        }
        _ => {}
    }
    if current.target_infos != lock.targets {
        reasons.push("target marker environments differ from what this version computes".into());
    }
    if let (Some(nix), Some(flake_rev)) = (
        &lock.nixpkgs,
        bitpoll_nixpkgs::flake::flake_nixpkgs_revision(flake_lock)?,
    ) {
        if nix.revision.as_deref() != Some(flake_rev.as_str()) {
            reasons.push(format!(
                "nixpkgs revision differs from {}: the flake pins {flake_rev}, the lock was resolved against {}",
                flake_lock.display(),
                nix.revision.as_deref().unwrap_or(&nix.identity)
            ));
        }
    }
    if reasons.is_empty() && current.fingerprint() != lock.fingerprint {
        reasons.push("inputs changed (fingerprint differs)".into());
    }
    Ok(reasons)
}

/// An error and its causes on one line, leaving out a cause whose text is already there
/// (most of ours repeat their source in their own message).
fn one_line(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = e.source();
    }
    out
}

fn describe_list_change(reasons: &mut Vec<String>, file: &str, old: &[String], new: &[String]) {
    if old == new {
        return;
    }
    let old_set: BTreeSet<&String> = old.iter().collect();
    let new_set: BTreeSet<&String> = new.iter().collect();
    let added: Vec<&str> = new_set.difference(&old_set).map(|s| s.as_str()).collect();
    let removed: Vec<&str> = old_set.difference(&new_set).map(|s| s.as_str()).collect();
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("added {}", added.join(", ")));
    }
    if !removed.is_empty() {
        parts.push(format!("removed {}", removed.join(", ")));
    }
    if parts.is_empty() {
        parts.push("reordered".into());
    }
    reasons.push(format!("{file} changed: {}", parts.join("; ")));
}
