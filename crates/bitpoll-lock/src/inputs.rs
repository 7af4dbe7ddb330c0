//! Reading and normalising every input of a resolution. `update` uses this to resolve and to
//! fingerprint; `check` uses the same code on the paths a lock recorded, so the two can never
//! disagree about what "the inputs" are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use bitpoll_lockfile::{Inputs, NixpkgsInfo, TargetInfo};
use bitpoll_nixpkgs::Nixpkgs;
use bitpoll_platform::Target;
use bitpoll_policy::Policy;
use pep508_rs::Requirement;

use crate::exit::bad_input;

/// Where the inputs are and the choices that shape the lock.
#[derive(Debug, Clone)]
pub struct InputPaths {
    pub requirements: Vec<PathBuf>,
    pub policy: PathBuf,
    /// `None` resolves against the Python index only.
    pub nixpkgs_index: Option<PathBuf>,
    pub index_name: String,
    pub exclude_newer: Option<String>,
    pub systems: Vec<String>,
    /// `X.Y`; `None` takes the nixpkgs index's Python.
    pub python: Option<String>,
    /// `--min-release-age`, over the policy's.
    pub min_release_age: Option<String>,
    /// The release-age cut-off to use instead of one computed from the clock.
    pub release_cutoff: Option<String>,
}

pub struct Loaded {
    pub requirements: Vec<Requirement>,
    pub constraints: Vec<Requirement>,
    pub policy: Policy,
    pub nixpkgs: Option<Nixpkgs>,
    pub targets: Vec<Target>,
    pub inputs: Inputs,
    pub nixpkgs_info: Option<NixpkgsInfo>,
    pub target_infos: Vec<TargetInfo>,
    pub release_window: Option<crate::release_age::Window>,
}

impl Loaded {
    pub fn fingerprint(&self) -> String {
        bitpoll_lockfile::fingerprint(&self.inputs, self.nixpkgs_info.as_ref(), &self.target_infos)
    }
}

/// A path as the lock records it: with `/` separators, so a lock made on one machine checks
/// on another.
pub fn display_path(p: &Path) -> String {
    p.to_string_lossy().replace('\\', "/")
}

pub fn load(paths: &InputPaths) -> anyhow::Result<Loaded> {
    let mut requirements = Vec::new();
    let mut constraints = Vec::new();
    let mut req_map = BTreeMap::new();
    let mut con_map = BTreeMap::new();
    for file in &paths.requirements {
        let set =
            bitpoll_requirements::read_files(std::slice::from_ref(file)).map_err(bad_input)?;
        let key = display_path(file);
        req_map.insert(
            key.clone(),
            set.requirements
                .iter()
                .map(|e| e.requirement.to_string())
                .collect(),
        );
        if !set.constraints.is_empty() {
            con_map.insert(
                key,
                set.constraints
                    .iter()
                    .map(|e| e.requirement.to_string())
                    .collect(),
            );
        }
        requirements.extend(set.requirements.into_iter().map(|e| e.requirement));
        constraints.extend(set.constraints.into_iter().map(|e| e.requirement));
    }
    if index_name_is_reserved(&paths.index_name) {
        return Err(bad_input(anyhow::anyhow!(
            "`{}` cannot name a Python index: it is a source name",
            paths.index_name
        )));
    }
    let policy = Policy::load(&paths.policy).map_err(bad_input)?;
    let release_window = crate::release_age::window(
        paths.min_release_age.as_deref(),
        &policy,
        paths.release_cutoff.as_deref(),
        bitpoll_client::Timestamp::now(),
    )?;
    let nixpkgs = paths
        .nixpkgs_index
        .as_deref()
        .map(Nixpkgs::load)
        .transpose()
        .map_err(bad_input)?;

    let python = match (&paths.python, &nixpkgs) {
        (Some(requested), Some(n)) => {
            let full = &n.index.python.version;
            if !(full == requested || full.starts_with(&format!("{requested}."))) {
                return Err(bad_input(anyhow::anyhow!(
                    "--python {requested} does not match the nixpkgs index, which describes {} {full}; \
                     build an index for that Python (`bitpoll-lock index --python ...`) or use --no-nixpkgs",
                    n.index.python.attr
                )));
            }
            full.clone()
        }
        (Some(requested), None) => requested.clone(),
        (None, Some(n)) => n.index.python.version.clone(),
        (None, None) => "3.13".to_string(),
    };
    let mut systems = paths.systems.clone();
    systems.sort();
    systems.dedup();
    let targets = systems
        .iter()
        .map(|s| Target::with_macos(s, &python, policy.macos.get(s).copied()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad_input)?;
    let target_infos = targets
        .iter()
        .map(|t| TargetInfo {
            name: t.name.clone(),
            system: t.system.clone(),
            macos_deployment_target: t.macos_deployment_target(),
            markers: t
                .marker_map()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        })
        .collect();
    let nixpkgs_info = nixpkgs
        .as_ref()
        .zip(paths.nixpkgs_index.as_deref())
        .map(|(n, path)| NixpkgsInfo {
            identity: n.index.nixpkgs.identity.clone(),
            revision: n.index.nixpkgs.revision.clone(),
            python_attr: n.index.python.attr.clone(),
            python_version: n.index.python.version.clone(),
            index: display_path(path),
            index_sha256: n.sha256.clone(),
        });
    let inputs = Inputs {
        requirements: req_map,
        requirement_files: paths.requirements.iter().map(|p| display_path(p)).collect(),
        constraints: con_map,
        policy: display_path(&paths.policy),
        policy_sha256: policy.fingerprint.clone(),
        index: paths.index_name.clone(),
        exclude_newer: paths.exclude_newer.clone(),
        no_nixpkgs: nixpkgs.is_none(),
        min_release_age: release_window.map(|w| w.age.to_string()),
        release_cutoff: release_window.map(|w| w.cutoff.to_rfc3339()),
    };
    Ok(Loaded {
        requirements,
        constraints,
        policy,
        nixpkgs,
        targets,
        inputs,
        nixpkgs_info,
        target_infos,
        release_window,
    })
}

fn index_name_is_reserved(name: &str) -> bool {
    name == "nixpkgs" || name.is_empty()
}

/// The `locked` node of a flake.lock's `nixpkgs` input; `None` when there is no flake.lock.
pub fn flake_nixpkgs_locked(flake_lock: &Path) -> anyhow::Result<Option<serde_json::Value>> {
    let Ok(text) = std::fs::read_to_string(flake_lock) else {
        return Ok(None);
    };
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: invalid JSON", flake_lock.display()))
        .map_err(bad_input)?;
    let root = json["root"].as_str().unwrap_or("root");
    let node = json["nodes"][root]["inputs"]["nixpkgs"]
        .as_str()
        .unwrap_or("nixpkgs");
    let locked = &json["nodes"][node]["locked"];
    Ok(locked.is_object().then(|| locked.clone()))
}

/// The nixpkgs revision a flake.lock pins, if any.
pub fn flake_nixpkgs_revision(flake_lock: &Path) -> anyhow::Result<Option<String>> {
    Ok(flake_nixpkgs_locked(flake_lock)?.and_then(|l| l["rev"].as_str().map(str::to_string)))
}
