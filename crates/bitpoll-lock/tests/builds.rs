//! Sdists whose dependencies are not static: their build backend runs (PEP 517) in an
//! isolated environment of wheels resolved from the index, against the loopback index of
//! tests/fixtures/index.toml (whose `setuptools` is a small stand-in for the real backend).
//! Needs a `python3` on PATH, as every build does.

mod common;

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_ok, stderr, Project};

fn no_network_namespace() -> bool {
    let ok = |args: &[&str]| {
        std::process::Command::new("unshare")
            .args(args)
            .arg("true")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    !ok(&["-r", "-n"]) && !ok(&["-n"])
}

#[test]
fn a_setup_py_that_computes_its_dependencies_is_locked_with_them() {
    let p = Project::new("computed\n");
    assert_ok(&p.update(&["--no-nixpkgs"]));
    let e = p.entry("computed");
    assert_eq!(e["metadata"], "sdist-build");
    assert_eq!(e["dependencies"], serde_json::json!(["helper", "tzshim"]));
    assert!(
        e["metadata_built_with"]
            .as_str()
            .is_some_and(|s| s.starts_with("cpython-3.")),
        "{e:#}"
    );
    // The build environment is not part of the runtime environment.
    assert!(p.entries("setuptools").is_empty());
}

#[test]
fn dynamic_pyproject_dependencies_come_from_the_backend_even_without_a_metadata_hook() {
    let p = Project::new("dynproj\n");
    assert_ok(&p.update(&["--no-nixpkgs"]));
    let e = p.entry("dynproj");
    assert_eq!(e["metadata"], "sdist-build");
    assert_eq!(e["dependencies"], serde_json::json!(["helper"]));
    // `helper<2` from the built metadata, not the newest helper.
    assert_eq!(p.entry("helper")["version"], "1.0");
    assert!(p.entries("wheelmaker").is_empty() && p.entries("tzshim").is_empty());
    // The backend, a wheel without an sdist, and what it asked for are pinned as the build
    // system of every target.
    assert_eq!(
        e["build_system"],
        serde_json::json!({
            "backend": "wheelmaker",
            "requires": ["wheelmaker", "tzshim"],
            "environment": {"tzshim": "1.0", "wheelmaker": "1.0"},
        })
    );
    let build = p.lock()["build_packages"].clone();
    let names: Vec<&str> = build
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tzshim", "wheelmaker"]);
    let wheelmaker = &build[1];
    assert_eq!(wheelmaker["targets"].as_array().unwrap().len(), 4);
    assert_eq!(
        wheelmaker["artifacts"][0]["sha256"].as_str().unwrap(),
        p.sha256["wheelmaker-1.0-py3-none-any.whl"]
    );
}

#[test]
fn a_built_answer_is_cached_and_needs_no_download_offline() {
    Project::new("computed\n").assert_relocks_offline_without_archives();
}

/// A lock to compare against after a failed run.
fn project_with_a_lock(requirements: &str, more: &str) -> (Project, String) {
    let p = Project::with_packages("helper\n", more);
    assert_ok(&p.update(&["--no-nixpkgs"]));
    let before = p.lock_text();
    p.write("requirements.in", requirements);
    (p, before)
}

#[test]
fn a_failing_hook_stops_the_run_naming_the_sdist_the_hook_and_its_output() {
    let (p, before) = project_with_a_lock("failbuild\n", "");
    let out = p.update(&["--no-nixpkgs"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("failbuild-1.0.tar.gz"), "{err}");
    assert!(err.contains("prepare_metadata_for_build_wheel"), "{err}");
    assert!(err.contains("failbuild refuses to be built here"), "{err}");
    assert!(err.contains("[metadata.\"failbuild\".\"1.0\"]"), "{err}");
    assert_eq!(p.lock_text(), before);
}

#[test]
fn a_hanging_hook_is_stopped_by_the_timeout() {
    let (p, before) = project_with_a_lock("hangbuild\n", "");
    let started = Instant::now();
    let out = p.update(&["--no-nixpkgs", "--build-timeout", "2"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("hangbuild-1.0.tar.gz"), "{err}");
    assert!(err.contains("did not finish within 2 s"), "{err}");
    // Far below the hook's own 600 s; generous for a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(p.lock_text(), before);
}

#[test]
fn a_hook_cannot_reach_the_network() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    {
        let accepted = accepted.clone();
        std::thread::spawn(move || {
            for _ in listener.incoming().flatten() {
                accepted.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    let more = format!(
        r#"
[packages.netbuild.versions."1.0"]
wheel = false
legacy_sdist = true
[packages.netbuild.versions."1.0".sdist_files]
"setup.py" = '''
import socket

from setuptools import setup

try:
    socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
    deps = ["helper"]
except OSError as e:
    raise SystemExit("netbuild: no network: %s" % e)
setup(name="netbuild", version="1.0", install_requires=deps)
'''
"#
    );
    let (p, before) = project_with_a_lock("netbuild\n", &more);
    let out = p.update(&["--no-nixpkgs"]);
    if no_network_namespace() {
        // Nothing can be isolated here: the run must say so.
        assert_ok(&out);
        assert!(
            stderr(&out).contains("build backends run with network access"),
            "{}",
            stderr(&out)
        );
        return;
    }
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("netbuild: no network"),
        "{}",
        stderr(&out)
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
    assert_eq!(p.lock_text(), before);
}

#[test]
fn no_build_refuses_a_non_static_sdist_and_names_the_policy_key() {
    let (p, before) = project_with_a_lock("computed\n", "");
    p.write("site-policy.toml", "");
    let out = p.update(&["--no-nixpkgs", "--no-build", "--policy", "site-policy.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("computed 1.0"), "{err}");
    assert!(err.contains("--no-build"), "{err}");
    // The policy file this run reads, where the user has to add the key.
    assert!(
        err.contains("[metadata.\"computed\".\"1.0\"] in site-policy.toml"),
        "{err}"
    );
    assert_eq!(p.lock_text(), before);

    // What the error asks for works without running anything.
    p.write(
        "lock/policy.toml",
        "[metadata.\"computed\".\"1.0\"]\nrequires-dist = [\"helper\"]\n",
    );
    assert_ok(&p.update(&["--no-nixpkgs", "--no-build", "--policy", "lock/policy.toml"]));
    let e = p.entry("computed");
    assert_eq!(e["metadata"], "policy");
    assert_eq!(e["dependencies"], serde_json::json!(["helper"]));
}

#[test]
fn a_build_environment_takes_wheels_for_the_python_that_runs_the_build() {
    // A build requirement with wheels for this machine's python3 and for the target's Python
    // only: the metadata build needs the first, the target's locked build system the second.
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, platform; print(f'cp{sys.version_info[0]}{sys.version_info[1]}', platform.machine())",
        ])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let (tag, machine) = text.trim().split_once(' ').unwrap();
    // A Windows wheel first: it is the one dropped wheel kept to describe the release, so
    // the host's wheel survives the page filter only as a wheel of the build's target.
    let mut wheels = vec![
        "cp313-cp313-win_amd64".to_string(),
        format!("{tag}-{tag}-manylinux_2_17_{machine}"),
    ];
    let target = "cp313-cp313-manylinux_2_17_x86_64".to_string();
    if !wheels.contains(&target) {
        wheels.push(target);
    }
    let wheels = format!("{wheels:?}");
    let more = format!(
        r#"
[packages.hostonly.versions."1.0"]
sdist = false
wheel_tags = {wheels}

[packages.needshost.versions."1.0"]
wheel = false
legacy_sdist = true
[packages.needshost.versions."1.0".sdist_files]
"pyproject.toml" = '''
[build-system]
requires = ["setuptools", "hostonly"]
build-backend = "setuptools.build_meta:__legacy__"
'''
"setup.py" = '''
import hostonly
from setuptools import setup

setup(name="needshost", version="1.0", install_requires=["helper"])
'''
"#
    );
    let p = Project::with_packages("needshost\n", &more);
    assert_ok(&p.update(&["--no-nixpkgs", "--system", "x86_64-linux"]));
    assert_eq!(
        p.entries("needshost")[0]["dependencies"],
        serde_json::json!(["helper"])
    );
}

#[test]
fn a_backend_that_cannot_say_its_extra_requirements_here_leaves_the_declared_ones() {
    let p = Project::new("staticbrittle\n");
    // Without -q, so the warning shows.
    let url = p.server.index_url();
    let out = p
        .command(
            &[
                "update",
                "-r",
                "requirements.in",
                "--index-url",
                url.as_str(),
                "--no-nixpkgs",
                "--system",
                "x86_64-linux",
            ],
            p.cache.path(),
        )
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_ok(&out);
    assert!(err.contains("staticbrittle 1.0"), "{err}");
    assert!(
        err.contains("brittlebackend: mysql_config not found"),
        "{err}"
    );
    let e = &p.entries("staticbrittle")[0];
    assert_eq!(e["metadata"], "sdist-pkg-info");
    assert_eq!(
        e["build_system"]["requires"],
        serde_json::json!(["brittlebackend"])
    );
    assert_eq!(e["build_system"]["environment"]["brittlebackend"], "1.0");
}

/// A project whose `guessed` has a 1.0 and, uploaded a day ago, a 2.0 described by
/// `release` (TOML keys of a fixture release), locked with a week's release-age window: the
/// solver never picks 2.0, while a prefetch hint, which reads the page without the window,
/// guesses it. Returns the project, after checking its lock has 1.0 and nothing of 2.0, and
/// what its timeline says of build hooks.
fn lock_with_a_fresh_guess(release: &str) -> (Project, Hooks) {
    let (p, hooks) = lock_with_a_week_window(
        "guessed",
        &format!(
            "[packages.guessed.versions.\"1.0\"]\n[packages.guessed.versions.\"2.0\"]\nupload_time = \"{}\"\n{release}",
            day_ago()
        ),
    );
    assert_eq!(p.entry("guessed")["version"], "1.0");
    assert!(!p.lock_text().contains("guessed-2.0"));
    (p, hooks)
}

fn day_ago() -> String {
    bitpoll_client::Timestamp::from_unix(bitpoll_client::Timestamp::now().unix_secs() - 86_400)
        .to_rfc3339()
}

/// Locks `requirement` from the fixture index plus `more` with a week's release-age window,
/// and returns the project and what the run's timeline says of build hooks.
fn lock_with_a_week_window(requirement: &str, more: &str) -> (Project, Hooks) {
    let p = Project::with_packages(&format!("{requirement}\n"), more);
    let timings = p.path("timings.json");
    assert_ok(&p.update(&[
        "--no-nixpkgs",
        "--min-release-age",
        "7 days",
        "--timings",
        timings.to_str().unwrap(),
    ]));
    let timeline: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&timings).unwrap()).unwrap();
    let labels = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["category"] == "build-hook")
        .filter_map(|e| e["label"].as_str().map(str::to_string))
        .collect();
    let unused = timeline["summary"]["speculation"]["hooks_unused"]
        .as_u64()
        .unwrap();
    (p, Hooks { labels, unused })
}

/// The build hooks a run's timeline recorded (`FILE: HOOK`), and how many of them its
/// summary counts as speculation: run for sdists whose answer no resolution needed.
struct Hooks {
    labels: Vec<String>,
    unused: u64,
}

/// An sdist whose release has no wheel and which declares no metadata has its metadata built
/// as soon as a prefetch hint guesses a target will read it, not when the solver asks: on a
/// cold run the solve would otherwise wait about a second per such sdist. Shown where the
/// solver never asks (see [`lock_with_a_fresh_guess`]), so that the order is not a race: its
/// backend runs all the same.
#[test]
fn a_guessed_sdist_without_metadata_is_built_before_the_solver_asks() {
    let (
        _,
        Hooks {
            labels: hooks,
            unused,
        },
    ) = lock_with_a_fresh_guess(
        r#"wheel = false
legacy_sdist = true
[packages.guessed.versions."2.0".sdist_files]
"setup.py" = '''
from setuptools import setup
setup(name="guessed", version="2.0", install_requires=["helper"])
'''
"#,
    );
    assert!(
        hooks.iter().any(|l| l.starts_with("guessed-2.0.tar.gz")),
        "no backend run for the guessed sdist: {hooks:?}"
    );
    // The lock has 1.0, a wheel: the timeline counts that build as speculation.
    assert_eq!(unused as usize, hooks.len(), "{hooks:?}");
}

/// A hint that guesses a target will install an sdist whose metadata a wheel of its release
/// gives (here a wheel for macOS on arm64 only, so the other targets would install the
/// sdist) has its backend asked about its build requirements on the guess, as when the
/// solver reads the sdist, with the sdist and its build environment fetched for that, and
/// nothing more: its metadata is not built. Shown where the solver never picks the sdist
/// (see [`lock_with_a_fresh_guess`]), so that only the hint can have asked.
#[test]
fn a_guessed_sdists_backend_is_asked_about_its_build_requirements_only() {
    let (
        p,
        Hooks {
            labels: hooks,
            unused,
        },
    ) = lock_with_a_fresh_guess(r#"wheel_tags = ["py3-none-macosx_11_0_arm64"]"#);
    // Nothing the lock installs is built: every pinned file is a wheel.
    assert!(p.lock()["build_packages"]
        .as_array()
        .is_none_or(|b| b.is_empty()));
    let fetched: Vec<String> = p.server.requests().into_iter().map(|r| r.path).collect();
    for file in ["guessed-2.0.tar.gz", "setuptools-70.0-py3-none-any.whl"] {
        assert!(
            fetched.iter().any(|path| path.ends_with(file)),
            "{file} not fetched ahead: {fetched:#?}"
        );
    }
    assert_eq!(
        hooks,
        ["guessed-2.0.tar.gz: get_requires_for_build_wheel"],
        "the guessed sdist's backend was not asked, or more than asked"
    );
    assert_eq!(
        unused, 1,
        "the guessed question is not counted as speculation"
    );
}

/// The hints that follow dependencies ahead of the solver hand on the sdists they reach too:
/// here `app` 2.0, which the release-age window keeps from the solver, needs `deep`, which
/// only macOS on arm64 has a wheel of, and whose backend needs `deepbackend`. The solver
/// never names `deep`; only the walk from `app` 2.0's metadata reaches it, and then its
/// backend is asked about its build requirements, with `deepbackend`'s wheel, which nothing
/// else in the run names, fetched for that; its metadata is not built, although no wheel of
/// its release could stand in for it on Linux. (Hints given once the resolution is over are
/// dropped, so the solve must last: `app` 1.0 is an sdist without metadata, whose build
/// the solver waits for while the walk, a few requests to this machine, is done.)
#[test]
fn an_sdist_only_the_lookahead_reaches_has_its_backend_asked() {
    let (
        p,
        Hooks {
            labels: hooks,
            unused,
        },
    ) = lock_with_a_week_window(
        "app",
        &format!(
            r#"[packages.app.versions."1.0"]
wheel = false
legacy_sdist = true
[packages.app.versions."1.0".sdist_files]
"setup.py" = """
from setuptools import setup
setup(name="app", version="1.0")
"""
[packages.app.versions."2.0"]
upload_time = "{}"
requires = ["deep"]
[packages.deepbackend.versions."1.0"]
sdist = false
[packages.deep.versions."1.0"]
wheel_tags = ["py3-none-macosx_11_0_arm64"]
[packages.deep.versions."1.0".sdist_files]
"pyproject.toml" = '''
[build-system]
requires = ["setuptools", "deepbackend"]
build-backend = "setuptools.build_meta"
'''
"#,
            day_ago()
        ),
    );
    assert_eq!(p.entry("app")["version"], "1.0");
    assert!(!p.lock_text().contains("deep"));
    let fetched: Vec<String> = p.server.requests().into_iter().map(|r| r.path).collect();
    assert!(
        fetched
            .iter()
            .any(|path| path.ends_with("deepbackend-1.0-py3-none-any.whl")),
        "the build environment of the sdist the walk reached was not fetched: {fetched:#?}"
    );
    let deep: Vec<&String> = hooks.iter().filter(|h| h.starts_with("deep-")).collect();
    assert_eq!(
        deep,
        ["deep-1.0.tar.gz: get_requires_for_build_wheel"],
        "the backend of the sdist the walk reached was not asked, or more than asked: {hooks:?}"
    );
    // `app` 1.0's build was needed; only the question about `deep` was speculation.
    assert!(
        hooks.iter().any(|h| h.starts_with("app-1.0.tar.gz")),
        "{hooks:?}"
    );
    assert_eq!(unused, 1, "{hooks:?}");
}

/// The wheel for this machine of a declared build requirement starts downloading as soon as
/// its page is here, not once its metadata has come and the build environment is solved:
/// here the metadata of `slowbackend`, which `needsslow`'s sdist declares, takes two seconds
/// to come, and the wheel's download starts before it has.
#[test]
fn a_build_requirements_wheel_is_fetched_before_its_metadata_comes() {
    let more = r#"
[packages.slowbackend.versions."1.0"]
sdist = false
[packages.needsslow.versions."1.0"]
wheel = false
[packages.needsslow.versions."1.0".sdist_files]
"pyproject.toml" = '''
[build-system]
requires = ["setuptools", "slowbackend"]
build-backend = "setuptools.build_meta"
'''
"setup.py" = '''
from setuptools import setup
setup(name="needsslow", version="1.0")
'''
"#;
    let p = Project::with_packages("needsslow\n", more);
    let metadata = "/files/slowbackend-1.0-py3-none-any.whl.metadata";
    p.server.inject(
        metadata,
        bitpoll_tests::server::Fault::Delay(Duration::from_secs(2)),
    );
    let timings = p.path("timings.json");
    assert_ok(&p.update(&[
        "--no-nixpkgs",
        "--system",
        "x86_64-linux",
        "--timings",
        timings.to_str().unwrap(),
    ]));
    assert_eq!(
        p.entries("needsslow")[0]["build_system"]["environment"]["slowbackend"],
        "1.0"
    );
    let timeline: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&timings).unwrap()).unwrap();
    let requests: Vec<(String, f64, f64)> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["category"] == "request")
        .map(|e| {
            let label = e["label"].as_str().unwrap().to_string();
            (
                label,
                e["start_ms"].as_f64().unwrap(),
                e["end_ms"].as_f64().unwrap(),
            )
        })
        .collect();
    let first = |suffix: &str| {
        requests
            .iter()
            .filter(|(label, ..)| label.ends_with(suffix) && !label.starts_with("cache"))
            .map(|(_, start, end)| (*start, *end))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap_or_else(|| panic!("no request for {suffix}: {requests:#?}"))
    };
    let (wheel_start, _) = first("/files/slowbackend-1.0-py3-none-any.whl");
    let (_, metadata_end) = first(metadata);
    assert!(
        wheel_start < metadata_end,
        "the wheel's download waited for its metadata: {requests:#?}"
    );
}
