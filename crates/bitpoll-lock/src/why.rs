//! `bitpoll-lock why NAME`: every path from the top-level requirements to a package, per
//! target, with each package's source.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;

use bitpoll_lockfile::{Lock, Package, Source};
use clap::Args;

use crate::exit::bad_input;
use crate::DEFAULT_LOCK;

#[derive(Args, Debug)]
pub struct WhyArgs {
    /// The package to explain.
    pub name: String,
    #[arg(long, value_name = "FILE", default_value = DEFAULT_LOCK)]
    pub lock: PathBuf,
    /// Only this target.
    #[arg(long, value_name = "SYSTEM")]
    pub system: Option<String>,
}

fn label(p: &Package) -> String {
    match p.source {
        Source::Nixpkgs => format!(
            "{} {} (nixpkgs: {})",
            p.name,
            p.version,
            p.attr.as_deref().unwrap_or("?")
        ),
        Source::Index => format!(
            "{} {} ({})",
            p.name,
            p.version,
            p.index.as_deref().unwrap_or("index")
        ),
    }
}

/// `roots` is [`crate::lockref::roots`] of the lock, read once for all targets.
pub fn paths(
    lock: &Lock,
    roots: &[(String, String, String)],
    target: &str,
    name: &str,
) -> Vec<Vec<String>> {
    let pkgs = lock.packages_for(target);
    let mut results = Vec::new();
    for (root, req, file) in roots {
        let Some(start) = pkgs.get(root.as_str()) else {
            continue;
        };
        let mut stack = vec![(
            start,
            vec![format!("{file}: {req}"), label(start)],
            BTreeSet::from([root.clone()]),
        )];
        while let Some((p, path, seen)) = stack.pop() {
            if p.name == name {
                results.push(path);
                continue;
            }
            for dep in p.dependencies_for(target) {
                if seen.contains(dep) {
                    continue;
                }
                if let Some(d) = pkgs.get(dep.as_str()) {
                    let mut path = path.clone();
                    path.push(label(d));
                    let mut seen = seen.clone();
                    seen.insert(dep.clone());
                    stack.push((d, path, seen));
                }
            }
        }
    }
    results.sort();
    results
}

/// Which sdists `name` helps build, as "name version (source) builds sdist-name version",
/// with the targets where it does.
pub fn build_uses(lock: &Lock, name: &str, system: Option<&str>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &lock.packages {
        let Some(build) = &p.build_system else {
            continue;
        };
        for t in &p.targets {
            if system.is_some_and(|s| s != t) {
                continue;
            }
            let builds_here = p
                .artifacts
                .iter()
                .any(|a| a.kind == bitpoll_lockfile::ArtifactKind::Sdist && a.targets.contains(t));
            let Some(version) = build.environment_for(t).get(name).cloned() else {
                continue;
            };
            if !builds_here {
                continue;
            }
            let entry = lock
                .build_packages
                .iter()
                .find(|b| b.name == name && b.version == version && b.targets.contains(t));
            let what = match entry {
                Some(b) => format!("{} builds {} {}", label(b), p.name, p.version),
                None => format!("{name} {version} builds {} {}", p.name, p.version),
            };
            out.entry(what).or_default().push(t.clone());
        }
    }
    out
}

pub fn run(args: WhyArgs) -> anyhow::Result<ExitCode> {
    let lock = Lock::read(&args.lock).map_err(bad_input)?;
    let name = args
        .name
        .parse::<pep508_rs::PackageName>()
        .map_err(|e| bad_input(anyhow::anyhow!("`{}`: {e}", args.name)))?
        .to_string();
    let in_runtime = lock.packages.iter().any(|p| p.name == name);
    let builds = build_uses(&lock, &name, args.system.as_deref());
    if !in_runtime && builds.is_empty() {
        return Err(bad_input(anyhow::anyhow!(
            "{name} is not in {}",
            args.lock.display()
        )));
    }
    for (what, targets) in &builds {
        println!("{what} ({}):", targets.join(", "));
        println!("  a build package: never part of the runtime environment");
    }
    if !in_runtime {
        return Ok(ExitCode::SUCCESS);
    }
    // Targets that see the same paths are printed together.
    let roots = crate::lockref::roots(&lock);
    let mut by_paths: BTreeMap<Vec<Vec<String>>, Vec<String>> = BTreeMap::new();
    for t in &lock.targets {
        if args.system.as_ref().is_some_and(|s| s != &t.name) {
            continue;
        }
        by_paths
            .entry(paths(&lock, &roots, &t.name, &name))
            .or_default()
            .push(t.name.clone());
    }
    for (paths, targets) in by_paths {
        println!("{} ({}):", name, targets.join(", "));
        if paths.is_empty() {
            println!("  not needed on these targets");
        }
        for path in paths {
            println!("  {}", path.join(" -> "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
