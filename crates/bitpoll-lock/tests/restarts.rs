//! When a solve starts over, and when it need not: a package that keeps losing conflicts is
//! decided earlier on a fresh start (and the timeline says so), while releases that the
//! requirements themselves rule out are passed by without a conflict, so they never cause
//! one. Against the loopback index.

mod common;

use common::{assert_ok, losing_walk, stderr, Project};

/// `framework` 3.0 and newer need `sqlkit>=2`; `plugin` 3.0 and newer need `framework>=3`.
/// With `sqlkit<2` required, every newer release of both is unusable, which sentry's
/// requirements do to `Django` (through `sqlparse`) and `django-crispy-forms`.
fn ruled_out_chain() -> String {
    let mut toml =
        String::from("[packages.sqlkit.versions.\"1.0\"]\n[packages.sqlkit.versions.\"2.0\"]\n");
    for v in 1..=8 {
        let (framework_needs, plugin_needs) = if v >= 3 {
            ("sqlkit>=2", "framework>=3")
        } else {
            ("sqlkit>=1", "framework>=1")
        };
        toml += &format!(
            "[packages.framework.versions.\"{v}.0\"]\nrequires = [\"{framework_needs}\"]\n\
             [packages.plugin.versions.\"{v}.0\"]\nrequires = [\"{plugin_needs}\"]\n"
        );
    }
    toml
}

/// A project locked for the four systems from the index alone, with a timeline.
fn locked(requirements: &str, packages: &str) -> Project {
    let p = Project::with_packages(requirements, packages);
    assert_ok(&p.update(&["--no-nixpkgs", "--timings", "timings.json"]));
    p
}

fn version(p: &Project, name: &str) -> String {
    p.entry(name)["version"].as_str().unwrap().to_string()
}

/// The labels of the run's timeline events of `category`, sorted.
fn labels(p: &Project, category: &str) -> Vec<String> {
    let timeline: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.path("timings.json")).unwrap()).unwrap();
    let mut labels: Vec<String> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["category"] == category)
        .map(|e| e["label"].as_str().unwrap().to_string())
        .collect();
    labels.sort();
    labels
}

fn restarts(p: &Project) -> Vec<String> {
    labels(p, "restart")
}

#[test]
fn releases_the_requirements_rule_out_cost_no_restart() {
    let p = locked("plugin\nframework\nsqlkit<2\n", &ruled_out_chain());
    assert_eq!(version(&p, "plugin"), "2.0");
    assert_eq!(version(&p, "framework"), "2.0");
    assert_eq!(version(&p, "sqlkit"), "1.0");
    // Deciding each newer `framework` and failing on `sqlkit` was a conflict each time:
    // `framework` was promoted and every target's solve started over.
    assert_eq!(restarts(&p), Vec::<String>::new());
}

#[test]
fn a_package_that_keeps_losing_is_decided_first_on_a_fresh_start() {
    let p = locked("base\ntool\n", &losing_walk(8));
    // Without the restart: base 2.0 and tool 1.0, the oldest tool there is.
    assert_eq!(version(&p, "tool"), "8.0");
    assert_eq!(version(&p, "base"), "1.0");
    // The x86_64 targets answer as the aarch64 ones of their system do, and take their
    // solves, restart included (see `replay` in the resolver).
    let want: Vec<String> = ["aarch64-darwin", "aarch64-linux"]
        .iter()
        .map(|system| format!("{system}: started over with tool first"))
        .collect();
    assert_eq!(restarts(&p), want);
    let solves = labels(&p, "solve");
    for (follower, leader) in [
        ("x86_64-darwin", "aarch64-darwin"),
        ("x86_64-linux", "aarch64-linux"),
    ] {
        let compared = format!("{follower}: answers compared with {leader}'s");
        assert!(solves.contains(&compared), "{solves:#?}");
        assert!(
            !solves
                .iter()
                .any(|l| l.starts_with(&format!("{follower} ("))),
            "{follower} solved on its own: {solves:#?}"
        );
    }
}

#[test]
fn a_failure_says_which_releases_the_requirements_ruled_out_and_why() {
    let p = Project::with_packages("framework>=3\nsqlkit<2\n", &ruled_out_chain());
    let out = p.update(&["--no-nixpkgs", "--system", "x86_64-linux"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(
            "framework 8.0, 7.0, 6.0 and 3 older skipped on x86_64-linux: it depends on \
             sqlkit >=2, and the requirements allow only <2"
        ),
        "{err}"
    );
}
