//! Build environments' wheels: unpacked once below the cache and read by every build that
//! uses them, instead of once per build. Needs a `python3` on PATH, as every build does.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bitpoll_build::{Builder, Wheel};
use common::{builder, python, wheel, LocalBackendSdist};

/// A pure-Python wheel with one module, `helper`, written to `dir`.
fn helper_wheel(dir: &Path) -> Wheel {
    wheel(
        dir,
        "helper-1.0-py3-none-any.whl",
        &[
            ("helper.py", b"ANSWER = 42\n"),
            (
                "helper-1.0.dist-info/METADATA",
                b"Metadata-Version: 2.1\nName: helper\nVersion: 1.0\n",
            ),
            ("helper-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\n"),
            ("helper-1.0.dist-info/RECORD", b""),
        ],
    )
}

/// An sdist whose backend imports `helper` and writes where it found it to `seen`.
fn sdist_using_helper(dir: &Path, filename: &'static str, seen: &Path) -> LocalBackendSdist {
    let backend = format!(
        r#"import helper

def get_requires_for_build_wheel(config_settings=None):
    assert helper.ANSWER == 42
    with open({seen:?}, "w") as f:
        f.write(helper.__file__)
    return []
"#,
        seen = seen.display().to_string(),
    );
    LocalBackendSdist::write(dir, filename, &backend)
}

/// A directory with the helper wheel, and where the backends say they found `helper`.
struct Case {
    dir: tempfile::TempDir,
    wheel: Wheel,
    seen: PathBuf,
}

impl Case {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let wheel = helper_wheel(dir.path());
        let seen = dir.path().join("seen");
        Self { dir, wheel, seen }
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// Where the wheel is unpacked for every build.
    fn shared(&self) -> PathBuf {
        self.cache()
            .join("build-wheels-v1")
            .join(&self.wheel.sha256)
    }

    fn sdist(&self, filename: &'static str) -> LocalBackendSdist {
        sdist_using_helper(self.dir.path(), filename, &self.seen)
    }

    /// Asks `sdist`'s backend with the wheel as its environment; where it imported
    /// `helper` from.
    fn ask(&self, builder: &Builder, sdist: &LocalBackendSdist) -> PathBuf {
        let requires = builder
            .requires_for_build_wheel(
                &sdist.sdist(),
                std::slice::from_ref(&self.wheel),
                &|| Ok(()),
            )
            .unwrap();
        assert!(requires.is_empty());
        PathBuf::from(fs::read_to_string(&self.seen).unwrap())
    }
}

#[test]
fn an_environment_wheel_is_unpacked_once_below_the_cache_for_every_build() {
    if python().is_none() {
        return;
    }
    let case = Case::new();
    let (cache, shared) = (case.cache(), case.shared());

    let builder = builder(cache.clone());
    let found = case.ask(&builder, &case.sdist("firstpkg-1.0.tar.gz"));
    assert_eq!(found, shared.join("helper.py"));
    let inode = fs::metadata(&found).unwrap().ino();
    // Another build in the same run, and one in a later run, read the same files.
    assert_eq!(
        case.ask(&builder, &case.sdist("secondpkg-1.0.tar.gz")),
        found
    );
    drop(builder);
    let later = self::builder(cache.clone());
    assert_eq!(case.ask(&later, &case.sdist("thirdpkg-1.0.tar.gz")), found);
    drop(later);
    assert_eq!(fs::metadata(&found).unwrap().ino(), inode, "unpacked again");
    // Nothing half-unpacked is left beside it, and the builds' directories are gone.
    let names: Vec<_> = fs::read_dir(cache.join("build-wheels-v1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, std::slice::from_ref(&case.wheel.sha256));
    assert_eq!(fs::read_dir(cache.join("build-work")).unwrap().count(), 0);
}

#[test]
fn a_cache_given_as_a_relative_path_serves_hooks_running_elsewhere() {
    if python().is_none() {
        return;
    }
    let case = Case::new();
    // The same directory, relative to where the tests run: `../..` up to the root.
    let cwd = std::env::current_dir().unwrap();
    let up: PathBuf = cwd.components().skip(1).map(|_| "..").collect();
    let relative = up
        .join(case.dir.path().strip_prefix("/").unwrap())
        .join("cache");
    assert!(relative.is_relative());
    let found = case.ask(&builder(relative), &case.sdist("relpkg-1.0.tar.gz"));
    let shared = case.dir.path().join("cache/build-wheels-v1");
    assert_eq!(
        fs::canonicalize(&found).unwrap(),
        fs::canonicalize(shared.join(&case.wheel.sha256).join("helper.py")).unwrap()
    );
}

#[test]
fn a_cache_that_cannot_hold_wheels_leaves_each_build_its_own_copy() {
    if python().is_none() {
        return;
    }
    let case = Case::new();
    // A file where the cache directory should be.
    let cache = case.dir.path().join("cache");
    fs::write(&cache, "not a directory").unwrap();
    let found = case.ask(&builder(cache.clone()), &case.sdist("onlypkg-1.0.tar.gz"));
    assert!(!found.starts_with(&cache), "{}", found.display());
    assert!(found.ends_with("env/helper.py"), "{}", found.display());
}
