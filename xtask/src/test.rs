//! `cargo xtask test`: everything CI checks, in one command. Formatting and linting first
//! (cheap, and their failures are the easiest to read), then the whole test suite.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn step(name: &str, cmd: &mut Command) -> bool {
    eprintln!("==> {name}");
    match cmd.current_dir(root()).status() {
        Ok(s) if s.success() => true,
        Ok(s) => {
            eprintln!("FAILED: {name} ({s})");
            false
        }
        Err(e) => {
            eprintln!("FAILED: {name}: cannot run {:?}: {e}", cmd.get_program());
            false
        }
    }
}

fn nix_files() -> Vec<String> {
    let out = Command::new("git")
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "*.nix",
        ])
        .current_dir(root())
        .output()
        .expect("git is needed to list the Nix files");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|f| root().join(f).exists())
        .collect()
}

/// Where the tests record their skips ([`bitpoll_test_skip`]): emptied before each run.
fn skips_file() -> PathBuf {
    root().join("target").join("xtask").join("test-skips")
}

/// `NIXPKGS_LIB` for the Nix module and flake tests: the caller's, else nixpkgs' `lib`
/// beside the checkout when it is there. Set but empty means none, on purpose: those
/// tests are then skipped (a failure under CI).
fn nixpkgs_lib() -> Option<PathBuf> {
    if let Some(lib) = std::env::var_os("NIXPKGS_LIB") {
        return (!lib.is_empty()).then(|| PathBuf::from(lib));
    }
    // The evaluator resolves relative paths against the file being evaluated, not the
    // working directory, so the tests get an absolute one.
    bitpoll_tests::shared_dir()
        .join("nixpkgs-lib")
        .join("lib")
        .canonicalize()
        .ok()
}

/// One test as libtest reports it: `test NAME ... ok`, `... FAILED`, `... ignored[, REASON]`.
fn test_line(line: &str) -> Option<(&str, &str)> {
    line.strip_prefix("test ")?.split_once(" ... ")
}

/// Runs the workspace tests, echoing their output, and closes with one total line: cargo
/// prints a result line per test binary, the last of which is often an empty doc-test run.
/// A test that recorded a skip and then passed counts as skipped, not passed.
fn tests(args: &[String]) -> bool {
    use std::collections::HashSet;
    use std::io::{BufRead, BufReader};
    let skips_file = skips_file();
    if let Some(dir) = skips_file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(&skips_file, "") {
        eprintln!("FAILED: cannot prepare {}: {e}", skips_file.display());
        return false;
    }
    let mut cmd = Command::new("cargo");
    cmd.args(["test", "--workspace", "--no-fail-fast"])
        .args(args)
        .env(bitpoll_test_skip::SKIPS_FILE_VAR, &skips_file)
        .current_dir(root())
        .stdout(std::process::Stdio::piped());
    match nixpkgs_lib() {
        Some(lib) => {
            eprintln!("==> NIXPKGS_LIB={}", lib.display());
            cmd.env("NIXPKGS_LIB", lib);
        }
        None => {
            eprintln!("==> no NIXPKGS_LIB: the Nix module and flake tests will be skipped");
            cmd.env_remove("NIXPKGS_LIB");
        }
    }
    eprintln!("==> cargo test --workspace");
    let mut child = cmd.spawn().expect("cargo runs");
    let (mut passed, mut failed) = (0u64, 0u64);
    let mut ok_tests: HashSet<String> = HashSet::new();
    let mut ignored: Vec<(String, String)> = Vec::new();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line.expect("utf-8 test output");
        println!("{line}");
        if let Some((name, outcome)) = test_line(&line) {
            if outcome == "ok" {
                ok_tests.insert(name.to_string());
            } else if let Some(rest) = outcome.strip_prefix("ignored") {
                let reason = rest.trim_start_matches(',').trim();
                ignored.push((name.to_string(), reason.to_string()));
            }
        }
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(';') {
                let mut words = part.split_whitespace().rev();
                let (Some(what), Some(n)) = (words.next(), words.next()) else {
                    continue;
                };
                let n: u64 = n.parse().unwrap_or(0);
                match what {
                    "passed" => passed += n,
                    "failed" => failed += n,
                    _ => {}
                }
            }
        }
    }
    let status = child.wait().expect("cargo finishes");

    let recorded = std::fs::read_to_string(&skips_file).unwrap_or_default();
    // A record of a test that then failed is that failure's business, not a skip.
    let skipped: Vec<_> = bitpoll_test_skip::parse(&recorded)
        .into_iter()
        .filter(|s| ok_tests.contains(s.libtest_name()))
        .collect();
    let skipped_count = skipped.len() as u64;
    for s in &skipped {
        println!("skipped: {}: {}", s.test, s.reason);
    }
    for (name, reason) in &ignored {
        let reason = if reason.is_empty() {
            "#[ignore]"
        } else {
            reason
        };
        println!("skipped (ignored): {name}: {reason}");
    }
    println!(
        "tests: {} passed, {failed} failed, {} skipped",
        passed.saturating_sub(skipped_count),
        skipped_count + ignored.len() as u64
    );
    // The tests panic instead of skipping under CI; a record here means one did not.
    let ci_skip = bitpoll_test_skip::in_ci() && !skipped.is_empty();
    if ci_skip {
        eprintln!("FAILED: tests were skipped under CI, where everything they need is installed");
    }
    status.success() && failed == 0 && !ci_skip
}

pub fn run(args: &[String]) -> i32 {
    let mut ok = true;
    ok &= step(
        "cargo fmt --check",
        Command::new("cargo").args(["fmt", "--all", "--check"]),
    );
    // Warnings are errors here, not in ordinary builds: a lint must not stop someone trying
    // something, but nothing lands with one.
    ok &= step(
        "cargo clippy",
        Command::new("cargo").args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ]),
    );
    let nix = nix_files();
    ok &= step(
        "nixfmt --check",
        Command::new("nixfmt").arg("--check").args(&nix),
    );
    ok &= step(
        "deadnix --fail",
        Command::new("deadnix").arg("--fail").args(&nix),
    );
    // A short fuzz smoke: a fixed seed and input count, starting from the committed
    // regression inputs only (a scratch corpus, not the growing fuzz/corpus/), so no earlier
    // run on this machine changes what it starts from. Real fuzzing runs are longer and by hand.
    let smoke = ["600", "--seed", "1", "--runs", "200000", "--scratch-corpus"].map(String::from);
    ok &= crate::fuzz::run(&smoke) == 0;
    // The tests run even when a lint failed, so one CI run reports everything.
    ok &= tests(args);
    if ok {
        0
    } else {
        1
    }
}
