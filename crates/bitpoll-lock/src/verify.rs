//! `bitpoll-lock verify`: download every pinned Python-index artifact and re-hash it.

use std::path::PathBuf;
use std::process::ExitCode;

use bitpoll_client::IndexClient;
use bitpoll_lockfile::{Lock, Source};
use clap::Args;
use sha2::{Digest, Sha256};

use crate::DEFAULT_LOCK;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[arg(long, value_name = "FILE", default_value = DEFAULT_LOCK)]
    pub lock: PathBuf,
    #[command(flatten)]
    pub index: crate::client::IndexArgs,
}

pub fn run(args: VerifyArgs, quiet: bool) -> crate::exit::Result<ExitCode> {
    let lock = Lock::read(&args.lock)?;
    let client = args.index.open()?;
    // Build packages too: what builds an sdist is as much a pin as what runs.
    let artifacts: Vec<(&str, &bitpoll_lockfile::Artifact)> = lock
        .packages
        .iter()
        .chain(&lock.build_packages)
        .filter(|p| p.source == Source::Index)
        .flat_map(|p| p.artifacts.iter().map(move |a| (p.name.as_str(), a)))
        .collect();
    // Downloads wait on the network, not the CPU: one thread per artifact, the client bounds
    // how many requests are in flight.
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = artifacts
            .iter()
            .map(|(name, art)| {
                let client = &client;
                s.spawn(move || check_one(client, name, art))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("verifier thread panicked".into()))
            })
            .collect()
    });
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    for f in &failures {
        println!("MISMATCH {f}");
    }
    if !quiet {
        eprintln!(
            "verified {} artifacts: {} ok, {} failed",
            results.len(),
            results.len() - failures.len(),
            failures.len()
        );
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn check_one(
    client: &IndexClient,
    name: &str,
    art: &bitpoll_lockfile::Artifact,
) -> Result<(), String> {
    let pkg: pep508_rs::PackageName = name.parse().map_err(|e| format!("{name}: {e}"))?;
    let page = client
        .project(&pkg)
        .map_err(|e| format!("{}: {e}", art.filename))?;
    let file = page
        .files
        .iter()
        .find(|f| *f.filename == *art.filename)
        .ok_or_else(|| format!("{}: no longer listed by the index", art.filename))?;
    // Hash the bytes ourselves against the lock, whatever the index claims today.
    let mut unchecked = (**file).clone();
    unchecked.sha256 = None;
    let bytes = client
        .download(&unchecked)
        .map_err(|e| format!("{}: {e}", art.filename))?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != art.sha256 {
        return Err(format!(
            "{}: lock has sha256 {}, the index served {actual}",
            art.filename, art.sha256
        ));
    }
    Ok(())
}
