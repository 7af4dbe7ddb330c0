//! What reviewers see of locked build systems: `diff` flags a changed build package,
//! `why` explains a build package, `verify` re-hashes build packages too. Against the
//! loopback index, where `linuxonly` is built from its sdist on every target but
//! x86_64-linux.

mod common;

use common::{assert_ok, stderr, stdout, Project};

/// A lock whose build system for linuxonly is nixpkgs' setuptools, saved as `old.json`,
/// and the same inputs with setuptools forced to the index in `lock/bitpoll.lock.json`.
fn nixpkgs_then_index_setuptools() -> Project {
    let p = Project::new("linuxonly\n");
    assert_ok(&p.update(&[]));
    std::fs::copy(p.path("lock/bitpoll.lock.json"), p.path("old.json")).unwrap();
    p.write("lock/policy.toml", "[source]\nsetuptools = \"index\"\n");
    assert_ok(&p.update(&["--policy", "lock/policy.toml"]));
    p
}

#[test]
fn diff_flags_a_changed_build_package_on_the_targets_that_build() {
    let p = nixpkgs_then_index_setuptools();
    let out = p.run(&[
        "diff",
        "old.json",
        "lock/bitpoll.lock.json",
        "--format",
        "json",
    ]);
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let change = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "linuxonly")
        .unwrap_or_else(|| panic!("no change for linuxonly: {report:#}"));
    assert!(
        change["flags"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("build-system-changed")),
        "{change:#}"
    );
    let notes = change["notes"].to_string();
    assert!(
        notes.contains("build packages: setuptools 80.9.0 -> 70.0"),
        "{notes}"
    );
    // The runtime set is unchanged: setuptools is no runtime package on either side.
    assert!(report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["name"] != "setuptools"));
}

#[test]
fn why_explains_a_build_package() {
    let p = Project::new("linuxonly\n");
    assert_ok(&p.update(&[]));
    let out = p.run(&["why", "setuptools"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains(
            "setuptools 80.9.0 (nixpkgs: setuptools) builds linuxonly 1.0 (aarch64-darwin, aarch64-linux, x86_64-darwin):"
        ),
        "{text}"
    );
    assert!(
        text.contains("never part of the runtime environment"),
        "{text}"
    );
}

#[test]
fn verify_rehashes_build_packages_too() {
    let p = nixpkgs_then_index_setuptools();
    let url = p.server.index_url();
    let ok = p.run(&["verify", "--index-url", &url]);
    assert_ok(&ok);
    // linuxonly's wheel and sdist, and the setuptools wheel that builds it.
    assert!(
        stderr(&ok).contains("verified 3 artifacts: 3 ok, 0 failed"),
        "{}",
        stderr(&ok)
    );
    let lock = p.lock_text();
    let sha = &p.sha256["setuptools-70.0-py3-none-any.whl"];
    p.write(
        "lock/bitpoll.lock.json",
        &lock.replace(sha.as_str(), &"0".repeat(64)),
    );
    let bad = p.run(&["verify", "--index-url", &url]);
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    assert!(
        stdout(&bad).contains("setuptools-70.0-py3-none-any.whl"),
        "{}",
        stdout(&bad)
    );
}
