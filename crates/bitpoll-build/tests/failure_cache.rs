//! A hook that fails is remembered in the build cache, so a later run with the same cache
//! gives the same error without unpacking or running anything; what may not recur is asked
//! again. The backend here is a module inside the sdist (`backend-path`), so no wheels are
//! needed; it appends a line to a counter file each time it runs and behaves as told for
//! that run. Needs a `python3` on PATH, as every build does.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

mod common;

use bitpoll_build::{BuildError, Builder, Interpreter, Isolation};
use common::{python, LocalBackendSdist};

/// A scratch directory with a cache, a counter file, a watched directory standing for the
/// hook's `PATH` and an sdist whose backend behaves per run as `behaviours` says (the last
/// one for every later run): `fail`, `hang`, `kill` (a signal ends it), `oom` (runs out of
/// memory).
struct Case {
    dir: tempfile::TempDir,
    sdist: LocalBackendSdist,
}

const FILENAME: &str = "failpkg-1.0.tar.gz";

impl Case {
    fn new(behaviours: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("bin")).unwrap();
        let counter = dir.path().join("runs");
        let backend = format!(
            r#"import os, sys, time

BEHAVIOURS = {behaviours:?}


def get_requires_for_build_wheel(config_settings=None):
    with open({counter:?}, "a") as f:
        f.write("ran\n")
    with open({counter:?}) as f:
        run = len(f.readlines()) - 1
    behaviour = BEHAVIOURS[min(run, len(BEHAVIOURS) - 1)]
    print("failpkg: looking for mysql_config")
    if behaviour == "hang":
        time.sleep(60)
    if behaviour == "kill":
        sys.stdout.flush()
        os.kill(os.getpid(), 9)
    if behaviour == "oom":
        raise MemoryError()
    raise SystemExit("failpkg: mysql_config not found")


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    get_requires_for_build_wheel()
"#,
            counter = counter.display().to_string(),
        );
        let sdist = LocalBackendSdist::write(dir.path(), FILENAME, &backend);
        Self { dir, sdist }
    }

    fn watched(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// A builder as a new run makes it, on the case's cache, watching the case's `bin`.
    fn builder(&self, interpreter: &Interpreter, timeout: Duration) -> Builder {
        Builder::new(
            interpreter.clone(),
            Some(self.dir.path().join("cache")),
            timeout,
            Some(Isolation::detect()),
        )
        .with_machine_paths(vec![self.watched()])
    }

    /// `requires_for_build_wheel`, the question the resolver asks of every sdist.
    fn ask(&self, builder: &Builder) -> BuildError {
        self.ask_with(builder, Question::Requires)
    }

    fn ask_with(&self, builder: &Builder, question: Question) -> BuildError {
        let sdist = self.sdist.sdist();
        let fetch = || Ok(());
        match question {
            Question::Requires => builder
                .requires_for_build_wheel(&sdist, &[], &fetch)
                .map(drop),
            Question::Metadata => builder.metadata(&sdist, &[], &fetch).map(drop),
            Question::Both => builder.requires_and_metadata(&sdist, &[], &fetch).map(drop),
        }
        .expect_err("the backend fails")
    }

    fn runs(&self) -> usize {
        fs::read_to_string(self.dir.path().join("runs"))
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }
}

#[derive(Clone, Copy, Debug)]
enum Question {
    Requires,
    Metadata,
    Both,
}

const LONG: Duration = Duration::from_secs(120);

#[test]
fn a_failing_hook_runs_once_and_its_error_comes_back_unchanged() {
    let Some(python) = python() else { return };
    let case = Case::new(&["fail"]);
    let first = case.ask(&case.builder(&python, LONG));
    assert!(matches!(first, BuildError::HookFailed { .. }), "{first}");
    assert!(
        first
            .to_string()
            .contains("failpkg: mysql_config not found"),
        "{first}"
    );
    assert_eq!(case.runs(), 1);

    // The next run needs neither the sdist nor Python: it has no download to make.
    fs::remove_file(&case.sdist.path).unwrap();
    let second = case.ask(&case.builder(&python, LONG));
    assert_eq!(case.runs(), 1, "the hook ran again");
    assert!(matches!(second, BuildError::HookFailed { .. }), "{second}");
    assert_eq!(second.to_string(), first.to_string());
}

#[test]
fn every_question_remembers_its_failure_under_its_own_hook() {
    let Some(python) = python() else { return };
    for (question, hook) in [
        (Question::Metadata, "`prepare_metadata_for_build_wheel`"),
        (
            Question::Both,
            "`get_requires_for_build_wheel, then prepare_metadata_for_build_wheel`",
        ),
    ] {
        let case = Case::new(&["fail"]);
        let first = case.ask_with(&case.builder(&python, LONG), question);
        assert!(first.to_string().contains(hook), "{first}");
        let second = case.ask_with(&case.builder(&python, LONG), question);
        assert_eq!(case.runs(), 1, "{question:?}: the hook ran again");
        assert_eq!(second.to_string(), first.to_string());
    }
}

#[test]
fn a_change_on_the_machine_or_the_failure_lifetime_asks_again() {
    let Some(python) = python() else { return };
    let case = Case::new(&["fail"]);
    case.ask(&case.builder(&python, LONG));
    case.ask(&case.builder(&python, LONG));
    assert_eq!(case.runs(), 1, "the failure was not remembered");

    // A package installed a tool into a directory on the hook's PATH. A directory's
    // modification time has the clock's resolution, which may be coarse.
    std::thread::sleep(Duration::from_millis(50));
    fs::File::create(case.watched().join("mysql_config"))
        .unwrap()
        .write_all(b"#!/bin/sh\n")
        .unwrap();
    case.ask(&case.builder(&python, LONG));
    assert_eq!(case.runs(), 2, "a change on the machine did not ask again");
    case.ask(&case.builder(&python, LONG));
    assert_eq!(case.runs(), 2, "the new failure was not remembered");

    // Older than its lifetime.
    let expired = case
        .builder(&python, LONG)
        .with_failure_lifetime(Duration::ZERO);
    case.ask(&expired);
    assert_eq!(case.runs(), 3, "an expired failure was not asked again");
}

/// What ended a hook that may not end it again: it is asked again, and its later failure
/// is remembered.
fn not_remembered(behaviour: &str, timeout: Duration, is_first: fn(&BuildError) -> bool) {
    let Some(python) = python() else { return };
    let case = Case::new(&[behaviour, "fail"]);
    let first = case.ask(&case.builder(&python, timeout));
    assert!(is_first(&first), "{first}");
    assert_eq!(case.runs(), 1);

    let second = case.ask(&case.builder(&python, timeout));
    assert_eq!(
        case.runs(),
        2,
        "a {behaviour} hook was remembered: {second}"
    );
    assert!(
        second
            .to_string()
            .contains("failpkg: mysql_config not found"),
        "{second}"
    );
    let third = case.ask(&case.builder(&python, timeout));
    assert_eq!(case.runs(), 2, "the hook's failure was not remembered");
    assert_eq!(third.to_string(), second.to_string());
}

#[test]
fn a_timed_out_hook_is_not_remembered() {
    not_remembered("hang", Duration::from_secs(2), |e| {
        matches!(e, BuildError::Timeout { .. })
    });
}

#[test]
fn a_hook_killed_by_a_signal_is_not_remembered() {
    not_remembered(
        "kill",
        LONG,
        |e| matches!(e, BuildError::HookFailed { status, .. } if status.contains("signal")),
    );
}

#[test]
fn a_hook_that_ran_out_of_memory_is_not_remembered() {
    not_remembered(
        "oom",
        LONG,
        |e| matches!(e, BuildError::HookFailed { tail, .. } if tail.contains("MemoryError")),
    );
}
