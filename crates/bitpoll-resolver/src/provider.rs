//! The PubGrub dependency provider for one target: the solver's choices and priorities over
//! what the target's [`Universe`] knows about packages.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use bitpoll_metadata::MetadataSource;
use bitpoll_platform::Target;
use bitpoll_source::PackageSource;
use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{ExtraName, PackageName, VersionOrUrl};
use pubgrub::{
    Dependencies, DependencyConstraints, DependencyProvider, PackageResolutionStatistics,
    PubGrubError,
};
use sha2::{Digest, Sha256};

use crate::candidates::{self, CandidateKind, PageIndexes};
use crate::replay::{self, Fact, Followed, RawDeps, Recorder, Solved, Trace};
use crate::saved::{Kept, Question};
use crate::universe::{Deps, Pkg, ProviderError, Universe};
use crate::version::{Origin, Range, SolverVersion};
use crate::{Request, ResolveError, ResolvedPackage, ResolvedSource, TargetResolution};

/// How often a package may be in a conflict before it is decided ahead of the others.
const CONFLICT_THRESHOLD: u32 = 5;

type Priority = (bool, bool, u32, Reverse<usize>);
type Release = (Pkg, SolverVersion);
type ReleaseDeps = Dependencies<Pkg, Range, String>;
type Solution = pubgrub::SelectedDependencies<Pkg, SolverVersion>;

/// The solver's side: its priorities and restarts, over the target's universe.
pub struct Provider<'a> {
    pub(crate) universe: Universe<'a>,
    /// Where each top-level requirement was declared (files in the order given, lines in
    /// order): these packages are decided in that order, ahead of what they pull in.
    declared: HashMap<PackageName, usize>,
    /// The order in which the solver first asked about every other package.
    discovered: RefCell<HashMap<Pkg, usize>>,
    /// Packages decided before all others but singletons, because deciding them late made
    /// them conflict again and again (see [`Provider::prioritize`]).
    boosted: RefCell<HashSet<Pkg>>,
    /// The package whose promotion asks the solve to start over.
    restart: RefCell<Option<Pkg>>,
    /// The version last chosen of each package: a package given an older version than last
    /// time is being walked down its versions (see [`Universe::prefetch_older`]).
    chosen: RefCell<HashMap<PackageName, SolverVersion>>,
    /// What the requirements themselves allow of each package they name (constraints
    /// included), whatever else is decided (see [`Provider::ruled_out_by`]).
    required: RefCell<HashMap<Pkg, Range>>,
    /// The dependencies `choose_version` worked out for the release it chose, until PubGrub
    /// asks for them.
    stashed: RefCell<Option<(Release, ReleaseDeps)>>,
    /// The releases whose dependencies PubGrub has in this solve (it asks once per solve).
    handed_over: RefCell<HashSet<Release>>,
    /// Packages with nothing but pre-releases in range, and the newest of them.
    prereleases_only: RefCell<Vec<(PackageName, pep440_rs::Version)>>,
}

impl<'a> Provider<'a> {
    fn new(
        source: &'a dyn PackageSource,
        indexes: &'a PageIndexes,
        target: &'a Target,
        request: &'a Request<'a>,
    ) -> Self {
        let universe = Universe::new(source, indexes, target, request);
        let mut declared = HashMap::new();
        for req in request.requirements {
            if req.evaluate_markers(target.markers(), &[]) {
                let name = universe.replaced(&req.name);
                let next = declared.len();
                declared.entry(name).or_insert(next);
            }
        }
        Self {
            universe,
            declared,
            discovered: RefCell::default(),
            boosted: RefCell::default(),
            restart: RefCell::default(),
            chosen: RefCell::default(),
            required: RefCell::default(),
            stashed: RefCell::default(),
            handed_over: RefCell::default(),
            prereleases_only: RefCell::default(),
        }
    }

    /// The packages of the top-level requirements that apply, in declaration order.
    fn declared_in_order(&self) -> Vec<PackageName> {
        let mut declared: Vec<(&PackageName, &usize)> = self.declared.iter().collect();
        declared.sort_by_key(|(_, at)| **at);
        declared.into_iter().map(|(name, _)| name.clone()).collect()
    }
}

impl Provider<'_> {
    /// This target's answer to `question`, as the fact a leader would record; `None` where
    /// this target has none to give (no nixpkgs-only list, a release of a list not read).
    fn answer(&self, question: &Question) -> Result<Option<Fact>, ProviderError> {
        let universe = &self.universe;
        Ok(match question {
            Question::Declared => Some(Fact::Declared(self.declared_in_order())),
            Question::Listed { name, nixpkgs_only } => {
                let cands = match nixpkgs_only {
                    true => universe.nixpkgs_candidates(name),
                    false => Some(universe.candidates(name)?),
                };
                cands.map(|c| universe.listed(name, *nixpkgs_only, &c))
            }
            Question::Release { name, at } => {
                let cands = universe.candidates.borrow().get(name).cloned();
                cands.map(|c| Fact::Release {
                    name: name.clone(),
                    at: *at,
                    version: c.release_version(*at).cloned(),
                })
            }
            Question::Dependencies { package, version } => {
                let deps = self.raw_dependencies(package, version)?;
                if let Ok(edges) = &deps {
                    universe.record_edges(package, version, edges);
                }
                if let Some(recorder) = &universe.recorder {
                    recorder.dependencies(package, version, &deps);
                }
                Some(Fact::Dependencies {
                    package: package.clone(),
                    version: version.clone(),
                    deps,
                })
            }
        })
    }

    /// Reads this target's answer to every question of a solve kept from an earlier run, in
    /// its order, and compares each with the kept one (see `saved`): the kept solve when all
    /// agree, else the first answer that differs (or the question this target has no
    /// answer to).
    fn compare_with_kept(&self, kept: &Kept) -> Result<Result<(), String>, ProviderError> {
        // Outside `--offline`, every page the kept solve read is asked for at once and
        // grouped by release where it arrives: one after another, a run that checks each page
        // with the index would wait a round trip per page. Offline, the hints the answers give
        // as they are read, as in a solve, do better (readthedocs' set, 11 alternating runs:
        // 86 ms with every page hinted at once, 78 without, 76 solving afresh). Which pages
        // depends on the kept solve alone, never on timing.
        if !self.universe.request.options.offline {
            for (question, _) in &kept.asked {
                let Question::Listed {
                    name,
                    nixpkgs_only: false,
                } = question
                else {
                    continue;
                };
                let (indexes, hinted) = (self.universe.indexes.clone(), name.clone());
                self.universe.source.prefetch(
                    name,
                    Box::new(move |page| {
                        indexes.get(&hinted, page);
                        None
                    }),
                );
            }
        }
        for (question, digest) in &kept.asked {
            match self.answer(question)? {
                Some(ours) if ours.digest() == *digest => {}
                Some(ours) => return Ok(Err(ours.to_string())),
                None => return Ok(Err(question.to_string())),
            }
        }
        Ok(Ok(()))
    }
}

impl replay::Answers for Provider<'_> {
    fn agrees(&self, fact: &Fact) -> Result<bool, ProviderError> {
        Ok(self.answer(&fact.question())?.as_ref() == Some(fact))
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
            self.restart
                .borrow_mut()
                .get_or_insert_with(|| package.clone());
        }
        (
            range.is_singleton(),
            boosted,
            stats.conflict_count(),
            Reverse(order),
        )
    }

    fn should_cancel(&self) -> Result<(), ProviderError> {
        if self.restart.borrow().is_some() {
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
        if let Some(nix) = self.universe.nixpkgs_candidates(name) {
            if let Some(c) = nix
                .iter()
                .find(|c| pubgrub::VersionSet::contains(range, &c.version))
            {
                return Ok(Some(c.version.clone()));
            }
        }
        let cands = self.universe.candidates(name)?;
        let allow_pre = self.universe.prerelease_allowed(name, &cands);
        // Lazily: a package walked down its versions is asked again and again, and a long
        // list (a thousand releases) filtered whole each time was most of such a solve.
        let mut in_range = cands.in_range(range);
        let is_ruled_out = |v: &SolverVersion| self.universe.is_ruled_out(package, v);
        let mut first_pre = None;
        let mut passed_by = false;
        while let Some(c) = in_range.next() {
            if is_ruled_out(&c.version) {
                continue;
            }
            let is_pre = c.version.source == Origin::INDEX && c.version.version.any_prerelease();
            if !is_pre
                || allow_pre
                || self
                    .universe
                    .pinned
                    .get(name)
                    .is_some_and(|p| candidates::is_pinned(p, &c.version.version))
            {
                // Releases the requirements rule out are passed by here, out of PubGrub's
                // sight (see `ruled_out_by`); the dependencies worked out to find that are
                // handed over when PubGrub asks for them next.
                let key = (package.clone(), c.version.clone());
                if !self.handed_over.borrow().contains(&key) {
                    // Walking down (past a release just now, or from an earlier choice): the
                    // next few are fetched before this one is read, as when each was PubGrub's
                    // choice in turn; in a row, they were one round trip after another.
                    let walking = passed_by
                        || self
                            .chosen
                            .borrow()
                            .get(name)
                            .is_some_and(|p| c.version < *p);
                    if walking {
                        self.universe.prefetch_older(name, in_range.clone());
                    }
                    let deps = self.dependencies(package, &c.version)?;
                    if is_ruled_out(&c.version) {
                        passed_by = true;
                        continue;
                    }
                    *self.stashed.borrow_mut() = Some((key, deps));
                }
                let previous = self
                    .chosen
                    .borrow_mut()
                    .insert(name.clone(), c.version.clone());
                if previous.is_some_and(|p| c.version < p) {
                    self.universe.prefetch_older(name, in_range);
                }
                return Ok(Some(c.version.clone()));
            }
            first_pre.get_or_insert(c);
        }
        if let Some(pre) = first_pre {
            self.prereleases_only
                .borrow_mut()
                .push((name.clone(), pre.version.version.clone()));
        }
        Ok(None)
    }

    fn get_dependencies(
        &self,
        package: &Pkg,
        version: &SolverVersion,
    ) -> Result<ReleaseDeps, ProviderError> {
        let key = (package.clone(), version.clone());
        let stashed = self.stashed.borrow_mut().take();
        let deps = match stashed {
            Some((stashed_key, deps)) if stashed_key == key => deps,
            _ => self.dependencies(package, version)?,
        };
        self.handed_over.borrow_mut().insert(key);
        Ok(deps)
    }
}

impl Provider<'_> {
    /// A release's dependencies for PubGrub, or why it cannot be used.
    fn dependencies(
        &self,
        package: &Pkg,
        version: &SolverVersion,
    ) -> Result<ReleaseDeps, ProviderError> {
        let raw = self.raw_dependencies(package, version)?;
        if let Some(recorder) = &self.universe.recorder {
            recorder.dependencies(package, version, &raw);
        }
        let deps = match raw {
            Ok(deps) => Deps(deps),
            Err(reason) => return Ok(Dependencies::Unavailable(reason)),
        };
        if *package == Pkg::Root {
            *self.required.borrow_mut() = deps.0.iter().cloned().collect();
        } else if let Some(reason) = self.ruled_out_by(&deps) {
            self.universe
                .ruled_out
                .borrow_mut()
                .entry(package.clone())
                .or_default()
                .insert(version.clone(), reason.clone());
            return Ok(Dependencies::Unavailable(reason));
        }
        self.universe.record_edges(package, version, &deps.0);
        Ok(Dependencies::Available(DependencyConstraints::from_iter(
            deps.0,
        )))
    }

    /// A release's dependencies as the metadata and the target's markers give them, or why
    /// the release cannot be used: what `replay` compares between targets.
    fn raw_dependencies(
        &self,
        package: &Pkg,
        version: &SolverVersion,
    ) -> Result<RawDeps, ProviderError> {
        let mut deps = Deps::default();
        let env = self.universe.target.markers();
        match package {
            Pkg::Root => {
                // In declaration order, so that what they pull in is also discovered (and
                // prefetched) in that order; see `prioritize`.
                for req in self.universe.request.requirements {
                    if req.evaluate_markers(env, &[]) {
                        self.universe.add_requirement(&mut deps, req, None);
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
                let cands = match self.universe.nixpkgs_candidates(name) {
                    Some(nix) if version.source == Origin::NIXPKGS => nix,
                    _ => self.universe.candidates(name)?,
                };
                let Some(cand) = cands.find(version) else {
                    return Ok(Err("is not available for this target".into()));
                };
                match &cand.kind {
                    CandidateKind::Nixpkgs { attr } => {
                        let nixpkgs = self
                            .universe
                            .request
                            .nixpkgs
                            .expect("nixpkgs candidates need an index");
                        let (_, pkg) = nixpkgs.get(attr).expect("candidate attributes exist");
                        let dep_attrs: Vec<&String> = match extra {
                            None => pkg.dependencies.iter().collect(),
                            Some(e) => match pkg.optional_dependencies.get(e.as_ref()) {
                                Some(group) => group.iter().collect(),
                                None => {
                                    return Ok(Err(format!(
                                        "nixpkgs' {attr} has no optional-dependency group `{e}`"
                                    )))
                                }
                            },
                        };
                        for dep_attr in dep_attrs {
                            let Some((_, dep)) = nixpkgs.get(dep_attr) else {
                                return Ok(Err(format!(
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
                                Range::exact(SolverVersion::new(dep_version, Origin::NIXPKGS));
                            let mut range = pin;
                            if let Some(c) = self.universe.constraints.get(&dep_name) {
                                range = pubgrub::VersionSet::intersection(&range, c);
                            }
                            deps.add(Pkg::Python(dep_name), range);
                        }
                        self.universe.metadata_source.borrow_mut().insert(
                            (name.clone(), version.version.clone()),
                            (MetadataSource::Nixpkgs, None),
                        );
                    }
                    CandidateKind::Index { .. } => {
                        let metadata =
                            match self.universe.metadata(name, &version.version, &cand.kind)? {
                                Ok(m) => m,
                                Err(reason) => {
                                    self.universe
                                        .warnings
                                        .borrow_mut()
                                        .push(format!("{name} {}: {reason}", version.version));
                                    return Ok(Err(reason));
                                }
                            };
                        if let Some(rp) = &metadata.requires_python {
                            if !candidates::python_admits(
                                rp,
                                &self.universe.target.python_full_version,
                            ) {
                                return Ok(Err(format!(
                                    "it requires Python {rp} (the target has {})",
                                    self.universe.target.python_full_version
                                )));
                            }
                        }
                        self.universe.metadata_source.borrow_mut().insert(
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
                                return Ok(Err(format!(
                                    "it depends on `{req}`, a direct URL, which a lock cannot pin"
                                )));
                            }
                            self.universe.add_requirement(&mut deps, req, Some(name));
                            // A requirement on the package itself with extras activates them
                            // at this very version.
                            if &self.universe.replaced(&req.name) == name {
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
        Ok(Ok(deps.0))
    }

    /// Why a release whose dependencies are `deps` can be in no solution of this target: one
    /// of them needs versions the requirements (or constraints) rule out, or versions that
    /// are all ruled out themselves.
    ///
    /// PubGrub finds the same by deciding the release and failing, but each such failure
    /// counts as a conflict, and a package failing this way release after release is soon
    /// promoted and the solve started over, to walk the same releases again (sentry's set:
    /// `Django` past every release needing a newer `sqlparse` than the requirements allow,
    /// then `django-crispy-forms` past every release needing those `Django`s; twelve restarts
    /// per target). `choose_version` passes such releases by instead, unseen by PubGrub, and
    /// after a restart without reading them again. Only what holds in every solution (the
    /// requirements) and releases the solver has already read go into it: it never rules out
    /// a usable release, and does not depend on what was fetched when.
    fn ruled_out_by(&self, deps: &Deps) -> Option<String> {
        let required = self.required.borrow();
        let ruled_out = self.universe.ruled_out.borrow();
        let candidates = self.universe.candidates.borrow();
        for (dep, range) in &deps.0 {
            let name = match dep {
                Pkg::Root => continue,
                Pkg::Python(name) | Pkg::Extra(name, _) => name,
            };
            let allowed = required.get(dep);
            let fitting = match allowed {
                Some(allowed) => pubgrub::VersionSet::intersection(range, allowed),
                None => range.clone(),
            };
            if fitting.0.is_empty() {
                match allowed {
                    Some(allowed) => {
                        return Some(format!(
                            "it depends on {dep} {range}, and the requirements allow only {allowed}"
                        ))
                    }
                    // The release's own contradiction, which PubGrub explains.
                    None => continue,
                }
            }
            if !ruled_out.contains_key(dep) && !ruled_out.contains_key(&Pkg::Python(name.clone())) {
                continue;
            }
            let Some(cands) = candidates.get(name) else {
                continue;
            };
            if cands
                .in_range(&fitting)
                .all(|c| self.universe.is_ruled_out(dep, &c.version))
            {
                return Some(format!(
                    "it depends on {dep} {range}, and no release of {name} there can be used"
                ));
            }
        }
        None
    }
}

/// A target's part in sharing solves (see `replay`).
pub(crate) enum Role {
    /// Solves on its own; nobody follows.
    Alone,
    /// Solves on its own, writing what it reads to the trace.
    Leads(Arc<Trace>),
    /// Takes the trace's solve when its own answers agree, else solves on its own.
    Follows(Arc<Trace>, String),
}

pub(crate) fn resolve_target(
    source: &dyn PackageSource,
    indexes: &PageIndexes,
    target: &Target,
    request: &Request<'_>,
    early_builds: Option<crate::build::EarlyBuilds>,
    role: Role,
) -> Result<TargetResolution, ResolveError> {
    let timings = &request.options.timings;
    let mut provider = Provider::new(source, indexes, target, request);
    if let (Some(early), Some(lookahead)) = (&early_builds, &provider.universe.lookahead) {
        lookahead.announce_sdists(early.hint(target));
    }
    provider.universe.early_builds = early_builds;
    // A leader's solve is kept for the next run, and the one kept by the last taken when
    // every answer agrees (see `saved`).
    let mut keeping = None;
    let (followed, _ends_the_trace) = match role {
        Role::Alone => (None, None),
        Role::Leads(trace) => {
            let end = trace.guard();
            let recorder = Recorder::new(trace.clone());
            recorder.fact(Fact::Declared(provider.declared_in_order()));
            provider.universe.recorder = Some(recorder);
            let followed = match &request.options.saved_solves {
                Some(saved) => {
                    let slot = crate::saved::slot(saved, target);
                    let key = crate::saved::key(saved, target, request);
                    let kept = saved.store.read(&slot, &key).and_then(|b| Kept::decode(&b));
                    keeping = Some((saved, slot, key, trace));
                    match kept {
                        Some(kept) => take_kept(&provider, kept)?,
                        None => None,
                    }
                }
                None => None,
            };
            (followed, Some(end))
        }
        Role::Follows(trace, leader) => {
            let following = timings.guard(bitpoll_timings::Category::Solve, || {
                format!("{}: answers compared with {leader}'s", target.name)
            });
            let waiting = || provider.universe.wait(|| format!("answers of {leader}"));
            provider.universe.quiet.set(request.options.offline);
            let followed = replay::follow(&provider, &trace, waiting).map_err(provider_error)?;
            provider.universe.quiet.set(false);
            drop(following);
            let on_its_own = |why: String| {
                let mark = timings.mark();
                timings.span(mark, bitpoll_timings::Category::Solve, || {
                    format!("{}: solves on its own: {why}", target.name)
                });
                None
            };
            let followed = match followed {
                Followed::Solved(solved) => Some(solved),
                Followed::Differs(fact) => {
                    on_its_own(format!("its answer differs from {leader}'s on {fact}"))
                }
                Followed::LeaderFailed => on_its_own(format!("{leader}'s solve failed")),
            };
            (followed, None)
        }
    };
    let (solution, prereleases_only) = match followed {
        Some(solved) => (
            solved.solution.iter().cloned().collect(),
            solved.prereleases_only.clone(),
        ),
        None => {
            let solution = solve(&provider)?;
            let prereleases_only = provider.prereleases_only.borrow().clone();
            if let Some(recorder) = &provider.universe.recorder {
                let solved = Solved {
                    solution: solution
                        .iter()
                        .map(|(p, v)| (p.clone(), v.clone()))
                        .collect(),
                    prereleases_only: prereleases_only.clone(),
                };
                // Read before the end is handed over: what the solve read, all flushed.
                recorder.flush();
                if let Some((saved, slot, key, trace)) = &keeping {
                    if let Some(bytes) = Kept::encode(&trace.facts(), &solved) {
                        saved.store.write(slot, key, &bytes);
                    }
                }
                recorder.solved(solved);
            }
            (solution, prereleases_only)
        }
    };
    for (name, newest) in prereleases_only {
        provider.universe.warnings.borrow_mut().push(format!(
            "{name}: only pre-releases match on {} (newest {newest}); pin one explicitly to allow it",
            target.name
        ));
    }
    finish(source, indexes, target, request, &provider, &solution)
}

/// A leader's answers compared with those of the solve kept by an earlier run: that solve,
/// handed to the followers, when every answer agrees; else `None`, and the leader solves
/// (with what it read meanwhile already recorded for its followers).
fn take_kept(provider: &Provider<'_>, kept: Kept) -> Result<Option<Arc<Solved>>, ResolveError> {
    let (target, request) = (provider.universe.target, provider.universe.request);
    let timings = &request.options.timings;
    let comparing = timings.guard(bitpoll_timings::Category::Solve, || {
        format!(
            "{}: answers compared with its solve of an earlier run",
            target.name
        )
    });
    let compared = provider.compare_with_kept(&kept).map_err(provider_error)?;
    drop(comparing);
    let recorder = provider.universe.recorder.as_ref();
    match compared {
        Ok(()) => {
            let solved = Arc::new(kept.solved);
            if let Some(recorder) = recorder {
                recorder.solved_as(solved.clone());
            }
            Ok(Some(solved))
        }
        Err(differs) => {
            let mark = timings.mark();
            timings.span(mark, bitpoll_timings::Category::Solve, || {
                format!(
                    "{}: solves: its answer differs from the earlier run's on {differs}",
                    target.name
                )
            });
            Ok(None)
        }
    }
}

fn provider_error(e: ProviderError) -> ResolveError {
    match e {
        ProviderError::Source(e) => ResolveError::Source(e),
        ProviderError::Build(e) => ResolveError::Build(e),
        // Only `should_cancel` asks for one, and `solve` starts over on it.
        ProviderError::Restart => unreachable!("a restart outside should_cancel"),
    }
}

/// PubGrub's solve, started over as often as a package's conflicts promote it.
fn solve(provider: &Provider<'_>) -> Result<Solution, ResolveError> {
    let (target, request) = (provider.universe.target, provider.universe.request);
    let timings = &request.options.timings;
    let solving = timings.guard(bitpoll_timings::Category::Solve, || {
        let first = request.requirements.first().map(|r| r.name.to_string());
        format!(
            "{} ({} requirements from {})",
            target.name,
            request.requirements.len(),
            first.unwrap_or_default()
        )
    });
    let outcome = loop {
        let attempt = timings.mark();
        match pubgrub::resolve(provider, Pkg::Root, SolverVersion::root()) {
            Err(PubGrubError::ErrorInShouldCancel(ProviderError::Restart)) => {
                let promoted = provider.restart.borrow_mut().take();
                timings.span(attempt, bitpoll_timings::Category::Restart, || {
                    let promoted = promoted.map(|p| p.to_string()).unwrap_or_default();
                    format!("{}: started over with {promoted} first", target.name)
                });
                provider.discovered.borrow_mut().clear();
                provider.handed_over.borrow_mut().clear();
            }
            outcome => break outcome,
        }
    };
    drop(solving);
    match outcome {
        Ok(solution) => Ok(solution),
        Err(PubGrubError::NoSolution(mut tree)) => {
            tree.collapse_no_versions();
            let explanation = crate::report::explain(&tree, &provider.universe);
            Err(ResolveError::NoSolution {
                target: target.name.clone(),
                explanation,
            })
        }
        Err(PubGrubError::ErrorRetrievingDependencies { source, .. })
        | Err(PubGrubError::ErrorChoosingVersion { source, .. })
        | Err(PubGrubError::ErrorInShouldCancel(source)) => Err(provider_error(source)),
    }
}

/// Everything after the versions: each package's file, hash, metadata source and edges, and
/// the build environments of its sdists.
fn finish(
    source: &dyn PackageSource,
    indexes: &PageIndexes,
    target: &Target,
    request: &Request<'_>,
    provider: &Provider<'_>,
    solution: &Solution,
) -> Result<TargetResolution, ResolveError> {
    let timings = &request.options.timings;
    let deps = provider.universe.deps.borrow();
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
    let publishers = {
        let _wait = provider
            .universe
            .wait(|| "provenance of the chosen releases".to_string());
        publishers(source, provider, solution)?
    };
    for (pkg, version) in solution.iter() {
        let Pkg::Python(name) = pkg else { continue };
        let nixpkgs_only = (version.source == Origin::NIXPKGS)
            .then(|| provider.universe.nixpkgs_only.borrow().get(name).cloned())
            .flatten();
        let cands = nixpkgs_only
            .or_else(|| provider.universe.candidates.borrow().get(name).cloned())
            .expect("chosen packages have candidates");
        let cand = cands.find(version).expect("chosen version is a candidate");
        let resolved = match &cand.kind {
            CandidateKind::Nixpkgs { attr } => ResolvedSource::Nixpkgs { attr: attr.clone() },
            CandidateKind::Index { artifact, .. } => {
                let (metadata, requires_python) = provider
                    .universe
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
                    provider.universe.warnings.borrow_mut().push(format!(
                        "{name} {}: declares Requires-Python {}, which excludes Python {}; only its lower bound is honoured",
                        version.version,
                        requires_python.as_deref().unwrap_or_default(),
                        target.python_full_version
                    ));
                }
                // The lock pins every file by hash; when the index declares none, the bytes
                // themselves are hashed here, so building the lock needs no source.
                let sha256 = match &artifact.sha256 {
                    Some(declared) => declared.to_string(),
                    None => {
                        let bytes = {
                            let _wait = provider
                                .universe
                                .wait(|| format!("download {}", artifact.filename));
                            source.download(artifact)?
                        };
                        let mark = timings.mark();
                        let hex = hex::encode(Sha256::digest(bytes));
                        timings.span(mark, bitpoll_timings::Category::Hash, || {
                            artifact.filename.to_string()
                        });
                        hex
                    }
                };
                ResolvedSource::Index {
                    artifact: artifact.clone(),
                    sha256,
                    publisher: publishers.get(&artifact.filename).cloned().flatten(),
                    metadata,
                    metadata_built_with: provider
                        .universe
                        .built_with
                        .borrow()
                        .get(&(name.clone(), version.version.clone()))
                        .cloned(),
                    requires_python,
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
    let mut warnings = provider.universe.warnings.borrow().clone();
    let build_environments =
        crate::build::environments(source, indexes, target, request, &packages, &mut warnings)?;
    warnings.sort();
    warnings.dedup();
    Ok(TargetResolution {
        target: target.name.clone(),
        packages,
        build_environments,
        warnings,
    })
}

/// The publisher of every index file in `solution`, asked in one go: one request each,
/// which in a row would add a round trip per package to the end of every resolution.
fn publishers(
    source: &dyn PackageSource,
    provider: &Provider<'_>,
    solution: &Solution,
) -> Result<HashMap<Box<str>, Option<String>>, ResolveError> {
    let mut files = Vec::new();
    for (pkg, version) in solution.iter() {
        let Pkg::Python(name) = pkg else { continue };
        if version.source != Origin::INDEX {
            continue;
        }
        let candidates = provider.universe.candidates.borrow();
        let Some(cands) = candidates.get(name) else {
            continue;
        };
        if let Some(CandidateKind::Index { artifact, .. }) = cands.find(version).map(|c| &c.kind) {
            files.push(artifact.clone());
        }
    }
    source
        .publishers(&files)
        .into_iter()
        .zip(&files)
        .map(|(publisher, file)| Ok((file.filename.clone(), publisher?)))
        .collect()
}
