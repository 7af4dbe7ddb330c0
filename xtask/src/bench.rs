//! `cargo xtask bench`: bitpoll-lock against `uv pip compile --universal`, side by side.
//!
//! The two tools run alternately, run by run, so that a noisy neighbour or a slow minute of
//! the index hurts both alike. Every row gets a discarded warm-up run first (which also fills
//! the caches of the warm and offline rows). Wall time and peak RSS come from `wait4` on the
//! child, so they include anything the tool itself starts (uv's interpreter probe, our pip
//! query). Our lock always goes to a scratch path: the committed lock is never touched.
//!
//! Results are printed as a table and written to `target/bench/results.json`. Nothing here
//! asserts on time: machines differ, and the numbers are for reading, not for failing CI.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{json, Value};

const USAGE: &str = "usage: cargo xtask bench [--runs N] [--scale-runs N] [--no-scale] [--scale-only] [--skip-build] [--uv PATH]";

/// Bitpoll's inputs, as `update` reads them by default.
const BITPOLL_INPUTS: [&str; 2] = [
    "inputs/requirements.in",
    "inputs/requirements-production.in",
];

/// Popular packages, pure Python and native, for the scale run. Unpinned so that both tools
/// pick the newest compatible releases; the order mixes kinds so that a prefix is a
/// reasonable smaller set too.
const POPULAR: &[&str] = &[
    "requests",
    "numpy",
    "django",
    "cryptography",
    "pyyaml",
    "flask",
    "pandas",
    "lxml",
    "sqlalchemy",
    "pillow",
    "fastapi",
    "psycopg2-binary",
    "click",
    "scipy",
    "jinja2",
    "pydantic",
    "httpx",
    "aiohttp",
    "rich",
    "matplotlib",
    "attrs",
    "orjson",
    "boto3",
    "pytest",
    "redis",
    "celery",
    "psutil",
    "uvicorn",
    "gunicorn",
    "typer",
    "msgpack",
    "protobuf",
    "grpcio",
    "beautifulsoup4",
    "markdown",
    "pygments",
    "babel",
    "python-dateutil",
    "pytz",
    "tzdata",
    "six",
    "certifi",
    "idna",
    "urllib3",
    "charset-normalizer",
    "packaging",
    "setuptools",
    "wheel",
    "tomli",
    "tomlkit",
    "regex",
    "tqdm",
    "joblib",
    "scikit-learn",
    "networkx",
    "sympy",
    "pymongo",
    "ujson",
    "cffi",
    "pycparser",
    "greenlet",
    "websockets",
    "pyzmq",
    "tornado",
    "ipython",
    "soupsieve",
    "html5lib",
    "mistune",
    "openpyxl",
    "xlrd",
    "reportlab",
    "pyjwt",
    "bcrypt",
    "paramiko",
    "pynacl",
    "argon2-cffi",
    "itsdangerous",
    "werkzeug",
    "starlette",
    "anyio",
    "sniffio",
    "h11",
    "httpcore",
    "multidict",
    "yarl",
    "frozenlist",
    "aiosignal",
    "wrapt",
    "decorator",
    "more-itertools",
    "platformdirs",
    "filelock",
    "virtualenv",
    "tabulate",
    "colorama",
    "python-dotenv",
    "jsonschema",
    "referencing",
    "rpds-py",
    "fsspec",
    "pyarrow",
    "shapely",
    "sqlparse",
    "asgiref",
    "marshmallow",
    "alembic",
    "mako",
    "zope-interface",
    "pyopenssl",
    "simplejson",
    "lz4",
    "zstandard",
    "brotli",
    "xxhash",
    "black",
    "mypy",
    "ruff",
    "isort",
    "docutils",
    "sphinx",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Uv,
    /// `--no-nixpkgs`: the same work as uv.
    OursIndex,
    /// The default: nixpkgs first, the index for the rest.
    OursHybrid,
}

impl Tool {
    fn label(self) -> &'static str {
        match self {
            Tool::Uv => "uv",
            Tool::OursIndex => "bitpoll-lock --no-nixpkgs",
            Tool::OursHybrid => "bitpoll-lock (hybrid)",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Tool::Uv => "uv",
            Tool::OursIndex => "no-nixpkgs",
            Tool::OursHybrid => "hybrid",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Cold,
    Warm,
    Offline,
}

impl Mode {
    fn key(self) -> &'static str {
        match self {
            Mode::Cold => "cold",
            Mode::Warm => "warm",
            Mode::Offline => "offline",
        }
    }
}

struct Options {
    runs: usize,
    scale_runs: usize,
    scale: bool,
    main: bool,
    build: bool,
    uv: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        runs: 5,
        scale_runs: 3,
        scale: true,
        main: true,
        build: true,
        uv: None,
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
            "--scale-runs" => {
                o.scale_runs = value("--scale-runs")?
                    .parse()
                    .map_err(|e| format!("--scale-runs: {e}"))?
            }
            "--no-scale" => o.scale = false,
            "--scale-only" => o.main = false,
            "--skip-build" => o.build = false,
            "--uv" => o.uv = Some(PathBuf::from(value("--uv")?)),
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    if o.runs == 0 || o.scale_runs == 0 {
        return Err("--runs and --scale-runs must be at least 1".into());
    }
    Ok(o)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn version_of(program: &Path) -> Option<String> {
    let out = Command::new(program).arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// uv from `--uv`, else from PATH, else installed with pip into a virtualenv under
/// `target/bench` that nothing else uses.
fn find_uv(explicit: Option<&Path>, bench_dir: &Path) -> Result<(PathBuf, String), String> {
    if let Some(path) = explicit {
        let v = version_of(path).ok_or_else(|| format!("{} --version failed", path.display()))?;
        return Ok((path.to_path_buf(), v));
    }
    if let Some(v) = version_of(Path::new("uv")) {
        return Ok((PathBuf::from("uv"), v));
    }
    let venv = bench_dir.join("uv-venv");
    let uv = venv.join("bin").join("uv");
    if version_of(&uv).is_none() {
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
    let v = version_of(&uv).ok_or("the installed uv does not run")?;
    Ok((uv, v))
}

struct Sample {
    seconds: f64,
    rss_kib: u64,
}

/// Runs `cmd` to the end; its wall time and the peak RSS of it and its waited-for children.
// Peak memory of a child needs wait4(2), which std does not wrap.
#[allow(unsafe_code)]
fn measure(cmd: &mut Command, log: &Path) -> Result<Sample, String> {
    let err = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let start = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is a child of this process that nobody else waits for; `status` and
    // `usage` outlive the call.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = start.elapsed().as_secs_f64();
    // The child was reaped by wait4; dropping the handle does not wait again.
    drop(child);
    if rc != pid {
        return Err(format!("wait4 failed: {}", std::io::Error::last_os_error()));
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "{:?} failed (wait status {status}):\n{}",
            cmd.get_program(),
            tail.join("\n")
        ));
    }
    Ok(Sample {
        seconds,
        // Linux reports ru_maxrss in KiB.
        rss_kib: usage.ru_maxrss.max(0) as u64,
    })
}

struct Setup {
    root: PathBuf,
    work: PathBuf,
    ours: PathBuf,
    uv: PathBuf,
}

impl Setup {
    fn command(
        &self,
        tool: Tool,
        reqs: &[PathBuf],
        cache: &Path,
        offline: bool,
        lock: &Path,
    ) -> Command {
        let mut cmd = match tool {
            Tool::Uv => {
                let mut c = Command::new(&self.uv);
                c.args(["pip", "compile", "--universal", "--python-version", "3.13"])
                    .args(["--generate-hashes", "--quiet", "--cache-dir"])
                    .arg(cache)
                    .args(reqs);
                c.env("UV_PYTHON_DOWNLOADS", "never");
                c
            }
            Tool::OursIndex | Tool::OursHybrid => {
                let mut c = Command::new(&self.ours);
                c.args(["--quiet", "update", "--upgrade", "--cache-dir"])
                    .arg(cache)
                    .arg("--lock")
                    .arg(lock);
                if tool == Tool::OursIndex {
                    c.arg("--no-nixpkgs");
                }
                for r in reqs {
                    c.arg("-r").arg(r);
                }
                c
            }
        };
        if offline {
            cmd.arg("--offline");
        }
        // The caches are the ones named on the command line, nothing inherited.
        for var in [
            "BITPOLL_LOCK_CACHE_DIR",
            "UV_CACHE_DIR",
            "UV_OFFLINE",
            "UV_NO_CACHE",
        ] {
            cmd.env_remove(var);
        }
        cmd.current_dir(&self.root);
        cmd
    }
}

struct Row {
    set: String,
    requirements: usize,
    mode: Mode,
    tool: Tool,
    samples: Vec<Sample>,
    error: Option<String>,
}

impl Row {
    fn median(&self) -> Option<f64> {
        let mut t: Vec<f64> = self.samples.iter().map(|s| s.seconds).collect();
        if t.is_empty() {
            return None;
        }
        t.sort_by(f64::total_cmp);
        let n = t.len();
        Some(if n % 2 == 1 {
            t[n / 2]
        } else {
            (t[n / 2 - 1] + t[n / 2]) / 2.0
        })
    }

    fn min(&self) -> Option<f64> {
        self.samples
            .iter()
            .map(|s| s.seconds)
            .min_by(f64::total_cmp)
    }

    fn max(&self) -> Option<f64> {
        self.samples
            .iter()
            .map(|s| s.seconds)
            .max_by(f64::total_cmp)
    }

    fn peak_rss_mib(&self) -> Option<f64> {
        self.samples
            .iter()
            .map(|s| s.rss_kib)
            .max()
            .map(|k| k as f64 / 1024.0)
    }
}

/// Runs one requirement set in every mode for every tool, alternating tools run by run.
fn bench_set(
    setup: &Setup,
    set: &str,
    reqs: &[PathBuf],
    requirements: usize,
    tools: &[Tool],
    modes: &[Mode],
    runs: usize,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for &mode in modes {
        let mut mode_rows: Vec<Row> = tools
            .iter()
            .map(|&tool| Row {
                set: set.to_string(),
                requirements,
                mode,
                tool,
                samples: Vec::new(),
                error: None,
            })
            .collect();
        // Run 0 is the warm-up: discarded, and it fills the caches that the warm and offline
        // modes start from.
        for run in 0..=runs {
            for i in 0..tools.len() {
                let k = (i + run) % tools.len();
                let tool = tools[k];
                let row = &mut mode_rows[k];
                if row.error.is_some() {
                    continue;
                }
                let shared_cache = setup.work.join(format!("cache-{set}-{}", tool.key()));
                let cache = match mode {
                    Mode::Cold => {
                        let dir = setup.work.join(format!("cache-cold-{}", tool.key()));
                        let _ = std::fs::remove_dir_all(&dir);
                        dir
                    }
                    Mode::Warm | Mode::Offline => shared_cache,
                };
                let lock = setup.work.join(format!("{set}-{}.lock.json", tool.key()));
                let log = setup
                    .work
                    .join(format!("{set}-{}-{}.log", tool.key(), mode.key()));
                // The offline warm-up goes online so that the offline runs have a full cache.
                let offline = mode == Mode::Offline && run > 0;
                let mut cmd = setup.command(tool, reqs, &cache, offline, &lock);
                match measure(&mut cmd, &log) {
                    Ok(sample) => {
                        eprintln!(
                            "    {set} {:<7} {:<26} run {run}: {:.2} s, {:.0} MiB{}",
                            mode.key(),
                            tool.label(),
                            sample.seconds,
                            sample.rss_kib as f64 / 1024.0,
                            if run == 0 { " (warm-up)" } else { "" }
                        );
                        if run > 0 {
                            row.samples.push(sample);
                        }
                    }
                    Err(e) => {
                        eprintln!("    {set} {} {}: {e}", mode.key(), tool.label());
                        row.error = Some(e);
                    }
                }
            }
        }
        rows.extend(mode_rows);
    }
    rows
}

fn bench_check(setup: &Setup, lock: &Path, runs: usize) -> Row {
    let mut row = Row {
        set: "bitpoll".into(),
        requirements: 0,
        mode: Mode::Offline,
        tool: Tool::OursHybrid,
        samples: Vec::new(),
        error: None,
    };
    for run in 0..=runs {
        let mut cmd = Command::new(&setup.ours);
        cmd.args(["--quiet", "check", "--lock"])
            .arg(lock)
            .current_dir(&setup.root);
        match measure(&mut cmd, &setup.work.join("check.log")) {
            Ok(s) if run > 0 => row.samples.push(s),
            Ok(_) => {}
            Err(e) => {
                row.error = Some(e);
                break;
            }
        }
    }
    row
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

fn uv_row<'a>(rows: &'a [Row], row: &Row) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.tool == Tool::Uv && r.set == row.set && r.mode == row.mode)
}

fn ratio(ours: Option<f64>, uv: Option<f64>) -> Option<f64> {
    match (ours, uv) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn print_table(title: &str, rows: &[Row], check: Option<&Row>) {
    println!("\n{title}\n");
    println!("| set | mode | tool | median s | min s | max s | peak RSS MiB | time ours/uv | RSS ours/uv |");
    println!("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        let uv = uv_row(rows, row).filter(|_| row.tool != Tool::Uv);
        let (t_ratio, m_ratio) = match uv {
            Some(uv) => (
                fmt_opt(ratio(row.median(), uv.median()), 2),
                fmt_opt(ratio(row.peak_rss_mib(), uv.peak_rss_mib()), 2),
            ),
            None => ("".into(), "".into()),
        };
        let failed = if row.error.is_some() { " (failed)" } else { "" };
        println!(
            "| {} ({}) | {} | {}{failed} | {} | {} | {} | {} | {t_ratio} | {m_ratio} |",
            row.set,
            row.requirements,
            row.mode.key(),
            row.tool.label(),
            fmt_opt(row.median(), 2),
            fmt_opt(row.min(), 2),
            fmt_opt(row.max(), 2),
            fmt_opt(row.peak_rss_mib(), 0),
        );
    }
    if let Some(c) = check {
        println!(
            "\n`bitpoll-lock check` on an up-to-date lock: median {} ms (min {}, max {}), peak RSS {} MiB",
            fmt_opt(c.median().map(|s| s * 1000.0), 1),
            fmt_opt(c.min().map(|s| s * 1000.0), 1),
            fmt_opt(c.max().map(|s| s * 1000.0), 1),
            fmt_opt(c.peak_rss_mib(), 1)
        );
    }
}

fn row_json(rows: &[Row], row: &Row) -> Value {
    let uv = uv_row(rows, row).filter(|_| row.tool != Tool::Uv);
    json!({
        "set": row.set,
        "requirements": row.requirements,
        "mode": row.mode.key(),
        "tool": row.tool.key(),
        "runs": row.samples.len(),
        "median_s": row.median(),
        "min_s": row.min(),
        "max_s": row.max(),
        "seconds": row.samples.iter().map(|s| s.seconds).collect::<Vec<_>>(),
        "peak_rss_mib": row.peak_rss_mib(),
        "time_ratio_vs_uv": uv.and_then(|uv| ratio(row.median(), uv.median())),
        "rss_ratio_vs_uv": uv.and_then(|uv| ratio(row.peak_rss_mib(), uv.peak_rss_mib())),
        "error": row.error,
    })
}

fn count_requirements(reqs: &[PathBuf]) -> usize {
    reqs.iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| {
            t.lines()
                .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
                .filter(|l| !l.is_empty() && !l.starts_with('-'))
                .collect::<Vec<_>>()
        })
        .count()
}

fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
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
    let bench_dir = root.join("target").join("bench");
    let work = bench_dir.join("work");
    let _ = std::fs::remove_dir_all(&work);
    if let Err(e) = std::fs::create_dir_all(&work) {
        eprintln!("cannot create {}: {e}", work.display());
        return 2;
    }
    let (uv, uv_version) = match find_uv(options.uv.as_deref(), &bench_dir) {
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
    let setup = Setup {
        ours: root.join("target/release/bitpoll-lock"),
        root: root.clone(),
        work: work.clone(),
        uv,
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    eprintln!(
        "==> {uv_version}; {cores} cores; {} runs per row after a warm-up",
        options.runs
    );

    let bitpoll: Vec<PathBuf> = BITPOLL_INPUTS.iter().map(|p| root.join(p)).collect();
    let mut main_rows = Vec::new();
    let mut check = None;
    if options.main {
        eprintln!("==> Bitpoll's requirements");
        main_rows = bench_set(
            &setup,
            "bitpoll",
            &bitpoll,
            count_requirements(&bitpoll),
            &[Tool::Uv, Tool::OursIndex, Tool::OursHybrid],
            &[Mode::Cold, Mode::Warm, Mode::Offline],
            options.runs,
        );
        check = Some(bench_check(
            &setup,
            &work.join("bitpoll-hybrid.lock.json"),
            options.runs,
        ));
    }

    let mut scale_rows = Vec::new();
    if options.scale {
        let mut sets = vec![("bitpoll".to_string(), bitpoll.clone())];
        for n in [POPULAR.len() / 2, POPULAR.len()] {
            let path = work.join(format!("popular-{n}.in"));
            let text: String = POPULAR[..n].iter().map(|p| format!("{p}\n")).collect();
            if let Err(e) = std::fs::write(&path, text) {
                eprintln!("cannot write {}: {e}", path.display());
                return 2;
            }
            sets.push((format!("popular-{n}"), vec![path]));
        }
        for (name, reqs) in &sets {
            eprintln!("==> scale: {name}");
            scale_rows.extend(bench_set(
                &setup,
                &format!("scale-{name}"),
                reqs,
                count_requirements(reqs),
                &[Tool::Uv, Tool::OursIndex],
                &[Mode::Cold, Mode::Offline],
                options.scale_runs,
            ));
        }
    }

    let date = today();
    println!("\n{date}, {cores} cores, {uv_version}");
    if options.main {
        print_table(
            "Bitpoll (requirements.in + requirements-production.in)",
            &main_rows,
            check.as_ref(),
        );
    }
    if options.scale {
        print_table("Scale (`--no-nixpkgs` against uv)", &scale_rows, None);
    }

    let results = json!({
        "date": date,
        "cores": cores,
        "uv": uv_version,
        "runs": options.runs,
        "scale_runs": options.scale_runs,
        "commands": {
            "uv": "UV_PYTHON_DOWNLOADS=never uv pip compile --universal --python-version 3.13 --generate-hashes --quiet --cache-dir DIR [--offline] FILES",
            "ours": "bitpoll-lock --quiet update --upgrade [--no-nixpkgs] --cache-dir DIR --lock SCRATCH [--offline] -r FILE...",
        },
        "rows": main_rows.iter().map(|r| row_json(&main_rows, r)).collect::<Vec<_>>(),
        "check": check.as_ref().map(|c| json!({
            "median_s": c.median(), "min_s": c.min(), "max_s": c.max(),
            "peak_rss_mib": c.peak_rss_mib(), "error": c.error,
        })),
        "scale": scale_rows.iter().map(|r| row_json(&scale_rows, r)).collect::<Vec<_>>(),
    });
    let out = bench_dir.join("results.json");
    let text = serde_json::to_string_pretty(&results).expect("JSON values serialise") + "\n";
    if let Err(e) = std::fs::write(&out, text) {
        eprintln!("cannot write {}: {e}", out.display());
        return 2;
    }
    eprintln!("==> wrote {}", out.display());
    let failed = main_rows
        .iter()
        .chain(&scale_rows)
        .any(|r| r.error.is_some())
        || check.is_some_and(|c| c.error.is_some());
    i32::from(failed)
}
