//! Every input of a resolution, read and normalised: the requirement files (with their
//! includes and constraints), the policy, the nixpkgs index, the targets and the release-age
//! window, and the lock's record of them (`inputs`, `nixpkgs`, `targets`, the fingerprint).
//!
//! `update` resolves from what [`load`] returns; `check` runs the same code on the paths a
//! lock recorded ([`stale_reasons`]), so the two can never disagree about what "the inputs"
//! are. This crate reads files only: it must not resolve, fetch or write anything.

mod stale;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bitpoll_error_class::{Classify, ErrorClass};
use bitpoll_lockfile::{Inputs, Lock, NixpkgsInfo, TargetInfo};
use bitpoll_nixpkgs::flake::FlakeLockError;
use bitpoll_nixpkgs::{IndexError, Nixpkgs};
use bitpoll_platform::{Target, TargetError};
use bitpoll_policy::release_window::{self, Window, WindowError};
use bitpoll_policy::{Policy, PolicyError};
use bitpoll_requirements::RequirementsError;
use bitpoll_simple::Timestamp;
use pep508_rs::Requirement;

pub use stale::stale_reasons;

/// Why the inputs cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InputsError {
    #[error(transparent)]
    Requirements(#[from] RequirementsError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    ReleaseWindow(#[from] WindowError),
    #[error(transparent)]
    Nixpkgs(#[from] IndexError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    FlakeLock(#[from] FlakeLockError),
    #[error("`{0}` cannot name a Python index: it is a source name")]
    ReservedIndexName(String),
    #[error(
        "--python {requested} does not match the nixpkgs index, which describes {attr} {full}; \
         build an index for that Python (`bitpoll-lock index --python ...`) or use --no-nixpkgs"
    )]
    PythonMismatch {
        requested: String,
        attr: String,
        full: String,
    },
}

impl Classify for InputsError {
    fn class(&self) -> ErrorClass {
        match self {
            InputsError::Requirements(e) => e.class(),
            InputsError::Policy(e) => e.class(),
            InputsError::ReleaseWindow(e) => e.class(),
            InputsError::Nixpkgs(e) => e.class(),
            InputsError::Target(e) => e.class(),
            InputsError::FlakeLock(e) => e.class(),
            InputsError::ReservedIndexName(_) | InputsError::PythonMismatch { .. } => {
                ErrorClass::BadInput
            }
        }
    }
}

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

impl InputPaths {
    /// The inputs a lock says it was made from, to read them again.
    pub fn recorded_in(lock: &Lock) -> InputPaths {
        InputPaths {
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
        }
    }
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
    pub release_window: Option<Window>,
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

/// Reads every input `paths` names; the release-age window is measured back from `now`
/// unless `paths` gives a cut-off.
pub fn load(paths: &InputPaths, now: Timestamp) -> Result<Loaded, InputsError> {
    let mut requirements = Vec::new();
    let mut constraints = Vec::new();
    let mut req_map = BTreeMap::new();
    let mut con_map = BTreeMap::new();
    for file in &paths.requirements {
        let set = bitpoll_requirements::read_files(std::slice::from_ref(file))?;
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
        return Err(InputsError::ReservedIndexName(paths.index_name.clone()));
    }
    let policy = Policy::load(&paths.policy)?;
    let release_window = release_window::window(
        paths.min_release_age.as_deref(),
        &policy,
        paths.release_cutoff.as_deref(),
        now,
    )?;
    let nixpkgs = paths
        .nixpkgs_index
        .as_deref()
        .map(Nixpkgs::load)
        .transpose()?;

    let python = match (&paths.python, &nixpkgs) {
        (Some(requested), Some(n)) => {
            let full = &n.index.python.version;
            if !(full == requested || full.starts_with(&format!("{requested}."))) {
                return Err(InputsError::PythonMismatch {
                    requested: requested.clone(),
                    attr: n.index.python.attr.clone(),
                    full: full.clone(),
                });
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
        .collect::<Result<Vec<_>, _>>()?;
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

/// Keeps the previous lock's cut-off when the clock moved it but nothing else changed: the
/// lock records no field that changes when nothing changed, and the older cut-off reproduces
/// these very pins (it produced them). `lock` must be normalised; its fingerprint is redone.
pub fn keep_previous_cutoff(lock: &mut Lock, previous: Option<&Lock>) {
    let Some(previous) = previous else {
        return;
    };
    let same_window = previous.inputs.min_release_age.is_some()
        && previous.inputs.min_release_age == lock.inputs.min_release_age;
    let earlier = match (
        previous
            .inputs
            .release_cutoff
            .as_deref()
            .and_then(Timestamp::parse),
        lock.inputs
            .release_cutoff
            .as_deref()
            .and_then(Timestamp::parse),
    ) {
        (Some(old), Some(new)) => old < new,
        _ => false,
    };
    if !same_window || !earlier {
        return;
    }
    let mut inputs = lock.inputs.clone();
    inputs.release_cutoff = previous.inputs.release_cutoff.clone();
    let unchanged = previous.inputs == inputs
        && previous.nixpkgs == lock.nixpkgs
        && previous.targets == lock.targets
        && previous.packages == lock.packages
        && previous.build_packages == lock.build_packages;
    if unchanged {
        lock.inputs = inputs;
        lock.fingerprint =
            bitpoll_lockfile::fingerprint(&lock.inputs, lock.nixpkgs.as_ref(), &lock.targets);
    }
}
