//! The packse conformance harness: every scenario under `shared/conformance/packse/` becomes a
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

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use bitpoll_client::{ClientOptions, IndexClient, IndexUrl};
use bitpoll_platform::{Target, DEFAULT_SYSTEMS};
use bitpoll_policy::Policy;
use bitpoll_resolver::{Options, PackageSet, PrereleaseMode, Request, ResolveError};
use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{MarkerTree, PackageName, Requirement};
use serde::Deserialize;

use crate::server::IndexServer;
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

/// Scenarios whose expected outcome is decided in environments that no Nix target can be,
/// so that neither passing nor failing them says anything about this resolver. Each reason
/// names the environment. Everything not listed here and not excluded by an option rule must
/// pass.
const OUTSIDE_OUR_TARGETS: &[(&str, &str)] = &[
    (
        "conflict-in-fork",
        "the conflict exists only where sys_platform is `os1` or `os2`; on every Nix target \
         neither requirement applies",
    ),
    (
        "fork-non-local-fork-marker-direct",
        "expects no solution because one universal resolution cannot give `c` a different \
         version on linux and darwin when the markers sit on its parents; a lock of per-target \
         resolutions does exactly that (c 1.0.0 on Linux, 2.0.0 on macOS)",
    ),
    (
        "fork-non-local-fork-marker-transitive",
        "expects no solution because one universal resolution does not fork on markers of \
         transitive requirements; per-target resolutions need c<2 only on Linux and c>=2 only \
         on macOS, and both hold",
    ),
    (
        "preferences-dependent-forking-conflicting",
        "expects no solution because one universal resolution that keeps a previous lock's \
         `cleaver 1.0.0` must use foo 1.0.0 and bar 1.0.0 together; per target only one of \
         them is required (foo==1 on linux, bar==1 elsewhere), so every target resolves",
    ),
    (
        "specific-architecture",
        "`c` (needed on aarch64) has no sdist and only a `manylinux2010_aarch64` wheel, a tag no \
         installer accepts (aarch64 manylinux starts at manylinux2014, glibc 2.17); a universal \
         lock records it unchecked, but a lock for aarch64-linux must install it",
    ),
];

/// The scenarios [`OUTSIDE_OUR_TARGETS`] names, so a test can notice a name that no longer
/// matches a scenario.
pub fn listed_outside_our_targets() -> impl Iterator<Item = &'static str> {
    OUTSIDE_OUR_TARGETS.iter().map(|(name, _)| *name)
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
    Failed(String),
    NotApplicable(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Passed => f.write_str("passed"),
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
    if let Some((_, why)) = OUTSIDE_OUR_TARGETS.iter().find(|(n, _)| *n == s.name) {
        return Ok(Err(why.to_string()));
    }
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
                "the project requires Python {rp}, and the lock's Python is {python}"
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
    let plan = match plan(s) {
        Ok(Ok(plan)) => plan,
        Ok(Err(why)) => {
            result.outcome = Outcome::NotApplicable(why);
            return result;
        }
        Err(e) => {
            result.outcome = Outcome::Failed(format!("harness: {e}"));
            return result;
        }
    };
    let universe = Universe {
        packages: s.packages.clone(),
    };
    let server = IndexServer::start(universe.build().routes);
    let cache = tempfile::tempdir().expect("temporary cache directory");
    // With the wheel filter `update` uses, so that every scenario also checks that dropping
    // unusable wheels while reading pages changes no outcome.
    let client = IndexUrl::parse(&server.index_url()).and_then(|url| {
        let mut options = ClientOptions::new(url, cache.path().to_path_buf());
        options.wheel_filter = Some(bitpoll_resolver::wheel_filter(&plan.targets));
        IndexClient::new(options)
    });
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            result.outcome = Outcome::Failed(format!("harness: index client: {e}"));
            return result;
        }
    };
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
        match bitpoll_resolver::resolve_target(&client, target, &request) {
            Ok(resolution) => {
                resolved += 1;
                if !s.expected.satisfiable && !s.resolver_options.universal {
                    let got: Vec<String> = resolution
                        .packages
                        .values()
                        .map(|p| format!("{}=={}", p.name, p.version))
                        .collect();
                    problems.push(format!(
                        "{}: expected no solution, got [{}]",
                        target.name,
                        got.join(", ")
                    ));
                    continue;
                }
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
                        None => problems
                            .push(format!("{}: {name} missing (expected {want})", target.name)),
                    }
                }
            }
            Err(ResolveError::NoSolution { explanation, .. }) => {
                if s.expected.satisfiable {
                    let first = explanation.lines().next().unwrap_or_default().to_string();
                    problems.push(format!("{}: no solution: {first}", target.name));
                }
                result.explanations.push((target.name.clone(), explanation));
            }
            Err(e) => problems.push(format!("{}: {e}", target.name)),
        }
    }
    if !s.expected.satisfiable && s.resolver_options.universal && resolved == plan.targets.len() {
        problems.push("expected no solution, but every target resolved".into());
    }
    if !problems.is_empty() {
        result.outcome = Outcome::Failed(problems.join("; "));
    }
    result
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

/// Counts per category: (passed, failed, not applicable).
pub fn tally(results: &[ScenarioResult]) -> Vec<(String, [usize; 3])> {
    let mut rows: Vec<(String, [usize; 3])> =
        CATEGORIES.iter().map(|c| (c.to_string(), [0; 3])).collect();
    for r in results {
        let i = match r.outcome {
            Outcome::Passed => 0,
            Outcome::Failed(_) => 1,
            Outcome::NotApplicable(_) => 2,
        };
        if let Some(row) = rows.iter_mut().find(|(c, _)| *c == r.category) {
            row.1[i] += 1;
        }
    }
    rows
}

/// The table `cargo xtask conformance` prints, followed by every non-pass and its reason.
pub fn report(results: &[ScenarioResult]) -> String {
    let rows = tally(results);
    let mut out = String::new();
    out.push_str(&format!(
        "{:<24}{:>8}{:>8}{:>16}{:>8}\n",
        "category", "passed", "failed", "not applicable", "total"
    ));
    let mut total = [0usize; 3];
    for (category, [p, f, n]) in &rows {
        out.push_str(&format!(
            "{category:<24}{p:>8}{f:>8}{n:>16}{:>8}\n",
            p + f + n
        ));
        total[0] += p;
        total[1] += f;
        total[2] += n;
    }
    out.push_str(&format!(
        "{:<24}{:>8}{:>8}{:>16}{:>8}\n",
        "total",
        total[0],
        total[1],
        total[2],
        total.iter().sum::<usize>()
    ));
    let na: Vec<&ScenarioResult> = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::NotApplicable(_)))
        .collect();
    if !na.is_empty() {
        out.push_str("\nNot applicable:\n");
        for r in na {
            if let Outcome::NotApplicable(why) = &r.outcome {
                out.push_str(&format!("  {}/{}: {why}\n", r.category, r.name));
            }
        }
    }
    let failed: Vec<&ScenarioResult> = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
        .collect();
    if !failed.is_empty() {
        out.push_str("\nFailed:\n");
        for r in failed {
            if let Outcome::Failed(why) = &r.outcome {
                out.push_str(&format!("  {}/{}: {why}\n", r.category, r.name));
            }
        }
    }
    out
}
