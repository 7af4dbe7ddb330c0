//! Among equally good solutions, the top-level requirement declared first gets its newest
//! version: files in the order given, lines in order, as pip-compile and uv's per-platform
//! resolution decide. Against the loopback index (`tieleft` and `tieright` exclude each
//! other's newest release).

mod common;

use common::{assert_ok, Project};

fn versions(p: &Project) -> (String, String) {
    let v = |name| p.entry(name)["version"].as_str().unwrap().to_string();
    (v("tieleft"), v("tieright"))
}

#[test]
fn the_requirement_declared_first_wins_a_tie() {
    // Name order would pick tieleft 2.0 here.
    let p = Project::new("tieright\ntieleft\n");
    assert_ok(&p.update(&[]));
    assert_eq!(versions(&p), ("1.0".into(), "2.0".into()));

    let p = Project::new("tieleft\ntieright\n");
    assert_ok(&p.update(&[]));
    assert_eq!(versions(&p), ("2.0".into(), "1.0".into()));
}

#[test]
fn files_are_decided_in_the_order_they_are_given() {
    let p = Project::new("tieleft\n");
    p.write("second.in", "tieright\n");
    let url = p.server.index_url();
    let run = |files: [&str; 2]| {
        let out = p
            .command(
                &[
                    "update",
                    "-q",
                    "-r",
                    files[0],
                    "-r",
                    files[1],
                    "--index-url",
                    url.as_str(),
                ],
                p.cache.path(),
            )
            .output()
            .unwrap();
        assert_ok(&out);
        versions(&p)
    };
    assert_eq!(
        run(["second.in", "requirements.in"]),
        ("1.0".into(), "2.0".into())
    );
    // A pin the previous lock holds is kept while it is valid, so start afresh.
    std::fs::remove_file(p.path("lock/bitpoll.lock.json")).unwrap();
    assert_eq!(
        run(["requirements.in", "second.in"]),
        ("2.0".into(), "1.0".into())
    );
}
