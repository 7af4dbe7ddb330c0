//! Tests against the real Python package index, ignored by default because they need the
//! network (and uv / pip for the comparisons). Run them with
//! `cargo test -p bitpoll-lock --test live -- --ignored`. The index URL is found the way a
//! user's run finds it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

fn root() -> std::path::PathBuf {
    bitpoll_tests::workspace_root()
}

fn bitpoll_lock(args: &[&str], cwd: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_bitpoll-lock"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bitpoll-lock {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A scratch copy of the committed inputs, so the real lock is never touched.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for rel in [
        "inputs/requirements.in",
        "inputs/requirements-production.in",
        "lock/policy.toml",
        "lock/nixpkgs-index.json",
    ] {
        let to = dir.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root().join(rel), to).unwrap();
    }
    dir
}

fn versions_from_lock(path: &Path) -> BTreeMap<String, String> {
    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    lock["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn normalise(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_ascii_lowercase().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The Linux targets and the platform uv is asked to resolve for in their place: ours accept
/// manylinux wheels up to glibc 2.40 (see `bitpoll-platform`'s targets).
const LINUX_TARGETS: [(&str, &str); 2] = [
    ("x86_64-linux", "x86_64-manylinux_2_40"),
    ("aarch64-linux", "aarch64-manylinux_2_40"),
];

/// `uv pip compile` for one platform, as `name -> version`.
fn uv_pip_compile(files: &[&str], platform: &str, cwd: &Path) -> BTreeMap<String, String> {
    let uv = match Command::new("uv")
        .args(["pip", "compile", "--python-platform", platform])
        .args([
            "--python-version",
            "3.13",
            "--no-header",
            "--no-annotate",
            "-q",
        ])
        .args(files)
        .env("UV_PYTHON_DOWNLOADS", "never")
        .current_dir(cwd)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`uv` is not on PATH: the comparison needs it (`pip install uv`)")
        }
        Err(e) => panic!("cannot run uv: {e}"),
    };
    assert!(
        uv.status.success(),
        "uv pip compile {files:?} for {platform} failed:\n{}",
        String::from_utf8_lossy(&uv.stderr)
    );
    let mut versions = BTreeMap::new();
    for line in String::from_utf8_lossy(&uv.stdout).lines() {
        let spec = line.split(';').next().unwrap().trim();
        if let Some((name, version)) = spec.split_once("==") {
            let name = normalise(name.split('[').next().unwrap());
            versions.insert(name, version.trim().to_string());
        }
    }
    versions
}

/// The versions a lock pins for one target (an entry without `targets` serves them all).
fn versions_for_target(lock: &serde_json::Value, target: &str) -> BTreeMap<String, String> {
    lock["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["targets"]
                .as_array()
                .is_none_or(|ts| ts.iter().any(|t| t == target))
        })
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Locks `files` (paths relative to the workspace root) with `--no-nixpkgs` and compares every
/// Linux target's versions with `uv pip compile` for that platform. `expected` lists the
/// packages known to differ, each with the reason; any other difference fails, and so does a
/// listed one that no longer differs, so the list stays true.
fn compare_with_uv(files: &[&str], expected: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    for rel in files {
        let to = dir.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root().join(rel), to).unwrap();
    }
    std::fs::create_dir(dir.path().join("lock")).unwrap();
    let mut args = vec!["update", "-q", "--no-nixpkgs", "--upgrade"];
    for file in files {
        args.extend(["-r", file]);
    }
    for (target, _) in LINUX_TARGETS {
        args.extend(["--system", target]);
    }
    let started = std::time::Instant::now();
    bitpoll_lock(&args, dir.path());
    eprintln!("{files:?}: our lock took {:.1?}", started.elapsed());
    let lock: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("lock/bitpoll.lock.json")).unwrap(),
    )
    .unwrap();
    let mut failures = Vec::new();
    for (target, platform) in LINUX_TARGETS {
        let ours = versions_for_target(&lock, target);
        let started = std::time::Instant::now();
        let theirs = uv_pip_compile(files, platform, dir.path());
        eprintln!(
            "{files:?}: uv for {platform} took {:.1?}; {} pins",
            started.elapsed(),
            theirs.len()
        );
        let differing: BTreeSet<&String> = ours
            .keys()
            .chain(theirs.keys())
            .filter(|name| ours.get(*name) != theirs.get(*name))
            .collect();
        for name in &differing {
            if !expected.iter().any(|(known, _)| known == name) {
                let shown = |v: Option<&String>| v.map_or("nothing", |v| v.as_str()).to_string();
                failures.push(format!(
                    "{target}: {name}: ours {}, uv {}",
                    shown(ours.get(*name)),
                    shown(theirs.get(*name))
                ));
            }
        }
        for (known, why) in expected {
            if !differing.iter().any(|name| name == known) {
                failures.push(format!(
                    "{target}: {known} is listed as differing ({why}) but no longer does; drop it from the list"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{files:?} against uv pip compile:\n{}",
        failures.join("\n")
    );
}

fn app(name: &str) -> String {
    format!("tests/fixtures/apps/{name}/requirements.in")
}

#[test]
#[ignore = "talks to the real index"]
fn bitpoll_versions_equal_uv_pip_compile_per_platform() {
    compare_with_uv(
        &[
            "inputs/requirements.in",
            "inputs/requirements-production.in",
        ],
        &[],
    );
}

#[test]
#[ignore = "talks to the real index"]
fn inventree_versions_equal_uv_pip_compile_per_platform() {
    compare_with_uv(&[&app("inventree")], &[]);
}

#[test]
#[ignore = "talks to the real index"]
fn readthedocs_versions_equal_uv_pip_compile_per_platform() {
    compare_with_uv(&[&app("readthedocs")], &[]);
}

#[test]
#[ignore = "talks to the real index"]
fn treeherder_versions_equal_uv_pip_compile_per_platform() {
    compare_with_uv(&[&app("treeherder")], &[]);
}

#[test]
#[ignore = "talks to the real index"]
fn netbox_versions_equal_uv_pip_compile_per_platform() {
    compare_with_uv(&[&app("netbox")], &[]);
}

#[test]
#[ignore = "talks to the real index"]
fn sentry_versions_equal_uv_pip_compile_per_platform() {
    // python-u2flib-server 5.0.1 is sdist-only, and the egg-info inside it, written on
    // Python 2, lists enum34 unconditionally where its setup.py asks for it only below
    // Python 3.4: identical to uv only because the metadata comes from running setup.py.
    compare_with_uv(&[&app("sentry")], &[]);
}

/// Two valid answers. We decide top-level requirements in declaration order, so
/// social-auth-app-django, declared first, gets its newest release that works with Django 4.1
/// (5.4.3, which needs social-auth-core ~=4.4, hence 4.9.1). uv makes the same first choice,
/// but django-two-factor-auth's newer releases (they need a newer Django) later make it jump back
/// past that decision; deciding again, it takes social-auth-core 7.0.0 for the extras first, so
/// social-auth-app-django falls back to 5.4.2, the newest without an upper bound on
/// social-auth-core.
const ZULIP_TIE_BREAK: &[(&str, &str)] = &[
    (
        "social-auth-app-django",
        "ours 5.4.3 (declared first, newest fitting), uv 5.4.2",
    ),
    (
        "social-auth-core",
        "ours 4.9.1 (what 5.4.3 allows), uv 7.0.0",
    ),
];

#[test]
#[ignore = "talks to the real index"]
fn zulip_versions_equal_uv_pip_compile_per_platform() {
    compare_with_uv(&[&app("zulip")], ZULIP_TIE_BREAK);
}

#[test]
#[ignore = "talks to the real index"]
fn hybrid_lock_is_reproducible_and_its_hashes_verify() {
    let dir = scratch();
    bitpoll_lock(&["update", "-q"], dir.path());
    let lock_path = dir.path().join("lock/bitpoll.lock.json");
    let first = std::fs::read_to_string(&lock_path).unwrap();
    bitpoll_lock(&["update", "-q"], dir.path());
    assert_eq!(
        first,
        std::fs::read_to_string(&lock_path).unwrap(),
        "second run must be byte-identical"
    );
    let lock: serde_json::Value = serde_json::from_str(&first).unwrap();
    let packages = lock["packages"].as_array().unwrap();
    assert!(packages
        .iter()
        .any(|p| p["name"] == "django" && p["source"] == "nixpkgs"));
    assert!(packages
        .iter()
        .all(|p| p["source"] == "nixpkgs" || !p["artifacts"].as_array().unwrap().is_empty()));
    // Download and re-hash every pinned artifact.
    bitpoll_lock(&["verify", "-q"], dir.path());
}

#[test]
#[ignore = "talks to the real index"]
fn upgrade_package_moves_only_that_package() {
    let dir = scratch();
    // Start from an older django on the index, then free it.
    std::fs::write(
        dir.path().join("lock/policy.toml"),
        "[source]\ndjango = \"index\"\n[constraints]\nrequirements = [\"django<6\"]\n",
    )
    .unwrap();
    bitpoll_lock(&["update", "-q", "--no-nixpkgs"], dir.path());
    let before = versions_from_lock(&dir.path().join("lock/bitpoll.lock.json"));
    std::fs::write(
        dir.path().join("lock/policy.toml"),
        "[source]\ndjango = \"index\"\n",
    )
    .unwrap();
    bitpoll_lock(
        &[
            "update",
            "-q",
            "--no-nixpkgs",
            "--upgrade-package",
            "django",
        ],
        dir.path(),
    );
    let after = versions_from_lock(&dir.path().join("lock/bitpoll.lock.json"));
    let changed: Vec<&String> = after
        .keys()
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(
        changed.contains(&&"django".to_string()),
        "django should move: {before:?} -> {after:?}"
    );
    for name in changed {
        // Whatever else moved must have been forced by django's new requirements.
        assert!(
            name == "django" || name == "asgiref" || name == "sqlparse",
            "{name} moved without need"
        );
    }
}

/// `--platform` for every glibc level the x86_64-linux target accepts: older pips take the
/// flag literally instead of including lower manylinux levels.
fn linux_platforms() -> Vec<String> {
    let mut out = Vec::new();
    for minor in 5..=40 {
        out.push("--platform".to_string());
        out.push(format!("manylinux_2_{minor}_x86_64"));
    }
    for legacy in [
        "manylinux2014_x86_64",
        "manylinux2010_x86_64",
        "manylinux1_x86_64",
    ] {
        out.push("--platform".to_string());
        out.push(legacy.to_string());
    }
    out
}

#[test]
#[ignore = "talks to the real index"]
fn exported_requirements_are_accepted_by_pip_with_require_hashes() {
    let dir = scratch();
    bitpoll_lock(&["update", "-q", "--no-nixpkgs"], dir.path());
    let out = bitpoll_lock(
        &[
            "export",
            "--format",
            "requirements-txt",
            "--system",
            "x86_64-linux",
        ],
        dir.path(),
    );
    // `--only-binary :all:` cannot take the packages this target builds from source; leave
    // exactly those out (the lock says which), and check the rest with pip.
    let lock: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("lock/bitpoll.lock.json")).unwrap(),
    )
    .unwrap();
    let sdist_only: Vec<String> = lock["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["artifacts"].as_array().is_some_and(|a| {
                a.iter().any(|a| {
                    a["kind"] == "sdist"
                        && a["targets"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|t| t == "x86_64-linux")
                })
            })
        })
        .map(|p| format!("{}==", p["name"].as_str().unwrap()))
        .collect();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut kept = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            skipping = sdist_only.iter().any(|s| line.starts_with(s.as_str()));
        }
        if !skipping {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    assert!(
        kept.matches("--hash=").count() >= 40,
        "most of Bitpoll's closure is wheels:\n{kept}"
    );
    let reqs = dir.path().join("requirements.txt");
    std::fs::write(&reqs, kept).unwrap();
    // A current pip in a throwaway virtualenv: older ones check Requires-Python against the
    // running interpreter even with --python-version.
    let venv = dir.path().join("venv");
    assert!(Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&venv)
        .status()
        .unwrap()
        .success());
    let py = venv.join("bin/python");
    assert!(Command::new(&py)
        .args(["-m", "pip", "install", "-q", "-U", "pip"])
        .status()
        .unwrap()
        .success());
    let pip = Command::new(&py)
        .args([
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--require-hashes",
            "--no-deps",
            "--only-binary",
            ":all:",
        ])
        .args(["--python-version", "3.13", "--target"])
        .arg(dir.path().join("target"))
        .args(linux_platforms())
        .arg("-r")
        .arg(&reqs)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&pip.stderr);
    assert!(pip.status.success(), "pip refused the export:\n{stderr}");
}
