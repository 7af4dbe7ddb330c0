//! PEP 740 provenance: the publisher of each file is locked, and `diff` flags a new version
//! that lost the provenance its predecessor had, or whose publisher changed.

mod common;

use common::{assert_ok, stdout, Project};

const SIGNED: &str = r#"
[packages.signed.versions."1.0"]
publisher = { kind = "GitHub", repository = "org/signed", workflow = "release.yml", environment = "pypi" }
[packages.signed.versions."2.0"]
[packages.signed.versions."3.0"]
publisher = { kind = "GitHub", repository = "someone-else/signed", workflow = "publish.yml" }
"#;

fn lock_with(p: &Project, requirement: &str) {
    p.write("requirements.in", requirement);
    assert_ok(&p.update(&["--no-nixpkgs"]));
}

fn diff_from(p: &Project, old: &str) -> String {
    let out = p.run(&["diff", old, "--format", "markdown"]);
    assert_ok(&out);
    stdout(&out)
}

#[test]
fn the_publisher_is_locked_and_its_loss_or_change_is_flagged() {
    let p = Project::with_packages("signed==1.0\n", SIGNED);
    lock_with(&p, "signed==1.0\n");
    let entry = p.entry("signed");
    assert_eq!(
        entry["artifacts"][0]["publisher"],
        "GitHub environment=pypi repository=org/signed workflow=release.yml"
    );
    std::fs::copy(p.path("lock/bitpoll.lock.json"), p.path("old.json")).unwrap();
    assert_ok(&p.run(&["check"]));

    // 2.0 comes without provenance: the lock says nothing, the diff says it was lost.
    lock_with(&p, "signed==2.0\n");
    assert!(p.entry("signed")["artifacts"][0].get("publisher").is_none());
    let md = diff_from(&p, "old.json");
    assert!(md.contains("### Security"), "{md}");
    assert!(
        md.contains("**signed 2.0**: provenance lost: 1.0 had provenance from GitHub environment=pypi repository=org/signed workflow=release.yml; 2.0 has none"),
        "{md}"
    );

    // 3.0 is attested, by someone else.
    lock_with(&p, "signed==3.0\n");
    let md = diff_from(&p, "old.json");
    assert!(
        md.contains("**signed 3.0**: publisher changed: GitHub environment=pypi repository=org/signed workflow=release.yml -> GitHub repository=someone-else/signed workflow=publish.yml"),
        "{md}"
    );
    assert!(!md.contains("provenance lost"), "{md}");

    // Going from no provenance to some is no finding.
    std::fs::copy(p.path("lock/bitpoll.lock.json"), p.path("three.json")).unwrap();
    lock_with(&p, "signed==2.0\n");
    std::fs::copy(p.path("lock/bitpoll.lock.json"), p.path("two.json")).unwrap();
    let out = p.run(&["diff", "two.json", "three.json"]);
    assert_ok(&out);
    assert!(!stdout(&out).contains("Security"), "{}", stdout(&out));
}
