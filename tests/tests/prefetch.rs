//! What the resolver asks for ahead of need: a cold resolution is a chain of round trips
//! (page, metadata, the next page), and every fetch started before the solver waits for it
//! takes one link out of that chain. These tests watch the hints the resolver gives its
//! package source, in memory, where the order of events is the resolver's alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bitpoll_platform::Target;
use bitpoll_policy::Policy;
use bitpoll_resolver::{Options, Request};
use bitpoll_source::{Bytes, DistFile, Hints, PackageSource, Pick, ProjectPage, SourceError, Then};
use bitpoll_tests::memory::MemorySource;
use bitpoll_tests::universe::{Project, Release, Universe};
use pep508_rs::PackageName;

/// What happened, in order: `hint NAME FILE` when a prefetch hint picked a file (or
/// `hint NAME -` when it picked none), `read FILE` when the solver read a file's metadata.
#[derive(Default)]
struct Log(Mutex<Vec<String>>);

struct Recording {
    inner: MemorySource,
    log: Log,
    /// Whether the metadata a hint picked is handed on (see `prefetch_then`); without, the
    /// source sees only the solver's own hints.
    follow: bool,
}

impl Recording {
    fn events(&self) -> Vec<String> {
        self.log.0.lock().unwrap().clone()
    }

    /// The position of the first event equal to `event`.
    fn first(&self, event: &str) -> Option<usize> {
        self.events().iter().position(|e| e == event)
    }
}

impl PackageSource for Recording {
    fn project(&self, name: &PackageName) -> Result<Arc<ProjectPage>, SourceError> {
        self.inner.project(name)
    }

    // Answered at once, as if the network were infinitely fast: the pick sees the page the
    // solver will see.
    fn prefetch(&self, name: &PackageName, pick: Pick) {
        self.hint(name, pick);
    }

    fn prefetch_then(&self, name: &PackageName, pick: Pick, then: Then) {
        Hints::prefetch_then(self, name, pick, then)
    }

    fn core_metadata(
        &self,
        file: &DistFile,
    ) -> Result<Arc<bitpoll_metadata::CoreMetadata>, SourceError> {
        self.log
            .0
            .lock()
            .unwrap()
            .push(format!("read {}", file.filename));
        self.inner.core_metadata(file)
    }

    fn sdist_info(&self, file: &DistFile) -> Result<Arc<bitpoll_metadata::SdistInfo>, SourceError> {
        self.inner.sdist_info(file)
    }

    fn download(&self, file: &DistFile) -> Result<Bytes, SourceError> {
        self.inner.download(file)
    }
}

impl Recording {
    /// Logs the hint; the file picked, if any.
    fn hint(&self, name: &PackageName, pick: Pick) -> Option<Arc<DistFile>> {
        let picked = self.inner.project(name).ok().and_then(|page| pick(&page));
        let shown = picked.as_ref().map(|f| f.filename.to_string());
        self.log
            .0
            .lock()
            .unwrap()
            .push(format!("hint {name} {}", shown.as_deref().unwrap_or("-")));
        picked
    }
}

impl Hints for Recording {
    fn prefetch_then(&self, name: &PackageName, pick: Pick, then: Then) {
        let Some(file) = self.hint(name, pick) else {
            return;
        };
        if self.follow {
            if let Ok(metadata) = self.inner.core_metadata(&file) {
                then(self, &metadata);
            }
        }
    }
}

fn release(requires: &[&str]) -> Release {
    Release::requiring(requires)
}

fn project(versions: &[(&str, Release)]) -> Project {
    Project {
        versions: versions
            .iter()
            .map(|(v, r)| (v.to_string(), r.clone()))
            .collect(),
    }
}

fn resolve(packages: Vec<(&str, Project)>, requirements: &[&str], system: &str) -> Recording {
    resolve_with(packages, requirements, system, false)
}

fn resolve_with(
    packages: Vec<(&str, Project)>,
    requirements: &[&str],
    system: &str,
    follow: bool,
) -> Recording {
    let target = Target::new(system, "3.13").unwrap();
    resolved(
        packages,
        requirements,
        follow,
        &Options::default(),
        |source, request| bitpoll_resolver::resolve_target(source, &target, request).map(drop),
    )
}

/// Resolves `systems` together (targets of one system following another, see the resolver's
/// `replay`), offline or not.
fn resolve_together(
    packages: Vec<(&str, Project)>,
    requirements: &[&str],
    systems: &[&str],
    offline: bool,
) -> Recording {
    let targets: Vec<Target> = systems
        .iter()
        .map(|s| Target::new(s, "3.13").unwrap())
        .collect();
    let options = Options {
        offline,
        ..Default::default()
    };
    resolved(
        packages,
        requirements,
        false,
        &options,
        |source, request| bitpoll_resolver::resolve(source, &targets, request).map(drop),
    )
}

/// The recording source after `resolve` ran on it with `requirements` and `options`.
fn resolved(
    packages: Vec<(&str, Project)>,
    requirements: &[&str],
    follow: bool,
    options: &Options,
    resolve: impl FnOnce(&Recording, &Request) -> Result<(), bitpoll_resolver::ResolveError>,
) -> Recording {
    let universe = Universe {
        packages: packages
            .into_iter()
            .map(|(n, p)| (n.to_string(), p))
            .collect(),
    };
    let source = Recording {
        inner: MemorySource::new(&universe, None),
        log: Log::default(),
        follow,
    };
    let requirements: Vec<_> = requirements
        .iter()
        .map(|r| r.parse::<pep508_rs::Requirement>().unwrap())
        .collect();
    let (policy, preferences) = (Policy::default(), HashMap::new());
    let request = Request {
        requirements: &requirements,
        constraints: &[],
        nixpkgs: None,
        policy: &policy,
        options,
        preferences: &preferences,
    };
    resolve(&source, &request).expect("a solution");
    source
}

#[test]
fn every_metadata_read_of_a_plain_resolution_was_hinted_first() {
    // Without core-metadata files, each target reads its own wheel's METADATA.
    let native = |tags: &[&str]| Release {
        wheel_tags: Some(tags.iter().map(|t| t.to_string()).collect()),
        requires: vec!["leaf".into()],
        no_core_metadata: true,
        ..Default::default()
    };
    let source = resolve(
        vec![
            (
                "app",
                project(&[
                    ("1.0", release(&["lib>=1", "native"])),
                    ("2.0", release(&["lib>=1", "native"])),
                ]),
            ),
            // The newest release outside the range must not be the guess.
            (
                "lib",
                project(&[("1.5", release(&[])), ("3.0", release(&[]))]),
            ),
            // The guess is the wheel this target installs, not another platform's.
            (
                "native",
                project(&[(
                    "1.0",
                    native(&[
                        "cp313-cp313-macosx_11_0_arm64",
                        "cp313-cp313-manylinux_2_17_x86_64",
                        "py3-none-any",
                    ]),
                )]),
            ),
            ("leaf", project(&[("1.0", release(&[]))])),
        ],
        &["app", "lib<3"],
        "x86_64-linux",
    );
    let events = source.events();
    let reads: Vec<&String> = events.iter().filter(|e| e.starts_with("read ")).collect();
    assert_eq!(reads.len(), 4, "{events:#?}");
    for read in reads {
        let file = read.strip_prefix("read ").unwrap();
        let name = file.split('-').next().unwrap();
        let hint = format!("hint {name} {file}");
        let (Some(h), Some(r)) = (source.first(&hint), source.first(read)) else {
            panic!("no `{hint}` before `{read}`: {events:#?}");
        };
        assert!(h < r, "`{hint}` came after `{read}`: {events:#?}");
    }
    assert!(
        source
            .first("hint native native-1.0-cp313-cp313-manylinux_2_17_x86_64.whl")
            .is_some(),
        "{events:#?}"
    );
}

#[test]
fn walking_a_package_down_fetches_the_older_releases_ahead() {
    // `c==1` is decided first (a single version), so `a` 5, 4 and 3 fail one after the
    // other on their `c>=2`: after the first step down, the rest are hinted before read.
    let source = resolve(
        vec![
            (
                "a",
                project(&[
                    ("1", release(&["c==1"])),
                    ("2", release(&["c==1"])),
                    ("3", release(&["c>=2"])),
                    ("4", release(&["c>=2"])),
                    ("5", release(&["c>=2"])),
                ]),
            ),
            ("c", project(&[("1", release(&[])), ("2", release(&[]))])),
        ],
        &["a", "c==1"],
        "x86_64-linux",
    );
    let events = source.events();
    for version in ["3", "2"] {
        let file = format!("a-{version}-py3-none-any.whl");
        let hint = source.first(&format!("hint a {file}"));
        let read = source.first(&format!("read {file}"));
        assert!(
            matches!((hint, read), (Some(h), Some(r)) if h < r),
            "a {version} was not fetched ahead: {events:#?}"
        );
    }
    // A package walked down is chosen again and again; each older file is hinted once.
    for version in ["3", "2", "1"] {
        let hint = format!("hint a a-{version}-py3-none-any.whl");
        let times = events.iter().filter(|e| **e == hint).count();
        assert!(times <= 1, "`{hint}` {times} times: {events:#?}");
    }
    // Nothing older than what the solver could still need is fetched: `a 1` is at most
    // hinted, never read.
    assert!(
        source.first("read a-1-py3-none-any.whl").is_none(),
        "{events:#?}"
    );
}

#[test]
fn older_releases_read_only_from_a_whole_sdist_are_not_fetched_ahead() {
    // `a` 5 to 2 need `c>=2`; 4 and 2 publish only an sdist (no metadata file), so their
    // metadata is the whole download. Walking down still hints the wheels ahead, but not
    // those sdists: a guess would download megabytes a one-step backtrack never reads.
    let sdist_only = |requires: &[&str]| Release {
        wheel: false,
        ..release(requires)
    };
    let source = resolve(
        vec![
            (
                "a",
                project(&[
                    ("1", release(&["c==1"])),
                    ("2", sdist_only(&["c>=2"])),
                    ("3", release(&["c>=2"])),
                    ("4", sdist_only(&["c>=2"])),
                    ("5", release(&["c>=2"])),
                ]),
            ),
            ("c", project(&[("1", release(&[])), ("2", release(&[]))])),
        ],
        &["a", "c==1"],
        "x86_64-linux",
    );
    let events = source.events();
    let read_3 = source
        .first("read a-3-py3-none-any.whl")
        .unwrap_or_else(|| panic!("a 3 not read: {events:#?}"));
    assert!(
        source
            .first("hint a a-3-py3-none-any.whl")
            .is_some_and(|h| h < read_3),
        "{events:#?}"
    );
    for sdist in ["a-4.tar.gz", "a-2.tar.gz"] {
        assert!(
            source.first(&format!("read {sdist}")).is_some(),
            "{sdist} not read: {events:#?}"
        );
        assert!(
            source.first(&format!("hint a {sdist}")).is_none(),
            "{sdist} fetched ahead: {events:#?}"
        );
    }
}

#[test]
fn releases_passed_by_on_the_way_down_are_fetched_a_window_ahead() {
    // `a` 10 to 4 need `c>=2`, which the requirements rule out: the resolver passes them by
    // one after another within one choice. Each is read only after the four below it were
    // hinted, as when every step down was a choice of its own: a window that only moved
    // once a release had been read left each read waiting a round trip on a real index.
    let mut releases: Vec<(String, Release)> = (4..=10)
        .map(|v| (v.to_string(), release(&["c>=2"])))
        .collect();
    releases.extend((1..=3).map(|v| (v.to_string(), release(&["c==1"]))));
    let releases: Vec<(&str, Release)> = releases
        .iter()
        .map(|(v, r)| (v.as_str(), r.clone()))
        .collect();
    let source = resolve(
        vec![
            ("a", project(&releases)),
            ("c", project(&[("1", release(&[])), ("2", release(&[]))])),
        ],
        &["c==1", "a"],
        "x86_64-linux",
    );
    let events = source.events();
    for version in 4..=9 {
        let read = source
            .first(&format!("read a-{version}-py3-none-any.whl"))
            .unwrap_or_else(|| panic!("a {version} not read: {events:#?}"));
        for older in (version - 4).max(1)..version {
            let hint = format!("hint a a-{older}-py3-none-any.whl");
            assert!(
                source.first(&hint).is_some_and(|h| h < read),
                "no `{hint}` before a {version} was read: {events:#?}"
            );
        }
    }
}

#[test]
fn the_dependencies_of_hinted_metadata_are_hinted_before_the_solver_reads_it() {
    let extra = Release {
        requires: vec!["c".into()],
        extras: [("more".to_string(), vec!["e".to_string()])].into(),
        ..Default::default()
    };
    let source = resolve_with(
        vec![
            ("app", project(&[("1.0", release(&["b[more]>=1"]))])),
            ("b", project(&[("1.0", extra.clone()), ("0.9", extra)])),
            (
                "c",
                project(&[("1.0", release(&["d", "winonly; sys_platform == 'win32'"]))]),
            ),
            ("d", project(&[("1.0", release(&[]))])),
            ("e", project(&[("1.0", release(&[]))])),
            ("winonly", project(&[("1.0", release(&[]))])),
        ],
        &["app"],
        "x86_64-linux",
        true,
    );
    let events = source.events();
    // The whole tree is hinted from the first metadata on, before the solver reads `b`'s:
    // a chain of dependencies no longer waits a round trip per link.
    let read_b = source.first("read b-1.0-py3-none-any.whl").expect("b read");
    for file in ["b-1.0", "c-1.0", "d-1.0", "e-1.0"] {
        let name = file.split('-').next().unwrap();
        let hint = format!("hint {name} {file}-py3-none-any.whl");
        assert!(
            source.first(&hint).is_some_and(|h| h < read_b),
            "no `{hint}` before b's metadata was read: {events:#?}"
        );
        // Once (`b` once more, for its extra): the solver's own hint for it, later, picks
        // nothing more.
        let times = events.iter().filter(|e| **e == hint).count();
        let once = if name == "b" { 2 } else { 1 };
        assert_eq!(times, once, "`{hint}`: {events:#?}");
    }
    // Only what this target installs.
    assert!(
        !events.iter().any(|e| e.starts_with("hint winonly")),
        "{events:#?}"
    );
    // The solver read every file itself (hints only fetch), and the older `b` never.
    assert!(source.first("read d-1.0-py3-none-any.whl").is_some());
    assert!(!events.iter().any(|e| e.contains("b-0.9")), "{events:#?}");
}

#[test]
fn a_target_following_another_offline_gives_no_hints_of_its_own() {
    // Each Linux machine installs its own wheel of `native`. Offline there is no round trip
    // to hide, and the leader's hints already had the source read the pages: the follower
    // (x86_64) reads its own wheel's metadata without hinting it first. Online it hints.
    let native = Release {
        wheel_tags: Some(vec![
            "cp313-cp313-manylinux_2_17_aarch64".into(),
            "cp313-cp313-manylinux_2_17_x86_64".into(),
        ]),
        no_core_metadata: true,
        ..Default::default()
    };
    let packages = || {
        vec![
            ("app", project(&[("1.0", release(&["native"]))])),
            ("native", project(&[("1.0", native.clone())])),
        ]
    };
    let systems = ["aarch64-linux", "x86_64-linux"];
    let x86 = "native-1.0-cp313-cp313-manylinux_2_17_x86_64.whl";
    let arm = "native-1.0-cp313-cp313-manylinux_2_17_aarch64.whl";
    for (offline, follower_hints) in [(true, false), (false, true)] {
        let source = resolve_together(packages(), &["app"], &systems, offline);
        let events = source.events();
        assert!(
            source.first(&format!("read {x86}")).is_some(),
            "{events:#?}"
        );
        assert!(
            source.first(&format!("hint native {arm}")).is_some(),
            "{events:#?}"
        );
        assert_eq!(
            source.first(&format!("hint native {x86}")).is_some(),
            follower_hints,
            "offline: {offline}: {events:#?}"
        );
    }
}
