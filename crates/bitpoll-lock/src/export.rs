//! `bitpoll-lock export`: the lock for tools outside Nix.

use std::path::PathBuf;
use std::process::ExitCode;

use bitpoll_lockfile::{Lock, Source};
use clap::{Args, ValueEnum};

use crate::exit::bad_input;
use crate::DEFAULT_LOCK;

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value_t = ExportFormat::RequirementsTxt)]
    pub format: ExportFormat,
    /// The target to export for.
    #[arg(long, value_name = "SYSTEM", default_value = "x86_64-linux")]
    pub system: String,
    #[arg(long, value_name = "FILE", default_value = DEFAULT_LOCK)]
    pub lock: PathBuf,
    /// The index to look the files' URLs up on (pylock only: the lock itself records none).
    #[command(flatten)]
    pub index: crate::client::IndexArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// pip's `--require-hashes` format.
    RequirementsTxt,
    /// PEP 751 `pylock.toml` for one target.
    Pylock,
}

/// `name==version` with the target's artifact hashes, for every Python-index package of the
/// target. nixpkgs-served packages have no index hashes in the lock; they are listed as
/// comments so the output stays installable with `--require-hashes`.
pub fn requirements_txt(lock: &Lock, target: &str) -> String {
    let mut out = format!(
        "# Exported by bitpoll-lock for {target}; install with pip --require-hashes --no-deps\n"
    );
    let pkgs = lock.packages_for(target);
    let mut nix = Vec::new();
    for p in pkgs.values() {
        match p.source {
            Source::Index => {
                out.push_str(&format!("{}=={}", p.name, p.version));
                for a in p
                    .artifacts
                    .iter()
                    .filter(|a| a.targets.iter().any(|t| t == target))
                {
                    out.push_str(&format!(" \\\n    --hash=sha256:{}", a.sha256));
                }
                out.push('\n');
            }
            Source::Nixpkgs => nix.push(format!(
                "#   {}=={} (attribute {})",
                p.name,
                p.version,
                p.attr.as_deref().unwrap_or("?")
            )),
        }
    }
    if !nix.is_empty() {
        out.push_str("# Provided by nixpkgs, not pinned here:\n");
        for line in nix {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let lock = Lock::read(&args.lock).map_err(bad_input)?;
    if !lock.targets.iter().any(|t| t.name == args.system) {
        let known: Vec<&str> = lock.targets.iter().map(|t| t.name.as_str()).collect();
        return Err(bad_input(anyhow::anyhow!(
            "{} has no target {} (it has {})",
            args.lock.display(),
            args.system,
            known.join(", ")
        )));
    }
    match args.format {
        ExportFormat::RequirementsTxt => print!("{}", requirements_txt(&lock, &args.system)),
        ExportFormat::Pylock => {
            let client = args.index.open()?;
            print!("{}", pylock(&lock, &args.system, &client)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(serde::Serialize)]
struct Pylock {
    #[serde(rename = "lock-version")]
    lock_version: &'static str,
    environments: Vec<String>,
    #[serde(rename = "requires-python")]
    requires_python: String,
    #[serde(rename = "created-by")]
    created_by: &'static str,
    packages: Vec<PylockPackage>,
}

#[derive(serde::Serialize)]
struct PylockPackage {
    name: String,
    version: String,
    index: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    wheels: Vec<PylockFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sdist: Option<PylockFile>,
}

#[derive(serde::Serialize)]
struct PylockFile {
    name: String,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    hashes: std::collections::BTreeMap<&'static str, String>,
}

/// PEP 751 for one target. The lock names no hosts, so file URLs are looked up on the index
/// (through the cache); credentials are stripped from every URL written.
pub fn pylock(
    lock: &Lock,
    target: &str,
    client: &bitpoll_client::IndexClient,
) -> anyhow::Result<String> {
    let info = lock
        .targets
        .iter()
        .find(|t| t.name == target)
        .expect("checked by the caller");
    let m = |k: &str| info.markers.get(k).cloned().unwrap_or_default();
    let environment = format!(
        "sys_platform == '{}' and platform_machine == '{}' and implementation_name == '{}'",
        m("sys_platform"),
        m("platform_machine"),
        m("implementation_name")
    );
    let index = bitpoll_client::strip_credentials(client.index_url().url()).to_string();
    let mut packages = Vec::new();
    let mut nix = Vec::new();
    for p in lock.packages_for(target).values() {
        if p.source == Source::Nixpkgs {
            nix.push(format!(
                "#   {}=={} (attribute {})",
                p.name,
                p.version,
                p.attr.as_deref().unwrap_or("?")
            ));
            continue;
        }
        let name: pep508_rs::PackageName = p.name.parse()?;
        let page = client.project(&name)?;
        let mut pkg = PylockPackage {
            name: p.name.clone(),
            version: p.version.clone(),
            index: index.clone(),
            wheels: Vec::new(),
            sdist: None,
        };
        for a in p
            .artifacts
            .iter()
            .filter(|a| a.targets.iter().any(|t| t == target))
        {
            let file = page
                .files
                .iter()
                .find(|f| *f.filename == *a.filename)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{} is no longer listed by the index; run `bitpoll-lock update`",
                        a.filename
                    )
                })?;
            let entry = PylockFile {
                name: a.filename.clone(),
                url: bitpoll_client::strip_credentials(&file.url()).to_string(),
                size: a.size,
                hashes: [("sha256", a.sha256.clone())].into(),
            };
            match a.kind {
                bitpoll_lockfile::ArtifactKind::Wheel => pkg.wheels.push(entry),
                bitpoll_lockfile::ArtifactKind::Sdist => pkg.sdist = Some(entry),
            }
        }
        packages.push(pkg);
    }
    let doc = Pylock {
        lock_version: "1.0",
        environments: vec![environment],
        requires_python: format!("=={}.*", m("python_version")),
        created_by: "bitpoll-lock",
        packages,
    };
    let mut out = format!("# Exported by bitpoll-lock for {target}.\n");
    if !nix.is_empty() {
        out.push_str("# Provided by nixpkgs, not pinned here:\n");
        for line in nix {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out.push_str(&toml::to_string(&doc)?);
    Ok(out)
}
