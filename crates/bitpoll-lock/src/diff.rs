//! `bitpoll-lock diff OLD NEW`: what a reviewer must know about a lock change, with the
//! changes that deserve a second look flagged.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::DEFAULT_LOCK;

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The old lock: a file, or a git revision (`HEAD~1`, `origin/main`).
    pub old: String,
    /// The new lock: a file, or a git revision. Default: the lock file in the working tree.
    pub new: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Path of the lock inside a git revision, and the default NEW.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_LOCK)]
    pub lock: PathBuf,
    /// Check new and replaced pins against this OSV database export (see `audit`).
    #[arg(long, value_name = "DIR")]
    pub osv_db: Option<PathBuf>,
    /// Check new and replaced pins against the index's JSON API advisories too.
    #[arg(long)]
    pub index_advisories: bool,
    #[command(flatten)]
    pub index: crate::client::IndexArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

pub fn run(args: DiffArgs) -> crate::exit::Result<ExitCode> {
    let (old_label, old) = crate::lockref::load(&args.old, &args.lock)?;
    let new_spec = args
        .new
        .clone()
        .unwrap_or_else(|| args.lock.display().to_string());
    let (new_label, new) = crate::lockref::load(&new_spec, &args.lock)?;
    let mut report = bitpoll_review::diff::compare(&old_label, &old, &new_label, &new);
    if args.osv_db.is_some() || args.index_advisories {
        let findings = crate::audit::with_sources(
            args.osv_db.as_deref(),
            args.index_advisories,
            &args.index,
            |sources| {
                let lookup = |pin: &bitpoll_audit::Pin| sources.advisories(pin);
                Ok(bitpoll_review::security::advisory_findings(
                    &old, &new, &lookup,
                )?)
            },
        )?;
        report.security.extend(findings);
        report.security.sort();
    }
    let text = match args.format {
        Format::Text => bitpoll_review::diff::render_text(&report),
        Format::Markdown => bitpoll_review::diff::render_markdown(&report),
        Format::Json => {
            serde_json::to_string_pretty(&report).map_err(crate::exit::unavailable)? + "\n"
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
