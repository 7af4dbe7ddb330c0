//! Where a build's files go: below the cache, not the system's temporary directory, and
//! nothing is left there once the answer is in; what a killed run left is swept a day later.
//! The sdist's tree goes to a memory file system when it has room, and leaves nothing there
//! either. Needs a `python3` on PATH, as every build does.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bitpoll_build::{Builder, Isolation};
use common::{names, python, LocalBackendSdist};

const FILENAME: &str = "wherepkg-1.0.tar.gz";

/// An sdist in `dir` whose backend writes where it ran (its working directory, then
/// `TMPDIR`) to `dir/seen`.
struct WhereCase {
    sdist: LocalBackendSdist,
    seen: PathBuf,
}

impl WhereCase {
    fn new(dir: &Path) -> Self {
        let seen = dir.join("seen");
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
        let sdist = LocalBackendSdist::write(dir, FILENAME, &backend);
        Self { sdist, seen }
    }

    /// Asks the backend with a builder on `cache` whose trees go to `memory` when it has
    /// room, and returns where the hook ran: its working directory and its `TMPDIR`. The
    /// builder is dropped first, so the directories it removes in the background are gone.
    fn ask(&self, cache: PathBuf, memory: Option<PathBuf>) -> (PathBuf, PathBuf) {
        let interpreter = python().expect("checked by the caller");
        let builder = Builder::new(
            interpreter,
            Some(cache),
            Duration::from_secs(120),
            Some(Isolation::detect()),
        )
        .with_memory_dir(memory);
        let requires = builder
            .requires_for_build_wheel(&self.sdist.sdist(), &[], &|| Ok(()))
            .unwrap();
        assert!(requires.is_empty());
        drop(builder);
        let seen = fs::read_to_string(&self.seen).unwrap();
        let (cwd, tmpdir) = seen.split_once('\n').unwrap();
        (PathBuf::from(cwd), PathBuf::from(tmpdir))
    }
}

/// Makes the directory `dir` look like one a run killed two days ago left.
fn left_two_days_ago(dir: &Path) {
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 60 * 60);
    fs::File::open(dir)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
}

#[test]
fn a_build_runs_below_the_cache_and_leaves_nothing_there() {
    if python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let case = WhereCase::new(dir.path());
    let cache = dir.path().join("cache");

    // What a run killed two days ago left, and a directory another run is using now.
    let work = cache.join("build-work");
    fs::create_dir_all(work.join("hook-killed/src")).unwrap();
    fs::create_dir_all(work.join("hook-busy")).unwrap();
    left_two_days_ago(&work.join("hook-killed"));

    let (cwd, tmpdir) = case.ask(cache.clone(), None);
    let work = work.canonicalize().unwrap();
    for (what, path) in [("working directory", &cwd), ("TMPDIR", &tmpdir)] {
        assert!(
            path.starts_with(&work),
            "the hook's {what} {} is not below {}",
            path.display(),
            work.display()
        );
    }
    assert_eq!(
        names(&work),
        ["hook-busy"],
        "the build's directory is removed, the stale one swept, the busy one kept"
    );
}

/// A cache where no directory can be made (here a file stands where it should be) does not
/// stop builds: they run in the system's temporary directory.
#[test]
fn a_cache_that_cannot_hold_build_directories_leaves_builds_in_the_temporary_directory() {
    if python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let case = WhereCase::new(dir.path());
    let cache = dir.path().join("cache");
    fs::write(&cache, "not a directory").unwrap();

    let (cwd, _) = case.ask(cache.clone(), None);
    let temp = std::env::temp_dir().canonicalize().unwrap();
    assert!(
        cwd.starts_with(&temp) && !cwd.starts_with(&cache),
        "the hook ran in {}",
        cwd.display()
    );
}

/// A tree goes to the memory directory (here an ordinary one, which had room) and nothing of
/// it is left there; what a killed run left there a day ago is swept, and nothing else: the
/// directory is shared with other programs. The hook's own directory stays below the cache.
#[test]
fn the_tree_goes_to_memory_when_it_has_room_and_leaves_nothing_there() {
    if python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let case = WhereCase::new(dir.path());
    let cache = dir.path().join("cache");
    let memory = dir.path().join("memory");
    for name in [
        "bitpoll-lock-src-killed",
        "bitpoll-lock-src-busy",
        "other-program",
    ] {
        fs::create_dir_all(memory.join(name).join("src")).unwrap();
    }
    for name in ["bitpoll-lock-src-killed", "other-program"] {
        left_two_days_ago(&memory.join(name));
    }

    let (cwd, tmpdir) = case.ask(cache.clone(), Some(memory.clone()));
    let memory = memory.canonicalize().unwrap();
    let tree = cwd
        .strip_prefix(&memory)
        .unwrap_or_else(|_| panic!("the hook ran in {}", cwd.display()));
    assert!(
        tree.to_string_lossy().starts_with("bitpoll-lock-src-"),
        "the hook ran in {}",
        cwd.display()
    );
    let work = cache.join("build-work").canonicalize().unwrap();
    assert!(tmpdir.starts_with(&work), "TMPDIR {}", tmpdir.display());
    assert_eq!(
        names(&memory),
        ["bitpoll-lock-src-busy", "other-program"],
        "the tree is removed, the stale one swept, the busy one and another program's kept"
    );
    assert_eq!(names(&work), Vec::<String>::new());
}

/// A memory directory that cannot take the tree (here it does not exist) leaves it on disk,
/// below the cache, and the answer is the same.
#[test]
fn a_memory_directory_that_cannot_take_the_tree_leaves_it_below_the_cache() {
    if python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let case = WhereCase::new(dir.path());
    let cache = dir.path().join("cache");

    let (cwd, _) = case.ask(cache.clone(), Some(dir.path().join("no-such-directory")));
    let work = cache.join("build-work").canonicalize().unwrap();
    assert!(cwd.starts_with(&work), "the hook ran in {}", cwd.display());
}

/// An archive whose files hold more than its gzip trailer says (here the trailer was made
/// to understate them) stops being unpacked in memory at that size: it is unpacked below
/// the cache instead, and nothing of it is left in the memory directory.
#[test]
fn an_archive_larger_than_it_says_is_unpacked_on_disk() {
    if python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let case = WhereCase::new(dir.path());
    let mut bytes = fs::read(&case.sdist.path).unwrap();
    let at = bytes.len() - 4;
    bytes[at..].copy_from_slice(&100u32.to_le_bytes());
    fs::write(&case.sdist.path, &bytes).unwrap();
    let memory = dir.path().join("memory");
    fs::create_dir(&memory).unwrap();
    let cache = dir.path().join("cache");

    let (cwd, _) = case.ask(cache.clone(), Some(memory.clone()));
    let work = cache.join("build-work").canonicalize().unwrap();
    assert!(cwd.starts_with(&work), "the hook ran in {}", cwd.display());
    assert_eq!(names(&memory), Vec::<String>::new());
}
