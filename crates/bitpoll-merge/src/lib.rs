//! From per-target resolutions to lock entries: one entry where all targets agree, separate
//! entries where they differ, dependencies common to an entry's targets kept apart from the
//! ones only some targets need, and each sdist's build environment as build packages.
//!
//! A pure function of the resolutions: everything it writes (hashes included) was settled by
//! the resolver and its package sources. It must not fetch or hash anything itself, so the
//! same resolutions always give the same entries.

use std::collections::{BTreeMap, BTreeSet};

use bitpoll_lockfile::{Artifact, ArtifactKind, BuildSystem, MetadataSource, Package, Source};
use bitpoll_resolver::{BuildEnvironment, ResolvedPackage, ResolvedSource, TargetResolution};

/// Resolutions that cannot be written as a lock.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{file}: the index gave an invalid sha256 `{sha256}`")]
    BadHash { file: String, sha256: String },
    #[error(
        "{name} {version} is in build environments from both nixpkgs and the index on {target}; \
         the lock cannot tell them apart (force one source in the policy)"
    )]
    AmbiguousBuildPackage {
        name: String,
        version: String,
        target: String,
    },
}

/// A bad hash is the index's; a build package both sources serve on one target asks for a
/// choice only the policy can make.
impl bitpoll_error_class::Classify for MergeError {
    fn class(&self) -> bitpoll_error_class::ErrorClass {
        match self {
            MergeError::BadHash { .. } => bitpoll_error_class::ErrorClass::Unavailable,
            MergeError::AmbiguousBuildPackage { .. } => bitpoll_error_class::ErrorClass::NoSolution,
        }
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    name: String,
    version: String,
    source: Source,
    attr: Option<String>,
}

/// The lock's `packages` and `build_packages`.
pub struct Merged {
    pub packages: Vec<Package>,
    pub build_packages: Vec<Package>,
}

/// The lock's entries for `resolutions`, whose index packages come from the index named
/// `index_name`.
pub fn merge(index_name: &str, resolutions: &[TargetResolution]) -> Result<Merged, MergeError> {
    let runtime = resolutions
        .iter()
        .flat_map(|res| res.packages.values().map(|p| (res.target.as_str(), p)));
    let mut packages = entries(index_name, runtime)?;
    for package in &mut packages {
        package.build_system = build_system(package, resolutions);
    }
    // A build package used by several sdists of one target is one member of its group.
    let mut seen = BTreeSet::new();
    let build = resolutions
        .iter()
        .flat_map(|res| {
            res.build_environments
                .values()
                .flat_map(|env| env.packages.values().map(|p| (res.target.as_str(), p)))
        })
        .filter(|(target, p)| {
            seen.insert((
                target.to_string(),
                p.name.to_string(),
                p.version.to_string(),
                matches!(p.source, ResolvedSource::Nixpkgs { .. }),
            ))
        });
    let build_packages = entries(index_name, build)?;
    let mut ambiguous = BTreeSet::new();
    for p in &build_packages {
        for t in &p.targets {
            if !ambiguous.insert((t, &p.name, &p.version)) {
                return Err(MergeError::AmbiguousBuildPackage {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    target: t.clone(),
                });
            }
        }
    }
    Ok(Merged {
        packages,
        build_packages,
    })
}

/// The build system of an entry some target builds from its sdist: what its targets'
/// build environments agree on, and per target what differs.
fn build_system(package: &Package, resolutions: &[TargetResolution]) -> Option<BuildSystem> {
    let mut per_target: BTreeMap<&str, &BuildEnvironment> = BTreeMap::new();
    for res in resolutions {
        if !package.targets.contains(&res.target) {
            continue;
        }
        if let Some(env) = res
            .build_environments
            .get(&package.name.parse::<pep508_rs::PackageName>().ok()?)
        {
            per_target.insert(&res.target, env);
        }
    }
    let first = per_target.values().next()?;
    let envs: Vec<(&str, BTreeSet<(String, String)>)> = per_target
        .iter()
        .map(|(t, env)| {
            let pins = env
                .packages
                .values()
                .map(|p| (p.name.to_string(), p.version.to_string()))
                .collect();
            (*t, pins)
        })
        .collect();
    let (common, rest) = split_common(&envs);
    let target_environment = rest
        .into_iter()
        .map(|(t, pins)| (t, pins.into_iter().collect()))
        .collect();
    let mut requires: Vec<String> = Vec::new();
    for env in per_target.values() {
        for r in &env.requires {
            if !requires.contains(r) {
                requires.push(r.clone());
            }
        }
    }
    Some(BuildSystem {
        backend: first.backend.clone(),
        requires,
        environment: common.into_iter().collect(),
        target_environment,
    })
}

/// What every target has, and per target what it has besides (targets with nothing more are
/// left out): how entries write dependencies and build environments alike.
fn split_common<T: Ord + Clone>(
    per_target: &[(&str, BTreeSet<T>)],
) -> (BTreeSet<T>, BTreeMap<String, BTreeSet<T>>) {
    let mut sets = per_target.iter().map(|(_, set)| set);
    let Some(first) = sets.next() else {
        return Default::default();
    };
    let common: BTreeSet<T> = sets.fold(first.clone(), |acc, s| {
        acc.intersection(s).cloned().collect()
    });
    let rest = per_target
        .iter()
        .filter_map(|(target, set)| {
            let more: BTreeSet<T> = set.difference(&common).cloned().collect();
            (!more.is_empty()).then(|| (target.to_string(), more))
        })
        .collect();
    (common, rest)
}

/// Groups per-target packages into entries: one where targets agree.
fn entries<'a>(
    index_name: &str,
    members: impl Iterator<Item = (&'a str, &'a ResolvedPackage)>,
) -> Result<Vec<Package>, MergeError> {
    let mut groups: BTreeMap<Key, Vec<(&str, &ResolvedPackage)>> = BTreeMap::new();
    {
        for (target, pkg) in members {
            let (source, attr) = match &pkg.source {
                ResolvedSource::Nixpkgs { attr } => (Source::Nixpkgs, Some(attr.clone())),
                ResolvedSource::Index { .. } => (Source::Index, None),
            };
            let key = Key {
                name: pkg.name.to_string(),
                version: pkg.version.to_string(),
                source,
                attr,
            };
            groups.entry(key).or_default().push((target, pkg));
        }
    }
    let mut out = Vec::new();
    for (key, members) in groups {
        let targets: Vec<String> = members.iter().map(|(t, _)| t.to_string()).collect();
        let dep_sets: Vec<(&str, BTreeSet<String>)> = members
            .iter()
            .map(|(t, p)| (*t, p.dependencies.iter().map(|d| d.to_string()).collect()))
            .collect();
        let (common, rest) = split_common(&dep_sets);
        let target_dependencies = rest
            .into_iter()
            .map(|(t, deps)| (t, deps.into_iter().collect()))
            .collect();
        let extras: BTreeSet<String> = members
            .iter()
            .flat_map(|(_, p)| p.extras.iter().map(|e| e.to_string()))
            .collect();
        let mut package = Package {
            name: key.name.clone(),
            version: key.version.clone(),
            source: key.source,
            attr: key.attr.clone(),
            index: None,
            targets,
            extras: extras.into_iter().collect(),
            requires_python: None,
            dependencies: common.into_iter().collect(),
            target_dependencies,
            metadata: MetadataSource::Nixpkgs.into(),
            metadata_built_with: None,
            yanked: None,
            artifacts: Vec::new(),
            build_system: None,
        };
        if key.source == Source::Index {
            package.index = Some(index_name.to_string());
            let mut artifacts: BTreeMap<String, Artifact> = BTreeMap::new();
            for (target, pkg) in &members {
                let ResolvedSource::Index {
                    artifact,
                    sha256,
                    publisher,
                    metadata,
                    metadata_built_with,
                    requires_python,
                    ..
                } = &pkg.source
                else {
                    unreachable!("grouped by source")
                };
                package.metadata = (*metadata).into();
                package.metadata_built_with = metadata_built_with.clone();
                if let Some(reason) = &artifact.yanked {
                    package.yanked = Some(reason.to_string());
                }
                package.requires_python = requires_python.clone();
                if let Some(a) = artifacts.get_mut(&*artifact.filename) {
                    a.targets.push(target.to_string());
                    continue;
                }
                let hash =
                    bitpoll_lockfile::sri_from_hex(sha256).ok_or_else(|| MergeError::BadHash {
                        file: artifact.filename.to_string(),
                        sha256: sha256.clone(),
                    })?;
                let sha256 = sha256.clone();
                artifacts.insert(
                    artifact.filename.to_string(),
                    Artifact {
                        kind: if artifact.is_wheel() {
                            ArtifactKind::Wheel
                        } else {
                            ArtifactKind::Sdist
                        },
                        filename: artifact.filename.to_string(),
                        sha256,
                        hash,
                        size: artifact.size,
                        targets: vec![target.to_string()],
                        upload_time: artifact.upload_time.map(|t| t.to_rfc3339()),
                        publisher: publisher.clone(),
                    },
                );
            }
            package.artifacts = artifacts.into_values().collect();
        }
        out.push(package);
    }
    Ok(out)
}
