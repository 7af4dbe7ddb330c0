//! Shared setup for the end-to-end tests: a loopback index built from
//! tests/fixtures/index.toml, a scratch project directory, and a way to run the binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bitpoll_tests::server::IndexServer;
use bitpoll_tests::universe::Universe;

pub struct Project {
    pub dir: tempfile::TempDir,
    pub cache: tempfile::TempDir,
    pub server: IndexServer,
    pub sha256: std::collections::BTreeMap<String, String>,
}

pub fn fixture(name: &str) -> PathBuf {
    bitpoll_tests::workspace_root()
        .join("tests/fixtures")
        .join(name)
}

impl Project {
    /// A project whose `requirements.in` holds `requirements`, with the fixture nixpkgs index
    /// and an empty policy.
    pub fn new(requirements: &str) -> Self {
        Self::with_packages(requirements, "")
    }

    /// Like [`Project::new`], with `more` (packages in the fixture's TOML shape) added to the
    /// index: for packages whose files depend on the test (a port, a path).
    pub fn with_packages(requirements: &str, more: &str) -> Self {
        let text = std::fs::read_to_string(fixture("index.toml")).unwrap() + "\n" + more;
        let universe = Universe::from_toml(&text).unwrap();
        let built = universe.build();
        let server = IndexServer::start(built.routes);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lock")).unwrap();
        std::fs::copy(
            fixture("nixpkgs-index.json"),
            dir.path().join("lock/nixpkgs-index.json"),
        )
        .unwrap();
        std::fs::write(dir.path().join("requirements.in"), requirements).unwrap();
        Self {
            dir,
            cache: tempfile::tempdir().unwrap(),
            server,
            sha256: built.sha256,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }

    /// `bitpoll-lock ARGS` in the project directory, with the given HTTP cache.
    pub fn command(&self, args: &[&str], cache: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitpoll-lock"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("BITPOLL_LOCK_CACHE_DIR", cache)
            .env_remove("BITPOLL_LOCK_INDEX_URL");
        cmd
    }

    /// Runs `bitpoll-lock ARGS` in the project directory with the project's cache.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args, self.cache.path()).output().unwrap()
    }

    /// `update` against the loopback index with the default systems and `requirements.in`.
    pub fn update_command(&self, extra: &[&str], cache: &Path) -> Command {
        let url = self.server.index_url();
        let mut args = vec![
            "update",
            "-q",
            "-r",
            "requirements.in",
            "--index-url",
            url.as_str(),
        ];
        args.extend_from_slice(extra);
        self.command(&args, cache)
    }

    pub fn update(&self, extra: &[&str]) -> Output {
        self.update_command(extra, self.cache.path())
            .output()
            .unwrap()
    }

    /// `update` with a throwaway cache, so a failure comes from the index and not from an
    /// answer cached by an earlier run.
    pub fn update_fresh(&self, extra: &[&str]) -> Output {
        let cache = tempfile::tempdir().unwrap();
        self.update_command(extra, cache.path()).output().unwrap()
    }

    /// Locks with `--no-nixpkgs`, removes the downloaded archives and the lock, and locks
    /// again offline: the same lock must come out of what the cache kept, without a request.
    pub fn assert_relocks_offline_without_archives(&self) {
        assert_ok(&self.update(&["--no-nixpkgs"]));
        let first = self.lock_text();
        std::fs::remove_dir_all(self.cache.path().join("artifacts-v1")).unwrap();
        std::fs::remove_file(self.path("lock/bitpoll.lock.json")).unwrap();
        self.server.clear_log();
        assert_ok(&self.update(&["--no-nixpkgs", "--offline"]));
        assert_eq!(first, self.lock_text());
        assert!(self.server.requests().is_empty());
    }

    pub fn lock_text(&self) -> String {
        std::fs::read_to_string(self.path("lock/bitpoll.lock.json")).unwrap()
    }

    pub fn lock(&self) -> serde_json::Value {
        serde_json::from_str(&self.lock_text()).unwrap()
    }

    /// Entries for `name` (one per distinct version/source).
    pub fn entries(&self, name: &str) -> Vec<serde_json::Value> {
        self.lock()["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == name)
            .cloned()
            .collect()
    }

    /// The single entry for `name`, which must serve every target.
    pub fn entry(&self, name: &str) -> serde_json::Value {
        let entries = self.entries(name);
        assert_eq!(
            entries.len(),
            1,
            "expected one entry for {name}: {entries:#?}"
        );
        assert_eq!(
            entries[0]["targets"].as_array().unwrap().len(),
            4,
            "{name} should serve all targets"
        );
        entries[0].clone()
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstderr:\n{}\nstdout:\n{}",
        o.status.code(),
        stderr(o),
        stdout(o)
    );
}

/// Temporary files of the lock writer left in the lock's directory.
pub fn temp_files(p: &Project) -> Vec<String> {
    std::fs::read_dir(p.path("lock"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// After a failed run: the lock is byte-identical to `before` and no temporary file is left.
#[track_caller]
pub fn assert_lock_untouched(p: &Project, before: &str) {
    assert_eq!(before, p.lock_text(), "the previous lock must be untouched");
    assert_eq!(
        temp_files(p),
        Vec::<String>::new(),
        "no temporary file may be left behind"
    );
}

/// After a failed run in a project that had no lock: still none, and no temporary file.
#[track_caller]
pub fn assert_no_lock_created(p: &Project) {
    assert!(
        !p.path("lock/bitpoll.lock.json").exists(),
        "a failed run must not create a lock"
    );
    assert_eq!(
        temp_files(p),
        Vec::<String>::new(),
        "no temporary file may be left behind"
    );
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// Packages (in the fixture's TOML shape) where `base` 2.0 is decided first (it is declared
/// first) and every `tool` from 2.0 to `newest` needs `base<2`: deciding `base` first would
/// walk `tool` down to 1.0, so the solve starts over with `tool` first.
pub fn losing_walk(newest: u32) -> String {
    let mut toml =
        String::from("[packages.base.versions.\"1.0\"]\n[packages.base.versions.\"2.0\"]\n");
    toml += "[packages.tool.versions.\"1.0\"]\n";
    for v in 2..=newest {
        toml += &format!("[packages.tool.versions.\"{v}.0\"]\nrequires = [\"base<2\"]\n");
    }
    toml
}
