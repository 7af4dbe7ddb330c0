//! `bitpoll-lock index`: builds the nixpkgs index by evaluating a nixpkgs with
//! nix/nixpkgs-index.nix. How the nixpkgs identity is chosen is described in
//! docs/nixpkgs-index.md.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{anyhow, Context};
use bitpoll_nixpkgs::{Identity, Nixpkgs, NixpkgsIndex};
use clap::Args;
use sha2::{Digest, Sha256};

use crate::exit::bad_input;
use crate::DEFAULT_NIXPKGS_INDEX;

/// Embedded so the binary works from any directory, not only inside a checkout.
const EXPRESSION: &str = include_str!("../../../nix/nixpkgs-index.nix");

#[derive(Args, Debug)]
pub struct IndexArgs {
    /// The nixpkgs to evaluate: a directory or a flake reference. Default: the nixpkgs
    /// input locked in flake.lock.
    #[arg(long, value_name = "PATH|FLAKEREF")]
    pub nixpkgs: Option<String>,
    /// The interpreter attribute whose package set is indexed; `python3` is recorded as the
    /// versioned attribute it stands for.
    #[arg(long, value_name = "ATTR", default_value = "python3")]
    pub python: String,
    /// Nix system to evaluate for (default: the evaluator's own).
    #[arg(long, value_name = "SYSTEM")]
    pub system: Option<String>,
    /// Where to write the index.
    #[arg(short, long, value_name = "FILE", default_value = DEFAULT_NIXPKGS_INDEX)]
    pub output: PathBuf,
    /// The flake.lock that pins nixpkgs when --nixpkgs is not given.
    #[arg(long, value_name = "FILE", default_value = "flake.lock")]
    pub flake_lock: PathBuf,
    /// Do not instantiate each package. Several times faster, but `disabled` then only
    /// reflects meta.available, not nixpkgs' per-interpreter `disabled`.
    #[arg(long)]
    pub no_instantiate: bool,
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

pub fn run(args: IndexArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let (source, described) = choose_source(&args)?;
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
            common_args(&mut cmd, &args, "--argstr", "--arg");
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
            flake_eval(&call, &args)
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
            flake_eval(&call, &args)
        }
    };
    let program = cmd.get_program().to_string_lossy().into_owned();
    let output = match cmd.output() {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(bad_input(anyhow!(
            "`{program}` not found on PATH: `bitpoll-lock index` evaluates nixpkgs with the Nix \
                 evaluator. Install Nix (Debian and Ubuntu: `apt-get install nix-bin`) or pass an \
                 existing index to `update --nixpkgs-index FILE`"
        )))
        }
        Err(e) => return Err(anyhow!(e).context(format!("cannot run `{program}`"))),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(anyhow!(
            "evaluating {described} with `{program}` failed ({}):\n{}",
            output.status,
            tail.join("\n")
        ));
    }

    let evaluated: Evaluated = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("`{program}` printed something other than the index"))?;
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
        source: described.clone(),
    };
    let text = index.to_json();
    // The same checks `update` makes when it loads the file, before anything is replaced.
    let loaded = Nixpkgs::from_bytes(&args.output, text.as_bytes())
        .context("the evaluated index is not valid")?;
    bitpoll_lockfile::write_atomic(&args.output, text.as_bytes())
        .with_context(|| format!("writing {}", args.output.display()))?;
    if !quiet {
        let idx = &loaded.index;
        eprintln!(
            "wrote {}: {} packages, {} aliases of {} {} from nixpkgs {} in {:.2}s",
            args.output.display(),
            idx.packages.len(),
            idx.aliases.len(),
            idx.python.attr,
            idx.python.version,
            idx.nixpkgs.identity,
            started.elapsed().as_secs_f64()
        );
        note(
            &evaluated.thrown,
            "throws when read (removed packages and aliases)",
            "throw when read (removed packages and aliases)",
        );
        note(
            &evaluated.failed,
            "failed to evaluate and is not in the index",
            "failed to evaluate and are not in the index",
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(serde::Deserialize)]
struct Evaluated {
    index: NixpkgsIndex,
    revision: Option<String>,
    /// Attributes whose value throws: in nixpkgs mostly removed packages and aliases.
    #[serde(default)]
    thrown: Vec<String>,
    /// Python packages whose name, version or entry could not be evaluated.
    #[serde(default)]
    failed: Vec<String>,
}

fn note(attrs: &[String], one: &str, many: &str) {
    if attrs.is_empty() {
        return;
    }
    let shown: Vec<&str> = attrs.iter().take(10).map(String::as_str).collect();
    eprintln!(
        "note: {} {} {}: {}{}",
        attrs.len(),
        if attrs.len() == 1 {
            "attribute"
        } else {
            "attributes"
        },
        if attrs.len() == 1 { one } else { many },
        shown.join(", "),
        if attrs.len() > shown.len() {
            ", ..."
        } else {
            ""
        }
    );
}

fn choose_source(args: &IndexArgs) -> anyhow::Result<(Source, String)> {
    let python = &args.python;
    let Some(given) = &args.nixpkgs else {
        let flake_lock = &args.flake_lock;
        if !flake_lock.exists() {
            return Err(bad_input(anyhow!(
                "{} not found: without --nixpkgs the index is built from the flake's locked nixpkgs \
                 input. Run `nix flake lock` in the project root to create it, or pass \
                 --nixpkgs PATH|FLAKEREF",
                flake_lock.display()
            )));
        }
        let locked = crate::inputs::flake_nixpkgs_locked(flake_lock)?.ok_or_else(|| {
            bad_input(anyhow!(
                "{}: no locked nixpkgs input; run `nix flake lock`",
                flake_lock.display()
            ))
        })?;
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
            .with_context(|| format!("{given}: cannot resolve"))
            .map_err(bad_input)?;
        if !dir.join("default.nix").is_file() {
            return Err(bad_input(anyhow!(
                "--nixpkgs {given}: the directory has no default.nix, so it is not a nixpkgs"
            )));
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
    Err(bad_input(anyhow!(
        "--nixpkgs {given}: neither a directory nor a flake reference (such as github:OWNER/REPO/REV)"
    )))
}

/// `nix eval` with flakes enabled: the old evaluator Debian ships has them as an
/// experimental feature, and a newer one accepts the flag as a no-op.
fn flake_eval(call: &str, args: &IndexArgs) -> Command {
    let mut extra = String::from("{ pythonAttr = ");
    extra.push_str(&serde_json::to_string(&args.python).expect("a string serialises"));
    extra.push_str("; checkInstantiable = ");
    extra.push_str(if args.no_instantiate { "false" } else { "true" });
    if let Some(system) = &args.system {
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

fn common_args(cmd: &mut Command, args: &IndexArgs, argstr: &str, arg: &str) {
    cmd.arg(argstr).arg("pythonAttr").arg(&args.python);
    if let Some(system) = &args.system {
        cmd.arg(argstr).arg("system").arg(system);
    }
    if args.no_instantiate {
        cmd.arg(arg).arg("checkInstantiable").arg("false");
    }
}

/// A file name as a Nix path literal; JSON string escaping keeps odd names from breaking
/// out of the expression.
fn nix_path(path: &Path) -> anyhow::Result<String> {
    let s = path
        .to_str()
        .ok_or_else(|| anyhow!("{}: not UTF-8", path.display()))?;
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

/// What `update` says when the flake now pins a different nixpkgs than the index was
/// built from: the index, and any lock made from it, describe a nixpkgs the flake no
/// longer uses.
pub fn flake_drift(index: &NixpkgsIndex, flake_lock: &Path) -> Option<String> {
    let flake = crate::inputs::flake_nixpkgs_revision(flake_lock).ok()??;
    let built = index.nixpkgs.revision.as_deref();
    (built != Some(flake.as_str())).then(|| {
        format!(
            "{} pins nixpkgs {flake}, but the nixpkgs index was built from {}; run `bitpoll-lock index` to rebuild it",
            flake_lock.display(),
            built.unwrap_or(&index.nixpkgs.identity)
        )
    })
}

/// A private directory for the expression and its inputs, removed afterwards.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir =
            std::env::temp_dir().join(format!("bitpoll-lock-index-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self(dir))
    }

    fn write(&self, name: &str, text: &str) -> anyhow::Result<PathBuf> {
        let path = self.0.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
