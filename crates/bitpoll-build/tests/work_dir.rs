//! Where a build's files go: below the cache, not the system's temporary directory, and
//! nothing is left there once the answer is in; what a killed run left is swept a day later.
//! Needs a `python3` on PATH, as every build does.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use bitpoll_build::{Builder, Isolation, Sdist};
use common::{python, tar_gz};
use sha2::{Digest, Sha256};

const FILENAME: &str = "wherepkg-1.0.tar.gz";

/// Entries of `dir`, by name; none when it does not exist.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_build_runs_below_the_cache_and_leaves_nothing_there() {
    let Some(interpreter) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let seen = dir.path().join("seen");
    // The backend says where it ran, and that its sdist was unpacked there.
    let backend = format!(
        r#"import os

def get_requires_for_build_wheel(config_settings=None):
    with open({seen:?}, "w") as f:
        f.write(os.getcwd() + "\n" + os.environ["TMPDIR"])
    assert os.path.exists("pyproject.toml")
    return []
"#,
        seen = seen.display().to_string(),
    );
    let pyproject =
        "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n";
    let bytes = tar_gz(&[
        ("wherepkg-1.0/pyproject.toml", pyproject),
        ("wherepkg-1.0/backend.py", &backend),
    ]);
    let sdist_path = dir.path().join(FILENAME);
    fs::write(&sdist_path, &bytes).unwrap();
    let sha256 = hex::encode(Sha256::digest(&bytes));

    // What a run killed two days ago left, and a directory another run is using now.
    let work = cache.join("build-work");
    fs::create_dir_all(work.join("hook-killed/src")).unwrap();
    fs::create_dir_all(work.join("hook-busy")).unwrap();
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 60 * 60);
    fs::File::open(work.join("hook-killed"))
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();

    let builder = Builder::new(
        interpreter,
        Some(cache.clone()),
        Duration::from_secs(120),
        Isolation::detect(),
    );
    let backend_path = [".".to_string()];
    let sdist = Sdist {
        path: &sdist_path,
        filename: FILENAME,
        sha256: &sha256,
        backend: Some("backend"),
        backend_path: &backend_path,
    };
    let requires = builder
        .requires_for_build_wheel(&sdist, &[], &|| Ok(()))
        .unwrap();
    assert!(requires.is_empty());
    // Directories are removed in the background; a builder waits for that when dropped.
    drop(builder);

    let seen = fs::read_to_string(&seen).unwrap();
    let (cwd, tmpdir) = seen.split_once('\n').unwrap();
    let work = work.canonicalize().unwrap();
    for (what, path) in [("working directory", cwd), ("TMPDIR", tmpdir)] {
        assert!(
            Path::new(path).starts_with(&work),
            "the hook's {what} {path} is not below {}",
            work.display()
        );
    }
    assert_eq!(
        names(&work),
        ["hook-busy"],
        "the build's directory is removed, the stale one swept, the busy one kept"
    );
}
