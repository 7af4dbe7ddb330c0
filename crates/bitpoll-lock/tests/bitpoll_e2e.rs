//! Bitpoll itself, run from a lock this tool writes: the end-to-end proof that a lock
//! gives a Bitpoll that starts, serves pages and stores polls, on SQLite and PostgreSQL,
//! and that the module's backups restore.
//!
//! One preparation, shared by every test here: resolve the committed inputs for the
//! Python found here (`--no-nixpkgs`, x86_64-linux), export the lock with our own
//! `export --format requirements-txt` and install it with `pip --require-hashes --no-deps`
//! into a fresh virtualenv. Then, per database, an instance laid out as the package lays
//! out Bitpoll's source, with the module's own settings file, setup script, server
//! command line and backup script, taken from evaluating `nix/module.nix` (through
//! `tests/nix/e2e.nix`) and run as systemd would run them, uWSGI coming from the lock.
//!
//! What it needs: network access to the package index, `nix-instantiate` with a nixpkgs
//! `lib` directory (`NIXPKGS_LIB`), python3 with venv, gettext, sqlite3, C headers for
//! the sdists (uWSGI, python-ldap) and PostgreSQL's server binaries. Without one of these
//! a test says `skipped: <reason>` on stderr and passes (`BITPOLL_E2E_REQUIRED=1`, which
//! CI sets, makes that a failure). `BITPOLL_E2E_LOCK=FILE` installs
//! that lock instead of resolving one (to check a given lock). The work directory,
//! `target/tmp/bitpoll-e2e`, is emptied when the tests start and kept afterwards for
//! reading logs.

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

const SYSTEM: &str = "x86_64-linux";
/// The Bitpoll commit the committed requirement files come from.
const BITPOLL_SOURCE: &str = "upstream/bitpoll/bitpoll-35b0236.tar.gz";

// ---------------------------------------------------------------------------------------
// Outcomes

/// Why a test did not get to assert anything: a missing precondition is a skip, anything
/// else a failure.
#[derive(Debug, Clone)]
enum Stop {
    Skip(String),
    Fail(String),
}

type Step<T> = Result<T, Stop>;

fn fail<T>(message: impl Into<String>) -> Step<T> {
    Err(Stop::Fail(message.into()))
}

/// The one place that decides what a skip does: it is reported and passes, unless
/// `BITPOLL_E2E_REQUIRED=1` (CI, where everything is there) makes it a failure.
fn skip(test: &str, reason: &str) {
    if env::var("BITPOLL_E2E_REQUIRED").as_deref() == Ok("1") {
        panic!("{test}: would be skipped ({reason}), but BITPOLL_E2E_REQUIRED=1");
    }
    // Counted as skipped by `cargo xtask test`, and a failure under CI.
    bitpoll_tests::skip(format!("{test}: {reason}"));
}

/// Runs a test body: a skip is reported and passes, a failure panics with its message.
fn outcome(test: &str, result: Step<()>) {
    match result {
        Ok(()) => {}
        Err(Stop::Skip(reason)) => skip(test, &reason),
        Err(Stop::Fail(message)) => panic!("{test}: {message}"),
    }
}

// ---------------------------------------------------------------------------------------
// Paths and tools

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// Emptied once per run; everything the tests write lives below it.
fn work_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bitpoll-e2e");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the work directory");
        dir
    })
}

fn python() -> String {
    env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn which(program: &str) -> Option<PathBuf> {
    env::var_os("PATH").and_then(|paths| {
        env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

fn require_tool(program: &str, hint: &str) -> Step<()> {
    match which(program) {
        Some(_) => Ok(()),
        None => Err(Stop::Skip(format!("`{program}` is not on PATH ({hint})"))),
    }
}

fn nixpkgs_lib() -> Step<PathBuf> {
    let lib = env::var_os("NIXPKGS_LIB")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| bitpoll_tests::shared_dir().join("nixpkgs-lib/lib"));
    if lib.join("default.nix").is_file() {
        Ok(lib)
    } else {
        Err(Stop::Skip(format!(
            "no nixpkgs `lib` directory at {} (set NIXPKGS_LIB)",
            lib.display()
        )))
    }
}

// ---------------------------------------------------------------------------------------
// Running commands: bounded, logged, and reported with the tail of their output

/// The last lines of a log, for a failure message.
fn tail(log: &Path, lines: usize) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    format!(
        "--- last {} lines of {} ---\n{}",
        all.len() - start,
        log.display(),
        all[start..].join("\n")
    )
}

/// Sends a signal to a whole process group.
fn signal_group(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

/// A child in its own process group, killed with everything it started when dropped.
struct Running {
    child: Child,
    done: bool,
}

impl Running {
    /// Starts `cmd` with its output in `log`, or only its stderr when `stdout` is given.
    fn spawn(cmd: &mut Command, log: &Path, stdout: Option<&Path>) -> Step<Running> {
        let create = |path: &Path| {
            fs::File::create(path).map_err(|e| Stop::Fail(format!("{}: {e}", path.display())))
        };
        let err = create(log)?;
        let out = match stdout {
            Some(path) => create(path)?,
            None => err.try_clone().map_err(|e| Stop::Fail(e.to_string()))?,
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| Stop::Fail(format!("cannot start {:?}: {e}", cmd.get_program())))?;
        Ok(Running { child, done: false })
    }

    fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.done = true;
                return Some(status);
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().ok().flatten();
        self.done |= status.is_some();
        status
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.done {
            signal_group(self.child.id(), "KILL");
            let _ = self.child.wait();
        }
        // Whatever the child left behind in its group goes too.
        signal_group(self.child.id(), "KILL");
    }
}

/// Runs one named step to its end within `limit`; a failure names the step and shows the
/// tail of its output.
fn run_step(name: &str, cmd: &mut Command, log: &Path, limit: Duration) -> Step<()> {
    finish(name, Running::spawn(cmd, log, None)?, log, limit)
}

/// Runs a step and returns what it printed on stdout (stderr goes to the log).
fn capture_step(name: &str, cmd: &mut Command, log: &Path, limit: Duration) -> Step<String> {
    let out = log.with_extension("out");
    finish(name, Running::spawn(cmd, log, Some(&out))?, log, limit)?;
    fs::read_to_string(&out).map_err(|e| Stop::Fail(format!("{}: {e}", out.display())))
}

fn finish(name: &str, mut child: Running, log: &Path, limit: Duration) -> Step<()> {
    let started = Instant::now();
    match child.wait_for(limit) {
        Some(status) if status.success() => {
            eprintln!(
                "step `{name}`: ok ({:.1}s)",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Some(status) => fail(format!(
            "step `{name}` failed ({status})\n{}",
            tail(log, 40)
        )),
        None => {
            // Killed with everything it started before the log is read.
            drop(child);
            fail(format!(
                "step `{name}` did not finish within {}s and was killed\n{}",
                limit.as_secs(),
                tail(log, 40)
            ))
        }
    }
}

fn write(path: &Path, text: &str) -> Step<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| Stop::Fail(format!("{}: {e}", parent.display())))?;
    }
    fs::write(path, text).map_err(|e| Stop::Fail(format!("{}: {e}", path.display())))
}

fn write_executable(path: &Path, text: &str) -> Step<()> {
    use std::os::unix::fs::PermissionsExt;
    write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .map_err(|e| Stop::Fail(format!("{}: {e}", path.display())))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

// ---------------------------------------------------------------------------------------
// The shared preparation: lock, export, virtualenv, Bitpoll's source

struct Prepared {
    venv: PathBuf,
    /// Bitpoll's unpacked source tree.
    source: PathBuf,
    nixpkgs_lib: PathBuf,
}

fn prepared() -> Step<&'static Prepared> {
    static PREPARED: OnceLock<Result<Prepared, Stop>> = OnceLock::new();
    PREPARED.get_or_init(prepare).as_ref().map_err(Clone::clone)
}

fn prepare() -> Step<Prepared> {
    if env::consts::ARCH != "x86_64" || env::consts::OS != "linux" {
        return Err(Stop::Skip(format!(
            "the lock is exported for {SYSTEM}, which this machine is not"
        )));
    }
    require_tool(
        "nix-instantiate",
        "the module is evaluated with it: apt-get install nix-bin",
    )?;
    require_tool("msgfmt", "compilemessages needs gettext")?;
    require_tool("sqlite3", "the SQLite backup uses it")?;
    let nixpkgs_lib = nixpkgs_lib()?;
    let source_archive = bitpoll_tests::shared_dir().join(BITPOLL_SOURCE);
    if !source_archive.is_file() {
        return Err(Stop::Skip(format!(
            "Bitpoll's source is not at {}",
            source_archive.display()
        )));
    }
    let version = Command::new(python())
        .args([
            "-c",
            "import sys, venv; print('%d.%d' % sys.version_info[:2])",
        ])
        .output();
    let version = match version {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => {
            return Err(Stop::Skip(format!(
                "`{}` with the venv module is needed",
                python()
            )))
        }
    };

    let work = work_dir();
    let logs = work.join("logs");
    fs::create_dir_all(&logs).map_err(|e| Stop::Fail(e.to_string()))?;

    let lock = match env::var_os("BITPOLL_E2E_LOCK") {
        Some(given) => PathBuf::from(given),
        None => {
            let lock = work.join("bitpoll.lock.json");
            resolve(&lock, &version, &logs.join("resolve.log"))?;
            lock
        }
    };

    let requirements = capture_step(
        "export the lock as requirements.txt",
        Command::new(env!("CARGO_BIN_EXE_bitpoll-lock"))
            .current_dir(repo_root())
            .args(["export", "--format", "requirements-txt", "--system", SYSTEM])
            .arg("--lock")
            .arg(&lock),
        &logs.join("export.log"),
        Duration::from_secs(120),
    )?;
    if !requirements.contains("--hash=sha256:") {
        return fail(format!("the export carries no hashes:\n{requirements}"));
    }
    let requirements_file = work.join("requirements.txt");
    write(&requirements_file, &requirements)?;

    let venv = work.join("venv");
    run_step(
        "create a virtualenv",
        Command::new(python()).args(["-m", "venv"]).arg(&venv),
        &logs.join("venv.log"),
        Duration::from_secs(120),
    )?;
    run_step(
        "pip install --require-hashes --no-deps (builds uWSGI and python-ldap)",
        Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--no-input",
                "--disable-pip-version-check",
                "--require-hashes",
                "--no-deps",
                "-r",
            ])
            .arg(&requirements_file),
        &logs.join("pip-install.log"),
        Duration::from_secs(1200),
    )?;
    // The lock's uWSGI is what serves Bitpoll below.
    if !venv.join("bin/uwsgi").is_file() {
        return fail("the lock installed no uwsgi executable");
    }

    let unpacked = work.join("source");
    fs::create_dir_all(&unpacked).map_err(|e| Stop::Fail(e.to_string()))?;
    run_step(
        "unpack Bitpoll's source",
        Command::new("tar")
            .arg("-xzf")
            .arg(&source_archive)
            .arg("-C")
            .arg(&unpacked),
        &logs.join("unpack.log"),
        Duration::from_secs(120),
    )?;
    let source = fs::read_dir(&unpacked)
        .map_err(|e| Stop::Fail(e.to_string()))?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.join("manage.py").is_file())
        .ok_or_else(|| Stop::Fail("the archive has no folder with manage.py".into()))?;

    Ok(Prepared {
        venv,
        source,
        nixpkgs_lib,
    })
}

/// `update` into a scratch lock; an index that cannot be reached (exit code 3) is a skip.
fn resolve(lock: &Path, python_version: &str, log: &Path) -> Step<()> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitpoll-lock"));
    cmd.current_dir(repo_root())
        .args(["update", "--no-nixpkgs", "--python", python_version])
        .args(["--system", SYSTEM, "--timeout", "20", "--retries", "1"])
        .arg("--lock")
        .arg(lock);
    let started = Instant::now();
    let mut child = Running::spawn(&mut cmd, log, None)?;
    match child.wait_for(Duration::from_secs(600)) {
        Some(status) if status.success() => {
            eprintln!(
                "step `resolve the committed inputs for Python {python_version}`: ok ({:.1}s)",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Some(status) if status.code() == Some(3) => {
            let text = fs::read_to_string(log).unwrap_or_default();
            let reason = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            Err(Stop::Skip(format!(
                "the package index cannot be reached: {}",
                reason.trim()
            )))
        }
        Some(status) => fail(format!(
            "step `resolve the committed inputs` failed ({status})\n{}",
            tail(log, 40)
        )),
        None => fail(format!(
            "step `resolve the committed inputs` took over 600s\n{}",
            tail(log, 40)
        )),
    }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL: a throwaway cluster on a private socket directory and port

struct PgSetup {
    bin: PathBuf,
    dir: PathBuf,
    /// One port for the cluster's life, so the instance's backup script (which names
    /// it) still reaches the cluster after a restart.
    port: u16,
    /// Who runs the server: it refuses to run as root.
    user: Option<String>,
}

const PG_ROLE: &str = "bitpoll";

fn pg_bindir() -> Step<PathBuf> {
    if let Some(dir) = env::var_os("BITPOLL_E2E_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    // A link on PATH (to Debian's directory, say) leads to the rest of the programs.
    if let Some(initdb) = which("initdb").and_then(|link| link.canonicalize().ok()) {
        let bin = initdb.parent().expect("a file has a parent");
        if bin.join("createdb").is_file() {
            return Ok(bin.to_path_buf());
        }
    }
    // Debian keeps the server's programs out of PATH, one directory per major version.
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_string_lossy().parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        Stop::Skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed".into())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

impl PgSetup {
    fn new() -> Step<PgSetup> {
        let bin = pg_bindir()?;
        let dir = work_dir().join("postgresql");
        fs::create_dir_all(dir.join("socket")).map_err(|e| Stop::Fail(e.to_string()))?;
        let user = if is_root() {
            let user = env::var("BITPOLL_E2E_PG_USER").unwrap_or_else(|_| "nobody".to_string());
            let ids = Command::new("id")
                .args(["-u", &user])
                .output()
                .ok()
                .filter(|out| out.status.success())
                .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse::<u32>().ok())
                .ok_or_else(|| {
                    Stop::Skip(format!(
                        "running as root, and the unprivileged user `{user}` for PostgreSQL does not exist (BITPOLL_E2E_PG_USER)"
                    ))
                })?;
            for path in [dir.clone(), dir.join("socket")] {
                std::os::unix::fs::chown(&path, Some(ids), None)
                    .map_err(|e| Stop::Fail(format!("chown {}: {e}", path.display())))?;
            }
            Some(user)
        } else {
            None
        };
        Ok(PgSetup {
            bin,
            dir,
            port: free_port()?,
            user,
        })
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("socket")
    }

    /// A server program run as the unprivileged user.
    fn server_command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.user {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(path);
                cmd.current_dir(&self.dir);
                cmd
            }
            None => {
                let mut cmd = Command::new(path);
                cmd.current_dir(&self.dir);
                cmd
            }
        }
    }

    /// A client program talking to the cluster over its socket, as the test's role.
    fn client_command(&self, program: &str, port: u16) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.arg("--host").arg(self.socket()).args([
            "--port",
            &port.to_string(),
            "--username",
            PG_ROLE,
        ]);
        cmd
    }

    fn init(&self) -> Step<()> {
        run_step(
            "initdb a throwaway PostgreSQL cluster",
            self.server_command("initdb")
                .arg("--pgdata")
                .arg(self.dir.join("data"))
                .args(["--username", PG_ROLE, "--auth", "trust"])
                .args(["--encoding", "UTF8", "--no-locale", "--no-sync"]),
            &work_dir().join("logs/initdb.log"),
            Duration::from_secs(120),
        )
    }

    /// Starts the cluster; stopped when the guard is dropped.
    fn start(&self) -> Step<PgServer<'_>> {
        let port = self.port;
        let options = format!(
            "-k {} -p {port} -c listen_addresses='' -c fsync=off",
            self.socket().display()
        );
        run_step(
            "start PostgreSQL",
            self.server_command("pg_ctl")
                .arg("--pgdata")
                .arg(self.dir.join("data"))
                .arg("--log")
                .arg(self.dir.join("server.log"))
                .args(["--options", &options, "--wait", "--timeout", "60", "start"]),
            &work_dir().join("logs/pg-start.log"),
            Duration::from_secs(90),
        )
        .map_err(|stop| {
            // pg_ctl may have given up on a server that is still coming up.
            self.stop_immediately();
            match stop {
                Stop::Fail(message) => Stop::Fail(format!(
                    "{message}\n{}",
                    tail(&self.dir.join("server.log"), 20)
                )),
                skip => skip,
            }
        })?;
        Ok(PgServer {
            setup: self,
            port,
            running: true,
        })
    }
}

struct PgServer<'a> {
    setup: &'a PgSetup,
    port: u16,
    running: bool,
}

impl PgServer<'_> {
    /// The module's database options for one database of this server.
    fn target(&self, name: &str) -> DbTarget {
        DbTarget {
            kind: Database::Postgresql,
            pg_socket: self.setup.socket(),
            pg_port: self.port,
            pg_name: name.to_string(),
        }
    }

    fn createdb(&self, name: &str) -> Step<()> {
        run_step(
            &format!("createdb {name}"),
            self.setup.client_command("createdb", self.port).arg(name),
            &work_dir().join(format!("logs/createdb-{name}.log")),
            Duration::from_secs(60),
        )
    }

    fn stop(mut self) -> Step<()> {
        self.running = false;
        run_step(
            "stop PostgreSQL",
            self.setup
                .server_command("pg_ctl")
                .arg("--pgdata")
                .arg(self.setup.dir.join("data"))
                .args(["--mode", "fast", "--wait", "--timeout", "60", "stop"]),
            &work_dir().join("logs/pg-stop.log"),
            Duration::from_secs(90),
        )
    }
}

impl Drop for PgServer<'_> {
    fn drop(&mut self) {
        if self.running {
            self.setup.stop_immediately();
        }
    }
}

impl PgSetup {
    /// Stops the cluster if it runs, without waiting for its clients; for failures.
    fn stop_immediately(&self) {
        let _ = self
            .server_command("pg_ctl")
            .arg("--pgdata")
            .arg(self.dir.join("data"))
            .args(["--mode", "immediate", "--wait", "--timeout", "30", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn free_port() -> Step<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| Stop::Fail(format!("no free port on 127.0.0.1: {e}")))
}

// ---------------------------------------------------------------------------------------
// One Bitpoll instance, configured by the module

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Database {
    Sqlite,
    Postgresql,
}

impl Database {
    fn name(self) -> &'static str {
        match self {
            Database::Sqlite => "sqlite",
            Database::Postgresql => "postgresql",
        }
    }
}

/// Where the instance's database is, for the module's `database` options.
struct DbTarget {
    kind: Database,
    pg_socket: PathBuf,
    pg_port: u16,
    pg_name: String,
}

impl DbTarget {
    fn sqlite() -> DbTarget {
        DbTarget {
            kind: Database::Sqlite,
            pg_socket: PathBuf::new(),
            pg_port: 0,
            pg_name: String::new(),
        }
    }
}

/// The module's view of one instance: settings file, setup and backup scripts, the
/// service's environment and command line.
struct Instance {
    name: String,
    data_dir: PathBuf,
    package: PathBuf,
    port: u16,
    environment: BTreeMap<String, String>,
    exec_start: String,
    /// uWSGI's statistics socket (monitoring.statsSocket).
    stats_socket: PathBuf,
    setup_script: PathBuf,
    backup_script: PathBuf,
    logs: PathBuf,
    /// Directories put in front of PATH: the package's commands and the database's.
    path_prefix: Vec<PathBuf>,
}

impl Instance {
    /// Lays out a package from Bitpoll's source and evaluates the module for it.
    fn new(p: &Prepared, name: &str, data_dir: &Path, db: &DbTarget) -> Step<Instance> {
        let root = work_dir().join(name);
        let package = root.join("package");
        let app = package.join("share/bitpoll");
        let logs = root.join("logs");
        fs::create_dir_all(&app).map_err(|e| Stop::Fail(e.to_string()))?;
        fs::create_dir_all(&logs).map_err(|e| Stop::Fail(e.to_string()))?;
        let mut copy = Command::new("cp");
        copy.arg("-r");
        for part in ["manage.py", "bitpoll", "locale"] {
            copy.arg(p.source.join(part));
        }
        run_step(
            &format!("{name}: copy Bitpoll's source"),
            copy.arg(&app),
            &logs.join("copy.log"),
            Duration::from_secs(60),
        )?;
        // As package.nix installs it.
        let settings_local = fs::read_to_string(repo_root().join("nix/settings_local.py"))
            .map_err(|e| Stop::Fail(format!("nix/settings_local.py: {e}")))?;
        if !settings_local.contains("@staticRoot@") {
            return fail("nix/settings_local.py lost its @staticRoot@ placeholder");
        }
        write(
            &app.join("bitpoll/settings_local.py"),
            &settings_local.replace("@staticRoot@", &app.join("static").to_string_lossy()),
        )?;

        // The configured SECRET_KEY file (see tests/nix/e2e.nix); the units get it
        // as a credential.
        fs::create_dir_all(root.join("keys")).map_err(|e| Stop::Fail(e.to_string()))?;
        write(
            &root.join("keys/secret_key"),
            &format!("e2e-secret-key-{name}-{}", std::process::id()),
        )?;

        let port = free_port()?;
        let mut eval = Command::new("nix-instantiate");
        eval.args(["--eval", "--strict", "--json"])
            .arg(repo_root().join("tests/nix/e2e.nix"));
        let mut arg = |key: &str, value: &str| {
            eval.args(["--argstr", key, value]);
        };
        arg("nixpkgsLib", &p.nixpkgs_lib.to_string_lossy());
        arg("scratch", &root.to_string_lossy());
        arg("package", &package.to_string_lossy());
        arg("venv", &p.venv.to_string_lossy());
        arg("dataDir", &data_dir.to_string_lossy());
        arg("port", &port.to_string());
        arg("database", db.kind.name());
        if db.kind == Database::Postgresql {
            arg("pgHost", &db.pg_socket.to_string_lossy());
            arg("pgPort", &db.pg_port.to_string());
            arg("pgName", &db.pg_name);
            arg("pgUser", PG_ROLE);
        }
        let json = capture_step(
            &format!("{name}: evaluate the module (tests/nix/e2e.nix)"),
            &mut eval,
            &logs.join("eval.log"),
            Duration::from_secs(120),
        )?;
        let config: Value = serde_json::from_str(&json)
            .map_err(|e| Stop::Fail(format!("the evaluator printed no JSON: {e}\n{json}")))?;
        let failed = &config["failedAssertions"];
        if failed.as_array().is_none_or(|a| !a.is_empty()) {
            return fail(format!("the module's assertions failed: {failed}"));
        }
        if config["unitsRunScripts"] != Value::Bool(true) {
            return fail("the setup and backup units do not run the scripts this test runs");
        }
        let text = |key: &str| -> Step<(PathBuf, String)> {
            match (config[key]["path"].as_str(), config[key]["text"].as_str()) {
                (Some(path), Some(text)) => Ok((PathBuf::from(path), text.to_string())),
                _ => fail(format!("the evaluation has no `{key}` file")),
            }
        };
        let (settings_path, settings_text) = text("settings")?;
        write(&settings_path, &settings_text)?;
        // writeShellApplication's interpreter line.
        let (setup_script, setup_text) = text("setup")?;
        write_executable(&setup_script, &format!("#!/usr/bin/env bash\n{setup_text}"))?;
        let (backup_script, backup_text) = text("backup")?;
        write_executable(
            &backup_script,
            &format!("#!/usr/bin/env bash\n{backup_text}"),
        )?;

        // What systemd does for LoadCredential=: a private copy of each file under
        // its credential name.
        let credentials = root.join("credentials");
        fs::create_dir_all(&credentials).map_err(|e| Stop::Fail(e.to_string()))?;
        let load_credential = config["loadCredential"]
            .as_array()
            .ok_or_else(|| Stop::Fail("the evaluation has no loadCredential".into()))?;
        for entry in load_credential {
            let Some((id, source)) = entry.as_str().and_then(|e| e.split_once(':')) else {
                return fail(format!("LoadCredential entry {entry} is not name:path"));
            };
            fs::copy(source, credentials.join(id))
                .map_err(|e| Stop::Fail(format!("credential {id} from {source}: {e}")))?;
        }

        let mut environment: BTreeMap<String, String> = config["environment"]
            .as_object()
            .map(|env| {
                env.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        if environment
            .get("BITPOLL_SECRET_KEY_CREDENTIAL")
            .map(String::as_str)
            != Some("secret_key")
        {
            return fail("the configured SECRET_KEY does not reach the service as a credential");
        }
        environment.insert(
            "CREDENTIALS_DIRECTORY".to_string(),
            credentials.to_string_lossy().into_owned(),
        );
        if environment.get("BITPOLL_SETTINGS_FILE")
            != Some(&settings_path.to_string_lossy().into_owned())
        {
            return fail("the service does not read the rendered settings file");
        }
        let stats_socket = PathBuf::from(
            config["statsSocket"]
                .as_str()
                .ok_or_else(|| Stop::Fail("the evaluation has no statsSocket".into()))?,
        );
        let exec_start = config["execStart"]
            .as_str()
            .ok_or_else(|| Stop::Fail("the evaluation has no execStart".into()))?
            .to_string();
        let server_args: Vec<String> = config["serverArgs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if server_args.is_empty() {
            return fail("the evaluation has no serverArgs");
        }

        // The package's two commands, as package.nix's wrappers make them, with the
        // lock's interpreter and uWSGI.
        let app_q = shell_quote(&app.to_string_lossy());
        write_executable(
            &package.join("bin/bitpoll-manage"),
            &format!(
                "#!/bin/sh\nexport DJANGO_SETTINGS_MODULE=bitpoll.settings\nexport LANG=\"${{LANG:-C.UTF-8}}\"\ncd {app_q}\nexec {} {app_q}/manage.py \"$@\"\n",
                shell_quote(&p.venv.join("bin/python").to_string_lossy()),
            ),
        )?;
        write_executable(
            &package.join("bin/bitpoll-server"),
            &format!(
                "#!/bin/sh\nexport DJANGO_SETTINGS_MODULE=bitpoll.settings\nexport LANG=\"${{LANG:-C.UTF-8}}\"\nstatic_root=${{BITPOLL_STATIC_ROOT:-{app_q}/static}}\nexec {} {} --static-map \"/static=$static_root\" \"$@\"\n",
                shell_quote(&p.venv.join("bin/uwsgi").to_string_lossy()),
                server_args.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" "),
            ),
        )?;

        let mut path_prefix = vec![package.join("bin")];
        if db.kind == Database::Postgresql {
            path_prefix.push(pg_bindir()?);
        }
        Ok(Instance {
            name: name.to_string(),
            data_dir: data_dir.to_path_buf(),
            package,
            port,
            environment,
            exec_start,
            stats_socket,
            setup_script,
            backup_script,
            logs,
            path_prefix,
        })
    }

    /// A command with the service's environment, as systemd would start it.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        let mut path = self.path_prefix.clone();
        path.extend(env::split_paths(&env::var_os("PATH").unwrap_or_default()));
        cmd.envs(&self.environment)
            .env(
                "PATH",
                env::join_paths(path).expect("PATH entries have no colon"),
            )
            .current_dir(&self.package);
        cmd
    }

    /// The setup unit: keys, migrate, collectstatic, compilemessages.
    fn setup(&self) -> Step<()> {
        run_step(
            &format!(
                "{}: setup unit (keys, migrate, collectstatic, compilemessages)",
                self.name
            ),
            &mut self.command(&self.setup_script),
            &self.logs.join("setup.log"),
            Duration::from_secs(600),
        )
    }

    fn backup(&self) -> Step<PathBuf> {
        run_step(
            &format!("{}: backup script", self.name),
            &mut self.command(&self.backup_script),
            &self.logs.join("backup.log"),
            Duration::from_secs(300),
        )?;
        let mut written: Vec<PathBuf> = fs::read_dir(self.data_dir.join("backups"))
            .map_err(|e| Stop::Fail(format!("no backups directory: {e}")))?
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.is_dir())
            .collect();
        written.sort();
        written
            .pop()
            .ok_or_else(|| Stop::Fail("the backup script wrote no snapshot".into()))
    }

    /// What a monitoring agent reads from the statistics socket: one JSON document
    /// with a record per worker (tests/nix/e2e.nix asks for two).
    fn check_stats(&self, log: &Path) -> Step<()> {
        use std::io::Read;
        let mut text = String::new();
        std::os::unix::net::UnixStream::connect(&self.stats_socket)
            .and_then(|mut stream| stream.read_to_string(&mut text))
            .map_err(|e| {
                Stop::Fail(format!(
                    "{}: no statistics from {}: {e}\n{}",
                    self.name,
                    self.stats_socket.display(),
                    tail(log, 20)
                ))
            })?;
        let stats: Value = serde_json::from_str(&text).map_err(|e| {
            Stop::Fail(format!(
                "{}: statistics are not JSON ({e}): {text}",
                self.name
            ))
        })?;
        let workers = stats["workers"].as_array().map_or(0, Vec::len);
        if workers != 2 {
            return fail(format!(
                "{}: the statistics list {workers} workers, not 2: {text}",
                self.name
            ));
        }
        eprintln!(
            "step `{}: uWSGI statistics socket`: ok ({workers} workers)",
            self.name
        );
        Ok(())
    }

    /// The service's ExecStart, under a shell as systemd would split it.
    fn start(&self) -> Step<Server> {
        let log = self.logs.join(format!("server-{}.log", self.port));
        let mut child = Running::spawn(
            self.command("sh")
                .arg("-c")
                .arg(format!("exec {}", self.exec_start)),
            &log,
            None,
        )?;
        let started = Instant::now();
        let limit = Duration::from_secs(90);
        loop {
            if let Some(status) = child.exited() {
                return fail(format!(
                    "step `{}: start uWSGI` failed: the server exited ({status})\n{}",
                    self.name,
                    tail(&log, 40)
                ));
            }
            if let Ok(response) = Http::new(self.port).get("/") {
                if response.status != 0 {
                    break;
                }
            }
            if started.elapsed() > limit {
                return fail(format!(
                    "step `{}: start uWSGI` failed: no answer within {}s; killed\n{}",
                    self.name,
                    limit.as_secs(),
                    tail(&log, 40)
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        eprintln!(
            "step `{}: start uWSGI from the lock`: ok ({:.1}s)",
            self.name,
            started.elapsed().as_secs_f64()
        );
        self.check_stats(&log)?;
        Ok(Server {
            child,
            log,
            name: self.name.clone(),
        })
    }
}

/// A running uWSGI; killed with its workers when dropped, stopped cleanly by `stop`.
struct Server {
    child: Running,
    log: PathBuf,
    name: String,
}

impl Server {
    fn stop(mut self) -> Step<()> {
        // --die-on-term: SIGTERM shuts the master and its workers down.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.child.id().to_string()])
            .status();
        match self.child.wait_for(Duration::from_secs(30)) {
            Some(status) if status.success() => {
                eprintln!("step `{}: stop uWSGI`: ok", self.name);
                Ok(())
            }
            Some(status) => fail(format!(
                "step `{}: stop uWSGI` failed: it exited with {status}\n{}",
                self.name,
                tail(&self.log, 30)
            )),
            None => fail(format!(
                "step `{}: stop uWSGI` failed: still running 30s after SIGTERM; killed\n{}",
                self.name,
                tail(&self.log, 30)
            )),
        }
    }

    fn check(&self, step: &str, result: Step<()>) -> Step<()> {
        result.map_err(|stop| match stop {
            Stop::Fail(message) => Stop::Fail(format!(
                "step `{}: {step}` failed: {message}\n{}",
                self.name,
                tail(&self.log, 30)
            )),
            skip => skip,
        })?;
        eprintln!("step `{}: {step}`: ok", self.name);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// A small HTTP/1.0 client with a cookie jar: enough for a person's visit

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

struct Http {
    port: u16,
    cookies: BTreeMap<String, String>,
}

fn form_encode(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Http {
    fn new(port: u16) -> Http {
        Http {
            port,
            cookies: BTreeMap::new(),
        }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        form: Option<&[(&str, &str)]>,
    ) -> Result<Response, String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let mut head = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nUser-Agent: bitpoll-e2e\r\nAccept: text/html,*/*\r\nConnection: close\r\n",
            self.port
        );
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            head.push_str(&format!("Cookie: {}\r\n", jar.join("; ")));
        }
        let body = form.map(form_encode).unwrap_or_default();
        if form.is_some() {
            // What a browser sends with a form; Django checks it against CSRF_TRUSTED_ORIGINS.
            head.push_str(&format!(
                "Origin: {}\r\nReferer: {}{path}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                self.origin(),
                self.origin(),
                body.len()
            ));
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .and_then(|_| stream.write_all(body.as_bytes()))
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("a response without a header end")?;
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status line in {head:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        for (k, v) in &headers {
            if k.eq_ignore_ascii_case("set-cookie") {
                if let Some((name, value)) = v.split(';').next().and_then(|c| c.split_once('=')) {
                    self.cookies
                        .insert(name.trim().to_string(), value.trim().to_string());
                }
            }
        }
        Ok(Response {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        })
    }

    fn get(&mut self, path: &str) -> Result<Response, String> {
        self.request("GET", path, None)
    }

    fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Result<Response, String> {
        self.request("POST", path, Some(form))
    }
}

fn expect_status(what: &str, response: &Response, status: u16) -> Step<()> {
    if response.status == status {
        Ok(())
    } else {
        let body = response.text();
        let chars: Vec<char> = body.chars().collect();
        let end: String = chars[chars.len().saturating_sub(1500)..].iter().collect();
        fail(format!(
            "{what}: HTTP {} where {status} was expected\n{end}",
            response.status
        ))
    }
}

fn http<T>(what: &str, result: Result<T, String>) -> Step<T> {
    result.map_err(|e| Stop::Fail(format!("{what}: {e}")))
}

/// The value of the first `name="…" value="…"` hidden input of a page.
fn csrf_token(page: &str) -> Step<String> {
    let marker = "name=\"csrfmiddlewaretoken\" value=\"";
    let start = page
        .find(marker)
        .ok_or_else(|| Stop::Fail("the page has no form with a CSRF token".into()))?
        + marker.len();
    let end = page[start..]
        .find('"')
        .ok_or_else(|| Stop::Fail("unterminated CSRF token".into()))?;
    Ok(page[start..start + end].to_string())
}

/// Every `href="/static/….css"` of a page.
fn stylesheets(page: &str) -> Vec<String> {
    page.match_indices("href=\"/static/")
        .filter_map(|(at, _)| {
            let start = at + "href=\"".len();
            let end = page[start..].find('"')? + start;
            let href = &page[start..end];
            href.ends_with(".css").then(|| href.to_string())
        })
        .collect()
}

/// What a visit leaves behind, to be found again after a restore.
#[derive(Clone)]
struct Poll {
    slug: String,
    title: String,
    voter: String,
}

/// `GET /` and its stylesheets.
fn front_page(client: &mut Http) -> Step<String> {
    let index = http("GET /", client.get("/"))?;
    expect_status("GET /", &index, 200)?;
    let page = index.text();
    let sheets = stylesheets(&page);
    if sheets.is_empty() {
        return fail("GET /: the page references no stylesheet under /static/");
    }
    for sheet in &sheets {
        let css = http(&format!("GET {sheet}"), client.get(sheet))?;
        expect_status(&format!("GET {sheet}"), &css, 200)?;
        let kind = css.header("Content-Type").unwrap_or("");
        if !kind.starts_with("text/css") || css.body.len() < 100 {
            return fail(format!(
                "GET {sheet}: {} bytes of {kind:?}, not compiled CSS",
                css.body.len()
            ));
        }
    }
    Ok(page)
}

/// A person's visit: the front page, a new poll with two choices, one vote.
fn create_poll_and_vote(port: u16, poll: &Poll) -> Step<()> {
    let mut client = Http::new(port);
    let page = front_page(&mut client)?;
    let token = csrf_token(&page)?;

    let created = http(
        "POST / (create a poll)",
        client.post(
            "/",
            &[
                ("csrfmiddlewaretoken", &token),
                ("title", &poll.title),
                ("type", "universal"),
                ("url", &poll.slug),
                ("description", "Where shall we eat?"),
                ("anonymous_allowed", "on"),
            ],
        ),
    )?;
    expect_status("POST / (create a poll)", &created, 302)?;
    let choices_url = format!("/poll/{}/edit/choices/universal/", poll.slug);
    if created.header("Location") != Some(choices_url.as_str()) {
        return fail(format!(
            "creating the poll led to {:?}, not to {choices_url}",
            created.header("Location")
        ));
    }

    let form = http("GET the choice form", client.get(&choices_url))?;
    expect_status("GET the choice form", &form, 200)?;
    let token = csrf_token(&form.text())?;
    let saved = http(
        "POST the choices",
        client.post(
            &choices_url,
            &[
                ("csrfmiddlewaretoken", &token),
                ("choice_text", "Pizzeria"),
                ("choice_sort_key", "1"),
                ("choice_text", "Canteen"),
                ("choice_sort_key", "2"),
                ("next", "next"),
            ],
        ),
    )?;
    expect_status("POST the choices", &saved, 302)?;

    let poll_url = format!("/poll/{}/", poll.slug);
    let before = http("GET the poll", client.get(&poll_url))?;
    expect_status("GET the poll", &before, 200)?;
    let before = before.text();
    if !before.contains("Pizzeria") || before.contains(&poll.voter) {
        return fail("the new poll page lacks its choices or already shows the voter");
    }

    let vote_url = format!("/poll/{}/vote/", poll.slug);
    let vote_form = http("GET the vote form", client.get(&vote_url))?;
    expect_status("GET the vote form", &vote_form, 200)?;
    let vote_page = vote_form.text();
    let token = csrf_token(&vote_page)?;
    // Each choice's "yes" radio button: id="<choice>_<value>", name="<choice>".
    let marker = "title=\"yes\"><input type=\"radio\" id=\"";
    let yes: Vec<(String, String)> = vote_page
        .match_indices(marker)
        .filter_map(|(at, _)| {
            let rest = &vote_page[at + marker.len()..];
            let id = &rest[..rest.find('"')?];
            let (choice, value) = id.split_once('_')?;
            Some((choice.to_string(), value.to_string()))
        })
        .collect();
    if yes.len() != 2 {
        return fail(format!(
            "the vote form offers {} \"yes\" buttons, not one per choice",
            yes.len()
        ));
    }
    let mut fields: Vec<(&str, &str)> = vec![
        ("csrfmiddlewaretoken", &token),
        ("name", &poll.voter),
        ("comment", ""),
    ];
    fields.extend(yes.iter().map(|(c, v)| (c.as_str(), v.as_str())));
    let voted = http("POST the vote", client.post(&vote_url, &fields))?;
    expect_status("POST the vote", &voted, 302)?;

    poll_shows_vote(port, poll)
}

fn poll_shows_vote(port: u16, poll: &Poll) -> Step<()> {
    let mut client = Http::new(port);
    let url = format!("/poll/{}/", poll.slug);
    let page = http("GET the poll", client.get(&url))?;
    expect_status("GET the poll", &page, 200)?;
    let page = page.text();
    if !page.contains(&poll.title) || !page.contains(&poll.voter) {
        return fail(format!(
            "the poll page at {url} does not show the poll {:?} with the vote of {:?}",
            poll.title, poll.voter
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The scenarios

/// What a served instance leaves for its backup test.
struct Served {
    instance: Instance,
    poll: Poll,
    pg: Option<PgSetup>,
}

fn served(db: Database) -> Step<&'static Served> {
    static SQLITE: OnceLock<Result<Served, Stop>> = OnceLock::new();
    static POSTGRESQL: OnceLock<Result<Served, Stop>> = OnceLock::new();
    let cell = match db {
        Database::Sqlite => &SQLITE,
        Database::Postgresql => &POSTGRESQL,
    };
    cell.get_or_init(|| serve(db))
        .as_ref()
        .map_err(Clone::clone)
}

/// Set up an instance, start it, create a poll and a vote over HTTP, stop it.
fn serve(db: Database) -> Step<Served> {
    let p = prepared()?;
    let name = db.name();
    let poll = Poll {
        slug: format!("lunch-{name}"),
        title: format!("Lunch on {name} – Mittagessen"),
        voter: "Ada Lovelace".to_string(),
    };
    let pg = match db {
        Database::Sqlite => None,
        Database::Postgresql => {
            let pg = PgSetup::new()?;
            pg.init()?;
            Some(pg)
        }
    };
    let instance = serve_on(p, name, &poll, pg.as_ref())?;
    Ok(Served { instance, poll, pg })
}

fn serve_on(p: &Prepared, name: &str, poll: &Poll, pg: Option<&PgSetup>) -> Step<Instance> {
    let data_dir = work_dir().join(name).join("state");
    let pg_server = match pg {
        Some(pg) => {
            let server = pg.start()?;
            server.createdb("bitpoll")?;
            Some(server)
        }
        None => None,
    };
    let target = match &pg_server {
        Some(server) => server.target("bitpoll"),
        None => DbTarget::sqlite(),
    };
    let instance = Instance::new(p, name, &data_dir, &target)?;
    instance.setup()?;
    let server = instance.start()?;
    server.check(
        "GET / with compiled CSS, create a poll, vote, see the vote",
        create_poll_and_vote(instance.port, poll),
    )?;
    server.stop()?;
    if let Some(server) = pg_server {
        server.stop()?;
    }
    Ok(instance)
}

/// Run the module's backup script, restore what it wrote into a fresh state directory
/// (and, for PostgreSQL, a fresh database) as the documentation says, and find the poll.
fn backup_and_restore(db: Database) -> Step<()> {
    let p = prepared()?;
    let served = served(db)?;
    let name = format!("{}-restored", db.name());
    let pg_server = match &served.pg {
        Some(pg) => Some(pg.start()?),
        None => None,
    };

    // Outside systemd, with the instance's own environment and script.
    let snapshot = served.instance.backup()?;
    let expected: &[&str] = match db {
        Database::Sqlite => &["db.sqlite3.gz", "media.tar.gz"],
        Database::Postgresql => &["database.pgdump", "media.tar.gz"],
    };
    for file in expected {
        if !snapshot.join(file).is_file() {
            return fail(format!("the backup {} has no {file}", snapshot.display()));
        }
    }

    let fresh = work_dir().join(&name).join("state");
    fs::create_dir_all(fresh.join("secrets")).map_err(|e| Stop::Fail(e.to_string()))?;
    let logs = work_dir().join(&name).join("logs");
    fs::create_dir_all(&logs).map_err(|e| Stop::Fail(e.to_string()))?;
    // The keys are not in the backup: the operator restores them from where they are kept.
    // The generated encryption key lives in the state directory; the SECRET_KEY is a
    // configured file passed as a credential (each instance of this test has its own).
    fs::copy(
        served.instance.data_dir.join("secrets/encryption_key"),
        fresh.join("secrets/encryption_key"),
    )
    .map_err(|e| Stop::Fail(format!("copy encryption_key: {e}")))?;
    let target = match (&served.pg, &pg_server) {
        (Some(pg), Some(server)) => {
            server.createdb("bitpoll_restored")?;
            run_step(
                "pg_restore into a fresh database",
                pg.client_command("pg_restore", server.port)
                    .args(["--clean", "--if-exists", "--dbname", "bitpoll_restored"])
                    .arg(snapshot.join("database.pgdump")),
                &logs.join("pg_restore.log"),
                Duration::from_secs(300),
            )?;
            server.target("bitpoll_restored")
        }
        _ => {
            let mut gunzip = Command::new("sh");
            gunzip.arg("-c").arg(format!(
                "gunzip -c {} > {}",
                shell_quote(&snapshot.join("db.sqlite3.gz").to_string_lossy()),
                shell_quote(&fresh.join("db.sqlite3").to_string_lossy())
            ));
            run_step(
                "gunzip the SQLite database into a fresh state directory",
                &mut gunzip,
                &logs.join("gunzip.log"),
                Duration::from_secs(120),
            )?;
            DbTarget::sqlite()
        }
    };
    run_step(
        "unpack the media files",
        Command::new("tar")
            .arg("-C")
            .arg(&fresh)
            .arg("-xzf")
            .arg(snapshot.join("media.tar.gz")),
        &logs.join("media.log"),
        Duration::from_secs(120),
    )?;

    let restored = Instance::new(p, &name, &fresh, &target)?;
    restored.setup()?;
    let server = restored.start()?;
    server.check(
        "the restored instance shows the poll and its vote",
        poll_shows_vote(restored.port, &served.poll),
    )?;
    server.stop()?;
    if let Some(server) = pg_server {
        server.stop()?;
    }
    Ok(())
}

// The instance tests share one preparation and one cluster directory; running the two
// databases at once would only make the machine's two cores slower for both.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn e2e_lock_installs_with_every_hash_checked() {
    let _serial = serial();
    outcome(
        "e2e_lock_installs_with_every_hash_checked",
        prepared().map(|_| ()),
    );
}

#[test]
fn e2e_sqlite_serves_pages_and_stores_a_vote() {
    let _serial = serial();
    outcome(
        "e2e_sqlite_serves_pages_and_stores_a_vote",
        served(Database::Sqlite).map(|_| ()),
    );
}

#[test]
fn e2e_sqlite_backup_restores_the_poll() {
    let _serial = serial();
    outcome(
        "e2e_sqlite_backup_restores_the_poll",
        backup_and_restore(Database::Sqlite),
    );
}

#[test]
fn e2e_postgresql_serves_pages_and_stores_a_vote() {
    let _serial = serial();
    outcome(
        "e2e_postgresql_serves_pages_and_stores_a_vote",
        served(Database::Postgresql).map(|_| ()),
    );
}

#[test]
fn e2e_postgresql_backup_restores_the_poll() {
    let _serial = serial();
    outcome(
        "e2e_postgresql_backup_restores_the_poll",
        backup_and_restore(Database::Postgresql),
    );
}
