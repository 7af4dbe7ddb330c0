//! The reviewer's commands: `diff` (text, markdown, json; files and git revisions), `why` and
//! `export`, on hand-written fixture locks (tests/fixtures/locks/) and on a resolved lock.

mod common;

use std::process::Command;

use common::{assert_ok, fixture, stdout, Project};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bitpoll-lock"))
}

fn diff(format: &str) -> String {
    let out = bin()
        .args(["diff", "old.json", "new.json", "--format", format])
        .current_dir(fixture("locks"))
        .output()
        .unwrap();
    assert_ok(&out);
    stdout(&out)
}

#[test]
fn text_diff_lists_every_kind_of_change_and_flag() {
    let expected = std::fs::read_to_string(fixture("locks/diff.txt")).unwrap();
    // The snapshot was written with paths relative to the repository root.
    let expected = expected.replace("tests/fixtures/locks/", "");
    assert_eq!(diff("text"), expected);
}

#[test]
fn markdown_diff_is_a_pull_request_body() {
    let md = diff("markdown");
    let expected = std::fs::read_to_string(fixture("locks/diff.md")).unwrap();
    assert_eq!(md, expected);
    // Summary table before the second-look list, details collapsed last.
    let table = md.find("| added | removed |").unwrap();
    let look = md.find("### Needs a second look").unwrap();
    let details = md.find("<details>").unwrap();
    assert!(table < look && look < details);
}

#[test]
fn json_diff_carries_kinds_flags_and_targets() {
    let v: serde_json::Value = serde_json::from_str(&diff("json")).unwrap();
    let changes = v["changes"].as_array().unwrap();
    let find = |name: &str| changes.iter().find(|c| c["name"] == name).unwrap().clone();
    assert_eq!(find("lib")["kind"], "downgraded");
    assert_eq!(
        find("lib")["flags"],
        serde_json::json!(["downgrade", "yanked"])
    );
    assert_eq!(find("stable")["flags"], serde_json::json!(["hash-changed"]));
    assert_eq!(find("moved")["kind"], "source-moved");
    assert_eq!(find("moved")["new"]["source"], "nixpkgs");
    assert_eq!(
        find("meta")["flags"],
        serde_json::json!(["metadata-source-changed"])
    );
    assert_eq!(
        find("fastlib")["flags"],
        serde_json::json!(["new-sdist-build", "native-code", "new-transitive"])
    );
    assert_eq!(
        find("beta")["flags"],
        serde_json::json!(["pre-release", "new-transitive"])
    );
    assert_eq!(
        find("tzshim")["targets"],
        serde_json::json!(["aarch64-darwin"])
    );
    assert_eq!(find("gone")["kind"], "removed");
    assert_eq!(find("app")["kind"], "upgraded");
    assert!(find("app")["flags"].as_array().unwrap().is_empty());
}

#[test]
fn diff_reads_git_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t.invalid"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q"]);
    std::fs::create_dir(dir.path().join("lock")).unwrap();
    let lock = dir.path().join("lock/bitpoll.lock.json");
    std::fs::copy(fixture("locks/old.json"), &lock).unwrap();
    git(&["add", "."]);
    git(&["commit", "-qm", "old"]);
    std::fs::copy(fixture("locks/new.json"), &lock).unwrap();
    git(&["commit", "-qam", "new"]);
    let out = bin()
        .args(["diff", "HEAD~1", "HEAD"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.starts_with("HEAD~1:lock/bitpoll.lock.json -> HEAD:lock/bitpoll.lock.json: 9 changes"),
        "{text}"
    );
    // Without NEW, the working tree's lock is compared.
    let out = bin()
        .args(["diff", "HEAD"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(stdout(&out).starts_with("No changes"), "{}", stdout(&out));
    let out = bin()
        .args(["diff", "no-such-rev"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn why_shows_every_path_per_target() {
    let p = Project::new("webapp>=3\nhelper\n");
    assert_ok(&p.update(&[]));
    let out = p.run(&["why", "helper"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("requirements.in: helper -> helper 2.0 (nixpkgs: helper)"),
        "{text}"
    );
    assert!(
        text.contains(
            "requirements.in: webapp>=3 -> webapp 3.0 (pypi) -> helper 2.0 (nixpkgs: helper)"
        ),
        "{text}"
    );
    let out = p.run(&["why", "tzshim"]);
    let text = stdout(&out);
    assert!(text.contains("tzshim (aarch64-darwin, x86_64-darwin):\n  requirements.in: webapp>=3 -> webapp 3.0 (pypi) -> tzshim 1.0 (pypi)"), "{text}");
    assert!(
        text.contains("tzshim (aarch64-linux, x86_64-linux):\n  not needed"),
        "{text}"
    );
    assert_eq!(p.run(&["why", "nothing-like-it"]).status.code(), Some(2));
}

#[test]
fn export_requirements_txt_pins_the_targets_files() {
    let p = Project::new("webapp>=3\nnative\n");
    assert_ok(&p.update(&[]));
    let out = p.run(&[
        "export",
        "--format",
        "requirements-txt",
        "--system",
        "aarch64-darwin",
    ]);
    assert_ok(&out);
    let text = stdout(&out);
    let wheel = "native-1.0-cp313-cp313-macosx_11_0_arm64.whl";
    assert!(
        text.contains(&format!(
            "native==1.0 \\\n    --hash=sha256:{}\n",
            p.sha256[wheel]
        )),
        "{text}"
    );
    // Only the darwin wheel's hash, not the other targets'.
    assert_eq!(text.matches("native==1.0").count(), 1);
    assert_eq!(
        text.lines().filter(|l| l.contains("--hash")).count(),
        3,
        "{text}"
    ); // native, webapp, tzshim
    assert!(
        text.contains("#   helper==2.0 (attribute helper)"),
        "{text}"
    );
    let linux = stdout(&p.run(&["export", "--system", "x86_64-linux"]));
    assert!(!linux.contains("tzshim"), "tzshim is darwin-only:\n{linux}");
    assert_eq!(
        p.run(&["export", "--system", "riscv64-linux"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn export_pylock_lists_the_targets_files_with_urls_and_hashes() {
    let p = Project::new("webapp>=3\nnative\n");
    assert_ok(&p.update(&[]));
    let url = p.server.index_url();
    let out = p.run(&[
        "export",
        "--format",
        "pylock",
        "--system",
        "x86_64-linux",
        "--index-url",
        &url,
    ]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("#   helper==2.0 (attribute helper)"),
        "{text}"
    );
    let doc: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(doc["lock-version"].as_str(), Some("1.0"));
    assert_eq!(doc["requires-python"].as_str(), Some("==3.13.*"));
    let env = doc["environments"][0].as_str().unwrap();
    assert!(
        env.contains("sys_platform == 'linux'") && env.contains("platform_machine == 'x86_64'"),
        "{env}"
    );
    let packages = doc["packages"].as_array().unwrap();
    let native = packages
        .iter()
        .find(|p| p["name"].as_str() == Some("native"))
        .unwrap();
    let wheels = native["wheels"].as_array().unwrap();
    assert_eq!(wheels.len(), 1, "only the x86_64-linux wheel");
    let name = wheels[0]["name"].as_str().unwrap();
    assert!(name.contains("manylinux_2_17_x86_64"), "{name}");
    assert_eq!(
        wheels[0]["hashes"]["sha256"].as_str(),
        Some(p.sha256[name].as_str())
    );
    assert_eq!(
        wheels[0]["url"].as_str().unwrap(),
        format!("{}/files/{name}", p.server.base_url())
    );
    assert!(
        packages
            .iter()
            .all(|p| p["name"].as_str() != Some("tzshim")),
        "tzshim is darwin-only"
    );
}

#[test]
fn diff_says_when_a_removed_package_was_replaced_by_the_policy() {
    let p = Project::new("yanky\n");
    assert_ok(&p.update(&["--no-nixpkgs", "--lock", "lock/old.json"]));
    p.write("lock/policy.toml", "[replace]\nyanky = \"preview\"\n");
    assert_ok(&p.update(&[]));
    let out = p.run(&["diff", "lock/old.json"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(text.contains("removed      yanky: 1.0 (index) -> -\n    still required; served by its replacement in the policy"), "{text}");
    assert!(
        text.contains("added        preview: - -> 1.0 (index)"),
        "{text}"
    );
}
