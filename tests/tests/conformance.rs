//! The packse scenario suite (see `bitpoll_tests::conformance`): every scenario runs and
//! passes, either as packse expects or with the per-target outcome written down for it; only
//! the scenarios excluded by name are not run.

use std::collections::BTreeSet;

use bitpoll_platform::DEFAULT_SYSTEMS;
use bitpoll_tests::conformance::{self, Outcome, Scenario, ScenarioResult};

fn scenarios() -> Vec<Scenario> {
    conformance::load_all(&conformance::scenarios_dir()).expect("packse scenarios load")
}

#[test]
fn every_scenario_passes_and_only_the_listed_ones_are_excluded() {
    let scenarios = scenarios();
    assert!(
        scenarios.len() >= 147,
        "expected the whole suite, found {} scenarios",
        scenarios.len()
    );
    for name in conformance::listed_scenarios() {
        assert!(
            scenarios.iter().any(|s| s.name == name),
            "`{name}` is listed but no scenario has that name"
        );
    }
    let results = conformance::run_all(&scenarios);
    println!("{}", conformance::report(&results));
    let failed = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
        .count();
    assert_eq!(failed, 0, "{failed} scenarios failed (table above)");
    let names = |pick: fn(&Outcome) -> bool| -> BTreeSet<&str> {
        results
            .iter()
            .filter(|r| pick(&r.outcome))
            .map(|r| r.name.as_str())
            .collect()
    };
    assert_eq!(
        names(|o| matches!(o, Outcome::NotApplicable(_))),
        conformance::EXCLUDED.iter().map(|(n, _)| *n).collect(),
        "exactly the scenarios excluded by name are not run"
    );
    assert_eq!(
        names(|o| matches!(o, Outcome::PassedPerTarget(_))),
        conformance::PER_TARGET.iter().map(|p| p.name).collect(),
        "every scenario with a per-target outcome is checked against it"
    );
}

#[test]
fn every_per_target_outcome_covers_each_default_system_once() {
    for p in conformance::PER_TARGET {
        let mut systems: Vec<&str> = p
            .outcomes
            .iter()
            .flat_map(|(systems, _)| systems.iter().copied())
            .collect();
        systems.sort();
        let mut want = DEFAULT_SYSTEMS.to_vec();
        want.sort();
        assert_eq!(systems, want, "{}", p.name);
    }
}

/// The explanation for an unsatisfiable scenario on its first target.
fn explanation(name: &str) -> String {
    let scenario = scenarios()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no scenario named {name}"));
    let ScenarioResult {
        outcome,
        explanations,
        ..
    } = conformance::run(&scenario);
    assert_eq!(outcome, Outcome::Passed, "{name}");
    explanations
        .into_iter()
        .next()
        .map(|(_, text)| text)
        .unwrap_or_else(|| panic!("{name}: no explanation"))
}

// The explanations below were read by a person: each names every package the conflict
// involves and why the versions that would have helped were skipped. Update them only after
// reading the new text the same way.

#[test]
fn explains_two_dependencies_that_disagree() {
    assert_eq!(
        explanation("transitive-incompatible-with-transitive"),
        "Because a depends on c ==1.0.0 and b ==1.0.0 (index) depends on c ==2.0.0, b ==1.0.0 (index), a cannot be used together.
And because the requirements need a and the requirements need b, the requirements cannot be satisfied."
    );
}

#[test]
fn explains_releases_skipped_for_requires_python() {
    assert_eq!(
        explanation("python-greater-than-current-many"),
        "Because no usable version of a matches ==1.0.0 and the requirements need a ==1.0.0, the requirements cannot be satisfied.

Notes:
  - a 2.5.0, 2.4.0, 2.3.0 and 3 older skipped on x86_64-linux: it requires Python >=3.10 (the target has 3.9.0)
  - a 3.5.0, 3.4.0, 3.3.0 and 3 older skipped on x86_64-linux: it requires Python >=3.11 (the target has 3.9.0)"
    );
}

#[test]
fn explains_a_dependency_that_was_yanked() {
    assert_eq!(
        explanation("transitive-package-only-yanked"),
        "Because a depends on b and the requirements need a, the requirements cannot be satisfied.

Notes:
  - b 1.0.0 skipped on x86_64-linux: it was yanked"
    );
}

#[test]
fn explains_a_dependency_that_does_not_exist() {
    assert_eq!(
        explanation("transitive-requires-package-does-not-exist"),
        "Because a depends on b and the requirements need a, the requirements cannot be satisfied.

Notes:
  - b was not found on the package index"
    );
}
