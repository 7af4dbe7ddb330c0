//! `bitpoll-lock update`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use bitpoll_client::{IndexClient, KeptSolves};
use bitpoll_inputs::{self as inputs, InputPaths};
use bitpoll_lockfile::{Lock, Source, SCHEMA};
use bitpoll_resolver::{BuildSetup, Builds, Options, Request, SavedSolves};
use bitpoll_timings::{Category, Timings};
use clap::Args;
use pep508_rs::PackageName;

use crate::exit::{bad_input, Context};
use crate::{DEFAULT_LOCK, DEFAULT_NIXPKGS_INDEX, DEFAULT_POLICY, DEFAULT_REQUIREMENTS};

#[derive(Args, Debug, Clone)]
pub struct UpdateArgs {
    /// Requirement file (repeatable). Default: the committed Bitpoll inputs.
    #[arg(short = 'r', long = "requirement", value_name = "FILE")]
    pub requirements: Vec<PathBuf>,
    /// Resolve against the Python index only.
    #[arg(long)]
    pub no_nixpkgs: bool,
    /// The nixpkgs package index to resolve against.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_NIXPKGS_INDEX)]
    pub nixpkgs_index: PathBuf,
    #[command(flatten)]
    pub index: crate::client::IndexArgs,
    /// The name the lock records for that index (never its URL).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "pypi",
        env = "BITPOLL_LOCK_INDEX_NAME"
    )]
    pub index_name: String,
    /// Python version X.Y (default: the nixpkgs index's Python).
    #[arg(long, value_name = "X.Y")]
    pub python: Option<String>,
    /// Nix system to lock for (repeatable). Default: the four supported systems.
    #[arg(long = "system", value_name = "SYSTEM")]
    pub systems: Vec<String>,
    /// Where the lock is.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_LOCK)]
    pub lock: PathBuf,
    /// The policy file.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_POLICY)]
    pub policy: PathBuf,
    /// Allow this package to move to a newer version (repeatable); everything else keeps its pin
    /// while that pin is still valid.
    #[arg(short = 'P', long = "upgrade-package", value_name = "NAME")]
    pub upgrade_package: Vec<String>,
    /// Ignore the existing lock's pins and re-resolve everything.
    #[arg(short = 'U', long)]
    pub upgrade: bool,
    /// Ignore releases uploaded after this date (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub exclude_newer: Option<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Seconds to wait for a connection or for the next bytes of a response.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
    /// Retries of a failed request (connection errors, 429, 5xx), with backoff.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// The largest response accepted from the index, in bytes after decoding: the limit for
    /// artifacts and a ceiling for pages and metadata.
    #[arg(long, value_name = "BYTES", default_value_t = bitpoll_client::DEFAULT_MAX_RESPONSE_BYTES)]
    pub max_response_size: u64,
    /// The largest project page accepted, in bytes after decoding.
    #[arg(long, value_name = "BYTES", default_value_t = bitpoll_client::DEFAULT_MAX_PAGE_BYTES)]
    pub max_page_size: u64,
    /// The largest core metadata accepted (a metadata file, or a wheel's METADATA once
    /// inflated), in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = bitpoll_client::DEFAULT_MAX_METADATA_BYTES)]
    pub max_metadata_size: u64,
    /// Abandon a response slower than this many bytes a second over --low-speed-time
    /// (retried like a timeout); 0 turns the check off.
    #[arg(long, value_name = "BYTES", default_value_t = bitpoll_client::DEFAULT_LOW_SPEED_LIMIT)]
    pub low_speed_limit: u64,
    /// Files uploaded less than this long ago (e.g. `7 days`) are not candidates unless pinned
    /// with `==`; overrides the policy's `min-release-age`.
    #[arg(long, value_name = "AGE")]
    pub min_release_age: Option<String>,
    /// Use this release-age cut-off (RFC 3339) instead of one computed from the clock: the
    /// lock's `inputs.release_cutoff`, to reproduce it.
    #[arg(long, value_name = "TIME")]
    pub release_cutoff: Option<String>,
    /// Seconds over which --low-speed-limit is measured.
    #[arg(long, value_name = "SECS", default_value_t = bitpoll_client::DEFAULT_LOW_SPEED_TIME.as_secs())]
    pub low_speed_time: u64,
    /// Never run a build backend: an sdist whose dependencies are not static is an error
    /// (declare them in the policy's [metadata] table instead).
    #[arg(long)]
    pub no_build: bool,
    /// The Python that runs build backends (default: `python3.X` of the targets, else `python3`).
    #[arg(long, value_name = "PATH")]
    pub build_python: Option<PathBuf>,
    /// Time limit of one build-backend hook.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub build_timeout: u64,
    /// Write a timeline of the run to FILE (JSON, see docs/timings.md): every request,
    /// where the resolver waited, builds, with summaries; prints a short summary too.
    #[arg(long, value_name = "FILE")]
    pub timings: Option<PathBuf>,
    /// Solve every target, even where the solve the last run with the same inputs kept in
    /// the cache still reads the same answers (the lock is the same either way).
    #[arg(long)]
    pub solve_afresh: bool,
}

impl UpdateArgs {
    pub fn input_paths(&self) -> crate::exit::Result<InputPaths> {
        let requirements = if self.requirements.is_empty() {
            DEFAULT_REQUIREMENTS.iter().map(PathBuf::from).collect()
        } else {
            self.requirements.clone()
        };
        let systems = if self.systems.is_empty() {
            bitpoll_platform::DEFAULT_SYSTEMS
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            self.systems.clone()
        };
        let exclude_newer = self
            .exclude_newer
            .as_deref()
            .map(normalise_date)
            .transpose()?;
        Ok(InputPaths {
            requirements,
            policy: self.policy.clone(),
            nixpkgs_index: (!self.no_nixpkgs).then(|| self.nixpkgs_index.clone()),
            index_name: self.index_name.clone(),
            exclude_newer,
            systems,
            python: self.python.clone(),
            min_release_age: self.min_release_age.clone(),
            release_cutoff: self.release_cutoff.clone(),
        })
    }
}

/// Accepts `YYYY-MM-DD` (meaning the end of that day, UTC) or a full RFC 3339 time.
fn normalise_date(s: &str) -> crate::exit::Result<String> {
    // Valid is what the client can compare upload times with: one parser for both.
    if bitpoll_client::Timestamp::parse(s).is_none() {
        return Err(bad_input(anyhow::anyhow!("--exclude-newer `{s}`: expected YYYY-MM-DD or an RFC 3339 time such as 2026-01-31T12:00:00Z")));
    }
    Ok(if s.len() == 10 {
        format!("{s}T23:59:59Z")
    } else {
        s.to_string()
    })
}

/// This build of the program, for the solves kept between runs: another build may solve by
/// other rules, so it keeps its own. Its path, size and time of change; `None` (keep none)
/// when the program cannot find itself.
fn program_identity() -> Option<String> {
    let path = std::env::current_exe().ok()?;
    let meta = std::fs::metadata(&path).ok()?;
    Some(format!(
        "{} {} {} {:?}",
        env!("CARGO_PKG_VERSION"),
        path.display(),
        meta.len(),
        meta.modified().ok()?
    ))
}

pub fn run(args: UpdateArgs, quiet: bool) -> crate::exit::Result<ExitCode> {
    let started = Instant::now();
    let timings = match &args.timings {
        Some(_) => Timings::on(),
        None => Timings::off(),
    };
    let mark = timings.mark();
    let paths = args.input_paths()?;
    let loaded = inputs::load(&paths, bitpoll_client::Timestamp::now())?;
    timings.span(mark, Category::Inputs, || {
        "requirements, policy, nixpkgs index".into()
    });
    if let (Some(nixpkgs), false) = (&loaded.nixpkgs, quiet) {
        if let Some(warning) =
            bitpoll_nixpkgs::flake::flake_drift(&nixpkgs.index, std::path::Path::new("flake.lock"))
        {
            eprintln!("warning: {warning}");
        }
    }

    // The previous lock's pins are preferences: they stay while still valid (minimal churn).
    let old_lock = match Lock::read(&args.lock) {
        Ok(lock) => Some(lock),
        Err(bitpoll_lockfile::LockError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            None
        }
        Err(e) => {
            if !quiet {
                eprintln!("warning: ignoring the existing lock's pins: {e}");
            }
            None
        }
    };
    let upgrade: Vec<PackageName> = args
        .upgrade_package
        .iter()
        .map(|n| {
            n.parse::<PackageName>()
                .map_err(|e| bad_input(anyhow::anyhow!("--upgrade-package `{n}`: {e}")))
        })
        .collect::<crate::exit::Result<_>>()?;
    let mut preferences = HashMap::new();
    if let (Some(lock), false) = (&old_lock, args.upgrade) {
        for p in &lock.packages {
            let Ok(name) = p.name.parse::<PackageName>() else {
                continue;
            };
            let Ok(version) = p.version.parse() else {
                continue;
            };
            if upgrade.contains(&name) {
                continue;
            }
            preferences.entry(name).or_insert((version, p.source));
        }
    }

    let cache_dir = args
        .index
        .cache_dir
        .clone()
        .unwrap_or_else(crate::client::default_cache_dir);
    let builds = if args.no_build {
        Builds::Refused
    } else {
        let python = loaded
            .targets
            .first()
            .map(|t| t.python_full_version.to_string())
            .unwrap_or_else(|| "3".into());
        Builds::Allowed(Arc::new(
            BuildSetup::new(
                &python,
                args.build_python.clone(),
                Some(cache_dir.clone()),
                std::time::Duration::from_secs(args.build_timeout.max(1)),
            )
            .with_timings(timings.clone())
            .fetch_ahead(!args.index.offline),
        ))
    };
    // Looking for an interpreter for builds and asking pip for its index each start a
    // Python; both come before the first request, so they run side by side.
    let (host, options) = std::thread::scope(|scope| {
        let host = scope.spawn(|| match &builds {
            Builds::Allowed(setup) => setup.host_target(),
            Builds::Refused => None,
        });
        let options = args.index.options_asking(args.build_python.as_deref());
        (host.join().expect("interpreter probe panicked"), options)
    });
    let (mut options, origin) = options?;
    if !quiet {
        eprintln!("index: {} ({origin})", options.index_url.redacted());
    }
    options.concurrency = args.concurrency.max(1);
    options.timeout = std::time::Duration::from_secs(args.timeout.max(1));
    options.retries = args.retries;
    options.max_response_bytes = args.max_response_size;
    options.max_page_bytes = args.max_page_size;
    options.max_metadata_bytes = args.max_metadata_size;
    options.low_speed_limit = args.low_speed_limit;
    options.low_speed_time = std::time::Duration::from_secs(args.low_speed_time.max(1));
    options.reporter = (!quiet && std::io::stderr().is_terminal()).then(crate::progress::spinner);
    options.exclude_newer = paths.exclude_newer.clone();
    options.timings = timings.clone();
    // Build environments run on this machine: its wheels must survive the filter too.
    let mut filter_targets = loaded.targets.clone();
    filter_targets.extend(host);
    options.wheel_filter = Some(bitpoll_resolver::wheel_filter(&filter_targets));
    let client = IndexClient::new(options)?;

    let saved_solves = match (args.solve_afresh, program_identity()) {
        (false, Some(program)) => Some(SavedSolves {
            store: Arc::new(KeptSolves::new(cache_dir.clone())),
            // One slot per lock file: its next update is the run that can use it.
            slot: std::path::absolute(&args.lock)
                .unwrap_or_else(|_| args.lock.clone())
                .display()
                .to_string(),
            context: format!("{program}\n{}", loaded.fingerprint()),
        }),
        _ => None,
    };
    let resolver_options = Options {
        builds: builds.clone(),
        release_cutoff: loaded.release_window.map(|w| w.cutoff),
        timings: timings.clone(),
        offline: args.index.offline,
        saved_solves,
        ..Options::default()
    };
    let request = Request {
        requirements: &loaded.requirements,
        constraints: &loaded.constraints,
        nixpkgs: loaded.nixpkgs.as_ref(),
        policy: &loaded.policy,
        options: &resolver_options,
        preferences: &preferences,
    };
    let resolved = bitpoll_resolver::resolve(&client, &loaded.targets, &request);
    client.settle();
    if let (Builds::Allowed(setup), false) = (&builds, quiet) {
        for note in setup.notes() {
            eprintln!("note: {note}");
        }
    }
    let resolutions = resolved?;
    let mark = timings.mark();
    let merged = bitpoll_merge::merge(&paths.index_name, &resolutions)?;
    timings.span(mark, Category::Merge, || {
        "per-target resolutions into entries".into()
    });

    let mut lock = Lock {
        schema: SCHEMA,
        fingerprint: loaded.fingerprint(),
        content_sha256: String::new(),
        inputs: loaded.inputs.clone(),
        nixpkgs: loaded.nixpkgs_info.clone(),
        targets: loaded.target_infos.clone(),
        packages: merged.packages,
        build_packages: merged.build_packages,
        package_sha256: Default::default(),
    };
    lock.normalise();
    if args.release_cutoff.is_none() {
        inputs::keep_previous_cutoff(&mut lock, old_lock.as_ref());
    }
    let mark = timings.mark();
    lock.seal();
    timings.span(mark, Category::Hash, || "the lock's digests".into());
    let mark = timings.mark();
    let text = lock.to_json();
    let unchanged = std::fs::read(&args.lock).is_ok_and(|old| old == text.as_bytes());
    if unchanged {
        // A killed run may have left its temporary file; writing would remove it, so do the
        // same when there is nothing to write.
        let dir = match args.lock.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        bitpoll_lockfile::remove_stale_temp_files(dir).with_context(|| {
            format!(
                "removing stale temporary files next to {}",
                args.lock.display()
            )
        })?;
    } else {
        bitpoll_lockfile::write_atomic(&args.lock, text.as_bytes())
            .with_context(|| format!("writing {}", args.lock.display()))?;
    }
    timings.span(mark, Category::LockWrite, || {
        if unchanged { "unchanged" } else { "written" }.into()
    });
    if let (Some(path), Some(mut timeline)) = (&args.timings, timings.take_timeline()) {
        timeline.summary.cpu = crate::usage::cpu_time();
        std::fs::File::create(path)
            .and_then(|file| timeline.write_json(std::io::BufWriter::new(file)))
            .with_context(|| format!("writing the timeline to {}", path.display()))?;
        if !quiet {
            for line in timeline.brief() {
                eprintln!("timings: {line}");
            }
            eprintln!("timings: written to {}", path.display());
        }
    }
    if !quiet {
        let mut warnings: Vec<&String> = resolutions.iter().flat_map(|r| &r.warnings).collect();
        warnings.sort();
        warnings.dedup();
        for w in warnings {
            eprintln!("warning: {w}");
        }
        let nix = lock
            .packages
            .iter()
            .filter(|p| p.source == Source::Nixpkgs)
            .count();
        let stats = client.stats();
        eprintln!(
            "{} {}: {} entries ({} from nixpkgs, {} from {}) for {} targets in {:.2}s ({} requests, {} revalidated, {} from cache)",
            if unchanged { "unchanged" } else { "wrote" },
            args.lock.display(),
            lock.packages.len(),
            nix,
            lock.packages.len() - nix,
            paths.index_name,
            lock.targets.len(),
            started.elapsed().as_secs_f64(),
            stats.requests,
            stats.not_modified,
            stats.cache_hits,
        );
    }
    // What the run holds (pages, their indexes, resolutions) goes with the process: freeing
    // it piece by piece took an eighth of an offline run's CPU time. Only what must happen
    // first is done: the builds' directories removed, the progress line ended.
    if let Builds::Allowed(setup) = &builds {
        setup.wait_for_cleanup();
    }
    client.end_progress();
    std::mem::forget((client, builds, resolutions, lock, loaded));
    Ok(ExitCode::SUCCESS)
}
