//! `bitpoll-lock export`: the lock for tools outside Nix.

use std::path::PathBuf;
use std::process::ExitCode;

use bitpoll_lockfile::Lock;
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

pub fn run(args: ExportArgs) -> crate::exit::Result<ExitCode> {
    let lock = Lock::read(&args.lock)?;
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
        ExportFormat::RequirementsTxt => {
            print!("{}", bitpoll_export::requirements_txt(&lock, &args.system))
        }
        ExportFormat::Pylock => {
            let client = args.index.open()?;
            let index = bitpoll_client::strip_credentials(client.index_url().url()).to_string();
            print!(
                "{}",
                bitpoll_export::pylock(&lock, &args.system, &client, &index)?
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
