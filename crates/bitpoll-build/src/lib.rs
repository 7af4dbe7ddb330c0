//! A PEP 517 frontend for one question: what does this sdist depend on?
//!
//! Some sdists do not say statically (a PKG-INFO older than metadata 2.2, `Dynamic:
//! Requires-Dist`, a bare `setup.py`). Guessing their dependencies gives a lock that builds
//! an environment which fails at import time, so this crate asks the sdist's build backend,
//! the way pip and uv do: unpack the sdist into a fresh directory, put the *given* wheels
//! (the caller resolved and hash-checked them) on the hook's path, each unpacked once below
//! the cache and shared by every build that uses it, and call
//! `get_requires_for_build_wheel` or `prepare_metadata_for_build_wheel` (falling back to
//! `build_wheel` when a backend lacks the latter) with a Python interpreter found on the
//! machine.
//!
//! What it must not do: install anything it was not given (no pip, no index access of its
//! own), let the backend see the interpreter's site-packages or the user's environment
//! variables, or let a hook run forever. Each hook runs with a cleared environment, a time
//! limit after which its whole process group is killed, and without network access where
//! the machine allows a private network namespace (`unshare`); [`Builder::isolation`] says
//! which. Answers are cached on disk by the sdist's sha256 and the environment's identity.
//!
//! A hook that ran and failed (it exited with an error, or its answer is unusable) is
//! remembered there too, so that a warm or offline run does not unpack and run it again only
//! to fail the same way; a remembered failure comes back as the same [`BuildError`], with the
//! same output tail. Failures that may not recur are never remembered: a time-out, a hook
//! killed by a signal, one whose output shows the machine ran out of something (disk space,
//! memory, file handles), a missing interpreter, an unpacking, download or I/O error. What a
//! failed hook lacked may be something the machine gains (a package that brings a library's
//! config tool), so a failure is remembered together with the modification times of the
//! hook's `PATH` directories, the header directories, the package manager's database and the
//! interpreter, and is asked again when any of them changed or after 24 hours
//! ([`FAILURE_LIFETIME`]), whichever comes first.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// The hook script, run by the interpreter under test.
const HOOK_SCRIPT: &str = include_str!("hook.py");

/// The backend PEP 517 prescribes when `pyproject.toml` names none.
pub const FALLBACK_BACKEND: &str = "setuptools.build_meta:__legacy__";

/// How much an unpacked sdist or wheel may expand to: far beyond any real one, small
/// enough that a hostile archive cannot fill the disk.
const MAX_UNPACKED_BYTES: u64 = 2 << 30;

/// Lines of a failed hook's output shown in the error.
const TAIL_LINES: usize = 25;

/// The `PATH` a hook runs with: the machine's own tools, not the user's.
const HOOK_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The hook asked only about build requirements: nothing waits for its answer until the
/// solve is over, while the solver waits for every metadata build. It runs at a lower CPU
/// priority ([`QUESTION_NICENESS`], inherited by what it starts), so that on a machine with
/// fewer cores than hooks the builds the solve waits for go first; once the solve is over
/// there is little else to yield to.
const QUESTION_ONLY_HOOK: &str = "get_requires_for_build_wheel";
const QUESTION_NICENESS: i32 = 10;

/// Besides the hook's `PATH` directories and the interpreter, what installing a package
/// that a build needs changes: the header directories and the package managers' records of
/// what is installed (dpkg's status file, rpm's database), where a machine has them.
const MACHINE_PATHS: &[&str] = &[
    "/usr/include",
    "/usr/local/include",
    "/var/lib/dpkg/status",
    "/var/lib/rpm",
];

/// How long a hook's failure is remembered when nothing watched on the machine changed.
/// Long enough that the reruns of a working day (warm, offline) ask a failing backend once;
/// short enough that a cause the watched paths do not show (a library installed by hand
/// elsewhere, a setting changed outside them) is tried again by the next day.
pub const FAILURE_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Output that shows a hook failed because the machine ran short of something at the time,
/// not because of what it was given: such a failure is not remembered. These are the C
/// library's messages for the errors (and Python's for memory), as a backend prints them.
const TRANSIENT_OUTPUT: &[&str] = &[
    "No space left on device",
    "Disk quota exceeded",
    "Cannot allocate memory",
    "MemoryError",
    "Too many open files",
    "Resource temporarily unavailable",
    "Temporary failure in name resolution",
    "Connection timed out",
];

/// Why the caller could not put the sdist and the wheels in place (a download, a write).
pub type FetchError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "no Python interpreter to run build backends: tried {tried}; install one or pass --build-python PATH"
    )]
    NoInterpreter { tried: String },
    #[error("{path}: cannot be used to run build backends: {reason}")]
    BadInterpreter { path: PathBuf, reason: String },
    #[error("{file}: cannot unpack it for a build: {reason}")]
    Unpack { file: String, reason: String },
    #[error(
        "{sdist}: its build backend's `{hook}` hook failed ({status}); the last lines of its output:\n{tail}"
    )]
    HookFailed {
        sdist: String,
        hook: &'static str,
        status: String,
        tail: String,
    },
    #[error(
        "{sdist}: its build backend's `{hook}` hook did not finish within {secs} s and was stopped; the last lines of its output:\n{tail}"
    )]
    Timeout {
        sdist: String,
        hook: &'static str,
        secs: u64,
        tail: String,
    },
    #[error("{sdist}: cannot fetch what its build needs: {source}")]
    Fetch {
        sdist: String,
        #[source]
        source: FetchError,
    },
    #[error("{sdist}: the `{hook}` hook's answer cannot be read: {reason}")]
    BadAnswer {
        sdist: String,
        hook: &'static str,
        reason: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// A failure, and whether asking the same question on the same machine would fail the same
/// way again, which is what makes it worth remembering (see [`Builder::failed`]).
struct Failure {
    error: BuildError,
    recurs: bool,
}

impl From<BuildError> for Failure {
    /// The default for each kind of error; the places that know more (a hook killed by a
    /// signal, an answer file that could not be read) say so themselves.
    fn from(error: BuildError) -> Self {
        let recurs = match &error {
            // The backend ran to its end on these inputs and refused, or said something
            // that cannot be used: it does so again.
            BuildError::HookFailed { .. } | BuildError::BadAnswer { .. } => true,
            // Depends on the machine's load at the time.
            BuildError::Timeout { .. } => false,
            // The hook did not run: the interpreter may be installed, the download or the
            // disk may work next time; and these cost little to find out again.
            BuildError::NoInterpreter { .. }
            | BuildError::BadInterpreter { .. }
            | BuildError::Unpack { .. }
            | BuildError::Fetch { .. }
            | BuildError::Io { .. } => false,
        };
        Self { error, recurs }
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
    let context = context.into();
    move |source| BuildError::Io { context, source }
}

/// The Python that runs build backends.
#[derive(Debug, Clone)]
pub struct Interpreter {
    pub path: PathBuf,
    /// The full version, `3.13.1`.
    pub version: String,
    /// `cpython`, `pypy`, ...
    pub implementation: String,
}

impl Interpreter {
    /// `explicit` when given; otherwise `python{want}` on `PATH` (the target's own minor
    /// version), then `python3`. The caller compares [`Interpreter::minor`] with what it
    /// wanted: a build with another version is allowed but must be recorded.
    ///
    /// `remember`: a file where probes are kept by the interpreter file's identity (path,
    /// size, modification time), so that a run which builds nothing starts no Python.
    pub fn find(
        want: &str,
        explicit: Option<&Path>,
        remember: Option<&Path>,
    ) -> Result<Self, BuildError> {
        let probe = |path: &Path| match remember {
            Some(file) => Self::probe_remembered(path, file),
            None => Self::probe(path),
        };
        if let Some(path) = explicit {
            return probe(path);
        }
        let minor: String = want.split('.').take(2).collect::<Vec<_>>().join(".");
        let names = [format!("python{minor}"), "python3".to_string()];
        let mut tried = Vec::new();
        for name in &names {
            let Some(path) = on_path(name) else {
                tried.push(format!("{name} (not on PATH)"));
                continue;
            };
            match probe(&path) {
                Ok(found) => return Ok(found),
                Err(e) => tried.push(format!("{name} ({e})")),
            }
        }
        Err(BuildError::NoInterpreter {
            tried: tried.join(", "),
        })
    }

    fn probe_remembered(path: &Path, file: &Path) -> Result<Self, BuildError> {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Probe {
            path: PathBuf,
            version: String,
            implementation: String,
        }
        // A shim or a symlink changes when what it selects does not, so the key is the file
        // the path leads to.
        let key = std::fs::canonicalize(path)
            .and_then(|real| {
                let meta = std::fs::metadata(&real)?;
                let mtime = meta
                    .modified()?
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                Ok(format!(
                    "{}|{}|{}.{}",
                    real.display(),
                    meta.len(),
                    mtime.as_secs(),
                    mtime.subsec_nanos()
                ))
            })
            .ok();
        let mut known: std::collections::BTreeMap<String, Result<Probe, String>> = fs::read(file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        if let Some(hit) = key.as_ref().and_then(|k| known.get(k)) {
            return match hit {
                Ok(p) => Ok(Self {
                    path: p.path.clone(),
                    version: p.version.clone(),
                    implementation: p.implementation.clone(),
                }),
                Err(reason) => Err(BuildError::BadInterpreter {
                    path: path.to_path_buf(),
                    reason: reason.clone(),
                }),
            };
        }
        let found = Self::probe(path);
        if let Some(key) = key {
            let entry = match &found {
                Ok(i) => Ok(Probe {
                    path: i.path.clone(),
                    version: i.version.clone(),
                    implementation: i.implementation.clone(),
                }),
                Err(BuildError::BadInterpreter { reason, .. }) => Err(reason.clone()),
                Err(e) => Err(e.to_string()),
            };
            known.insert(key, entry);
            // Losing this only costs a probe next time.
            if let (Some(dir), Ok(bytes)) = (file.parent(), serde_json::to_vec(&known)) {
                if fs::create_dir_all(dir).is_ok() {
                    if let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir) {
                        if tmp.write_all(&bytes).is_ok() {
                            let _ = tmp.persist(file);
                        }
                    }
                }
            }
        }
        found
    }

    fn probe(path: &Path) -> Result<Self, BuildError> {
        let bad = |reason: String| BuildError::BadInterpreter {
            path: path.to_path_buf(),
            reason,
        };
        let out = Command::new(path)
            .args([
                "-I",
                "-S",
                "-c",
                "import sys, platform; print(platform.python_version()); print(sys.implementation.name); print(sys.executable)",
            ])
            .env_clear()
            // Only so that a version manager's shim can find the interpreter it selects.
            .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
            .envs(std::env::var_os("HOME").map(|p| ("HOME", p)))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| bad(e.to_string()))?;
        if !out.status.success() {
            return Err(bad(format!("exited with {}", out.status)));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let (Some(version), Some(implementation)) = (lines.next(), lines.next()) else {
            return Err(bad("did not report its version".into()));
        };
        // The interpreter itself rather than a version manager's shim, which would need the
        // environment variables a hook does not get.
        let path = match lines.next().map(str::trim) {
            Some(exe) if !exe.is_empty() && Path::new(exe).is_file() => PathBuf::from(exe),
            _ => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
        };
        Ok(Self {
            path,
            version: version.trim().to_string(),
            implementation: implementation.trim().to_string(),
        })
    }

    /// `3.13` of `3.13.1`.
    pub fn minor(&self) -> String {
        self.version
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
    }

    /// What the lock records: `cpython-3.13.1`.
    pub fn describe(&self) -> String {
        format!("{}-{}", self.implementation, self.version)
    }
}

/// `name` looked up in `PATH` the way a shell would.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// How hooks are kept off the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// In a private network namespace (only a loopback device), made by `unshare` with
    /// these arguments.
    NetworkNamespace(Vec<String>),
    /// With the machine's network: why no namespace could be made.
    None(String),
}

impl Isolation {
    /// Tries a namespace as an unprivileged user first (`-r` maps the caller to root inside
    /// a user namespace), then a plain one (works as root without user namespaces).
    pub fn detect() -> Self {
        let mut last = String::from("`unshare` is not installed");
        for args in [vec!["-r", "-n"], vec!["-n"]] {
            match Command::new("unshare")
                .args(&args)
                .arg("true")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
            {
                Ok(out) if out.status.success() => {
                    return Isolation::NetworkNamespace(
                        args.into_iter().map(str::to_string).collect(),
                    )
                }
                Ok(out) => {
                    last = format!(
                        "`unshare {}` failed: {}",
                        args.join(" "),
                        String::from_utf8_lossy(&out.stderr).trim()
                    )
                }
                Err(_) => break,
            }
        }
        Isolation::None(last)
    }
}

/// An sdist to ask.
#[derive(Debug, Clone)]
pub struct Sdist<'a> {
    pub path: &'a Path,
    pub filename: &'a str,
    pub sha256: &'a str,
    /// `[build-system].build-backend`; `None` for the PEP 517 fallback.
    pub backend: Option<&'a str>,
    pub backend_path: &'a [String],
    /// Its sources, being unpacked while the caller resolves and fetches the build
    /// environment (see [`Builder::unpack_ahead`]); the next hook asked takes them.
    pub ahead: Option<&'a Ahead>,
}

/// An sdist's source tree unpacked ahead of the hook that will read it, by
/// [`Builder::unpack_ahead`] on a thread of the caller's.
///
/// A cold build otherwise does everything in a row: resolve the build environment (a page
/// and metadata, round trips), download its wheels, unpack them and the sdist, run the hook.
/// The sdist is on disk before the first of these, so its unpacking (hundreds of files, up
/// to 20,000) can go on meanwhile.
#[derive(Debug)]
pub struct Ahead(std::sync::Mutex<Option<std::sync::mpsc::Receiver<Result<Tree, BuildError>>>>);

/// The sending half of an [`Ahead`], for the thread that unpacks.
#[derive(Debug)]
pub struct AheadSender(std::sync::mpsc::Sender<Result<Tree, BuildError>>);

/// An unpacked sdist: `src/` in a directory of its own below the build work directory.
#[derive(Debug)]
pub struct Tree(tempfile::TempDir);

impl Ahead {
    /// A tree to be unpacked: give the sender to [`Builder::unpack_ahead`]. When the sender
    /// is dropped unsent (the thread panicked), the hook unpacks the sdist itself.
    pub fn pending() -> (AheadSender, Ahead) {
        let (sender, receiver) = std::sync::mpsc::channel();
        (
            AheadSender(sender),
            Ahead(std::sync::Mutex::new(Some(receiver))),
        )
    }

    /// Whether the next hook takes its sources from here, so that the sdist's own file is
    /// not needed (no hook has taken them yet).
    pub fn holds_tree(&self) -> bool {
        self.0.lock().expect("ahead lock").is_some()
    }

    /// The tree, waiting until it is unpacked; `None` once taken or when it never came.
    fn take(&self) -> Option<Result<Tree, BuildError>> {
        let receiver = self.0.lock().expect("ahead lock").take()?;
        receiver.recv().ok()
    }
}

/// A wheel of the build environment, already checked against its sha256.
#[derive(Debug, Clone)]
pub struct Wheel {
    pub path: PathBuf,
    pub filename: String,
    pub sha256: String,
}

/// What `prepare_metadata_for_build_wheel` (or `build_wheel`) produced.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BuiltMetadata {
    /// The core-metadata text (`METADATA`).
    pub metadata: String,
    /// Which hook gave it.
    pub hook: String,
}

/// A hook's working directory (the unpacked environment and sources), removed when dropped;
/// the removal is in the timeline. A large tree takes as long to remove as to unpack, so it
/// is removed in the background: nothing waits for it but the end of the run (see the
/// `Drop` of [`Builder`]), and no directory is left behind.
struct WorkDir<'a> {
    /// The hook's directory, and the sources' when they were unpacked ahead.
    dirs: Vec<tempfile::TempDir>,
    builder: &'a Builder,
    label: String,
}

impl Drop for WorkDir<'_> {
    fn drop(&mut self) {
        let (dirs, timings) = (std::mem::take(&mut self.dirs), self.builder.timings.clone());
        if dirs.is_empty() {
            return;
        }
        let label = std::mem::take(&mut self.label);
        let removal = std::thread::spawn(move || {
            let mark = timings.mark();
            drop(dirs);
            timings.span(mark, bitpoll_timings::Category::BuildCleanup, || label);
        });
        self.builder
            .removals
            .lock()
            .expect("removals lock")
            .push(removal);
    }
}

/// Records a hook's run when dropped, however the run ends (an answer, a failure, a
/// timeout).
struct HookSpan<'a, F: Fn() -> String> {
    timings: &'a bitpoll_timings::Timings,
    mark: bitpoll_timings::Mark,
    label: F,
}

impl<F: Fn() -> String> Drop for HookSpan<'_, F> {
    fn drop(&mut self) {
        self.timings
            .span(self.mark, bitpoll_timings::Category::BuildHook, &self.label);
    }
}

/// Runs hooks; see the crate documentation.
#[derive(Debug)]
pub struct Builder {
    interpreter: Interpreter,
    cache: Option<PathBuf>,
    /// Where builds unpack and run (see [`Builder::work_dir`]).
    work: Option<PathBuf>,
    /// A memory file system that sdists' trees go to when it has room (see
    /// [`Builder::memory_tree`]).
    memory: Option<PathBuf>,
    /// Where build environments' wheels are unpacked once, each in a directory named by its
    /// sha256, for every build that uses them (see [`Builder::installed`]).
    wheels: Option<PathBuf>,
    /// One lock per wheel being unpacked there, so that a run unpacks each once.
    unpacking: std::sync::Mutex<std::collections::HashMap<String, Arc<std::sync::Mutex<()>>>>,
    work_swept: std::sync::Once,
    memory_swept: std::sync::Once,
    timeout: Duration,
    /// Given, or worked out when the first hook runs (see [`Builder::new`]).
    isolation: std::sync::OnceLock<Isolation>,
    timings: bitpoll_timings::Timings,
    /// Working directories being removed (see [`WorkDir`]).
    removals: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Whose modification times a remembered failure is checked against.
    machine_paths: Vec<PathBuf>,
    /// Their state, read once per run.
    machine: std::sync::OnceLock<String>,
    failure_lifetime: Duration,
    /// The hooks running, which a question about build requirements waits on (see
    /// [`Cores`]).
    cores: Cores,
}

impl Drop for Builder {
    fn drop(&mut self) {
        self.wait_for_cleanup();
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CachedRequires {
    requires: Vec<String>,
}

/// A remembered failure, beside the answer it stands for (`<key>.failed.json`). The sdist's
/// file name and the hook's name are filled in from the question, as a fresh run would.
#[derive(serde::Serialize, serde::Deserialize)]
struct CachedFailure {
    /// See [`Builder::machine_state`].
    machine: String,
    /// Seconds since the Unix epoch.
    failed_at: u64,
    error: CachedError,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum CachedError {
    HookFailed { status: String, tail: String },
    BadAnswer { reason: String },
}

impl Builder {
    /// A fresh directory for one build's files, removed when dropped: below the cache's
    /// `build-work/` when there is a cache, else in the system's temporary directory.
    ///
    /// Not `/tmp` by default: an sdist unpacks to thousands of files (scipy's to 20,000 and
    /// 280 MB), which a `/tmp` in memory may not hold, and the cache's file system is the
    /// one the user gave room to (downloads are copied from the cache within it). Where
    /// thousands of files were deleted in the last minutes, ext4 looks for a free inode
    /// slowly (it skips recently freed ones one by one): an unpack of uWSGI's sdist took
    /// 140 ms in such a `/tmp` and 24 ms in a directory without that churn. A run that was
    /// killed leaves its directories; they are removed a day later, by the next run. A
    /// cache that cannot be written to (the client then keeps answers in memory) leaves
    /// builds in the system's temporary directory, as before. An sdist's tree goes to a
    /// memory file system instead when that has room for it ([`Builder::memory_tree`]).
    pub fn work_dir(&self, prefix: &str) -> std::io::Result<tempfile::TempDir> {
        let in_cache = self.work.as_ref().and_then(|work| {
            self.work_swept.call_once(|| sweep_stale(work, None));
            fs::create_dir_all(work).ok()?;
            tempfile::Builder::new()
                .prefix(prefix)
                .tempdir_in(work)
                .ok()
        });
        match in_cache {
            Some(dir) => Ok(dir),
            None => tempfile::Builder::new().prefix(prefix).tempdir(),
        }
    }

    /// `archive` unpacked in the memory file system, when it has room for the tree; `None`
    /// otherwise, and the caller unpacks it on disk.
    ///
    /// A tree is scratch: read by one hook, removed when its answer is in. On disk it costs
    /// what a file system charges for creating and deleting thousands of files, and some
    /// charge a lot: here (ext4 on a virtual disk) scipy's sdist (19,000 files, 280 MB)
    /// unpacked in 4-7 s, 14 s within minutes of an earlier tree's removal, and 1.6 s in
    /// memory; a run that removed one tree unpacked the next slowly, and so did the next
    /// run. "Room" is four times the tree's size free ([`MEMORY_HEADROOM`]; the size is the
    /// one a `.tar.gz` records of itself, a `.zip` sdist stays on disk, and the tree may hold
    /// no more than that). Should the memory fill up meanwhile, or the archive be bad, the
    /// tree is unpacked on disk, which reports what is wrong.
    fn memory_tree(&self, archive: &Path, filename: &str) -> Option<Tree> {
        let memory = self.memory.as_ref()?;
        let size = tar_gz_size(archive, filename)?;
        let free = rustix::fs::statvfs(memory)
            .ok()
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))?;
        if size.saturating_mul(MEMORY_HEADROOM) > free {
            return None;
        }
        self.memory_swept
            .call_once(|| sweep_stale(memory, Some(MEMORY_PREFIX)));
        let dir = tempfile::Builder::new()
            .prefix(MEMORY_PREFIX)
            .tempdir_in(memory)
            .ok()?;
        let src = dir.path().join("src");
        fs::create_dir(&src).ok()?;
        // Files holding more than the trailer says (it lies, or gzip members follow the
        // first: the trailer is the last member's) stop here and go to disk, which holds
        // them to the usual limit. A tar stream is never read to its gzip trailer, so
        // nothing else would notice.
        unpack_sdist_within(archive, filename, &src, size).ok()?;
        Some(Tree(dir))
    }

    /// Whether a hook would read `wheel`'s file, so that a `fetch` must put it at its path:
    /// not when it is unpacked below the cache already (see [`Builder::installed`]).
    pub fn needs_file(&self, wheel: &Wheel) -> bool {
        !self.shared_dir(wheel).is_some_and(|dir| dir.is_dir())
    }

    /// Whether answers (or remembered failures) about the sdist with this sha256 are on
    /// disk: then a hook probably will not run, and unpacking its sources ahead would be
    /// work for nothing.
    pub fn has_answers(&self, sha256: &str) -> bool {
        self.cache
            .as_ref()
            .filter(|_| is_sha256(sha256))
            .is_some_and(|cache| cache.join(sha256).is_dir())
    }

    /// Puts the sdist `filename` in a directory of its own (`fetch` writes it to the path
    /// given) and unpacks it there for the hook that will take it from `ahead`; blocks until
    /// done, so call it on a thread of its own while the build environment is made ready.
    pub fn unpack_ahead(
        &self,
        ahead: AheadSender,
        filename: &str,
        fetch: impl FnOnce(&Path) -> Result<(), FetchError>,
    ) {
        let mark = self.timings.mark();
        let mut in_memory = false;
        let tree = (|| {
            let dir = self
                .work_dir("src-")
                .map_err(io("cannot create a build directory"))?;
            let archive = dir.path().join(filename);
            fetch(&archive).map_err(|source| BuildError::Fetch {
                sdist: filename.to_string(),
                source,
            })?;
            if let Some(tree) = self.memory_tree(&archive, filename) {
                in_memory = true;
                return Ok(tree);
            }
            let src = dir.path().join("src");
            fs::create_dir(&src).map_err(io(format!("{}", src.display())))?;
            unpack_sdist(&archive, filename, &src)?;
            // The archive is read; the tree is what the hook needs.
            let _ = fs::remove_file(&archive);
            Ok(Tree(dir))
        })();
        self.timings
            .span(mark, bitpoll_timings::Category::BuildUnpack, || {
                let place = if in_memory { ", in memory" } else { "" };
                format!("{filename} (ahead of its hook{place})")
            });
        // The hook may have finished without it (a cached answer); the tree then goes with
        // the message.
        let _ = ahead.0.send(tree);
    }

    /// Where `wheel` is unpacked for every build, when there is a cache to hold it.
    fn shared_dir(&self, wheel: &Wheel) -> Option<PathBuf> {
        let wheels = self.wheels.as_ref().filter(|_| is_sha256(&wheel.sha256))?;
        Some(wheels.join(&wheel.sha256))
    }

    /// The directory `wheel` is unpacked in, for a hook's `sys.path`. With a cache, that is
    /// `build-wheels-v1/<sha256>/` below it, unpacked by the first build that needs it and
    /// read by every later one (setuptools alone is some 500 files, which most builds of a
    /// run would otherwise each write again); otherwise, or when the cache cannot hold it,
    /// the build's own `private` directory. A directory appears there under its name only
    /// once complete (it is unpacked in `build-work/` and renamed), and the bytes were
    /// checked against the sha256 when they were fetched.
    fn installed(&self, wheel: &Wheel, private: &Path) -> Result<PathBuf, BuildError> {
        if let Some(dir) = self.shared_dir(wheel) {
            if dir.is_dir() {
                return Ok(dir);
            }
            let lock = self.wheel_lock(wheel);
            let _unpacking = lock.lock().expect("wheel unpacking lock");
            if let Some(dir) = self.unpacked_shared(wheel, &dir)? {
                return Ok(dir);
            }
        }
        install_wheel(&wheel.path, &wheel.filename, private)?;
        Ok(private.to_path_buf())
    }

    /// The lock of `wheel`'s shared directory: held while it is unpacked.
    fn wheel_lock(&self, wheel: &Wheel) -> Arc<std::sync::Mutex<()>> {
        self.unpacking
            .lock()
            .expect("unpacking lock")
            .entry(wheel.sha256.clone())
            .or_default()
            .clone()
    }

    /// `dir`, the wheel's shared directory, unpacked there unless it is already; `None`
    /// when the cache cannot hold it. The caller holds [`Builder::wheel_lock`].
    fn unpacked_shared(&self, wheel: &Wheel, dir: &Path) -> Result<Option<PathBuf>, BuildError> {
        if dir.is_dir() {
            return Ok(Some(dir.to_path_buf()));
        }
        // Unpacked in `build-work/`, where what a killed run left is swept, and moved into
        // place (a rename: both are below the cache).
        let parent = dir.parent().expect("below the wheels' directory");
        let Ok(tmp) = fs::create_dir_all(parent).and_then(|()| self.work_dir("wheel-")) else {
            return Ok(None);
        };
        install_wheel(&wheel.path, &wheel.filename, tmp.path())?;
        match fs::rename(tmp.path(), dir) {
            Ok(()) => Ok(Some(dir.to_path_buf())),
            // Another run put it there first.
            Err(_) if dir.is_dir() => Ok(Some(dir.to_path_buf())),
            // Not on the cache's file system (the cache cannot hold build directories):
            // each build unpacks it for itself.
            Err(_) => Ok(None),
        }
    }

    /// The interpreter, in a network namespace of its own where the machine allows one:
    /// package code runs there.
    fn isolated_python(&self) -> Command {
        match self.isolation() {
            Isolation::NetworkNamespace(args) => {
                let mut c = Command::new("unshare");
                c.args(args).arg(&self.interpreter.path);
                c
            }
            Isolation::None(_) => Command::new(&self.interpreter.path),
        }
    }

    /// Waits until the working directories of finished hooks are removed (they are removed
    /// in the background, see [`WorkDir`]); a builder does so when dropped.
    pub fn wait_for_cleanup(&self) {
        let removals = std::mem::take(&mut *self.removals.lock().expect("removals lock"));
        for removal in removals {
            let _ = removal.join();
        }
    }

    /// `cache`: where answers are kept (`builds-v1/` below it), or `None` for no cache.
    /// `isolation`: `None` to have it worked out ([`Isolation::detect`]) when the first hook
    /// runs: finding out starts processes (3-6 ms here), and a run whose every answer is
    /// cached runs no hook (Bitpoll's offline lock takes 20-45 ms in all).
    pub fn new(
        interpreter: Interpreter,
        cache: Option<PathBuf>,
        timeout: Duration,
        isolation: Option<Isolation>,
    ) -> Self {
        let machine_paths = std::env::split_paths(HOOK_PATH)
            .chain(MACHINE_PATHS.iter().map(PathBuf::from))
            .chain([interpreter.path.clone()])
            .collect();
        Self {
            interpreter,
            work: cache.as_ref().map(|c| c.join(WORK_DIR)),
            memory: memory_dir(),
            // Absolute: hooks run in the sdist's directory, and read these paths from there.
            wheels: cache
                .as_ref()
                .map(|c| std::path::absolute(c.join(WHEELS_DIR)).unwrap_or(c.join(WHEELS_DIR))),
            unpacking: std::sync::Mutex::default(),
            work_swept: std::sync::Once::new(),
            memory_swept: std::sync::Once::new(),
            cache: cache.map(|c| c.join("builds-v1")),
            timeout,
            isolation: isolation.map(std::sync::OnceLock::from).unwrap_or_default(),
            timings: bitpoll_timings::Timings::off(),
            removals: std::sync::Mutex::default(),
            machine_paths,
            machine: std::sync::OnceLock::new(),
            failure_lifetime: FAILURE_LIFETIME,
            cores: Cores::new(std::thread::available_parallelism().map_or(1, |n| n.get())),
        }
    }

    /// Checks remembered failures against the modification times of `paths` instead of the
    /// hook's `PATH` directories, the header directories, the package database and the
    /// interpreter (for tests, which cannot install packages on the machine).
    pub fn with_machine_paths(mut self, paths: Vec<PathBuf>) -> Self {
        self.machine_paths = paths;
        self.machine = std::sync::OnceLock::new();
        self
    }

    /// Forgets a remembered failure after `lifetime` instead of [`FAILURE_LIFETIME`].
    pub fn with_failure_lifetime(mut self, lifetime: Duration) -> Self {
        self.failure_lifetime = lifetime;
        self
    }

    /// Unpacks sdists' trees in `dir` when it has room, whatever file system it is on, or
    /// never in memory (`None`), instead of the machine's memory file system.
    pub fn with_memory_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.memory = dir;
        self
    }

    /// Records hook runs, unpacking and cached answers.
    pub fn with_timings(mut self, timings: bitpoll_timings::Timings) -> Self {
        self.timings = timings;
        self
    }

    pub fn interpreter(&self) -> &Interpreter {
        &self.interpreter
    }

    pub fn isolation(&self) -> &Isolation {
        self.isolation.get_or_init(Isolation::detect)
    }

    /// The isolation, if a hook has run or it was given; `None` while it is still to be
    /// worked out.
    pub fn isolation_if_known(&self) -> Option<&Isolation> {
        self.isolation.get()
    }

    /// The requirements the backend adds for building a wheel (PEP 517
    /// `get_requires_for_build_wheel`), asked in an environment of `env`.
    ///
    /// `fetch` puts the sdist and the wheels at their paths; it is called only when the
    /// answer is not cached, so a cached answer needs no download.
    pub fn requires_for_build_wheel(
        &self,
        sdist: &Sdist<'_>,
        env: &[Wheel],
        fetch: &dyn Fn() -> Result<(), FetchError>,
    ) -> Result<Vec<String>, BuildError> {
        const HOOK: &str = "get_requires_for_build_wheel";
        let key = self.cache_key(sdist, env, HOOK);
        if let Some(hit) = self.cached::<CachedRequires>(sdist, &key) {
            return Ok(hit.requires);
        }
        self.failed(sdist, &key, HOOK)?;
        let requires = self
            .run_hook(sdist, env, HOOK, fetch)
            .and_then(|(answer, _work)| answer_requires(sdist, HOOK, &answer))
            .map_err(|failure| self.remember(sdist, &key, failure))?;
        self.store(
            sdist,
            &key,
            &CachedRequires {
                requires: requires.clone(),
            },
        );
        Ok(requires)
    }

    /// The sdist's metadata as its backend prepares it in an environment of `env`; `fetch`
    /// as for [`Builder::requires_for_build_wheel`].
    pub fn metadata(
        &self,
        sdist: &Sdist<'_>,
        env: &[Wheel],
        fetch: &dyn Fn() -> Result<(), FetchError>,
    ) -> Result<BuiltMetadata, BuildError> {
        const HOOK: &str = "prepare_metadata_for_build_wheel";
        let key = self.cache_key(sdist, env, HOOK);
        if let Some(hit) = self.cached::<BuiltMetadata>(sdist, &key) {
            return Ok(hit);
        }
        self.failed(sdist, &key, HOOK)?;
        let built = self
            .run_hook(sdist, env, HOOK, fetch)
            .and_then(|(answer, _work)| answer_metadata(sdist, HOOK, &answer))
            .map_err(|failure| self.remember(sdist, &key, failure))?;
        self.store(sdist, &key, &built);
        Ok(built)
    }

    /// Both questions in one process where possible: the backend's extra build requirements,
    /// and, when it needs none, the metadata prepared in the same environment (which is what
    /// [`Builder::metadata`] would then be asked with). `None` for the metadata when the
    /// backend needs more: ask [`Builder::metadata`] in an environment that has it.
    pub fn requires_and_metadata(
        &self,
        sdist: &Sdist<'_>,
        env: &[Wheel],
        fetch: &dyn Fn() -> Result<(), FetchError>,
    ) -> Result<(Vec<String>, Option<BuiltMetadata>), BuildError> {
        const HOOK: &str = "requires_then_metadata";
        const NAMED: &str = "get_requires_for_build_wheel, then prepare_metadata_for_build_wheel";
        let requires_key = self.cache_key(sdist, env, "get_requires_for_build_wheel");
        let metadata_key = self.cache_key(sdist, env, "prepare_metadata_for_build_wheel");
        if let Some(hit) = self.cached::<CachedRequires>(sdist, &requires_key) {
            if !hit.requires.is_empty() {
                return Ok((hit.requires, None));
            }
            return Ok((Vec::new(), Some(self.metadata(sdist, env, fetch)?)));
        }
        // The failure of this process is its own: its error names both hooks.
        let key = self.cache_key(sdist, env, HOOK);
        self.failed(sdist, &key, NAMED)?;
        let remember = |failure| self.remember(sdist, &key, failure);
        let (answer, _work) = self
            .run_hook_named(sdist, env, HOOK, NAMED, fetch)
            .map_err(remember)?;
        let requires = answer_requires(sdist, NAMED, &answer).map_err(remember)?;
        self.store(
            sdist,
            &requires_key,
            &CachedRequires {
                requires: requires.clone(),
            },
        );
        if !requires.is_empty() {
            return Ok((requires, None));
        }
        let built = answer_metadata(sdist, NAMED, &answer).map_err(remember)?;
        self.store(sdist, &metadata_key, &built);
        Ok((requires, Some(built)))
    }

    /// Identifies an answer: the sdist, the hook, the interpreter and the environment's
    /// wheels by hash. Anything else that could change the answer is kept out of the hook's
    /// reach (environment variables, network, site-packages).
    fn cache_key(&self, sdist: &Sdist<'_>, env: &[Wheel], hook: &str) -> String {
        let mut wheels: Vec<&str> = env.iter().map(|w| w.sha256.as_str()).collect();
        wheels.sort_unstable();
        let mut h = Sha256::new();
        // How the question is put: an answer (or a failure) our own frontend got wrong is
        // not kept past the version that fixes it.
        h.update(HOOK_SCRIPT.as_bytes());
        h.update([0]);
        for part in [
            hook,
            &self.interpreter.describe(),
            sdist.backend.unwrap_or(FALLBACK_BACKEND),
            &sdist.backend_path.join("\0"),
            &wheels.join(","),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex::encode(h.finalize())
    }

    /// `<sdist sha256>/<name>.json`; `name` is a key, or a key and `.failed`.
    fn cache_file(&self, sdist: &Sdist<'_>, name: &str) -> Option<PathBuf> {
        let sha = sdist.sha256;
        Some(
            self.cache
                .as_ref()?
                .join(is_sha256(sha).then_some(sha)?)
                .join(format!("{name}.json")),
        )
    }

    /// The failure remembered for `key`, as the error a fresh run of the hook `named` gave;
    /// none when it is older than the failure lifetime or the machine changed since.
    fn failed(&self, sdist: &Sdist<'_>, key: &str, named: &'static str) -> Result<(), BuildError> {
        let mark = self.timings.mark();
        let Some(path) = self.cache_file(sdist, &format!("{key}.failed")) else {
            return Ok(());
        };
        let Some(record) = fs::read(&path)
            .ok()
            .and_then(|text| serde_json::from_slice::<CachedFailure>(&text).ok())
        else {
            return Ok(());
        };
        let failed_at = std::time::UNIX_EPOCH + Duration::from_secs(record.failed_at);
        // A record from the future (a clock set back) is not trusted either.
        let fresh = std::time::SystemTime::now()
            .duration_since(failed_at)
            .is_ok_and(|age| age < self.failure_lifetime);
        if !fresh || record.machine != self.machine_state() {
            // Asked again: its answer, or a new failure, takes its place.
            let _ = fs::remove_file(&path);
            return Ok(());
        }
        self.timings
            .span(mark, bitpoll_timings::Category::BuildCached, || {
                format!("{} (failed)", sdist.filename)
            });
        let sdist = sdist.filename.to_string();
        Err(match record.error {
            CachedError::HookFailed { status, tail } => BuildError::HookFailed {
                sdist,
                hook: named,
                status,
                tail,
            },
            CachedError::BadAnswer { reason } => BuildError::BadAnswer {
                sdist,
                hook: named,
                reason,
            },
        })
    }

    /// Keeps `failure` for the next run when it would recur; gives back its error.
    fn remember(&self, sdist: &Sdist<'_>, key: &str, failure: Failure) -> BuildError {
        if !failure.recurs {
            return failure.error;
        }
        let error = match &failure.error {
            BuildError::HookFailed { status, tail, .. } => CachedError::HookFailed {
                status: status.clone(),
                tail: tail.clone(),
            },
            BuildError::BadAnswer { reason, .. } => CachedError::BadAnswer {
                reason: reason.clone(),
            },
            // Nothing else is said to recur.
            _ => return failure.error,
        };
        let failed_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let record = CachedFailure {
            machine: self.machine_state(),
            failed_at,
            error,
        };
        self.store(sdist, &format!("{key}.failed"), &record);
        failure.error
    }

    /// What the machine offers a hook, cheaply: the modification times of the watched paths
    /// (a directory's changes when a file is added to or removed from it, which is what
    /// installing a package does), hashed. Read once per run.
    fn machine_state(&self) -> String {
        self.machine
            .get_or_init(|| {
                let mut h = Sha256::new();
                for path in &self.machine_paths {
                    h.update(path.as_os_str().as_encoded_bytes());
                    h.update([0]);
                    let state = fs::metadata(path).and_then(|meta| {
                        let mtime = meta
                            .modified()?
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap_or_default();
                        Ok(format!(
                            "{}.{}|{}",
                            mtime.as_secs(),
                            mtime.subsec_nanos(),
                            meta.len()
                        ))
                    });
                    h.update(state.as_deref().unwrap_or("absent").as_bytes());
                    h.update([0]);
                }
                hex::encode(h.finalize())
            })
            .clone()
    }

    fn cached<T: serde::de::DeserializeOwned>(&self, sdist: &Sdist<'_>, key: &str) -> Option<T> {
        let mark = self.timings.mark();
        let text = fs::read(self.cache_file(sdist, key)?).ok()?;
        let answer = serde_json::from_slice(&text).ok()?;
        self.timings
            .span(mark, bitpoll_timings::Category::BuildCached, || {
                sdist.filename.to_string()
            });
        Some(answer)
    }

    /// A failed write only costs a rebuild next time.
    fn store<T: serde::Serialize>(&self, sdist: &Sdist<'_>, name: &str, value: &T) {
        let Some(path) = self.cache_file(sdist, name) else {
            return;
        };
        let Some(dir) = path.parent() else { return };
        if fs::create_dir_all(dir).is_err() {
            return;
        }
        if let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir) {
            if serde_json::to_writer(&mut tmp, value).is_ok() {
                let _ = tmp.persist(&path);
            }
        }
    }

    /// Unpacks, runs `hook`, and returns its JSON answer with the working directory (which
    /// holds the files the answer names; dropping it removes them).
    fn run_hook(
        &self,
        sdist: &Sdist<'_>,
        env: &[Wheel],
        hook: &'static str,
        fetch: &dyn Fn() -> Result<(), FetchError>,
    ) -> Result<(serde_json::Value, WorkDir<'_>), Failure> {
        self.run_hook_named(sdist, env, hook, hook, fetch)
    }

    /// `hook` is what the script runs, `named` what errors call it.
    fn run_hook_named(
        &self,
        sdist: &Sdist<'_>,
        env: &[Wheel],
        hook: &'static str,
        named: &'static str,
        fetch: &dyn Fn() -> Result<(), FetchError>,
    ) -> Result<(serde_json::Value, WorkDir<'_>), Failure> {
        fetch().map_err(|source| BuildError::Fetch {
            sdist: sdist.filename.to_string(),
            source,
        })?;
        let work = self
            .work_dir("hook-")
            .map_err(io("cannot create a build directory"))?;
        let root = work.path();
        let (env_dir, out_dir, home) = (root.join("env"), root.join("out"), root.join("home"));
        for dir in [&env_dir, &out_dir, &home] {
            fs::create_dir_all(dir).map_err(io(format!("{}", dir.display())))?;
        }
        let unpacking = self.timings.mark();
        let mut site_dirs: Vec<PathBuf> = Vec::new();
        for wheel in env {
            let dir = self.installed(wheel, &env_dir)?;
            if !site_dirs.contains(&dir) {
                site_dirs.push(dir);
            }
        }
        // An unpacking that failed ahead is this hook's failure: the same archive would
        // fail here too.
        let unpacked_ahead = sdist.ahead.and_then(Ahead::take).transpose()?;
        let ahead = unpacked_ahead.is_some();
        let tree = unpacked_ahead.or_else(|| self.memory_tree(sdist.path, sdist.filename));
        let src_dir = match &tree {
            Some(tree) => tree.0.path().join("src"),
            None => {
                let src_dir = root.join("src");
                fs::create_dir_all(&src_dir).map_err(io(format!("{}", src_dir.display())))?;
                unpack_sdist(sdist.path, sdist.filename, &src_dir)?;
                src_dir
            }
        };
        self.timings
            .span(unpacking, bitpoll_timings::Category::BuildUnpack, || {
                let sdist = match (ahead, &tree) {
                    (true, _) => format!("{} (unpacked ahead)", sdist.filename),
                    (false, Some(_)) => format!("{} (in memory)", sdist.filename),
                    (false, None) => sdist.filename.to_string(),
                };
                format!("{sdist} and {} wheels", env.len())
            });
        let waiting = self.timings.mark();
        let question = hook == QUESTION_ONLY_HOOK;
        let (_core, waited) = self.cores.take(question);
        if waited {
            self.timings
                .span(waiting, bitpoll_timings::Category::Wait, || {
                    format!("a core for {}: {named}", sdist.filename)
                });
        }
        let running = self.timings.mark();
        let _hook_span = HookSpan {
            timings: &self.timings,
            mark: running,
            label: || format!("{}: {named}", sdist.filename),
        };
        let project = project_dir(&src_dir);
        let script = root.join("hook.py");
        fs::write(&script, HOOK_SCRIPT).map_err(io("cannot write the hook script"))?;
        let log_path = root.join("output.log");
        let log = File::create(&log_path).map_err(io("cannot create the build log"))?;

        let mut cmd = self.isolated_python();
        let backend_path =
            serde_json::to_string(sdist.backend_path).expect("strings serialise as JSON");
        cmd.args(["-I", "-S"])
            .arg(&script)
            .arg(&project)
            .arg(&out_dir)
            .arg(sdist.backend.unwrap_or(FALLBACK_BACKEND))
            .arg(backend_path)
            .arg(hook)
            // Last and as they are: a path need not be text.
            .args(&site_dirs)
            .current_dir(&project)
            .env_clear()
            .env("PATH", HOOK_PATH)
            .env("HOME", &home)
            .env("TMPDIR", root)
            .env("LC_ALL", "C.UTF-8")
            // No PYTHONDONTWRITEBYTECODE (`-I` ignores it anyway): the bytecode a hook
            // writes next to the shared wheels' modules spares every later hook compiling
            // them again (setuptools' import: 0.42 s from source, 0.21 s with bytecode).
            // setuptools' `setup_requires` would otherwise fetch eggs on its own.
            .env("PIP_NO_INDEX", "1")
            .env("SOURCE_DATE_EPOCH", "315532800")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io("build log"))?)
            .stderr(log);
        // Its own process group, so a timeout can stop everything the backend started.
        cmd.process_group(0);
        let mut child = cmd.spawn().map_err(io(format!(
            "cannot start {}",
            self.interpreter.path.display()
        )))?;
        if question {
            // Best effort: at worst the question competes for the CPU as before.
            let _ = rustix::process::setpriority_process(
                Some(rustix::process::Pid::from_child(&child)),
                QUESTION_NICENESS,
            );
        }
        let Some(status) = wait_within(&mut child, self.timeout)? else {
            return Err(BuildError::Timeout {
                sdist: sdist.filename.to_string(),
                hook: named,
                secs: self.timeout.as_secs(),
                tail: tail(&log_path),
            }
            .into());
        };
        let result = out_dir.join("result.json");
        if !status.success() || !result.exists() {
            let output = fs::read(&log_path).unwrap_or_default();
            let output = String::from_utf8_lossy(&output);
            return Err(Failure {
                error: BuildError::HookFailed {
                    sdist: sdist.filename.to_string(),
                    hook: named,
                    status: status.to_string(),
                    tail: tail(&log_path),
                },
                // Killed by a signal (the machine's memory, a user's interrupt) or short of
                // something the machine had too little of at the time: it may not recur.
                recurs: status.code().is_some()
                    && !TRANSIENT_OUTPUT.iter().any(|m| output.contains(m)),
            });
        }
        let text = fs::read(&result).map_err(io("the hook's answer"))?;
        let answer = serde_json::from_slice(&text).map_err(|e| BuildError::BadAnswer {
            sdist: sdist.filename.to_string(),
            hook: named,
            reason: e.to_string(),
        })?;
        Ok((
            answer,
            WorkDir {
                dirs: std::iter::once(work).chain(tree.map(|t| t.0)).collect(),
                builder: self,
                label: sdist.filename.to_string(),
            },
        ))
    }
}

/// `child`'s exit status, or `None` when it ran longer than `timeout` and its process group
/// (see `process_group(0)` where it is started) was killed.
fn wait_within(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Result<Option<std::process::ExitStatus>, BuildError> {
    let group = rustix::process::Pid::from_raw(child.id() as i32);
    // Waited for on a thread of its own, so that the answer is read the moment the hook
    // exits (polling added half its interval to every hook, on the solve's path).
    std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::channel();
        scope.spawn(move || {
            let _ = sender.send(child.wait());
        });
        match receiver.recv_timeout(timeout) {
            Ok(status) => status.map(Some).map_err(io("waiting for a build hook")),
            Err(_) => {
                // The waiting thread reaps the child once it is killed.
                if let Some(group) = group {
                    let _ =
                        rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                }
                Ok(None)
            }
        }
    })
}

/// The `requires` list of a hook's answer.
fn answer_requires(
    sdist: &Sdist<'_>,
    hook: &'static str,
    answer: &serde_json::Value,
) -> Result<Vec<String>, Failure> {
    let requires = answer
        .get("requires")
        .and_then(|r| r.as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect()
        })
        .ok_or_else(|| BuildError::BadAnswer {
            sdist: sdist.filename.to_string(),
            hook,
            reason: "no list of requirements".into(),
        })?;
    Ok(requires)
}

/// The metadata a hook's answer points to: a prepared METADATA file, or a built wheel's.
fn answer_metadata(
    sdist: &Sdist<'_>,
    hook: &'static str,
    answer: &serde_json::Value,
) -> Result<BuiltMetadata, Failure> {
    let bad = |reason: String| BuildError::BadAnswer {
        sdist: sdist.filename.to_string(),
        hook,
        reason,
    };
    // A file the answer names that is not there, or not text, is what the backend made; any
    // other error reading it is the disk's, and may not recur.
    let unreadable = |path: &str, e: std::io::Error| Failure {
        recurs: matches!(
            e.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::InvalidData
        ),
        error: bad(format!("{path}: {e}")),
    };
    let metadata = if let Some(path) = answer["metadata"].as_str() {
        fs::read_to_string(path).map_err(|e| unreadable(path, e))?
    } else if let Some(path) = answer["wheel"].as_str() {
        let bytes = fs::read(path).map_err(|e| unreadable(path, e))?;
        wheel_metadata_text(&bytes).map_err(bad)?
    } else {
        return Err(bad("neither a METADATA file nor a wheel".into()).into());
    };
    Ok(BuiltMetadata {
        metadata,
        hook: answer["hook"].as_str().unwrap_or(hook).to_string(),
    })
}

/// The last lines of a hook's output, indented.
fn tail(log: &Path) -> String {
    let text = fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    if lines.is_empty() {
        return "    (no output)".into();
    }
    lines[start..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An sdist unpacks into one top-level directory, the project.
fn project_dir(src: &Path) -> PathBuf {
    let entries: Vec<PathBuf> = fs::read_dir(src)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    match entries.as_slice() {
        [only] if only.is_dir() => only.clone(),
        _ => src.to_path_buf(),
    }
}

/// The cache's directory for builds in progress.
const WORK_DIR: &str = "build-work";

/// Below the cache: build environments' wheels, unpacked (see [`Builder::installed`]).
const WHEELS_DIR: &str = "build-wheels-v1";

/// How old a build directory must be for a run to take it for one a killed run left.
const STALE_WORK: Duration = Duration::from_secs(24 * 60 * 60);

/// The memory file system sdists' trees go to when it has room (see
/// [`Builder::memory_tree`]), and how a tree there is named: the sweep of what killed runs
/// left touches nothing else in that directory, which other programs share.
const MEMORY_DIR: &str = "/dev/shm";
const MEMORY_PREFIX: &str = "bitpoll-lock-src-";

/// A tree goes to memory when that many times its size is free there: trees of sdists
/// being asked side by side, and whatever else the machine keeps there, still fit.
const MEMORY_HEADROOM: u64 = 4;

/// Linux's `TMPFS_MAGIC`: the file system type of a memory file system.
const TMPFS_MAGIC: u64 = 0x0102_1994;

/// [`MEMORY_DIR`] when it is a memory file system.
fn memory_dir() -> Option<PathBuf> {
    let stat = rustix::fs::statfs(MEMORY_DIR).ok()?;
    #[allow(clippy::unnecessary_cast)] // its width differs between architectures
    let kind = stat.f_type as u64;
    (kind == TMPFS_MAGIC).then(|| PathBuf::from(MEMORY_DIR))
}

/// The size of the tar archive inside `path`, a `.tar.gz`, as its gzip trailer records it
/// (the size modulo 4 GiB, so a size as large as that reads as small; [`unpack_sdist`]
/// refuses what unpacks beyond [`MAX_UNPACKED_BYTES`] wherever it goes). `None` for any
/// other kind of archive, or one too short to have a trailer.
fn tar_gz_size(path: &Path, filename: &str) -> Option<u64> {
    use std::io::{Seek, SeekFrom};
    if !bitpoll_metadata::is_tar_gz(filename) {
        return None;
    }
    let mut file = File::open(path).ok()?;
    file.seek(SeekFrom::End(-4)).ok()?;
    let mut trailer = [0u8; 4];
    file.read_exact(&mut trailer).ok()?;
    Some(u64::from(u32::from_le_bytes(trailer)))
}

/// Removes what killed runs left in `work` (best effort: another run may be using the rest),
/// of the entries whose names start with `prefix` when one is given.
fn sweep_stale(work: &Path, prefix: Option<&str>) {
    let Ok(entries) = fs::read_dir(work) else {
        return;
    };
    for entry in entries.flatten() {
        let ours = prefix.is_none_or(|p| entry.file_name().to_string_lossy().starts_with(p));
        let old = ours
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_WORK);
        if old {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The machine's cores, as hooks take them. A hook asked only about build requirements
/// ([`QUESTION_ONLY_HOOK`]) may be asked on a guess, long before anything waits for its
/// answer, while the solver waits for every metadata build: a question starts only once a
/// core is free, and a metadata build at once. Its lower CPU priority alone did not keep a
/// question out of their way: two metadata builds took 1.1-1.2 s instead of 0.6 s on two
/// cores beside one. Which hooks run does not depend on this, only when.
#[derive(Debug)]
struct Cores {
    taken: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
    count: usize,
}

/// A core taken by a hook, given back when dropped.
struct Core<'a>(&'a Cores);

impl Cores {
    fn new(count: usize) -> Self {
        Self {
            taken: std::sync::Mutex::new(0),
            freed: std::sync::Condvar::new(),
            count: count.max(1),
        }
    }

    /// A core for a hook; `question` for one asked only about build requirements, which
    /// waits until a core is free. Also says whether it waited.
    fn take(&self, question: bool) -> (Core<'_>, bool) {
        let mut taken = self.taken.lock().expect("cores lock");
        let mut waited = false;
        while question && *taken >= self.count {
            waited = true;
            taken = self.freed.wait(taken).expect("cores lock");
        }
        *taken += 1;
        (Core(self), waited)
    }
}

impl Drop for Core<'_> {
    fn drop(&mut self) {
        *self.0.taken.lock().expect("cores lock") -= 1;
        self.0.freed.notify_all();
    }
}

/// Counts what an archive expands to.
struct Budget {
    left: u64,
    limit: u64,
}

impl Budget {
    fn new(limit: u64) -> Self {
        Self { left: limit, limit }
    }

    fn take(&mut self, n: u64, file: &str) -> Result<(), BuildError> {
        self.left = self.left.checked_sub(n).ok_or_else(|| BuildError::Unpack {
            file: file.to_string(),
            reason: format!("expands to more than {} bytes", self.limit),
        })?;
        Ok(())
    }
}

fn member_target(dest: &Path, name: &str, file: &str) -> Result<Option<PathBuf>, BuildError> {
    let parts = bitpoll_metadata::check_member_path(name).map_err(|e| BuildError::Unpack {
        file: file.to_string(),
        reason: e.to_string(),
    })?;
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        parts.iter().fold(dest.to_path_buf(), |p, c| p.join(c)),
    ))
}

/// Writes an archive's files below its destination, within a [`Budget`]. One buffer serves
/// every file (a fresh 64 KiB one, zeroed, for each of scipy's 19,000 files was the largest
/// memset of a cold run), and each directory is made once rather than looked up again for
/// every file in it.
struct Writer<'a> {
    budget: Budget,
    buf: Vec<u8>,
    made: std::collections::HashSet<PathBuf>,
    file: &'a str,
}

impl<'a> Writer<'a> {
    fn new(limit: u64, file: &'a str) -> Self {
        Self {
            budget: Budget::new(limit),
            buf: vec![0; 64 * 1024],
            made: Default::default(),
            file,
        }
    }

    fn dir(&mut self, path: &Path) -> Result<(), BuildError> {
        if !self.made.contains(path) {
            fs::create_dir_all(path).map_err(io(format!("{}", path.display())))?;
            self.made.insert(path.to_path_buf());
        }
        Ok(())
    }

    fn write(&mut self, target: &Path, mut reader: impl Read) -> Result<(), BuildError> {
        if let Some(parent) = target.parent() {
            self.dir(parent)?;
        }
        let mut out = File::create(target).map_err(io(format!("{}", target.display())))?;
        loop {
            let n = reader.read(&mut self.buf).map_err(|e| BuildError::Unpack {
                file: self.file.to_string(),
                reason: e.to_string(),
            })?;
            if n == 0 {
                return Ok(());
            }
            self.budget.take(n as u64, self.file)?;
            out.write_all(&self.buf[..n])
                .map_err(io(format!("{}", target.display())))?;
        }
    }
}

/// Unpacks a `.tar.gz` or `.zip` sdist; links and special files are skipped, paths that
/// would escape `dest` refused.
pub fn unpack_sdist(path: &Path, filename: &str, dest: &Path) -> Result<(), BuildError> {
    unpack_sdist_within(path, filename, dest, MAX_UNPACKED_BYTES)
}

/// [`unpack_sdist`], refusing a `.tar.gz` whose files hold more than `limit` bytes.
fn unpack_sdist_within(
    path: &Path,
    filename: &str,
    dest: &Path,
    limit: u64,
) -> Result<(), BuildError> {
    let unpack = |reason: String| BuildError::Unpack {
        file: filename.to_string(),
        reason,
    };
    let file = File::open(path).map_err(io(format!("{}", path.display())))?;
    if filename.to_ascii_lowercase().ends_with(".zip") {
        return unpack_zip(file, filename, dest, |name| Some(name.to_string()));
    }
    if !bitpoll_metadata::is_tar_gz(filename) {
        return Err(unpack("not a .tar.gz or .zip archive".into()));
    }
    let mut writer = Writer::new(limit, filename);
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in archive.entries().map_err(|e| unpack(e.to_string()))? {
        let entry = entry.map_err(|e| unpack(e.to_string()))?;
        let kind = entry.header().entry_type();
        let name = entry
            .path()
            .map_err(|e| unpack(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let Some(target) = member_target(dest, &name, filename)? else {
            continue;
        };
        if kind.is_dir() {
            writer.dir(&target)?;
        } else if kind.is_file() {
            writer.write(&target, entry)?;
        }
    }
    Ok(())
}

fn unpack_zip(
    file: File,
    filename: &str,
    dest: &Path,
    rename: impl Fn(&str) -> Option<String>,
) -> Result<(), BuildError> {
    let unpack = |reason: String| BuildError::Unpack {
        file: filename.to_string(),
        reason,
    };
    let mut writer = Writer::new(MAX_UNPACKED_BYTES, filename);
    let mut archive = zip::ZipArchive::new(file).map_err(|e| unpack(e.to_string()))?;
    for i in 0..archive.len() {
        let member = archive.by_index(i).map_err(|e| unpack(e.to_string()))?;
        if member.is_dir() {
            continue;
        }
        let Some(name) = rename(member.name()) else {
            continue;
        };
        let Some(target) = member_target(dest, &name, filename)? else {
            continue;
        };
        writer.write(&target, member)?;
    }
    Ok(())
}

/// Unpacks a wheel the way an installer lays out site-packages: the root as it is, and a
/// `.data/purelib` or `.data/platlib` directory merged into it. Scripts, headers and data
/// files are left out: a build backend imports modules, it does not run installed scripts.
pub fn install_wheel(path: &Path, filename: &str, dest: &Path) -> Result<(), BuildError> {
    let file = File::open(path).map_err(io(format!("{}", path.display())))?;
    unpack_zip(file, filename, dest, |name| {
        // A module at the top (`six.py`, `typing_extensions.py`) lands as it is.
        let Some((top, rest)) = name.split_once('/') else {
            return Some(name.to_string());
        };
        if !top.ends_with(".data") {
            return Some(name.to_string());
        }
        let (scheme, rest) = rest.split_once('/')?;
        matches!(scheme, "purelib" | "platlib").then(|| rest.to_string())
    })
}

/// The `*.dist-info/METADATA` text of a wheel that a `build_wheel` hook produced.
fn wheel_metadata_text(bytes: &[u8]) -> Result<String, String> {
    let bytes =
        bitpoll_metadata::wheel_metadata_bytes(bytes, bitpoll_metadata::MAX_UNCOMPRESSED_BYTES)
            .map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| format!("METADATA is not UTF-8: {e}"))
}

/// A build that cannot run or fails stops at the sdist the input asked for; the message
/// names what to change (an interpreter, a policy entry).
impl bitpoll_error_class::Classify for BuildError {
    fn class(&self) -> bitpoll_error_class::ErrorClass {
        bitpoll_error_class::ErrorClass::BadInput
    }
}

/// 64 hex digits: a name that cannot leave the directory it is joined to.
fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zip_of(members: &[(&str, &str)]) -> Vec<u8> {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut zip = zip::ZipWriter::new(&mut buf);
            let opts = zip::write::SimpleFileOptions::default();
            for (name, text) in members {
                zip.start_file(*name, opts).unwrap();
                zip.write_all(text.as_bytes()).unwrap();
            }
            zip.finish().unwrap();
        }
        buf.into_inner()
    }

    /// The size a `.tar.gz` records of its tar, which decides whether its tree goes to
    /// memory; other archives are not sized.
    #[test]
    fn a_tar_gz_says_how_large_its_tar_is() {
        let dir = tempfile::tempdir().unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let text = "x".repeat(100_000);
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "big-1.0/big.txt", text.as_bytes())
            .unwrap();
        let tar = tar.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&tar).unwrap();
        let path = dir.path().join("big-1.0.tar.gz");
        fs::write(&path, gz.finish().unwrap()).unwrap();

        assert!(fs::metadata(&path).unwrap().len() < 2_000);
        assert_eq!(tar_gz_size(&path, "big-1.0.tar.gz"), Some(tar.len() as u64));
        assert_eq!(tar_gz_size(&path, "big-1.0.zip"), None);
        fs::write(&path, b"gz").unwrap();
        assert_eq!(tar_gz_size(&path, "big-1.0.tar.gz"), None);
    }

    #[test]
    fn a_wheel_lands_like_site_packages() {
        let dir = tempfile::tempdir().unwrap();
        let whl = dir.path().join("demo-1.0-py3-none-any.whl");
        fs::write(
            &whl,
            zip_of(&[
                ("demo/__init__.py", "x = 1\n"),
                ("demo_top.py", "z = 3\n"),
                ("demo-1.0.data/purelib/extra.py", "y = 2\n"),
                ("demo-1.0.data/scripts/tool", "#!/bin/sh\n"),
                ("demo-1.0.dist-info/METADATA", "Name: demo\n"),
            ]),
        )
        .unwrap();
        let env = dir.path().join("env");
        install_wheel(&whl, "demo-1.0-py3-none-any.whl", &env).unwrap();
        assert!(env.join("demo/__init__.py").is_file());
        assert!(env.join("demo_top.py").is_file());
        assert!(env.join("extra.py").is_file());
        assert!(!env.join("tool").exists() && !env.join("demo-1.0.data").exists());
    }

    #[test]
    fn an_escaping_member_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let whl = dir.path().join("evil-1.0-py3-none-any.whl");
        fs::write(&whl, zip_of(&[("../outside.py", "")])).unwrap();
        let err =
            install_wheel(&whl, "evil-1.0-py3-none-any.whl", &dir.path().join("env")).unwrap_err();
        assert!(
            err.to_string().contains("evil-1.0-py3-none-any.whl"),
            "{err}"
        );
        assert!(!dir.path().join("outside.py").exists());
    }

    #[test]
    fn built_wheel_metadata_is_found() {
        let bytes = zip_of(&[
            ("demo/__init__.py", ""),
            (
                "demo-1.0.dist-info/METADATA",
                "Metadata-Version: 2.1\nName: demo\n",
            ),
        ]);
        assert!(wheel_metadata_text(&bytes).unwrap().contains("Name: demo"));
    }

    /// A metadata build starts at once, even on a taken core; a question waits until fewer
    /// hooks than cores run.
    #[test]
    fn a_question_waits_for_a_free_core_and_a_build_does_not() {
        let cores = Cores::new(1);
        let (first, waited) = cores.take(false);
        assert!(!waited);
        let cores = &cores;
        let (asking, asks) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            let question = scope.spawn(move || {
                asking.send(()).unwrap();
                let (_core, waited) = cores.take(true);
                let taken = *cores.taken.lock().unwrap();
                (waited, taken)
            });
            asks.recv().unwrap();
            let (second, waited) = cores.take(false);
            assert!(!waited, "a build waited for a core");
            std::thread::sleep(Duration::from_millis(50));
            assert!(!question.is_finished(), "the question did not wait");
            drop(first);
            std::thread::sleep(Duration::from_millis(50));
            assert!(!question.is_finished(), "the question took a taken core");
            drop(second);
            assert_eq!(question.join().unwrap(), (true, 1));
        });
        assert!(!cores.take(true).1, "a question waited for a free core");
    }
}
