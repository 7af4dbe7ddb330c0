//! A run keeps each leading target's solve in the cache, and the next run with the same inputs
//! takes it instead of solving, but only while every answer the solve read is still the
//! same: the lock must follow the index, never the kept solve. Against the loopback index.

mod common;

use bitpoll_tests::universe::Universe;
use common::{assert_ok, fixture, Project};

/// `base` 2.0 is decided first, and every `tool` from 2.0 to `newest` needs `base<2`: the
/// solve starts over with `tool` first (see restarts.rs).
fn losing_walk(newest: u32) -> String {
    let mut toml =
        String::from("[packages.base.versions.\"1.0\"]\n[packages.base.versions.\"2.0\"]\n");
    toml += "[packages.tool.versions.\"1.0\"]\n";
    for v in 2..=newest {
        toml += &format!("[packages.tool.versions.\"{v}.0\"]\nrequires = [\"base<2\"]\n");
    }
    toml
}

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
    let solves = labels(&events, "solve");
    for leader in LEADERS {
        let compared = format!("{leader}: answers compared with its solve of an earlier run");
        assert!(solves.contains(&compared), "{solves:#?}");
        assert!(
            !solves.iter().any(|l| l.starts_with(&format!("{leader} ("))),
            "{leader} solved: {solves:#?}"
        );
    }
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

#[test]
fn other_inputs_or_a_damaged_store_mean_a_solve() {
    let p = Project::with_packages("base\ntool\n", &losing_walk(8));
    let update = ["--no-nixpkgs", "--upgrade", "--timings", "timings.json"];
    assert_ok(&p.update(&update));
    let first = p.lock_text();

    // Another requirement file is another set of inputs.
    p.write("requirements.in", "tool\nbase\n");
    assert_ok(&p.update(&update));
    assert_eq!(
        labels(&timeline(&p), "restart").len(),
        0,
        "tool first: no walk"
    );
    p.write("requirements.in", "base\ntool\n");

    // Every kept solve damaged: read as missing, solved again, same lock.
    let store = p.cache.path().join("solves-v1");
    let mut damaged = 0;
    for shard in std::fs::read_dir(&store).unwrap() {
        for file in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let mut bytes = std::fs::read(&path).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0xff;
            std::fs::write(&path, bytes).unwrap();
            damaged += 1;
        }
    }
    assert_eq!(damaged, 4, "two leaders, two sets of inputs");
    assert_ok(&p.update(&update));
    assert_eq!(p.lock_text(), first);
    assert_eq!(labels(&timeline(&p), "restart").len(), 2);

    // `--solve-afresh` solves whatever is kept.
    let mut afresh = update.to_vec();
    afresh.push("--solve-afresh");
    assert_ok(&p.update(&afresh));
    assert_eq!(p.lock_text(), first);
    assert_eq!(labels(&timeline(&p), "restart").len(), 2);
}
