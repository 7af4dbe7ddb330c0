//! Restarts across a run's targets. A solve starts over when one package keeps losing
//! conflicts, with that package decided first; the targets of one run mostly lose the same
//! conflicts, so every target but the first restarts once, with what the first promoted.
//! These tests count the solver's metadata reads (every solve reads a release's metadata
//! again) through a package source in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use bitpoll_platform::Target;
use bitpoll_policy::Policy;
use bitpoll_resolver::{Options, Request, ResolveError, TargetResolution};
use bitpoll_source::{Bytes, DistFile, PackageSource, Pick, ProjectPage, SourceError};
use bitpoll_tests::memory::MemorySource;
use bitpoll_tests::universe::{Project, Release, Universe};
use pep508_rs::PackageName;

/// Counts the metadata reads of every file.
struct Counting {
    inner: MemorySource,
    reads: Mutex<HashMap<String, usize>>,
}

impl Counting {
    fn new(packages: Vec<(&str, Project)>) -> Self {
        let universe = Universe {
            packages: packages
                .into_iter()
                .map(|(n, p)| (n.to_string(), p))
                .collect(),
        };
        Counting {
            inner: MemorySource::new(&universe, None),
            reads: Mutex::default(),
        }
    }

    fn reads(&self, file: &str) -> usize {
        self.reads.lock().unwrap().get(file).copied().unwrap_or(0)
    }
}

impl PackageSource for Counting {
    fn project(&self, name: &PackageName) -> Result<Arc<ProjectPage>, SourceError> {
        self.inner.project(name)
    }

    fn prefetch(&self, _name: &PackageName, _pick: Pick) {}

    fn core_metadata(
        &self,
        file: &DistFile,
    ) -> Result<Arc<bitpoll_metadata::CoreMetadata>, SourceError> {
        *self
            .reads
            .lock()
            .unwrap()
            .entry(file.filename.to_string())
            .or_default() += 1;
        self.inner.core_metadata(file)
    }

    fn sdist_info(&self, file: &DistFile) -> Result<Arc<bitpoll_metadata::SdistInfo>, SourceError> {
        self.inner.sdist_info(file)
    }

    fn download(&self, file: &DistFile) -> Result<Bytes, SourceError> {
        self.inner.download(file)
    }
}

fn release(requires: &[&str]) -> Release {
    Release {
        requires: requires.iter().map(|r| r.to_string()).collect(),
        ..Default::default()
    }
}

/// Versions 1 to 8; from 3 on each needs `needs`, which the requirements rule out, so the
/// solver walks the package down from 8 to 2, one lost conflict per step.
fn walked_down(needs: &str, old: &str) -> Project {
    Project {
        versions: (1..=8)
            .map(|v| {
                let requires = if v >= 3 { needs } else { old };
                (v.to_string(), release(&[requires]))
            })
            .collect(),
    }
}

/// `a` and `b` are each walked down past the restart threshold, one after the other: alone,
/// a target solves three times (from scratch, with `a` decided first, with `a` and `b`).
fn two_restarts() -> Vec<(&'static str, Project)> {
    let leaf = || Project {
        versions: [("1", release(&[])), ("2", release(&[]))]
            .into_iter()
            .map(|(v, r)| (v.to_string(), r))
            .collect(),
    };
    vec![
        ("a", walked_down("c>=2", "c==1")),
        ("b", walked_down("d>=2", "d==1")),
        ("c", leaf()),
        ("d", leaf()),
    ]
}

const REQUIREMENTS: &[&str] = &["a", "b", "c==1", "d==1"];

fn targets() -> Vec<Target> {
    [
        "x86_64-linux",
        "aarch64-linux",
        "x86_64-darwin",
        "aarch64-darwin",
    ]
    .iter()
    .map(|s| Target::new(s, "3.13").unwrap())
    .collect()
}

/// Resolves `requirements` for `targets` together, or for each alone.
fn resolve(
    source: &Counting,
    requirements: &[&str],
    targets: &[Target],
    together: bool,
) -> Result<Vec<TargetResolution>, ResolveError> {
    let requirements: Vec<_> = requirements
        .iter()
        .map(|r| r.parse::<pep508_rs::Requirement>().unwrap())
        .collect();
    let (policy, options, preferences) = (Policy::default(), Options::default(), HashMap::new());
    let request = Request {
        requirements: &requirements,
        constraints: &[],
        nixpkgs: None,
        policy: &policy,
        options: &options,
        preferences: &preferences,
    };
    if together {
        bitpoll_resolver::resolve(source, targets, &request)
    } else {
        targets
            .iter()
            .map(|t| bitpoll_resolver::resolve_target(source, t, &request))
            .collect()
    }
}

fn versions(resolutions: &[TargetResolution]) -> BTreeMap<String, BTreeMap<String, String>> {
    resolutions
        .iter()
        .map(|r| {
            let pins = r
                .packages
                .values()
                .map(|p| (p.name.to_string(), p.version.to_string()))
                .collect();
            (r.target.clone(), pins)
        })
        .collect()
}

#[test]
fn targets_after_the_first_restart_once_with_what_the_first_promoted() {
    let targets = targets();
    let alone = Counting::new(two_restarts());
    let by_itself = resolve(&alone, REQUIREMENTS, &targets, false).expect("a solution");
    let together = Counting::new(two_restarts());
    let in_one_run = resolve(&together, REQUIREMENTS, &targets, true).expect("a solution");

    // The same versions either way, and the walks ended where they must.
    assert_eq!(versions(&by_itself), versions(&in_one_run));
    for target in versions(&in_one_run).values() {
        assert_eq!(target["a"], "2", "{target:?}");
        assert_eq!(target["b"], "2", "{target:?}");
    }
    // Every solve tries `a 8` once. Alone: three solves per target. Together: the first
    // target's three, then two for each other target (its own first, which stops at the
    // first restart, and one with both packages decided first).
    let a8 = "a-8-py3-none-any.whl";
    assert_eq!(alone.reads(a8), 3 * targets.len(), "alone");
    assert_eq!(together.reads(a8), 3 + 2 * (targets.len() - 1), "together");
}

#[test]
fn a_run_whose_first_target_fails_still_ends() {
    // The first target has no wheel of `native` and fails at once; the second restarts and
    // waits for the first target's list, which its failure must still hand over.
    let mut packages = two_restarts();
    packages.push((
        "native",
        Project {
            versions: [(
                "1".to_string(),
                Release {
                    wheel_tags: Some(vec!["cp313-cp313-macosx_11_0_arm64".into()]),
                    sdist: false,
                    ..Default::default()
                },
            )]
            .into_iter()
            .collect(),
        },
    ));
    let targets: Vec<Target> = ["x86_64-linux", "aarch64-darwin"]
        .iter()
        .map(|s| Target::new(s, "3.13").unwrap())
        .collect();
    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || {
        let source = Counting::new(packages);
        let requirements = ["native", "a", "b", "c==1", "d==1"];
        let result = resolve(&source, &requirements, &targets, true);
        done.send(result.map(|r| r.len())).unwrap();
    });
    let result = outcome
        .recv_timeout(Duration::from_secs(120))
        .expect("the run ended");
    match result {
        Err(ResolveError::NoSolution { target, .. }) => assert_eq!(target, "x86_64-linux"),
        other => panic!("expected no solution for x86_64-linux, got {other:?}"),
    }
}
