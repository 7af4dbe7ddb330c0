//! `min-release-age`: fresh files are held back unless pinned with `==`, the cut-off is
//! recorded so a re-run reproduces the lock, upload times are in the lock, and `diff` points
//! at young pins.

mod common;

use bitpoll_client::Timestamp;
use common::{assert_ok, stderr, stdout, Project};

/// `fresh` 1.0 is old; 2.0 was uploaded a day before the test runs.
fn project(requirements: &str) -> Project {
    let day_ago = Timestamp::from_unix(Timestamp::now().unix_secs() - 86_400).to_rfc3339();
    let more = format!(
        "[packages.fresh.versions.\"1.0\"]\n\
         [packages.fresh.versions.\"2.0\"]\n\
         upload_time = \"{day_ago}\"\n"
    );
    Project::with_packages(requirements, &more)
}

fn pinned_version(p: &Project, name: &str) -> String {
    p.entry(name)["version"].as_str().unwrap().to_string()
}

#[test]
fn fresh_files_are_held_back_unless_pinned() {
    let p = project("fresh\n");
    assert_ok(&p.update(&["--no-nixpkgs", "--min-release-age", "7 days"]));
    assert_eq!(pinned_version(&p, "fresh"), "1.0");
    let inputs = p.lock()["inputs"].clone();
    assert_eq!(inputs["min_release_age"], "1 week");
    let cutoff = inputs["release_cutoff"].as_str().unwrap().to_string();
    let cut = Timestamp::parse(&cutoff).unwrap();
    let week = 7 * 86_400;
    let now = Timestamp::now().unix_secs();
    assert!(
        cut.unix_secs() <= now - week && cut.unix_secs() > now - week - 86_400,
        "cut-off {cutoff} is the start of the day a week ago"
    );
    let artifact = &p.entry("fresh")["artifacts"][0];
    assert_eq!(artifact["upload_time"], "2024-01-01T00:00:00Z");

    // Without a window the fresh release is taken.
    assert_ok(&p.update(&["--no-nixpkgs", "--upgrade"]));
    assert_eq!(pinned_version(&p, "fresh"), "2.0");
    assert!(p.lock()["inputs"].get("release_cutoff").is_none());

    // An `==` pin takes it whatever its age.
    let p = project("fresh==2.0\n");
    assert_ok(&p.update(&["--no-nixpkgs", "--min-release-age", "7 days"]));
    assert_eq!(pinned_version(&p, "fresh"), "2.0");
}

#[test]
fn the_policy_sets_the_window_and_the_recorded_cut_off_reproduces_the_lock() {
    let p = project("fresh\nhelper\n");
    p.write("lock/policy.toml", "min-release-age = \"3 days\"\n");
    assert_ok(&p.update(&["--no-nixpkgs"]));
    assert_eq!(pinned_version(&p, "fresh"), "1.0");
    let first = p.lock_text();
    let cutoff = p.lock()["inputs"]["release_cutoff"]
        .as_str()
        .unwrap()
        .to_string();
    let check = p.run(&["check"]);
    assert_ok(&check);

    // The same cut-off given back gives the same lock, byte for byte.
    std::fs::remove_file(p.path("lock/bitpoll.lock.json")).unwrap();
    assert_ok(&p.update(&["--no-nixpkgs", "--release-cutoff", &cutoff]));
    assert_eq!(p.lock_text(), first);

    // A cut-off after the fresh upload admits it, and is what the lock records.
    let later = Timestamp::from_unix(Timestamp::now().unix_secs() + 3600).to_rfc3339();
    assert_ok(&p.update(&["--no-nixpkgs", "--upgrade", "--release-cutoff", &later]));
    assert_eq!(pinned_version(&p, "fresh"), "2.0");
    assert_eq!(p.lock()["inputs"]["release_cutoff"], later.as_str());
    assert_ok(&p.run(&["check"]));

    p.write("lock/policy.toml", "min-release-age = \"a while\"\n");
    let out = p.update(&["--no-nixpkgs"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("min-release-age"), "{}", stderr(&out));
}

#[test]
fn a_refresh_that_changes_nothing_keeps_the_recorded_cut_off() {
    let p = project("fresh\n");
    let old_cutoff = "2025-06-01T00:00:00Z";
    assert_ok(&p.update(&[
        "--no-nixpkgs",
        "--min-release-age",
        "7 days",
        "--release-cutoff",
        old_cutoff,
    ]));
    let first = p.lock_text();
    assert_eq!(p.lock()["inputs"]["release_cutoff"], old_cutoff);
    // Today's cut-off is later, but admits nothing new: the lock stays as it was.
    assert_ok(&p.update(&["--no-nixpkgs", "--min-release-age", "7 days"]));
    assert_eq!(p.lock_text(), first);
    assert_ok(&p.run(&["check"]));
    // When the later cut-off changes the pins, the lock records it.
    p.write("requirements.in", "fresh\nhelper\n");
    assert_ok(&p.update(&["--no-nixpkgs", "--min-release-age", "7 days"]));
    assert_ne!(p.lock()["inputs"]["release_cutoff"], old_cutoff);
}

#[test]
fn diff_flags_a_new_pin_younger_than_the_window() {
    let p = project("fresh\n");
    assert_ok(&p.update(&["--no-nixpkgs", "--min-release-age", "7 days"]));
    std::fs::copy(p.path("lock/bitpoll.lock.json"), p.path("old.json")).unwrap();
    // The refresh without a window takes 2.0, a day old: under the default week.
    assert_ok(&p.update(&["--no-nixpkgs", "--upgrade"]));
    let out = p.run(&["diff", "old.json", "--format", "markdown"]);
    assert_ok(&out);
    let md = stdout(&out);
    let security = md.find("### Security").expect("a Security section");
    assert!(
        security < md.find("| added |").unwrap(),
        "the Security section comes first:\n{md}"
    );
    assert!(
        md.contains("**fresh 2.0**: released recently: uploaded "),
        "{md}"
    );
    assert!(md.contains("within the 1 week window"), "{md}");

    // A window of a few hours says the same release is old enough.
    let out = p.run(&["diff", "old.json"]);
    assert!(stdout(&out).contains("fresh 2.0: released recently"));
    let lock = std::fs::read_to_string(p.path("lock/bitpoll.lock.json")).unwrap();
    let short = lock.replace(
        "\"no_nixpkgs\": true",
        "\"no_nixpkgs\": true,\n    \"min_release_age\": \"2 hours\"",
    );
    assert_ne!(short, lock, "the inputs carry no_nixpkgs");
    std::fs::write(p.path("short.json"), short).unwrap();
    let out = p.run(&["diff", "old.json", "short.json"]);
    assert_ok(&out);
    assert!(!stdout(&out).contains("Security"), "{}", stdout(&out));
}
