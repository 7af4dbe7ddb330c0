//! `cargo xtask fuzz [SECONDS] [--seed N] [--runs N] [--scratch-corpus]`: every fuzz target
//! in `fuzz/` for SECONDS each (default 60), or for N inputs. Each run starts from the
//! target's working corpus (`fuzz/corpus/`, not committed, growing with every run) and
//! replays `fuzz/regressions/`, the committed inputs that once crashed. With
//! `--scratch-corpus` the working corpus is a new, empty directory instead, so the run starts
//! from committed inputs only, the same on any checkout.
//! CI runs it as a short smoke that way; longer runs are done by hand.
//!
//! cargo-fuzz's instrumentation flags are unstable; `RUSTC_BOOTSTRAP=1` lets the one stable
//! toolchain these machines have accept them. No sanitizer is used (ours is safe Rust; the
//! point is panics, hangs and runaway memory), which keeps the build on stable.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const TARGETS: [&str; 5] = [
    "requirements",
    "lock",
    "nixpkgs_index",
    "simple_page",
    "metadata",
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .join("fuzz")
}

pub fn run(args: &[String]) -> i32 {
    let seconds: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(60);
    let flag = |name: &str, libfuzzer: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|n| format!("-{libfuzzer}={n}"))
    };
    // A seed and a count of inputs (not a time) give a run the same length on any machine.
    // Not the same inputs throughout: coverage for one input can differ between runs (hash
    // maps seeded at random are the likely cause), and it steers libFuzzer's choices.
    let seed = flag("--seed", "seed");
    let runs = flag("--runs", "runs");
    let scratch = args.iter().any(|a| a == "--scratch-corpus");
    let mut ok = true;
    for target in TARGETS {
        eprintln!(
            "==> fuzz {target} (at most {seconds}s{})",
            runs.as_deref()
                .map(|r| format!(", {r}"))
                .unwrap_or_default()
        );
        let corpus = if scratch {
            // libFuzzer writes what it finds into the first corpus directory; emptied
            // here so nothing from an earlier run is read back.
            let dir = fuzz_dir()
                .join("target")
                .join("scratch-corpus")
                .join(target);
            let _ = std::fs::remove_dir_all(&dir);
            dir
        } else {
            fuzz_dir().join("corpus").join(target)
        };
        if let Err(e) = std::fs::create_dir_all(&corpus) {
            eprintln!("FAILED: cannot create {}: {e}", corpus.display());
            return 1;
        }
        let regressions = fuzz_dir().join("regressions").join(target);
        let status = Command::new("cargo")
            .args(["fuzz", "run", "--sanitizer", "none", "-O", target])
            .arg(&corpus)
            .args(regressions.is_dir().then_some(&regressions))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .args([
                "-max_len=65536",
                "-rss_limit_mb=2048",
                "-print_final_stats=1",
            ])
            .args(seed.iter())
            .args(runs.iter())
            .env("RUSTC_BOOTSTRAP", "1")
            .current_dir(fuzz_dir())
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                eprintln!("FAILED: fuzz {target} ({s}); the input is in fuzz/artifacts/{target}/");
                ok = false;
            }
            Err(e) => {
                eprintln!("FAILED: cannot run cargo fuzz ({e}); install it with `cargo install cargo-fuzz`");
                return 1;
            }
        }
    }
    if ok {
        0
    } else {
        1
    }
}
