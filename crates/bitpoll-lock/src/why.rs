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

pub fn run(args: WhyArgs) -> anyhow::Result<ExitCode> {
    let lock = Lock::read(&args.lock).map_err(bad_input)?;
    let name = args
        .name
        .parse::<pep508_rs::PackageName>()
        .map_err(|e| bad_input(anyhow::anyhow!("`{}`: {e}", args.name)))?
        .to_string();
    if !lock.packages.iter().any(|p| p.name == name) {
        return Err(bad_input(anyhow::anyhow!(
            "{name} is not in {}",
            args.lock.display()
        )));
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
