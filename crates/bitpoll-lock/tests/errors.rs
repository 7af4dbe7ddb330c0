//! Bad input and a failing index: a clear error, the documented exit code, and the existing
//! lock left exactly as it was.

mod common;

use bitpoll_tests::server::{Fault, Response};
use common::{assert_ok, stderr, Project};

/// A project with a good lock already written, so every failure can be checked against it.
fn locked() -> (Project, String) {
    let p = Project::new("helper\nwebapp>=3\n");
    assert_ok(&p.update(&[]));
    let lock = p.lock_text();
    (p, lock)
}

#[track_caller]
fn fails_with(p: &Project, before: &str, code: i32, needles: &[&str]) {
    let out = p.update_fresh(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    for n in needles {
        assert!(err.contains(n), "error should mention {n:?}:\n{err}");
    }
    common::assert_lock_untouched(p, before);
}

#[test]
fn malformed_requirement_line_names_file_and_line() {
    let (p, before) = locked();
    p.write("requirements.in", "helper\n\nwebapp >>> 3\n");
    fails_with(&p, &before, 2, &["requirements.in:3", "webapp >>> 3"]);
}

#[test]
fn bad_input_on_a_first_run_creates_no_lock() {
    for requirements in ["webapp >>> 3\n", "-r base.in\n", "no-such-package\n"] {
        let p = Project::new(requirements);
        let out = p.update_fresh(&[]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        common::assert_no_lock_created(&p);
    }
}

#[test]
fn missing_include_names_the_including_line() {
    let (p, before) = locked();
    p.write("requirements.in", "helper\n-r base.in\n");
    fails_with(&p, &before, 2, &["requirements.in:2", "base.in"]);
}

#[test]
fn unknown_package_is_bad_input() {
    let (p, before) = locked();
    p.write("requirements.in", "helper\nno-such-package\n");
    fails_with(&p, &before, 2, &["no-such-package", "not found"]);
}

#[test]
fn unreachable_index_is_a_network_failure() {
    let (p, before) = locked();
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cache = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bitpoll-lock"))
        .args(["update", "-q", "-r", "requirements.in", "--index-url"])
        .arg(format!("http://user:s3cret@127.0.0.1:{port}/simple/"))
        .current_dir(p.dir.path())
        .env("BITPOLL_LOCK_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("127.0.0.1"), "{err}");
    assert!(
        !err.contains("s3cret"),
        "credentials must never be printed:\n{err}"
    );
    assert_eq!(before, p.lock_text());
}

#[test]
fn malformed_json_from_the_index_is_a_network_failure() {
    let (p, before) = locked();
    let broken = || {
        Response::new(
            200,
            bitpoll_tests::universe::SIMPLE_JSON,
            "{\"files\": [oops",
        )
    };
    // nixpkgs serves helper, so its index page is never read: a broken one does no harm.
    p.server.set_route("/simple/helper/", broken());
    assert_ok(&p.update_fresh(&[]));
    assert_eq!(before, p.lock_text());
    // webapp>=3 comes from the index, whose page is needed.
    p.server.set_route("/simple/webapp/", broken());
    fails_with(&p, &before, 3, &["webapp"]);
}

#[test]
fn wrong_core_metadata_hash_is_refused() {
    let (p, before) = locked();
    let path = "/files/webapp-3.0-py3-none-any.whl.metadata";
    let good = p.server.route(path).unwrap();
    let mut bad = good.body.clone();
    bad.extend_from_slice(b"Requires-Dist: evil\n");
    p.server
        .set_route(path, Response::new(200, "application/octet-stream", bad));
    fails_with(&p, &before, 3, &["sha256", "webapp-3.0"]);
}

#[test]
fn transient_server_errors_are_retried() {
    let p = Project::new("helper\n");
    p.server.inject(
        "/simple/helper/",
        Fault::Replace {
            response: Response::new(503, "text/plain", "busy").with_header("Retry-After", "0"),
            times: 2,
        },
    );
    assert_ok(&p.update(&["--no-nixpkgs"]));
    let hits = p
        .server
        .requests()
        .iter()
        .filter(|r| r.path == "/simple/helper/")
        .count();
    assert_eq!(hits, 3, "two 503s, then success");
}

#[test]
fn bad_policy_and_bad_nixpkgs_index_are_bad_input() {
    let (p, before) = locked();
    p.write("lock/policy.toml", "[source]\nhelper = \"elsewhere\"\n");
    fails_with(&p, &before, 2, &["lock/policy.toml:2"]);
    p.write("lock/policy.toml", "");
    let idx = std::fs::read_to_string(p.path("lock/nixpkgs-index.json")).unwrap();
    p.write(
        "lock/nixpkgs-index.json",
        &idx.replace("\"2.0\"", "\"two\""),
    );
    fails_with(&p, &before, 2, &["nixpkgs-index.json", "two"]);
}

#[test]
fn unknown_system_and_bad_date_are_usage_errors() {
    let p = Project::new("helper\n");
    let out = p.update(&["--system", "x86_64-windows"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("x86_64-windows"));
    let out = p.update(&["--exclude-newer", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--exclude-newer"));
}

#[test]
fn verify_rehashes_every_artifact_and_reports_mismatches() {
    let p = Project::new("webapp>=3\nnative\n");
    assert_ok(&p.update(&[]));
    let url = p.server.index_url();
    let ok = p.run(&["verify", "--index-url", &url]);
    assert_ok(&ok);
    assert!(
        stderr(&ok).contains("verified 6 artifacts: 6 ok, 0 failed"),
        "{}",
        stderr(&ok)
    );
    // The index now serves other bytes for one wheel: verify must catch it.
    p.server.set_route(
        "/files/native-1.0-cp313-cp313-macosx_11_0_arm64.whl",
        Response::new(200, "application/octet-stream", b"not the wheel".to_vec()),
    );
    let bad = p.run(&["verify", "--index-url", &url]);
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    let out = common::stdout(&bad);
    assert!(
        out.contains("MISMATCH native-1.0-cp313-cp313-macosx_11_0_arm64.whl"),
        "{out}"
    );
    assert_eq!(
        out.lines().count(),
        1,
        "only the changed file is reported:\n{out}"
    );
}

#[test]
fn an_error_says_each_cause_once() {
    let p = Project::new("helper\n");
    let out = p.run(&["update", "-q", "-r", "missing.in"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: missing.in: cannot read requirement file"),
        "{err}"
    );
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}
