//! A test whose precondition is missing (a tool, an environment variable, a file) must not
//! be counted as a pass. libtest has no runtime skip: such a test returns early, cargo prints
//! `ok`, and whatever it printed is swallowed with the rest of a passing test's output. So a
//! test calls [`skip`] and returns; `skip` appends one line to the file named by
//! [`SKIPS_FILE_VAR`], and `cargo xtask test` reads that file to move the test from "passed"
//! to "skipped" and to list the reason.
//!
//! Under CI (`CI=true`) [`skip`] panics instead: CI installs every tool and sets every
//! variable these tests ask for, so a skip there means its setup broke. A test CI is not set
//! up to run at all (one that needs the network, say) is `#[ignore]`d instead, which cargo
//! reports as ignored everywhere.

use std::fmt::Display;
use std::io::Write;
use std::path::Path;

/// The environment variable naming the file skips are appended to.
pub const SKIPS_FILE_VAR: &str = "BITPOLL_TEST_SKIPS";

/// Every recorded line starts with this, so the records can also be picked out of a test's
/// printed output (`--nocapture`).
pub const MARKER: &str = "bitpoll-test-skip: ";

/// Records that the calling test did not run because of `reason`; the test returns right
/// after. The test is named after the thread libtest runs it on, prefixed with the test
/// binary's name. Panics under CI (see the crate documentation).
#[track_caller]
pub fn skip(reason: impl Display) {
    let file = std::env::var_os(SKIPS_FILE_VAR).filter(|p| !p.is_empty());
    record(
        &current_test(),
        &reason.to_string(),
        in_ci(),
        file.as_deref().map(Path::new),
    );
}

#[track_caller]
fn record(test: &str, reason: &str, ci: bool, file: Option<&Path>) {
    // One line per record, whatever the reason contains.
    let reason = reason.replace(['\r', '\n'], " ");
    if ci {
        panic!("{test} cannot run under CI, where it must: {reason}");
    }
    let line = format!("{MARKER}{test}: {reason}\n");
    eprint!("{line}");
    let Some(file) = file else {
        return;
    };
    // A single append of a short line: tests run in parallel threads and binaries, and
    // O_APPEND keeps each record whole.
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(err) = written {
        // Losing the record would turn the skip back into a silent pass.
        panic!(
            "{test} was skipped ({reason}) but cannot record that in {}: {err}",
            file.display()
        );
    }
}

/// Whether the tests run under CI: `CI` set to `true` or `1`, as CI services set it.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
        .unwrap_or(false)
}

/// `binary::test`: libtest runs every test on a thread named after it (its path inside the
/// test binary); the binary's file name carries a hash suffix, which is dropped.
fn current_test() -> String {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("unnamed test");
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| match stem.rsplit_once('-') {
            Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
            _ => stem,
        });
    match binary {
        Some(binary) => format!("{binary}::{test}"),
        None => test.to_string(),
    }
}

/// A parsed record: the test's full name and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// `binary::test`.
    pub test: String,
    pub reason: String,
}

impl Skip {
    /// The test's name as libtest prints it (`test NAME ... ok`): without the binary.
    pub fn libtest_name(&self) -> &str {
        self.test
            .split_once("::")
            .map_or(self.test.as_str(), |(_, name)| name)
    }
}

/// The records in `text` (a skips file, or test output), in order, each test once.
pub fn parse(text: &str) -> Vec<Skip> {
    let mut skips: Vec<Skip> = Vec::new();
    for line in text.lines() {
        let Some(record) = line.trim_start().strip_prefix(MARKER) else {
            continue;
        };
        let Some((test, reason)) = record.split_once(": ") else {
            continue;
        };
        if skips.iter().any(|s| s.test == test) {
            continue;
        }
        skips.push(Skip {
            test: test.to_string(),
            reason: reason.to_string(),
        });
    }
    skips
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_once_per_test() {
        let text = format!(
            "{MARKER}nix_eval::module: NIXPKGS_LIB is unset\n\
             unrelated output\n\
             {MARKER}index::flake: no `nix`: it is not installed\n\
             {MARKER}nix_eval::module: NIXPKGS_LIB is unset\n"
        );
        let skips = parse(&text);
        assert_eq!(
            skips,
            [
                Skip {
                    test: "nix_eval::module".into(),
                    reason: "NIXPKGS_LIB is unset".into()
                },
                Skip {
                    test: "index::flake".into(),
                    reason: "no `nix`: it is not installed".into()
                },
            ]
        );
        assert_eq!(skips[1].libtest_name(), "flake");
    }

    fn scratch_file(name: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("bitpoll-test-skip-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn skips_are_appended_to_the_file_and_read_back() {
        let file = scratch_file("append");
        record("a::one", "no evaluator", false, Some(&file));
        record("a::two", "two\nlines", false, Some(&file));
        let text = std::fs::read_to_string(&file).unwrap();
        let _ = std::fs::remove_file(&file);
        let skips = parse(&text);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert_eq!(skips.len(), 2, "{text}");
        assert_eq!(skips[0].test, "a::one");
        assert_eq!(skips[1].reason, "two lines");
    }

    #[test]
    fn under_ci_a_skip_fails_and_records_nothing() {
        let file = scratch_file("ci");
        let outcome =
            std::panic::catch_unwind(|| record("a::one", "no evaluator", true, Some(&file)));
        let message = outcome.expect_err("a skip under CI must fail the test");
        let message = message.downcast_ref::<String>().expect("a formatted panic");
        assert!(
            message.contains("cannot run under CI") && message.contains("no evaluator"),
            "{message}"
        );
        assert!(!file.exists(), "the skip was recorded as well");
    }

    #[test]
    fn an_unwritable_file_fails_the_test() {
        let dir = std::env::temp_dir()
            .join("bitpoll-test-skip-no-such-dir")
            .join("skips");
        let outcome =
            std::panic::catch_unwind(|| record("a::one", "no evaluator", false, Some(&dir)));
        assert!(
            outcome.is_err(),
            "a skip that cannot be recorded would pass silently"
        );
    }

    #[test]
    fn the_test_is_named_after_its_thread_and_binary() {
        let name = current_test();
        assert!(
            name.ends_with("::tests::the_test_is_named_after_its_thread_and_binary"),
            "{name}"
        );
        assert!(name.starts_with("bitpoll_test_skip::"), "{name}");
    }
}
