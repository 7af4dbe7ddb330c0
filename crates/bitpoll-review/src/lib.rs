//! What a reviewer reads about a lock: the difference between two locks with what needs a
//! second look flagged (`diff`), its supply-chain signals (`security`: fresh releases, lost or
//! changed publishers, known advisories), and why a package is in a lock (`why`).
//!
//! Pure functions of locks (and of advisories handed in): this crate fetches nothing and
//! never writes a lock; the command line gathers what it needs and prints what it returns.
//! The one file it reads is the policy a lock names, for its replacements.

pub mod diff;
pub mod security;
pub mod why;

use std::collections::BTreeSet;
use std::path::Path;

use bitpoll_audit::Pin;
use bitpoll_lockfile::Lock;
use bitpoll_policy::ReleaseAge;

/// A lock's top-level requirements as (the package name they resolve to, the requirement as
/// written, its file): names go through the policy's replacements when nixpkgs was used, so
/// `psycopg2-binary` leads to nixpkgs' `psycopg2` as it did during resolution.
pub fn roots(lock: &Lock) -> Vec<(String, String, String)> {
    let policy = bitpoll_policy::Policy::load(Path::new(&lock.inputs.policy)).ok();
    let mut out = Vec::new();
    for (file, reqs) in &lock.inputs.requirements {
        for r in reqs {
            let Ok(req) = bitpoll_pep508::parse(r) else {
                continue;
            };
            let mut name = req.name.clone();
            if lock.nixpkgs.is_some() {
                if let Some(to) = policy.as_ref().and_then(|p| p.replace.get(&name)) {
                    name = to.clone();
                }
            }
            out.push((name.to_string(), r.clone(), file.clone()));
        }
    }
    out
}

/// The window `diff` measures new pins against: the lock's own, else a week.
pub fn review_window(recorded_age: Option<&str>) -> ReleaseAge {
    recorded_age
        .and_then(|a| ReleaseAge::parse(a).ok())
        .filter(|a| a.seconds > 0)
        .unwrap_or(ReleaseAge {
            seconds: 7 * 86_400,
        })
}

/// Every (name, version) the lock pins, index and nixpkgs entries alike.
pub fn pins(lock: &Lock) -> BTreeSet<Pin> {
    lock.packages
        .iter()
        .map(|p| Pin {
            name: p.name.clone(),
            version: p.version.clone(),
        })
        .collect()
}
