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

/// Runs the workspace tests, echoing their output, and closes with one total line: cargo
/// prints a result line per test binary, the last of which is often an empty doc-test run.
fn tests(args: &[String]) -> bool {
    use std::io::{BufRead, BufReader};
    eprintln!("==> cargo test --workspace");
    let mut child = Command::new("cargo")
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(args)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cargo runs");
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line.expect("utf-8 test output");
        println!("{line}");
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
                    "ignored" => ignored += n,
                    _ => {}
                }
            }
        }
    }
    let status = child.wait().expect("cargo finishes");
    println!("tests: {passed} passed, {failed} failed, {ignored} skipped");
    status.success() && failed == 0
}

pub fn run(args: &[String]) -> i32 {
    let mut ok = true;
    ok &= step(
        "cargo fmt --check",
        Command::new("cargo").args(["fmt", "--all", "--check"]),
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
    // A short, repeatable fuzz smoke (fixed seed and input count): it replays the committed
    // regression inputs and explores a little; real fuzzing runs are longer and by hand.
    let smoke = ["600", "--seed", "1", "--runs", "200000"].map(String::from);
    ok &= crate::fuzz::run(&smoke) == 0;
    // The tests run even when a lint failed, so one CI run reports everything.
    ok &= tests(args);
    if ok {
        0
    } else {
        1
    }
}
