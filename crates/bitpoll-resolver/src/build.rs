//! Metadata of sdists that do not declare their dependencies statically, from their build
//! backend (see `bitpoll-build`), in an environment of wheels resolved and hash-checked here.
//!
//! The build environment is resolved for the machine that runs the backend (its system and
//! the interpreter's Python), index-only and wheels-only: a build environment made of sdists
//! would need builds of its own. Answers are shared by the targets of a run (one build per
//! sdist) and cached on disk by `bitpoll-build`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bitpoll_build::{Ahead, Builder, Interpreter, Isolation, Sdist, Wheel};
use bitpoll_metadata::{parse_core_metadata, CoreMetadata, MetadataSource, SdistInfo};
use bitpoll_platform::Target;
use bitpoll_policy::Policy;
use bitpoll_source::{DistFile, PackageSource};
use pep508_rs::Requirement;

use std::collections::BTreeMap;

use pep508_rs::PackageName;

use crate::{
    BuildEnvironment, Options, PackageSet, Request, ResolveError, ResolvedPackage, ResolvedSource,
    TargetResolution,
};

/// Whether sdists whose metadata is not static may have their build backend run.
#[derive(Debug, Clone, Default)]
pub enum Builds {
    /// Never run package code (`--no-build`): such an sdist is an error that names the
    /// policy key which would supply its dependencies.
    #[default]
    Refused,
    Allowed(Arc<BuildSetup>),
}

/// How builds run; the interpreter is looked for on first use, so a run that builds nothing
/// needs none.
#[derive(Debug)]
pub struct BuildSetup {
    /// The targets' Python version (`3.13`), which the interpreter should have.
    python: String,
    explicit: Option<PathBuf>,
    cache: Option<PathBuf>,
    timeout: Duration,
    interpreter: OnceLock<Result<Interpreter, String>>,
    builder: OnceLock<Result<Arc<Builder>, String>>,
    /// The machine as a target, for build environments: its tag table is large enough that
    /// making it per build showed in offline runs.
    host: OnceLock<Result<Target, String>>,
    /// By the sdist's sha256: one build for all targets.
    results: Memo<Built>,
    extras: Memo<Vec<String>>,
    notes: Mutex<Vec<String>>,
    timings: bitpoll_timings::Timings,
    /// Whether build environments are fetched and resolved ahead of need (see
    /// [`EarlyBuilds`] and [`warm_environment`]).
    ahead: bool,
    /// The run's page indexes, shared by its resolutions and its build environments': an
    /// index of setuptools' page, made for each build environment, showed in warm runs.
    pub(crate) indexes: crate::candidates::PageIndexes,
}

/// One answer per sdist, computed once however many targets ask.
type Memo<T> = Mutex<HashMap<String, Arc<OnceLock<Result<T, String>>>>>;

/// Metadata a backend produced, and what produced it.
#[derive(Debug, Clone)]
pub struct Built {
    pub metadata: Arc<CoreMetadata>,
    /// The interpreter that ran the hook, `cpython-3.13.1`.
    pub interpreter: String,
}

impl BuildSetup {
    /// `python`: the targets' version; `explicit`: `--build-python`; `cache`: the cache
    /// root; `timeout`: per hook.
    pub fn new(
        python: &str,
        explicit: Option<PathBuf>,
        cache: Option<PathBuf>,
        timeout: Duration,
    ) -> Self {
        Self {
            python: python.to_string(),
            explicit,
            cache,
            timeout,
            interpreter: OnceLock::new(),
            builder: OnceLock::new(),
            host: OnceLock::new(),
            results: Mutex::default(),
            extras: Mutex::default(),
            notes: Mutex::default(),
            timings: bitpoll_timings::Timings::off(),
            ahead: true,
            indexes: Default::default(),
        }
    }

    /// Whether to fetch and resolve build environments ahead of need, which hides round
    /// trips behind the solve. Off when every answer is on disk (`--offline`): there it only
    /// repeats work, measured at half again the CPU time of an offline run.
    pub fn fetch_ahead(mut self, ahead: bool) -> Self {
        self.ahead = ahead;
        self
    }

    /// Records hook runs, unpacking and the build environments' resolutions there.
    pub fn with_timings(mut self, timings: bitpoll_timings::Timings) -> Self {
        self.timings = timings;
        self
    }

    /// What a user should know about how builds ran (another Python version than the
    /// targets', no network isolation), once each.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = self.notes.lock().expect("notes lock").clone();
        // Only once a hook ran: a run answered from the cache ran no package code.
        let isolation = self.builder.get().and_then(|b| b.as_ref().ok());
        if let Some(Isolation::None(why)) = isolation.and_then(|b| b.isolation_if_known()) {
            notes.push(format!("build backends run with network access: {why}"));
        }
        notes
    }

    /// Waits until the working directories of the run's builds are removed, which the
    /// builder otherwise does when dropped.
    pub fn wait_for_cleanup(&self) {
        if let Some(Ok(builder)) = self.builder.get() {
            builder.wait_for_cleanup();
        }
    }

    fn note(&self, text: String) {
        let mut notes = self.notes.lock().expect("notes lock");
        if !notes.contains(&text) {
            notes.push(text);
        }
    }

    fn interpreter(&self) -> Result<Interpreter, String> {
        self.interpreter
            .get_or_init(|| {
                let remember = self.cache.as_ref().map(|c| c.join("interpreters-v1.json"));
                Interpreter::find(&self.python, self.explicit.as_deref(), remember.as_deref())
                    .map_err(|e| e.to_string())
            })
            .clone()
    }

    /// The target builds run on (this machine, the interpreter's Python), or `None` when no
    /// interpreter is found (a build then says why). The client's wheel filter must keep
    /// this target's wheels too: build environments are made of them.
    pub fn host_target(&self) -> Option<Target> {
        host_target(&self.interpreter().ok()?).ok()
    }

    fn builder(&self) -> Result<Arc<Builder>, String> {
        self.builder
            .get_or_init(|| {
                let interpreter = self.interpreter()?;
                let want: String = self.python.split('.').take(2).collect::<Vec<_>>().join(".");
                if interpreter.minor() != want {
                    self.note(format!(
                        "sdist metadata is built with {} ({}): no Python {want} was found (pass --build-python)",
                        interpreter.describe(),
                        interpreter.path.display()
                    ));
                }
                Ok(Arc::new(
                    Builder::new(interpreter, self.cache.clone(), self.timeout, None)
                        .with_timings(self.timings.clone()),
                ))
            })
            .clone()
    }

    /// The metadata `file`'s backend prepares; one build per sdist for all targets.
    pub(crate) fn metadata(
        &self,
        source: &dyn PackageSource,
        file: &DistFile,
        info: &SdistInfo,
    ) -> Result<Built, String> {
        let sha256 = sha256_of(file)?;
        memo(&self.results, &sha256, || {
            Job::run(self, source, file, info, &sha256, |job| {
                let mut requires = job.declared.clone();
                let env = job.environment(&requires)?;
                // Usually one process answers both questions (see
                // `Builder::requires_and_metadata`); the answer about extra requirements is the
                // one `extra_requires` gives for the locked build environment too.
                let (extra, built) = job
                    .builder
                    .requires_and_metadata(&job.sdist(), &wheels(&env), &|| job.fetch(&env))
                    .map_err(|e| e.to_string())?;
                memo(&self.extras, &sha256, || Ok(extra.clone()))?;
                let built = match built {
                    Some(built) => built,
                    None => {
                        requires.extend(parse_requirements(&extra, &file.filename)?);
                        let env = job.environment(&requires)?;
                        job.builder
                            .metadata(&job.sdist(), &wheels(&env), &|| job.fetch(&env))
                            .map_err(|e| e.to_string())?
                    }
                };
                let metadata =
                    parse_core_metadata(built.metadata.as_bytes(), MetadataSource::SdistBuild)
                        .map_err(|e| {
                            format!(
                                "{}: the metadata its backend prepared ({}) is invalid: {e}",
                                file.filename, built.hook
                            )
                        })?;
                Ok(Built {
                    metadata: Arc::new(metadata),
                    interpreter: job.builder.interpreter().describe(),
                })
            })
        })
    }

    /// Fetches, without running anything, the build environment of the PEP 517 fallback
    /// (setuptools) for this machine, without waiting for any sdist: it is what an sdist
    /// without `pyproject.toml` builds with, and setuptools is in most other sdists' build
    /// requirements too. Started when a hint first guesses a target will install an sdist no
    /// answer is on disk for, its page, metadata and wheel come while that sdist downloads,
    /// instead of after.
    pub(crate) fn prepare_fallback(&self, source: &dyn PackageSource) {
        let fallback = [bitpoll_metadata::FALLBACK_BUILD_REQUIRES.to_string()];
        let (Ok(requires), Ok(host)) = (
            parse_requirements(&fallback, "the PEP 517 fallback"),
            self.host_target_cached(),
        ) else {
            return;
        };
        std::thread::scope(|scope| {
            for requirement in &requires {
                scope.spawn(|| self.fetch_likely_wheel(source, requirement));
            }
            let scratch = std::path::Path::new("");
            if let Ok(env) = environment(source, self, host, &requires, scratch) {
                for (artifact, _) in env {
                    source.prefetch_file(&artifact);
                }
            }
        });
    }

    /// Starts downloading the newest wheel of a declared build requirement for this machine
    /// as soon as its page is here, without waiting for its metadata (a round trip or two by
    /// range requests) and the solve of the environment: the build that needs it then finds
    /// it in the cache, or on its way. A backend's wheel can be large (maturin's carries its
    /// binary, 9 MB), and in readthedocs' set the question to `cryptography`'s backend waited
    /// 0.2-0.3 s for it after the solve of its environment. The wheel is the one the
    /// environment resolves to unless another requirement or the index changes that; if
    /// not, this costs a download, never an answer.
    fn fetch_likely_wheel(&self, source: &dyn PackageSource, requirement: &Requirement) {
        let Ok(host) = self.host_target_cached() else {
            return;
        };
        if !requirement.evaluate_markers(host.markers(), &[]) {
            return;
        }
        let Ok(page) = source.project(&requirement.name) else {
            return;
        };
        let index = self.indexes.get(&requirement.name, &page);
        let range = match &requirement.version_or_url {
            Some(pep508_rs::VersionOrUrl::VersionSpecifier(spec)) => {
                crate::version::Range::from_specifiers(spec)
            }
            _ => crate::version::Range::any(),
        };
        let likely = crate::candidates::likely_artifact(
            &index,
            host.tags(),
            &host.python_full_version,
            &range,
        );
        if let Some(likely) = likely.filter(|l| l.installs.is_wheel()) {
            source.prefetch_file(&likely.installs);
        }
    }

    /// This machine as a target (see [`BuildSetup::host_target`]), made once.
    fn host_target_cached(&self) -> Result<&Target, String> {
        let builder = self.builder()?;
        self.host
            .get_or_init(|| host_target(builder.interpreter()))
            .as_ref()
            .map_err(|e| e.clone())
    }

    /// Whether answers about the sdist `file` are on disk, so that its backend will
    /// probably not run this time.
    fn answered(&self, file: &DistFile) -> bool {
        match (self.builder(), sha256_of(file)) {
            (Ok(builder), Ok(sha256)) => builder.has_answers(&sha256),
            _ => false,
        }
    }

    /// What the backend adds to `[build-system].requires` for building a wheel
    /// (`get_requires_for_build_wheel`), asked once per sdist.
    pub(crate) fn extra_requires(
        &self,
        source: &dyn PackageSource,
        file: &DistFile,
        info: &SdistInfo,
    ) -> Result<Vec<String>, String> {
        let sha256 = sha256_of(file)?;
        memo(&self.extras, &sha256, || {
            Job::run(self, source, file, info, &sha256, |job| {
                let env = job.environment(&job.declared)?;
                job.builder
                    .requires_for_build_wheel(&job.sdist(), &wheels(&env), &|| job.fetch(&env))
                    .map_err(|e| e.to_string())
            })
        })
    }
}

/// Hands sdists to a thread that asks their build backends, ahead of need, what their
/// wheel builds require.
///
/// Each target locks the build environment of every sdist it installs, and asking a backend
/// means resolving, fetching and unpacking its build requirements and running Python: seconds
/// that, after the solve, would add to every cold run. Started when the solver first reads an
/// sdist's static metadata, or before, when a prefetch hint guesses that a target will install
/// it (see [`EarlyHint`]; the lookahead's hints reach sdists deep in the tree long before the
/// solver does), the question is usually answered by the time the solve is over. Answers are
/// memoised per sdist. An sdist read or guessed and then dropped costs a backend run no lock
/// uses, which the end of the run waits for (up to the build time limit); which sdists are
/// read or guessed does not depend on timing, so that work is the same on every run. A
/// question starts only when fewer hooks than cores run, while a metadata build the solver
/// waits for starts at once (see `bitpoll_build`), and it runs at a lower CPU priority.
///
/// When a hint guesses that a target will install an sdist whose release has no wheel to
/// read the metadata of, and the sdist declares none, its metadata is built from then on.
/// The solver cannot go on without that metadata, and a build takes about a second, which
/// otherwise the solve waits for, one sdist after another.
#[derive(Clone)]
pub(crate) struct EarlyBuilds(Arc<std::sync::mpsc::Sender<Early>>);

enum Early {
    /// The solver read the sdist's static metadata, or a hint guessed a target will install
    /// the sdist: ask what the backend adds to the build requirements.
    Requires(Arc<DistFile>, Arc<str>),
    /// A hint guessed a target will install the sdist, and no wheel of its release can
    /// stand in for its metadata.
    Lone(Arc<DistFile>, Arc<str>),
}

impl EarlyBuilds {
    /// A thread in `scope` that starts one backend question per sdist sent, each in a thread
    /// of its own; it ends when every sender is gone, and the scope waits for the questions.
    ///
    /// Each message also names the target that sent it: the build environment that target
    /// will lock for the sdist is resolved once ahead of time (see [`warm_environment`]).
    pub(crate) fn spawn<'scope, 'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        setup: &'env Arc<BuildSetup>,
        source: &'env dyn PackageSource,
        targets: &'env [Target],
        request: &'env Request<'env>,
    ) -> Self {
        let (sender, receiver) = std::sync::mpsc::channel::<Early>();
        scope.spawn(move || {
            // One job per sdist, whoever asks first: each job asks the backend about the
            // build requirements, one way or the other.
            let mut started = std::collections::HashSet::new();
            let mut warmed = std::collections::HashSet::new();
            let mut fallback = false;
            for early in receiver {
                let (file, target, lone) = match early {
                    Early::Requires(file, target) => (file, target, false),
                    Early::Lone(file, target) => (file, target, true),
                };
                // Whether this happens depends on the hints and the disk, not on timing.
                if setup.ahead && !fallback && !setup.answered(&file) {
                    fallback = true;
                    scope.spawn(move || setup.prepare_fallback(source));
                }
                // The backend is asked anyway once the sdist is read or guessed: its answer
                // can be waited for, and the environment warmed with it.
                let asked = !lone;
                if setup.ahead && warmed.insert((file.filename.clone(), target.clone(), asked)) {
                    if let Some(target) = targets.iter().find(|t| *t.name == *target) {
                        let file = file.clone();
                        let indexes = &setup.indexes;
                        let asker = asked.then_some(&**setup);
                        scope.spawn(move || {
                            warm_environment(source, indexes, asker, target, request, &file)
                        });
                    }
                }
                if !started.insert(file.filename.clone()) {
                    continue;
                }
                scope.spawn(move || {
                    // The metadata the hint fetches anyway; only when it is not static is
                    // there metadata to build, and that build answers the question about
                    // build requirements too.
                    let build_metadata = lone
                        && matches!(
                            source.core_metadata(&file),
                            Err(bitpoll_source::SourceError::NoStaticMetadata { .. })
                        );
                    if let Ok(info) = source.sdist_info(&file) {
                        if build_metadata {
                            let _ = setup.metadata(source, &file, &info);
                        } else {
                            let _ = setup.extra_requires(source, &file, &info);
                        }
                    }
                });
            }
        });
        Self(Arc::new(sender))
    }

    /// The solver of `target` read `sdist`'s static metadata.
    pub(crate) fn start(&self, sdist: &Arc<DistFile>, target: &Target) {
        // The receiver outlives every sender; a send cannot fail while resolving.
        let _ = self
            .0
            .send(Early::Requires(sdist.clone(), target.name.as_str().into()));
    }

    /// A handle for prefetch hints of `target`, which the client may run after the
    /// resolution is over.
    pub(crate) fn hint(&self, target: &Target) -> EarlyHint {
        EarlyHint {
            sender: Arc::downgrade(&self.0),
            target: target.name.as_str().into(),
        }
    }
}

/// What a prefetch hint holds of [`EarlyBuilds`]: it does not keep the thread alive (the
/// resolution must not wait for hints still queued in the client), and once the resolution
/// is over, sending does nothing.
pub(crate) struct EarlyHint {
    sender: std::sync::Weak<std::sync::mpsc::Sender<Early>>,
    target: Arc<str>,
}

impl EarlyHint {
    /// The target will probably install `likely.installs`: when that is an sdist, a lone
    /// one (no wheel's metadata stands in for its own) that declares none needs a build,
    /// which the solver would otherwise wait for when it asks; any other has its backend
    /// asked about its build requirements, as when the solver reads it.
    pub(crate) fn likely(&self, likely: &crate::candidates::Likely) {
        if likely.installs.is_wheel() {
            return;
        }
        let (sdist, target) = (likely.installs.clone(), self.target.clone());
        self.send(if likely.lone_sdist {
            Early::Lone(sdist, target)
        } else {
            Early::Requires(sdist, target)
        });
    }

    /// The target will probably install `sdist`: ask its backend about its build
    /// requirements, and build nothing, whatever its release has.
    pub(crate) fn ask(&self, sdist: &Arc<DistFile>) {
        self.send(Early::Requires(sdist.clone(), self.target.clone()));
    }

    fn send(&self, early: Early) {
        if let Some(sender) = self.sender.upgrade() {
            let _ = sender.send(early);
        }
    }
}

/// Resolves, and forgets, the build environment `target` will lock for `sdist`: the pages
/// and metadata that takes (wheels of the target's platform, which the machine's own build
/// environment does not need) are then in the source's keeping when [`environments`]
/// resolves it again after the solve. Without this, a target's last sdist had its build
/// environment's pages fetched one round trip after another once everything else was done.
///
/// First from the declared build requirements; then, with `setup` (given when the backend
/// is asked about this sdist anyway), from what its backend adds, as `environments` will.
fn warm_environment(
    source: &dyn PackageSource,
    indexes: &crate::candidates::PageIndexes,
    setup: Option<&BuildSetup>,
    target: &Target,
    request: &Request<'_>,
    sdist: &DistFile,
) {
    let Ok(info) = source.sdist_info(sdist) else {
        return;
    };
    let Ok(mut requires) = parse_requirements(&info.build_requires, &sdist.filename) else {
        return;
    };
    let _ = resolve_environment(source, indexes, target, request, &requires);
    let Some(extra) = setup.and_then(|s| s.extra_requires(source, sdist, &info).ok()) else {
        return;
    };
    let extra: Vec<String> = extra
        .into_iter()
        .filter(|r| !info.build_requires.contains(r))
        .collect();
    match parse_requirements(&extra, &sdist.filename) {
        Ok(parsed) if !parsed.is_empty() => {
            requires.extend(parsed);
            let _ = resolve_environment(source, indexes, target, request, &requires);
        }
        _ => {}
    }
}

fn sha256_of(file: &DistFile) -> Result<String, String> {
    file.sha256.as_ref().map(|s| s.to_string()).ok_or_else(|| {
        format!(
            "{}: the index gives no sha256 for it, so it is not built",
            file.filename
        )
    })
}

fn memo<T: Clone>(
    map: &Memo<T>,
    key: &str,
    compute: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    let slot = map
        .lock()
        .expect("build memo lock")
        .entry(key.to_string())
        .or_default()
        .clone();
    slot.get_or_init(compute).clone()
}

type EnvFiles = Vec<(Arc<DistFile>, Wheel)>;

fn wheels(env: &EnvFiles) -> Vec<Wheel> {
    env.iter().map(|(_, w)| w.clone()).collect()
}

/// One hook run's surroundings: where its files go and what it runs on.
struct Job<'a> {
    builder: Arc<Builder>,
    setup: &'a BuildSetup,
    host: &'a Target,
    source: &'a dyn PackageSource,
    file: &'a DistFile,
    info: &'a SdistInfo,
    sha256: &'a str,
    work: tempfile::TempDir,
    sdist_path: PathBuf,
    ahead: Option<Ahead>,
    /// The sdist's `[build-system].requires`, parsed once for the body and the fetches.
    declared: Vec<Requirement>,
}

impl<'a> Job<'a> {
    /// `body` with a job for `file`; the sdist's sources are unpacked on a thread of their
    /// own meanwhile, and, unless offline, the likely wheel of each declared build
    /// requirement is fetched (see [`BuildSetup::fetch_likely_wheel`]); neither when answers
    /// about it are on disk (a warm run's hooks rarely run).
    fn run<T>(
        setup: &'a BuildSetup,
        source: &'a dyn PackageSource,
        file: &'a DistFile,
        info: &'a SdistInfo,
        sha256: &'a str,
        body: impl FnOnce(&Job<'a>) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut job = Job::new(setup, source, file, info, sha256)?;
        if job.builder.has_answers(sha256) {
            return body(&job);
        }
        let (sender, ahead) = Ahead::pending();
        job.ahead = Some(ahead);
        let declared: &[Requirement] = if setup.ahead { &job.declared } else { &[] };
        std::thread::scope(|scope| {
            let builder = &job.builder;
            scope.spawn(move || {
                builder.unpack_ahead(sender, &file.filename, |path| {
                    Ok(source.download_to(file, path)?)
                })
            });
            for requirement in declared {
                scope.spawn(move || setup.fetch_likely_wheel(source, requirement));
            }
            body(&job)
        })
    }

    fn new(
        setup: &'a BuildSetup,
        source: &'a dyn PackageSource,
        file: &'a DistFile,
        info: &'a SdistInfo,
        sha256: &'a str,
    ) -> Result<Self, String> {
        let builder = setup.builder()?;
        let host = setup.host_target_cached()?;
        let work = builder
            .work_dir("job-")
            .map_err(|e| format!("cannot create a directory: {e}"))?;
        let sdist_path = work.path().join(&*file.filename);
        let declared = parse_requirements(&info.build_requires, &file.filename)?;
        Ok(Self {
            builder,
            setup,
            host,
            source,
            file,
            info,
            sha256,
            work,
            sdist_path,
            ahead: None,
            declared,
        })
    }

    fn sdist(&self) -> Sdist<'_> {
        Sdist {
            path: &self.sdist_path,
            filename: &self.file.filename,
            sha256: self.sha256,
            backend: self.info.build_backend.as_deref(),
            backend_path: &self.info.backend_path,
            ahead: self.ahead.as_ref(),
        }
    }

    fn environment(&self, requires: &[Requirement]) -> Result<EnvFiles, String> {
        environment(
            self.source,
            self.setup,
            self.host,
            requires,
            self.work.path(),
        )
        .map_err(|e| {
            format!(
                "{}: cannot make its build environment for {} ({}): {e}",
                self.file.filename,
                self.host.name,
                self.builder.interpreter().describe()
            )
        })
    }

    /// Downloads (each checked against its sha256) only when a hook has to run.
    fn fetch(&self, env: &EnvFiles) -> Result<(), bitpoll_build::FetchError> {
        // The hook reads the sources unpacked ahead instead, when they still wait for it.
        let unpacked = self.ahead.as_ref().is_some_and(Ahead::holds_tree);
        if !unpacked && !self.sdist_path.exists() {
            self.source.download_to(self.file, &self.sdist_path)?;
        }
        for (artifact, wheel) in env {
            if !wheel.path.exists() && self.builder.needs_file(wheel) {
                self.source.download_to(artifact, &wheel.path)?;
            }
        }
        Ok(())
    }
}

fn parse_requirements(lines: &[String], origin: &str) -> Result<Vec<Requirement>, String> {
    lines
        .iter()
        .map(|line| {
            bitpoll_pep508::parse(line)
                .map_err(|e| format!("{origin}: invalid build requirement `{line}`: {e}"))
        })
        .collect()
}

/// The target a build runs on: this machine with the interpreter's version.
fn host_target(interpreter: &Interpreter) -> Result<Target, String> {
    let system = match (std::env::consts::ARCH, std::env::consts::OS) {
        (arch @ ("x86_64" | "aarch64"), "linux") => format!("{arch}-linux"),
        (arch @ ("x86_64" | "aarch64"), "macos") => format!("{arch}-darwin"),
        (arch, os) => return Err(format!("builds cannot run on {arch}-{os}")),
    };
    Target::new(&system, &interpreter.version).map_err(|e| e.to_string())
}

/// Resolves `requires` to wheels for `host`; each will be downloaded to `dir`.
fn environment(
    source: &dyn PackageSource,
    setup: &BuildSetup,
    host: &Target,
    requires: &[Requirement],
    dir: &std::path::Path,
) -> Result<EnvFiles, String> {
    let context = (None, &Policy::default(), &setup.timings, !setup.ahead);
    let resolution = resolve_wheels_only(source, &setup.indexes, host, requires, context).map_err(
        |e| match e {
            ResolveError::NoSolution { explanation, .. } => explanation,
            other => other.to_string(),
        },
    )?;
    let mut wheels = Vec::new();
    for package in resolution.packages.values() {
        let ResolvedSource::Index { artifact, .. } = &package.source else {
            continue;
        };
        let Some(sha256) = artifact.sha256.as_ref().map(|s| s.to_string()) else {
            return Err(format!("{}: no sha256 on the index", artifact.filename));
        };
        let wheel = Wheel {
            path: dir.join(&*artifact.filename),
            filename: artifact.filename.to_string(),
            sha256,
        };
        wheels.push((artifact.clone(), wheel));
    }
    Ok(wheels)
}

/// Resolves a target's build environment, with the run's nixpkgs index and policy.
fn resolve_environment(
    source: &dyn PackageSource,
    indexes: &crate::candidates::PageIndexes,
    target: &Target,
    request: &Request<'_>,
    requires: &[Requirement],
) -> Result<TargetResolution, ResolveError> {
    let context = (
        request.nixpkgs,
        request.policy,
        &request.options.timings,
        request.options.offline,
    );
    resolve_wheels_only(source, indexes, target, requires, context)
}

/// Resolves `requires` for `target` from wheels only, without preferences: a build
/// environment, the machine's (no nixpkgs index, no policy) or a target's.
fn resolve_wheels_only(
    source: &dyn PackageSource,
    indexes: &crate::candidates::PageIndexes,
    target: &Target,
    requires: &[Requirement],
    (nixpkgs, policy, timings, offline): (
        Option<&bitpoll_nixpkgs::Nixpkgs>,
        &Policy,
        &bitpoll_timings::Timings,
        bool,
    ),
) -> Result<TargetResolution, ResolveError> {
    let options = Options {
        no_build: PackageSet::All,
        timings: timings.clone(),
        offline,
        ..Options::default()
    };
    let request = Request {
        requirements: requires,
        constraints: &[],
        nixpkgs,
        policy,
        options: &options,
        preferences: &HashMap::new(),
    };
    crate::provider::resolve_target(source, indexes, target, &request, None, crate::Role::Alone)
}

/// The build environment of every package `packages` installs from an sdist, for `target`.
pub(crate) fn environments(
    source: &dyn PackageSource,
    indexes: &crate::candidates::PageIndexes,
    target: &Target,
    request: &Request<'_>,
    packages: &BTreeMap<PackageName, ResolvedPackage>,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<PackageName, BuildEnvironment>, ResolveError> {
    let sdists: Vec<(&PackageName, &ResolvedPackage, &Arc<DistFile>)> = packages
        .iter()
        .filter_map(|(name, p)| match &p.source {
            ResolvedSource::Index { artifact, .. } if !artifact.is_wheel() => {
                Some((name, p, artifact))
            }
            _ => None,
        })
        .collect();
    // What each sdist's build requires. Asking a backend runs a Python process and may need
    // its own build environment fetched first, so the sdists are asked side by side (most
    // answers are memoised already: the questions started while the solve went on).
    let timings = &request.options.timings;
    let wait = (!sdists.is_empty()).then(|| {
        timings.guard(bitpoll_timings::Category::Wait, || {
            format!(
                "build backends of {} sdists asked for their build requirements",
                sdists.len()
            )
        })
    });
    let asked = crate::parallel::map(&sdists, |(name, package, artifact)| {
        let info = source.sdist_info(artifact)?;
        let mut requires = info.build_requires.clone();
        let mut warning = None;
        if let Builds::Allowed(setup) = &request.options.builds {
            // This hook runs package code on this machine, which may lack what the package's
            // own build needs (a C library's config tool, say); the target's Nix build has
            // it. Its answer refines the environment, so a failure is reported, not fatal.
            timings.demand_build(&artifact.filename);
            match setup.extra_requires(source, artifact, &info) {
                Ok(extra) => {
                    for r in extra {
                        if !requires.contains(&r) {
                            requires.push(r);
                        }
                    }
                }
                Err(e) => {
                    warning = Some(format!(
                        "{name} {}: its build environment is locked from [build-system].requires \
                         alone, since asking its backend for more failed: {e}",
                        package.version
                    ))
                }
            }
        }
        Ok::<_, ResolveError>((info, requires, warning))
    });
    drop(wait);
    let mut asked: Vec<(Arc<SdistInfo>, Vec<String>)> = asked
        .into_iter()
        .map(|answer| {
            let (info, requires, warning) = answer?;
            warnings.extend(warning);
            Ok((info, requires))
        })
        .collect::<Result<_, ResolveError>>()?;
    // Most sdists of a target ask for the same thing (setuptools): each distinct set is
    // resolved once, and the distinct sets side by side.
    let mut distinct: Vec<(&Vec<String>, &Arc<DistFile>, usize)> = Vec::new();
    for (i, (_, requires)) in asked.iter().enumerate() {
        if !distinct.iter().any(|(r, _, _)| *r == requires) {
            distinct.push((requires, sdists[i].2, i));
        }
    }
    let resolved = crate::parallel::map(&distinct, |(requires, artifact, i)| {
        let (name, package, _) = sdists[*i];
        let parsed =
            parse_requirements(requires, &artifact.filename).map_err(ResolveError::Build)?;
        resolve_environment(source, indexes, target, request, &parsed)
            .map(|resolution| resolution.packages)
            .map_err(|e| match e {
                ResolveError::NoSolution { explanation, .. } => ResolveError::Build(format!(
                    "{name} {}: no build environment for {} on {}:\n{explanation}",
                    package.version, artifact.filename, target.name
                )),
                other => other,
            })
    });
    let mut by_requires: HashMap<Vec<String>, BTreeMap<PackageName, ResolvedPackage>> =
        HashMap::new();
    for ((requires, _, _), packages) in distinct.iter().zip(resolved) {
        by_requires.insert((*requires).clone(), packages?);
    }
    let mut out = BTreeMap::new();
    for ((name, _, _), (info, requires)) in sdists.iter().zip(asked.drain(..)) {
        let packages = by_requires[&requires].clone();
        out.insert(
            (*name).clone(),
            BuildEnvironment {
                backend: info
                    .build_backend
                    .clone()
                    .unwrap_or_else(|| bitpoll_build::FALLBACK_BACKEND.to_string()),
                requires,
                packages,
            },
        );
    }
    Ok(out)
}
