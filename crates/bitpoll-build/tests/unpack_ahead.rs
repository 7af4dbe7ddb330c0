//! An sdist's sources unpacked while its build environment is made ready: the hook runs in
//! that tree, the sdist's own file is then not needed, nothing is left afterwards, and an
//! unpacking that failed ahead fails the hook without being remembered.
//! Needs a `python3` on PATH, as every build does.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use bitpoll_build::{Ahead, BuildError, Builder, Sdist};
use common::{builder, names, python, LocalBackendSdist};

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

/// A directory with that sdist, where its backend says it ran (`seen`), and a cache.
struct Case {
    dir: tempfile::TempDir,
    seen: PathBuf,
    cache: PathBuf,
    local: LocalBackendSdist,
}

impl Case {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (seen, cache) = (dir.path().join("seen"), dir.path().join("cache"));
        let local = sdist(dir.path(), &seen);
        Self {
            dir,
            seen,
            cache,
            local,
        }
    }

    /// What puts the sdist where `unpack_ahead` asks.
    fn fetch(&self) -> impl FnOnce(&Path) -> Result<(), bitpoll_build::FetchError> + '_ {
        |dest| {
            fs::copy(&self.local.path, dest)?;
            Ok(())
        }
    }

    /// Unpacks the sdist ahead, its file put there by `fetch`, then asks `builder` for its
    /// build requirements with that tree.
    fn ask_ahead(
        &self,
        builder: &Builder,
        fetch: impl FnOnce(&Path) -> Result<(), bitpoll_build::FetchError>,
    ) -> Result<Vec<String>, BuildError> {
        let (sender, ahead) = Ahead::pending();
        builder.unpack_ahead(sender, FILENAME, fetch);
        let asked = Sdist {
            ahead: Some(&ahead),
            ..self.local.sdist()
        };
        builder.requires_for_build_wheel(&asked, &[], &|| Ok(()))
    }
}

#[test]
fn the_hook_runs_in_the_tree_unpacked_ahead() {
    if python().is_none() {
        return;
    }
    let case = Case::new();
    let builder = builder(case.cache.clone());
    assert!(!builder.has_answers(case.local.sdist().sha256));

    let (sender, ahead) = Ahead::pending();
    std::thread::scope(|scope| {
        scope.spawn(|| builder.unpack_ahead(sender, FILENAME, case.fetch()));
        // No file where the hook would read the sdist from: it must take the tree.
        let missing = case.dir.path().join("not-there.tar.gz");
        let asked = Sdist {
            path: &missing,
            ahead: Some(&ahead),
            ..case.local.sdist()
        };
        let requires = builder
            .requires_for_build_wheel(&asked, &[], &|| Ok(()))
            .unwrap();
        assert!(requires.is_empty());
    });
    assert!(!ahead.holds_tree(), "the hook took the tree");
    let cwd = PathBuf::from(fs::read_to_string(&case.seen).unwrap());
    let work = case.cache.join("build-work");
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
    assert!(builder.has_answers(case.local.sdist().sha256));

    // Both the hook's directory and the tree are removed once the answer is in.
    drop(builder);
    assert_eq!(names(&work), Vec::<String>::new());
}

#[test]
fn an_unpacking_that_failed_ahead_fails_the_hook_and_is_not_remembered() {
    if python().is_none() {
        return;
    }
    let case = Case::new();
    let builder = builder(case.cache.clone());

    let err = case
        .ask_ahead(&builder, |_| Err("the index went away".into()))
        .unwrap_err();
    assert!(
        matches!(&err, BuildError::Fetch { sdist, .. } if sdist == FILENAME),
        "{err}"
    );
    assert!(!case.seen.exists(), "the hook did not run");

    // A download may work next time: the same question is asked again, from the sdist.
    let requires = builder
        .requires_for_build_wheel(&case.local.sdist(), &[], &|| Ok(()))
        .unwrap();
    assert!(requires.is_empty());
    assert!(case.seen.exists());
    drop(builder);
    assert_eq!(names(&case.cache.join("build-work")), Vec::<String>::new());
}

#[test]
fn a_tree_nobody_took_is_removed() {
    if python().is_none() {
        return;
    }
    let case = Case::new();
    let builder = builder(case.cache.clone());

    let (sender, ahead) = Ahead::pending();
    builder.unpack_ahead(sender, FILENAME, case.fetch());
    let work = case.cache.join("build-work");
    assert_eq!(names(&work).len(), 1, "one tree: {:?}", names(&work));
    assert!(ahead.holds_tree());
    // A cached answer, say: no hook takes it.
    drop(ahead);
    assert_eq!(names(&work), Vec::<String>::new());
}

/// Unpacked ahead into the memory directory: the hook runs there, and neither it nor the
/// cache's directory for builds holds anything afterwards.
#[test]
fn a_tree_unpacked_ahead_goes_to_memory_when_it_has_room() {
    if python().is_none() {
        return;
    }
    let case = Case::new();
    let memory = case.dir.path().join("memory");
    fs::create_dir(&memory).unwrap();
    let builder = builder(case.cache.clone()).with_memory_dir(Some(memory.clone()));

    let requires = case.ask_ahead(&builder, case.fetch()).unwrap();
    assert!(requires.is_empty());
    let cwd = PathBuf::from(fs::read_to_string(&case.seen).unwrap());
    let tree = cwd
        .strip_prefix(&memory)
        .unwrap_or_else(|_| panic!("{} is below {}", cwd.display(), memory.display()));
    assert!(
        tree.to_string_lossy().starts_with("bitpoll-lock-src-"),
        "ran in {}",
        cwd.display()
    );

    drop(builder);
    assert_eq!(names(&memory), Vec::<String>::new());
    assert_eq!(names(&case.cache.join("build-work")), Vec::<String>::new());
}
