//! The packse conformance harness: every packse scenario (`BITPOLL_SHARED_DIR/conformance/packse/`) becomes a
//! loopback index, the resolver runs against it in Python-index-only mode, and the outcome is
//! compared with the scenario's `[expected]` table.
//!
//! packse describes one resolver invocation on one machine (or, with `universal`, one lock for
//! every environment). A bitpoll lock is a set of fixed Nix targets instead, so options are
//! mapped as follows:
//!
//! - The interpreter is `resolver_options.python`, else `environment.python`, else the lock's
//!   default Python ([`DEFAULT_PYTHON`]). Both packse fields name the version the resolution is
//!   for; `environment.additional_python` only matters to a tool that builds sdists, which we
//!   never do (metadata is read statically).
//! - A plain scenario describes "the machine the resolver runs on"; each default Nix system is
//!   such a machine, so the scenario must hold on every one of them. `python_platform` picks
//!   the one matching Nix system instead, and is not applicable when no Nix system matches.
//! - A `universal` scenario is one lock for every environment. Ours covers the four default
//!   systems, so the scenario is satisfiable exactly when every target resolves, and expected
//!   versions (packse writes them only where they hold everywhere) must hold on every target.
//! - `required_environments` lists environments a lock must cover; each must be one of our
//!   targets, else the scenario asks for something a Nix lock cannot give.
//! - `prereleases = true` is the "allow" mode; `no_binary`/`no_build` name packages.
//! - `root.requires_python` is the project's Requires-Python: the lock's Python must satisfy
//!   it, so a scenario whose Python does not is one a Nix lock cannot express.
//!
//! Every scenario runs. Where packse expects what only one universal resolution gives, the
//! outcome per-target resolution must give instead is written down in [`PER_TARGET`] with its
//! reason and asserted per target (exact package sets). Only the scenarios in [`EXCLUDED`]
//! are not run, each by name; a scenario that the option rules above cannot map and that is
//! not listed there fails, and so does a listed one that they can map.
//!
//! Beyond packse's expectation, every resolution is checked for extra packages: each resolved
//! package must be needed, reachable from the root requirements that apply to the target.
//! Where packse lists packages, the resolution must be exactly those.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use bitpoll_platform::{Target, DEFAULT_SYSTEMS};
use bitpoll_policy::Policy;
use bitpoll_resolver::{Options, PackageSet, PrereleaseMode, Request, ResolveError};
use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{MarkerTree, PackageName, Requirement};
use serde::Deserialize;

use crate::universe::{Project, Universe};

/// The Python a lock is for unless a scenario says otherwise: the flake's `python3`.
pub const DEFAULT_PYTHON: &str = "3.13";

/// The packse categories (one directory each), in the order reports list them.
pub const CATEGORIES: [&str; 13] = [
    "backtracking",
    "does_not_exist",
    "excluded",
    "extras",
    "fork",
    "incompatible_versions",
    "local",
    "post",
    "prereleases",
    "requires_python",
    "tag_and_markers",
    "wheels",
    "yanked",
];

/// Scenarios that cannot be expressed for Nix targets at all, by name, with the reason. They
/// are not run.
pub const EXCLUDED: &[(&str, &str)] = &[(
    "requires-python-subset",
    "Windows only: its one package has only a win_amd64 wheel, and it asks for a lock that \
     covers Windows",
)];

const LINUX: &[&str] = &["aarch64-linux", "x86_64-linux"];
const DARWIN: &[&str] = &["aarch64-darwin", "x86_64-darwin"];

/// What one Nix target must resolve to: `None` for no solution, else exactly these
/// `(name, version)` pairs.
pub type TargetOutcome = Option<&'static [(&'static str, &'static str)]>;

/// A scenario whose packse expectation holds only for one universal resolution, and the
/// outcome per-target resolution must give instead.
pub struct PerTarget {
    pub name: &'static str,
    /// Why a lock of per-target resolutions differs from packse's expectation.
    pub why: &'static str,
    /// The systems each outcome is for; together they cover every default Nix system.
    pub outcomes: &'static [(&'static [&'static str], TargetOutcome)],
}

pub const PER_TARGET: &[PerTarget] = &[
    PerTarget {
        name: "conflict-in-fork",
        why: "expects no solution because the requirements conflict where sys_platform is `os1` \
              or `os2`; no Nix target is either, so neither requirement applies and every target \
              resolves to nothing",
        outcomes: &[(
            &[
                "aarch64-darwin",
                "aarch64-linux",
                "x86_64-darwin",
                "x86_64-linux",
            ],
            Some(&[]),
        )],
    },
    PerTarget {
        name: "fork-non-local-fork-marker-direct",
        why: "expects no solution because one universal resolution cannot give `c` a different \
              version on linux and darwin when the markers sit on its parents; per target, Linux \
              needs only a (c<2) and macOS only b (c>=2)",
        outcomes: &[
            (LINUX, Some(&[("a", "1.0.0"), ("c", "1.0.0")])),
            (DARWIN, Some(&[("b", "1.0.0"), ("c", "2.0.0")])),
        ],
    },
    PerTarget {
        name: "fork-non-local-fork-marker-transitive",
        why: "expects no solution because one universal resolution does not fork on markers of \
              transitive requirements; per target, c<2 applies only on Linux and c>=2 only on \
              macOS",
        outcomes: &[
            (
                LINUX,
                Some(&[("a", "1.0.0"), ("b", "1.0.0"), ("c", "1.0.0")]),
            ),
            (
                DARWIN,
                Some(&[("a", "1.0.0"), ("b", "1.0.0"), ("c", "2.0.0")]),
            ),
        ],
    },
    PerTarget {
        name: "preferences-dependent-forking-conflicting",
        why: "expects no solution because one universal resolution that keeps `cleaver 1.0.0` \
              must use foo 1.0.0 and bar 1.0.0 together, and foo 1.0.0 needs bar 2.0.0; per \
              target only one of them is pinned (foo==1 on linux, bar==1 elsewhere), and cleaver \
              2.0.0 is ruled out by reject-cleaver-2 either way",
        outcomes: &[
            (
                LINUX,
                Some(&[("bar", "2.0.0"), ("cleaver", "1.0.0"), ("foo", "1.0.0")]),
            ),
            (
                DARWIN,
                Some(&[("bar", "1.0.0"), ("cleaver", "1.0.0"), ("foo", "2.0.0")]),
            ),
        ],
    },
    PerTarget {
        name: "specific-architecture",
        why: "expects one universal lock, which records aarch64's `c` without checking that it \
              installs; its only file is a `manylinux2010_aarch64` wheel, a tag no installer \
              accepts (aarch64 manylinux starts at manylinux2014), and there is no sdist, so \
              aarch64-linux has no solution. On macOS platform_machine is arm64 or x86_64",
        outcomes: &[
            (&["x86_64-linux"], Some(&[("a", "1.0.0"), ("b", "1.0.0")])),
            (&["aarch64-linux"], None),
            (&["aarch64-darwin"], Some(&[("a", "1.0.0")])),
            (&["x86_64-darwin"], Some(&[("a", "1.0.0"), ("b", "1.0.0")])),
        ],
    },
];

/// The scenarios [`EXCLUDED`] and [`PER_TARGET`] name, so a test can notice a name that no
/// longer matches a scenario.
pub fn listed_scenarios() -> impl Iterator<Item = &'static str> {
    EXCLUDED
        .iter()
        .map(|(name, _)| *name)
        .chain(PER_TARGET.iter().map(|p| p.name))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub packages: BTreeMap<String, Project>,
    pub root: Root,
    pub expected: Expected,
    #[serde(default)]
    pub resolver_options: ResolverOptions,
    #[serde(default)]
    pub environment: Environment,
    /// The directory the file was found in.
    #[serde(skip)]
    pub category: String,
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Root {
    #[serde(default)]
    pub requires: Vec<String>,
    pub requires_python: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    pub satisfiable: bool,
    #[serde(default)]
    pub packages: BTreeMap<String, String>,
    pub explanation: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolverOptions {
    pub python: Option<String>,
    #[serde(default)]
    pub universal: bool,
    #[serde(default)]
    pub prereleases: bool,
    #[serde(default)]
    pub no_build: Vec<String>,
    #[serde(default)]
    pub no_binary: Vec<String>,
    pub python_platform: Option<String>,
    #[serde(default)]
    pub required_environments: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub python: Option<String>,
    #[serde(default)]
    pub additional_python: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// Passed with the per-target outcome of [`PER_TARGET`], which differs from packse's.
    PassedPerTarget(String),
    Failed(String),
    NotApplicable(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Passed => f.write_str("passed"),
            Outcome::PassedPerTarget(why) => write!(f, "passed per target: {why}"),
            Outcome::Failed(why) => write!(f, "FAILED: {why}"),
            Outcome::NotApplicable(why) => write!(f, "not applicable: {why}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ScenarioResult {
    pub category: String,
    pub name: String,
    pub outcome: Outcome,
    /// The resolver's explanation, per target, where it found no solution.
    pub explanations: Vec<(String, String)>,
}

/// Where the scenarios live (read at run time, never copied into the project).
pub fn scenarios_dir() -> PathBuf {
    crate::shared_dir().join("conformance/packse")
}

/// Every scenario, in category then file-name order. `examples/` only restates the format.
pub fn load_all(dir: &Path) -> Result<Vec<Scenario>, String> {
    let mut out = Vec::new();
    for category in CATEGORIES {
        let sub = dir.join(category);
        let entries = std::fs::read_dir(&sub).map_err(|e| format!("{}: {e}", sub.display()))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut scenario: Scenario =
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            scenario.category = category.to_string();
            scenario.path = path;
            out.push(scenario);
        }
    }
    Ok(out)
}

/// What a scenario means for us: the targets, the options and the requirements.
struct Plan {
    targets: Vec<Target>,
    options: Options,
    requirements: Vec<Requirement>,
}

fn nix_system_for(platform: &str) -> Option<&'static str> {
    // packse (like uv's `--python-platform`) names a platform as `arch-os[variant]`.
    let (arch, os) = platform.split_once('-')?;
    let linux = os.starts_with("manylinux") || os == "linux" || os == "unknown-linux-gnu";
    let macos = os == "macos" || os.starts_with("apple-darwin");
    match (arch, linux, macos) {
        ("x86_64", true, _) => Some("x86_64-linux"),
        ("aarch64", true, _) => Some("aarch64-linux"),
        ("aarch64" | "arm64", _, true) => Some("aarch64-darwin"),
        ("x86_64", _, true) => Some("x86_64-darwin"),
        _ => None,
    }
}

fn package_set(names: &[String]) -> Result<PackageSet, String> {
    if names.is_empty() {
        return Ok(PackageSet::None);
    }
    if names.iter().any(|n| n == ":all:") {
        return Ok(PackageSet::All);
    }
    let mut set = std::collections::BTreeSet::new();
    for n in names {
        set.insert(PackageName::from_str(n).map_err(|e| format!("package name `{n}`: {e}"))?);
    }
    Ok(PackageSet::Some(set))
}

/// Maps a scenario onto targets and options, or says why it has no meaning for a Nix lock.
fn plan(s: &Scenario) -> Result<Result<Plan, String>, String> {
    let opts = &s.resolver_options;
    let python = opts
        .python
        .as_deref()
        .or(s.environment.python.as_deref())
        .unwrap_or(DEFAULT_PYTHON);
    let systems: Vec<&str> = match &opts.python_platform {
        Some(platform) => match nix_system_for(platform) {
            Some(system) => vec![system],
            None => {
                return Ok(Err(format!(
                    "resolves for python_platform `{platform}`, which no Nix system is"
                )))
            }
        },
        None => DEFAULT_SYSTEMS.to_vec(),
    };
    let targets = systems
        .iter()
        .map(|system| Target::new(system, python).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(rp) = &s.root.requires_python {
        let spec =
            VersionSpecifiers::from_str(rp).map_err(|e| format!("root requires_python: {e}"))?;
        if !spec.contains(&targets[0].python_full_version) {
            return Ok(Err(format!(
                "the project requires Python {rp}, and the lock's Python is {python}, so no \
                 lock for it is valid"
            )));
        }
    }
    for env in &opts.required_environments {
        let marker =
            MarkerTree::from_str(env).map_err(|e| format!("required environment `{env}`: {e}"))?;
        if !targets.iter().any(|t| marker.evaluate(t.markers(), &[])) {
            return Ok(Err(format!(
                "requires the lock to cover `{env}`, which none of the Nix targets ({}) is",
                systems.join(", ")
            )));
        }
    }
    let options = Options {
        prerelease: if opts.prereleases {
            PrereleaseMode::Allow
        } else {
            PrereleaseMode::default()
        },
        no_binary: package_set(&opts.no_binary)?,
        no_build: package_set(&opts.no_build)?,
        ..Options::default()
    };
    let requirements = s
        .root
        .requires
        .iter()
        .map(|r| Requirement::from_str(r).map_err(|e| format!("requirement `{r}`: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Ok(Plan {
        targets,
        options,
        requirements,
    }))
}

/// Runs one scenario against a fresh index and cache.
pub fn run(s: &Scenario) -> ScenarioResult {
    let mut result = ScenarioResult {
        category: s.category.clone(),
        name: s.name.clone(),
        outcome: Outcome::Passed,
        explanations: Vec::new(),
    };
    let excluded = EXCLUDED.iter().find(|(n, _)| *n == s.name);
    let plan = match (plan(s), excluded) {
        (Ok(Ok(_)), Some(_)) => {
            result.outcome = Outcome::Failed(
                "listed in EXCLUDED, but it maps onto Nix targets: run it instead".into(),
            );
            return result;
        }
        (Ok(Ok(plan)), None) => plan,
        (Ok(Err(rule)), Some((_, why))) => {
            result.outcome = Outcome::NotApplicable(format!("{why}; it {rule}"));
            return result;
        }
        (Ok(Err(rule)), None) => {
            result.outcome = Outcome::Failed(format!(
                "cannot be expressed for Nix targets ({rule}), and EXCLUDED does not list it"
            ));
            return result;
        }
        (Err(e), _) => {
            result.outcome = Outcome::Failed(format!("harness: {e}"));
            return result;
        }
    };
    let per_target = PER_TARGET.iter().find(|p| p.name == s.name);
    let mut packages = s.packages.clone();
    // A build backend for the sdists a scenario may pick: their build environments are
    // resolved too (packse's own index serves its scenarios next to build backends).
    packages
        .entry("setuptools".to_string())
        .or_insert_with(|| Project {
            versions: [(
                "70.0".to_string(),
                crate::universe::Release {
                    sdist: false,
                    ..Default::default()
                },
            )]
            .into(),
        });
    let universe = Universe { packages };
    // With the wheel filter `update` uses, so that every scenario also checks that dropping
    // unusable wheels while reading pages changes no outcome.
    let source = crate::memory::MemorySource::new(
        &universe,
        Some(bitpoll_resolver::wheel_filter(&plan.targets)),
    );
    let policy = Policy::default();
    let preferences = HashMap::new();
    let request = Request {
        requirements: &plan.requirements,
        constraints: &[],
        nixpkgs: None,
        policy: &policy,
        options: &plan.options,
        preferences: &preferences,
    };
    let mut problems = Vec::new();
    let mut resolved = 0;
    for target in &plan.targets {
        let outcome = bitpoll_resolver::resolve_target(&source, target, &request);
        if let Ok(resolution) = &outcome {
            resolved += 1;
            problems.extend(
                unneeded(&plan.requirements, target, resolution)
                    .into_iter()
                    .map(|p| format!("{}: {p} is resolved but nothing needs it", target.name)),
            );
        }
        if let Err(ResolveError::NoSolution { explanation, .. }) = &outcome {
            result
                .explanations
                .push((target.name.clone(), explanation.clone()));
        }
        match per_target {
            Some(per_target) => check_per_target(per_target, target, &outcome, &mut problems),
            None => check_packse(s, target, &outcome, &mut problems),
        }
    }
    if per_target.is_none()
        && !s.expected.satisfiable
        && s.resolver_options.universal
        && resolved == plan.targets.len()
    {
        problems.push("expected no solution, but every target resolved".into());
    }
    if !problems.is_empty() {
        result.outcome = Outcome::Failed(problems.join("; "));
    } else if let Some(per_target) = per_target {
        result.outcome = Outcome::PassedPerTarget(per_target.why.to_string());
    }
    result
}

type TargetResult = Result<bitpoll_resolver::TargetResolution, ResolveError>;

fn resolved_set(resolution: &bitpoll_resolver::TargetResolution) -> Vec<String> {
    resolution
        .packages
        .values()
        .map(|p| format!("{}=={}", p.name, p.version))
        .collect()
}

/// packse's expectation on one target: satisfiable or not, and where it lists packages,
/// exactly those.
fn check_packse(s: &Scenario, target: &Target, outcome: &TargetResult, problems: &mut Vec<String>) {
    match outcome {
        Ok(resolution) => {
            if !s.expected.satisfiable && !s.resolver_options.universal {
                problems.push(format!(
                    "{}: expected no solution, got [{}]",
                    target.name,
                    resolved_set(resolution).join(", ")
                ));
                return;
            }
            let mut expected = std::collections::BTreeSet::new();
            for (name, want) in &s.expected.packages {
                let Ok(name) = PackageName::from_str(name) else {
                    problems.push(format!("harness: bad expected name `{name}`"));
                    continue;
                };
                let want_v = Version::from_str(want).ok();
                match resolution.packages.get(&name) {
                    Some(p) if Some(&p.version) == want_v.as_ref() => {}
                    Some(p) => problems.push(format!(
                        "{}: {name} {} instead of {want}",
                        target.name, p.version
                    )),
                    None => {
                        problems.push(format!("{}: {name} missing (expected {want})", target.name))
                    }
                }
                expected.insert(name);
            }
            // packse lists either nothing or the whole set (for a universal scenario: the
            // packages every environment shares, which here is every target's whole set, as
            // no scenario with a list forks).
            if !expected.is_empty() {
                for p in resolution.packages.values() {
                    if !expected.contains(&p.name) {
                        problems.push(format!(
                            "{}: {}=={} resolved but not expected",
                            target.name, p.name, p.version
                        ));
                    }
                }
            }
        }
        Err(ResolveError::NoSolution { explanation, .. }) => {
            if s.expected.satisfiable {
                let first = explanation.lines().next().unwrap_or_default().to_string();
                problems.push(format!("{}: no solution: {first}", target.name));
            }
        }
        Err(e) => problems.push(format!("{}: {e}", target.name)),
    }
}

/// The outcome [`PER_TARGET`] writes down for this target.
fn check_per_target(
    per_target: &PerTarget,
    target: &Target,
    outcome: &TargetResult,
    problems: &mut Vec<String>,
) {
    let Some((_, want)) = per_target
        .outcomes
        .iter()
        .find(|(systems, _)| systems.contains(&target.system.as_str()))
    else {
        problems.push(format!(
            "harness: PER_TARGET gives no outcome for {}",
            target.name
        ));
        return;
    };
    match (want, outcome) {
        (Some(want), Ok(resolution)) => {
            let mut want: Vec<String> = want.iter().map(|(n, v)| format!("{n}=={v}")).collect();
            want.sort();
            let got = resolved_set(resolution);
            if got != want {
                problems.push(format!(
                    "{}: [{}] instead of [{}]",
                    target.name,
                    got.join(", "),
                    want.join(", ")
                ));
            }
        }
        (None, Ok(resolution)) => problems.push(format!(
            "{}: expected no solution, got [{}]",
            target.name,
            resolved_set(resolution).join(", ")
        )),
        (Some(_), Err(e)) => problems.push(format!("{}: {e}", target.name)),
        (None, Err(ResolveError::NoSolution { .. })) => {}
        (None, Err(e)) => problems.push(format!("{}: {e}", target.name)),
    }
}

/// Resolved packages that no root requirement applying to `target` leads to.
fn unneeded(
    requirements: &[Requirement],
    target: &Target,
    resolution: &bitpoll_resolver::TargetResolution,
) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut todo: Vec<PackageName> = requirements
        .iter()
        .filter(|r| r.marker.evaluate(target.markers(), &[]))
        .map(|r| r.name.clone())
        .collect();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(p) = resolution.packages.get(&name) {
            todo.extend(p.dependencies.iter().cloned());
        }
    }
    resolution
        .packages
        .values()
        .filter(|p| !seen.contains(&p.name))
        .map(|p| format!("{}=={}", p.name, p.version))
        .collect()
}

/// Runs every scenario, a few at a time (each has its own server and cache).
pub fn run_all(scenarios: &[Scenario]) -> Vec<ScenarioResult> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(4);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<ScenarioResult>>> = scenarios
        .iter()
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(s) = scenarios.get(i) else { break };
                *slots[i].lock().unwrap() = Some(run(s));
            });
        }
    });
    slots
        .into_iter()
        .map(|m| m.into_inner().unwrap().expect("every scenario ran"))
        .collect()
}

/// Counts per category: (passed, passed per target, failed, not applicable).
pub fn tally(results: &[ScenarioResult]) -> Vec<(String, [usize; 4])> {
    let mut rows: Vec<(String, [usize; 4])> =
        CATEGORIES.iter().map(|c| (c.to_string(), [0; 4])).collect();
    for r in results {
        let i = match r.outcome {
            Outcome::Passed => 0,
            Outcome::PassedPerTarget(_) => 1,
            Outcome::Failed(_) => 2,
            Outcome::NotApplicable(_) => 3,
        };
        if let Some(row) = rows.iter_mut().find(|(c, _)| *c == r.category) {
            row.1[i] += 1;
        }
    }
    rows
}

/// The table `cargo xtask conformance` prints, followed by every scenario that did not pass
/// as packse expects and why.
pub fn report(results: &[ScenarioResult]) -> String {
    let rows = tally(results);
    let mut out = String::new();
    let line = |out: &mut String, label: &str, n: [usize; 4]| {
        out.push_str(&format!(
            "{label:<24}{:>8}{:>12}{:>8}{:>16}{:>8}\n",
            n[0],
            n[1],
            n[2],
            n[3],
            n.iter().sum::<usize>()
        ));
    };
    out.push_str(&format!(
        "{:<24}{:>8}{:>12}{:>8}{:>16}{:>8}\n",
        "category", "passed", "per target", "failed", "not applicable", "total"
    ));
    let mut total = [0usize; 4];
    for (category, counts) in &rows {
        line(&mut out, category, *counts);
        for (t, c) in total.iter_mut().zip(counts) {
            *t += c;
        }
    }
    line(&mut out, "total", total);
    type Reason = fn(&Outcome) -> Option<&String>;
    let sections: [(&str, Reason); 3] = [
        (
            "Passed per target, where packse expects one universal resolution",
            |o| match o {
                Outcome::PassedPerTarget(why) => Some(why),
                _ => None,
            },
        ),
        ("Not applicable", |o| match o {
            Outcome::NotApplicable(why) => Some(why),
            _ => None,
        }),
        ("Failed", |o| match o {
            Outcome::Failed(why) => Some(why),
            _ => None,
        }),
    ];
    for (title, pick) in sections {
        let rows: Vec<(&ScenarioResult, &String)> = results
            .iter()
            .filter_map(|r| pick(&r.outcome).map(|why| (r, why)))
            .collect();
        if rows.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{title}:\n"));
        for (r, why) in rows {
            out.push_str(&format!("  {}/{}: {why}\n", r.category, r.name));
        }
    }
    out
}
