//! A hostile or failing index: every fault ends in a clear error with exit code 3 after a
//! bounded number of attempts, and the previous lock stays byte-identical.

mod common;

use std::time::{Duration, Instant};

use bitpoll_tests::server::{Fault, Response};
use bitpoll_tests::universe::SIMPLE_JSON;
use common::{assert_ok, stderr, Project};

const PAGE: &str = "/simple/helper/";

/// A project with a lock already written; its runs use a fresh cache so faults are not
/// masked by cached answers.
fn locked() -> (Project, String) {
    let p = Project::new("helper\n");
    assert_ok(&p.update(&["--no-nixpkgs"]));
    let lock = p.lock_text();
    (p, lock)
}

fn run_fresh(p: &Project, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--no-nixpkgs"];
    args.extend_from_slice(extra);
    p.update_fresh(&args)
}

#[track_caller]
fn network_failure(p: &Project, before: &str, extra: &[&str], needle: &str) -> String {
    let out = run_fresh(p, extra);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains(needle),
        "error should mention {needle:?}:\n{err}"
    );
    common::assert_lock_untouched(p, before);
    err
}

fn page_hits(p: &Project) -> usize {
    page_times(p).len()
}

/// When each request for the project page arrived.
fn page_times(p: &Project) -> Vec<Instant> {
    p.server
        .requests()
        .iter()
        .filter(|r| r.path == PAGE)
        .map(|r| r.at)
        .collect()
}

/// The client's documented backoff: 250 ms before the first retry, doubling each time (plus
/// jitter, which only adds).
const BACKOFF_BASE: Duration = Duration::from_millis(250);

/// Gaps between consecutive requests for the page, checked against the backoff loosely: each
/// at least the backoff's floor for that retry, and none shorter than the one before.
#[track_caller]
fn assert_backoff(times: &[Instant]) {
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    for (i, gap) in gaps.iter().enumerate() {
        let floor = BACKOFF_BASE * (1 << i);
        assert!(
            *gap >= floor,
            "retry {} came after {gap:?}, before the backoff of {floor:?}; gaps: {gaps:?}",
            i + 1
        );
    }
    assert!(
        gaps.windows(2).all(|w| w[1] >= w[0]),
        "the backoff must not shrink: {gaps:?}"
    );
}

#[test]
fn server_errors_are_retried_a_bounded_number_of_times() {
    let (p, before) = locked();
    p.server.clear_log();
    let busy = Response::new(500, "text/plain", "oops").with_header("Retry-After", "0");
    p.server.inject(
        PAGE,
        Fault::Replace {
            response: busy,
            times: 100,
        },
    );
    network_failure(&p, &before, &["--retries", "2"], "500");
    assert_eq!(page_hits(&p), 3, "one try and two retries");
}

#[test]
fn by_default_a_server_error_is_retried_three_times_with_growing_backoff() {
    let (p, before) = locked();
    p.server.clear_log();
    p.server.inject(
        PAGE,
        Fault::Replace {
            response: Response::new(500, "text/plain", "oops"),
            times: 100,
        },
    );
    network_failure(&p, &before, &[], "500");
    let times = page_times(&p);
    assert_eq!(times.len(), 4, "one try and the default three retries");
    assert_backoff(&times);
}

#[test]
fn retry_after_sets_the_wait() {
    let (p, before) = locked();
    p.server.clear_log();
    let busy = Response::new(503, "text/plain", "busy").with_header("Retry-After", "1");
    p.server.inject(
        PAGE,
        Fault::Replace {
            response: busy,
            times: 100,
        },
    );
    network_failure(&p, &before, &["--retries", "1"], "503");
    let times = page_times(&p);
    assert_eq!(times.len(), 2);
    assert!(
        times[1] - times[0] >= Duration::from_secs(1),
        "Retry-After: 1 waits a second, not {:?}",
        times[1] - times[0]
    );
}

#[test]
fn a_503_without_retry_after_is_retried_with_backoff() {
    let (p, before) = locked();
    p.server.clear_log();
    p.server.inject(
        PAGE,
        Fault::Replace {
            response: Response::new(503, "text/plain", "busy"),
            times: 1,
        },
    );
    assert_ok(&run_fresh(&p, &[]));
    let times = page_times(&p);
    assert_eq!(times.len(), 2);
    assert_backoff(&times);
    common::assert_lock_untouched(&p, &before);
}

#[test]
fn a_connection_reset_and_a_truncated_body_are_retried_then_fail_cleanly() {
    let (p, before) = locked();
    for fault in [Fault::Reset, Fault::Truncate] {
        p.server.clear_log();
        p.server.inject(PAGE, fault);
        network_failure(&p, &before, &["--retries", "1"], "helper");
        let times = page_times(&p);
        assert_eq!(times.len(), 2, "one try and one retry");
        assert_backoff(&times);
    }
}

#[test]
fn a_response_slower_than_the_timeout_is_abandoned() {
    let (p, before) = locked();
    p.server.inject(PAGE, Fault::Delay(Duration::from_secs(5)));
    let started = Instant::now();
    p.server.clear_log();
    network_failure(&p, &before, &["--timeout", "1", "--retries", "0"], "helper");
    assert_eq!(page_hits(&p), 1, "--retries 0 sends one request");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the timeout must cut the wait short"
    );
}

#[test]
fn invalid_json_and_a_wrong_content_type_are_index_failures() {
    let (p, before) = locked();
    p.server.set_route(
        PAGE,
        Response::new(200, SIMPLE_JSON, "{\"name\": \"helper\", \"files\": [}"),
    );
    network_failure(&p, &before, &[], "invalid project JSON");
    p.server.set_route(
        PAGE,
        Response::new(200, "text/html", "<html><body>helper</body></html>"),
    );
    network_failure(&p, &before, &[], "text/html");
}

#[test]
fn redirects_to_another_origin_are_refused() {
    let (p, before) = locked();
    // 127.0.0.2 is loopback too, but another origin.
    let elsewhere = p.server.base_url().replace("127.0.0.1", "127.0.0.2");
    p.server.set_route(
        PAGE,
        Response::new(302, "text/plain", "").with_header("Location", &format!("{elsewhere}{PAGE}")),
    );
    p.server.clear_log();
    network_failure(&p, &before, &[], "another origin");
    assert_eq!(page_hits(&p), 1, "a refused redirect is not retried");
}

/// The same host and port under another scheme is another origin too. The loopback server
/// speaks plain http only, so this sends the redirect from http to https; the opposite
/// direction, https to http, goes through the same origin comparison, which the client's unit
/// test `redirects_are_followed_within_one_origin_only` checks for https URLs.
#[test]
fn a_redirect_to_another_scheme_on_the_same_host_is_refused() {
    let (p, before) = locked();
    let other_scheme = p.server.base_url().replacen("http://", "https://", 1);
    assert_ne!(other_scheme, p.server.base_url());
    p.server.set_route(
        PAGE,
        Response::new(302, "text/plain", "")
            .with_header("Location", &format!("{other_scheme}{PAGE}")),
    );
    p.server.clear_log();
    network_failure(&p, &before, &[], "another origin");
    assert_eq!(page_hits(&p), 1, "a refused redirect is not retried");
}

/// A first run that fails leaves nothing behind: no lock, no temporary file.
#[test]
fn a_failed_first_run_creates_no_lock() {
    let faults = [
        Fault::Replace {
            response: Response::new(500, "text/plain", "oops"),
            times: 100,
        },
        Fault::Reset,
        Fault::Replace {
            response: Response::new(200, SIMPLE_JSON, "{\"files\": ["),
            times: 100,
        },
    ];
    for fault in faults {
        let p = Project::new("helper\n");
        p.server.inject(PAGE, fault);
        let out = run_fresh(&p, &["--retries", "0"]);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        common::assert_no_lock_created(&p);
    }
}

#[test]
fn an_oversized_response_is_cut_off() {
    let (p, before) = locked();
    network_failure(&p, &before, &["--max-response-size", "64"], "limit");
}

fn page_with(p: &Project, files: serde_json::Value) -> Response {
    let _ = p;
    Response::new(
        200,
        SIMPLE_JSON,
        serde_json::json!({"name": "helper", "files": files}).to_string(),
    )
}

#[test]
fn unsafe_and_duplicate_file_names_are_refused() {
    let (p, before) = locked();
    let file = |name: &str| serde_json::json!({"filename": name, "url": format!("../../files/{name}"), "hashes": {"sha256": "a".repeat(64)}});
    p.server.set_route(
        PAGE,
        page_with(
            &p,
            serde_json::json!([file("../helper-9.0-py3-none-any.whl")]),
        ),
    );
    network_failure(&p, &before, &[], "unsafe file name");
    p.server.set_route(
        PAGE,
        page_with(
            &p,
            serde_json::json!([file("sub/helper-9.0-py3-none-any.whl")]),
        ),
    );
    network_failure(&p, &before, &[], "unsafe file name");
    let dup = file("helper-9.0-py3-none-any.whl");
    p.server
        .set_route(PAGE, page_with(&p, serde_json::json!([dup.clone(), dup])));
    network_failure(&p, &before, &[], "two files are named");
}

#[test]
fn a_run_killed_mid_resolution_leaves_the_old_lock_intact() {
    let (p, before) = locked();
    // Hold the index's answer so the run is certainly mid-flight, then kill it.
    p.server.inject(PAGE, Fault::Delay(Duration::from_secs(10)));
    let cache = tempfile::tempdir().unwrap();
    let mut child = p
        .update_command(&["--no-nixpkgs"], cache.path())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    common::assert_lock_untouched(&p, &before);
}

/// The writer's contract: killed after the new lock is written to its temporary file but
/// before the rename, the old lock is whole and the temporary file is the only leftover; the
/// next run removes it, whether or not it has anything to write.
#[test]
fn a_run_killed_between_writing_and_renaming_leaves_the_old_lock_and_the_next_run_cleans_up() {
    let (p, before) = locked();
    p.write("requirements.in", "helper\nwebapp>=3\n");
    let marker = p.path("held");
    let mut child = p
        .update_command(&["--no-nixpkgs"], p.cache.path())
        .env(bitpoll_lockfile::TEST_HOLD_BEFORE_RENAME, &marker)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let tmp = loop {
        match std::fs::read_to_string(&marker) {
            Ok(path) if !path.is_empty() => break std::path::PathBuf::from(path),
            _ if Instant::now() > deadline => panic!("the writer never reached the rename"),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    assert_eq!(tmp.parent(), Some(p.path("lock").as_path()));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&tmp).unwrap()).unwrap();
    assert!(
        written["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "webapp"),
        "the temporary file holds the whole new lock"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(before, p.lock_text(), "the old lock is intact");
    assert_eq!(common::temp_files(&p).len(), 1, "the killed run's file");

    // Back to the old inputs: nothing to write, the leftover still goes.
    p.write("requirements.in", "helper\n");
    assert_ok(&p.update(&["--no-nixpkgs"]));
    common::assert_lock_untouched(&p, &before);
}

#[test]
fn two_runs_at_once_both_succeed_and_the_lock_is_whole() {
    let p = Project::new("webapp>=3\nnative\n");
    let spawn = || p.update_command(&[], p.cache.path()).spawn().unwrap();
    let (a, b) = (spawn(), spawn());
    assert!(a.wait_with_output().unwrap().status.success());
    assert!(b.wait_with_output().unwrap().status.success());
    // Whole and valid: it parses, and a third run finds nothing to change.
    let text = p.lock_text();
    let _: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_ok(&p.update(&[]));
    assert_eq!(text, p.lock_text());
}
