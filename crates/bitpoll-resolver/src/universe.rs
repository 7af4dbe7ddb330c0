//! What one target's resolution knows about packages: candidates per package (nixpkgs and
//! index), their dependencies and where their metadata came from, read through the package
//! source and kept for the whole solve (restarts included). The solver's own state (its
//! priorities) is in `provider`; the explanation of a failure (`report`) reads only this.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use bitpoll_metadata::{CoreMetadata, MetadataSource};
use bitpoll_platform::Target;
use bitpoll_source::{PackageSource, SourceError};
use pep440_rs::{Operator, Version};
use pep508_rs::{ExtraName, PackageName, Requirement, VersionOrUrl};

use crate::candidates::{self, CandidateContext, CandidateKind, Candidates, PageIndexes};
use crate::version::{Origin, Range, SolverVersion};
use crate::{PrereleaseMode, Request};

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

/// How many older candidates [`Universe::prefetch_older`] fetches ahead.
const PREFETCH_OLDER: usize = 4;

pub struct Universe<'a> {
    pub(crate) source: &'a dyn PackageSource,
    pub(crate) indexes: &'a PageIndexes,
    pub(crate) target: &'a Target,
    pub(crate) request: &'a Request<'a>,
    pub(crate) constraints: HashMap<PackageName, Range>,
    /// Versions pinned with `==` at the top level, per package.
    pub(crate) pinned: HashMap<PackageName, HashSet<Version>>,
    /// Packages whose top-level requirements name a pre-release.
    pub(crate) explicit_pre: HashSet<PackageName>,
    /// Packages named at the top level.
    pub(crate) direct: HashSet<PackageName>,
    pub(crate) preferred: HashMap<PackageName, SolverVersion>,
    pub(crate) candidates: RefCell<HashMap<PackageName, Rc<Candidates<'a>>>>,
    /// nixpkgs' candidates alone, built without the index page (see
    /// [`Universe::nixpkgs_candidates`]).
    pub(crate) nixpkgs_only: RefCell<HashMap<PackageName, Rc<Candidates<'a>>>>,
    pub(crate) deps: RefCell<HashMap<(Pkg, SolverVersion), Vec<Pkg>>>,
    /// Where each chosen release's metadata came from, and its Requires-Python.
    pub(crate) metadata_source: RefCell<HashMap<Release, (MetadataSource, Option<String>)>>,
    /// The interpreter that ran the build backend, for metadata that came from a build.
    pub(crate) built_with: RefCell<HashMap<Release, String>>,
    pub(crate) prefetched: RefCell<HashSet<PackageName>>,
    /// Files whose metadata [`Universe::prefetch_older`] has asked for.
    pub(crate) prefetched_files: RefCell<HashSet<Box<str>>>,
    ranges: Ranges,
    pub(crate) warnings: RefCell<Vec<String>>,
    /// Releases that can be in no solution of this target, with why; kept across restarts
    /// (see `Provider::ruled_out_by`).
    pub(crate) ruled_out: RefCell<HashMap<Pkg, HashMap<SolverVersion, String>>>,
    /// Where sdists with static metadata go once the solver reads it, so that their build
    /// backends are asked about their build environments while resolution goes on.
    pub(crate) early_builds: Option<crate::build::EarlyBuilds>,
    /// Hints that follow dependencies ahead of the solver (see `lookahead`); none with a
    /// nixpkgs index or `--offline`.
    pub(crate) lookahead: Option<Arc<crate::lookahead::Lookahead>>,
    /// Where a leading target writes what it reads, for the targets that follow it (see
    /// `replay`).
    pub(crate) recorder: Option<crate::replay::Recorder>,
    /// No hints while this target follows another offline: with every answer on disk there
    /// is no round trip to hide, and the leader's hints had the client read what both need.
    pub(crate) quiet: std::cell::Cell<bool>,
}

/// Requirement specifiers as ranges, each converted once: the solver asks for a release's
/// dependencies each time it tries the release, and releases of a project repeat the same
/// specifiers.
type Ranges = RefCell<rustc_hash::FxHashMap<pep440_rs::VersionSpecifiers, Range>>;

fn requirement_range(req: &Requirement, ranges: &Ranges) -> Range {
    let Some(VersionOrUrl::VersionSpecifier(spec)) = &req.version_or_url else {
        return Range::any();
    };
    let known = ranges.borrow().get(spec).cloned();
    known.unwrap_or_else(|| {
        let range = Range::from_specifiers(spec);
        ranges.borrow_mut().insert(spec.clone(), range.clone());
        range
    })
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

impl<'a> Universe<'a> {
    pub(crate) fn new(
        source: &'a dyn PackageSource,
        indexes: &'a PageIndexes,
        target: &'a Target,
        request: &'a Request<'a>,
    ) -> Self {
        let env = target.markers();
        let mut constraints: HashMap<PackageName, Range> = HashMap::new();
        let mut pinned: HashMap<PackageName, HashSet<Version>> = HashMap::new();
        let mut explicit_pre = HashSet::new();
        let ranges = Ranges::default();
        let mut direct = HashSet::new();
        let all_constraints = request
            .constraints
            .iter()
            .chain(request.policy.constraints.iter());
        for req in all_constraints {
            if !req.evaluate_markers(env, &[]) {
                continue;
            }
            let range = requirement_range(req, &ranges);
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
            .map(|(name, (v, src))| {
                (
                    name.clone(),
                    SolverVersion::new(v.clone(), Origin::Package(*src)),
                )
            })
            .collect();
        let lookahead = (request.nixpkgs.is_none() && !request.options.offline)
            .then(|| crate::lookahead::Lookahead::new(indexes, target, &constraints));
        Self {
            source,
            indexes,
            target,
            request,
            lookahead,
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
            prefetched: RefCell::default(),
            prefetched_files: RefCell::default(),
            ranges,
            warnings: RefCell::default(),
            ruled_out: RefCell::default(),
            early_builds: None,
            recorder: None,
            quiet: std::cell::Cell::new(false),
        }
    }

    /// Records, until dropped, that this thread is blocked on a package fact.
    pub(crate) fn wait(&self, label: impl FnOnce() -> String) -> bitpoll_timings::Guard {
        if let Some(recorder) = &self.recorder {
            recorder.waiting();
        }
        self.request
            .options
            .timings
            .guard(bitpoll_timings::Category::Wait, label)
    }

    pub(crate) fn replaced(&self, name: &PackageName) -> PackageName {
        if self.request.nixpkgs.is_some() {
            if let Some(to) = self.request.policy.replace.get(name) {
                return to.clone();
            }
        }
        name.clone()
    }

    pub(crate) fn candidates(&self, name: &PackageName) -> Result<Rc<Candidates<'a>>, SourceError> {
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
            let _wait = self.wait(|| format!("page {name}"));
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
        if let Some(recorder) = &self.recorder {
            recorder.fact(self.listed(name, false, &built));
            built.watch(recorder.releases_of(name));
        }
        Ok(built)
    }

    /// What a target's solve reads of a candidate list besides its releases (see `replay`).
    pub(crate) fn listed(
        &self,
        name: &PackageName,
        nixpkgs_only: bool,
        cands: &Candidates,
    ) -> crate::replay::Fact {
        let mut pinned: Vec<Version> = self
            .pinned
            .get(name)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        pinned.sort();
        crate::replay::Fact::Listed {
            name: name.clone(),
            nixpkgs_only,
            outline: cands.outline(),
            prereleases: self.prerelease_allowed(name, cands),
            pinned,
        }
    }

    /// nixpkgs' candidates without asking the index, when they lead the full candidate list
    /// (no preference for an index release, nixpkgs not ruled out). Choosing one of them then
    /// needs no index page, which in the default mode spares most project-page requests.
    pub(crate) fn nixpkgs_candidates(&self, name: &PackageName) -> Option<Rc<Candidates<'a>>> {
        let nixpkgs = self.request.nixpkgs?;
        let forced = self.request.policy.forced_source(name);
        if forced == Some(bitpoll_policy::ForcedSource::Index)
            || self
                .preferred
                .get(name)
                .is_some_and(|p| p.source != Origin::NIXPKGS)
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
        let built = Rc::new(candidates::build(name, page, &cx).ok()?);
        self.nixpkgs_only
            .borrow_mut()
            .insert(name.clone(), built.clone());
        if let Some(recorder) = &self.recorder {
            recorder.fact(self.listed(name, true, &built));
        }
        Some(built)
    }

    pub(crate) fn prerelease_allowed(&self, name: &PackageName, cands: &Candidates) -> bool {
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
    pub(crate) fn add_requirement(
        &self,
        deps: &mut Deps,
        req: &Requirement,
        from: Option<&PackageName>,
    ) {
        let name = self.replaced(&req.name);
        let mut range = requirement_range(req, &self.ranges);
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
    pub(crate) fn prefetch(&self, name: &PackageName, range: &Range) {
        if self.quiet.get() {
            return;
        }
        if !self.prefetched.borrow_mut().insert(name.clone()) {
            return;
        }
        if let Some(nixpkgs) = self.request.nixpkgs {
            let fits = nixpkgs.candidates(name).iter().any(|c| {
                pubgrub::VersionSet::contains(
                    range,
                    &SolverVersion::new(c.version.clone(), Origin::NIXPKGS),
                )
            });
            if fits {
                return;
            }
        }
        let range = range.clone();
        let python = self.target.python_full_version.clone();
        let tags = self.target.tags().clone();
        let project = name.clone();
        let indexes = self.indexes.clone();
        let early = self.early_builds.as_ref().map(|e| e.hint(self.target));
        let lookahead = self.lookahead.clone();
        let then = match &self.lookahead {
            Some(lookahead) => lookahead.follow(None),
            None => Box::new(|_: &dyn bitpoll_source::Hints, _: &CoreMetadata| {}),
        };
        self.source.prefetch_then(
            name,
            Box::new(move |page: &Arc<bitpoll_simple::ProjectPage>| {
                let index = indexes.get(&project, page);
                let likely = candidates::likely_artifact(&index, &tags, &python, &range)?;
                if let Some(early) = &early {
                    early.likely(&likely);
                }
                // Followed already, ahead of the solver: its metadata is there or on its way.
                if lookahead.is_some_and(|l| !l.claim(&likely.file.filename)) {
                    return None;
                }
                Some(likely.file)
            }),
            then,
        );
    }

    /// Starts fetching the metadata of the next few candidates of a package the solver has
    /// come back to: a package whose newest versions conflict is usually walked down version
    /// by version, and each step would otherwise wait a round trip for the metadata of the
    /// next one.
    pub(crate) fn prefetch_older<'c>(
        &self,
        name: &PackageName,
        after: impl Iterator<Item = &'c candidates::Candidate>,
    ) {
        for cand in after.take(PREFETCH_OLDER) {
            // The file `metadata` reads first.
            let CandidateKind::Index { reads, .. } = &cand.kind else {
                continue;
            };
            // Not an sdist whose metadata only its whole download tells (tens of megabytes
            // for numpy's or scipy's): a backtrack of one step, the usual case, hinted four
            // such downloads that nothing read (treeherder's set: 63 MB); a walk down
            // sdist-only releases still reads each when it gets there.
            if !reads.is_wheel() && reads.core_metadata.is_none() {
                continue;
            }
            // Each file once: a package walked down is chosen again and again, and every
            // hint is a task in the client until it runs.
            if !self
                .prefetched_files
                .borrow_mut()
                .insert(reads.filename.clone())
            {
                continue;
            }
            let file = reads.clone();
            self.source.prefetch(name, Box::new(move |_| Some(file)));
        }
    }

    pub(crate) fn metadata(
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
            reads,
            metadata_from,
        } = kind
        else {
            unreachable!("index candidates only")
        };
        // The installed artifact's metadata first (read from the copy every target reads);
        // for an sdist, a wheel's core metadata saves downloading it, since all files of a
        // release share their dependencies.
        let order = std::iter::once(reads).chain(metadata_from);
        let mut last_err = None;
        for file in order {
            let wait = self.wait(|| format!("metadata {}", file.filename));
            let answer = self.source.core_metadata(file);
            drop(wait);
            match answer {
                Ok(m) => {
                    if let (false, Some(early)) = (artifact.is_wheel(), &self.early_builds) {
                        early.start(artifact, self.target);
                    }
                    return Ok(Ok(m));
                }
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
        let info = {
            let _wait = self.wait(|| format!("sdist {}", artifact.filename));
            self.source.sdist_info(artifact)?
        };
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
                let wait = self.wait(|| format!("build metadata {}", artifact.filename));
                self.request
                    .options
                    .timings
                    .demand_build(&artifact.filename);
                let built = setup.metadata(self.source, artifact, &info);
                drop(wait);
                match built {
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

/// Dependencies in a deliberate order: the solver decides packages it discovered earlier
/// first, so this order breaks ties between equally good solutions.
#[derive(Default)]
pub(crate) struct Deps(pub(crate) Vec<(Pkg, Range)>);

impl Deps {
    pub(crate) fn add(&mut self, pkg: Pkg, range: Range) {
        match self.0.iter_mut().find(|(p, _)| *p == pkg) {
            Some((_, r)) => *r = pubgrub::VersionSet::intersection(r, &range),
            None => self.0.push((pkg, range)),
        }
    }
}

impl Universe<'_> {
    /// Keeps which packages a release depends on, for the lock's edges.
    pub(crate) fn record_edges(
        &self,
        package: &Pkg,
        version: &SolverVersion,
        deps: &[(Pkg, Range)],
    ) {
        self.deps.borrow_mut().insert(
            (package.clone(), version.clone()),
            deps.iter().map(|(p, _)| p.clone()).collect(),
        );
    }

    /// Whether `version` of `pkg` is known to be in no solution: ruled out itself or, for an
    /// extra, through its package (an extra depends on its package at the same version).
    pub(crate) fn is_ruled_out(&self, pkg: &Pkg, version: &SolverVersion) -> bool {
        let ruled_out = self.ruled_out.borrow();
        let base = match pkg {
            Pkg::Extra(name, _) => Some(Pkg::Python(name.clone())),
            _ => None,
        };
        let known = |p: &Pkg| ruled_out.get(p).is_some_and(|r| r.contains_key(version));
        known(pkg) || base.as_ref().is_some_and(known)
    }

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
        if c.not_found && c.iter().next().is_none() {
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
        for e in c.excluded() {
            by_reason
                .entry(e.reason.as_str())
                .or_default()
                .push(&e.version);
        }
        for (reason, versions) in by_reason {
            notes.push(format!(
                "{name} {} skipped on {}: {reason}",
                shown_versions(&versions),
                self.target.name
            ));
        }
        let ruled_out = self.ruled_out.borrow();
        let mut by_reason: BTreeMap<&str, Vec<&Version>> = BTreeMap::new();
        for (version, reason) in ruled_out
            .get(&Pkg::Python(name.clone()))
            .into_iter()
            .flatten()
        {
            by_reason.entry(reason).or_default().push(&version.version);
        }
        for (reason, mut versions) in by_reason {
            versions.sort_by(|a, b| b.cmp(a));
            notes.push(format!(
                "{name} {} skipped on {}: {reason}",
                shown_versions(&versions),
                self.target.name
            ));
        }
        if self.prerelease_allowed(name, &c) {
            return notes;
        }
        if c.iter()
            .any(|c| c.version.source == Origin::INDEX && c.version.version.any_prerelease())
        {
            notes.push(format!(
                "{name} has pre-releases, which are only used when a requirement names one (e.g. `{name}>=X.YrcN`)"
            ));
        }
        notes
    }
}

/// The first few of `versions` (newest first) and how many more there are.
fn shown_versions(versions: &[&Version]) -> String {
    let shown: Vec<String> = versions.iter().take(3).map(|v| v.to_string()).collect();
    match versions.len().saturating_sub(3) {
        0 => shown.join(", "),
        more => format!("{} and {more} older", shown.join(", ")),
    }
}
