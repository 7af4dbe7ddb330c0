//! A run keeps each leading target's solve in the cache, and the next run with the same inputs
//! takes it instead of solving, but only while every answer the solve read is still the
//! same: the lock must follow the index, never the kept solve. Against the loopback index.

mod common;

use bitpoll_tests::universe::Universe;
use common::{assert_ok, fixture, losing_walk, Project};

fn timeline(p: &Project) -> Vec<(String, String)> {
    let timeline: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.path("timings.json")).unwrap()).unwrap();
    timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_string();
            (s("category"), s("label"))
        })
        .collect()
}

fn labels(events: &[(String, String)], category: &str) -> Vec<String> {
    let mut labels: Vec<String> = events
        .iter()
        .filter(|(c, _)| c == category)
        .map(|(_, l)| l.clone())
        .collect();
    labels.sort();
    labels
}

const LEADERS: [&str; 2] = ["aarch64-darwin", "aarch64-linux"];

#[test]
fn a_kept_solve_is_taken_while_every_answer_is_the_same_and_not_after_one_changed() {
    let p = Project::with_packages("base\ntool\n", &losing_walk(8));
    let update = ["--no-nixpkgs", "--upgrade", "--timings", "timings.json"];

    assert_ok(&p.update(&update));
    let first = p.lock_text();
    assert_eq!(labels(&timeline(&p), "restart").len(), 2, "one per leader");

    // The same inputs, the same index: each leader compares its answers with its kept solve
    // and takes it, restart and all, without solving.
    assert_ok(&p.update(&update));
    assert_eq!(p.lock_text(), first);
    let events = timeline(&p);
    assert_eq!(labels(&events, "restart"), Vec::<String>::new());
    assert!(leaders_took_kept(&p));
    let solves = labels(&events, "solve");
    // Its followers still compare their own answers with it.
    assert!(solves.contains(&"x86_64-linux: answers compared with aarch64-linux's".to_string()));

    // `tool` 9.0 appears on the index. The kept solve read `tool`'s releases, which now
    // differ: the leaders solve, and the lock takes 9.0.
    let text = std::fs::read_to_string(fixture("index.toml")).unwrap() + "\n" + &losing_walk(9);
    for (path, response) in Universe::from_toml(&text).unwrap().build().routes {
        p.server.set_route(&path, response);
    }
    assert_ok(&p.update(&update));
    assert_eq!(p.entry("tool")["version"], "9.0");
    let events = timeline(&p);
    let solves = labels(&events, "solve");
    for leader in LEADERS {
        assert!(
            solves.iter().any(|l| l.starts_with(&format!(
                "{leader}: solves: its answer differs from the earlier run's on the candidates of tool"
            ))),
            "{solves:#?}"
        );
    }
    assert_eq!(
        labels(&events, "restart").len(),
        2,
        "solved again, restarts and all"
    );

    // What a run that keeps nothing makes of the same index.
    let kept = p.lock_text();
    assert_ok(&p.update_fresh(&["--no-nixpkgs", "--solve-afresh"]));
    assert_eq!(p.lock_text(), kept);
}

/// Whether every leader took its kept solve (`true`) or every leader solved (`false`).
fn leaders_took_kept(p: &Project) -> bool {
    let solves = labels(&timeline(p), "solve");
    let took = |leader: &str| {
        solves.contains(&format!(
            "{leader}: answers compared with its solve of an earlier run"
        )) && !solves.iter().any(|l| l.starts_with(&format!("{leader} (")))
    };
    let solved = |leader: &str| solves.iter().any(|l| l.starts_with(&format!("{leader} (")));
    match (
        LEADERS.iter().all(|l| took(l)),
        LEADERS.iter().all(|l| solved(l)),
    ) {
        (true, false) => true,
        (false, true) => false,
        _ => panic!("the leaders did not agree: {solves:#?}"),
    }
}

/// The files in the cache's store of kept solves.
fn kept_files(p: &Project) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for shard in std::fs::read_dir(p.cache.path().join("solves-v1")).unwrap() {
        for file in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            files.push(file.unwrap().path());
        }
    }
    files
}

#[test]
fn other_inputs_a_damaged_store_or_solve_afresh_mean_a_solve() {
    let p = Project::with_packages("base\ntool\n", &losing_walk(8));
    let update = ["--no-nixpkgs", "--upgrade", "--timings", "timings.json"];
    assert_ok(&p.update(&update));
    assert!(!leaders_took_kept(&p), "nothing was kept yet");

    // Another requirement file is another set of inputs: solved, and kept in the same slots
    // (one per leader of this lock), which the next run with these inputs takes.
    p.write("requirements.in", "tool\nbase\n");
    assert_ok(&p.update(&update));
    assert!(!leaders_took_kept(&p));
    let first = p.lock_text();
    assert_eq!(kept_files(&p).len(), 2, "one slot per leader, overwritten");
    assert_ok(&p.update(&update));
    assert!(leaders_took_kept(&p));
    assert_eq!(p.lock_text(), first);

    // Every kept solve damaged: read as missing, solved again, the same lock.
    for path in kept_files(&p) {
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    assert_ok(&p.update(&update));
    assert!(!leaders_took_kept(&p));
    assert_eq!(p.lock_text(), first);

    // `--solve-afresh` solves whatever is kept.
    let mut afresh = update.to_vec();
    afresh.push("--solve-afresh");
    assert_ok(&p.update(&afresh));
    assert!(!leaders_took_kept(&p));
    assert_eq!(p.lock_text(), first);
    assert_ok(&p.update(&update));
    assert!(leaders_took_kept(&p), "the damaged store was written anew");
}
