//! End-to-end: `bitpoll-lock update` against a real HTTP index on 127.0.0.1 built from
//! tests/fixtures/index.toml and the fixture nixpkgs index.

mod common;

use common::{assert_ok, stderr, Project};

fn version_source(p: &Project, name: &str) -> (String, String) {
    let e = p.entry(name);
    (
        e["version"].as_str().unwrap().to_string(),
        e["source"].as_str().unwrap().to_string(),
    )
}

#[test]
fn nixpkgs_is_chosen_when_it_satisfies_even_if_the_index_is_newer() {
    let p = Project::new("webapp\n");
    assert_ok(&p.update(&[]));
    assert_eq!(
        version_source(&p, "webapp"),
        ("2.0".into(), "nixpkgs".into())
    );
    // Its dependency comes along from nixpkgs, at nixpkgs' version, not the index's 2.1.
    assert_eq!(
        version_source(&p, "helper"),
        ("2.0".into(), "nixpkgs".into())
    );
    let webapp = p.entry("webapp");
    assert_eq!(webapp["attr"], "webapp");
    assert_eq!(webapp["dependencies"], serde_json::json!(["helper"]));
    assert!(webapp.get("artifacts").is_none());
    let lock = p.lock();
    assert_eq!(
        lock["nixpkgs"]["revision"],
        "0000000000000000000000000000000000000001"
    );
    assert_eq!(lock["targets"].as_array().unwrap().len(), 4);
}

#[test]
fn the_index_serves_what_nixpkgs_is_too_old_for_and_a_second_run_is_identical() {
    let p = Project::new("webapp>=3\n");
    assert_ok(&p.update(&[]));
    assert_eq!(version_source(&p, "webapp"), ("3.0".into(), "index".into()));
    // helper's nixpkgs 2.0 still satisfies webapp 3.0's helper>=2, so it stays with nixpkgs.
    assert_eq!(
        version_source(&p, "helper"),
        ("2.0".into(), "nixpkgs".into())
    );
    let webapp = p.entry("webapp");
    // tzshim only on macOS: per-target dependencies, and tzshim's entry is for darwin only.
    assert_eq!(webapp["dependencies"], serde_json::json!(["helper"]));
    assert_eq!(
        webapp["target_dependencies"]["aarch64-darwin"],
        serde_json::json!(["tzshim"])
    );
    assert!(webapp["target_dependencies"].get("x86_64-linux").is_none());
    let tz = p.entries("tzshim");
    assert_eq!(
        tz[0]["targets"],
        serde_json::json!(["aarch64-darwin", "x86_64-darwin"])
    );
    // Artifacts carry the hash the index served, in hex and SRI form.
    let art = &webapp["artifacts"][0];
    assert_eq!(art["filename"], "webapp-3.0-py3-none-any.whl");
    assert_eq!(
        art["sha256"].as_str().unwrap(),
        p.sha256["webapp-3.0-py3-none-any.whl"]
    );
    assert!(art["hash"].as_str().unwrap().starts_with("sha256-"));
    assert_eq!(webapp["metadata"], "core-metadata");

    let first = p.lock_text();
    assert_ok(&p.update(&[]));
    assert_eq!(
        first,
        p.lock_text(),
        "a second run must leave the lock byte-identical"
    );
    assert!(
        !first.contains("127.0.0.1"),
        "the lock must not name the index host"
    );
}

#[test]
fn a_root_requirement_that_would_shadow_a_nixpkgs_dependency_moves_the_dependent_off_nixpkgs() {
    // nixpkgs' webapp 2.0 is built against nixpkgs' helper 2.0; helper>=2.1 rules that
    // helper out, so nixpkgs' webapp cannot be used either: one helper, one webapp, both
    // from the index.
    let p = Project::new("webapp<3\nhelper>=2.1\n");
    assert_ok(&p.update(&[]));
    assert_eq!(version_source(&p, "helper"), ("2.1".into(), "index".into()));
    assert_eq!(version_source(&p, "webapp"), ("2.0".into(), "index".into()));
}

#[test]
fn a_forced_nixpkgs_package_with_a_shadowed_dependency_is_explained() {
    let p = Project::new("webapp\nhelper>=2.1\n");
    p.write("lock/policy.toml", "[source]\nwebapp = \"nixpkgs\"\n");
    let out = p.update(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("webapp") && err.contains("helper") && err.contains("nixpkgs"),
        "{err}"
    );
    assert!(err.contains("no solution"), "{err}");
}

#[test]
fn each_target_gets_its_own_wheel_or_the_sdist() {
    let p = Project::new("native\nlinuxonly\n");
    assert_ok(&p.update(&[]));
    let native = p.entry("native");
    let arts = native["artifacts"].as_array().unwrap();
    assert_eq!(arts.len(), 4, "{arts:#?}");
    for a in arts {
        assert_eq!(a["kind"], "wheel");
        assert_eq!(a["targets"].as_array().unwrap().len(), 1);
    }
    let for_target = |t: &str| {
        arts.iter().find(|a| a["targets"][0] == t).unwrap()["filename"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(for_target("x86_64-linux").contains("manylinux_2_17_x86_64"));
    assert!(for_target("aarch64-linux").contains("aarch64"));
    assert!(for_target("aarch64-darwin").contains("macosx_11_0_arm64"));
    assert!(for_target("x86_64-darwin").contains("macosx_10_13_x86_64"));
    assert!(native.get("build_system").is_none());

    let linuxonly = p.entry("linuxonly");
    let arts = linuxonly["artifacts"].as_array().unwrap();
    let wheel = arts.iter().find(|a| a["kind"] == "wheel").unwrap();
    assert_eq!(wheel["targets"], serde_json::json!(["x86_64-linux"]));
    let sdist = arts.iter().find(|a| a["kind"] == "sdist").unwrap();
    assert_eq!(
        sdist["targets"],
        serde_json::json!(["aarch64-darwin", "aarch64-linux", "x86_64-darwin"])
    );
    // Its build system is locked for the targets that build it, nixpkgs first.
    assert_eq!(
        linuxonly["build_system"],
        serde_json::json!({
            "backend": "setuptools.build_meta:__legacy__",
            "requires": ["setuptools>=40.8.0"],
            "environment": {"setuptools": "80.9.0"},
        })
    );
    let build = p.lock()["build_packages"].clone();
    assert_eq!(
        build,
        serde_json::json!([{
            "name": "setuptools",
            "version": "80.9.0",
            "source": "nixpkgs",
            "attr": "setuptools",
            "targets": ["aarch64-darwin", "aarch64-linux", "x86_64-darwin"],
            "dependencies": [],
            "metadata": "nixpkgs",
        }])
    );
    // Never part of the runtime environment.
    assert!(p.entries("setuptools").is_empty());
}

#[test]
fn releases_with_wheels_for_other_platforms_only_are_explained_not_forgotten() {
    let p = Project::new("winonly\n");
    assert_ok(&p.update(&["--no-nixpkgs"]));
    // 1.0 has no file any target can install; 0.9's sdist serves all four.
    assert_eq!(version_source(&p, "winonly").0, "0.9");
    let arts = p.entry("winonly")["artifacts"].as_array().unwrap().clone();
    assert_eq!(arts.len(), 1, "{arts:#?}");
    assert_eq!(arts[0]["kind"], "sdist");

    p.write("requirements.in", "winonly==1.0\n");
    let out = p.update(&["--no-nixpkgs"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("winonly 1.0 skipped") && err.contains("it has no wheel for"),
        "the explanation should say why 1.0 cannot be used:\n{err}"
    );
}

#[test]
fn a_wheel_for_another_platform_still_describes_its_release() {
    let p = Project::new("winmeta\n");
    assert_ok(&p.update(&["--no-nixpkgs"]));
    let e = p.entry("winmeta");
    // Read from the Windows wheel's core-metadata file, not guessed from the sdist.
    assert_eq!(e["dependencies"], serde_json::json!(["helper"]));
    assert_ne!(e["metadata"], "sdist-egg-info");
    assert_eq!(e["artifacts"].as_array().unwrap().len(), 1);
    assert_eq!(e["artifacts"][0]["kind"], "sdist");
}

#[test]
fn a_wheel_without_a_core_metadata_file_still_describes_its_release() {
    let p = Project::new("winwheelonly\n");
    assert_ok(&p.update(&["--no-nixpkgs", "--no-build"]));
    let e = p.entry("winwheelonly");
    assert_eq!(e["metadata"], "wheel");
    assert_eq!(e["dependencies"], serde_json::json!(["helper"]));
    assert_eq!(e["artifacts"][0]["kind"], "sdist");
}

#[test]
fn an_sdist_only_package_with_old_metadata_is_built_not_guessed() {
    let p = Project::new("sdistonly\n");
    assert_ok(&p.update(&["--no-nixpkgs"]));
    let e = p.entry("sdistonly");
    assert_eq!(e["metadata"], "sdist-build");
    assert_eq!(e["dependencies"], serde_json::json!(["helper"]));
    assert_eq!(e["artifacts"][0]["kind"], "sdist");
    // Index-only: the build system is the index's setuptools wheel, pinned by hash.
    assert_eq!(
        e["build_system"]["environment"],
        serde_json::json!({"setuptools": "70.0"})
    );
    let build = p.lock()["build_packages"].clone();
    assert_eq!(build.as_array().unwrap().len(), 1, "{build:#}");
    assert_eq!(build[0]["name"], "setuptools");
    assert_eq!(build[0]["source"], "index");
    assert_eq!(
        build[0]["artifacts"][0]["filename"],
        "setuptools-70.0-py3-none-any.whl"
    );
    assert_eq!(
        build[0]["artifacts"][0]["sha256"].as_str().unwrap(),
        p.sha256["setuptools-70.0-py3-none-any.whl"]
    );
    assert_eq!(version_source(&p, "helper"), ("2.1".into(), "index".into()));
    assert!(p.lock()["nixpkgs"].is_null());
}

#[test]
fn a_wheel_without_core_metadata_is_read_from_the_wheel() {
    let p = Project::new("nometa\n");
    assert_ok(&p.update(&["--no-nixpkgs"]));
    let e = p.entry("nometa");
    assert_eq!(e["metadata"], "wheel");
    assert_eq!(e["dependencies"], serde_json::json!(["helper"]));
}

#[test]
fn yanked_releases_are_skipped_unless_pinned_exactly() {
    let p = Project::new("yanky\n");
    assert_ok(&p.update(&[]));
    assert_eq!(version_source(&p, "yanky").0, "1.0");
    assert!(p.entry("yanky").get("yanked").is_none());
    p.write("requirements.in", "yanky==2.0\n");
    assert_ok(&p.update(&[]));
    assert_eq!(version_source(&p, "yanky").0, "2.0");
    // The lock says so, for the reviewer and for `diff`.
    assert_eq!(p.entry("yanky")["yanked"], "yanked for testing");
}

#[test]
fn pre_releases_only_when_asked_for() {
    let p = Project::new("preview\n");
    assert_ok(&p.update(&[]));
    assert_eq!(version_source(&p, "preview").0, "1.0");
    p.write("requirements.in", "preview>=2.0b1\n");
    assert_ok(&p.update(&[]));
    assert_eq!(version_source(&p, "preview").0, "2.0b1");
}

#[test]
fn requires_python_excludes_releases_for_the_target_python() {
    let p = Project::new("modern\n");
    assert_ok(&p.update(&[]));
    // 2.0 needs Python 3.14; nixpkgs' 0.9 is marked broken.
    assert_eq!(version_source(&p, "modern"), ("1.0".into(), "index".into()));
    p.write("requirements.in", "modern>=2\n");
    let out = p.update(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("modern") && err.contains("requires Python >=3.14"),
        "{err}"
    );
}

#[test]
fn an_unsatisfiable_set_is_explained_and_the_lock_is_untouched() {
    let p = Project::new("helper\n");
    assert_ok(&p.update(&[]));
    let before = p.lock_text();
    p.write("requirements.in", "conflict-a\nconflict-b\n");
    let out = p.update(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for name in ["conflict-a", "conflict-b", "shared <1", "shared >=2"] {
        assert!(err.contains(name), "explanation should name {name}:\n{err}");
    }
    assert_eq!(before, p.lock_text());
}

#[test]
fn existing_pins_are_kept_until_upgraded() {
    let p = Project::new("helper<2.1\n");
    assert_ok(&p.update(&["--no-nixpkgs"]));
    assert_eq!(version_source(&p, "helper").0, "2.0");
    p.write("requirements.in", "helper\n");
    assert_ok(&p.update(&["--no-nixpkgs"]));
    assert_eq!(
        version_source(&p, "helper").0,
        "2.0",
        "a still-valid pin stays"
    );
    assert_ok(&p.update(&["--no-nixpkgs", "--upgrade-package", "helper"]));
    assert_eq!(version_source(&p, "helper").0, "2.1");
}

#[test]
fn check_reports_what_changed_without_the_network() {
    let p = Project::new("helper\n");
    assert_ok(&p.update(&[]));
    let ok = p.run(&["check"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    p.server.clear_log();
    p.write("requirements.in", "helper\nwebapp\n");
    let stale = p.run(&["check"]);
    assert_eq!(stale.status.code(), Some(1));
    let out = common::stdout(&stale);
    assert!(
        out.contains("requirements.in changed: added webapp"),
        "{out}"
    );
    assert!(
        p.server.requests().is_empty(),
        "check must not touch the network"
    );

    p.write("requirements.in", "helper\n");
    // An edit of an input the lock records, and nothing else: only the fingerprint can
    // notice it.
    let mut lock = p.lock();
    lock["inputs"]["index"] = "other".into();
    write_json(&p, &lock);
    let edited = p.run(&["check"]);
    assert_eq!(edited.status.code(), Some(1), "{}", stderr(&edited));
    let out = common::stdout(&edited);
    assert!(
        out.contains("fingerprint does not match the inputs it records"),
        "{out}"
    );
}

fn write_json(p: &Project, lock: &serde_json::Value) {
    let mut text = serde_json::to_string_pretty(lock).unwrap();
    text.push('\n');
    p.write("lock/bitpoll.lock.json", &text);
}

/// `check` on a lock after `edit`: exit 1 and the line that names `name`.
fn check_after_hand_edit(edit: impl FnOnce(&mut Vec<serde_json::Value>), name: &str) -> String {
    let p = Project::new("webapp>=3\n");
    assert_ok(&p.update(&["--no-nixpkgs"]));
    let ok = p.run(&["check"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let mut lock = p.lock();
    let mut packages = lock["packages"].as_array().unwrap().clone();
    edit(&mut packages);
    lock["packages"] = packages.into();
    write_json(&p, &lock);
    let out = p.run(&["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = common::stdout(&out);
    text.lines()
        .find(|l| l.contains(&format!("package entry {name} ")))
        .unwrap_or_else(|| panic!("no line names {name}:\n{text}"))
        .to_string()
}

fn entry_mut<'a>(packages: &'a mut [serde_json::Value], name: &str) -> &'a mut serde_json::Value {
    packages
        .iter_mut()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no entry {name}"))
}

#[test]
fn check_names_an_entry_whose_artifact_hash_was_edited() {
    let line = check_after_hand_edit(
        |packages| {
            entry_mut(packages, "helper")["artifacts"][0]["sha256"] = "0".repeat(64).into();
        },
        "helper",
    );
    assert!(line.contains("edited by hand"), "{line}");
}

#[test]
fn check_names_an_entry_whose_version_was_edited() {
    let line = check_after_hand_edit(
        |packages| entry_mut(packages, "webapp")["version"] = "3.1".into(),
        "webapp",
    );
    assert!(line.contains("webapp 3.1 edited by hand"), "{line}");
}

#[test]
fn check_names_a_removed_entry() {
    let line = check_after_hand_edit(
        |packages| packages.retain(|e| e["name"] != "helper"),
        "helper",
    );
    assert!(line.contains("removed by hand"), "{line}");
}

#[test]
fn offline_runs_use_the_cache() {
    let p = Project::new("webapp>=3\n");
    assert_ok(&p.update(&[]));
    let first = p.lock_text();
    std::fs::remove_file(p.path("lock/bitpoll.lock.json")).unwrap();
    p.server.clear_log();
    assert_ok(&p.update(&["--offline"]));
    assert!(
        p.server.requests().is_empty(),
        "offline must not send requests"
    );
    assert_eq!(first, p.lock_text());
}

#[test]
#[ignore = "prints explanations for a person to read"]
fn show_explanations() {
    let p = Project::new("conflict-a\nconflict-b\n");
    eprintln!("{}", stderr(&p.update(&[])));
    p.write("requirements.in", "webapp\nhelper>=2.1\n");
    p.write("lock/policy.toml", "[source]\nwebapp = \"nixpkgs\"\n");
    eprintln!("{}", stderr(&p.update(&[])));
    p.write("requirements.in", "modern>=2\nyanky>=2\n");
    eprintln!("{}", stderr(&p.update(&[])));
    p.write("requirements.in", "nosuchpkg\n");
    eprintln!("{}", stderr(&p.update(&[])));
}

#[test]
fn without_any_setting_the_installed_pips_default_is_asked_once_and_remembered() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new("helper\n");
    let bin = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let calls = bin.path().join("calls");
    // A stand-in interpreter: answers pip's default-index question with the loopback index,
    // and writes each call on a line of its own (a script given with `-c` has several lines;
    // `PATH` holds this directory alone, so only the shell's own commands are at hand).
    let script = format!(
        "#!/bin/sh\ncase \"$*\" in *pip*) echo \"pip: $1\" ;; *) echo \"other: $1 $2\" ;; esac >> '{}'\necho '{}'\n",
        calls.display(),
        p.server.index_url(),
    );
    let python = bin.path().join("python3");
    std::fs::write(&python, script).unwrap();
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = || {
        let mut cmd = p.command(&["update", "-q", "-r", "requirements.in"], p.cache.path());
        cmd.env("PATH", bin.path())
            .env("HOME", home.path())
            .env_remove("XDG_CONFIG_HOME");
        for var in [
            "UV_DEFAULT_INDEX",
            "UV_INDEX_URL",
            "PIP_INDEX_URL",
            "PIP_CONFIG_FILE",
            "VIRTUAL_ENV",
        ] {
            cmd.env_remove(var);
        }
        cmd.output().unwrap()
    };
    assert_ok(&run());
    assert_ok(&run());
    assert_eq!(
        version_source(&p, "helper"),
        ("2.0".into(), "nixpkgs".into())
    );
    let asked = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(
        asked.lines().filter(|l| l.contains("pip")).count(),
        1,
        "pip is asked once, then its answer is reused:\n{asked}"
    );
    // The interpreter that would run build backends is probed once too (this stand-in is
    // no Python, and that answer is remembered as well).
    assert_eq!(asked.lines().count(), 2, "{asked}");
}

#[test]
fn an_sdist_is_read_once_then_its_files_come_from_the_cache() {
    // Without the downloaded archives, an offline run still knows what the sdists said.
    Project::new("linuxonly\nsdistonly\n").assert_relocks_offline_without_archives();
}
