//! A report in the forms `audit` prints: text for a terminal, Markdown for a pull request,
//! JSON for scripts.

use std::fmt::Write as _;

use crate::{Advisory, Pin, Report, Severity, Status};

/// Every pin with its status, and the counts.
pub fn to_json(report: &Report) -> serde_json::Value {
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
