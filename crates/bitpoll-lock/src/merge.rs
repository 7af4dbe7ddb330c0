//! From per-target resolutions to lock entries: one entry where all targets agree, separate
//! entries where they differ, dependencies common to an entry's targets kept apart from the
//! ones only some targets need.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use bitpoll_client::IndexClient;
use bitpoll_lockfile::{Artifact, ArtifactKind, Package, Source};
use bitpoll_resolver::{ResolvedSource, TargetResolution};
use sha2::{Digest, Sha256};

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    name: String,
    version: String,
    source: Source,
    attr: Option<String>,
}

pub fn merge(
    client: &IndexClient,
    index_name: &str,
    resolutions: &[TargetResolution],
) -> anyhow::Result<Vec<Package>> {
    let mut groups: BTreeMap<Key, Vec<(&str, &bitpoll_resolver::ResolvedPackage)>> =
        BTreeMap::new();
    for res in resolutions {
        for pkg in res.packages.values() {
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
            groups
                .entry(key)
                .or_default()
                .push((res.target.as_str(), pkg));
        }
    }
    let mut out = Vec::new();
    for (key, members) in groups {
        let targets: Vec<String> = members.iter().map(|(t, _)| t.to_string()).collect();
        let dep_sets: Vec<BTreeSet<String>> = members
            .iter()
            .map(|(_, p)| p.dependencies.iter().map(|d| d.to_string()).collect())
            .collect();
        let common: BTreeSet<String> =
            dep_sets.iter().skip(1).fold(dep_sets[0].clone(), |acc, s| {
                acc.intersection(s).cloned().collect()
            });
        let mut target_dependencies = BTreeMap::new();
        for ((target, _), deps) in members.iter().zip(&dep_sets) {
            let extra: Vec<String> = deps.difference(&common).cloned().collect();
            if !extra.is_empty() {
                target_dependencies.insert(target.to_string(), extra);
            }
        }
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
            metadata: "nixpkgs".into(),
            metadata_built_with: None,
            yanked: None,
            artifacts: Vec::new(),
            build_system: None,
        };
        if key.source == Source::Index {
            package.index = Some(index_name.to_string());
            let mut artifacts: BTreeMap<String, Artifact> = BTreeMap::new();
            let mut build_system: Option<BTreeSet<String>> = None;
            for (target, pkg) in &members {
                let ResolvedSource::Index {
                    artifact,
                    metadata,
                    metadata_built_with,
                    requires_python,
                    build_requires,
                } = &pkg.source
                else {
                    unreachable!("grouped by source")
                };
                package.metadata = metadata.as_str().to_string();
                package.metadata_built_with = metadata_built_with.clone();
                if let Some(reason) = &artifact.yanked {
                    package.yanked = Some(reason.to_string());
                }
                package.requires_python = requires_python.clone();
                if let Some(reqs) = build_requires {
                    build_system
                        .get_or_insert_with(BTreeSet::new)
                        .extend(reqs.iter().cloned());
                }
                if let Some(a) = artifacts.get_mut(&*artifact.filename) {
                    a.targets.push(target.to_string());
                    continue;
                }
                let sha256 = match &artifact.sha256 {
                    Some(h) => h.to_string(),
                    // The index gave no hash: hash the bytes ourselves rather than pin nothing.
                    None => {
                        let bytes = client
                            .download(artifact)
                            .with_context(|| format!("hashing {}", artifact.filename))?;
                        hex::encode(Sha256::digest(&bytes))
                    }
                };
                let hash = bitpoll_lockfile::sri_from_hex(&sha256).with_context(|| {
                    format!(
                        "{}: the index gave an invalid sha256 `{sha256}`",
                        artifact.filename
                    )
                })?;
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
                    },
                );
            }
            package.artifacts = artifacts.into_values().collect();
            package.build_system = build_system.map(|s| s.into_iter().collect());
        }
        out.push(package);
    }
    Ok(out)
}
