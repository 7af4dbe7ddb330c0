//! setuptools, the backend most sdists name or fall back to, asked the questions a run asks,
//! with the interpreter's own setuptools (Debian's python3-setuptools under CI) packed into
//! a wheel as the build environment.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use bitpoll_build::{BuildError, Builder, Sdist, Wheel};
use common::{builder, python, tar_gz};
use sha2::{Digest, Sha256};

/// setuptools as the interpreter has it, as a wheel in `dir`; `None` (skipped) without one.
fn setuptools_wheel(dir: &Path) -> Option<Wheel> {
    let interpreter = python()?;
    let found = Command::new(&interpreter.path)
        .args([
            "-c",
            "import os, setuptools; print(os.path.dirname(os.path.dirname(setuptools.__file__)))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success());
    let Some(found) = found else {
        bitpoll_test_skip::skip(format!(
            "{} has no setuptools (Debian: python3-setuptools)",
            interpreter.path.display()
        ));
        return None;
    };
    let site = PathBuf::from(String::from_utf8(found.stdout).unwrap().trim());
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default();
        let mut add = |name: &str, bytes: &[u8]| {
            zip.start_file(name, opts).unwrap();
            zip.write_all(bytes).unwrap();
        };
        // Its own metadata too: setuptools finds its commands and `setup()` keywords
        // through the entry points listed there.
        let metadata = fs::read_dir(&site)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| {
                n.starts_with("setuptools-")
                    && (n.ends_with(".dist-info") || n.ends_with(".egg-info"))
            })
            .collect::<Vec<_>>();
        assert_eq!(
            metadata.len(),
            1,
            "setuptools' metadata in {}",
            site.display()
        );
        for top in [
            "setuptools",
            "pkg_resources",
            "_distutils_hack",
            &metadata[0],
        ] {
            for file in files_below(&site.join(top)) {
                let name = file.strip_prefix(&site).unwrap().to_str().unwrap();
                if !name.contains("__pycache__") {
                    add(name, &fs::read(&file).unwrap());
                }
            }
        }
        if let Ok(pth) = fs::read(site.join("distutils-precedence.pth")) {
            add("distutils-precedence.pth", &pth);
        }
        zip.finish().unwrap();
    }
    let bytes = buf.into_inner();
    let filename = "setuptools-0-py3-none-any.whl";
    let path = dir.join(filename);
    fs::write(&path, &bytes).unwrap();
    Some(Wheel {
        path,
        filename: filename.to_string(),
        sha256: hex::encode(Sha256::digest(&bytes)),
    })
}

fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_below(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// An sdist `eggy-1.0.tar.gz` whose `setup.py` passes `setup_requires` and whose
/// `egg_info` command appends a line to `ran` before doing its work, or fails instead
/// when `egg_info_fails` (as when it needs a tool its environment lacks).
struct EggySdist {
    path: PathBuf,
    sha256: String,
}

impl EggySdist {
    fn write(dir: &Path, setup_requires: &[&str], egg_info_fails: bool, ran: &Path) -> Self {
        let setup_py = format!(
            r#"from setuptools import setup
from setuptools.command.egg_info import egg_info


class counted(egg_info):
    def run(self):
        with open({ran:?}, "a") as f:
            f.write("egg_info\n")
        if {egg_info_fails}:
            raise SystemExit("error: cython is not installed")
        super().run()


setup(
    name="eggy",
    version="1.0",
    install_requires=["dep>=1"],
    setup_requires={setup_requires:?},
    cmdclass={{"egg_info": counted}},
)
"#,
            ran = ran.display().to_string(),
            egg_info_fails = if egg_info_fails { "True" } else { "False" },
        );
        let pyproject = "[build-system]\nrequires = [\"setuptools\"]\n\
                         build-backend = \"setuptools.build_meta\"\n";
        let bytes = tar_gz(&[
            ("eggy-1.0/setup.py", &setup_py),
            ("eggy-1.0/pyproject.toml", pyproject),
        ]);
        let path = dir.join("eggy-1.0.tar.gz");
        fs::write(&path, &bytes).unwrap();
        Self {
            path,
            sha256: hex::encode(Sha256::digest(&bytes)),
        }
    }

    fn sdist(&self) -> Sdist<'_> {
        Sdist {
            path: &self.path,
            filename: "eggy-1.0.tar.gz",
            sha256: &self.sha256,
            backend: Some("setuptools.build_meta"),
            backend_path: &[],
            ahead: None,
        }
    }
}

/// An eggy sdist, setuptools as its environment, and a builder on a cache of its own.
struct Case {
    dir: tempfile::TempDir,
    builder: Builder,
    setuptools: Wheel,
    sdist: EggySdist,
}

impl Case {
    /// See [`EggySdist::write`]; `None` when skipped.
    fn new(setup_requires: &[&str], egg_info_fails: bool) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let setuptools = setuptools_wheel(dir.path())?;
        let builder = builder(dir.path().join("cache"));
        let sdist = EggySdist::write(
            dir.path(),
            setup_requires,
            egg_info_fails,
            &dir.path().join("ran"),
        );
        Some(Self {
            dir,
            builder,
            setuptools,
            sdist,
        })
    }

    fn requires(&self) -> Result<Vec<String>, BuildError> {
        self.builder.requires_for_build_wheel(
            &self.sdist.sdist(),
            std::slice::from_ref(&self.setuptools),
            &|| Ok(()),
        )
    }

    /// How many times the sdist's `egg_info` ran.
    fn egg_info_runs(&self) -> usize {
        fs::read_to_string(self.dir.path().join("ran"))
            .unwrap_or_default()
            .lines()
            .count()
    }
}

#[test]
fn setup_requires_are_the_build_requirements_and_no_command_runs_to_find_them() {
    let Some(case) = Case::new(&["helper>=2"], false) else {
        return;
    };
    let requires = case.requires().unwrap();
    assert!(requires.contains(&"helper>=2".to_string()), "{requires:?}");
    assert_eq!(case.egg_info_runs(), 0);
}

#[test]
fn a_project_whose_egg_info_fails_still_has_its_build_requirements_answered() {
    // PyYAML's egg_info runs Cython over its extension: seconds of work, and a failure
    // there is no answer about what a build needs.
    let Some(case) = Case::new(&[], true) else {
        return;
    };
    let requires = case.requires().unwrap_or_else(|e| panic!("{e}"));
    // Older setuptools add `wheel`; newer ones nothing.
    assert!(requires.iter().all(|r| r == "wheel"), "{requires:?}");
    assert_eq!(case.egg_info_runs(), 0, "egg_info ran for the question");
}

#[test]
fn metadata_asked_with_the_requirements_runs_egg_info_only_for_the_metadata() {
    let Some(case) = Case::new(&[], false) else {
        return;
    };
    let (requires, built) = case
        .builder
        .requires_and_metadata(
            &case.sdist.sdist(),
            std::slice::from_ref(&case.setuptools),
            &|| Ok(()),
        )
        .unwrap();
    match built {
        // Preparing the metadata runs egg_info; asking for the requirements first in the
        // same process ran it too.
        Some(built) => {
            assert!(requires.is_empty(), "{requires:?}");
            assert!(
                built.metadata.contains("Requires-Dist: dep>=1"),
                "{}",
                built.metadata
            );
            assert_eq!(case.egg_info_runs(), 1);
        }
        // setuptools before 70.1 adds `wheel`, and the metadata is then a question of its
        // own, in an environment with it: this process only asked.
        None => {
            assert_eq!(requires, ["wheel"]);
            assert_eq!(case.egg_info_runs(), 0);
        }
    }
}
