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
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// pip's `--require-hashes` format.
    RequirementsTxt,
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
    }
    Ok(ExitCode::SUCCESS)
}
