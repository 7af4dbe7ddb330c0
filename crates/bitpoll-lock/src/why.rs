//! `bitpoll-lock why NAME`: every path from the top-level requirements to a package, per
//! target, with each package's source.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use bitpoll_lockfile::Lock;
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

pub fn run(args: WhyArgs) -> crate::exit::Result<ExitCode> {
    let lock = Lock::read(&args.lock)?;
    let name = args
        .name
        .parse::<pep508_rs::PackageName>()
        .map_err(|e| bad_input(anyhow::anyhow!("`{}`: {e}", args.name)))?
        .to_string();
    let in_runtime = lock.packages.iter().any(|p| p.name == name);
    let builds = bitpoll_review::why::build_uses(&lock, &name, args.system.as_deref());
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
    let roots = bitpoll_review::roots(&lock);
    let mut by_paths: BTreeMap<Vec<Vec<String>>, Vec<String>> = BTreeMap::new();
    for t in &lock.targets {
        if args.system.as_ref().is_some_and(|s| s != &t.name) {
            continue;
        }
        by_paths
            .entry(bitpoll_review::why::paths(&lock, &roots, &t.name, &name))
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
