//! Builds the nixpkgs index (`bitpoll-lock index`) by evaluating a nixpkgs with
//! `nix/nixpkgs-index.nix`: a directory with `nix-instantiate`, a flake reference or the
//! flake.lock's nixpkgs input with `nix eval`. How the nixpkgs identity is chosen is
//! described in docs/nixpkgs-index.md.
//!
//! The one crate that runs the Nix evaluator. It must not resolve anything, and must not
//! replace an index with one that `update` would refuse to load: the result is checked as
//! `update` checks it, then written by rename.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

use bitpoll_error_class::{Classify, ErrorClass};
use bitpoll_lockfile::LockError;
use bitpoll_nixpkgs::flake::FlakeLockError;
use bitpoll_nixpkgs::{Identity, IndexError, Nixpkgs, NixpkgsIndex};
use sha2::{Digest, Sha256};

/// Embedded so the binary works from any directory, not only inside a checkout.
const EXPRESSION: &str = include_str!("../../../nix/nixpkgs-index.nix");

/// What to evaluate, and where the index goes.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// A directory or a flake reference; `None` takes the nixpkgs input locked in
    /// `flake_lock`.
    pub nixpkgs: Option<String>,
    /// The interpreter attribute whose package set is indexed.
    pub python: String,
    /// The Nix system to evaluate for (`None`: the evaluator's own).
    pub system: Option<String>,
    pub output: PathBuf,
    pub flake_lock: PathBuf,
    /// Skip instantiating each package (faster; `disabled` then only reflects
    /// meta.available).
    pub no_instantiate: bool,
}

/// The index written, and what the evaluation left out.
pub struct Built {
    pub index: Nixpkgs,
    /// Attributes whose value throws: in nixpkgs mostly removed packages and aliases.
    pub thrown: Vec<String>,
    /// Python packages whose name, version or entry could not be evaluated.
    pub failed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(
        "`{program}` not found on PATH: `bitpoll-lock index` evaluates nixpkgs with the Nix \
         evaluator. Install Nix (Debian and Ubuntu: `apt-get install nix-bin`) or pass an \
         existing index to `update --nixpkgs-index FILE`"
    )]
    NoEvaluator { program: String },
    #[error("cannot run `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("evaluating {described} with `{program}` failed ({status}):\n{tail}")]
    Evaluation {
        described: String,
        program: String,
        status: String,
        tail: String,
    },
    #[error("`{program}` printed something other than the index")]
    Output {
        program: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the evaluated index is not valid")]
    Invalid(#[source] IndexError),
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: LockError,
    },
    #[error(
        "{} not found: without --nixpkgs the index is built from the flake's locked nixpkgs \
         input. Run `nix flake lock` in the project root to create it, or pass \
         --nixpkgs PATH|FLAKEREF",
        .0.display()
    )]
    NoFlakeLock(PathBuf),
    #[error(transparent)]
    FlakeLock(#[from] FlakeLockError),
    #[error("{}: no locked nixpkgs input; run `nix flake lock`", .0.display())]
    NoLockedNixpkgs(PathBuf),
    #[error("{given}: cannot resolve")]
    Unresolvable {
        given: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--nixpkgs {0}: the directory has no default.nix, so it is not a nixpkgs")]
    NotNixpkgs(String),
    #[error(
        "--nixpkgs {0}: neither a directory nor a flake reference (such as github:OWNER/REPO/REV)"
    )]
    NotASource(String),
    #[error("{}: not UTF-8", .0.display())]
    NotUtf8(PathBuf),
    #[error("cannot {what} {}", path.display())]
    Scratch {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the caller named (a nixpkgs, a flake.lock, an output path) is the input's; an
/// evaluator that fails or answers nonsense, and the scratch space, are the machine's.
impl Classify for EvalError {
    fn class(&self) -> ErrorClass {
        match self {
            EvalError::NoEvaluator { .. }
            | EvalError::Invalid(_)
            | EvalError::NoFlakeLock(_)
            | EvalError::NoLockedNixpkgs(_)
            | EvalError::Unresolvable { .. }
            | EvalError::NotNixpkgs(_)
            | EvalError::NotASource(_) => ErrorClass::BadInput,
            EvalError::Write { source, .. } => source.class(),
            EvalError::FlakeLock(e) => e.class(),
            EvalError::Spawn { .. }
            | EvalError::Evaluation { .. }
            | EvalError::Output { .. }
            | EvalError::NotUtf8(_)
            | EvalError::Scratch { .. } => ErrorClass::Unavailable,
        }
    }
}

/// Where the nixpkgs comes from, and so which evaluator call reads it.
enum Source {
    Directory(PathBuf),
    FlakeRef(String),
    /// The `locked` node of flake.lock's nixpkgs input.
    FlakeLock {
        locked: serde_json::Value,
        revision: Option<String>,
    },
}

/// Evaluates the nixpkgs `options` names and writes its index to `options.output`.
pub fn build_index(options: &IndexOptions) -> Result<Built, EvalError> {
    let (source, described) = choose_source(options)?;
    let scratch = Scratch::new()?;
    let expr = scratch.write("nixpkgs-index.nix", EXPRESSION)?;
    let mut cmd = match &source {
        Source::Directory(dir) => {
            let mut cmd = Command::new("nix-instantiate");
            cmd.args(["--eval", "--strict", "--json"])
                .arg(&expr)
                .arg("--argstr")
                .arg("nixpkgs")
                .arg(dir);
            common_args(&mut cmd, options, "--argstr", "--arg");
            cmd
        }
        Source::FlakeRef(reference) => {
            let file = scratch.write(
                "flakeref.json",
                &serde_json::to_string(reference).expect("a string serialises"),
            )?;
            let call = format!(
                "let f = builtins.getFlake (builtins.fromJSON (builtins.readFile {})); \
                 in import {} ({{ nixpkgs = f.outPath; revision = f.rev or null; }} // ARGS)",
                nix_path(&file)?,
                nix_path(&expr)?,
            );
            flake_eval(&call, options)
        }
        Source::FlakeLock { locked, revision } => {
            let file = scratch.write("locked.json", &locked.to_string())?;
            let call = format!(
                "import {} ({{ nixpkgs = builtins.fetchTree (builtins.fromJSON (builtins.readFile {})); \
                 revision = {}; }} // ARGS)",
                nix_path(&expr)?,
                nix_path(&file)?,
                match revision {
                    Some(r) => serde_json::to_string(r).expect("a string serialises"),
                    None => "null".into(),
                },
            );
            flake_eval(&call, options)
        }
    };
    let program = cmd.get_program().to_string_lossy().into_owned();
    let output = match cmd.output() {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(EvalError::NoEvaluator { program });
        }
        Err(source) => return Err(EvalError::Spawn { program, source }),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(EvalError::Evaluation {
            described,
            program,
            status: output.status.to_string(),
            tail: tail.join("\n"),
        });
    }

    let evaluated: Evaluated = serde_json::from_slice(&output.stdout)
        .map_err(|source| EvalError::Output { program, source })?;
    let mut index = evaluated.index;
    let revision = match &source {
        Source::Directory(dir) => directory_revision(dir).or(evaluated.revision),
        Source::FlakeRef(_) | Source::FlakeLock { .. } => evaluated.revision,
    };
    index.nixpkgs = Identity {
        identity: match &revision {
            Some(r) => r.clone(),
            None => content_identity(&index),
        },
        revision,
        source: described,
    };
    let text = index.to_json();
    // The same checks `update` makes when it loads the file, before anything is replaced.
    let loaded =
        Nixpkgs::from_bytes(&options.output, text.as_bytes()).map_err(EvalError::Invalid)?;
    bitpoll_lockfile::write_atomic(&options.output, text.as_bytes()).map_err(|source| {
        EvalError::Write {
            path: options.output.clone(),
            source,
        }
    })?;
    Ok(Built {
        index: loaded,
        thrown: evaluated.thrown,
        failed: evaluated.failed,
    })
}

#[derive(serde::Deserialize)]
struct Evaluated {
    index: NixpkgsIndex,
    revision: Option<String>,
    #[serde(default)]
    thrown: Vec<String>,
    #[serde(default)]
    failed: Vec<String>,
}

fn choose_source(options: &IndexOptions) -> Result<(Source, String), EvalError> {
    let python = &options.python;
    let Some(given) = &options.nixpkgs else {
        let flake_lock = &options.flake_lock;
        if !flake_lock.exists() {
            return Err(EvalError::NoFlakeLock(flake_lock.clone()));
        }
        let locked = bitpoll_nixpkgs::flake::flake_nixpkgs_locked(flake_lock)?
            .ok_or_else(|| EvalError::NoLockedNixpkgs(flake_lock.clone()))?;
        let revision = locked["rev"].as_str().map(str::to_string);
        return Ok((
            Source::FlakeLock { locked, revision },
            format!("the nixpkgs input of flake.lock, {python}"),
        ));
    };
    let path = Path::new(given);
    if path.is_dir() {
        let dir = path
            .canonicalize()
            .map_err(|source| EvalError::Unresolvable {
                given: given.clone(),
                source,
            })?;
        if !dir.join("default.nix").is_file() {
            return Err(EvalError::NotNixpkgs(given.clone()));
        }
        // The argument as given, not the absolute path: the index must not differ between
        // two checkouts of the same project.
        return Ok((
            Source::Directory(dir),
            format!("--nixpkgs {given}, {python}"),
        ));
    }
    if given.contains(':') {
        return Ok((
            Source::FlakeRef(given.clone()),
            format!("--nixpkgs {given}, {python}"),
        ));
    }
    Err(EvalError::NotASource(given.clone()))
}

/// `nix eval` with flakes enabled: the old evaluator Debian ships has them as an
/// experimental feature, and a newer one accepts the flag as a no-op.
fn flake_eval(call: &str, options: &IndexOptions) -> Command {
    let mut extra = String::from("{ pythonAttr = ");
    extra.push_str(&serde_json::to_string(&options.python).expect("a string serialises"));
    extra.push_str("; checkInstantiable = ");
    extra.push_str(if options.no_instantiate {
        "false"
    } else {
        "true"
    });
    if let Some(system) = &options.system {
        extra.push_str("; system = ");
        extra.push_str(&serde_json::to_string(system).expect("a string serialises"));
    }
    extra.push_str("; }");
    let mut cmd = Command::new("nix");
    cmd.args([
        "--extra-experimental-features",
        "nix-command flakes",
        "eval",
        "--impure",
        "--json",
        "--expr",
    ])
    .arg(call.replace("ARGS", &extra));
    cmd
}

fn common_args(cmd: &mut Command, options: &IndexOptions, argstr: &str, arg: &str) {
    cmd.arg(argstr).arg("pythonAttr").arg(&options.python);
    if let Some(system) = &options.system {
        cmd.arg(argstr).arg("system").arg(system);
    }
    if options.no_instantiate {
        cmd.arg(arg).arg("checkInstantiable").arg("false");
    }
}

/// A file name as a Nix path literal; JSON string escaping keeps odd names from breaking
/// out of the expression.
fn nix_path(path: &Path) -> Result<String, EvalError> {
    let s = path
        .to_str()
        .ok_or_else(|| EvalError::NotUtf8(path.to_path_buf()))?;
    Ok(format!(
        "(/. + {})",
        serde_json::to_string(s).expect("a string serialises")
    ))
}

/// The git revision of a nixpkgs checkout (`.git`) or of a nixpkgs tarball
/// (`.git-revision`). Only the directory itself counts: a nixpkgs-shaped tree inside some
/// other repository has no revision of its own.
fn directory_revision(dir: &Path) -> Option<String> {
    if dir.join(".git").exists() {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["rev-parse", "--verify", "HEAD"])
            .output()
            .ok()?;
        let rev = String::from_utf8(out.stdout).ok()?.trim().to_string();
        if out.status.success() && is_revision(&rev) {
            return Some(rev);
        }
    }
    let rev = std::fs::read_to_string(dir.join(".git-revision")).ok()?;
    let rev = rev.trim();
    is_revision(rev).then(|| rev.to_string())
}

fn is_revision(s: &str) -> bool {
    (7..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// For a nixpkgs with no revision: a hash of what was evaluated (python, aliases, packages),
/// so equal package sets share an identity and any change to them gives a new one.
fn content_identity(index: &NixpkgsIndex) -> String {
    let content = serde_json::json!({
        "python": index.python,
        "aliases": index.aliases,
        "packages": index.packages,
    });
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(content.to_string().as_bytes()))
    )
}

/// A private directory for the expression and its inputs, removed afterwards.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self, EvalError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir =
            std::env::temp_dir().join(format!("bitpoll-lock-index-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| EvalError::Scratch {
            what: "create",
            path: dir.clone(),
            source,
        })?;
        Ok(Self(dir))
    }

    fn write(&self, name: &str, text: &str) -> Result<PathBuf, EvalError> {
        let path = self.0.join(name);
        std::fs::write(&path, text).map_err(|source| EvalError::Scratch {
            what: "write",
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
