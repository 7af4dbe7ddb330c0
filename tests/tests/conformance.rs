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
