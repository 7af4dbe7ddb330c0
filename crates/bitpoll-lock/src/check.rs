//! `bitpoll-lock check`: is the lock up to date with its inputs? Reads files only.

use std::path::PathBuf;
use std::process::ExitCode;

use bitpoll_lockfile::Lock;
use clap::Args;

use crate::DEFAULT_LOCK;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The lock to check.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_LOCK)]
    pub lock: PathBuf,
    /// flake.lock whose nixpkgs revision the lock should have been resolved against.
    #[arg(long, value_name = "FILE", default_value = "flake.lock")]
    pub flake_lock: PathBuf,
}

pub fn run(args: CheckArgs, quiet: bool) -> crate::exit::Result<ExitCode> {
    let lock = Lock::read(&args.lock)?;
    let reasons = bitpoll_inputs::stale_reasons(&lock, &args.flake_lock)?;
    if reasons.is_empty() {
        if !quiet {
            eprintln!("{} is up to date", args.lock.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} is out of date:", args.lock.display());
    for r in &reasons {
        println!("  - {r}");
    }
    println!("run `bitpoll-lock update` to refresh it");
    Ok(ExitCode::from(1))
}
