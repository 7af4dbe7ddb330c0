//! The bench's results as a Markdown table (ready for README's Performance section) and as
//! JSON with every sample.

use serde_json::{json, Value};

use super::stats::{paired_ratios, ratio, Summary};
use super::{Row, SetFacts, Tool};

/// Facts about the machine and the run, printed above the table and kept in the JSON.
pub struct Machine {
    pub date: String,
    pub cores: usize,
    pub cpu: Option<String>,
    pub kernel: Option<String>,
    pub load_average_start: Option<String>,
    pub load_average_end: Option<String>,
    pub uv: String,
    pub build_python: String,
    pub commit: Option<String>,
    pub dirty: Option<bool>,
    pub timings: bool,
    pub runs: usize,
    pub elapsed_s: f64,
}

pub fn heading(m: &Machine) -> String {
    let commit = match (&m.commit, m.dirty) {
        (Some(c), Some(true)) => format!("{c} with local changes"),
        (Some(c), _) => c.clone(),
        (None, _) => "unknown commit".into(),
    };
    format!(
        "{}, {} cores{}, {}, bitpoll-lock at {commit}, sdists built with {}; medians of {} runs \
         after a warm-up, tools alternating; load average {} at the start, {} at the end",
        m.date,
        m.cores,
        m.cpu
            .as_deref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default(),
        m.uv,
        m.build_python,
        m.runs,
        m.load_average_start.as_deref().unwrap_or("?"),
        m.load_average_end.as_deref().unwrap_or("?"),
    )
}

/// Seconds with about three significant digits: 0.042, 4.56, 61.3.
fn secs(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn mib(v: f64) -> String {
    format!("{v:.0}")
}

/// `min-max, IQR p%`, or what a single run can say.
fn spread(s: &Summary, unit: fn(f64) -> String) -> String {
    if s.n == 1 {
        return "1 run".into();
    }
    let rel = s
        .relative_iqr()
        .map(|r| format!(", IQR {:.0}%", r * 100.0))
        .unwrap_or_default();
    format!("{}-{}{rel}", unit(s.min), unit(s.max))
}

/// A row's statistics, or why it has none.
enum Cell {
    Ok(Summary),
    Failed,
    Missing,
}

fn cell(row: Option<&Row>, values: fn(&Row) -> Vec<f64>) -> Cell {
    match row {
        None => Cell::Missing,
        Some(r) if r.failure.is_some() => Cell::Failed,
        Some(r) => Summary::of(&values(r)).map_or(Cell::Missing, Cell::Ok),
    }
}

impl Cell {
    fn median(&self) -> Option<f64> {
        match self {
            Cell::Ok(s) => Some(s.median),
            _ => None,
        }
    }

    fn show(&self, unit: fn(f64) -> String) -> String {
        match self {
            Cell::Ok(s) => unit(s.median),
            Cell::Failed => "failed".into(),
            Cell::Missing => "-".into(),
        }
    }

    fn spread(&self, unit: fn(f64) -> String) -> String {
        match self {
            Cell::Ok(s) => spread(s, unit),
            _ => "-".into(),
        }
    }
}

fn uv_partner<'a>(rows: &'a [Row], row: &Row) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.tool == Tool::Uv && r.set == row.set && r.mode == row.mode)
}

fn pins(f: &SetFacts) -> String {
    let mut text = match (f.pins_ours, f.pins_uv) {
        (Some(o), Some(u)) if o != u => format!("{o} (uv {u})"),
        (Some(o), _) => o.to_string(),
        (None, Some(u)) => format!("uv {u}"),
        (None, None) => "?".into(),
    };
    if !f.sdists.is_empty() {
        text.push_str(&format!(", {} sdists", f.sdists.len()));
    }
    text
}

/// One line per set, mode and tool of ours, next to uv's row of the same set and mode; then
/// every failed run with its log, and the sdists each set pins.
pub fn markdown(sets: &[SetFacts], rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "| set | pins | mode | ours | uv s | ours s | time ours/uv (pairs) | uv time spread \
         | ours time spread | CPU s uv / ours | uv MiB | ours MiB | RSS ours/uv \
         | RSS spread uv / ours |\n",
    );
    out.push_str(
        "| --- | ---: | --- | --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: \
         | --- |\n",
    );
    for row in rows.iter().filter(|r| r.tool != Tool::Uv) {
        let facts = sets.iter().find(|f| f.name == row.set);
        let uv = uv_partner(rows, row);
        let (uv_t, our_t) = (cell(uv, Row::seconds), cell(Some(row), Row::seconds));
        let (uv_m, our_m) = (cell(uv, Row::rss_mib), cell(Some(row), Row::rss_mib));
        let (uv_c, our_c) = (
            cell(uv, Row::cpu_seconds),
            cell(Some(row), Row::cpu_seconds),
        );
        let mut time_ratio =
            ratio(our_t.median(), uv_t.median()).map_or("-".into(), |r| format!("{r:.2}"));
        if let (Some(uv), Cell::Ok(_), Cell::Ok(_)) = (uv, &uv_t, &our_t) {
            let pairs = paired_ratios(&runs(row, Row::seconds), &runs(uv, Row::seconds));
            if let Some(s) = Summary::of(&pairs).filter(|s| s.n > 1) {
                time_ratio.push_str(&format!(" ({:.2}-{:.2})", s.min, s.max));
            }
        }
        let rss_ratio =
            ratio(our_m.median(), uv_m.median()).map_or("-".into(), |r| format!("{r:.2}"));
        let rss_range = |c: &Cell| match c {
            Cell::Ok(s) if s.n > 1 => format!("{}-{}", mib(s.min), mib(s.max)),
            Cell::Ok(s) => mib(s.median),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {time_ratio} | {} | {} | {} / {} | {} | {} | {rss_ratio} | {} / {} |\n",
            row.set,
            facts.map_or("?".into(), pins),
            row.mode.key(),
            row.tool.label(),
            uv_t.show(secs),
            our_t.show(secs),
            uv_t.spread(secs),
            our_t.spread(secs),
            uv_c.show(secs),
            our_c.show(secs),
            uv_m.show(mib),
            our_m.show(mib),
            rss_range(&uv_m),
            rss_range(&our_m),
        ));
    }
    let failed: Vec<&Row> = rows.iter().filter(|r| r.failure.is_some()).collect();
    if !failed.is_empty() {
        out.push_str("\nFailed:\n\n");
        for r in failed {
            let f = r.failure.as_ref().expect("filtered on failure");
            let which = if f.run == 0 {
                "warm-up".to_string()
            } else {
                format!("run {}", f.run)
            };
            out.push_str(&format!(
                "- {} {} {}: {which} failed ({}); log `{}`\n",
                r.set,
                r.mode.key(),
                r.tool.key(),
                f.message,
                f.log
            ));
        }
    }
    let with_sdists: Vec<&SetFacts> = sets.iter().filter(|f| !f.sdists.is_empty()).collect();
    if !with_sdists.is_empty() {
        out.push_str("\nSdists pinned (their build environments are locked too):\n\n");
        for f in with_sdists {
            out.push_str(&format!("- {}: {}\n", f.name, f.sdists.join(", ")));
        }
    }
    out
}

/// `(run, value)` of a row's samples, for pairing with the other tool's.
fn runs(row: &Row, values: fn(&Row) -> Vec<f64>) -> Vec<(usize, f64)> {
    row.samples.iter().map(|s| s.run).zip(values(row)).collect()
}

pub fn check_line(c: &Row) -> String {
    match (&c.failure, Summary::of(&c.seconds()), Summary::of(&c.rss_mib())) {
        (Some(f), _, _) => format!(
            "`bitpoll-lock check` on an up-to-date lock failed ({}); log `{}`",
            f.message, f.log
        ),
        (None, Some(t), Some(m)) => format!(
            "`bitpoll-lock check` on an up-to-date lock: median {:.1} ms ({:.1}-{:.1}), peak RSS {:.1} MiB",
            t.median * 1000.0,
            t.min * 1000.0,
            t.max * 1000.0,
            m.median
        ),
        _ => "`bitpoll-lock check`: no runs".into(),
    }
}

fn summary_json(s: Option<Summary>) -> Value {
    match s {
        None => Value::Null,
        Some(s) => json!({
            "n": s.n, "median": s.median, "min": s.min, "max": s.max,
            "q1": s.q1, "q3": s.q3, "iqr": s.iqr(), "relative_iqr": s.relative_iqr(),
        }),
    }
}

fn row_json(rows: &[Row], row: &Row) -> Value {
    let time = Summary::of(&row.seconds());
    let rss = Summary::of(&row.rss_mib());
    let cpu = Summary::of(&row.cpu_seconds());
    let vs_uv = uv_partner(rows, row)
        .filter(|_| row.tool != Tool::Uv)
        .map(|uv| {
            let ok = row.failure.is_none() && uv.failure.is_none();
            let med = |s: Option<Summary>| s.filter(|_| ok).map(|s| s.median);
            json!({
                "time_ratio": ratio(med(time), med(Summary::of(&uv.seconds()))),
                "rss_ratio": ratio(med(rss), med(Summary::of(&uv.rss_mib()))),
                "cpu_ratio": ratio(med(cpu), med(Summary::of(&uv.cpu_seconds()))),
                "paired_time_ratios": paired_ratios(&runs(row, Row::seconds), &runs(uv, Row::seconds)),
            })
        });
    json!({
        "set": row.set,
        "mode": row.mode.key(),
        "tool": row.tool.key(),
        "command": row.command,
        "failed": row.failure.as_ref().map(|f| json!({
            "run": f.run, "log": f.log, "message": f.message,
        })),
        "time_s": summary_json(time),
        "peak_rss_mib": summary_json(rss),
        "cpu_s": summary_json(cpu),
        "vs_uv": vs_uv,
        "samples": row.samples.iter().map(|s| json!({
            "run": s.run,
            "seconds": s.seconds,
            "peak_rss_kib": s.rss_kib,
            "cpu_seconds": s.cpu_seconds,
            "log": s.log,
        })).collect::<Vec<_>>(),
        "timeline_of_warm_up": row.timeline,
    })
}

pub fn json(m: &Machine, sets: &[SetFacts], rows: &[Row], check: Option<&Row>) -> Value {
    json!({
        "date": m.date,
        "machine": {
            "cores": m.cores,
            "cpu": m.cpu,
            "kernel": m.kernel,
            "load_average_start": m.load_average_start,
            "load_average_end": m.load_average_end,
        },
        "uv": m.uv,
        "bitpoll_lock": {"commit": m.commit, "local_changes": m.dirty, "timings": m.timings},
        "build_python": m.build_python,
        "runs": m.runs,
        "elapsed_s": m.elapsed_s,
        "commands": {
            "uv": "UV_PYTHON_DOWNLOADS=never uv pip compile --universal --python-version 3.13 --python BUILD_PYTHON --generate-hashes --quiet --cache-dir DIR [--offline] FILE... > OUT",
            "ours": "bitpoll-lock --quiet update --upgrade --python 3.13 --build-python BUILD_PYTHON [--no-nixpkgs] --policy POLICY --cache-dir DIR --lock SCRATCH [--offline] -r FILE... (the cold warm-up runs add --timings FILE)",
            "note": "each row's `command` is the exact command of its first measured run; cold runs start from an empty DIR, warm and offline ones from the DIR their warm-up filled",
        },
        "sets": sets.iter().map(|f| json!({
            "name": f.name,
            "files": f.files,
            "requirements": f.requirements,
            "pins": {"ours_no_nixpkgs": f.pins_ours, "uv": f.pins_uv},
            "sdists": f.sdists,
            "built_metadata": f.built_metadata,
        })).collect::<Vec<_>>(),
        "rows": rows.iter().map(|r| row_json(rows, r)).collect::<Vec<_>>(),
        "check": check.map(|c| row_json(&[], c)),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Failure, Mode, Sample};
    use super::*;

    fn row(set: &str, mode: Mode, tool: Tool, secs: &[f64], mib: &[u64]) -> Row {
        Row {
            set: set.into(),
            mode,
            tool,
            command: format!("{} ...", tool.key()),
            samples: secs
                .iter()
                .zip(mib)
                .enumerate()
                .map(|(i, (&seconds, &m))| Sample {
                    run: i + 1,
                    seconds,
                    rss_kib: m * 1024,
                    // uv keeps one core busy, ours two: CPU ratios differ from time ratios.
                    cpu_seconds: if tool == Tool::Uv {
                        seconds
                    } else {
                        seconds * 2.0
                    },
                    log: format!("logs/{set}-run{}.log", i + 1),
                })
                .collect(),
            failure: None,
            timeline: None,
        }
    }

    fn facts(name: &str, ours: usize, uv: usize, sdists: &[&str]) -> SetFacts {
        SetFacts {
            name: name.into(),
            pins_ours: Some(ours),
            pins_uv: Some(uv),
            sdists: sdists.iter().map(|s| s.to_string()).collect(),
            ..SetFacts::default()
        }
    }

    #[test]
    fn a_row_shows_medians_ratios_of_medians_and_the_spread_of_both_tools() {
        let rows = [
            row(
                "zulip",
                Mode::Cold,
                Tool::Uv,
                &[10.0, 12.0, 11.0, 30.0, 9.0],
                &[200, 210, 190, 205, 200],
            ),
            row(
                "zulip",
                Mode::Cold,
                Tool::OursIndex,
                &[5.0, 6.0, 5.5, 6.0, 4.0],
                &[50, 52, 48, 50, 51],
            ),
        ];
        let table = markdown(
            &[facts("zulip", 152, 152, &["psycopg2", "pyoembed"])],
            &rows,
        );
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("| set | pins | mode |"));
        assert_eq!(
            lines[2],
            "| zulip | 152, 2 sdists | cold | `--no-nixpkgs` | 11.0 | 5.50 | 0.50 (0.20-0.50) \
             | 9.00-30.0, IQR 18% | 4.00-6.00, IQR 18% | 11.0 / 11.0 | 200 | 50 | 0.25 | 190-210 / 48-52 |"
        );
        assert_eq!(lines.len(), 7, "{table}");
        assert_eq!(lines[6], "- zulip: psycopg2, pyoembed");
    }

    #[test]
    fn a_failed_row_says_so_with_its_log_instead_of_a_median() {
        let mut uv = row("sentry", Mode::Warm, Tool::Uv, &[3.0], &[100]);
        uv.failure = Some(Failure {
            run: 2,
            log: "target/bench/work/logs/sentry-warm-uv-run2.log".into(),
            message: "exit status 2: error: no network".into(),
        });
        let ours = row(
            "sentry",
            Mode::Warm,
            Tool::OursIndex,
            &[1.0, 1.2],
            &[40, 41],
        );
        let rows = [uv, ours];
        let table = markdown(&[facts("sentry", 132, 131, &[])], &rows);
        let line = table.lines().nth(2).unwrap();
        assert!(
            line.starts_with(
                "| sentry | 132 (uv 131) | warm | `--no-nixpkgs` | failed | 1.10 | - |"
            ),
            "{line}"
        );
        assert!(table.contains(
            "- sentry warm uv: run 2 failed (exit status 2: error: no network); log `target/bench/work/logs/sentry-warm-uv-run2.log`"
        ), "{table}");
        let v = json(&machine(), &[], &rows, None);
        assert_eq!(v["rows"][0]["failed"]["run"], 2);
        assert_eq!(v["rows"][1]["vs_uv"]["time_ratio"], Value::Null);
        // The samples that did succeed are kept.
        assert_eq!(v["rows"][0]["samples"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn bitpoll_gets_a_line_per_mode_of_ours_each_against_uv() {
        let rows = [
            row("bitpoll", Mode::Offline, Tool::Uv, &[0.6], &[45]),
            row("bitpoll", Mode::Offline, Tool::OursIndex, &[0.2], &[26]),
            row("bitpoll", Mode::Offline, Tool::OursHybrid, &[0.042], &[16]),
        ];
        let table = markdown(&[facts("bitpoll", 63, 63, &[])], &rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[2].contains("| `--no-nixpkgs` | 0.600 | 0.200 | 0.33 | 1 run | 1 run | 0.600 / 0.400 | 45 | 26 | 0.58 | 45 / 26 |"), "{}", lines[2]);
        assert!(
            lines[3].contains("| hybrid | 0.600 | 0.042 | 0.07 |"),
            "{}",
            lines[3]
        );
    }

    fn machine() -> Machine {
        Machine {
            date: "2026-11-29T05:00:00Z".into(),
            cores: 2,
            cpu: None,
            kernel: None,
            load_average_start: Some("1.50 1.20 1.00".into()),
            load_average_end: None,
            uv: "uv 0.13.9".into(),
            build_python: "/usr/bin/python3 (3.13.0)".into(),
            commit: Some("abc1234".into()),
            dirty: Some(false),
            timings: false,
            runs: 5,
            elapsed_s: 1.0,
        }
    }

    #[test]
    fn json_keeps_every_sample_the_summaries_and_the_commands() {
        let rows = [
            row(
                "treeherder",
                Mode::Cold,
                Tool::Uv,
                &[2.0, 4.0, 3.0],
                &[100, 110, 105],
            ),
            row(
                "treeherder",
                Mode::Cold,
                Tool::OursIndex,
                &[1.0, 1.0, 3.0],
                &[30, 31, 32],
            ),
        ];
        let v = json(
            &machine(),
            &[facts("treeherder", 104, 104, &["mozlog"])],
            &rows,
            None,
        );
        assert_eq!(v["machine"]["cores"], 2);
        assert_eq!(v["uv"], "uv 0.13.9");
        assert!(v["commands"]["uv"]
            .as_str()
            .unwrap()
            .contains("--universal"));
        assert_eq!(v["sets"][0]["sdists"][0], "mozlog");
        let ours = &v["rows"][1];
        assert_eq!(ours["samples"].as_array().unwrap().len(), 3);
        assert_eq!(ours["samples"][2]["seconds"], 3.0);
        assert_eq!(ours["samples"][2]["peak_rss_kib"], 32 * 1024);
        assert_eq!(ours["time_s"]["median"], 1.0);
        assert_eq!(ours["vs_uv"]["time_ratio"], 1.0 / 3.0);
        assert_eq!(ours["samples"][2]["cpu_seconds"], 6.0);
        assert_eq!(ours["cpu_s"]["median"], 2.0);
        assert_eq!(ours["vs_uv"]["cpu_ratio"], 2.0 / 3.0);
        assert_eq!(ours["vs_uv"]["paired_time_ratios"], json!([0.5, 0.25, 1.0]));
        assert_eq!(ours["command"], "no-nixpkgs ...");
        assert_eq!(v["rows"][0]["vs_uv"], Value::Null);
    }
}
