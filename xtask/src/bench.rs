//! `cargo xtask bench`: bitpoll-lock against `uv pip compile --universal`, side by side.
//!
//! Two kinds of rows. Bitpoll's own inputs, with uv, `--no-nixpkgs` and the hybrid default.
//! And the scale suite: real applications' requirement files (`tests/fixtures/apps/`), where
//! `--no-nixpkgs` does the same work as uv: our four default targets against `--universal`,
//! both for the same Python, both building sdists with the same interpreter.
//!
//! Every requirement set runs in each mode (cold: empty caches for both; warm: caches filled,
//! network allowed; offline: caches filled and `--offline` for both). Within a mode the tools
//! alternate run by run, the order swapping each run, so that a noisy neighbour or a slow
//! minute of the index hurts both alike. A cold run's cache is moved aside for the next cold
//! run and deleted only after the last set (see [`set_aside`]). Each mode starts with a
//! discarded warm-up round, which also fills the caches of the warm and offline modes. Peak
//! RSS and CPU time come from `wait4` on the child, so they include what the tool itself
//! starts (uv's interpreter probe, our build backends, as far as they are waited for).
//!
//! A failed run marks its row failed, with the run's log, and the suite goes on with the next
//! row. Nothing here asserts on time: machines differ, and the numbers are for reading.

mod report;
mod stats;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const USAGE: &str =
    "usage: cargo xtask bench [--runs N] [--modes cold,warm,offline] [--set NAME]... \
[--no-bitpoll] [--no-apps] [--json PATH] [--uv PATH] [--build-python PATH] [--run-timeout SECS] \
[--no-timings] [--skip-build]

  --runs N            measured runs per row, after a discarded warm-up (default 5)
  --modes LIST        any of cold, warm, offline, comma-separated (default: all three)
  --set NAME          only this set (repeatable, or comma-separated): `bitpoll` or a directory
                      of tests/fixtures/apps/ (default: bitpoll and the scale suite)
  --no-bitpoll        leave out Bitpoll's rows (also: --scale-only)
  --no-apps           leave out the scale suite (also: --no-scale)
  --json PATH         where the results go (default: target/bench/results.json)
  --uv PATH           the uv to compare with (default: `uv` on PATH, else installed with pip
                      into target/bench/uv-venv)
  --build-python PATH the interpreter both tools build sdists with (default: python3.13 on
                      PATH, else python3)
  --run-timeout SECS  a run that takes longer is killed and counted as failed (default 900)
  --no-timings        do not ask bitpoll-lock for a `--timings` file on its cold warm-up runs
  --skip-build        use target/release/bitpoll-lock as it is";

/// The Python version both tools resolve for. Bitpoll's nixpkgs index describes the same one;
/// the hybrid rows would refuse to run otherwise.
const PYTHON: &str = "3.13";

/// Bitpoll's inputs, as `update` reads them by default.
const BITPOLL_INPUTS: [&str; 2] = [
    "inputs/requirements.in",
    "inputs/requirements-production.in",
];

/// Bitpoll's policy, which its rows resolve with, as `update` does by default.
const BITPOLL_POLICY: &str = "lock/policy.toml";

/// Where the real applications' requirement files are, one directory per set.
const APPS_DIR: &str = "tests/fixtures/apps";

/// The scale suite run by default: every set there that resolves to more than 100 pins, with
/// several sdists whose metadata must be built among them (see the fixtures' PROVENANCE.md).
/// `netbox` (about 94 pins, no sdist) can still be chosen with `--set`.
const DEFAULT_APPS: [&str; 5] = ["inventree", "readthedocs", "treeherder", "zulip", "sentry"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Uv,
    /// `--no-nixpkgs`: the same work as uv.
    OursIndex,
    /// The default: nixpkgs first, the index for the rest.
    OursHybrid,
}

impl Tool {
    pub fn key(self) -> &'static str {
        match self {
            Tool::Uv => "uv",
            Tool::OursIndex => "no-nixpkgs",
            Tool::OursHybrid => "hybrid",
        }
    }

    /// How the table names our side of a comparison.
    pub fn label(self) -> &'static str {
        match self {
            Tool::Uv => "uv",
            Tool::OursIndex => "`--no-nixpkgs`",
            Tool::OursHybrid => "hybrid",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Cold,
    Warm,
    Offline,
}

impl Mode {
    pub fn key(self) -> &'static str {
        match self {
            Mode::Cold => "cold",
            Mode::Warm => "warm",
            Mode::Offline => "offline",
        }
    }

    fn parse(text: &str) -> Result<Mode, String> {
        match text {
            "cold" => Ok(Mode::Cold),
            "warm" => Ok(Mode::Warm),
            "offline" => Ok(Mode::Offline),
            other => Err(format!("unknown mode `{other}` (cold, warm or offline)")),
        }
    }
}

#[derive(Debug)]
struct Options {
    runs: usize,
    modes: Vec<Mode>,
    sets: Vec<String>,
    bitpoll: bool,
    apps: bool,
    json: Option<PathBuf>,
    build: bool,
    timings: bool,
    uv: Option<PathBuf>,
    build_python: Option<PathBuf>,
    run_timeout: Duration,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        runs: 5,
        modes: Vec::new(),
        sets: Vec::new(),
        bitpoll: true,
        apps: true,
        json: None,
        build: true,
        timings: true,
        uv: None,
        build_python: None,
        run_timeout: Duration::from_secs(900),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--runs" => {
                o.runs = value("--runs")?
                    .parse()
                    .map_err(|e| format!("--runs: {e}"))?
            }
            "--modes" => {
                for m in value("--modes")?.split(',').filter(|m| !m.is_empty()) {
                    let mode = Mode::parse(m.trim())?;
                    if !o.modes.contains(&mode) {
                        o.modes.push(mode);
                    }
                }
            }
            "--set" => {
                for s in value("--set")?.split(',').filter(|s| !s.is_empty()) {
                    let s = s.trim().to_string();
                    if !o.sets.contains(&s) {
                        o.sets.push(s);
                    }
                }
            }
            "--no-bitpoll" | "--scale-only" => o.bitpoll = false,
            "--no-apps" | "--no-scale" => o.apps = false,
            "--json" => o.json = Some(PathBuf::from(value("--json")?)),
            "--skip-build" => o.build = false,
            "--no-timings" => o.timings = false,
            "--uv" => o.uv = Some(PathBuf::from(value("--uv")?)),
            "--build-python" => o.build_python = Some(PathBuf::from(value("--build-python")?)),
            "--run-timeout" => {
                let secs: u64 = value("--run-timeout")?
                    .parse()
                    .map_err(|e| format!("--run-timeout: {e}"))?;
                o.run_timeout = Duration::from_secs(secs);
            }
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    if o.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    if o.modes.is_empty() {
        o.modes = vec![Mode::Cold, Mode::Warm, Mode::Offline];
    }
    Ok(o)
}

/// The sets to run, in order: named ones as named, else Bitpoll then the default scale suite.
fn chosen_sets(o: &Options, available_apps: &[String]) -> Result<Vec<String>, String> {
    let mut sets = Vec::new();
    if o.sets.is_empty() {
        if o.bitpoll {
            sets.push("bitpoll".to_string());
        }
        if o.apps {
            sets.extend(DEFAULT_APPS.iter().map(|s| s.to_string()));
        }
    } else {
        for s in &o.sets {
            if s != "bitpoll" && !available_apps.contains(s) {
                return Err(format!(
                    "no set `{s}`: bitpoll or one of {}",
                    available_apps.join(", ")
                ));
            }
            if (s == "bitpoll" && o.bitpoll) || (s != "bitpoll" && o.apps) {
                sets.push(s.clone());
            }
        }
    }
    if sets.is_empty() {
        return Err("nothing to run: every set was left out".into());
    }
    Ok(sets)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn available_apps(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join(APPS_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("requirements.in").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

fn first_line_of(program: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// uv from `--uv`, else from PATH, else installed with pip into a virtualenv under
/// `target/bench` that nothing else uses.
fn find_uv(explicit: Option<&Path>, bench_dir: &Path) -> Result<(PathBuf, String), String> {
    if let Some(path) = explicit {
        let v = first_line_of(path, &["--version"])
            .ok_or_else(|| format!("{} --version failed", path.display()))?;
        return Ok((path.to_path_buf(), v));
    }
    if let Some(v) = first_line_of(Path::new("uv"), &["--version"]) {
        return Ok((PathBuf::from("uv"), v));
    }
    let venv = bench_dir.join("uv-venv");
    let uv = venv.join("bin").join("uv");
    if first_line_of(&uv, &["--version"]).is_none() {
        eprintln!("==> installing uv with pip into {}", venv.display());
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin").join("pip"))
                .args(["install", "--quiet", "uv"])
                .status()
                .is_ok_and(|s| s.success());
        if !ok {
            return Err("could not install uv with pip into a virtualenv".into());
        }
    }
    let v = first_line_of(&uv, &["--version"]).ok_or("the installed uv does not run")?;
    Ok((uv, v))
}

/// The interpreter both tools run build backends with, as an absolute path, and its version.
/// Left to themselves, the two look for an interpreter differently, and a legacy `setup.py`
/// can compute other dependencies on another Python.
fn find_build_python(explicit: Option<&Path>) -> Result<(PathBuf, String), String> {
    const PROBE: [&str; 2] = [
        "-c",
        "import sys, platform; print(sys.executable); print(platform.python_version())",
    ];
    let probe = |p: &Path| -> Option<(PathBuf, String)> {
        let out = Command::new(p).args(PROBE).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut lines = text.lines();
        match (out.status.success(), lines.next(), lines.next()) {
            (true, Some(exe), Some(version)) if !exe.is_empty() => {
                Some((PathBuf::from(exe), version.to_string()))
            }
            _ => None,
        }
    };
    if let Some(p) = explicit {
        return probe(p).ok_or_else(|| format!("{} does not run as a Python", p.display()));
    }
    [format!("python{PYTHON}"), "python3".to_string()]
        .iter()
        .find_map(|name| probe(Path::new(name)))
        .ok_or_else(|| format!("neither python{PYTHON} nor python3 runs; pass --build-python"))
}

/// Whether this bitpoll-lock can write a timeline of its run.
fn supports_timings(ours: &Path) -> bool {
    Command::new(ours)
        .args(["update", "--help"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--timings"))
}

pub struct Sample {
    pub run: usize,
    pub seconds: f64,
    pub rss_kib: u64,
    /// User and system CPU time of the run and its waited-for children.
    pub cpu_seconds: f64,
    pub log: String,
}

pub struct Failure {
    pub run: usize,
    pub log: String,
    pub message: String,
}

/// Why a run counts as failed: the tool's exit, or the bench's own trouble starting it.
struct RunError(String);

struct Measured {
    seconds: f64,
    rss_kib: u64,
    cpu_seconds: f64,
}

/// Runs `cmd` to the end: its wall time, and the peak RSS and CPU time of it and its
/// waited-for children. A run past `limit` is killed.
// Peak memory of a child needs wait4(2), which std does not wrap; telling its exit apart from
// its reaping (so that a late kill can never hit a recycled pid) needs waitid(2).
#[allow(unsafe_code)]
fn measure(
    cmd: &mut Command,
    stdout: Option<&Path>,
    log: &Path,
    limit: Duration,
) -> Result<Measured, RunError> {
    let open = |p: &Path| File::create(p).map_err(|e| RunError(format!("{}: {e}", p.display())));
    let err = open(log)?;
    let out = match stdout {
        Some(path) => open(path)?,
        None => err
            .try_clone()
            .map_err(|e| RunError(format!("{}: {e}", log.display())))?,
    };
    let start = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| RunError(format!("cannot run {:?}: {e}", cmd.get_program())))?;
    let pid = child.id() as libc::pid_t;

    let exited = Arc::new((Mutex::new(false), Condvar::new()));
    let watchdog = {
        let exited = Arc::clone(&exited);
        std::thread::spawn(move || {
            let (lock, cv) = &*exited;
            let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            let (guard, _) = cv
                .wait_timeout_while(guard, limit, |done| !*done)
                .unwrap_or_else(|p| p.into_inner());
            if *guard {
                return false;
            }
            // SAFETY: plain syscall. `pid` is not reaped yet (the flag under this lock is set
            // only after waitid saw the exit, and reaping comes after that), so it still names
            // our child, running or a zombie.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            true
        })
    };
    // SAFETY: an all-zero `siginfo_t` is a valid value for waitid to fill.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our child and `info` outlives the call. WNOWAIT leaves it unreaped.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    {
        let (lock, cv) = &*exited;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
    }
    let timed_out = watchdog.join().unwrap_or(false);

    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is a child of this process that nobody else waits for; `status` and
    // `usage` outlive the call.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    // The child was reaped by wait4; dropping the handle does not wait again.
    drop(child);
    if rc != pid {
        return Err(RunError(format!(
            "wait4 failed: {}",
            std::io::Error::last_os_error()
        )));
    }
    if timed_out {
        return Err(RunError(format!(
            "killed after {} s (--run-timeout)",
            limit.as_secs()
        )));
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let how = if libc::WIFEXITED(status) {
            format!("exit status {}", libc::WEXITSTATUS(status))
        } else {
            format!("signal {}", libc::WTERMSIG(status))
        };
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let last = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(RunError(format!("{how}: {}", last.trim())));
    }
    let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Measured {
        seconds,
        // Linux reports ru_maxrss in KiB.
        rss_kib: usage.ru_maxrss.max(0) as u64,
        cpu_seconds: cpu(usage.ru_utime) + cpu(usage.ru_stime),
    })
}

/// One requirement set and how our side reads it.
struct SetSpec {
    name: String,
    /// Relative to the workspace root.
    files: Vec<String>,
    /// Bitpoll's own policy for Bitpoll; none for the applications, whose requirements are
    /// taken as the projects wrote them (as uv takes them).
    policy: String,
    tools: Vec<Tool>,
}

/// One process to run: what it is and the exact arguments, paths relative to the workspace
/// root (where it runs), so that the recorded command is the one that ran.
struct Invocation {
    program: PathBuf,
    name: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, &'static str)>,
}

impl Invocation {
    fn command(&self, root: &Path) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).current_dir(root);
        // The caches and the network are the ones named on the command line, nothing inherited.
        for var in [
            "BITPOLL_LOCK_CACHE_DIR",
            "UV_CACHE_DIR",
            "UV_OFFLINE",
            "UV_NO_CACHE",
            "UV_PYTHON",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn shown(&self) -> String {
        let mut words: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        words.push(self.name.to_string());
        words.extend(self.args.iter().cloned());
        words.join(" ")
    }
}

/// Everything a run's command line depends on.
struct RunPaths {
    cache: String,
    output: String,
    timings: Option<String>,
}

struct Setup {
    root: PathBuf,
    /// `target/bench/work`, relative to the root.
    work: String,
    ours: PathBuf,
    uv: PathBuf,
    build_python: PathBuf,
    run_timeout: Duration,
    timings: bool,
    /// How many cold caches were set aside into `trash/` so far (see [`set_aside`]).
    set_aside: std::sync::atomic::AtomicUsize,
}

impl Setup {
    /// Where run `run` (0: the warm-up) of `tool` on set `name` in `mode` keeps its cache,
    /// writes its output and, when it records one, its timeline. Cold runs are the ones to
    /// explain, and only the discarded warm-up records its timeline, so that measured runs run
    /// as a user runs them: recording one (an event per request, then its summary and JSON)
    /// took 3-5 MiB onto the peak of a cold run of sentry's set.
    fn run_paths(&self, name: &str, mode: Mode, tool: Tool, run: usize) -> RunPaths {
        let (w, key) = (&self.work, tool.key());
        RunPaths {
            cache: match mode {
                Mode::Cold => format!("{w}/cache/cold-{key}"),
                Mode::Warm | Mode::Offline => format!("{w}/cache/{name}-{key}"),
            },
            output: match tool {
                Tool::Uv => format!("{w}/out/{name}-uv.txt"),
                _ => format!("{w}/out/{name}-{key}.lock.json"),
            },
            timings: (self.timings && mode == Mode::Cold && tool != Tool::Uv && run == 0)
                .then(|| format!("{w}/timings/{name}-{key}-warm-up.json")),
        }
    }
    fn invocation(&self, set: &SetSpec, tool: Tool, offline: bool, p: &RunPaths) -> Invocation {
        let python = self.build_python.display().to_string();
        let mut args: Vec<String> = Vec::new();
        let mut push = |words: &[&str]| args.extend(words.iter().map(|w| w.to_string()));
        match tool {
            Tool::Uv => {
                push(&["pip", "compile", "--universal", "--python-version", PYTHON]);
                push(&["--python", &python, "--generate-hashes", "--quiet"]);
                push(&["--cache-dir", &p.cache]);
                if offline {
                    push(&["--offline"]);
                }
                for f in &set.files {
                    push(&[f]);
                }
                Invocation {
                    program: self.uv.clone(),
                    name: "uv",
                    args,
                    env: vec![("UV_PYTHON_DOWNLOADS", "never")],
                }
            }
            Tool::OursIndex | Tool::OursHybrid => {
                push(&["--quiet", "update", "--upgrade", "--python", PYTHON]);
                push(&["--build-python", &python]);
                if tool == Tool::OursIndex {
                    push(&["--no-nixpkgs"]);
                }
                push(&["--policy", &set.policy, "--cache-dir", &p.cache]);
                push(&["--lock", &p.output]);
                if offline {
                    push(&["--offline"]);
                }
                if let Some(t) = &p.timings {
                    push(&["--timings", t]);
                }
                for f in &set.files {
                    push(&["-r", f]);
                }
                Invocation {
                    program: self.ours.clone(),
                    name: "bitpoll-lock",
                    args,
                    env: Vec::new(),
                }
            }
        }
    }

    fn abs(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

pub struct Row {
    pub set: String,
    pub mode: Mode,
    pub tool: Tool,
    /// The command of the first measured run, exactly (other runs differ only in run-numbered
    /// file names).
    pub command: String,
    pub samples: Vec<Sample>,
    pub failure: Option<Failure>,
    /// The timeline of the warm-up run, when bitpoll-lock was asked for one.
    pub timeline: Option<String>,
}

impl Row {
    pub fn seconds(&self) -> Vec<f64> {
        self.samples.iter().map(|s| s.seconds).collect()
    }

    pub fn cpu_seconds(&self) -> Vec<f64> {
        self.samples.iter().map(|s| s.cpu_seconds).collect()
    }

    pub fn rss_mib(&self) -> Vec<f64> {
        self.samples
            .iter()
            .map(|s| s.rss_kib as f64 / 1024.0)
            .collect()
    }
}

/// What a set resolved to, read from the last lock and uv output that were written.
#[derive(Default)]
pub struct SetFacts {
    pub name: String,
    pub files: Vec<String>,
    pub requirements: usize,
    pub pins_ours: Option<usize>,
    pub pins_uv: Option<usize>,
    /// Packages some target installs from an sdist (so their build environment is locked).
    pub sdists: Vec<String>,
    /// Packages whose dependencies were read by running the sdist's build backend.
    pub built_metadata: Vec<String>,
}

/// Moves a cold run's cache out of the way for the next cold run, into `trash/`, deleted
/// once every set has run. Deleting it here instead measured the deletion, not the next run:
/// on a file system that skips recently freed inodes when it creates files (ext4 without a
/// journal does, for the next one to five minutes), a cold run that unpacks sdists right
/// after tens of thousands of files were deleted spent most of its time in the kernel
/// (treeherder's set: 9.4 s with 3 s of system time after a quiet five minutes, 14-20 s
/// with 13-23 s of it right after deleting the previous run's cache).
fn set_aside(setup: &Setup, cache: &str) -> Result<(), String> {
    let path = setup.abs(cache);
    if !path.exists() {
        return Ok(());
    }
    let n = setup
        .set_aside
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let trash = setup.abs(&format!("{}/trash", setup.work));
    let to = trash.join(n.to_string());
    std::fs::create_dir_all(&trash)
        .and_then(|()| std::fs::rename(&path, &to))
        .map_err(|e| format!("cannot move {} to {}: {e}", path.display(), to.display()))
}

fn remove(path: &Path) -> Result<(), String> {
    let result = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Runs one requirement set in every mode for every tool, alternating tools run by run.
fn bench_set(setup: &Setup, set: &SetSpec, modes: &[Mode], runs: usize) -> Vec<Row> {
    let tools = &set.tools;
    let mut rows = Vec::new();
    for &mode in modes {
        let mut mode_rows: Vec<Row> = tools
            .iter()
            .map(|&tool| Row {
                set: set.name.clone(),
                mode,
                tool,
                command: String::new(),
                samples: Vec::new(),
                failure: None,
                timeline: None,
            })
            .collect();
        // Round 0 is the warm-up: discarded, and it fills the caches that the warm and
        // offline modes start from.
        for run in 0..=runs {
            for i in 0..tools.len() {
                let k = (i + run) % tools.len();
                let tool = tools[k];
                let row = &mut mode_rows[k];
                if row.failure.is_some() {
                    continue;
                }
                let (w, name, key) = (&setup.work, &set.name, tool.key());
                let paths = setup.run_paths(name, mode, tool, run);
                let log = format!("{w}/logs/{name}-{}-{key}-run{run}.log", mode.key());
                // The offline warm-up goes online so that the offline runs have a full cache.
                let offline = mode == Mode::Offline && run > 0;
                let inv = setup.invocation(set, tool, offline, &paths);
                // The first measured run's, or the warm-up's when nothing else ran.
                if run <= 1 {
                    row.command = inv.shown();
                }
                let fresh = remove(&setup.abs(&paths.output)).and_then(|()| match mode {
                    Mode::Cold => set_aside(setup, &paths.cache),
                    _ => Ok(()),
                });
                // uv writes its result to stdout; ours writes the lock, and anything it prints
                // belongs in the log.
                let stdout = (tool == Tool::Uv).then(|| setup.abs(&paths.output));
                let result = fresh.map_err(RunError).and_then(|()| {
                    measure(
                        &mut inv.command(&setup.root),
                        stdout.as_deref(),
                        &setup.abs(&log),
                        setup.run_timeout,
                    )
                });
                let label = format!("{name} {:<7} {:<10} run {run}", mode.key(), key);
                match result {
                    Ok(m) => {
                        eprintln!(
                            "    {label}: {:.2} s, {:.2} s CPU, {:.0} MiB{}",
                            m.seconds,
                            m.cpu_seconds,
                            m.rss_kib as f64 / 1024.0,
                            if run == 0 { " (warm-up)" } else { "" }
                        );
                        if run > 0 {
                            row.samples.push(Sample {
                                run,
                                seconds: m.seconds,
                                rss_kib: m.rss_kib,
                                cpu_seconds: m.cpu_seconds,
                                log: log.clone(),
                            });
                        } else {
                            row.timeline = paths.timings.clone();
                        }
                    }
                    Err(RunError(message)) => {
                        eprintln!("    {label}: FAILED, {message} (log: {log})");
                        row.failure = Some(Failure { run, log, message });
                    }
                }
            }
        }
        rows.extend(mode_rows);
    }
    rows
}

fn bench_check(setup: &Setup, lock: &str, runs: usize) -> Row {
    let mut row = Row {
        set: "bitpoll".into(),
        mode: Mode::Offline,
        tool: Tool::OursHybrid,
        command: format!("bitpoll-lock --quiet check --lock {lock}"),
        samples: Vec::new(),
        failure: None,
        timeline: None,
    };
    for run in 0..=runs {
        let log = format!("{}/logs/check-run{run}.log", setup.work);
        let mut cmd = Command::new(&setup.ours);
        cmd.args(["--quiet", "check", "--lock", lock])
            .current_dir(&setup.root);
        match measure(&mut cmd, None, &setup.abs(&log), setup.run_timeout) {
            Ok(m) if run > 0 => row.samples.push(Sample {
                run,
                seconds: m.seconds,
                rss_kib: m.rss_kib,
                cpu_seconds: m.cpu_seconds,
                log,
            }),
            Ok(_) => {}
            Err(RunError(message)) => {
                row.failure = Some(Failure { run, log, message });
                break;
            }
        }
    }
    row
}

/// Top-level requirement lines (comments, blank lines and options left out).
fn count_requirements(texts: &[String]) -> usize {
    texts
        .iter()
        .flat_map(|t| t.lines())
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty() && !l.starts_with('-'))
        .count()
}

/// Distinct package names in `uv pip compile` output (a universal resolution can pin one
/// package twice, under different markers).
fn uv_pins(text: &str) -> usize {
    let mut names: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_alphanumeric()))
        .filter_map(|l| l.split_once("=="))
        .map(|(name, _)| {
            name.split('[')
                .next()
                .unwrap_or(name)
                .trim()
                .to_ascii_lowercase()
                .replace(['_', '.'], "-")
        })
        .collect();
    names.sort();
    names.dedup();
    names.len()
}

/// (pins, packages with an sdist artifact, packages with built metadata) of one of our locks.
fn lock_facts(lock: &Value) -> Option<(usize, Vec<String>, Vec<String>)> {
    let packages = lock.get("packages")?.as_array()?;
    let name = |p: &Value| p.get("name").and_then(Value::as_str).map(str::to_string);
    let mut names: Vec<String> = packages.iter().filter_map(name).collect();
    names.sort();
    names.dedup();
    let mut sdists: Vec<String> = packages
        .iter()
        .filter(|p| {
            p.get("artifacts")
                .and_then(Value::as_array)
                .is_some_and(|a| {
                    a.iter()
                        .any(|a| a.get("kind") == Some(&Value::from("sdist")))
                })
        })
        .filter_map(name)
        .collect();
    sdists.sort();
    sdists.dedup();
    let mut built: Vec<String> = packages
        .iter()
        .filter(|p| p.get("metadata") == Some(&Value::from("sdist-build")))
        .filter_map(name)
        .collect();
    built.sort();
    built.dedup();
    Some((names.len(), sdists, built))
}

fn set_facts(setup: &Setup, set: &SetSpec) -> SetFacts {
    let texts: Vec<String> = set
        .files
        .iter()
        .filter_map(|f| std::fs::read_to_string(setup.abs(f)).ok())
        .collect();
    let mut facts = SetFacts {
        name: set.name.clone(),
        files: set.files.clone(),
        requirements: count_requirements(&texts),
        ..SetFacts::default()
    };
    let out = |tool: Tool| setup.abs(&format!("{}/out/{}-{}", setup.work, set.name, tool.key()));
    facts.pins_uv = std::fs::read_to_string(out(Tool::Uv).with_extension("txt"))
        .ok()
        .map(|t| uv_pins(&t))
        .filter(|&n| n > 0);
    // `--no-nixpkgs` does uv's work, so its lock is the one to describe the set by.
    let lock = std::fs::read(out(Tool::OursIndex).with_extension("lock.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    if let Some((pins, sdists, built)) = lock.as_ref().and_then(lock_facts) {
        facts.pins_ours = Some(pins);
        facts.sdists = sdists;
        facts.built_metadata = built;
    }
    facts
}

fn capture(program: &str, args: &[&str], root: &Path) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(root)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

pub fn run(args: &[String]) -> i32 {
    let options = match parse_args(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("cargo xtask bench: {e}\n{USAGE}");
            return 2;
        }
    };
    let root = root();
    let sets = match chosen_sets(&options, &available_apps(&root)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cargo xtask bench: {e}\n{USAGE}");
            return 2;
        }
    };
    let bench_dir = root.join("target").join("bench");
    let work = "target/bench/work".to_string();
    let _ = std::fs::remove_dir_all(root.join(&work));
    for sub in ["cache", "out", "logs", "timings"] {
        let dir = root.join(&work).join(sub);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("cannot create {}: {e}", dir.display());
            return 2;
        }
    }
    let empty_policy = format!("{work}/empty-policy.toml");
    if let Err(e) = std::fs::write(
        root.join(&empty_policy),
        "# The applications' requirements as their projects wrote them.\n",
    ) {
        eprintln!("cannot write {empty_policy}: {e}");
        return 2;
    }
    let (uv, uv_version) = match find_uv(options.uv.as_deref(), &bench_dir) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("cargo xtask bench: {e}");
            return 3;
        }
    };
    let (build_python, build_python_version) =
        match find_build_python(options.build_python.as_deref()) {
            Ok(found) => found,
            Err(e) => {
                eprintln!("cargo xtask bench: {e}");
                return 3;
            }
        };
    if options.build {
        eprintln!("==> cargo build --release -p bitpoll-lock");
        let built = Command::new("cargo")
            .args(["build", "--release", "--quiet", "-p", "bitpoll-lock"])
            .current_dir(&root)
            .status()
            .is_ok_and(|s| s.success());
        if !built {
            eprintln!("cargo xtask bench: the release build failed");
            return 1;
        }
    }
    let ours = root.join("target/release/bitpoll-lock");
    let timings = options.timings && supports_timings(&ours);
    let setup = Setup {
        root: root.clone(),
        work: work.clone(),
        ours,
        uv,
        build_python,
        run_timeout: options.run_timeout,
        timings,
        set_aside: Default::default(),
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let started = capture("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"], &root).unwrap_or_default();
    let load_start = load_average();
    let clock = Instant::now();
    eprintln!(
        "==> {uv_version}; builds with Python {build_python_version}; {cores} cores; {} runs per row after a warm-up; modes {}; timelines {}",
        options.runs,
        options.modes.iter().map(|m| m.key()).collect::<Vec<_>>().join(","),
        if timings { "on" } else { "off (no --timings)" },
    );

    let mut rows = Vec::new();
    let mut facts = Vec::new();
    let mut check = None;
    for name in &sets {
        let spec = if name == "bitpoll" {
            SetSpec {
                name: name.clone(),
                files: BITPOLL_INPUTS.iter().map(|s| s.to_string()).collect(),
                policy: BITPOLL_POLICY.to_string(),
                tools: vec![Tool::Uv, Tool::OursIndex, Tool::OursHybrid],
            }
        } else {
            SetSpec {
                name: name.clone(),
                files: vec![format!("{APPS_DIR}/{name}/requirements.in")],
                policy: empty_policy.clone(),
                tools: vec![Tool::Uv, Tool::OursIndex],
            }
        };
        eprintln!("==> {name}");
        rows.extend(bench_set(&setup, &spec, &options.modes, options.runs));
        facts.push(set_facts(&setup, &spec));
        if name == "bitpoll" {
            check = Some(bench_check(
                &setup,
                &format!("{work}/out/bitpoll-hybrid.lock.json"),
                options.runs,
            ));
        }
    }
    let elapsed = clock.elapsed().as_secs_f64();
    // After the last measurement, for the reason `set_aside` gives.
    let trash = root.join(&work).join("trash");
    if trash.exists() {
        eprintln!("==> removing the cold runs' caches");
        if let Err(e) = remove(&trash) {
            eprintln!("{e}");
        }
    }

    let machine = report::Machine {
        date: started,
        cores,
        cpu: cpu_model(),
        kernel: capture("uname", &["-sr"], &root),
        load_average_start: load_start,
        load_average_end: load_average(),
        uv: uv_version,
        build_python: format!("{} ({build_python_version})", setup.build_python.display()),
        commit: capture("git", &["rev-parse", "--short", "HEAD"], &root),
        dirty: capture("git", &["status", "--porcelain"], &root).map(|s| !s.is_empty()),
        timings,
        runs: options.runs,
        elapsed_s: elapsed,
    };
    println!("\n{}", report::heading(&machine));
    println!("\n{}", report::markdown(&facts, &rows));
    if let Some(c) = &check {
        println!("{}", report::check_line(c));
    }

    let results = report::json(&machine, &facts, &rows, check.as_ref());
    let out = options
        .json
        .clone()
        .unwrap_or_else(|| bench_dir.join("results.json"));
    let text = serde_json::to_string_pretty(&results).expect("JSON values serialise") + "\n";
    if let Err(e) = std::fs::write(&out, text) {
        eprintln!("cannot write {}: {e}", out.display());
        return 2;
    }
    eprintln!("==> wrote {} ({elapsed:.0} s in all)", out.display());
    let failed =
        rows.iter().any(|r| r.failure.is_some()) || check.is_some_and(|c| c.failure.is_some());
    i32::from(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn defaults_are_five_runs_in_every_mode_on_bitpoll_and_the_default_suite() {
        let o = parse_args(&[]).unwrap();
        assert_eq!(o.runs, 5);
        assert_eq!(o.modes, vec![Mode::Cold, Mode::Warm, Mode::Offline]);
        let apps: Vec<String> = DEFAULT_APPS.iter().map(|s| s.to_string()).collect();
        let sets = chosen_sets(&o, &apps).unwrap();
        assert_eq!(sets[0], "bitpoll");
        assert_eq!(&sets[1..], &apps[..]);
    }

    #[test]
    fn sets_and_modes_can_be_chosen_repeated_or_comma_separated() {
        let o = parse_args(&args(&[
            "--set",
            "zulip,sentry",
            "--set",
            "zulip",
            "--modes",
            "warm,cold",
            "--runs",
            "1",
        ]))
        .unwrap();
        assert_eq!(o.modes, vec![Mode::Warm, Mode::Cold]);
        let apps = args(&["netbox", "sentry", "zulip"]);
        assert_eq!(chosen_sets(&o, &apps).unwrap(), args(&["zulip", "sentry"]));
    }

    #[test]
    fn unknown_sets_modes_and_zero_runs_are_refused() {
        let apps = args(&["zulip"]);
        let o = parse_args(&args(&["--set", "nosuch"])).unwrap();
        assert!(chosen_sets(&o, &apps).unwrap_err().contains("nosuch"));
        assert!(parse_args(&args(&["--modes", "lukewarm"])).is_err());
        assert!(parse_args(&args(&["--runs", "0"])).is_err());
        assert!(parse_args(&args(&["--runs"])).is_err());
    }

    #[test]
    fn bitpoll_rows_can_be_left_out() {
        let apps = args(&["inventree", "readthedocs", "treeherder", "zulip", "sentry"]);
        let o = parse_args(&args(&["--no-bitpoll"])).unwrap();
        assert!(!chosen_sets(&o, &apps).unwrap().contains(&"bitpoll".into()));
        let o = parse_args(&args(&["--no-apps"])).unwrap();
        assert_eq!(chosen_sets(&o, &apps).unwrap(), args(&["bitpoll"]));
        let o = parse_args(&args(&["--no-apps", "--no-bitpoll"])).unwrap();
        assert!(chosen_sets(&o, &apps).is_err());
    }

    #[test]
    fn the_default_suite_is_in_the_fixtures() {
        let there = available_apps(&root());
        for name in DEFAULT_APPS {
            assert!(there.iter().any(|t| t == name), "{name} not in {APPS_DIR}");
        }
    }

    #[test]
    fn uv_pins_counts_each_package_once_across_markers_and_spellings() {
        let out = "\
# This file was autogenerated by uv
django==5.2.1 \\
    --hash=sha256:00
    # via -r in
numpy==2.2.0 ; python_full_version < '3.14' \\
    --hash=sha256:11
numpy==2.3.0 ; python_full_version >= '3.14' \\
    --hash=sha256:22
Zope.Interface==7.0 \\
    --hash=sha256:33
celery[redis]==5.4.0
";
        assert_eq!(uv_pins(out), 4);
    }

    #[test]
    fn lock_facts_name_sdists_and_built_metadata() {
        let lock = serde_json::json!({"packages": [
            {"name": "a", "metadata": "wheel", "artifacts": [{"kind": "wheel"}]},
            {"name": "b", "metadata": "sdist-build", "artifacts": [{"kind": "wheel"}, {"kind": "sdist"}]},
            {"name": "b", "metadata": "sdist-build", "artifacts": [{"kind": "sdist"}]},
            {"name": "c", "metadata": "sdist-pkg-info", "artifacts": [{"kind": "sdist"}]},
        ]});
        let (pins, sdists, built) = lock_facts(&lock).unwrap();
        assert_eq!(pins, 3);
        assert_eq!(sdists, args(&["b", "c"]));
        assert_eq!(built, args(&["b"]));
    }

    #[test]
    fn requirement_count_skips_comments_blanks_and_options() {
        let text = "# top\n\ndjango>=4  # web\n-c constraints.txt\n--index-url x\nrequests\n";
        assert_eq!(count_requirements(&[text.to_string()]), 2);
    }

    #[test]
    fn only_the_cold_warm_up_of_ours_records_a_timeline() {
        let setup = |timings| Setup {
            root: PathBuf::from("/r"),
            work: "w".into(),
            ours: PathBuf::new(),
            uv: PathBuf::new(),
            build_python: PathBuf::new(),
            run_timeout: Duration::from_secs(1),
            timings,
            set_aside: Default::default(),
        };
        let on = setup(true);
        assert_eq!(
            on.run_paths("zulip", Mode::Cold, Tool::OursIndex, 0)
                .timings
                .as_deref(),
            Some("w/timings/zulip-no-nixpkgs-warm-up.json")
        );
        // Measured runs, uv's, warm and offline ones, and a bench told not to: none.
        for run in 1..=5 {
            assert_eq!(
                on.run_paths("zulip", Mode::Cold, Tool::OursIndex, run)
                    .timings,
                None
            );
        }
        assert_eq!(on.run_paths("zulip", Mode::Cold, Tool::Uv, 0).timings, None);
        for mode in [Mode::Warm, Mode::Offline] {
            assert_eq!(
                on.run_paths("zulip", mode, Tool::OursHybrid, 0).timings,
                None
            );
        }
        assert_eq!(
            setup(false)
                .run_paths("zulip", Mode::Cold, Tool::OursIndex, 0)
                .timings,
            None
        );
    }

    #[test]
    fn both_tools_get_the_same_python_caches_and_inputs() {
        let setup = Setup {
            root: PathBuf::from("/r"),
            work: "target/bench/work".into(),
            ours: PathBuf::from("/r/target/release/bitpoll-lock"),
            uv: PathBuf::from("/u/uv"),
            build_python: PathBuf::from("/py/python3.13"),
            run_timeout: Duration::from_secs(1),
            timings: true,
            set_aside: Default::default(),
        };
        let set = SetSpec {
            name: "zulip".into(),
            files: vec!["tests/fixtures/apps/zulip/requirements.in".into()],
            policy: "target/bench/work/empty-policy.toml".into(),
            tools: vec![Tool::Uv, Tool::OursIndex],
        };
        let paths = |cache: &str, out: &str| RunPaths {
            cache: cache.into(),
            output: out.into(),
            timings: None,
        };
        let uv = setup.invocation(&set, Tool::Uv, true, &paths("C1", "o.txt"));
        assert_eq!(
            uv.shown(),
            "UV_PYTHON_DOWNLOADS=never uv pip compile --universal --python-version 3.13 \
             --python /py/python3.13 --generate-hashes --quiet --cache-dir C1 --offline \
             tests/fixtures/apps/zulip/requirements.in"
        );
        let mut p = paths("C2", "o.lock.json");
        p.timings = Some("t.json".into());
        let ours = setup.invocation(&set, Tool::OursIndex, true, &p);
        assert_eq!(
            ours.shown(),
            "bitpoll-lock --quiet update --upgrade --python 3.13 --build-python /py/python3.13 \
             --no-nixpkgs --policy target/bench/work/empty-policy.toml --cache-dir C2 \
             --lock o.lock.json --offline --timings t.json \
             -r tests/fixtures/apps/zulip/requirements.in"
        );
        let hybrid = setup.invocation(&set, Tool::OursHybrid, false, &paths("C3", "h.json"));
        assert!(!hybrid
            .args
            .iter()
            .any(|a| a == "--no-nixpkgs" || a == "--offline"));
    }

    #[test]
    fn a_cold_cache_is_moved_aside_whole_not_deleted_before_the_next_run() {
        let root = std::env::temp_dir().join(format!("xtask-aside-{}", std::process::id()));
        let setup = Setup {
            root: root.clone(),
            work: "work".into(),
            ours: PathBuf::new(),
            uv: PathBuf::new(),
            build_python: PathBuf::new(),
            run_timeout: Duration::from_secs(1),
            timings: false,
            set_aside: Default::default(),
        };
        for run in 0..2 {
            let file = root.join("work/cache/cold-uv/pages/p");
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, format!("run {run}")).unwrap();
            set_aside(&setup, "work/cache/cold-uv").unwrap();
            assert!(!root.join("work/cache/cold-uv").exists());
            let kept = root.join(format!("work/trash/{run}/pages/p"));
            assert_eq!(std::fs::read_to_string(kept).unwrap(), format!("run {run}"));
        }
        // A cache that is not there (the first cold run) is no error.
        set_aside(&setup, "work/cache/cold-ours").unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_failing_run_is_reported_with_its_exit_status_and_last_log_line() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (out, log) = (dir.join("out"), dir.join("log"));
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo working; echo 'error: no index' >&2; exit 3"]);
        match measure(&mut cmd, None, &log, Duration::from_secs(60)) {
            Err(RunError(m)) => assert_eq!(m, "exit status 3: error: no index"),
            _ => panic!("a failing command must be reported as failed"),
        }
        // Without a file for stdout, both streams go to the log.
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "working\nerror: no index\n"
        );
        let mut cmd = Command::new("sh");
        // The shell holds 30 MB in a variable, so its peak RSS must show it.
        cmd.args([
            "-c",
            "x=$(head -c 30000000 /dev/zero | tr '\\0' a); echo result",
        ]);
        let m = measure(&mut cmd, Some(&out), &log, Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("a succeeding command is measured"));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "result\n");
        assert!(m.seconds > 0.0);
        assert!(m.rss_kib > 20_000, "peak RSS {} KiB", m.rss_kib);
        // CPU time counts the children the command waits for: the same loop run by the
        // command's shell and by a shell it starts and waits for costs about the same. (A
        // fixed amount of work, not of time: tests run side by side and take turns at the
        // cores.)
        let spin = "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done";
        let cpu = |script: &str| {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", script]);
            measure(&mut cmd, None, &log, Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("a succeeding command is measured"))
                .cpu_seconds
        };
        let (own, child) = (cpu(spin), cpu(&format!("sh -c '{spin}'")));
        assert!(own > 0.02, "{own} s CPU");
        assert!(
            child > own / 2.0,
            "{child} s CPU waiting for a child against {own} s"
        );
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let started = Instant::now();
        match measure(&mut cmd, None, &log, Duration::from_millis(200)) {
            Err(RunError(m)) => assert!(m.contains("killed"), "{m}"),
            _ => panic!("a run past the limit must be killed and failed"),
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
