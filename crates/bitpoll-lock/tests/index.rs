//! `bitpoll-lock index` with the real evaluator on tests/fixtures/mini-nixpkgs, then
//! `update` against the index it wrote. The evaluator comes from Debian's `nix-bin`, which
//! CI installs; as in tests/tests/nix_eval.rs a missing evaluator fails these tests unless
//! BITPOLL_SKIP_NIX=1 asks to skip them, and such a skip is recorded as one
//! ([`bitpoll_tests::skip`]; under CI it fails).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bitpoll_tests::skip;
use common::{assert_ok, fixture, stderr, Project};
use serde_json::json;

fn nix_enabled() -> bool {
    if std::env::var("BITPOLL_SKIP_NIX").as_deref() == Ok("1") {
        skip("BITPOLL_SKIP_NIX=1");
        return false;
    }
    match Command::new("nix-instantiate").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        _ => panic!(
            "nix-instantiate is not available: install it with `apt-get install -y nix-bin`, \
             or set BITPOLL_SKIP_NIX=1 to skip the tests that need it"
        ),
    }
}

fn mini_nixpkgs() -> PathBuf {
    fixture("mini-nixpkgs")
}

fn bin(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitpoll-lock"));
    cmd.current_dir(dir).env_remove("BITPOLL_LOCK_INDEX_URL");
    cmd
}

fn index(dir: &Path, args: &[&str]) -> Output {
    bin(dir).arg("index").args(args).output().unwrap()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn package(
    pypi: &str,
    version: &str,
    deps: &[&str],
    optional: serde_json::Value,
    broken: bool,
    disabled: bool,
) -> serde_json::Value {
    json!({
        "pypi_name": pypi,
        "version": version,
        "dependencies": deps,
        "optional_dependencies": optional,
        "broken": broken,
        "disabled": disabled,
    })
}

#[test]
fn index_of_the_mini_nixpkgs_field_by_field_then_update_resolves_against_it() {
    if !nix_enabled() {
        return;
    }
    let p = Project::new("webapp\nsystemd-python\nmodern\n");
    let nixpkgs = mini_nixpkgs();
    let out = index(
        p.dir.path(),
        &[
            "--nixpkgs",
            nixpkgs.to_str().unwrap(),
            "-o",
            "lock/nixpkgs-index.json",
        ],
    );
    assert_ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("1 attribute failed to evaluate and is not in the index: exploding")
            && err
                .contains("1 attribute throws when read (removed packages and aliases): oldhelper"),
        "{err}"
    );

    let idx = read_json(&p.path("lock/nixpkgs-index.json"));
    assert_eq!(idx["schema"], 1);
    // No git revision in the fixture: the identity is a hash of what was evaluated.
    let identity = idx["nixpkgs"]["identity"].as_str().unwrap();
    assert!(
        identity.starts_with("sha256:") && identity.len() == 7 + 64,
        "{identity}"
    );
    assert_eq!(idx["nixpkgs"]["revision"], serde_json::Value::Null);
    assert!(idx["nixpkgs"]["source"]
        .as_str()
        .unwrap()
        .contains("mini-nixpkgs"));
    // `python3` is recorded as the interpreter it stands for.
    assert_eq!(
        idx["python"],
        json!({"attr": "python313", "version": "3.13.5"})
    );
    // One alias defined next to the packages, one from the aliases file; the alias that
    // throws is gone.
    assert_eq!(
        idx["aliases"],
        json!({"Helper_2": "helper", "tz-shim": "tzshim"})
    );
    let packages = idx["packages"].as_object().unwrap();
    assert_eq!(
        packages.keys().collect::<Vec<_>>(),
        ["helper", "legacy", "modern", "systemd", "tzshim", "webapp"],
        "non-derivations, the interpreter and the package that fails to evaluate are skipped"
    );
    let none = json!({});
    assert_eq!(
        packages["helper"],
        package("helper", "2.0", &[], none.clone(), false, false)
    );
    assert_eq!(
        packages["webapp"],
        package(
            "webapp",
            "2.0",
            &["helper"],
            json!({"tz": ["tzshim"]}),
            false,
            false
        ),
        "`dependencies`, without the interpreter, and the optional group"
    );
    assert_eq!(
        packages["systemd"],
        package(
            "systemd-python",
            "235",
            &["helper"],
            none.clone(),
            false,
            false
        ),
        "the PyPI name differs from pname; propagatedBuildInputs are dependencies too"
    );
    assert_eq!(
        packages["modern"],
        package("modern", "0.9", &[], none.clone(), true, false)
    );
    assert_eq!(
        packages["legacy"],
        package("legacy", "1.0", &[], none.clone(), false, true),
        "disabled for Python 3.13"
    );
    assert_eq!(
        packages["tzshim"],
        package("tzshim", "1.0", &[], none, false, false)
    );

    // A second run writes the same bytes.
    let first = std::fs::read(p.path("lock/nixpkgs-index.json")).unwrap();
    assert_ok(&index(
        p.dir.path(),
        &[
            "-q",
            "--nixpkgs",
            nixpkgs.to_str().unwrap(),
            "-o",
            "again.json",
        ],
    ));
    assert_eq!(first, std::fs::read(p.path("again.json")).unwrap());

    assert_ok(&p.update(&[]));
    let source = |name: &str| {
        let e = p.entry(name);
        (
            e["version"].as_str().unwrap().to_string(),
            e["source"].as_str().unwrap().to_string(),
            e["attr"].as_str().map(str::to_string),
        )
    };
    assert_eq!(
        source("webapp"),
        ("2.0".into(), "nixpkgs".into(), Some("webapp".into()))
    );
    assert_eq!(
        source("helper"),
        ("2.0".into(), "nixpkgs".into(), Some("helper".into()))
    );
    // Found under its PyPI name although nixpkgs calls it `systemd`; the index's 236 is
    // newer, but nixpkgs satisfies the requirement.
    assert_eq!(
        source("systemd-python"),
        ("235".into(), "nixpkgs".into(), Some("systemd".into()))
    );
    // nixpkgs' modern is broken, so the index serves it (2.0 needs Python 3.14).
    assert_eq!(source("modern"), ("1.0".into(), "index".into(), None));
    assert_eq!(p.lock()["nixpkgs"]["identity"], identity);
}

#[test]
fn the_revision_comes_from_git_revision() {
    if !nix_enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A nixpkgs tarball carries its revision in .git-revision.
    let copy = dir.path().join("nixpkgs");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(mini_nixpkgs()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    let rev = "89abcdef0123456789abcdef0123456789abcdef";
    std::fs::write(copy.join(".git-revision"), format!("{rev}\n")).unwrap();
    assert_ok(&index(
        dir.path(),
        &["-q", "--nixpkgs", "nixpkgs", "-o", "tarball.json"],
    ));
    let idx = read_json(&dir.path().join("tarball.json"));
    assert_eq!(idx["nixpkgs"]["identity"], rev);
    assert_eq!(idx["nixpkgs"]["revision"], rev);
}

#[test]
fn without_nixpkgs_the_flake_locked_input_is_indexed_under_its_revision() {
    if !nix_enabled() {
        return;
    }
    // Reading flake.lock's input takes the `nix` command, not only the evaluator.
    if Command::new("nix").arg("--version").output().is_err() {
        skip("no `nix` command (Debian's nix-bin has it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let locked_rev = "0123456789abcdef0123456789abcdef01234567";
    let flake_lock = json!({
        "nodes": {
            "nixpkgs": {
                "locked": {"type": "path", "path": mini_nixpkgs(), "rev": locked_rev},
                "original": {"type": "path", "path": mini_nixpkgs()},
            },
            "root": {"inputs": {"nixpkgs": "nixpkgs"}},
        },
        "root": "root",
        "version": 7,
    });
    std::fs::write(dir.path().join("flake.lock"), flake_lock.to_string()).unwrap();
    let out = index(dir.path(), &["-q", "-o", "flake.json"]);
    assert_ok(&out);
    let idx = read_json(&dir.path().join("flake.json"));
    assert_eq!(idx["nixpkgs"]["identity"], locked_rev);
    assert_eq!(idx["nixpkgs"]["revision"], locked_rev);
    assert_eq!(idx["packages"]["webapp"]["version"], "2.0");
}

#[test]
fn update_warns_when_the_flake_pins_another_nixpkgs() {
    // No evaluator needed: the committed fixture index is enough.
    let p = Project::new("webapp\n");
    let flake_lock = json!({
        "nodes": {
            "nixpkgs": {"locked": {"type": "github", "owner": "o", "repo": "r", "rev": "ffff"}},
            "root": {"inputs": {"nixpkgs": "nixpkgs"}},
        },
        "root": "root",
        "version": 7,
    });
    p.write("flake.lock", &flake_lock.to_string());
    let url = p.server.index_url();
    let out = bin(p.dir.path())
        .args(["update", "-r", "requirements.in", "--index-url", &url])
        .env("BITPOLL_LOCK_CACHE_DIR", p.cache.path())
        .output()
        .unwrap();
    assert_ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("warning: flake.lock pins nixpkgs ffff")
            && err.contains("0000000000000000000000000000000000000001")
            && err.contains("bitpoll-lock index"),
        "{err}"
    );
}

#[test]
fn without_nix_the_error_says_what_to_install() {
    let empty = tempfile::tempdir().unwrap();
    let out = bin(empty.path())
        .args(["index", "--nixpkgs"])
        .arg(mini_nixpkgs())
        .args(["-o", "idx.json"])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("nix-instantiate") && err.contains("apt-get install nix-bin"),
        "{err}"
    );
    assert!(!empty.path().join("idx.json").exists());

    // Without --nixpkgs and without flake.lock: what to do instead.
    let out = bin(empty.path())
        .args(["index"])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("flake.lock not found") && err.contains("nix flake lock"),
        "{err}"
    );
}

/// The expression's cost per package: the fixture with generated packages, timed with the
/// evaluator alone. `cargo test -p bitpoll-lock --test index -- --ignored --nocapture`;
/// docs/nixpkgs-index.md has the numbers.
#[test]
#[ignore = "a benchmark for docs/nixpkgs-index.md"]
fn benchmark_cost_per_package() {
    if !nix_enabled() {
        return;
    }
    let expr = bitpoll_tests::workspace_root().join("nix/nixpkgs-index.nix");
    let run = |synthetic: usize, instantiate: bool| {
        let pkgs = format!(
            "import {} {{ synthetic = {synthetic}; }}",
            mini_nixpkgs().display()
        );
        let mut best = f64::MAX;
        for _ in 0..3 {
            let started = std::time::Instant::now();
            let out = Command::new("nix-instantiate")
                .args(["--eval", "--strict", "--json"])
                .arg(&expr)
                .args(["--arg", "pkgs", &pkgs])
                .args(["--arg", "checkInstantiable", &instantiate.to_string()])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            best = best.min(started.elapsed().as_secs_f64());
        }
        best
    };
    for instantiate in [true, false] {
        let base = run(0, instantiate);
        for n in [2000, 8000] {
            let t = run(n, instantiate);
            println!(
                "checkInstantiable={instantiate}: {n} synthetic packages {t:.3}s, empty {base:.3}s, \
                 {:.1} us per package",
                (t - base) / n as f64 * 1e6
            );
        }
    }
}
