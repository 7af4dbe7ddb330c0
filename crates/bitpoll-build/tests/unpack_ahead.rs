//! An sdist's sources unpacked while its build environment is made ready: the hook runs in
//! that tree, the sdist's own file is then not needed, nothing is left afterwards, and an
//! unpacking that failed ahead fails the hook without being remembered.
//! Needs a `python3` on PATH, as every build does.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bitpoll_build::{Ahead, BuildError, Builder, Isolation, Sdist};
use common::{python, LocalBackendSdist};

const FILENAME: &str = "aheadpkg-1.0.tar.gz";

/// An sdist whose backend writes its working directory to `seen`.
fn sdist(dir: &Path, seen: &Path) -> LocalBackendSdist {
    let backend = format!(
        r#"import os

def get_requires_for_build_wheel(config_settings=None):
    with open({seen:?}, "w") as f:
        f.write(os.getcwd())
    assert os.path.exists("pyproject.toml")
    return []
"#,
        seen = seen.display().to_string(),
    );
    LocalBackendSdist::write(dir, FILENAME, &backend)
}

fn builder(cache: PathBuf) -> Builder {
    let interpreter = python().expect("checked by the caller");
    Builder::new(
        interpreter,
        Some(cache),
        Duration::from_secs(120),
        Isolation::detect(),
    )
}

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
fn the_hook_runs_in_the_tree_unpacked_ahead() {
    if python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (seen, cache) = (dir.path().join("seen"), dir.path().join("cache"));
    let local = sdist(dir.path(), &seen);
    let builder = builder(cache.clone());
    assert!(!builder.has_answers(local.sdist().sha256));

    let (sender, ahead) = Ahead::pending();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            builder.unpack_ahead(sender, FILENAME, |dest| {
                fs::copy(&local.path, dest)?;
                Ok(())
            })
        });
        // No file where the hook would read the sdist from: it must take the tree.
        let missing = dir.path().join("not-there.tar.gz");
        let asked = Sdist {
            path: &missing,
            ahead: Some(&ahead),
            ..local.sdist()
        };
        let requires = builder
            .requires_for_build_wheel(&asked, &[], &|| Ok(()))
            .unwrap();
        assert!(requires.is_empty());
    });
    assert!(!ahead.holds_tree(), "the hook took the tree");
    let cwd = PathBuf::from(fs::read_to_string(&seen).unwrap());
    let work = cache.join("build-work");
    let tree = cwd
        .strip_prefix(&work)
        .unwrap_or_else(|_| panic!("{} is below {}", cwd.display(), work.display()));
    let top = tree
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    assert!(top.starts_with("src-"), "ran in {}", cwd.display());
    assert!(builder.has_answers(local.sdist().sha256));

    // Both the hook's directory and the tree are removed once the answer is in.
    drop(builder);
    assert_eq!(names(&work), Vec::<String>::new());
}

#[test]
fn an_unpacking_that_failed_ahead_fails_the_hook_and_is_not_remembered() {
    if python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (seen, cache) = (dir.path().join("seen"), dir.path().join("cache"));
    let local = sdist(dir.path(), &seen);
    let builder = builder(cache.clone());

    let (sender, ahead) = Ahead::pending();
    builder.unpack_ahead(sender, FILENAME, |_| Err("the index went away".into()));
    let asked = Sdist {
        ahead: Some(&ahead),
        ..local.sdist()
    };
    let err = builder
        .requires_for_build_wheel(&asked, &[], &|| Ok(()))
        .unwrap_err();
    assert!(
        matches!(&err, BuildError::Fetch { sdist, .. } if sdist == FILENAME),
        "{err}"
    );
    assert!(!seen.exists(), "the hook did not run");

    // A download may work next time: the same question is asked again, from the sdist.
    let requires = builder
        .requires_for_build_wheel(&local.sdist(), &[], &|| Ok(()))
        .unwrap();
    assert!(requires.is_empty());
    assert!(seen.exists());
    drop(builder);
    assert_eq!(names(&cache.join("build-work")), Vec::<String>::new());
}

#[test]
fn a_tree_nobody_took_is_removed() {
    if python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (seen, cache) = (dir.path().join("seen"), dir.path().join("cache"));
    let local = sdist(dir.path(), &seen);
    let builder = builder(cache.clone());

    let (sender, ahead) = Ahead::pending();
    builder.unpack_ahead(sender, FILENAME, |dest| {
        fs::copy(&local.path, dest)?;
        Ok(())
    });
    let work = cache.join("build-work");
    assert_eq!(names(&work).len(), 1, "one tree: {:?}", names(&work));
    assert!(ahead.holds_tree());
    // A cached answer, say: no hook takes it.
    drop(ahead);
    assert_eq!(names(&work), Vec::<String>::new());
}
