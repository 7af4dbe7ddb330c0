//! `bitpoll-lock index`: builds the nixpkgs index by evaluating a nixpkgs
//! (`bitpoll-nixpkgs-eval`), and says what it wrote.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use bitpoll_nixpkgs_eval::IndexOptions;
use clap::Args;

use crate::DEFAULT_NIXPKGS_INDEX;

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

pub fn run(args: IndexArgs, quiet: bool) -> crate::exit::Result<ExitCode> {
    let started = Instant::now();
    let built = bitpoll_nixpkgs_eval::build_index(&IndexOptions {
        nixpkgs: args.nixpkgs,
        python: args.python,
        system: args.system,
        output: args.output.clone(),
        flake_lock: args.flake_lock,
        no_instantiate: args.no_instantiate,
    })?;
    if !quiet {
        let idx = &built.index.index;
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
            &built.thrown,
            "throws when read (removed packages and aliases)",
            "throw when read (removed packages and aliases)",
        );
        note(
            &built.failed,
            "failed to evaluate and is not in the index",
            "failed to evaluate and are not in the index",
        );
    }
    Ok(ExitCode::SUCCESS)
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
