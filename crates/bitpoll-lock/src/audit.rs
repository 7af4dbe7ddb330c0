//! `bitpoll-lock audit`: known advisories for every pinned version. The matching lives in
//! `bitpoll-audit`; this module gathers the documents (the index's JSON API through the
//! index client, an OSV export from disk), prints the report and picks the exit code.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use bitpoll_audit::{
    parse_release_json, Advisory, Findings, OsvDb, Pin, Report, Severity, SourceKind, Status,
};
use bitpoll_client::IndexClient;
use bitpoll_lockfile::Lock;
use clap::{Args, ValueEnum};

use crate::exit::bad_input;
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

/// Where advisories come from for one run: each source is asked about each pin.
pub struct Sources {
    client: Option<IndexClient>,
    osv: Option<OsvDb>,
}

impl Sources {
    pub fn open(
        osv_db: Option<&Path>,
        use_index: bool,
        index: &crate::client::IndexArgs,
    ) -> anyhow::Result<Sources> {
        let osv = osv_db.map(OsvDb::load).transpose().map_err(bad_input)?;
        let client = if use_index { Some(index.open()?) } else { None };
        Ok(Sources { client, osv })
    }

    /// What every source says about `pin`.
    pub fn status(&self, pin: &Pin) -> anyhow::Result<Status> {
        let mut findings = Findings::default();
        match &self.client {
            None => findings.unanswered("the index was not asked (--no-index)".into()),
            Some(client) => match client
                .release_json(&pin.name, &pin.version)
                .with_context(|| format!("asking the index about {} {}", pin.name, pin.version))?
            {
                None => findings.unanswered("the index has no JSON API document for it".into()),
                Some(body) => match parse_release_json(&body) {
                    Ok(Some(list)) => findings.answered(SourceKind::IndexJson, list),
                    Ok(None) => findings.unanswered("the index serves no advisory data".into()),
                    Err(e) => findings.unanswered(format!("the index's JSON API: {e}")),
                },
            },
        }
        if let Some(osv) = &self.osv {
            findings.answered(SourceKind::Osv, osv.advisories(&pin.name, &pin.version));
        }
        Ok(findings.into_status())
    }

    /// The advisories affecting `pin`, or `None` when no source answered.
    pub fn advisories(&self, pin: &Pin) -> anyhow::Result<Option<Vec<Advisory>>> {
        Ok(match self.status(pin)? {
            Status::Checked { advisories, .. } => Some(advisories),
            Status::NotChecked { .. } => None,
        })
    }
}

/// Asks every source about every pin, a few pins at a time.
pub fn audit(sources: &Sources, pins: BTreeSet<Pin>) -> anyhow::Result<Report> {
    let pins: Vec<Pin> = pins.into_iter().collect();
    let chunk = pins.len().div_ceil(8).max(1);
    let results: Vec<anyhow::Result<Vec<(Pin, Status)>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = pins
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|pin| Ok((pin.clone(), sources.status(pin)?)))
                        .collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("audit threads do not panic"))
            .collect()
    });
    let mut report = Report {
        pins: Default::default(),
    };
    for part in results {
        report.pins.extend(part?);
    }
    Ok(report)
}

pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let lock = Lock::read(&args.lock).map_err(bad_input)?;
    let sources = Sources::open(args.osv_db.as_deref(), !args.no_index, &args.index)?;
    let report = audit(&sources, bitpoll_review::pins(&lock))?;
    let text = match args.format {
        Format::Text => render_text(&report, args.fail_on),
        Format::Markdown => render_markdown(&report, args.fail_on),
        Format::Json => serde_json::to_string_pretty(&json(&report))? + "\n",
    };
    print!("{text}");
    Ok(if report.at_or_above(args.fail_on).is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn json(report: &Report) -> serde_json::Value {
    let pins: Vec<serde_json::Value> = report
        .pins
        .iter()
        .map(|(pin, status)| {
            let mut v = serde_json::to_value(status).unwrap_or_default();
            v["name"] = pin.name.clone().into();
            v["version"] = pin.version.clone().into();
            v
        })
        .collect();
    serde_json::json!({
        "pins": pins,
        "advisories": report.advisory_count(),
        "not_checked": report.not_checked(),
    })
}

fn describe(a: &Advisory) -> String {
    let mut out = format!("{} ({})", a.id, a.severity);
    if !a.aliases.is_empty() {
        let _ = write!(out, " aka {}", a.aliases.join(", "));
    }
    if !a.summary.is_empty() {
        let _ = write!(out, ": {}", a.summary);
    }
    if !a.fixed_in.is_empty() {
        let _ = write!(out, "; fixed in {}", a.fixed_in.join(", "));
    }
    let sources: Vec<String> = a.sources.iter().map(|s| s.to_string()).collect();
    let _ = write!(out, " [{}]", sources.join(", "));
    out
}

fn summary(report: &Report, fail_on: Severity) -> String {
    format!(
        "{} pins: {} advisories ({} at or above {fail_on}), {} not checked",
        report.pins.len(),
        report.advisory_count(),
        report.at_or_above(fail_on).len(),
        report.not_checked()
    )
}

pub fn render_text(report: &Report, fail_on: Severity) -> String {
    let mut out = String::new();
    for (pin, status) in &report.pins {
        match status {
            Status::Checked { advisories, .. } if advisories.is_empty() => {}
            Status::Checked { advisories, .. } => {
                let _ = writeln!(out, "{} {}:", pin.name, pin.version);
                for a in advisories {
                    let _ = writeln!(out, "  ! {}", describe(a));
                }
            }
            Status::NotChecked { reason } => {
                let _ = writeln!(out, "{} {}: not checked ({reason})", pin.name, pin.version);
            }
        }
    }
    let _ = writeln!(out, "{}", summary(report, fail_on));
    out
}

pub fn render_markdown(report: &Report, fail_on: Severity) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### Known vulnerabilities\n");
    let _ = writeln!(out, "{}.\n", summary(report, fail_on));
    let found: Vec<(&Pin, &Advisory)> = report
        .pins
        .iter()
        .filter_map(|(pin, s)| match s {
            Status::Checked { advisories, .. } => Some((pin, advisories)),
            Status::NotChecked { .. } => None,
        })
        .flat_map(|(pin, list)| list.iter().map(move |a| (pin, a)))
        .collect();
    if !found.is_empty() {
        let _ = writeln!(
            out,
            "| package | advisory | severity | fixed in | summary |"
        );
        let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
        for (pin, a) in found {
            let _ = writeln!(
                out,
                "| {} {} | {} | {} | {} | {} |",
                pin.name,
                pin.version,
                a.id,
                a.severity,
                a.fixed_in.join(", "),
                a.summary.replace('|', "\\|")
            );
        }
        let _ = writeln!(out);
    }
    let unchecked: Vec<String> = report
        .pins
        .iter()
        .filter_map(|(pin, s)| match s {
            Status::NotChecked { reason } => {
                Some(format!("- {} {}: {reason}", pin.name, pin.version))
            }
            Status::Checked { .. } => None,
        })
        .collect();
    if !unchecked.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>{} not checked</summary>\n\n{}\n\n</details>",
            unchecked.len(),
            unchecked.join("\n")
        );
    }
    out
}
