//! docs/lock-format.md against the code: its example is a lock the reader accepts, in the
//! canonical order, and every field the writer emits is in the example and described in the
//! text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use bitpoll_lockfile::{
    Artifact, ArtifactKind, BuildSystem, Inputs, Lock, MetadataSource, NixpkgsInfo, Package,
    Source, TargetInfo, SCHEMA,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The doc's text and its one fenced `json` block.
fn doc() -> (String, String) {
    let text = std::fs::read_to_string(root().join("docs/lock-format.md")).unwrap();
    let blocks: Vec<&str> = text.split("```json\n").skip(1).collect();
    assert_eq!(blocks.len(), 1, "the doc has one json example");
    let example = blocks[0].split("```").next().unwrap().to_string();
    let prose = text.replace(&example, "");
    (prose, example)
}

/// Objects whose keys are data (file names, marker names, targets, package names), not fields.
const MAPS: &[&str] = &[
    "inputs.requirements",
    "inputs.constraints",
    "targets[].markers",
    "packages[].target_dependencies",
    "packages[].build_system.environment",
    "packages[].build_system.target_environment",
    "package_sha256",
];

/// Every field path in a lock's JSON, such as `packages[].artifacts[].sha256`.
fn field_paths(value: &serde_json::Value, at: &str, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if MAPS.contains(&at) {
                return;
            }
            for (key, v) in map {
                let path = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                out.insert(path.clone());
                field_paths(v, &path, out);
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                field_paths(v, &format!("{at}[]"), out);
            }
        }
        _ => {}
    }
}

fn paths_of(json: &str) -> BTreeSet<String> {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    let mut out = BTreeSet::new();
    field_paths(&value, "", &mut out);
    out
}

/// A lock with every optional field set, so its JSON has every field the writer can emit.
fn everything() -> Lock {
    let target = "aarch64-darwin".to_string();
    let mut lock = Lock {
        schema: SCHEMA,
        fingerprint: String::new(),
        content_sha256: String::new(),
        inputs: Inputs {
            requirements: BTreeMap::from([("r.in".into(), vec!["a[x]".into()])]),
            requirement_files: vec!["r.in".into()],
            constraints: BTreeMap::from([("r.in".into(), vec!["b<2".into()])]),
            policy: "lock/policy.toml".into(),
            policy_sha256: "0".repeat(64),
            index: "pypi".into(),
            exclude_newer: Some("2026-01-01T23:59:59Z".into()),
            no_nixpkgs: false,
            min_release_age: Some("1 week".into()),
            release_cutoff: Some("2025-12-25T00:00:00Z".into()),
        },
        nixpkgs: Some(NixpkgsInfo {
            identity: "test".into(),
            revision: Some("0".repeat(40)),
            python_attr: "python313".into(),
            python_version: "3.13.0".into(),
            index: "lock/nixpkgs-index.json".into(),
            index_sha256: "0".repeat(64),
        }),
        targets: vec![TargetInfo {
            name: target.clone(),
            system: target.clone(),
            macos_deployment_target: Some("11.0".into()),
            markers: BTreeMap::from([("sys_platform".into(), "linux".into())]),
        }],
        packages: vec![Package {
            name: "a".into(),
            version: "1.0".into(),
            source: Source::Index,
            attr: Some("a".into()),
            index: Some("pypi".into()),
            targets: vec![target.clone()],
            extras: vec!["x".into()],
            requires_python: Some(">=3.8".into()),
            dependencies: vec!["b".into()],
            target_dependencies: BTreeMap::from([(target.clone(), vec!["c".into()])]),
            metadata: MetadataSource::SdistBuild.into(),
            metadata_built_with: Some("cpython-3.13.0".into()),
            yanked: Some(String::new()),
            artifacts: vec![Artifact {
                kind: ArtifactKind::Sdist,
                filename: "a-1.0.tar.gz".into(),
                sha256: "0".repeat(64),
                hash: String::new(),
                size: Some(1),
                targets: vec![target.clone()],
                upload_time: Some("2025-01-01T00:00:00Z".into()),
                publisher: Some("GitHub repository=org/a workflow=release.yml".into()),
            }],
            build_system: Some(BuildSystem {
                backend: "setuptools.build_meta:__legacy__".into(),
                requires: vec!["setuptools>=40.8.0".into()],
                environment: BTreeMap::from([("setuptools".into(), "80.9.0".into())]),
                target_environment: BTreeMap::from([(
                    target.clone(),
                    BTreeMap::from([("wheel".into(), "0.45.1".into())]),
                )]),
            }),
        }],
        build_packages: vec![
            Package {
                name: "setuptools".into(),
                version: "80.9.0".into(),
                source: Source::Nixpkgs,
                attr: Some("setuptools".into()),
                index: None,
                targets: vec![target.clone()],
                extras: Vec::new(),
                requires_python: None,
                dependencies: Vec::new(),
                target_dependencies: BTreeMap::new(),
                metadata: MetadataSource::Nixpkgs.into(),
                metadata_built_with: None,
                yanked: None,
                artifacts: Vec::new(),
                build_system: None,
            },
            Package {
                name: "wheel".into(),
                version: "0.45.1".into(),
                source: Source::Index,
                attr: None,
                index: Some("pypi".into()),
                targets: vec![target.clone()],
                extras: Vec::new(),
                requires_python: Some(">=3.8".into()),
                dependencies: Vec::new(),
                target_dependencies: BTreeMap::new(),
                metadata: MetadataSource::CoreMetadata.into(),
                metadata_built_with: None,
                yanked: None,
                artifacts: vec![Artifact {
                    kind: ArtifactKind::Wheel,
                    filename: "wheel-0.45.1-py3-none-any.whl".into(),
                    sha256: "0".repeat(64),
                    hash: String::new(),
                    size: Some(1),
                    targets: vec![target.clone()],
                    upload_time: None,
                    publisher: None,
                }],
                build_system: None,
            },
        ],
        package_sha256: BTreeMap::new(),
    };
    lock.seal();
    lock
}

#[test]
fn the_example_is_a_lock_in_canonical_order() {
    let (_, example) = doc();
    let lock = Lock::from_slice(Path::new("docs/lock-format.md"), example.as_bytes())
        .unwrap_or_else(|e| panic!("the example must be a valid lock: {e}"));
    assert_eq!(lock.schema, SCHEMA, "the example shows the current schema");
    let mut sorted = lock.clone();
    sorted.normalise();
    assert_eq!(sorted, lock, "the example follows the documented order");
    let names: BTreeSet<String> = lock
        .packages
        .iter()
        .map(|p| p.name.clone())
        .chain(
            lock.build_packages
                .iter()
                .map(|p| format!("{}{}", bitpoll_lockfile::BUILD_PREFIX, p.name)),
        )
        .collect();
    assert_eq!(
        names,
        lock.package_sha256.keys().cloned().collect(),
        "package_sha256 has one line per package name"
    );
}

#[test]
fn every_field_the_writer_emits_is_documented() {
    let (prose, example) = doc();
    let committed = std::fs::read_to_string(root().join("lock/bitpoll.lock.json")).unwrap();
    let mut emitted = paths_of(&committed);
    emitted.extend(paths_of(&everything().to_json()));
    let shown = paths_of(&example);
    let missing: Vec<&String> = emitted.difference(&shown).collect();
    assert!(
        missing.is_empty(),
        "fields missing from the example: {missing:?}"
    );
    let undescribed: Vec<&String> = emitted
        .iter()
        .filter(|path| {
            let field = path.rsplit(['.', ']']).next().unwrap();
            !prose.contains(&format!("`{field}`"))
        })
        .collect();
    assert!(
        undescribed.is_empty(),
        "fields the text does not describe: {undescribed:?}"
    );
    let unknown: Vec<&String> = shown.difference(&emitted).collect();
    assert!(
        unknown.is_empty(),
        "the example shows fields the writer never emits: {unknown:?}"
    );
}
