//! Targets that answer alike share one solve: a target follows the first target with its
//! operating system, compares its own answers with the ones that target's solve read, and
//! takes that solve only when all of them agree. These tests resolve several targets at once
//! from an in-memory index and check what each target ends with against a resolution of that
//! target alone, and what the timeline says each target did.

use std::collections::{BTreeMap, HashMap};

use bitpoll_platform::Target;
use bitpoll_policy::Policy;
use bitpoll_resolver::{Options, Request, TargetResolution};
use bitpoll_tests::memory::MemorySource;
use bitpoll_tests::universe::{Project, Release, Universe};
use bitpoll_timings::{Category, Timings};

fn release(requires: &[&str]) -> Release {
    Release::requiring(requires)
}

/// A release whose only file is a wheel with these tags.
fn wheel_only(tags: &[&str]) -> Release {
    Release {
        wheel_tags: Some(tags.iter().map(|t| t.to_string()).collect()),
        sdist: false,
        ..Default::default()
    }
}

fn universe(packages: Vec<(&str, Vec<(&str, Release)>)>) -> Universe {
    Universe {
        packages: packages
            .into_iter()
            .map(|(name, versions)| {
                let versions = versions
                    .into_iter()
                    .map(|(v, r)| (v.to_string(), r))
                    .collect();
                (name.to_string(), Project { versions })
            })
            .collect(),
    }
}

/// What every target chose, name -> version, per target.
type Chosen = BTreeMap<String, BTreeMap<String, String>>;

fn chosen(resolutions: &[TargetResolution]) -> Chosen {
    resolutions
        .iter()
        .map(|r| {
            let versions = r
                .packages
                .values()
                .map(|p| (p.name.to_string(), p.version.to_string()))
                .collect();
            (r.target.clone(), versions)
        })
        .collect()
}

struct Run {
    together: Chosen,
    alone: Chosen,
    /// The solve spans of the run of all targets together: (thread, label).
    solves: Vec<(String, String)>,
    restarts: usize,
}

/// Resolves `systems` together, then each alone.
fn run(universe: &Universe, requirements: &[&str], systems: &[&str]) -> Run {
    let source = MemorySource::new(universe, None);
    let requirements: Vec<pep508_rs::Requirement> =
        requirements.iter().map(|r| r.parse().unwrap()).collect();
    let targets: Vec<Target> = systems
        .iter()
        .map(|s| Target::new(s, "3.13").unwrap())
        .collect();
    let (policy, preferences) = (Policy::default(), HashMap::new());
    let options = Options {
        timings: Timings::on(),
        ..Default::default()
    };
    let request = Request {
        requirements: &requirements,
        constraints: &[],
        nixpkgs: None,
        policy: &policy,
        options: &options,
        preferences: &preferences,
    };
    let together = bitpoll_resolver::resolve(&source, &targets, &request).expect("a solution");
    let events = options
        .timings
        .take_timeline()
        .expect("timings are on")
        .events;
    let solves = events
        .iter()
        .filter(|e| e.category == Category::Solve)
        .map(|e| (e.thread.clone(), e.label.clone()))
        .collect();
    let restarts = events
        .iter()
        .filter(|e| e.category == Category::Restart)
        .count();
    let alone_options = Options::default();
    let alone_request = Request {
        options: &alone_options,
        ..request
    };
    let alone: Vec<TargetResolution> = targets
        .iter()
        .map(|t| bitpoll_resolver::resolve_target(&source, t, &alone_request).expect("a solution"))
        .collect();
    Run {
        together: chosen(&together),
        alone: chosen(&alone),
        solves,
        restarts,
    }
}

/// The labels of the solve spans of `system`'s thread.
fn solves_of<'r>(run: &'r Run, system: &str) -> Vec<&'r str> {
    let thread = format!("resolve {system}");
    run.solves
        .iter()
        .filter(|(t, _)| *t == thread)
        .map(|(_, l)| l.as_str())
        .collect()
}

#[test]
fn targets_that_agree_take_their_leaders_solve_restarts_and_all() {
    // Declared first, `a 2.0` is decided before `b`, and every newer `b` then fails on its
    // `a==1.0`: after five conflicts `b` is promoted and the solve starts over, ending with
    // `b 6.0` and `a 1.0`.
    let mut b: Vec<(&str, Release)> = ["2.0", "3.0", "4.0", "5.0", "6.0"]
        .into_iter()
        .map(|v| (v, release(&["a==1.0"])))
        .collect();
    b.push(("1.0", release(&[])));
    let universe = universe(vec![
        ("a", vec![("1.0", release(&[])), ("2.0", release(&[]))]),
        ("b", b),
    ]);
    let systems = [
        "aarch64-darwin",
        "aarch64-linux",
        "x86_64-darwin",
        "x86_64-linux",
    ];
    let run = run(&universe, &["a", "b"], &systems);
    assert_eq!(
        run.together, run.alone,
        "a shared solve ends where a target's own does"
    );
    assert_eq!(run.together["x86_64-linux"]["b"], "6.0");
    assert_eq!(run.together["x86_64-linux"]["a"], "1.0");
    // The followers solved nothing themselves: their restarts are the leaders'.
    for (follower, leader) in [
        ("x86_64-darwin", "aarch64-darwin"),
        ("x86_64-linux", "aarch64-linux"),
    ] {
        assert_eq!(
            solves_of(&run, follower),
            [format!("{follower}: answers compared with {leader}'s")],
            "{:#?}",
            run.solves
        );
        assert!(
            solves_of(&run, leader)[0].contains("requirements from"),
            "{:#?}",
            run.solves
        );
    }
    assert_eq!(run.restarts, 2, "one restart per leader: {:#?}", run.solves);
}

#[test]
fn a_target_whose_wheels_differ_from_its_leaders_solves_on_its_own() {
    // `native 2.0` has a wheel for x86_64 Linux only: aarch64 Linux must stay at 1.0 and
    // x86_64 Linux take 2.0, whichever of them leads.
    let universe = universe(vec![
        ("app", vec![("1.0", release(&["native"]))]),
        (
            "native",
            vec![
                ("1.0", release(&[])),
                ("2.0", wheel_only(&["cp313-cp313-manylinux_2_17_x86_64"])),
            ],
        ),
    ]);
    for systems in [
        ["aarch64-linux", "x86_64-linux"],
        ["x86_64-linux", "aarch64-linux"],
    ] {
        let run = run(&universe, &["app"], &systems);
        assert_eq!(run.together, run.alone);
        assert_eq!(run.together["x86_64-linux"]["native"], "2.0");
        assert_eq!(run.together["aarch64-linux"]["native"], "1.0");
        let follower = solves_of(&run, systems[1]);
        assert!(
            follower.iter().any(|l| l.starts_with(&format!(
                "{}: solves on its own: its answer differs from {}'s on release #0 of native",
                systems[1], systems[0]
            ))),
            "{follower:#?}"
        );
    }
}

#[test]
fn a_target_whose_markers_differ_from_its_leaders_solves_on_its_own() {
    // `app 2.0` needs, on x86_64 only, a package with no release: x86_64 Linux must fall
    // back to `app 1.0`, which aarch64 Linux, leading, has no reason to.
    let universe = universe(vec![(
        "app",
        vec![
            ("1.0", release(&[])),
            ("2.0", release(&["missing; platform_machine == 'x86_64'"])),
        ],
    )]);
    let run = run(&universe, &["app"], &["aarch64-linux", "x86_64-linux"]);
    assert_eq!(run.together, run.alone);
    assert_eq!(run.together["aarch64-linux"]["app"], "2.0");
    assert_eq!(run.together["x86_64-linux"]["app"], "1.0");
    let follower = solves_of(&run, "x86_64-linux");
    assert!(
        follower.iter().any(|l| l
            == &"x86_64-linux: solves on its own: its answer differs from aarch64-linux's on \
                 the dependencies of app 2.0"),
        "{follower:#?}"
    );
}
