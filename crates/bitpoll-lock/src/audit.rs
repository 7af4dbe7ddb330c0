//! `bitpoll-lock audit`: known advisories for every pinned version. `bitpoll-audit` asks
//! the sources and renders the report; this module opens the sources (the index's JSON API
//! through the index client, an OSV export from disk), prints and picks the exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bitpoll_audit::{OsvDb, Pin, ReleaseJson, Severity, Sources};
use bitpoll_client::ClientError;
use bitpoll_lockfile::Lock;
use clap::{Args, ValueEnum};

use crate::exit::{unavailable, Result};
use crate::DEFAULT_LOCK;

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// The lock to audit.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_LOCK)]
    pub lock: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// A local OSV database export (OSV JSON files, PyPI ecosystem).
    #[arg(long, value_name = "DIR")]
    pub osv_db: Option<PathBuf>,
    /// Exit 1 when an advisory of this severity or worse matches (low, medium, high,
    /// critical; an advisory without a severity counts as high).
    #[arg(long, value_name = "SEVERITY", default_value = "low")]
    pub fail_on: Severity,
    /// Do not ask the index's JSON API (only the OSV export is read).
    #[arg(long)]
    pub no_index: bool,
    #[command(flatten)]
    pub index: crate::client::IndexArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

/// Runs `f` with the advisory sources the options name: the OSV export read from disk, the
/// index asked through its client unless `use_index` is false.
pub fn with_sources<T>(
    osv_db: Option<&Path>,
    use_index: bool,
    index: &crate::client::IndexArgs,
    f: impl FnOnce(&Sources<'_, ClientError>) -> Result<T>,
) -> Result<T> {
    let osv = osv_db.map(OsvDb::load).transpose()?;
    let client = if use_index { Some(index.open()?) } else { None };
    let fetch = client.as_ref().map(|client| {
        move |pin: &Pin| -> std::result::Result<Option<Vec<u8>>, ClientError> {
            Ok(client
                .release_json(&pin.name, &pin.version)?
                .map(|body| body.to_vec()))
        }
    });
    let sources = Sources {
        index: fetch.as_ref().map(|f| f as &ReleaseJson<'_, ClientError>),
        osv,
    };
    f(&sources)
}

pub fn run(args: AuditArgs) -> Result<ExitCode> {
    let lock = Lock::read(&args.lock)?;
    let report = with_sources(
        args.osv_db.as_deref(),
        !args.no_index,
        &args.index,
        |sources| Ok(sources.audit(bitpoll_review::pins(&lock))?),
    )?;
    let text = match args.format {
        Format::Text => bitpoll_audit::render::render_text(&report, args.fail_on),
        Format::Markdown => bitpoll_audit::render::render_markdown(&report, args.fail_on),
        Format::Json => {
            serde_json::to_string_pretty(&bitpoll_audit::render::to_json(&report))
                .map_err(unavailable)?
                + "\n"
        }
    };
    print!("{text}");
    Ok(if report.at_or_above(args.fail_on).is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
