//! A large module without bytecode is compiled by an interpreter of its own, so that the
//! memory compiling takes is not added to what the hook's backend holds; the hook imports
//! it as usual and its bytecode serves later hooks. Needs a `python3` on PATH.

mod common;

use std::path::Path;

use bitpoll_build::{Builder, Wheel};
use common::{builder, names, python, wheel, LocalBackendSdist};

/// A wheel with `bigmod`, whose source is well over the size compiled apart (256 KiB):
/// `bigmod.answer()` is the sum of its table.
fn big_module_wheel(dir: &Path) -> (Wheel, u64) {
    let values: Vec<u64> = (0..40_000).map(|i| i * 7 % 1_000).collect();
    let table: String = values.iter().map(|v| format!("    {v},\n")).collect();
    let source = format!("VALUES = [\n{table}]\n\n\ndef answer():\n    return sum(VALUES)\n");
    assert!(source.len() > 256 * 1024, "{} bytes", source.len());
    let wheel = wheel(
        dir,
        "bigmod-1.0-py3-none-any.whl",
        &[
            ("bigmod.py", source.as_bytes()),
            (
                "bigmod-1.0.dist-info/METADATA",
                b"Metadata-Version: 2.1\nName: bigmod\nVersion: 1.0\n",
            ),
            ("bigmod-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\n"),
            ("bigmod-1.0.dist-info/RECORD", b""),
        ],
    );
    (wheel, values.iter().sum())
}

/// A backend that imports `bigmod` after running `before` and answers with what it found:
/// `answer-N` (bigmod's answer), `apart-N` (interpreters started to compile `bigmod.py`,
/// as Python's audit events report them).
fn backend(before: &str) -> String {
    format!(
        r#"import sys

started = []


def audit(event, args):
    if event == "subprocess.Popen" and str(list(args[1])[-1]).endswith("bigmod.py"):
        started.append(args)


sys.addaudithook(audit)
{before}
import bigmod


def get_requires_for_build_wheel(config_settings=None):
    return ["answer-%d" % bigmod.answer(), "apart-%d" % len(started)]
"#
    )
}

/// Asks the backend of a new sdist, `filename` with `backend` as its source, with `wheel`
/// as its environment.
fn ask(
    builder: &Builder,
    dir: &Path,
    filename: &'static str,
    backend: &str,
    wheel: &Wheel,
) -> Vec<String> {
    let sdist = LocalBackendSdist::write(dir, filename, backend);
    builder
        .requires_for_build_wheel(&sdist.sdist(), std::slice::from_ref(wheel), &|| Ok(()))
        .unwrap()
}

#[test]
fn a_large_module_is_compiled_apart_once_and_its_bytecode_serves_later_hooks() {
    if python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (wheel, sum) = big_module_wheel(dir.path());
    let cache = dir.path().join("cache");
    let builder = builder(cache.clone());
    let answer = format!("answer-{sum}");
    assert_eq!(
        ask(
            &builder,
            dir.path(),
            "firstpkg-1.0.tar.gz",
            &backend(""),
            &wheel
        ),
        [answer.as_str(), "apart-1"]
    );
    let shared = cache.join("build-wheels-v1").join(&wheel.sha256);
    let cached = names(&shared.join("__pycache__"));
    assert!(
        cached
            .iter()
            .any(|n| n.starts_with("bigmod.") && n.ends_with(".pyc")),
        "{cached:?}"
    );
    // The next hook reads that bytecode: nothing is compiled, here or apart.
    assert_eq!(
        ask(
            &builder,
            dir.path(),
            "secondpkg-1.0.tar.gz",
            &backend(""),
            &wheel
        ),
        [answer.as_str(), "apart-0"]
    );
}

#[test]
fn a_large_module_that_cannot_be_compiled_apart_is_compiled_in_the_hook() {
    if python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (wheel, sum) = big_module_wheel(dir.path());
    // No interpreter to start: the separate compile fails, and the hook's own takes over.
    let backend = backend(r#"sys.executable = "/nonexistent/python3""#);
    let builder = builder(dir.path().join("cache"));
    assert_eq!(
        ask(
            &builder,
            dir.path(),
            "fallbackpkg-1.0.tar.gz",
            &backend,
            &wheel
        ),
        [format!("answer-{sum}"), "apart-1".to_string()]
    );
}
