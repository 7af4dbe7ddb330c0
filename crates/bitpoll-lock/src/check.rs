//! `bitpoll-lock check`: is the lock up to date with its inputs? Reads files only.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bitpoll_lockfile::Lock;
use clap::Args;

use crate::exit::bad_input;
use crate::inputs::{self, InputPaths};
use crate::DEFAULT_LOCK;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The lock to check.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_LOCK)]
    pub lock: PathBuf,
    /// flake.lock whose nixpkgs revision the lock should have been resolved against.
    #[arg(long, value_name = "FILE", default_value = "flake.lock")]
    pub flake_lock: PathBuf,
}

pub fn run(args: CheckArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let lock = Lock::read(&args.lock).map_err(bad_input)?;
    let reasons = stale_reasons(&lock, &args.flake_lock)?;
    if reasons.is_empty() {
        if !quiet {
            eprintln!("{} is up to date", args.lock.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} is out of date:", args.lock.display());
    for r in &reasons {
        println!("  - {r}");
    }
    println!("run `bitpoll-lock update` to refresh it");
    Ok(ExitCode::from(1))
}

/// Every reason the lock no longer matches its inputs; empty when it does.
pub fn stale_reasons(lock: &Lock, flake_lock: &Path) -> anyhow::Result<Vec<String>> {
    let mut reasons = Vec::new();
    let recorded =
        bitpoll_lockfile::fingerprint(&lock.inputs, lock.nixpkgs.as_ref(), &lock.targets);
    if recorded != lock.fingerprint {
        reasons.push(
            "lock edited by hand: its fingerprint does not match the inputs it records".to_string(),
        );
    }
    reasons.extend(lock.content_mismatches());
    let paths = InputPaths {
        requirements: if lock.inputs.requirement_files.is_empty() {
            lock.inputs.requirements.keys().map(PathBuf::from).collect()
        } else {
            lock.inputs
                .requirement_files
                .iter()
                .map(PathBuf::from)
                .collect()
        },
        policy: PathBuf::from(&lock.inputs.policy),
        nixpkgs_index: lock.nixpkgs.as_ref().map(|n| PathBuf::from(&n.index)),
        index_name: lock.inputs.index.clone(),
        exclude_newer: lock.inputs.exclude_newer.clone(),
        systems: lock.targets.iter().map(|t| t.system.clone()).collect(),
        python: lock
            .targets
            .first()
            .and_then(|t| t.markers.get("python_version").cloned()),
        min_release_age: lock.inputs.min_release_age.clone(),
        release_cutoff: lock.inputs.release_cutoff.clone(),
    };
    let current = match inputs::load(&paths) {
        Ok(current) => current,
        Err(e) => {
            reasons.push(format!("its inputs cannot be read: {e:#}"));
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
    if let (Some(nix), Some(flake_rev)) =
        (&lock.nixpkgs, inputs::flake_nixpkgs_revision(flake_lock)?)
    {
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
