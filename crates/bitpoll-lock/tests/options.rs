//! `update` options end to end (offline upgrades, --exclude-newer, --python, --system, extras)
//! and the reasons `check` gives for inputs that drifted.

mod common;

use common::{assert_ok, stderr, stdout, Project};

fn version(p: &Project, name: &str) -> String {
    p.entry(name)["version"].as_str().unwrap().to_string()
}

fn names(p: &Project) -> Vec<String> {
    p.lock()["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

#[track_caller]
fn assert_check_up_to_date(p: &Project) {
    let out = p.run(&["check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// `check` after a drift: exit 1 and the reason in its output.
#[track_caller]
fn assert_check_says(p: &Project, reason: &str) {
    let out = p.run(&["check"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains(reason), "expected {reason:?} in:\n{text}");
}

#[test]
fn offline_upgrade_moves_pins_using_only_the_cache() {
    let p = Project::new("helper\n");
    assert_ok(&p.update(&["--no-nixpkgs"]));
    assert_eq!(version(&p, "helper"), "2.1");
    p.write("requirements.in", "helper<2.1\n");
    assert_ok(&p.update(&["--no-nixpkgs"]));
    p.write("requirements.in", "helper\n");
    assert_ok(&p.update(&["--no-nixpkgs"]));
    assert_eq!(
        version(&p, "helper"),
        "2.0",
        "the pin stays without --upgrade"
    );

    p.server.clear_log();
    assert_ok(&p.update(&["--no-nixpkgs", "--offline", "--upgrade"]));
    assert!(
        p.server.requests().is_empty(),
        "offline must not send requests"
    );
    assert_eq!(version(&p, "helper"), "2.1", "--upgrade frees the pin");
}

#[test]
fn exclude_newer_ignores_later_uploads_and_is_recorded() {
    let p = Project::new("helper\n");
    assert_ok(&p.update(&["--no-nixpkgs", "--exclude-newer", "2025-01-01"]));
    assert_eq!(version(&p, "helper"), "2.0", "2.1 was uploaded in 2025-06");
    assert_eq!(p.lock()["inputs"]["exclude_newer"], "2025-01-01T23:59:59Z");
    assert_check_up_to_date(&p);

    assert_ok(&p.update(&[
        "--no-nixpkgs",
        "--upgrade",
        "--exclude-newer",
        "2025-06-01T12:00:00Z",
    ]));
    assert_eq!(
        version(&p, "helper"),
        "2.1",
        "an upload at the cut-off counts"
    );
    assert_eq!(p.lock()["inputs"]["exclude_newer"], "2025-06-01T12:00:00Z");
}

#[test]
fn python_sets_the_targets_interpreter() {
    let p = Project::new("modern\n");
    // modern 2.0 needs Python 3.14; the default (the nixpkgs index's 3.13) gets 1.0.
    assert_ok(&p.update(&["--no-nixpkgs", "--python", "3.14"]));
    assert_eq!(version(&p, "modern"), "2.0");
    for target in p.lock()["targets"].as_array().unwrap() {
        assert_eq!(target["markers"]["python_version"], "3.14", "{target}");
    }
    assert_check_up_to_date(&p);

    // With nixpkgs the Python is the index's; another one is refused, naming both.
    let out = p.update(&["--python", "3.12"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--python 3.12") && err.contains("3.13.5"),
        "{err}"
    );
}

#[test]
fn a_system_subset_locks_only_those_targets() {
    let p = Project::new("webapp>=3\n");
    assert_ok(&p.update(&["--system", "x86_64-linux", "--system", "aarch64-linux"]));
    let lock = p.lock();
    let targets: Vec<&str> = lock["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["aarch64-linux", "x86_64-linux"]);
    for entry in lock["packages"].as_array().unwrap() {
        assert_eq!(
            entry["targets"],
            serde_json::json!(["aarch64-linux", "x86_64-linux"]),
            "{entry}"
        );
    }
    assert!(
        !names(&p).contains(&"tzshim".to_string()),
        "tzshim is needed on darwin only"
    );
    assert_check_up_to_date(&p);
}

#[test]
fn an_extra_brings_its_dependencies_and_is_recorded() {
    let p = Project::new("extrapkg\n");
    assert_ok(&p.update(&["--no-nixpkgs"]));
    assert!(
        !names(&p).contains(&"native".to_string()),
        "{:?}",
        names(&p)
    );
    assert!(p.entry("extrapkg").get("extras").is_none());

    p.write("requirements.in", "extrapkg[fast]\n");
    assert_ok(&p.update(&["--no-nixpkgs"]));
    let entry = p.entry("extrapkg");
    assert_eq!(entry["extras"], serde_json::json!(["fast"]));
    assert_eq!(entry["dependencies"], serde_json::json!(["native"]));
    assert_eq!(version(&p, "native"), "1.0");
}

#[test]
fn check_says_when_the_policy_changed() {
    let p = Project::new("helper\n");
    assert_ok(&p.update(&[]));
    assert_check_up_to_date(&p);
    p.write(
        "lock/policy.toml",
        "[constraints]\nrequirements = [\"helper<3\"]\n",
    );
    assert_check_says(&p, "lock/policy.toml changed");
}

#[test]
fn check_says_when_the_nixpkgs_index_changed() {
    let p = Project::new("helper\n");
    assert_ok(&p.update(&[]));
    let index = std::fs::read_to_string(p.path("lock/nixpkgs-index.json")).unwrap();
    p.write(
        "lock/nixpkgs-index.json",
        &index.replace("\"version\": \"2.0\"", "\"version\": \"2.0.1\""),
    );
    assert_check_says(&p, "lock/nixpkgs-index.json changed");
    p.write(
        "lock/nixpkgs-index.json",
        &index.replace("fixture-nixpkgs", "another-nixpkgs"),
    );
    assert_check_says(
        &p,
        "nixpkgs index is now for another-nixpkgs (lock: fixture-nixpkgs)",
    );
}

#[test]
fn check_says_when_flake_lock_pins_another_nixpkgs() {
    let p = Project::new("helper\n");
    assert_ok(&p.update(&[]));
    let flake_lock = |rev: &str| {
        serde_json::json!({
            "nodes": {
                "nixpkgs": {"locked": {"type": "github", "owner": "NixOS", "repo": "nixpkgs", "rev": rev}},
                "root": {"inputs": {"nixpkgs": "nixpkgs"}}
            },
            "root": "root",
            "version": 7
        })
        .to_string()
    };
    p.write(
        "flake.lock",
        &flake_lock("0000000000000000000000000000000000000001"),
    );
    assert_check_up_to_date(&p);
    let other = "f".repeat(40);
    p.write("flake.lock", &flake_lock(&other));
    assert_check_says(
        &p,
        &format!(
            "nixpkgs revision differs from flake.lock: the flake pins {other}, the lock was resolved against 0000000000000000000000000000000000000001"
        ),
    );
}

/// An executable shell script at `path`.
fn script(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn the_build_interpreters_pip_is_asked_for_the_index_before_python3s() {
    let p = Project::new("helper\n");
    let bin = tempfile::tempdir().unwrap();
    let asked = bin.path().join("asked");
    let url = p.server.index_url();
    // `python3` and `python` on PATH answer too, and say so.
    for name in ["python3", "python"] {
        script(
            &bin.path().join(name),
            &format!(
                "#!/bin/sh\necho {name} >> '{}'\necho '{url}'\n",
                asked.display()
            ),
        );
    }
    // The interpreter named with --build-python: the probe's three lines, or pip's answer
    // when `pip_answers`.
    let build_python = |pip_answers: bool| {
        let path = bin.path().join(format!("python3.13-{pip_answers}"));
        let pip = if pip_answers {
            format!("echo build >> '{}'; echo '{url}'", asked.display())
        } else {
            "echo 'No module named pip' >&2; exit 1".to_string()
        };
        script(
            &path,
            &format!(
                "#!/bin/sh\ncase \"$*\" in\n  *pip._internal*) {pip} ;;\n  \
                 *) echo 3.13.0; echo cpython; echo \"$0\" ;;\nesac\n"
            ),
        );
        path
    };
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |python: &std::path::Path| {
        let _ = std::fs::remove_file(&asked);
        let cache = tempfile::tempdir().unwrap();
        let python = python.to_str().unwrap();
        let out = p
            .command(
                &[
                    "update",
                    "-r",
                    "requirements.in",
                    "--no-nixpkgs",
                    "--build-python",
                    python,
                ],
                cache.path(),
            )
            .env("PATH", &path)
            .env("PIP_CONFIG_FILE", "/dev/null")
            .env_remove("UV_DEFAULT_INDEX")
            .env_remove("UV_INDEX_URL")
            .env_remove("PIP_INDEX_URL")
            .output()
            .unwrap();
        assert_ok(&out);
        let asked = std::fs::read_to_string(&asked).unwrap_or_default();
        (stderr(&out), asked)
    };

    let with_pip = build_python(true);
    let (err, asked_first) = run(&with_pip);
    assert!(
        err.contains(&format!(
            "default index of the pip installed for {}",
            with_pip.display()
        )),
        "{err}"
    );
    assert_eq!(asked_first, "build\n", "python3 was asked too");
    assert_eq!(p.entry("helper")["version"], "2.1");

    // Without pip there, the pip of `python3` on PATH answers, as without --build-python.
    let (err, asked_then) = run(&build_python(false));
    assert!(
        err.contains("default index of the pip installed for python3"),
        "{err}"
    );
    assert_eq!(asked_then, "python3\n");
}
