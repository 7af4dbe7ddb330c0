//! `update --timings FILE` against the loopback index: the timeline records what the run
//! did, and a cold run sends the same requests however the index's answers are delayed.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{assert_ok, stderr, Project};

/// Wheels read by ranges (no core-metadata file), static and built sdists, per-target
/// wheels, extras and provenance: every kind of request a run makes.
const MIXED: &str =
    "webapp>=3\nnative\nnometa\nwinmeta\nextrapkg[fast]\nmodern\ncomputed\nsigned\n";

const SIGNED: &str = r#"
[packages.signed.versions."1.0"]
publisher = { kind = "GitHub", repository = "org/signed", workflow = "release.yml" }
"#;

fn project(requirements: &str) -> Project {
    let p = Project::with_packages(requirements, SIGNED);
    for filename in p.sha256.keys() {
        if filename.ends_with(".whl") {
            p.server.serve_ranges(&format!("/files/{filename}"));
        }
    }
    p
}

/// Each request the index saw, with the range it asked for, counted.
fn requests_seen(p: &Project) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for r in p.server.requests() {
        let key = match r.header("range") {
            Some(range) => format!("{} [{range}]", r.path),
            None => r.path.clone(),
        };
        *seen.entry(key).or_default() += 1;
    }
    seen
}

fn cold_run_requests(p: &Project, extra: &[&str], seed: u64) -> BTreeMap<String, usize> {
    p.server.clear_log();
    p.server.jitter(Duration::from_millis(40), seed);
    let cache = tempfile::tempdir().unwrap();
    let lock = tempfile::tempdir().unwrap();
    let lock_path = lock.path().join("lock.json");
    let mut args = extra.to_vec();
    args.extend(["--lock", lock_path.to_str().unwrap()]);
    let out = p.update_command(&args, cache.path()).output().unwrap();
    assert_ok(&out);
    requests_seen(p)
}

#[test]
fn cold_runs_send_the_same_requests_whatever_order_the_answers_arrive_in() {
    let p = project(MIXED);
    // Answers are fresh for a while, as on a real index: a second ask for the same thing
    // within a run is then a cache hit, or a second request if it was still in flight.
    p.server.max_age(600);
    for mode in [&["--no-nixpkgs"][..], &[][..]] {
        let first = cold_run_requests(&p, mode, 1);
        assert!(
            first.keys().any(|k| k.contains("[bytes=")),
            "some wheel is read by ranges: {first:#?}"
        );
        for seed in [2, 3] {
            let again = cold_run_requests(&p, mode, seed);
            let only_first: Vec<_> = first
                .iter()
                .filter(|(k, n)| again.get(*k) != Some(n))
                .collect();
            let only_again: Vec<_> = again
                .iter()
                .filter(|(k, n)| first.get(*k) != Some(n))
                .collect();
            assert!(
                only_first.is_empty() && only_again.is_empty(),
                "{mode:?}, seed {seed}: requests differ from the first run's\nfirst only: {only_first:#?}\nthis run only: {only_again:#?}"
            );
        }
    }
}

fn timeline(p: &Project, extra: &[&str], cache: &std::path::Path) -> (serde_json::Value, String) {
    let file = p.path("timings.json");
    let url = p.server.index_url();
    let mut args = vec![
        "update",
        "-r",
        "requirements.in",
        "--index-url",
        url.as_str(),
        "--timings",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = p.command(&args, cache).output().unwrap();
    assert_ok(&out);
    let text = std::fs::read_to_string(&file).unwrap();
    (serde_json::from_str(&text).unwrap(), stderr(&out))
}

fn network_requests(t: &serde_json::Value) -> Vec<&serde_json::Value> {
    t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["category"] == "request" && e["request"]["origin"] != "cache")
        .collect()
}

#[test]
fn the_timeline_holds_every_request_the_index_saw_and_each_targets_critical_path() {
    let p = project(MIXED);
    let cache = tempfile::tempdir().unwrap();
    let (t, err) = timeline(&p, &["--no-nixpkgs"], cache.path());

    // The same requests as the server's log, by path, with their kinds.
    let mut recorded: Vec<String> = network_requests(&t)
        .iter()
        .map(|e| e["request"]["path"].as_str().unwrap().to_string())
        .collect();
    let mut logged: Vec<String> = p.server.requests().into_iter().map(|r| r.path).collect();
    recorded.sort();
    logged.sort();
    assert_eq!(recorded, logged);
    let kind_of = |path: &str| {
        network_requests(&t)
            .into_iter()
            .filter(|e| e["request"]["path"] == path)
            .map(|e| e["request"]["kind"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(kind_of("/simple/webapp/"), ["page"]);
    assert_eq!(
        kind_of("/files/webapp-3.0-py3-none-any.whl.metadata"),
        ["metadata"]
    );
    assert!(kind_of("/files/nometa-1.0-py3-none-any.whl")
        .iter()
        .all(|k| k == "range"));
    let sdist = network_requests(&t)
        .into_iter()
        .find(|e| e["request"]["path"] == "/files/computed-1.0.tar.gz")
        .expect("the built sdist was downloaded");
    assert_eq!(sdist["request"]["kind"], "download");
    assert_eq!(sdist["request"]["sdist"], true);
    assert!(sdist["request"]["bytes"].as_u64().unwrap() > 0);
    // Never a host, in paths or labels.
    let text = t.to_string();
    assert!(!text.contains("127.0.0.1"), "a host name in the timeline");

    // The build ran, and the solver waited for it.
    let events = t["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["category"] == "build-hook"
        && e["label"]
            .as_str()
            .unwrap()
            .starts_with("computed-1.0.tar.gz")));
    assert!(events
        .iter()
        .any(|e| e["category"] == "wait" && e["label"] == "build metadata computed-1.0.tar.gz"));
    assert!(events
        .iter()
        .any(|e| e["category"] == "build-cleanup" && e["label"] == "computed-1.0.tar.gz"));

    // One critical path per target, each within the wall time and adding up.
    let wall = t["wall_ms"].as_f64().unwrap();
    let paths = t["summary"]["critical_paths"].as_array().unwrap();
    let targets: Vec<&str> = paths
        .iter()
        .map(|p| p["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        [
            "aarch64-darwin",
            "aarch64-linux",
            "x86_64-darwin",
            "x86_64-linux"
        ]
    );
    for path in paths {
        let sum = path["sum_ms"].as_f64().unwrap();
        let span = path["end_ms"].as_f64().unwrap() - path["start_ms"].as_f64().unwrap();
        assert!(sum <= wall, "{sum} > wall {wall}");
        assert!((sum - span).abs() < 0.01, "{sum} vs span {span}");
        let segments: f64 = path["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["ms"].as_f64().unwrap())
            .sum();
        assert!((segments - sum).abs() < 0.01);
        assert!(path["waits"].as_u64().unwrap() > 0, "{path:#}");
        assert!(path["segments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["label"] == "page webapp"));
    }
    let totals = &t["summary"]["requests"];
    assert_eq!(
        totals["page"]["network"].as_u64().unwrap(),
        logged.iter().filter(|p| p.starts_with("/simple/")).count() as u64
    );
    assert!(
        err.lines().filter(|l| l.starts_with("timings: ")).count() >= 4,
        "{err}"
    );
    assert!(err.contains("critical path"), "{err}");
    // What the run cost in CPU: the program's own, and that of the processes it waited for
    // (the backend that answered for computed-1.0, the interpreter probe), which no event
    // shows.
    let cpu = &t["summary"]["cpu"];
    assert!(cpu["program_ms"].as_f64().unwrap() > 0.0, "{cpu}");
    assert!(cpu["children_ms"].as_f64().unwrap() > 0.0, "{cpu}");
    assert!(cpu["cores"].as_u64().unwrap() >= 1, "{cpu}");
    assert!(
        err.lines().any(|l| l.starts_with("timings: CPU: ")),
        "{err}"
    );

    // A warm run only revalidates (the loopback index sends no freshness lifetime): pages
    // and the provenance document; everything else comes from the cache, and the timeline
    // says so.
    p.server.clear_log();
    let (warm, _) = timeline(&p, &["--no-nixpkgs"], cache.path());
    let warm_requests = network_requests(&warm);
    assert_eq!(warm_requests.len(), p.server.requests().len());
    assert!(warm_requests.iter().all(|e| {
        let r = &e["request"];
        r["origin"] == "revalidated"
            && (r["kind"] == "page" || r["path"].as_str().unwrap().ends_with(".provenance"))
    }));
    let cached = &warm["summary"]["requests"];
    assert!(
        cached["metadata"]["cache"].as_u64().unwrap() > 0,
        "{cached:#}"
    );
    assert!(warm["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["category"] == "build-cached"));
    // No backend ran: the processes it started cost less than the cold run's.
    let children = |t: &serde_json::Value| t["summary"]["cpu"]["children_ms"].as_f64().unwrap();
    assert!(
        children(&warm) < children(&t),
        "{} vs {}",
        children(&warm),
        children(&t)
    );
}

#[test]
fn a_prefetch_nobody_used_is_counted_as_speculation() {
    // The lock's pin keeps webapp at 1.0, while the prefetch of its page goes on to the
    // newest release's metadata, which the solver never asks for, and from there to what
    // that release depends on (helper; tzshim on the darwin targets).
    let p = project("webapp==1.0\n");
    assert_ok(&p.update(&["--no-nixpkgs"]));
    p.write("requirements.in", "webapp\n");
    let cache = tempfile::tempdir().unwrap();
    let (t, err) = timeline(&p, &["--no-nixpkgs"], cache.path());
    assert_eq!(p.entry("webapp")["version"], "1.0");
    let find = |path: &str| {
        network_requests(&t)
            .into_iter()
            .find(|e| e["request"]["path"] == path)
            .unwrap_or_else(|| panic!("no request for {path}"))
            .clone()
    };
    let unused = find("/files/webapp-3.0-py3-none-any.whl.metadata");
    assert_eq!(unused["request"]["speculative"], true);
    assert_eq!(unused["request"]["used"], false);
    let page = find("/simple/webapp/");
    assert!(page["request"]["speculative"] == false || page["request"]["used"] == true);
    let used = find("/files/webapp-1.0-py3-none-any.whl.metadata");
    assert_ne!(used["request"]["used"], false);
    let wasted: Vec<&serde_json::Value> = network_requests(&t)
        .into_iter()
        .filter(|e| e["request"]["used"] == false)
        .collect();
    let mut paths: Vec<&str> = wasted
        .iter()
        .map(|e| e["request"]["path"].as_str().unwrap())
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "/files/helper-2.1-py3-none-any.whl.metadata",
            "/files/tzshim-1.0-py3-none-any.whl.metadata",
            "/files/webapp-3.0-py3-none-any.whl.metadata",
            "/simple/helper/",
            "/simple/tzshim/",
        ]
    );
    let s = &t["summary"]["speculation"];
    assert_eq!(s["unused"], 5, "{s:#}");
    let bytes: u64 = wasted
        .iter()
        .map(|e| e["request"]["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(s["unused_bytes"].as_u64().unwrap(), bytes);
    assert!(err.contains("speculation: "), "{err}");
}
