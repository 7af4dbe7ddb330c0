//! The PubGrub dependency provider for one target.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use bitpoll_metadata::{CoreMetadata, MetadataSource};
use bitpoll_platform::Target;
use bitpoll_platform::WheelFilename;
use bitpoll_source::{PackageSource, SourceError};
use pep440_rs::{Operator, Version, VersionSpecifiers};
use pep508_rs::{ExtraName, PackageName, Requirement, VersionOrUrl};
use pubgrub::{
    Dependencies, DependencyConstraints, DependencyProvider, PackageResolutionStatistics,
    PubGrubError,
};
use sha2::{Digest, Sha256};

use crate::candidates::{self, CandidateContext, CandidateKind, Candidates, PageIndexes};
use crate::version::{Range, SolverVersion, Source};
use crate::{
    PrereleaseMode, Request, ResolveError, ResolvedPackage, ResolvedSource, TargetResolution,
};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pkg {
    Root,
    Python(PackageName),
    /// The extra of a package: depends on the package at the same version plus the extra's
    /// requirements.
    Extra(PackageName, ExtraName),
}

impl fmt::Display for Pkg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pkg::Root => f.write_str("the requirements"),
            Pkg::Python(name) => write!(f, "{name}"),
            Pkg::Extra(name, extra) => write!(f, "{name}[{extra}]"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error(transparent)]
    Source(#[from] SourceError),
    /// An sdist's metadata could not be built (or building is refused): the run stops, since
    /// any lock made without it would guess.
    #[error("{0}")]
    Build(String),
    /// Not an error: the solve starts over with packages that kept conflicting decided first.
    #[error("restarting with new priorities")]
    Restart,
}

/// A release of a package.
type Release = (PackageName, Version);

/// How often a package may be in a conflict before it is decided ahead of the others.
const CONFLICT_THRESHOLD: u32 = 5;

pub struct Provider<'a> {
    source: &'a dyn PackageSource,
    indexes: &'a PageIndexes,
    target: &'a Target,
    request: &'a Request<'a>,
    constraints: HashMap<PackageName, Range>,
    /// Versions pinned with `==` at the top level, per package.
    pinned: HashMap<PackageName, HashSet<Version>>,
    /// Packages whose top-level requirements name a pre-release.
    explicit_pre: HashSet<PackageName>,
    /// Packages named at the top level.
    direct: HashSet<PackageName>,
    preferred: HashMap<PackageName, SolverVersion>,
    candidates: RefCell<HashMap<PackageName, Rc<Candidates>>>,
    /// nixpkgs' candidates alone, built without the index page (see
    /// [`Provider::nixpkgs_candidates`]).
    nixpkgs_only: RefCell<HashMap<PackageName, Rc<Candidates>>>,
    deps: RefCell<HashMap<(Pkg, SolverVersion), Vec<Pkg>>>,
    /// Where each chosen release's metadata came from, and its Requires-Python.
    metadata_source: RefCell<HashMap<Release, (MetadataSource, Option<String>)>>,
    /// The interpreter that ran the build backend, for metadata that came from a build.
    built_with: RefCell<HashMap<Release, String>>,
    /// Where each top-level requirement was declared (files in the order given, lines in
    /// order): these packages are decided in that order, ahead of what they pull in.
    declared: HashMap<PackageName, usize>,
    /// The order in which the solver first asked about every other package.
    discovered: RefCell<HashMap<Pkg, usize>>,
    /// Packages decided before all others but singletons, because deciding them late made
    /// them conflict again and again (see [`Provider::prioritize`]).
    boosted: RefCell<HashSet<Pkg>>,
    restart: std::cell::Cell<bool>,
    prefetched: RefCell<HashSet<PackageName>>,
    warnings: RefCell<Vec<String>>,
}

fn requirement_range(req: &Requirement) -> Range {
    match &req.version_or_url {
        Some(VersionOrUrl::VersionSpecifier(spec)) => Range::from_specifiers(spec),
        _ => Range::any(),
    }
}

fn exact_versions(req: &Requirement) -> Vec<Version> {
    match &req.version_or_url {
        Some(VersionOrUrl::VersionSpecifier(spec)) => spec
            .iter()
            .filter(|s| matches!(s.operator(), Operator::Equal | Operator::ExactEqual))
            .map(|s| s.version().clone())
            .collect(),
        _ => Vec::new(),
    }
}

impl<'a> Provider<'a> {
    fn new(
        source: &'a dyn PackageSource,
        indexes: &'a PageIndexes,
        target: &'a Target,
        request: &'a Request<'a>,
    ) -> Self {
        let env = target.markers();
        let mut constraints: HashMap<PackageName, Range> = HashMap::new();
        let mut pinned: HashMap<PackageName, HashSet<Version>> = HashMap::new();
        let mut explicit_pre = HashSet::new();
        let mut direct = HashSet::new();
        let all_constraints = request
            .constraints
            .iter()
            .chain(request.policy.constraints.iter());
        for req in all_constraints {
            if !req.evaluate_markers(env, &[]) {
                continue;
            }
            let range = requirement_range(req);
            constraints
                .entry(req.name.clone())
                .and_modify(|r| *r = pubgrub::VersionSet::intersection(r, &range))
                .or_insert(range);
        }
        for req in request
            .requirements
            .iter()
            .chain(request.constraints.iter())
        {
            if !req.evaluate_markers(env, &[]) {
                continue;
            }
            pinned
                .entry(req.name.clone())
                .or_default()
                .extend(exact_versions(req));
            if let Some(VersionOrUrl::VersionSpecifier(spec)) = &req.version_or_url {
                if spec.iter().any(|s| s.version().any_prerelease()) {
                    explicit_pre.insert(req.name.clone());
                }
            }
            direct.insert(req.name.clone());
        }
        let preferred = request
            .preferences
            .iter()
            .map(|(name, (v, src))| (name.clone(), SolverVersion::new(v.clone(), *src)))
            .collect();
        let mut provider = Self {
            source,
            indexes,
            target,
            request,
            constraints,
            pinned,
            explicit_pre,
            direct,
            preferred,
            candidates: RefCell::default(),
            nixpkgs_only: RefCell::default(),
            deps: RefCell::default(),
            metadata_source: RefCell::default(),
            built_with: RefCell::default(),
            declared: HashMap::new(),
            discovered: RefCell::default(),
            boosted: RefCell::default(),
            restart: std::cell::Cell::new(false),
            prefetched: RefCell::default(),
            warnings: RefCell::default(),
        };
        for req in request.requirements {
            if req.evaluate_markers(env, &[]) {
                let name = provider.replaced(&req.name);
                let next = provider.declared.len();
                provider.declared.entry(name).or_insert(next);
            }
        }
        provider
    }

    fn replaced(&self, name: &PackageName) -> PackageName {
        if self.request.nixpkgs.is_some() {
            if let Some(to) = self.request.policy.replace.get(name) {
                return to.clone();
            }
        }
        name.clone()
    }

    fn candidates(&self, name: &PackageName) -> Result<Rc<Candidates>, SourceError> {
        if let Some(c) = self.candidates.borrow().get(name) {
            return Ok(c.clone());
        }
        let forced = self.request.policy.forced_source(name);
        // nixpkgs-only packages need no index page.
        let page = if forced == Some(bitpoll_policy::ForcedSource::Nixpkgs) {
            Err(SourceError::NotFound {
                package: name.to_string(),
            })
        } else {
            self.source.project(name)
        };
        let empty = HashSet::new();
        let cx = CandidateContext {
            target: self.target,
            indexes: self.indexes,
            nixpkgs: self.request.nixpkgs,
            forced,
            options: self.request.options,
            pinned: self.pinned.get(name).unwrap_or(&empty),
            preferred: self.preferred.get(name),
        };
        let built = Rc::new(candidates::build(name, page, &cx)?);
        self.candidates
            .borrow_mut()
            .insert(name.clone(), built.clone());
        Ok(built)
    }

    /// nixpkgs' candidates without asking the index, when they lead the full candidate list
    /// (no preference for an index release, nixpkgs not ruled out). Choosing one of them then
    /// needs no index page, which in the default mode spares most project-page requests.
    fn nixpkgs_candidates(&self, name: &PackageName) -> Option<Rc<Candidates>> {
        let nixpkgs = self.request.nixpkgs?;
        let forced = self.request.policy.forced_source(name);
        if forced == Some(bitpoll_policy::ForcedSource::Index)
            || self
                .preferred
                .get(name)
                .is_some_and(|p| p.source != Source::Nixpkgs)
        {
            return None;
        }
        if let Some(c) = self.nixpkgs_only.borrow().get(name) {
            return Some(c.clone());
        }
        let empty = HashSet::new();
        let cx = CandidateContext {
            target: self.target,
            indexes: self.indexes,
            nixpkgs: Some(nixpkgs),
            forced,
            options: self.request.options,
            pinned: self.pinned.get(name).unwrap_or(&empty),
            preferred: self.preferred.get(name),
        };
        let page = Err(SourceError::NotFound {
            package: name.to_string(),
        });
        let mut built = candidates::build(name, page, &cx).ok()?;
        // `build` returns before applying the preference when there is no page; the full
        // list puts a preferred nixpkgs build first, so this list must too.
        if let Some(pref) = cx.preferred {
            if let Some(pos) = built.list.iter().position(|c| &c.version == pref) {
                let c = built.list.remove(pos);
                built.list.insert(0, c);
            }
        }
        let built = Rc::new(built);
        self.nixpkgs_only
            .borrow_mut()
            .insert(name.clone(), built.clone());
        Some(built)
    }

    fn prerelease_allowed(&self, name: &PackageName, cands: &Candidates) -> bool {
        let explicit = self.explicit_pre.contains(name);
        match self.request.options.prerelease {
            PrereleaseMode::Allow => true,
            PrereleaseMode::Disallow => false,
            PrereleaseMode::IfNecessary => cands.only_prereleases,
            PrereleaseMode::Explicit => explicit || self.direct.contains(name),
            PrereleaseMode::IfNecessaryOrExplicit => explicit || cands.only_prereleases,
        }
    }

    /// Adds the edges a requirement creates to `deps`.
    fn add_requirement(&self, deps: &mut Deps, req: &Requirement, from: Option<&PackageName>) {
        let name = self.replaced(&req.name);
        let mut range = requirement_range(req);
        if let Some(c) = self.constraints.get(&name) {
            range = pubgrub::VersionSet::intersection(&range, c);
        }
        let mut add = |pkg: Pkg, range: Range| deps.add(pkg, range);
        if Some(&name) != from {
            add(Pkg::Python(name.clone()), range.clone());
        }
        for extra in &req.extras {
            add(Pkg::Extra(name.clone(), extra.clone()), range.clone());
        }
        self.prefetch(&name, &range);
    }

    /// Starts fetching what the solver will probably ask for next, so that network round
    /// trips overlap instead of adding up: the project page now, and the core metadata of
    /// the newest fitting release once the page is there.
    fn prefetch(&self, name: &PackageName, range: &Range) {
        if !self.prefetched.borrow_mut().insert(name.clone()) {
            return;
        }
        if let Some(nixpkgs) = self.request.nixpkgs {
            let fits = nixpkgs.candidates(name).iter().any(|c| {
                pubgrub::VersionSet::contains(
                    range,
                    &SolverVersion::new(c.version.clone(), Source::Nixpkgs),
                )
            });
            if fits {
                return;
            }
        }
        let range = range.clone();
        let target_python = self.target.python_full_version.clone();
        self.source.prefetch(
            name,
            Box::new(move |page: &bitpoll_simple::ProjectPage| {
                page.files
                    .iter()
                    .filter(|f| f.is_wheel() && f.core_metadata.is_some() && f.yanked.is_none())
                    .filter(|f| {
                        f.requires_python
                            .as_deref()
                            .and_then(|rp| rp.parse::<VersionSpecifiers>().ok())
                            .is_none_or(|rp| candidates::python_admits(&rp, &target_python))
                    })
                    .filter_map(|f| Some((WheelFilename::parse(&f.filename).ok()?.version, f)))
                    .filter(|(v, _)| {
                        !v.any_prerelease()
                            && pubgrub::VersionSet::contains(
                                &range,
                                &SolverVersion::new(v.clone(), Source::Index),
                            )
                    })
                    .max_by(|a, b| a.0.cmp(&b.0))
                    .map(|(_, file)| file.clone())
            }),
        );
    }

    fn metadata(
        &self,
        name: &PackageName,
        version: &Version,
        kind: &CandidateKind,
    ) -> Result<Result<Arc<CoreMetadata>, String>, ProviderError> {
        if let Some(over) = self
            .request
            .policy
            .metadata
            .get(&(name.clone(), version.clone()))
        {
            return Ok(Ok(Arc::new(CoreMetadata {
                name: name.clone(),
                version: version.clone(),
                requires_dist: over.requires_dist.clone(),
                requires_python: over.requires_python.clone(),
                provides_extra: Vec::new(),
                dynamic: Vec::new(),
                metadata_version: String::new(),
                source: MetadataSource::Policy,
            })));
        }
        let CandidateKind::Index {
            artifact,
            metadata_from,
        } = kind
        else {
            unreachable!("index candidates only")
        };
        // The installed artifact's metadata first; for an sdist, a wheel's core metadata
        // saves downloading it, since all files of a release share their dependencies.
        let order = std::iter::once(artifact).chain(metadata_from);
        let mut last_err = None;
        for file in order {
            match self.source.core_metadata(file) {
                Ok(m) => return Ok(Ok(m)),
                Err(e @ (SourceError::NoStaticMetadata { .. } | SourceError::Metadata { .. })) => {
                    last_err = Some(e)
                }
                Err(e) => return Err(e.into()),
            }
        }
        if artifact.is_wheel() {
            let err = last_err.map(|e| e.to_string()).unwrap_or_default();
            return Ok(Err(format!("its metadata cannot be read ({err})")));
        }
        // Not static: only the build backend can tell (a PKG-INFO older than 2.2 or an
        // egg-info `requires.txt` says what the sdist's author's machine computed, which a
        // `setup.py` may compute differently here).
        let info = self.source.sdist_info(artifact)?;
        let policy_key = format!(
            "[metadata.\"{name}\".\"{version}\"] in {}",
            self.request.policy.file_name()
        );
        match &self.request.options.builds {
            crate::build::Builds::Refused => Err(ProviderError::Build(format!(
                "{name} {version}: {} does not declare its dependencies statically, and \
                 --no-build forbids running its build backend; declare them with {policy_key}",
                artifact.filename
            ))),
            crate::build::Builds::Allowed(setup) => {
                match setup.metadata(self.source, artifact, &info) {
                    Ok(built) => {
                        if built.metadata.version != *version {
                            return Err(ProviderError::Build(format!(
                                "{name} {version}: the build backend of {} reports version {}",
                                artifact.filename, built.metadata.version
                            )));
                        }
                        self.built_with
                            .borrow_mut()
                            .insert((name.clone(), version.clone()), built.interpreter);
                        Ok(Ok(built.metadata))
                    }
                    Err(e) => Err(ProviderError::Build(format!(
                        "{name} {version}: {e}\n(declare its dependencies with {policy_key} to lock it without a build)"
                    ))),
                }
            }
        }
    }
}

type Priority = (bool, bool, u32, Reverse<usize>);

/// Dependencies in a deliberate order: the solver decides packages it discovered earlier
/// first, so this order breaks ties between equally good solutions.
#[derive(Default)]
struct Deps(Vec<(Pkg, Range)>);

impl Deps {
    fn add(&mut self, pkg: Pkg, range: Range) {
        match self.0.iter_mut().find(|(p, _)| *p == pkg) {
            Some((_, r)) => *r = pubgrub::VersionSet::intersection(r, &range),
            None => self.0.push((pkg, range)),
        }
    }
}

impl DependencyProvider for Provider<'_> {
    type P = Pkg;
    type V = SolverVersion;
    type VS = Range;
    type M = String;
    type Priority = Priority;
    type Err = ProviderError;

    /// Singletons first (they cannot go wrong), then the top-level requirements in the order
    /// they were declared, then everything else in the order it was discovered. Declaration
    /// order is how pip-compile and uv's per-platform resolution break ties between equally
    /// good solutions (`libsasscompiler` before `django-pipeline` in Bitpoll's file keeps the
    /// pair upstream tests), and our locks are per platform.
    ///
    /// PubGrub only backtracks past a decision when the decision itself is to blame, so an early
    /// choice (`a 2.0`) can make every newer version of a later package (`b 2.x` needs `a 1.0`)
    /// fail one by one until an ancient one without the conflict is found. When a package has
    /// been in [`CONFLICT_THRESHOLD`] conflicts this way, the solve starts over with it decided
    /// first, so the newest versions of the package that keeps losing get their say. Each
    /// restart promotes a package not promoted before, so restarts end.
    fn prioritize(
        &self,
        package: &Pkg,
        range: &Range,
        stats: &PackageResolutionStatistics,
    ) -> Priority {
        let declared = match package {
            Pkg::Python(name) | Pkg::Extra(name, _) => self.declared.get(name).copied(),
            Pkg::Root => None,
        };
        let order = declared.unwrap_or_else(|| {
            let mut discovered = self.discovered.borrow_mut();
            let next = discovered.len();
            self.declared.len() + *discovered.entry(package.clone()).or_insert(next)
        });
        let boosted = self.boosted.borrow().contains(package);
        if !boosted && stats.conflict_count() >= CONFLICT_THRESHOLD {
            self.boosted.borrow_mut().insert(package.clone());
            self.restart.set(true);
        }
        (
            range.is_singleton(),
            boosted,
            stats.conflict_count(),
            Reverse(order),
        )
    }

    fn should_cancel(&self) -> Result<(), ProviderError> {
        if self.restart.get() {
            return Err(ProviderError::Restart);
        }
        Ok(())
    }

    fn choose_version(
        &self,
        package: &Pkg,
        range: &Range,
    ) -> Result<Option<SolverVersion>, ProviderError> {
        let name = match package {
            Pkg::Root => return Ok(Some(SolverVersion::root())),
            Pkg::Python(name) | Pkg::Extra(name, _) => name,
        };
        if let Some(nix) = self.nixpkgs_candidates(name) {
            if let Some(c) = nix
                .list
                .iter()
                .find(|c| pubgrub::VersionSet::contains(range, &c.version))
            {
                return Ok(Some(c.version.clone()));
            }
        }
        let cands = self.candidates(name)?;
        let allow_pre = self.prerelease_allowed(name, &cands);
        let in_range = cands
            .list
            .iter()
            .filter(|c| pubgrub::VersionSet::contains(range, &c.version));
        let mut first_pre = None;
        for c in in_range {
            let is_pre = c.version.source == Source::Index && c.version.version.any_prerelease();
            if !is_pre
                || allow_pre
                || self
                    .pinned
                    .get(name)
                    .is_some_and(|p| candidates::is_pinned(p, &c.version.version))
            {
                return Ok(Some(c.version.clone()));
            }
            first_pre.get_or_insert(c);
        }
        if let Some(pre) = first_pre {
            self.warnings.borrow_mut().push(format!(
                "{name}: only pre-releases match on {} (newest {}); pin one explicitly to allow it",
                self.target.name, pre.version.version
            ));
        }
        Ok(None)
    }

    fn get_dependencies(
        &self,
        package: &Pkg,
        version: &SolverVersion,
    ) -> Result<Dependencies<Pkg, Range, String>, ProviderError> {
        let mut deps = Deps::default();
        let env = self.target.markers();
        match package {
            Pkg::Root => {
                // In declaration order, so that what they pull in is also discovered (and
                // prefetched) in that order; see `prioritize`.
                for req in self.request.requirements {
                    if req.evaluate_markers(env, &[]) {
                        self.add_requirement(&mut deps, req, None);
                    }
                }
            }
            Pkg::Python(name) | Pkg::Extra(name, _) => {
                let extra = match package {
                    Pkg::Extra(_, e) => Some(e),
                    _ => None,
                };
                if extra.is_some() {
                    deps.add(Pkg::Python(name.clone()), Range::exact(version.clone()));
                }
                let cands = match self.nixpkgs_candidates(name) {
                    Some(nix) if version.source == Source::Nixpkgs => nix,
                    _ => self.candidates(name)?,
                };
                let Some(cand) = cands.list.iter().find(|c| &c.version == version) else {
                    return Ok(Dependencies::Unavailable(
                        "is not available for this target".into(),
                    ));
                };
                match &cand.kind {
                    CandidateKind::Nixpkgs { attr } => {
                        let nixpkgs = self
                            .request
                            .nixpkgs
                            .expect("nixpkgs candidates need an index");
                        let (_, pkg) = nixpkgs.get(attr).expect("candidate attributes exist");
                        let dep_attrs: Vec<&String> = match extra {
                            None => pkg.dependencies.iter().collect(),
                            Some(e) => match pkg.optional_dependencies.get(e.as_ref()) {
                                Some(group) => group.iter().collect(),
                                None => {
                                    return Ok(Dependencies::Unavailable(format!(
                                        "nixpkgs' {attr} has no optional-dependency group `{e}`"
                                    )))
                                }
                            },
                        };
                        for dep_attr in dep_attrs {
                            let Some((_, dep)) = nixpkgs.get(dep_attr) else {
                                return Ok(Dependencies::Unavailable(format!(
                                    "nixpkgs' {attr} depends on `{dep_attr}`, which the nixpkgs index does not list"
                                )));
                            };
                            let Ok(dep_name) = PackageName::new(dep.pypi_name.clone()) else {
                                continue;
                            };
                            let Ok(dep_version) = dep.version.parse::<Version>() else {
                                continue;
                            };
                            if &dep_name == name {
                                continue;
                            }
                            let pin =
                                Range::exact(SolverVersion::new(dep_version, Source::Nixpkgs));
                            let mut range = pin;
                            if let Some(c) = self.constraints.get(&dep_name) {
                                range = pubgrub::VersionSet::intersection(&range, c);
                            }
                            deps.add(Pkg::Python(dep_name), range);
                        }
                        self.metadata_source.borrow_mut().insert(
                            (name.clone(), version.version.clone()),
                            (MetadataSource::Nixpkgs, None),
                        );
                    }
                    CandidateKind::Index { .. } => {
                        let metadata = match self.metadata(name, &version.version, &cand.kind)? {
                            Ok(m) => m,
                            Err(reason) => {
                                self.warnings
                                    .borrow_mut()
                                    .push(format!("{name} {}: {reason}", version.version));
                                return Ok(Dependencies::Unavailable(reason));
                            }
                        };
                        if let Some(rp) = &metadata.requires_python {
                            if !candidates::python_admits(rp, &self.target.python_full_version) {
                                return Ok(Dependencies::Unavailable(format!(
                                    "it requires Python {rp} (the target has {})",
                                    self.target.python_full_version
                                )));
                            }
                        }
                        self.metadata_source.borrow_mut().insert(
                            (name.clone(), version.version.clone()),
                            (
                                metadata.source,
                                metadata.requires_python.as_ref().map(|r| r.to_string()),
                            ),
                        );
                        let extras: Vec<ExtraName> = extra.into_iter().cloned().collect();
                        for req in &metadata.requires_dist {
                            if !req.evaluate_markers(env, &extras) {
                                continue;
                            }
                            if extra.is_some() && req.evaluate_markers(env, &[]) {
                                continue; // already a dependency of the base package
                            }
                            if matches!(req.version_or_url, Some(VersionOrUrl::Url(_))) {
                                return Ok(Dependencies::Unavailable(format!(
                                    "it depends on `{req}`, a direct URL, which a lock cannot pin"
                                )));
                            }
                            self.add_requirement(&mut deps, req, Some(name));
                            // A requirement on the package itself with extras activates them
                            // at this very version.
                            if &self.replaced(&req.name) == name {
                                for e in &req.extras {
                                    deps.add(
                                        Pkg::Extra(name.clone(), e.clone()),
                                        Range::exact(version.clone()),
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        self.deps.borrow_mut().insert(
            (package.clone(), version.clone()),
            deps.0.iter().map(|(p, _)| p.clone()).collect(),
        );
        Ok(Dependencies::Available(DependencyConstraints::from_iter(
            deps.0,
        )))
    }
}

pub fn resolve_target(
    source: &dyn PackageSource,
    indexes: &PageIndexes,
    target: &Target,
    request: &Request<'_>,
) -> Result<TargetResolution, ResolveError> {
    let provider = Provider::new(source, indexes, target, request);
    let outcome = loop {
        match pubgrub::resolve(&provider, Pkg::Root, SolverVersion::root()) {
            Err(PubGrubError::ErrorInShouldCancel(ProviderError::Restart)) => {
                provider.restart.set(false);
                provider.discovered.borrow_mut().clear();
            }
            outcome => break outcome,
        }
    };
    let solution = match outcome {
        Ok(solution) => solution,
        Err(PubGrubError::NoSolution(mut tree)) => {
            tree.collapse_no_versions();
            let explanation = crate::report::explain(&tree, &provider);
            return Err(ResolveError::NoSolution {
                target: target.name.clone(),
                explanation,
            });
        }
        Err(PubGrubError::ErrorRetrievingDependencies {
            source: ProviderError::Source(e),
            ..
        })
        | Err(PubGrubError::ErrorChoosingVersion {
            source: ProviderError::Source(e),
            ..
        }) => return Err(ResolveError::Source(e)),
        Err(PubGrubError::ErrorRetrievingDependencies {
            source: ProviderError::Build(e),
            ..
        })
        | Err(PubGrubError::ErrorChoosingVersion {
            source: ProviderError::Build(e),
            ..
        }) => return Err(ResolveError::Build(e)),
        Err(e) => return Err(ResolveError::Other(e.to_string())),
    };

    let deps = provider.deps.borrow();
    let mut packages: BTreeMap<PackageName, ResolvedPackage> = BTreeMap::new();
    let mut extras: BTreeMap<PackageName, BTreeSet<ExtraName>> = BTreeMap::new();
    let mut edges: BTreeMap<PackageName, BTreeSet<PackageName>> = BTreeMap::new();
    for (pkg, version) in solution.iter() {
        let name = match pkg {
            Pkg::Root => continue,
            Pkg::Python(name) => name,
            Pkg::Extra(name, extra) => {
                extras
                    .entry(name.clone())
                    .or_default()
                    .insert(extra.clone());
                name
            }
        };
        let out = edges.entry(name.clone()).or_default();
        for dep in deps
            .get(&(pkg.clone(), version.clone()))
            .into_iter()
            .flatten()
        {
            match dep {
                Pkg::Python(d) | Pkg::Extra(d, _) if d != name => {
                    out.insert(d.clone());
                }
                _ => {}
            }
        }
    }
    for (pkg, version) in solution.iter() {
        let Pkg::Python(name) = pkg else { continue };
        let nixpkgs_only = (version.source == Source::Nixpkgs)
            .then(|| provider.nixpkgs_only.borrow().get(name).cloned())
            .flatten();
        let cands = nixpkgs_only
            .or_else(|| provider.candidates.borrow().get(name).cloned())
            .expect("chosen packages have candidates");
        let cand = cands
            .list
            .iter()
            .find(|c| &c.version == version)
            .expect("chosen version is a candidate");
        let resolved = match &cand.kind {
            CandidateKind::Nixpkgs { attr } => ResolvedSource::Nixpkgs { attr: attr.clone() },
            CandidateKind::Index { artifact, .. } => {
                let (metadata, requires_python) = provider
                    .metadata_source
                    .borrow()
                    .get(&(name.clone(), version.version.clone()))
                    .cloned()
                    .expect("metadata was read for every chosen index package");
                let excluded_by_upper_bound = requires_python
                    .as_deref()
                    .and_then(|rp| rp.parse::<VersionSpecifiers>().ok())
                    .is_some_and(|rp| !rp.contains(&target.python_full_version));
                if excluded_by_upper_bound {
                    provider.warnings.borrow_mut().push(format!(
                        "{name} {}: declares Requires-Python {}, which excludes Python {}; only its lower bound is honoured",
                        version.version,
                        requires_python.as_deref().unwrap_or_default(),
                        target.python_full_version
                    ));
                }
                let build_requires = if artifact.is_wheel() {
                    None
                } else {
                    Some(source.sdist_info(artifact)?.build_requires.clone())
                };
                // The lock pins every file by hash; when the index declares none, the bytes
                // themselves are hashed here, so building the lock needs no source.
                let sha256 = match &artifact.sha256 {
                    Some(declared) => declared.to_string(),
                    None => hex::encode(Sha256::digest(source.download(artifact)?)),
                };
                ResolvedSource::Index {
                    artifact: artifact.clone(),
                    sha256,
                    publisher: source.publisher(artifact)?,
                    metadata,
                    metadata_built_with: provider
                        .built_with
                        .borrow()
                        .get(&(name.clone(), version.version.clone()))
                        .cloned(),
                    requires_python,
                    build_requires,
                }
            }
        };
        packages.insert(
            name.clone(),
            ResolvedPackage {
                name: name.clone(),
                version: version.version.clone(),
                source: resolved,
                extras: extras.remove(name).unwrap_or_default(),
                dependencies: edges.remove(name).unwrap_or_default(),
            },
        );
    }
    let mut warnings = provider.warnings.borrow().clone();
    let build_environments =
        crate::build::environments(source, target, request, &packages, &mut warnings)?;
    warnings.sort();
    warnings.dedup();
    Ok(TargetResolution {
        target: target.name.clone(),
        packages,
        build_environments,
        warnings,
    })
}

impl Provider<'_> {
    /// Why versions of packages in an explanation were not usable (for the report).
    pub(crate) fn notes_for(&self, name: &PackageName) -> Vec<String> {
        let full = self.candidates.borrow().get(name).cloned();
        // A package decided from nixpkgs alone has no full list yet; the explanation
        // should still say why index releases did not fit.
        let full = full.or_else(|| {
            self.nixpkgs_only
                .borrow()
                .contains_key(name)
                .then(|| self.candidates(name).ok())
                .flatten()
        });
        let Some(c) = full else {
            return Vec::new();
        };
        let mut notes = Vec::new();
        if c.not_found && c.list.is_empty() {
            let nix = self
                .request
                .nixpkgs
                .map(|n| n.all_attrs(name).is_empty())
                .unwrap_or(true);
            notes.push(if nix {
                format!("{name} was not found on the package index{}", if self.request.nixpkgs.is_some() { " nor in nixpkgs" } else { "" })
            } else {
                format!("{name} was not found on the package index, and its nixpkgs builds are broken or disabled")
            });
        }
        let mut by_reason: BTreeMap<&str, Vec<&Version>> = BTreeMap::new();
        for e in &c.excluded {
            by_reason
                .entry(e.reason.as_str())
                .or_default()
                .push(&e.version);
        }
        for (reason, versions) in by_reason {
            let shown: Vec<String> = versions.iter().take(3).map(|v| v.to_string()).collect();
            let more = versions.len().saturating_sub(3);
            let suffix = if more > 0 {
                format!(" and {more} older")
            } else {
                String::new()
            };
            notes.push(format!(
                "{name} {}{suffix} skipped on {}: {reason}",
                shown.join(", "),
                self.target.name
            ));
        }
        if self.prerelease_allowed(name, &c) {
            return notes;
        }
        if c.list
            .iter()
            .any(|c| c.version.source == Source::Index && c.version.version.any_prerelease())
        {
            notes.push(format!(
                "{name} has pre-releases, which are only used when a requirement names one (e.g. `{name}>=X.YrcN`)"
            ));
        }
        notes
    }
}
