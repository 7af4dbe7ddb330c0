//! The packse scenario suite (see `bitpoll_tests::conformance`): every applicable scenario
//! must pass, and at most [`MAX_NOT_APPLICABLE`] may be out of reach of a Nix lock.

use bitpoll_tests::conformance::{self, Outcome, Scenario, ScenarioResult};

const MAX_NOT_APPLICABLE: usize = 15;

fn scenarios() -> Vec<Scenario> {
    conformance::load_all(&conformance::scenarios_dir()).expect("packse scenarios load")
}

#[test]
fn every_applicable_scenario_passes() {
    let scenarios = scenarios();
    assert!(
        scenarios.len() >= 147,
        "expected the whole suite, found {} scenarios",
        scenarios.len()
    );
    for name in conformance::listed_outside_our_targets() {
        assert!(
            scenarios.iter().any(|s| s.name == name),
            "`{name}` is listed as not applicable but no scenario has that name"
        );
    }
    let results = conformance::run_all(&scenarios);
    println!("{}", conformance::report(&results));
    let failed = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
        .count();
    let not_applicable = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::NotApplicable(_)))
        .count();
    assert_eq!(
        failed, 0,
        "{failed} applicable scenarios failed (table above)"
    );
    assert!(
        not_applicable <= MAX_NOT_APPLICABLE,
        "{not_applicable} scenarios are not applicable; at most {MAX_NOT_APPLICABLE} may be"
    );
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
