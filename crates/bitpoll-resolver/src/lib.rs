//! The resolver: one consistent package set per target, nixpkgs first.
//!
//! For each target (python x system) a PubGrub solve runs over two sources at once. A package
//! is taken from nixpkgs whenever a nixpkgs build satisfies every requirement on it; choosing
//! one pins its dependencies to their nixpkgs builds (see [`version`] for how the two sources
//! coexist in one version order), so a PyPI release can never shadow a module that a nixpkgs
//! package was built against. Everything else comes from the Python index, newest first, with
//! Requires-Python (as a floor, like uv), yanked releases (PEP 592), pre-release rules, PEP 440
//! local versions and wheel compatibility applied per target. When no solution exists the error
//! carries PubGrub's derivation, in words.
//!
//! It must not speak HTTP or hold an index client: every fact about a package comes through a
//! [`PackageSource`], so the same solver runs against the index and an in-memory universe. Nor
//! does it write the lock: [`TargetResolution`]s go to `bitpoll-merge`.

mod build;
mod candidates;
mod lookahead;
mod parallel;
mod provider;
mod release_age;
mod replay;
mod report;
mod saved;
mod universe;
pub mod version;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bitpoll_metadata::MetadataSource;
use bitpoll_nixpkgs::Nixpkgs;
use bitpoll_platform::Target;
use bitpoll_policy::Policy;
use bitpoll_source::{Classify, DistFile, ErrorClass, PackageSource, SourceError};
use pep440_rs::Version;
use pep508_rs::{ExtraName, PackageName, Requirement};

pub use build::{BuildSetup, Builds};
pub use candidates::wheel_filter;
pub use saved::{SavedSolves, SolveStore};
pub use version::Source;

use provider::Role;

use bitpoll_timings::Category;

/// When pre-releases may be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrereleaseMode {
    /// Only when a top-level requirement asks for one explicitly, or when a package has
    /// nothing but pre-releases.
    #[default]
    IfNecessaryOrExplicit,
    /// Only when a package has nothing but pre-releases.
    IfNecessary,
    Allow,
    Disallow,
    /// Only for packages named by a top-level requirement.
    Explicit,
}

/// A set of package names, or all of them.
#[derive(Debug, Clone, Default)]
pub enum PackageSet {
    #[default]
    None,
    All,
    Some(BTreeSet<PackageName>),
}

impl PackageSet {
    pub fn contains(&self, name: &PackageName) -> bool {
        match self {
            PackageSet::None => false,
            PackageSet::All => true,
            PackageSet::Some(set) => set.contains(name),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub prerelease: PrereleaseMode,
    /// Never use wheels of these packages.
    pub no_binary: PackageSet,
    /// Never build these packages from source.
    pub no_build: PackageSet,
    /// Whether build backends may run to read metadata that is not static.
    pub builds: Builds,
    /// Files uploaded after this instant (or without an upload time) are held back unless
    /// their version is pinned with `==`: the policy's `min-release-age` made absolute.
    pub release_cutoff: Option<bitpoll_simple::Timestamp>,
    /// Where the time a solver thread spends blocked on a package fact is recorded.
    pub timings: bitpoll_timings::Timings,
    /// Every answer comes from disk (`--offline`): dependencies are not followed ahead of
    /// the solver (see `lookahead`), which hides round trips there is none of, and costs CPU.
    pub offline: bool,
    /// Where each target's solve is kept for the next run, which takes it instead of solving
    /// when every answer it read is still the same (see `saved`); `None`: always solve.
    pub saved_solves: Option<SavedSolves>,
}

/// Everything a resolution depends on besides the indexes.
pub struct Request<'a> {
    pub requirements: &'a [Requirement],
    pub constraints: &'a [Requirement],
    pub nixpkgs: Option<&'a Nixpkgs>,
    pub policy: &'a Policy,
    pub options: &'a Options,
    /// Versions to keep when they are still valid (the previous lock).
    pub preferences: &'a HashMap<PackageName, (Version, Source)>,
}

/// Where a resolved package comes from.
#[derive(Debug, Clone)]
pub enum ResolvedSource {
    Nixpkgs {
        attr: String,
    },
    Index {
        /// The file this target installs.
        artifact: Arc<DistFile>,
        /// Its sha256 (hex): as the index declared it, or of its bytes where it declared none.
        sha256: String,
        /// Its publisher, from the index's PEP 740 provenance, where it lists one.
        publisher: Option<String>,
        metadata: MetadataSource,
        /// The interpreter that ran the build backend, when `metadata` came from a build.
        metadata_built_with: Option<String>,
        requires_python: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct ResolvedPackage {
    pub name: PackageName,
    pub version: Version,
    pub source: ResolvedSource,
    pub extras: BTreeSet<ExtraName>,
    pub dependencies: BTreeSet<PackageName>,
}

/// The environment a target builds one of its sdists in: `requires` resolved with the same
/// rules as the runtime set (nixpkgs first, its closure kept whole, then index wheels; never
/// an sdist, which would need a build of its own), and kept apart from the runtime set.
#[derive(Debug, Clone)]
pub struct BuildEnvironment {
    /// The PEP 517 backend object (`setuptools.build_meta:__legacy__` when the sdist names
    /// none).
    pub backend: String,
    /// `[build-system].requires` (or the PEP 517 fallback) and what the backend's
    /// `get_requires_for_build_wheel` adds, in that order.
    pub requires: Vec<String>,
    pub packages: BTreeMap<PackageName, ResolvedPackage>,
}

/// The package set of one target.
#[derive(Debug, Clone)]
pub struct TargetResolution {
    pub target: String,
    pub packages: BTreeMap<PackageName, ResolvedPackage>,
    /// For every package this target builds from its sdist.
    pub build_environments: BTreeMap<PackageName, BuildEnvironment>,
    /// Things the user should know that did not stop the resolution.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no solution for {target}:\n{explanation}")]
    NoSolution { target: String, explanation: String },
    /// A package source could not answer (see [`SourceError::class`]).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// An sdist's metadata could not be built, or building was refused.
    #[error("{0}")]
    Build(String),
}

/// A refused or failed build is the input's to fix (a policy entry, an interpreter); a
/// source that could not answer says which it was.
impl Classify for ResolveError {
    fn class(&self) -> ErrorClass {
        match self {
            ResolveError::Source(e) => e.class(),
            ResolveError::NoSolution { .. } => ErrorClass::NoSolution,
            ResolveError::Build(_) => ErrorClass::BadInput,
        }
    }
}

/// Resolves every target, in parallel; targets share the client's caches.
pub fn resolve(
    source: &dyn PackageSource,
    targets: &[Target],
    request: &Request<'_>,
) -> Result<Vec<TargetResolution>, ResolveError> {
    // With builds, the run's indexes are the build environments' too.
    let indexes = &match &request.options.builds {
        Builds::Allowed(setup) => setup.indexes.clone(),
        Builds::Refused => candidates::PageIndexes::default(),
    };
    let results: Vec<Result<TargetResolution, ResolveError>> = std::thread::scope(|scope| {
        let early = match &request.options.builds {
            Builds::Allowed(setup) => Some(build::EarlyBuilds::spawn(
                scope, setup, source, targets, request,
            )),
            Builds::Refused => None,
        };
        let roles = roles(targets, request.options.saved_solves.is_some());
        let handles: Vec<_> = targets
            .iter()
            .zip(roles)
            .map(|(target, role)| {
                let early = early.clone();
                // Named, so a timeline can tell the targets' threads apart.
                std::thread::Builder::new()
                    .name(format!("resolve {}", target.name))
                    .spawn_scoped(scope, move || {
                        let timings = &request.options.timings;
                        let mark = timings.mark();
                        let result =
                            provider::resolve_target(source, indexes, target, request, early, role);
                        timings.span(mark, Category::Target, || target.name.clone());
                        result
                    })
                    .expect("a resolver thread starts")
            })
            .collect();
        drop(early);
        handles
            .into_iter()
            .map(|h| h.join().expect("resolver thread panicked"))
            .collect()
    });
    results.into_iter().collect()
}

/// Resolves one target.
pub fn resolve_target(
    source: &dyn PackageSource,
    target: &Target,
    request: &Request<'_>,
) -> Result<TargetResolution, ResolveError> {
    let indexes = candidates::PageIndexes::default();
    provider::resolve_target(source, &indexes, target, request, None, Role::Alone)
}

/// Which targets lead and which follow (see `replay`): a target follows the first one before
/// it with the same operating system and Python, whose answers are the likeliest to agree
/// with its own (only wheels and `platform_machine` markers tell them apart); the others
/// lead. Two leaders run side by side on two cores; a follower still works out every answer
/// itself, and saves what a solve adds to that (PubGrub's work, and every restart). With
/// `keeping` (solves kept between runs), every target that is no follower leads, followed or
/// not: a leader is what keeps its solve.
fn roles(targets: &[Target], keeping: bool) -> Vec<Role> {
    let traces: Vec<Arc<replay::Trace>> = targets.iter().map(|_| Arc::default()).collect();
    let alike = |a: &Target, b: &Target| {
        a.markers().sys_platform() == b.markers().sys_platform()
            && a.python_full_version == b.python_full_version
    };
    let leader_of: Vec<Option<usize>> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| (0..i).find(|&j| alike(&targets[j], t)))
        .collect();
    let led = |j: usize| leader_of.contains(&Some(j));
    targets
        .iter()
        .enumerate()
        .map(|(i, _)| match leader_of[i] {
            // A leader is never a follower: it is the first of its kind.
            Some(j) => Role::Follows(traces[j].clone(), targets[j].name.clone()),
            None if led(i) || keeping => Role::Leads(traces[i].clone()),
            None => Role::Alone,
        })
        .collect()
}
