//! `why`: every path from the top-level requirements to a package, per target, and which
//! sdists a build package builds.

use std::collections::{BTreeMap, BTreeSet};

use bitpoll_lockfile::{Lock, Package, Source};

/// A package as `why` prints it: name, version and where it comes from.
pub fn label(p: &Package) -> String {
    match p.source {
        Source::Nixpkgs => format!(
            "{} {} (nixpkgs: {})",
            p.name,
            p.version,
            p.attr.as_deref().unwrap_or("?")
        ),
        Source::Index => format!(
            "{} {} ({})",
            p.name,
            p.version,
            p.index.as_deref().unwrap_or("index")
        ),
    }
}

/// `roots` is [`crate::roots`] of the lock, read once for all targets.
pub fn paths(
    lock: &Lock,
    roots: &[(String, String, String)],
    target: &str,
    name: &str,
) -> Vec<Vec<String>> {
    let pkgs = lock.packages_for(target);
    let mut results = Vec::new();
    for (root, req, file) in roots {
        let Some(start) = pkgs.get(root.as_str()) else {
            continue;
        };
        let mut stack = vec![(
            start,
            vec![format!("{file}: {req}"), label(start)],
            BTreeSet::from([root.clone()]),
        )];
        while let Some((p, path, seen)) = stack.pop() {
            if p.name == name {
                results.push(path);
                continue;
            }
            for dep in p.dependencies_for(target) {
                if seen.contains(dep) {
                    continue;
                }
                if let Some(d) = pkgs.get(dep.as_str()) {
                    let mut path = path.clone();
                    path.push(label(d));
                    let mut seen = seen.clone();
                    seen.insert(dep.clone());
                    stack.push((d, path, seen));
                }
            }
        }
    }
    results.sort();
    results
}

/// Which sdists `name` helps build, as "name version (source) builds sdist-name version",
/// with the targets where it does.
pub fn build_uses(lock: &Lock, name: &str, system: Option<&str>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &lock.packages {
        let Some(build) = &p.build_system else {
            continue;
        };
        for t in &p.targets {
            if system.is_some_and(|s| s != t) {
                continue;
            }
            let builds_here = p
                .artifacts
                .iter()
                .any(|a| a.kind == bitpoll_lockfile::ArtifactKind::Sdist && a.targets.contains(t));
            let Some(version) = build.environment_for(t).get(name).cloned() else {
                continue;
            };
            if !builds_here {
                continue;
            }
            let entry = lock
                .build_packages
                .iter()
                .find(|b| b.name == name && b.version == version && b.targets.contains(t));
            let what = match entry {
                Some(b) => format!("{} builds {} {}", label(b), p.name, p.version),
                None => format!("{name} {version} builds {} {}", p.name, p.version),
            };
            out.entry(what).or_default().push(t.clone());
        }
    }
    out
}
