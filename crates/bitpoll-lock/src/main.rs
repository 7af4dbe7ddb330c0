//! `bitpoll-lock`: the command line. Parsing arguments, choosing exit codes and printing are
//! all that happens here; the work is in the library crates.

mod audit;
mod check;
mod client;
mod diff;
mod exit;
mod export;
mod index;
mod lockref;
mod malloc;
mod progress;
mod update;
mod usage;
mod verify;
mod why;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Default locations of the committed inputs, relative to the project root.
pub const DEFAULT_REQUIREMENTS: [&str; 2] = [
    "inputs/requirements.in",
    "inputs/requirements-production.in",
];
pub const DEFAULT_LOCK: &str = "lock/bitpoll.lock.json";
pub const DEFAULT_NIXPKGS_INDEX: &str = "lock/nixpkgs-index.json";
pub const DEFAULT_POLICY: &str = "lock/policy.toml";

#[derive(Parser)]
#[command(
    name = "bitpoll-lock",
    version,
    about = "Lock Bitpoll's Python environment for Nix"
)]
struct Cli {
    /// Print nothing but errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Resolve the requirements and write the lock.
    // Boxed: its options make it several times larger than the other commands.
    Update(Box<update::UpdateArgs>),
    /// Exit 0 if the lock matches its inputs, 1 (with the reason) if not. No network.
    Check(check::CheckArgs),
    /// What changed between two locks (files or git revisions), with what needs a second look.
    Diff(diff::DiffArgs),
    /// Known advisories for every pinned version; exit 1 at or above --fail-on.
    Audit(audit::AuditArgs),
    /// Every path from the top-level requirements to a package, per target.
    Why(why::WhyArgs),
    /// Write the lock in another format (pip's requirements with hashes).
    Export(export::ExportArgs),
    /// Download every pinned index artifact and re-hash it; exit 1 on any mismatch.
    Verify(verify::VerifyArgs),
    /// Build the nixpkgs index by evaluating a nixpkgs (needs the Nix evaluator).
    Index(index::IndexArgs),
    /// Convert a nixpkgs package subset description into the nixpkgs index format.
    ImportSubset {
        /// The subset JSON (the nixpkgs package subset description).
        input: PathBuf,
        /// Where to write the index.
        #[arg(short, long, default_value = DEFAULT_NIXPKGS_INDEX)]
        output: PathBuf,
        #[arg(long, default_value = "python313")]
        python_attr: String,
        /// Full version of that Python.
        #[arg(long, default_value = "3.13.0")]
        python_version: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any thread starts. An offline update is bound by its own CPU, where fewer
    // arenas cost time (see the module).
    if !matches!(&cli.command, Command::Update(args) if args.index.offline) {
        malloc::fewer_arenas();
    }
    let result = match cli.command {
        Command::Update(args) => update::run(*args, cli.quiet),
        Command::Check(args) => check::run(args, cli.quiet),
        Command::Diff(args) => diff::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Why(args) => why::run(args),
        Command::Export(args) => export::run(args),
        Command::Verify(args) => verify::run(args, cli.quiet),
        Command::Index(args) => index::run(args, cli.quiet),
        Command::ImportSubset {
            input,
            output,
            python_attr,
            python_version,
        } => import_subset(&input, &output, &python_attr, &python_version),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", err.render());
            ExitCode::from(err.code())
        }
    }
}

fn import_subset(
    input: &std::path::Path,
    output: &std::path::Path,
    attr: &str,
    version: &str,
) -> exit::Result<ExitCode> {
    use exit::Context;
    let text = std::fs::read_to_string(input).map_err(|e| {
        exit::bad_input(anyhow::Error::new(e).context(format!("{}: cannot read", input.display())))
    })?;
    let index = bitpoll_nixpkgs::import_subset(&text, attr, version)
        .with_context(|| input.display().to_string())?;
    bitpoll_lockfile::write_atomic(output, index.to_json().as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
