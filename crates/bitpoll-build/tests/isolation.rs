//! Finding out whether hooks can be kept off the network starts processes (`unshare`, a few
//! milliseconds); a builder left to find out does so when its first hook runs, so a run whose
//! every answer is cached, as an offline re-lock's are, starts none. Needs a `python3`.

use std::time::Duration;

mod common;

use bitpoll_build::{Builder, Isolation};
use common::{python, LocalBackendSdist};

const BACKEND: &str = r#"
def get_requires_for_build_wheel(config_settings=None):
    return ["wheel"]
"#;

#[test]
fn isolation_is_worked_out_when_the_first_hook_runs_and_not_for_a_cached_answer() {
    let Some(interpreter) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sdist = LocalBackendSdist::write(dir.path(), "quiet-1.0.tar.gz", BACKEND);
    let cache = dir.path().join("cache");
    let builder = || {
        Builder::new(
            interpreter.clone(),
            Some(cache.clone()),
            Duration::from_secs(120),
            None,
        )
    };
    let ask = |b: &Builder| b.requires_for_build_wheel(&sdist.sdist(), &[], &|| Ok(()));

    let first = builder();
    assert_eq!(
        first.isolation_if_known(),
        None,
        "worked out before any hook ran"
    );
    assert_eq!(ask(&first).unwrap(), ["wheel"]);
    assert_eq!(
        first.isolation_if_known(),
        Some(&Isolation::detect()),
        "the hook ran without finding out how to isolate it"
    );

    // A new run on the same cache: the answer is there, and no hook runs.
    let second = builder();
    assert_eq!(ask(&second).unwrap(), ["wheel"]);
    assert_eq!(
        second.isolation_if_known(),
        None,
        "a cached answer started processes to find out"
    );
}
