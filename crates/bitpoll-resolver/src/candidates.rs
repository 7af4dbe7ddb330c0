//! What versions of a package a target could use, in the order we prefer them.

use std::cell::{OnceCell, RefCell};
use std::collections::HashSet;
use std::ops::Bound;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

use bitpoll_nixpkgs::Nixpkgs;
use bitpoll_platform::{DistFilename, TagPriority, Target, WheelFilename};
use bitpoll_policy::ForcedSource;
use bitpoll_simple::{DistFile, ProjectPage, WheelFilter, WheelVerdict};
use bitpoll_source::SourceError;
use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::PackageName;
use pubgrub::Ranges;
use rustc_hash::FxHashMap;

use crate::version::{Origin, Range, SolverVersion};
use crate::Options;

#[derive(Debug, Clone)]
pub enum CandidateKind {
    Nixpkgs {
        attr: String,
    },
    Index {
        /// The file this target installs: its best wheel, else the sdist.
        artifact: Arc<DistFile>,
        /// The file whose core metadata is read for the artifact: the artifact, or, when
        /// other wheels of the release declare a core-metadata file with the same sha256 (the
        /// same bytes, as usual for one release's platform wheels), the first of them by name.
        /// Every target then asks for the same file, once, instead of each for its own wheel's
        /// copy; which copy the client fetched no longer depends on which target asked
        /// first (an identical copy fetched for one target is a cache hit for another only
        /// if it had arrived by then).
        reads: Arc<DistFile>,
        /// When the artifact is an sdist: this version's usable wheels that have a
        /// core-metadata file, whose metadata describes the sdist as well and costs one small
        /// request instead of a download. Empty otherwise, which is most candidates.
        metadata_from: Vec<Arc<DistFile>>,
    },
}

#[derive(Debug, Clone)]
pub struct Candidate {
    pub version: SolverVersion,
    pub kind: CandidateKind,
}

/// A version of the package that this target cannot use, and why.
#[derive(Debug, Clone)]
pub struct Excluded {
    pub version: Version,
    pub reason: String,
}

/// What versions of a package one target could use (see [`build`]).
pub struct Candidates<'a> {
    nixpkgs: Vec<Candidate>,
    index: Option<IndexReleases<'a>>,
    preferred: Option<Slot>,
    /// Why the policy's choice of nixpkgs leaves nothing.
    forced_away: Option<Excluded>,
    /// The index has no such project.
    pub not_found: bool,
    /// Every index version is a pre-release (pre-releases are then allowed "if necessary").
    pub only_prereleases: bool,
}

/// What working out a package's candidates reads: `'a` what the candidates keep for later
/// releases, `'c` what only the start needs.
pub struct CandidateContext<'c, 'a> {
    pub target: &'a Target,
    pub indexes: &'c PageIndexes,
    pub nixpkgs: Option<&'c Nixpkgs>,
    pub forced: Option<ForcedSource>,
    pub options: &'a Options,
    /// Versions pinned with `==` by a top-level requirement: yanked ones stay usable (PEP 592).
    pub pinned: &'c HashSet<Version>,
    pub preferred: Option<&'c SolverVersion>,
}

struct Release {
    version: Version,
    files: Vec<(u32, Option<u32>)>,
    /// Wheels of this release were dropped while the page was read: no target can use them.
    dropped_wheels: bool,
}

/// What every target reads from a project page, worked out once per page: the files grouped
/// by version, newest first, with the tags of each wheel. Pages with thousands of files made
/// parsing their names once per target the bulk of an offline run.
pub(crate) struct PageIndex {
    page: Arc<ProjectPage>,
    /// Each version with its files in page order: the index into `page.files` and, for a
    /// wheel, its tag set in `tag_sets`.
    versions: Vec<Release>,
    tag_sets: Vec<WheelFilename>,
    only_prereleases: bool,
}

impl PageIndex {
    /// Where `version` is among the releases (newest first).
    fn position(&self, version: &Version) -> Option<usize> {
        self.versions
            .binary_search_by(|r| version.cmp(&r.version))
            .ok()
    }

    fn new(name: &PackageName, page: &Arc<ProjectPage>) -> PageIndex {
        // Group files by version, skipping files whose names we cannot read (as installers
        // do).
        let mut versions: Vec<Release> = Vec::new();
        let mut slot: FxHashMap<Version, usize> = FxHashMap::default();
        fn release_of(
            versions: &mut Vec<Release>,
            slot: &mut FxHashMap<Version, usize>,
            v: Version,
        ) -> usize {
            *slot.entry(v).or_insert_with_key(|v| {
                versions.push(Release {
                    version: v.clone(),
                    files: Vec::new(),
                    dropped_wheels: false,
                });
                versions.len() - 1
            })
        }
        let mut tag_sets: Vec<WheelFilename> = Vec::new();
        // Most wheels of a page repeat a handful of tag sets and each version a few dozen
        // times: both are looked up by their text, and a name is parsed in full only for a
        // tag set not seen before (parsing every name was most of an offline run's time).
        // A version's text leads straight to its release, so a wheel costs two lookups by
        // text; only a new text is parsed and looked up as a version.
        let mut tag_slot: FxHashMap<&str, Option<u32>> = FxHashMap::default();
        let mut version_text: FxHashMap<&str, Seen> = FxHashMap::default();
        // By name only: a file is built from the page's stored form when first read, and
        // most releases are never read.
        for i in 0..page.files.len() {
            let filename = page.files.filename(i);
            let (at, tags) = match wheel_name_parts(filename) {
                Some((version, tag_text)) => {
                    let seen =
                        version_text
                            .entry(version)
                            .or_insert_with(|| match version.parse() {
                                Ok(v) => Seen::Version(v),
                                Err(_) => Seen::Unreadable,
                            });
                    if let Seen::Unreadable = seen {
                        continue;
                    }
                    let id = *tag_slot.entry(tag_text).or_insert_with(|| {
                        let wheel = WheelFilename::parse(filename).ok()?;
                        tag_sets.push(wheel);
                        Some(tag_sets.len() as u32 - 1)
                    });
                    let Some(id) = id else { continue };
                    // A release is made for the first file kept, not for the first seen.
                    let at = match seen {
                        Seen::Release(at) => *at,
                        Seen::Version(v) => {
                            let at = release_of(&mut versions, &mut slot, v.clone());
                            *seen = Seen::Release(at);
                            at
                        }
                        Seen::Unreadable => continue,
                    };
                    (at, Some(id))
                }
                None => match DistFilename::parse(filename, name) {
                    Ok(DistFilename::Sdist(s)) => {
                        (release_of(&mut versions, &mut slot, s.version), None)
                    }
                    _ => continue,
                },
            };
            versions[at].files.push((i as u32, tags));
        }
        for v in &page.dropped_wheel_versions {
            let at = release_of(&mut versions, &mut slot, v.clone());
            versions[at].dropped_wheels = true;
        }
        versions.sort_by(|a, b| b.version.cmp(&a.version));
        let only_prereleases =
            !versions.is_empty() && versions.iter().all(|r| r.version.any_prerelease());
        PageIndex {
            page: page.clone(),
            versions,
            tag_sets,
            only_prereleases,
        }
    }
}

/// What [`PageIndex::new`] knows of a version as a wheel name writes it.
enum Seen {
    Unreadable,
    /// Read, with no file kept yet.
    Version(Version),
    /// The release its files go to.
    Release(usize),
}

/// A wheel name's version and tag parts (`py-abi-platform`), split as
/// [`WheelFilename::parse`] splits them; `None` for anything but a wheel name of five or six
/// parts.
fn wheel_name_parts(filename: &str) -> Option<(&str, &str)> {
    let stem = filename.strip_suffix(".whl")?;
    let mut from_end = stem.rsplitn(4, '-');
    let (_plat, _abi, _py) = (from_end.next()?, from_end.next()?, from_end.next()?);
    let head = from_end.next()?;
    let tags = &stem[head.len() + 1..];
    let mut head_parts = head.split('-');
    let (_name, version) = (head_parts.next()?, head_parts.next()?);
    // An optional build tag, and nothing more.
    let _build = head_parts.next();
    head_parts.next().is_none().then_some((version, tags))
}

/// The [`PageIndex`]es of one resolution, shared by its targets (and, cloned, by the
/// prefetch hints they leave with the client).
#[derive(Default, Clone)]
pub struct PageIndexes {
    map: Arc<Mutex<FxHashMap<PackageName, IndexSlot>>>,
}

impl std::fmt::Debug for PageIndexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pages = self.map.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("PageIndexes")
            .field("pages", &pages)
            .finish()
    }
}

/// Filled once, by the first target to read the page; the others wait for it.
type IndexSlot = Arc<OnceLock<Arc<PageIndex>>>;

impl PageIndexes {
    pub(crate) fn get(&self, name: &PackageName, page: &Arc<ProjectPage>) -> Arc<PageIndex> {
        let cell = self
            .map
            .lock()
            .expect("page index lock")
            .entry(name.clone())
            .or_default()
            .clone();
        let index = cell.get_or_init(|| Arc::new(PageIndex::new(name, page)));
        if Arc::ptr_eq(&index.page, page) {
            index.clone()
        } else {
            // Not the page the index was built from (the client hands out one per project,
            // so this does not happen in a resolution).
            Arc::new(PageIndex::new(name, page))
        }
    }
}

/// `14.0` -> (14, 0), for choosing the oldest of several macOS versions.
fn macos_order(version: &str) -> (u32, u32) {
    let (major, minor) = version.split_once('.').unwrap_or((version, "0"));
    (major.parse().unwrap_or(0), minor.parse().unwrap_or(0))
}

/// The [`WheelFilter`] for resolving for `targets`: a wheel stays when at least one target
/// could install it. Dropping the others while pages are read changes no resolution (a
/// target never picks a wheel it cannot install) but most of the memory pages take.
pub fn wheel_filter(targets: &[Target]) -> WheelFilter {
    // What the decisions depend on: each target's system, interpreter and macOS deployment
    // target (its tags follow from those), and the rules below, whose version is the
    // crate's. Change `FILTER_RULES` with the rules.
    const FILTER_RULES: &str = "wheel-filter-1";
    let mut key = format!("{FILTER_RULES};{}", env!("CARGO_PKG_VERSION"));
    for target in targets {
        key.push_str(&format!(
            ";{}/{}/{}",
            target.system,
            target.python_full_version,
            target.macos_deployment_target().unwrap_or_default()
        ));
    }
    let tags: Vec<TagPriority> = targets.iter().map(|t| t.tags().clone()).collect();
    let darwin: Vec<Target> = targets
        .iter()
        .filter(|t| t.macos_deployment_target().is_some())
        .cloned()
        .collect();
    // Most wheels of a page repeat a few tag sets; remember the answer per set.
    let seen: Mutex<FxHashMap<Box<str>, bool>> = Mutex::default();
    WheelFilter::new(key, move |_project, filename| {
        let Ok(wheel) = WheelFilename::parse(filename) else {
            return WheelVerdict::Unreadable;
        };
        // The tag part of the name: everything after version and build tag.
        let tag_part = filename
            .rsplitn(4, '-')
            .take(3)
            .collect::<Vec<_>>()
            .join("-");
        let known = seen
            .lock()
            .expect("tag cache")
            .get(tag_part.as_str())
            .copied();
        let usable = known.unwrap_or_else(|| {
            // A wheel a darwin target would take with a newer deployment target is kept, so
            // that an explanation can name that setting.
            let usable = tags.iter().any(|t| wheel.rank(t).is_some())
                || darwin.iter().any(|t| t.needs_newer_macos(&wheel).is_some());
            seen.lock()
                .expect("tag cache")
                .insert(tag_part.into(), usable);
            usable
        });
        if usable {
            WheelVerdict::Keep
        } else {
            WheelVerdict::Drop(wheel.version)
        }
    })
}

/// The file a target will most likely ask the metadata of, guessed from the page alone
/// before the solver asks: the newest final release in `range` with a file the target can
/// use, its best-ranked wheel or else its sdist. A cheap shadow of [`build`] (no policy, no
/// release-age cutoff, no yanked pins): a wrong guess costs one request, never a wrong lock.
/// It reads the page's [`PageIndex`], newest release first, and stops at the first that
/// fits: hints are many, and parsing every file name of a page for each was the largest
/// cost of a run without the network.
pub(crate) fn likely_artifact(
    index: &PageIndex,
    tags: &TagPriority,
    python: &Version,
    range: &crate::version::Range,
) -> Option<Likely> {
    let page = &index.page;
    let mut tag_ranks: Vec<Option<Option<usize>>> = vec![None; index.tag_sets.len()];
    let mut admits = PythonAdmits::new(python);
    for release in &index.versions {
        if release.version.any_prerelease()
            || !pubgrub::VersionSet::contains(
                range,
                &SolverVersion::new(release.version.clone(), Origin::INDEX),
            )
        {
            continue;
        }
        let mut best: Option<(Option<usize>, &Arc<DistFile>)> = None;
        for &(at, tag_set) in &release.files {
            let file = &page.files[at as usize];
            if file.yanked.is_some() {
                continue;
            }
            let rank = match tag_set {
                Some(t) => {
                    let rank = *tag_ranks[t as usize]
                        .get_or_insert_with(|| index.tag_sets[t as usize].rank(tags));
                    match rank {
                        Some(rank) => Some(rank),
                        None => continue,
                    }
                }
                None => None,
            };
            if admits.refuses(file) {
                continue;
            }
            // A wheel before the sdist and the better-ranked wheel first, ties by name, as
            // `build` orders them.
            let better = match &best {
                None => true,
                Some((r, f)) => match (rank, r) {
                    (Some(a), Some(b)) => (a, &file.filename) < (*b, &f.filename),
                    (Some(_), None) => true,
                    (None, _) => false,
                },
            };
            if better {
                best = Some((rank, file));
            }
        }
        if let Some((_, file)) = best {
            // The copy of its metadata every target reads (see `CandidateKind::Index::reads`),
            // so that the prefetch is the one used.
            let mut wheels = release
                .files
                .iter()
                .filter(|(_, tag_set)| tag_set.is_some())
                .map(|&(at, _)| &page.files[at as usize])
                .peekable();
            let lone_sdist = wheels.peek().is_none();
            return Some(Likely {
                file: same_metadata_first(file, wheels),
                installs: file.clone(),
                lone_sdist,
            });
        }
    }
    None
}

/// What [`likely_artifact`] guessed.
pub(crate) struct Likely {
    /// The file whose metadata the target will read.
    pub(crate) file: Arc<DistFile>,
    /// The file the target will install: `file`, or an sdist whose metadata `file` gives.
    pub(crate) installs: Arc<DistFile>,
    /// Its release has no wheel whose metadata could stand in for the file's own (so the
    /// file is an sdist).
    pub(crate) lone_sdist: bool,
}

/// Of `wheels` (one release's), the first by name whose core-metadata file has the same
/// declared sha256 as `artifact`'s; `artifact` itself when it declares none.
fn same_metadata_first<'a>(
    artifact: &Arc<DistFile>,
    wheels: impl IntoIterator<Item = &'a Arc<DistFile>>,
) -> Arc<DistFile> {
    let Some(Some(hash)) = &artifact.core_metadata else {
        return artifact.clone();
    };
    wheels
        .into_iter()
        .filter(|w| matches!(&w.core_metadata, Some(Some(h)) if h == hash))
        .min_by(|a, b| a.filename.cmp(&b.filename))
        .cloned()
        .unwrap_or_else(|| artifact.clone())
}

/// Which files' Requires-Python shuts the target's interpreter out, remembered per string:
/// most files of a project repeat a handful, each shared by the page's files (see
/// `DistFile::requires_python`), so they are looked up by address, not by text.
struct PythonAdmits<'a> {
    python: &'a Version,
    seen: FxHashMap<*const u8, bool>,
}

impl<'a> PythonAdmits<'a> {
    fn new(python: &'a Version) -> Self {
        Self {
            python,
            seen: FxHashMap::default(),
        }
    }

    /// Whether `file` declares a Requires-Python that refuses the interpreter. A malformed
    /// one refuses nothing, as pip does.
    fn refuses(&mut self, file: &DistFile) -> bool {
        let Some(rp) = &file.requires_python else {
            return false;
        };
        let python = self.python;
        *self
            .seen
            .entry(Arc::as_ptr(rp) as *const u8)
            .or_insert_with(|| {
                VersionSpecifiers::from_str(rp).is_ok_and(|spec| !python_admits(&spec, python))
            })
    }
}

/// Whether a release's Requires-Python admits the target's interpreter. Only the lower bound
/// counts: upper bounds (`<4`, `<3.13`) are nearly always written before the excluded Python
/// existed rather than because the code breaks on it, and honouring them sends a resolver back
/// to years-old releases that do not work either. uv reads Requires-Python the same way; the
/// resolution warns when a chosen release's upper bound excludes the target.
pub(crate) fn python_admits(spec: &VersionSpecifiers, python: &Version) -> bool {
    let range: Ranges<Version> = Ranges::from(spec.clone());
    match range.bounding_range() {
        None => false,
        Some((Bound::Included(low), _)) => python >= low,
        Some((Bound::Excluded(low), _)) => python > low,
        Some((Bound::Unbounded, _)) => true,
    }
}

/// Whether `version` is one that a top-level `==` pinned; `==1.2.3` pins its local versions
/// too (PEP 440).
pub(crate) fn is_pinned(pinned: &HashSet<Version>, version: &Version) -> bool {
    pinned.contains(version)
        || (!version.local().is_empty() && pinned.contains(&version.clone().without_local()))
}

/// The candidates of `name` for `cx`'s target: nixpkgs' builds, then the page's releases.
/// Only nixpkgs' are worked out here; an index release is when the solver first reaches it.
pub fn build<'a>(
    name: &PackageName,
    page: Result<Arc<ProjectPage>, SourceError>,
    cx: &CandidateContext<'_, 'a>,
) -> Result<Candidates<'a>, SourceError> {
    let mut nixpkgs = Vec::new();
    if let (Some(nix), false) = (cx.nixpkgs, cx.forced == Some(ForcedSource::Index)) {
        for c in nix.candidates(name) {
            nixpkgs.push(Candidate {
                version: SolverVersion::new(c.version, Origin::NIXPKGS),
                kind: CandidateKind::Nixpkgs {
                    attr: c.attr.to_string(),
                },
            });
        }
    }
    let mut out = Candidates {
        preferred: cx.preferred.and_then(|pref| {
            let at = nixpkgs.iter().position(|c| &c.version == pref)?;
            Some(Slot::Nixpkgs(at))
        }),
        nixpkgs,
        index: None,
        forced_away: None,
        not_found: false,
        only_prereleases: false,
    };
    let page = match page {
        Ok(page) => Some(page),
        // A package nixpkgs has but the index does not is still fine.
        Err(SourceError::NotFound { .. }) => {
            out.not_found = true;
            None
        }
        Err(e) => return Err(e),
    };
    if cx.forced == Some(ForcedSource::Nixpkgs) {
        if out.nixpkgs.is_empty() {
            out.forced_away = Some(Excluded {
                version: Version::new([0]),
                reason: "lock/policy.toml forces it to come from nixpkgs, and the nixpkgs index has no usable build"
                    .into(),
            });
        }
        return Ok(out);
    }
    let Some(page) = page else { return Ok(out) };
    let index = cx.indexes.get(name, &page);
    out.only_prereleases = index.only_prereleases;
    if let Some(pref) = cx.preferred.filter(|p| p.source == Origin::INDEX) {
        if let Some(at) = index.position(&pref.version) {
            out.preferred = Some(Slot::Index(at));
        }
    }
    let python = &cx.target.python_full_version;
    out.index = Some(IndexReleases {
        slots: (0..index.versions.len()).map(|_| OnceCell::new()).collect(),
        reader: RefCell::new(ReleaseReader {
            // A wheel's rank depends only on its tags, which most wheels of a page share.
            tag_ranks: index
                .tag_sets
                .iter()
                .map(|w| w.rank(cx.target.tags()))
                .collect(),
            index,
            target: cx.target,
            options: cx.options,
            no_binary: cx.options.no_binary.contains(name),
            no_build: cx.options.no_build.contains(name),
            pinned: cx.pinned.clone(),
            admits: PythonAdmits::new(python),
        }),
        watch: OnceCell::new(),
    });
    Ok(out)
}

/// See [`Candidates::outline`].
#[derive(Debug, PartialEq)]
pub(crate) struct Outline {
    nixpkgs: Vec<SolverVersion>,
    preferred: Option<Slot>,
    releases: Option<Releases>,
    not_found: bool,
    only_prereleases: bool,
}

impl Outline {
    /// Everything `==` compares, for a kept solve (see `saved`).
    pub(crate) fn digest_into(&self, d: &mut crate::saved::Digester) {
        d.len(self.nixpkgs.len());
        self.nixpkgs.iter().for_each(|v| d.solver_version(v));
        match self.preferred {
            None => d.tag(0),
            Some(Slot::Nixpkgs(at)) => {
                d.tag(1);
                d.len(at);
            }
            Some(Slot::Index(at)) => {
                d.tag(2);
                d.len(at);
            }
        }
        match &self.releases {
            None => d.tag(0),
            Some(Releases(index)) => {
                d.tag(1);
                d.len(index.versions.len());
                index.versions.iter().for_each(|r| d.version(&r.version));
            }
        }
        d.flag(self.not_found);
        d.flag(self.only_prereleases);
    }
}

/// The page's releases a list works out one by one: alike when they are the same page's (as
/// every target of a run reads), or list the same versions in the same order, since a
/// release is found by its position.
struct Releases(Arc<PageIndex>);

impl PartialEq for Releases {
    fn eq(&self, other: &Self) -> bool {
        let (ours, theirs) = (&self.0.versions, &other.0.versions);
        Arc::ptr_eq(&self.0, &other.0)
            || (ours.len() == theirs.len()
                && ours.iter().zip(theirs).all(|(a, b)| a.version == b.version))
    }
}

impl std::fmt::Debug for Releases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} releases of {}",
            self.0.versions.len(),
            self.0.page.name
        )
    }
}

/// Where the preferred version sits, so that it is listed first.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Nixpkgs(usize),
    Index(usize),
}

/// A page's releases for one target, each worked out the first time it is reached: most
/// packages are decided at their newest release, and working out every release of every page
/// for every target was a quarter of an offline run.
struct IndexReleases<'a> {
    /// Boxed: there is a slot for every release of the page, per target, and most stay
    /// empty (readthedocs' set: 2 MB of empty slots unboxed).
    slots: Vec<OnceCell<Box<Result<Candidate, Excluded>>>>,
    reader: RefCell<ReleaseReader<'a>>,
    /// Told of each release as it is worked out (see [`Candidates::watch`]).
    watch: OnceCell<ReleaseWatch>,
}

/// Called with a release's position and the version it gives this target (`None`: none).
pub(crate) type ReleaseWatch = Box<dyn Fn(usize, Option<&SolverVersion>)>;

impl IndexReleases<'_> {
    fn get(&self, at: usize) -> &Result<Candidate, Excluded> {
        self.slots[at].get_or_init(|| {
            let release = self.reader.borrow_mut().release(at);
            if let Some(watch) = self.watch.get() {
                watch(at, release.as_ref().ok().map(|c| &c.version));
            }
            Box::new(release)
        })
    }

    /// The releases (newest first, as positions `from..to`) whose versions lie between the
    /// outer bounds of `range`; sources aside, so that both builds of a bound's version stay.
    fn positions(&self, range: &Range) -> (usize, usize) {
        let reader = self.reader.borrow();
        let versions = &reader.index.versions;
        let Some((lo, hi)) = range.0.bounding_range() else {
            return (0, 0);
        };
        let from = match hi {
            Bound::Unbounded => 0,
            Bound::Included(v) | Bound::Excluded(v) => {
                let mut from = versions.partition_point(|r| r.version > v.version);
                // A bound can stand above every local version of its own (`==1.2.3` takes
                // `1.2.3+cpu`), which sort just above it.
                while from > 0 && {
                    let above = &versions[from - 1].version;
                    !above.local().is_empty() && above.clone().without_local() == v.version
                } {
                    from -= 1;
                }
                from
            }
        };
        let to = match lo {
            Bound::Unbounded => versions.len(),
            Bound::Included(v) | Bound::Excluded(v) => {
                versions.partition_point(|r| r.version >= v.version)
            }
        };
        (from, to.max(from))
    }
}

/// What working out a release needs, kept from one release to the next.
struct ReleaseReader<'a> {
    index: Arc<PageIndex>,
    tag_ranks: Vec<Option<usize>>,
    target: &'a Target,
    options: &'a Options,
    no_binary: bool,
    no_build: bool,
    pinned: HashSet<Version>,
    admits: PythonAdmits<'a>,
}

impl ReleaseReader<'_> {
    /// The candidate the release `at` (newest first) gives, or why it gives none.
    fn release(&mut self, at: usize) -> Result<Candidate, Excluded> {
        let index = self.index.clone();
        let page = &index.page;
        let release = &index.versions[at];
        let version = release.version.clone();
        let files = release.files.iter().map(|&(i, tags)| {
            let rank = tags.and_then(|t| self.tag_ranks[t as usize]);
            (&page.files[i as usize], rank)
        });
        let all_wheels = release
            .files
            .iter()
            .filter(|(_, tags)| tags.is_some())
            .map(|&(i, _)| &page.files[i as usize]);
        let yanked_ok = is_pinned(&self.pinned, &version);
        let python = &self.target.python_full_version;
        let mut reasons = Vec::new();
        let admits = &mut self.admits;
        let cutoff = self.options.release_cutoff.as_ref();
        let usable: Vec<(&Arc<DistFile>, Option<usize>)> = files
            .filter(|(f, _)| {
                if f.yanked.is_some() && !yanked_ok {
                    reasons.push("it was yanked".to_string());
                    return false;
                }
                if let Some(reason) = crate::release_age::held_back(f, cutoff, yanked_ok) {
                    reasons.push(reason);
                    return false;
                }
                if admits.refuses(f) {
                    let rp = f.requires_python.as_deref().unwrap_or_default();
                    reasons.push(format!("it requires Python {rp} (the target has {python})"));
                    return false;
                }
                true
            })
            .collect();
        let no_binary = self.no_binary;
        let best_wheel = usable
            .iter()
            .filter(|(f, _)| !no_binary && f.is_wheel())
            .filter_map(|(f, rank)| rank.map(|r| (r, *f)))
            .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.filename.cmp(&b.1.filename)))
            .map(|(_, f)| f.clone());
        let sdist = usable
            .iter()
            .map(|(f, _)| *f)
            .find(|f| !f.is_wheel() && !self.no_build)
            .cloned();
        if let Some(artifact) = best_wheel.or(sdist) {
            return Ok(Candidate {
                version: SolverVersion::new(version, Origin::INDEX),
                kind: CandidateKind::Index {
                    reads: same_metadata_first(&artifact, all_wheels),
                    metadata_from: if artifact.is_wheel() {
                        Vec::new()
                    } else {
                        // Wheels with a core-metadata file first; the others are read with
                        // range requests.
                        let mut donors: Vec<Arc<DistFile>> = usable
                            .iter()
                            .map(|(f, _)| *f)
                            .filter(|f| f.is_wheel())
                            .cloned()
                            .collect();
                        donors.sort_by_key(|f| f.core_metadata.is_none());
                        donors
                    },
                    artifact,
                },
            });
        }
        let target = self.target;
        let newer_macos = usable
            .iter()
            .filter(|(f, _)| f.is_wheel())
            .filter_map(|(f, _)| WheelFilename::parse(&f.filename).ok())
            .filter_map(|w| target.needs_newer_macos(&w))
            .min_by(|a, b| macos_order(a).cmp(&macos_order(b)));
        if let (Some(needs), true, false) = (newer_macos, reasons.is_empty(), no_binary) {
            let floor = target.macos_deployment_target().unwrap_or_default();
            reasons.push(format!(
                "its {} wheel needs macOS {needs}, newer than the deployment target {floor} \
                 (raise it with [targets.\"{}\"] macos = \"{needs}\" in lock/policy.toml \
                 if every Mac you deploy to runs it), and it has no usable source distribution",
                target.name, target.name
            ));
        }
        if reasons.is_empty() {
            let had_wheels = release.dropped_wheels || usable.iter().any(|(f, _)| f.is_wheel());
            reasons.push(if had_wheels || no_binary {
                format!(
                    "it has no wheel for {} and no usable source distribution",
                    target.name
                )
            } else {
                "it has no usable file".to_string()
            });
        }
        reasons.dedup();
        Err(Excluded {
            version,
            reason: reasons.join("; "),
        })
    }
}

impl<'a> Candidates<'a> {
    /// Usable candidates in preference order: the preferred version (the lock's), then
    /// nixpkgs' builds, then the index's releases newest first.
    pub fn iter(&self) -> impl Iterator<Item = &Candidate> + use<'_, 'a> {
        self.ordered(None)
    }

    /// The candidates [`Candidates::iter`] yields that `range` contains, in the same order,
    /// working out only the index releases between the range's outer bounds: a package
    /// walked down its versions is asked about again and again, and each time every newer
    /// release would be looked at again.
    pub fn in_range<'s>(
        &'s self,
        range: &'s Range,
    ) -> impl Iterator<Item = &'s Candidate> + Clone + use<'s, 'a> {
        self.ordered(Some(range))
            .filter(move |c| pubgrub::VersionSet::contains(range, &c.version))
    }

    /// [`Candidates::iter`]'s order, with the index releases limited to those between the
    /// outer bounds of `range` when there is one.
    fn ordered<'s>(
        &'s self,
        range: Option<&'s Range>,
    ) -> impl Iterator<Item = &'s Candidate> + Clone + use<'s, 'a> {
        let preferred = self.preferred.and_then(|slot| self.at(slot));
        let nixpkgs = self
            .nixpkgs
            .iter()
            .enumerate()
            .filter(|(i, _)| self.preferred != Some(Slot::Nixpkgs(*i)))
            .map(|(_, c)| c);
        let index = self.index.iter().flat_map(move |index| {
            let (from, to) = match range {
                Some(range) => index.positions(range),
                None => (0, index.slots.len()),
            };
            (from..to)
                .filter(move |i| self.preferred != Some(Slot::Index(*i)))
                .filter_map(|i| index.get(i).as_ref().ok())
        });
        preferred.into_iter().chain(nixpkgs).chain(index)
    }

    /// The candidate for `version`, working out no other release.
    pub fn find(&self, version: &SolverVersion) -> Option<&Candidate> {
        if version.source == Origin::NIXPKGS {
            return self.nixpkgs.iter().find(|c| &c.version == version);
        }
        let index = self.index.as_ref()?;
        let at = index.reader.borrow().index.position(&version.version)?;
        index
            .get(at)
            .as_ref()
            .ok()
            .filter(|c| &c.version == version)
    }

    /// The versions this target cannot use, and why, newest first (works out every release).
    pub fn excluded(&self) -> Vec<&Excluded> {
        let index = self
            .index
            .iter()
            .flat_map(|index| (0..index.slots.len()).filter_map(|i| index.get(i).as_ref().err()));
        self.forced_away.iter().chain(index).collect()
    }

    /// What the solver reads of this list besides its releases, for comparing two targets'
    /// lists without working out every release (see `replay`).
    pub(crate) fn outline(&self) -> Outline {
        Outline {
            nixpkgs: self.nixpkgs.iter().map(|c| c.version.clone()).collect(),
            preferred: self.preferred,
            releases: self
                .index
                .as_ref()
                .map(|i| Releases(i.reader.borrow().index.clone())),
            not_found: self.not_found,
            only_prereleases: self.only_prereleases,
        }
    }

    /// The version the index release at `at` (newest first) gives, working it out if needed;
    /// `None` also past the last release.
    pub(crate) fn release_version(&self, at: usize) -> Option<&SolverVersion> {
        let index = self.index.as_ref().filter(|i| at < i.slots.len())?;
        index.get(at).as_ref().ok().map(|c| &c.version)
    }

    /// Has `watch` told of every index release from now on as it is worked out. Set once.
    pub(crate) fn watch(&self, watch: ReleaseWatch) {
        if let Some(index) = &self.index {
            let _ = index.watch.set(watch);
        }
    }

    fn at(&self, slot: Slot) -> Option<&Candidate> {
        match slot {
            Slot::Nixpkgs(i) => self.nixpkgs.get(i),
            Slot::Index(i) => self.index.as_ref()?.get(i).as_ref().ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admits(spec: &str, python: &str) -> bool {
        python_admits(
            &VersionSpecifiers::from_str(spec).unwrap(),
            &Version::from_str(python).unwrap(),
        )
    }

    #[test]
    fn requires_python_is_a_floor() {
        assert!(admits(">=3.9", "3.13.0"));
        assert!(!admits(">=3.10", "3.9.0"));
        assert!(!admits(">=3.13.2", "3.13.0"));
        assert!(admits(">=3.8, <3.13", "3.13.0"));
        assert!(admits("<=3.8", "3.9.0"));
        assert!(!admits(">3.13", "3.13.0"));
        assert!(!admits(">=3.10, <3.9", "3.13.0"));
    }

    #[test]
    fn a_page_is_grouped_by_release_whatever_its_form() {
        let name = PackageName::from_str("demo").unwrap();
        let file = |f: &str| format!(r#"{{"filename": "{f}", "url": "{f}", "hashes": {{}}}}"#);
        let files = [
            "demo-1.0-py3-none-any.whl",
            "demo-1.0.tar.gz",
            // The same version written otherwise: the same release.
            "demo-1.0.0-cp313-cp313-manylinux_2_17_x86_64.whl",
            // A name that is no wheel name, and a version that is none: skipped, and no
            // release is made for them.
            "demo-2.0-bad.whl",
            "demo-x.y-py3-none-any.whl",
            "demo-1.5-py2-none-any.whl",
            "demo-1.5-py3-none-any.whl",
        ]
        .map(file)
        .join(",");
        let body =
            format!(r#"{{"meta": {{"api-version": "1.1"}}, "name": "demo", "files": [{files}]}}"#);
        let url = url::Url::parse("http://127.0.0.1:9/simple/demo/").unwrap();
        let parsed =
            bitpoll_simple::parse_project_page(body.as_bytes(), &url, &name, None).unwrap();
        let stored = ProjectPage::decode_compact(parsed.encode_compact(), &url).unwrap();
        for page in [parsed, stored] {
            let index = PageIndex::new(&name, &Arc::new(page));
            let releases: Vec<(String, Vec<&str>)> = index
                .versions
                .iter()
                .map(|r| {
                    let names = r
                        .files
                        .iter()
                        .map(|&(i, _)| index.page.files.filename(i as usize))
                        .collect();
                    (r.version.to_string(), names)
                })
                .collect();
            assert_eq!(
                releases,
                [
                    (
                        "1.5".to_string(),
                        vec!["demo-1.5-py2-none-any.whl", "demo-1.5-py3-none-any.whl"]
                    ),
                    (
                        "1.0".to_string(),
                        vec![
                            "demo-1.0-py3-none-any.whl",
                            "demo-1.0.tar.gz",
                            "demo-1.0.0-cp313-cp313-manylinux_2_17_x86_64.whl"
                        ]
                    ),
                ]
            );
            assert_eq!(
                index.tag_sets.len(),
                3,
                "py3-none-any, cp313 manylinux, py2"
            );
        }
    }

    #[test]
    fn a_public_pin_covers_its_local_versions() {
        let pinned = HashSet::from([Version::from_str("1.2.3").unwrap()]);
        assert!(is_pinned(&pinned, &Version::from_str("1.2.3+cpu").unwrap()));
        assert!(!is_pinned(&pinned, &Version::from_str("1.2.4").unwrap()));
        let local = HashSet::from([Version::from_str("1.2.3+cpu").unwrap()]);
        assert!(!is_pinned(&local, &Version::from_str("1.2.3+gpu").unwrap()));
    }
}
