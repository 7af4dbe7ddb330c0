//! `audit` against the loopback index's JSON API and an OSV directory fixture
//! (tests/fixtures/osv), including pins no source answers for, and the advisory findings of
//! `diff`.

mod common;

use common::{assert_ok, fixture, stdout, Project};

const LEAKY: &str = r#"
[packages.leaky.versions."1.0"]
vulnerabilities = [{ id = "PYSEC-2026-1", aliases = ["CVE-2026-0001"], summary = "Remote code execution in leaky's loader", fixed_in = ["2.0"] }]
[packages.leaky.versions."2.0"]
"#;

fn project(requirements: &str) -> Project {
    let p = Project::with_packages(requirements, LEAKY);
    assert_ok(&p.update(&["--no-nixpkgs"]));
    p
}

fn audit(p: &Project, extra: &[&str]) -> std::process::Output {
    let url = p.server.index_url();
    let mut args = vec!["audit", "--index-url", url.as_str()];
    args.extend_from_slice(extra);
    p.run(&args)
}

fn osv() -> String {
    fixture("osv").display().to_string()
}

#[test]
fn the_index_json_api_reports_advisories_and_their_absence_is_not_clean() {
    let p = project("leaky==1.0\nhelper\n");
    let out = audit(&p, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("leaky 1.0:\n  ! PYSEC-2026-1 (unknown) aka CVE-2026-0001: Remote code execution in leaky's loader; fixed in 2.0 [index JSON API]"),
        "{text}"
    );
    assert!(
        text.contains("2 pins: 1 advisories (1 at or above low), 0 not checked"),
        "{text}"
    );
    // No severity from the JSON API ranks as high, below critical.
    assert_eq!(audit(&p, &["--fail-on", "high"]).status.code(), Some(1));
    assert_eq!(audit(&p, &["--fail-on", "critical"]).status.code(), Some(0));

    // An index that serves no advisory data, or no document at all: not checked.
    p.server.set_route(
        "/pypi/leaky/1.0/json",
        bitpoll_tests::server::Response::new(200, "application/json", r#"{"info": {}}"#),
    );
    p.server.remove_route("/pypi/helper/2.1/json");
    let out = audit(&p, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("leaky 1.0: not checked (the index serves no advisory data)"),
        "{text}"
    );
    assert!(
        text.contains("helper 2.1: not checked (the index has no JSON API document for it)"),
        "{text}"
    );
    assert!(
        text.contains("2 pins: 0 advisories (0 at or above low), 2 not checked"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&audit(&p, &["--format", "json"]))).unwrap();
    assert_eq!(json["not_checked"], 2);
    assert_eq!(json["pins"][0]["status"], "not-checked");
}

#[test]
fn an_osv_export_is_matched_by_name_and_version_range() {
    let p = project("leaky==1.0\nhelper\n");
    let out = audit(&p, &["--no-index", "--osv-db", &osv()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("  ! GHSA-lk11-aaaa-bbbb (high) aka CVE-2026-0001, PYSEC-2026-1: Remote code execution in leaky's loader; fixed in 2.0 [OSV database]"),
        "{text}"
    );
    assert!(
        text.contains("helper 2.1:\n  ! PYSEC-2026-7 (unknown) aka CVE-2026-0007: helper 2.1 ships a debug endpoint that is on by default."),
        "{text}"
    );
    assert!(
        !text.contains("GHSA-npm0"),
        "another ecosystem's advisory: {text}"
    );
    assert_eq!(
        audit(
            &p,
            &["--no-index", "--osv-db", &osv(), "--fail-on", "critical"]
        )
        .status
        .code(),
        Some(0)
    );

    // Both sources: one advisory under its several names, from both.
    let out = audit(&p, &["--osv-db", &osv(), "--format", "markdown"]);
    let md = stdout(&out);
    assert!(md.starts_with("### Known vulnerabilities\n"), "{md}");
    assert!(
        md.contains("2 pins: 2 advisories (2 at or above low), 0 not checked"),
        "{md}"
    );
    assert!(
        md.contains("| leaky 1.0 | PYSEC-2026-1 | high | 2.0 |"),
        "{md}"
    );

    // After the upgrade nothing matches, and both sources were asked: checked and clean.
    p.write("requirements.in", "leaky==2.0\nhelper==2.0\n");
    assert_ok(&p.update(&["--no-nixpkgs"]));
    let out = audit(&p, &["--osv-db", &osv()]);
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        "2 pins: 0 advisories (0 at or above low), 0 not checked\n"
    );
}

#[test]
fn diff_flags_new_advisories_and_fixed_ones() {
    let p = project("leaky==1.0\nhelper==2.0\n");
    std::fs::copy(p.path("lock/bitpoll.lock.json"), p.path("vulnerable.json")).unwrap();
    p.write("requirements.in", "leaky==2.0\nhelper==2.1\n");
    assert_ok(&p.update(&["--no-nixpkgs"]));
    std::fs::copy(p.path("lock/bitpoll.lock.json"), p.path("fixed.json")).unwrap();

    let out = p.run(&[
        "diff",
        "vulnerable.json",
        "fixed.json",
        "--osv-db",
        &osv(),
        "--format",
        "markdown",
    ]);
    assert_ok(&out);
    let md = stdout(&out);
    assert!(
        md.contains("- **leaky 2.0**: vulnerability fixed: leaky 1.0 had GHSA-lk11-aaaa-bbbb; this version does not"),
        "{md}"
    );
    assert!(
        md.contains("- **helper 2.1**: known vulnerability: PYSEC-2026-7 (unknown)"),
        "{md}"
    );

    // The index's JSON API as the source, the other way round.
    let url = p.server.index_url();
    let out = p.run(&[
        "diff",
        "fixed.json",
        "vulnerable.json",
        "--index-advisories",
        "--index-url",
        &url,
    ]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("  ! leaky 1.0: known vulnerability: PYSEC-2026-1 (unknown): Remote code execution in leaky's loader; fixed in 2.0"),
        "{text}"
    );
    // Without a source, the diff claims nothing about advisories.
    let out = p.run(&["diff", "vulnerable.json", "fixed.json"]);
    assert!(!stdout(&out).contains("Security"), "{}", stdout(&out));
}
