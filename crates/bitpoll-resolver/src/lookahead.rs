//! Hints that follow dependencies ahead of the solver.
//!
//! A cold resolution is a chain of round trips: the solver reads a release's metadata, finds
//! a dependency, waits for its page, picks a release, waits for its metadata, and so on down
//! the tree. The solver's own hints (`Universe::prefetch`) take one link out: a page and the
//! likely file's metadata are fetched when the solver first names the package. Once that
//! metadata is here, it names the next packages, and this module hints those at once, and
//! theirs when their metadata comes: the tree is walked ahead of the solver along the likely
//! files, so a chain of dependencies costs about one round trip per level of the tree instead
//! of two per package.
//!
//! What is fetched does not depend on timing: each (file, extra) is followed once, whichever
//! requirement reached it first, so a run fetches the union over every requirement met, which
//! only the pages and metadata decide. A dependency's range is its requirement's with the
//! run's constraints; a guess that the solver does not follow costs requests, never a wrong
//! lock. Not used with a nixpkgs index, where most dependencies need no request at all.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use bitpoll_metadata::CoreMetadata;
use bitpoll_platform::{TagPriority, Target};
use bitpoll_source::{Hints, Pick, Then};
use pep440_rs::Version;
use pep508_rs::{ExtraName, MarkerEnvironment, PackageName, VersionOrUrl};

use crate::build::EarlyHint;
use crate::candidates::{self, PageIndexes};
use crate::version::Range;

/// What one target's hints share.
pub(crate) struct Lookahead {
    indexes: PageIndexes,
    tags: TagPriority,
    python: Version,
    markers: MarkerEnvironment,
    constraints: HashMap<PackageName, Range>,
    /// Files whose metadata was followed, each with the extra it was followed for.
    followed: Mutex<HashSet<(Box<str>, Option<ExtraName>)>>,
    /// Where an sdist the walk reaches is announced (see [`Lookahead::announce_sdists`]).
    early: OnceLock<EarlyHint>,
}

impl Lookahead {
    pub(crate) fn new(
        indexes: &PageIndexes,
        target: &Target,
        constraints: &HashMap<PackageName, Range>,
    ) -> Arc<Self> {
        Arc::new(Self {
            indexes: indexes.clone(),
            tags: target.tags().clone(),
            python: target.python_full_version.clone(),
            markers: target.markers().clone(),
            constraints: constraints.clone(),
            followed: Mutex::default(),
            early: OnceLock::new(),
        })
    }

    /// From now on, every sdist the walk guesses the target installs is handed to `early`
    /// to have its backend asked about its build requirements (not built: see
    /// [`Lookahead::pick`]). The walk reaches a package deep in the tree long before the
    /// solver names it (readthedocs' `cryptography`, built from its sdist on x86_64-darwin
    /// only: at 1.06 s, the solver at 1.7 s), and the environment its backend asks for is
    /// then fetched while the solve goes on instead of after it.
    pub(crate) fn announce_sdists(&self, early: EarlyHint) {
        let _ = self.early.set(early);
    }

    /// Whether `file`'s metadata is to be followed for `extra`: once per run.
    fn first_visit(&self, file: &str, extra: &Option<ExtraName>) -> bool {
        self.followed
            .lock()
            .expect("lookahead lock")
            .insert((file.into(), extra.clone()))
    }

    /// What to do with `metadata` once its file's hint fetched it: hint each dependency the
    /// target installs (for `extra`: those the extra adds), and follow them in turn.
    pub(crate) fn follow(self: &Arc<Self>, extra: Option<ExtraName>) -> Then {
        let this = self.clone();
        Box::new(move |hints: &dyn Hints, metadata: &CoreMetadata| {
            let extras: Vec<ExtraName> = extra.iter().cloned().collect();
            for req in &metadata.requires_dist {
                if !req.evaluate_markers(&this.markers, &extras) {
                    continue;
                }
                // The base release's own requirements are followed without the extra.
                if extra.is_some() && req.evaluate_markers(&this.markers, &[]) {
                    continue;
                }
                let range = match &req.version_or_url {
                    Some(VersionOrUrl::VersionSpecifier(spec)) => Range::from_specifiers(spec),
                    Some(VersionOrUrl::Url(_)) => continue,
                    None => Range::any(),
                };
                let range = match this.constraints.get(&req.name) {
                    Some(c) => pubgrub::VersionSet::intersection(&range, c),
                    None => range,
                };
                let wanted = std::iter::once(None).chain(req.extras.iter().cloned().map(Some));
                for extra in wanted {
                    let pick = this.pick(&req.name, &range, extra.clone());
                    hints.prefetch_then(&req.name, pick, this.follow(extra));
                }
            }
        })
    }

    /// The likely file of `name` in `range`, unless it was followed already for `extra`.
    fn pick(self: &Arc<Self>, name: &PackageName, range: &Range, extra: Option<ExtraName>) -> Pick {
        let (this, name, range) = (self.clone(), name.clone(), range.clone());
        Box::new(move |page| {
            let index = this.indexes.get(&name, page);
            let likely = candidates::likely_artifact(&index, &this.tags, &this.python, &range)?;
            if !this.first_visit(&likely.file.filename, &extra) {
                return None;
            }
            // Asked about, never built, even a lone sdist: a metadata build is a second of
            // CPU at full priority, and a guess this deep is wrong more often than the
            // solver's own (tried: inventree's set built django-allauth 0.57.2's metadata for
            // nothing); the solver's hint, one step later, still starts that build before
            // the solver asks.
            if let (Some(early), false) = (this.early.get(), likely.installs.is_wheel()) {
                early.ask(&likely.installs);
            }
            Some(likely.file)
        })
    }

    /// For a hint the solver gives itself: whether the file it picked is to be followed
    /// (then its metadata is fetched and [`Lookahead::follow`]ed), or was already.
    pub(crate) fn claim(&self, file: &str) -> bool {
        self.first_visit(file, &None)
    }
}
