//! The client for the Python package index.
//!
//! It finds which index to use ([`discover_index_url`]), then answers the resolver's
//! questions about it through [`IndexClient`]: which files a project has (the PEP 691
//! JSON simple API), what a file's dependencies are (PEP 658 core-metadata files, falling
//! back to the wheel itself or an sdist's static metadata), and the bytes of an artifact,
//! checked against the sha256 the index declared.
//!
//! Wheels without a metadata file are read with HTTP range requests where the server
//! allows, so only their central directory and `METADATA` travel.
//!
//! The resolver is synchronous and multi-threaded, so the client is too from the outside:
//! every method blocks, and may be called from many threads at once. Inside, one tokio
//! runtime drives all requests, which lets dozens of them share a few connections while
//! a semaphore bounds how many are in flight. Results are memoised per key so that two
//! threads asking for the same page cause one request.
//!
//! Responses are kept in an on-disk HTTP cache that honours `Cache-Control`, `ETag` and
//! `Last-Modified`; content named by its hash is cached forever. In offline mode only the
//! cache is used. Credentials in the index URL are sent with requests but redacted from
//! every error, `Debug` output and log line.
//!
//! It must not decide anything about resolution (which version, which file: it answers
//! questions, as a [`bitpoll_source::PackageSource`]), nor draw progress itself: counters go
//! to the caller's [`Report`].

mod cache;
mod dns;
mod error;
mod index_url;
mod lazy_wheel;
mod provenance;

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitpoll_metadata::{
    interpret_sdist, is_tar_sdist, sdist_members, tar_sdist_members, CoreMetadata, MetadataSource,
    SdistInfo, SdistMembers,
};
use bytes::Bytes;
use pep508_rs::PackageName;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, ACCEPT_ENCODING, CONTENT_RANGE, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, RANGE, RETRY_AFTER,
};
use reqwest::StatusCode;
use tokio::sync::{OnceCell, Semaphore};
use url::Url;

use bitpoll_timings::{Mark, Origin, RequestInfo, RequestKind, Timings};

use crate::cache::{
    now_secs, sha256_hex, CacheControl, DiskCache, EntryMeta, EntryReader, EntryWriter, Staging,
};
pub use crate::error::ClientError;
pub use crate::index_url::{
    ask_pip_of, discover_index_url, discover_index_url_with, pip_config_files, redact_url,
    strip_credentials, DiscoveryEnv, IndexOrigin, IndexUrl, NoPipDefault, INDEX_URL_VARIABLES,
};
use crate::lazy_wheel::{
    parse_content_range, remote_wheel_metadata, ByteRange, Outcome, RangeReply,
};
use bitpoll_simple::is_simple_json;
pub use bitpoll_simple::{
    parse_project_page, DistFile, PageParser, ProjectPage, Sha256Digest, Timestamp, WheelFilter,
    WheelVerdict, SIMPLE_JSON_V1,
};

/// Solves the resolver keeps for the next run, in the cache beside the answers they were
/// read from (see `bitpoll-resolver`'s saved solves): one file per slot, holding the last
/// bytes written there and the key they were written under; best effort.
#[derive(Debug, Clone)]
pub struct KeptSolves(DiskCache);

impl KeptSolves {
    pub fn new(cache_dir: PathBuf) -> Self {
        KeptSolves(DiskCache::new(cache_dir))
    }
}

impl bitpoll_source::SolveStore for KeptSolves {
    fn read(&self, slot: &[u8; 32], key: &[u8; 32]) -> Option<Vec<u8>> {
        self.0.read_page(&self.0.solve_path(slot), key)
    }

    fn write(&self, slot: &[u8; 32], key: &[u8; 32], bytes: &[u8]) {
        self.0.write_page(&self.0.solve_path(slot), key, bytes);
    }
}

/// How the client behaves.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub index_url: IndexUrl,
    pub cache_dir: PathBuf,
    /// Use only the cache, whatever its age; never touch the network.
    pub offline: bool,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Extra attempts after a failed one for errors worth retrying.
    pub retries: u32,
    /// Limit for connecting and for each wait on data; a slow but steady download is not
    /// cut off.
    pub timeout: Duration,
    /// Told how the client is doing as it works; `None` for nobody.
    pub reporter: Option<Reporter>,
    /// RFC 3339 date-time (or a date, meaning midnight UTC): ignore files uploaded later.
    pub exclude_newer: Option<String>,
    /// The largest response body accepted, in bytes, after decoding: the limit for
    /// artifacts, and a ceiling for the two limits below.
    pub max_response_bytes: u64,
    /// The largest project page accepted, in decoded bytes.
    pub max_page_bytes: u64,
    /// The largest core-metadata file accepted, in bytes, whether served on its own or read
    /// out of a wheel.
    pub max_metadata_bytes: u64,
    /// A response that delivers fewer than `low_speed_limit` bytes a second, measured over
    /// `low_speed_time`, is abandoned (and retried like a timeout). 0 turns the check off.
    pub low_speed_limit: u64,
    pub low_speed_time: Duration,
    /// Which wheels of each project page to keep; all when `None`.
    pub wheel_filter: Option<WheelFilter>,
    /// Where every request (and every answer the cache gives instead) is recorded.
    pub timings: Timings,
}

impl ClientOptions {
    /// Defaults: online, 32 requests in flight, 3 retries, 30 s timeout, no progress.
    pub fn new(index_url: IndexUrl, cache_dir: PathBuf) -> Self {
        ClientOptions {
            index_url,
            cache_dir,
            offline: false,
            concurrency: 32,
            retries: 3,
            timeout: Duration::from_secs(30),
            reporter: None,
            exclude_newer: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_page_bytes: DEFAULT_MAX_PAGE_BYTES,
            max_metadata_bytes: DEFAULT_MAX_METADATA_BYTES,
            low_speed_limit: DEFAULT_LOW_SPEED_LIMIT,
            low_speed_time: DEFAULT_LOW_SPEED_TIME,
            wheel_filter: None,
            timings: Timings::off(),
        }
    }
}

/// Someone watching the client work (the command line draws a spinner with it). Called from
/// the client's threads, often: keep it cheap.
pub trait Report: Send + Sync {
    /// The counters after a request, a cache hit or a retry.
    fn progress(&self, stats: ClientStats);
    /// The client is done (dropped).
    fn finish(&self) {}
}

/// A shared [`Report`].
#[derive(Clone)]
pub struct Reporter(pub Arc<dyn Report>);

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reporter")
    }
}

/// Counters for logging and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Revalidations answered `304 Not Modified`.
    pub not_modified: u64,
    /// Answers taken from the disk cache without any request.
    pub cache_hits: u64,
    /// Response body bytes received.
    pub bytes_downloaded: u64,
    /// Project pages taken as an earlier run parsed them, their JSON not read again.
    pub parsed_pages: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    not_modified: AtomicU64,
    cache_hits: AtomicU64,
    bytes: AtomicU64,
    parsed_pages: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ClientStats {
        ClientStats {
            requests: self.requests.load(Ordering::Relaxed),
            not_modified: self.not_modified.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            bytes_downloaded: self.bytes.load(Ordering::Relaxed),
            parsed_pages: self.parsed_pages.load(Ordering::Relaxed),
        }
    }
}

type Memo<K, T> = Mutex<HashMap<K, Arc<OnceCell<Result<T, ClientError>>>>>;

/// Everything the request futures need; kept apart from the runtime so that a task never
/// owns the runtime it runs on (dropping a runtime inside itself panics).
/// Large enough for the biggest wheels people lock (CUDA builds run past 2 GiB are not our
/// use case); small enough that a runaway response fails instead of exhausting memory.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1 << 30;

/// Project pages of real projects stay within tens of MiB, even those with thousands of
/// releases; every MiB of headroom is a MiB a compression bomb gets to inflate.
pub const DEFAULT_MAX_PAGE_BYTES: u64 = 128 << 20;

/// Core metadata is headers plus a long description; the largest real ones are a few MiB.
pub const DEFAULT_MAX_METADATA_BYTES: u64 = bitpoll_metadata::MAX_UNCOMPRESSED_BYTES;

/// Like curl's `--speed-limit`/`--speed-time`: slower than 1 KiB/s for 30 s is a stalled
/// transfer, however regularly its bytes trickle in (which `timeout` alone would allow).
pub const DEFAULT_LOW_SPEED_LIMIT: u64 = 1024;
pub const DEFAULT_LOW_SPEED_TIME: Duration = Duration::from_secs(30);

/// What a response is, for the size limit that applies to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Page,
    Metadata,
    Artifact,
}

/// A size limit and the option that sets it, for the error message.
#[derive(Debug, Clone, Copy)]
struct Limit {
    bytes: u64,
    option: &'static str,
}

struct Shared {
    max_response_bytes: u64,
    max_page_bytes: u64,
    max_metadata_bytes: u64,
    low_speed_limit: u64,
    low_speed_time: Duration,
    wheel_filter: Option<WheelFilter>,
    /// `None` offline, where nothing is sent: making one loads the TLS roots, a few
    /// milliseconds that were a thirtieth of an offline run.
    http: Option<reqwest::Client>,
    index: IndexUrl,
    cache: DiskCache,
    offline: bool,
    retries: u32,
    exclude_newer: Option<Timestamp>,
    in_flight: Semaphore,
    /// Taken, besides an `in_flight` permit, by each request of a prefetch, so that a
    /// quarter of the permits stay free for the requests a solver waits for. A cold run
    /// hints every requirement's page at once: readthedocs' first metadata read waited
    /// 250 ms behind 32 prefetches in flight before it was even sent.
    speculative: Semaphore,
    projects: Memo<PackageName, Arc<ProjectPage>>,
    metadata: Memo<String, Arc<CoreMetadata>>,
    sdists: Memo<String, Arc<SdistInfo>>,
    publishers: Memo<String, Option<String>>,
    /// Artifacts (by sha256) this run downloaded, see [`Shared::wheel_metadata`].
    downloaded: Mutex<std::collections::HashSet<String>>,
    /// Stored files (by sha256) whose bytes this run checked against that hash: opened
    /// again, they are not hashed again (a large sdist is opened by the reader of its
    /// metadata and again for its build; scipy's is 42 MB).
    verified: Mutex<std::collections::HashSet<String>>,
    downloads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    counters: Counters,
    reporter: Option<Reporter>,
    timings: Timings,
}

tokio::task_local! {
    /// Set for the futures a prefetch starts: what they request nobody has asked for yet.
    static SPECULATIVE: bool;
    /// The fact (the path of a page, or of the file whose metadata is read) the requests of
    /// a future serve, so a timeline can tell whether a speculative one was used.
    static FACT: String;
}

/// `fut`, its requests attributed to `fact` (see [`FACT`]) when a timeline is recorded.
async fn serving<T>(timings: &Timings, fact: &Url, fut: impl Future<Output = T>) -> T {
    let fact = if timings.is_on() {
        fact.path().to_string()
    } else {
        String::new()
    };
    FACT.scope(fact, fut).await
}

struct Inner {
    runtime: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
    /// Prefetches started and not yet waited for (see [`IndexClient::settle`]).
    prefetches: Prefetches,
}

/// Prefetches started and not yet waited for.
type Prefetches = Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>;

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(reporter) = &self.shared.reporter {
            reporter.0.finish();
        }
        // Background prefetches may still be running; don't wait for them.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A blocking, thread-safe client for one package index. Cheap to clone.
///
/// Methods block the calling thread until the answer is there, also when called from
/// async code (which should then prefer `spawn_blocking`).
#[derive(Clone)]
pub struct IndexClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for IndexClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexClient")
            .field("index", &self.inner.shared.index)
            .field("offline", &self.inner.shared.offline)
            .finish_non_exhaustive()
    }
}

impl IndexClient {
    pub fn new(options: ClientOptions) -> Result<Self, ClientError> {
        let cache = DiskCache::new(options.cache_dir.clone());
        cache.remove_retired();
        let exclude_newer = match &options.exclude_newer {
            Some(text) => Some(Timestamp::parse(text).ok_or_else(|| {
                ClientError::InvalidOption(format!(
                    "--exclude-newer {text:?} is not an RFC 3339 date-time or a YYYY-MM-DD date"
                ))
            })?),
            None => None,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bitpoll-client")
            .enable_all()
            .build()
            .map_err(|e| ClientError::io(&options.cache_dir, e))?;
        let http = (!options.offline)
            .then(|| {
                reqwest::Client::builder()
                    .user_agent(concat!("bitpoll-lock/", env!("CARGO_PKG_VERSION")))
                    .connect_timeout(options.timeout)
                    .read_timeout(options.timeout)
                    .pool_max_idle_per_host(options.concurrency.max(1))
                    .tcp_keepalive(Duration::from_secs(60))
                    .dns_resolver(Arc::new(dns::HedgedResolver::new(options.timings.clone())))
                    .gzip(true)
                    .redirect(reqwest::redirect::Policy::custom(
                        |attempt| match redirect_refusal(attempt.previous(), attempt.url()) {
                            Some(reason) => attempt.error(reason),
                            None => attempt.follow(),
                        },
                    ))
                    .build()
            })
            .transpose()
            .map_err(|e| ClientError::network(options.index_url.redacted(), e))?;
        let shared = Arc::new(Shared {
            max_response_bytes: options.max_response_bytes,
            max_page_bytes: options.max_page_bytes,
            max_metadata_bytes: options.max_metadata_bytes,
            low_speed_limit: options.low_speed_limit,
            low_speed_time: options.low_speed_time.max(Duration::from_millis(100)),
            wheel_filter: options.wheel_filter,
            http,
            index: options.index_url,
            cache,
            offline: options.offline,
            retries: options.retries,
            exclude_newer,
            in_flight: Semaphore::new(options.concurrency.max(1)),
            // Below four permits, none is held back: prefetches still need one.
            speculative: Semaphore::new(options.concurrency.max(1) - options.concurrency / 4),
            projects: Mutex::default(),
            metadata: Mutex::default(),
            sdists: Mutex::default(),
            publishers: Mutex::default(),
            downloaded: Mutex::default(),
            verified: Mutex::default(),
            downloads: Mutex::default(),
            counters: Counters::default(),
            reporter: options.reporter,
            timings: options.timings,
        });
        Ok(IndexClient {
            inner: Arc::new(Inner {
                runtime: Some(runtime),
                shared,
                prefetches: Prefetches::default(),
            }),
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.inner
            .runtime
            .as_ref()
            .expect("runtime lives as long as the client")
    }

    /// Runs a request future to completion on the client's runtime.
    fn run<T, F, Fut>(&self, make: F) -> T
    where
        F: FnOnce(Arc<Shared>) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let fut = make(self.inner.shared.clone());
        if tokio::runtime::Handle::try_current().is_err() {
            // The usual case: drive the future on the calling thread, so that parsing
            // runs in parallel across the caller's threads.
            return self.runtime().block_on(fut);
        }
        // Called from inside some async runtime, where nesting `block_on` would panic:
        // run on the client's workers and wait for the answer.
        let (tx, rx) = std::sync::mpsc::channel();
        self.runtime().spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().expect("the client runtime outlives its tasks")
    }

    /// The index this client talks to.
    pub fn index_url(&self) -> &IndexUrl {
        &self.inner.shared.index
    }

    /// The files of a project. A project the index does not know is
    /// [`ClientError::NotFound`].
    ///
    /// With `exclude_newer`, files uploaded later are left out, and so are files whose
    /// upload time the index does not give: they cannot be shown to be old enough.
    pub fn project(&self, name: &PackageName) -> Result<Arc<ProjectPage>, ClientError> {
        let shared = &self.inner.shared;
        shared
            .timings
            .demand(|| shared.index.project_url(name).path().to_string());
        let name = name.clone();
        self.run(|shared| async move { shared.project(&name).await })
    }

    /// Starts fetching a project page in the background.
    pub fn prefetch_project(&self, name: &PackageName) {
        let shared = self.inner.shared.clone();
        let name = name.clone();
        self.speculate(async move {
            let _ = shared.project(&name).await;
        });
    }

    /// Runs a prefetch on the client's runtime, its requests marked speculative.
    fn speculate(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.speculator().speculate(fut)
    }

    /// What starts prefetches from inside the runtime, where the client's blocking methods
    /// must not be called (and which must not keep the runtime alive).
    fn speculator(&self) -> Speculator {
        Speculator {
            runtime: self.runtime().handle().clone(),
            shared: self.inner.shared.clone(),
            prefetches: self.inner.prefetches.clone(),
        }
    }

    /// Waits until every prefetch started so far has finished.
    ///
    /// A run that ended with prefetches still queued or in flight would have sent some of
    /// them and not others, depending on timing; waiting makes the requests a run sends a
    /// function of its inputs and the index alone. What this wait costs is in the timeline
    /// (`drain`).
    pub fn settle(&self) {
        let mark = self.inner.shared.timings.mark();
        loop {
            let pending =
                std::mem::take(&mut *self.inner.prefetches.lock().expect("prefetches lock"));
            if pending.is_empty() {
                break;
            }
            self.run(|_| async move {
                for handle in pending {
                    let _ = handle.await;
                }
            });
        }
        self.inner
            .shared
            .timings
            .span(mark, bitpoll_timings::Category::Drain, || {
                "waiting for prefetches still in flight".into()
            });
    }

    /// Starts fetching a project page in the background and then the core metadata of the
    /// file `pick` chooses from it. A task on the client's runtime rather than a thread per
    /// call: a resolution starts hundreds of these, and threads cost memory (and malloc
    /// arenas) while they wait on the network.
    pub fn prefetch_project_then<F>(&self, name: &PackageName, pick: F)
    where
        F: FnOnce(&Arc<ProjectPage>) -> Option<Arc<DistFile>> + Send + 'static,
    {
        bitpoll_source::Hints::prefetch_then(
            &self.speculator(),
            name,
            Box::new(pick),
            Box::new(|_, _| {}),
        );
    }

    /// A file's core metadata: the PEP 658 metadata file when the index offers one,
    /// otherwise the wheel's `METADATA`, otherwise the sdist's static metadata
    /// ([`ClientError::NoStaticMetadata`] when it has none).
    pub fn core_metadata(&self, file: &DistFile) -> Result<Arc<CoreMetadata>, ClientError> {
        self.demand(file);
        // A solver that backtracks asks for the same files many times: an answer already
        // there needs no trip through the runtime.
        if let Some(answer) = settled(&self.inner.shared.metadata, &file.identity()) {
            return answer;
        }
        let file = file.clone();
        self.run(|shared| async move { shared.core_metadata(&file).await })
    }

    /// Starts fetching a file's core metadata in the background.
    pub fn prefetch_metadata(&self, file: &DistFile) {
        let shared = self.inner.shared.clone();
        let file = file.clone();
        self.speculate(async move {
            let _ = shared.core_metadata(&file).await;
        });
    }

    /// Starts downloading a file into the cache in the background; only a file with a
    /// declared sha256 can be kept there.
    pub fn prefetch_file(&self, file: &DistFile) {
        if file.sha256.is_none() {
            return;
        }
        let shared = self.inner.shared.clone();
        let file = file.clone();
        self.speculate(async move {
            let _ = shared.download_blob(&file).await;
        });
    }

    /// Downloads an sdist and reads what it says without a build.
    pub fn sdist_info(&self, file: &DistFile) -> Result<Arc<SdistInfo>, ClientError> {
        self.demand(file);
        let file = file.clone();
        self.run(|shared| async move { shared.sdist_info(&file).await })
    }

    /// The publisher identity of a file's PEP 740 provenance (see `provenance.rs`); `None`
    /// when the index lists no provenance for it, or lists one it does not serve (404).
    pub fn publisher(&self, file: &DistFile) -> Result<Option<String>, ClientError> {
        let mut answers = self.publishers(std::slice::from_ref(file));
        answers.pop().expect("one answer per file")
    }

    /// [`Self::publisher`] of every file, in order, asked side by side within one wait: a
    /// resolution asks for all its files at its end, where one at a time would add a round
    /// trip each, and a thread each to wait on them was most of what an offline run spent
    /// starting threads.
    pub fn publishers<F: std::borrow::Borrow<DistFile>>(
        &self,
        files: &[F],
    ) -> Vec<Result<Option<String>, ClientError>> {
        let asks: Vec<Option<(Url, String)>> = files
            .iter()
            .map(|file| {
                let file = file.borrow();
                let url = file.provenance_url()?;
                self.inner.shared.timings.demand(|| url.path().to_string());
                Some((url, format!("the provenance of {}", file.filename)))
            })
            .collect();
        let count = asks.len();
        self.run(|shared| async move {
            let mut set = tokio::task::JoinSet::new();
            for (i, ask) in asks.into_iter().enumerate() {
                let Some((url, label)) = ask else { continue };
                let shared = shared.clone();
                set.spawn(async move { (i, shared.publisher(url, label).await) });
            }
            let mut answers: Vec<Result<Option<String>, ClientError>> =
                (0..count).map(|_| Ok(None)).collect();
            while let Some(done) = set.join_next().await {
                let (i, answer) = done.expect("a provenance task does not panic");
                answers[i] = answer;
            }
            answers
        })
    }

    /// The index's JSON API document for one release (`<api>/<name>/<version>/json`, see
    /// [`IndexUrl::json_api_base`]); `None` when the index has no JSON API or does not
    /// know the release there.
    pub fn release_json(&self, name: &str, version: &str) -> Result<Option<Bytes>, ClientError> {
        let Some(base) = self.inner.shared.index.json_api_base() else {
            return Ok(None);
        };
        let Ok(url) = base.join(&format!("{name}/{version}/json")) else {
            return Ok(None);
        };
        let label = format!("the JSON API document of {name} {version}");
        self.run(|shared| async move {
            match shared
                .fetch_cached_bytes(&url, &label, Kind::Metadata)
                .await
            {
                Ok(body) => Ok(Some(body)),
                Err(ClientError::Status {
                    status: 404 | 410, ..
                }) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    /// The bytes of a file, checked against its declared sha256.
    pub fn download(&self, file: &DistFile) -> Result<Bytes, ClientError> {
        self.demand(file);
        let file = file.clone();
        self.run(|shared| async move { shared.download(&file).await })
    }

    /// A file's bytes, checked against its declared sha256, copied to `dest`; a file the
    /// cache holds is copied by the kernel, never read into memory.
    pub fn download_to(&self, file: &DistFile, dest: &std::path::Path) -> Result<(), ClientError> {
        self.demand(file);
        let file = file.clone();
        let dest = dest.to_path_buf();
        self.run(|shared| async move {
            match shared.download_blob(&file).await? {
                // The handle whose bytes were checked, not the path: std's copy between two
                // files stays in the kernel (copy_file_range).
                Blob::File(mut checked, _) => tokio::task::spawn_blocking(move || {
                    std::fs::File::create(&dest)
                        .and_then(|mut out| std::io::copy(&mut checked, &mut out))
                        .map(drop)
                        .map_err(|e| ClientError::io(dest, e))
                })
                .await
                .expect("a file copy does not panic"),
                Blob::Memory(bytes) => {
                    std::fs::write(&dest, &bytes).map_err(|e| ClientError::io(dest, e))
                }
            }
        })
    }

    /// Ends the progress display (which dropping the last handle does too).
    pub fn end_progress(&self) {
        if let Some(reporter) = &self.inner.shared.reporter {
            reporter.0.finish();
        }
    }

    /// Marks a file's facts as asked for, for the timeline's speculation accounting.
    fn demand(&self, file: &DistFile) {
        self.inner
            .shared
            .timings
            .demand(|| file.url().path().to_string());
    }

    pub fn stats(&self) -> ClientStats {
        self.inner.shared.counters.snapshot()
    }
}

/// Starts prefetches on the client's runtime; see [`IndexClient::speculator`].
#[derive(Clone)]
struct Speculator {
    runtime: tokio::runtime::Handle,
    shared: Arc<Shared>,
    prefetches: Prefetches,
}

impl Speculator {
    fn speculate(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let handle = self.runtime.spawn(SPECULATIVE.scope(true, fut));
        let mut pending = self.prefetches.lock().expect("prefetches lock");
        pending.retain(|h| !h.is_finished());
        pending.push(handle);
    }
}

impl bitpoll_source::Hints for Speculator {
    fn prefetch_then(
        &self,
        name: &PackageName,
        pick: bitpoll_source::Pick,
        then: bitpoll_source::Then,
    ) {
        let more = self.clone();
        let name = name.clone();
        self.speculate(async move {
            let Ok(page) = more.shared.project(&name).await else {
                return;
            };
            let Some(file) = pick(&page) else {
                return;
            };
            if let Ok(metadata) = more.shared.core_metadata(&file).await {
                then(&more, &metadata);
            }
        });
    }
}

/// The index as the resolver sees it.
impl bitpoll_source::PackageSource for IndexClient {
    fn project(&self, name: &PackageName) -> Result<Arc<ProjectPage>, bitpoll_source::SourceError> {
        Ok(IndexClient::project(self, name)?)
    }

    fn prefetch(&self, name: &PackageName, pick: bitpoll_source::Pick) {
        self.prefetch_project_then(name, pick)
    }

    fn prefetch_then(
        &self,
        name: &PackageName,
        pick: bitpoll_source::Pick,
        then: bitpoll_source::Then,
    ) {
        bitpoll_source::Hints::prefetch_then(&self.speculator(), name, pick, then)
    }

    fn core_metadata(
        &self,
        file: &DistFile,
    ) -> Result<Arc<CoreMetadata>, bitpoll_source::SourceError> {
        Ok(IndexClient::core_metadata(self, file)?)
    }

    fn prefetch_file(&self, file: &DistFile) {
        IndexClient::prefetch_file(self, file)
    }

    fn sdist_info(&self, file: &DistFile) -> Result<Arc<SdistInfo>, bitpoll_source::SourceError> {
        Ok(IndexClient::sdist_info(self, file)?)
    }

    fn download(&self, file: &DistFile) -> Result<Bytes, bitpoll_source::SourceError> {
        Ok(IndexClient::download(self, file)?)
    }

    fn download_to(
        &self,
        file: &DistFile,
        dest: &std::path::Path,
    ) -> Result<(), bitpoll_source::SourceError> {
        Ok(IndexClient::download_to(self, file, dest)?)
    }

    fn publisher(&self, file: &DistFile) -> Result<Option<String>, bitpoll_source::SourceError> {
        Ok(IndexClient::publisher(self, file)?)
    }

    fn publishers(
        &self,
        files: &[Arc<DistFile>],
    ) -> Vec<Result<Option<String>, bitpoll_source::SourceError>> {
        IndexClient::publishers(self, files)
            .into_iter()
            .map(|answer| Ok(answer?))
            .collect()
    }
}

/// A response read to the end.
struct RawResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// A response's status line and headers; the body went to a [`BodySink`].
struct ResponseHead {
    status: StatusCode,
    headers: HeaderMap,
    final_url: Url,
}

/// Why reading a body stopped early.
enum Stop {
    TooLarge,
    TooSlow,
    Sink(std::io::Error),
}

/// Why one attempt failed in a way that may be worth retrying.
enum Failure {
    Http(reqwest::Error),
    TooSlow,
}

/// Where a response body goes as it arrives.
trait BodySink {
    /// Starts over, for a retried request.
    fn reset(&mut self) -> std::io::Result<()>;
    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()>;
    /// The error to report when writing fails.
    fn error(&self, source: std::io::Error) -> ClientError;
}

impl BodySink for Vec<u8> {
    fn reset(&mut self) -> std::io::Result<()> {
        self.clear();
        Ok(())
    }
    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(chunk);
        Ok(())
    }
    fn error(&self, source: std::io::Error) -> ClientError {
        ClientError::Io {
            path: PathBuf::from("(memory)"),
            source: source.into(),
        }
    }
}

impl<W: Staging> BodySink for W {
    fn reset(&mut self) -> std::io::Result<()> {
        self.staged().reset()
    }
    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.staged().write(chunk)
    }
    fn error(&self, source: std::io::Error) -> ClientError {
        ClientError::Io {
            path: self.destination().to_path_buf(),
            source: source.into(),
        }
    }
}

/// A response body on its way into the cache, or into memory where the cache is unwritable.
enum Sink<W> {
    Disk(W),
    Memory(Vec<u8>),
}

impl<W: BodySink> Sink<W> {
    fn new(writer: std::io::Result<W>) -> Self {
        match writer {
            Ok(writer) => Sink::Disk(writer),
            // An unwritable cache costs memory, not the answer.
            Err(_) => Sink::Memory(Vec::new()),
        }
    }
}

impl<W: BodySink> BodySink for Sink<W> {
    fn reset(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Disk(writer) => writer.reset(),
            Sink::Memory(body) => BodySink::reset(body),
        }
    }
    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Disk(writer) => writer.write(chunk),
            Sink::Memory(body) => BodySink::write(body, chunk),
        }
    }
    fn error(&self, source: std::io::Error) -> ClientError {
        match self {
            Sink::Disk(writer) => writer.error(source),
            Sink::Memory(body) => body.error(source),
        }
    }
}

/// An artifact whose hash was checked: a file in the cache, or bytes where the cache cannot
/// be written.
enum Blob {
    File(std::fs::File, PathBuf),
    Memory(Bytes),
}

impl Blob {
    fn into_bytes(self) -> Result<Bytes, ClientError> {
        match self {
            Blob::File(mut file, path) => {
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut file, &mut data).map_err(|source| {
                    ClientError::Io {
                        path,
                        source: source.into(),
                    }
                })?;
                Ok(data.into())
            }
            Blob::Memory(bytes) => Ok(bytes),
        }
    }
}

/// `std::io::Write` for an [`EntryWriter`], for copying a body between entries.
struct WriterAdapter<'a>(&'a mut EntryWriter);

impl std::io::Write for WriterAdapter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.staged().write(buf).map(|()| buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Cached pages larger than this are parsed as a stream rather than read whole first. Most
/// pages are far smaller (a median of tens of KiB) and gain the speed; the few of several
/// MiB are never held whole.
const STREAMED_PAGE_BYTES: u64 = 1 << 20;

/// A response body: a stream from the cache, or bytes in memory.
enum Body {
    Entry(EntryReader),
    Memory(Bytes),
}

impl Body {
    fn into_bytes(self) -> Result<Bytes, std::io::Error> {
        match self {
            Body::Entry(entry) => entry.into_bytes(),
            Body::Memory(bytes) => Ok(bytes),
        }
    }
}

/// A body from the network or the HTTP cache.
struct Fetched {
    body: Body,
    content_type: Option<String>,
    /// The URL relative links resolve against (credentials restored when same-origin).
    base: Url,
}

/// How much of a wheel's end to ask for first: enough for the central directory and the
/// `*.dist-info` members of most wheels, which zip writers put last.
const LAZY_WHEEL_TAIL: u64 = 64 * 1024;

const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
const RETRY_AFTER_MAX: Duration = Duration::from_secs(30);

/// What relative links of a cached response resolve against: where it was served from in the
/// end, with the credentials of the URL asked for.
fn base_of(meta: &EntryMeta, url: &Url) -> Url {
    meta.final_url
        .as_deref()
        .and_then(|u| Url::parse(u).ok())
        .map(|u| with_credentials_of(&u, url))
        .unwrap_or_else(|| url.clone())
}

/// Why a redirect to `to` after visiting `previous` is not followed, if it is not.
///
/// Only redirects within one origin (scheme, host and port) are followed: a redirect elsewhere,
/// or from https to plain http on the same host, could hand the index's answers, or its
/// credentials, to another party.
fn redirect_refusal(previous: &[Url], to: &Url) -> Option<&'static str> {
    if previous.len() > 5 {
        Some("too many redirects")
    } else if previous
        .last()
        .is_some_and(|from| from.origin() != to.origin())
    {
        Some("redirect to another origin refused")
    } else {
        None
    }
}

fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

fn retryable_error(err: &reqwest::Error) -> bool {
    // Builder and redirect-loop errors fail the same way every time.
    !(err.is_builder() || err.is_redirect() || err.is_status())
}

fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_MAX);
    // Up to +50 % jitter so that many clients failing together do not retry in lockstep.
    let random = std::collections::hash_map::RandomState::new().hash_one(attempt);
    let jitter = exp.mul_f64((random % 1000) as f64 / 2000.0);
    exp + jitter
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let delay = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let when = httpdate::parse_http_date(value).ok()?;
            when.duration_since(std::time::SystemTime::now())
                .unwrap_or_default()
        }
    };
    Some(delay.min(RETRY_AFTER_MAX))
}

/// The same-origin `to` with `from`'s credentials, so links on a page behind a
/// password-protected index can be fetched; other origins do not get them.
fn with_credentials_of(to: &Url, from: &Url) -> Url {
    let mut to = to.clone();
    if to.origin() == from.origin() && to.username().is_empty() {
        let _ = to.set_username(from.username());
        let _ = to.set_password(from.password());
    }
    to
}

/// The answer `memo` already holds for `key`, if any.
fn settled<T: Clone>(memo: &Memo<String, T>, key: &str) -> Option<Result<T, ClientError>> {
    memo.lock().expect("memo lock").get(key)?.get().cloned()
}

async fn memoised<K, T, F, Fut>(memo: &Memo<K, T>, key: K, init: F) -> Result<T, ClientError>
where
    K: Eq + Hash,
    T: Clone,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let cell = memo
        .lock()
        .expect("memo lock")
        .entry(key)
        .or_default()
        .clone();
    cell.get_or_init(init).await.clone()
}

/// What the timeline calls a request of `kind`.
fn request_kind(kind: Kind, ranged: bool) -> RequestKind {
    match kind {
        Kind::Page => RequestKind::Page,
        Kind::Metadata => RequestKind::Metadata,
        Kind::Artifact if ranged => RequestKind::Range,
        Kind::Artifact => RequestKind::Download,
    }
}

impl Shared {
    /// A request's entry in the timeline: its path (never the host), and whether it was
    /// speculative and for which fact, from the task it runs in.
    fn request_info(
        &self,
        url: &Url,
        kind: RequestKind,
        origin: Origin,
        status: Option<u16>,
        bytes: u64,
    ) -> (String, RequestInfo) {
        let path = url.path().to_string();
        let info = RequestInfo {
            kind,
            fact: FACT
                .try_with(|f| f.clone())
                .unwrap_or_else(|_| path.clone()),
            bytes,
            origin,
            status,
            speculative: SPECULATIVE.try_with(|s| *s).unwrap_or(false),
            used: None,
            sdist: kind == RequestKind::Download && !path.ends_with(".whl"),
            path,
        };
        let label = match status {
            Some(status) => format!("{status} {}", info.path),
            None => format!("failed {}", info.path),
        };
        (label, info)
    }

    /// An answer the cache gave instead of a request to `url`.
    fn cached(&self, mark: Mark, url: &Url, kind: RequestKind, bytes: u64) {
        self.timings.request_with(mark, || {
            let (_, info) = self.request_info(url, kind, Origin::Cache, None, bytes);
            (format!("cache {}", info.path), info)
        });
    }

    fn update_progress(&self) {
        if let Some(reporter) = &self.reporter {
            reporter.0.progress(self.counters.snapshot());
        }
    }

    fn cache_hit(&self) {
        self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
        self.update_progress();
    }

    /// The size limit for a kind of response. `max_response_bytes` caps them all, so the
    /// one option still bounds every response.
    fn limit(&self, kind: Kind) -> Limit {
        let (bytes, option) = match kind {
            Kind::Page => (self.max_page_bytes, "--max-page-size"),
            Kind::Metadata => (self.max_metadata_bytes, "--max-metadata-size"),
            Kind::Artifact => (self.max_response_bytes, "--max-response-size"),
        };
        if bytes <= self.max_response_bytes {
            Limit { bytes, option }
        } else {
            Limit {
                bytes: self.max_response_bytes,
                option: "--max-response-size",
            }
        }
    }

    /// One GET with retries, read to the end into memory.
    async fn execute(
        &self,
        url: &Url,
        headers: HeaderMap,
        kind: Kind,
    ) -> Result<RawResponse, ClientError> {
        let mut body = Vec::new();
        let head = self.execute_into(url, headers, &mut body, kind).await?;
        Ok(RawResponse {
            status: head.status,
            headers: head.headers,
            body: body.into(),
        })
    }

    /// One attempt: the response's head, and its body into `sink` as it arrives.
    ///
    /// The body is counted after decoding (reqwest undoes `Content-Encoding` before we see
    /// a chunk), so a compression bomb stops at the limit, having inflated no more than
    /// that. The transfer rate is checked in windows of `low_speed_time`: the wait for the
    /// next chunk ends at the window's end, so a server that sends nothing, or one byte a
    /// second, is abandoned when the window closes rather than when it chooses.
    async fn attempt(
        &self,
        http: &reqwest::Client,
        url: &Url,
        headers: &HeaderMap,
        sink: &mut impl BodySink,
        limit: Limit,
    ) -> Result<Result<(ResponseHead, u64), Stop>, reqwest::Error> {
        let window = self.low_speed_time;
        let floor = (self.low_speed_limit as f64 * window.as_secs_f64()) as u64;
        let watch = self.low_speed_limit > 0;
        let mut window_start = tokio::time::Instant::now();
        let send = http.get(url.clone()).headers(headers.clone()).send();
        let mut response = if watch {
            match tokio::time::timeout_at(window_start + window, send).await {
                Ok(response) => response?,
                Err(_) => return Ok(Err(Stop::TooSlow)),
            }
        } else {
            send.await?
        };
        let head = ResponseHead {
            status: response.status(),
            headers: response.headers().clone(),
            final_url: response.url().clone(),
        };
        // A hostile or broken server must not make us buffer without end.
        if response.content_length().is_some_and(|n| n > limit.bytes) {
            return Ok(Err(Stop::TooLarge));
        }
        let mut received = 0u64;
        let mut window_bytes = 0u64;
        loop {
            let deadline = window_start + window;
            let next = if watch {
                tokio::time::timeout_at(deadline, response.chunk())
                    .await
                    .ok()
            } else {
                Some(response.chunk().await)
            };
            match next {
                Some(Ok(Some(chunk))) => {
                    received += chunk.len() as u64;
                    window_bytes += chunk.len() as u64;
                    if received > limit.bytes {
                        return Ok(Err(Stop::TooLarge));
                    }
                    if let Err(e) = sink.write(&chunk) {
                        return Ok(Err(Stop::Sink(e)));
                    }
                }
                Some(Ok(None)) => return Ok(Ok((head, received))),
                Some(Err(e)) => return Err(e),
                None => {}
            }
            let now = tokio::time::Instant::now();
            if watch && now >= deadline {
                if window_bytes < floor {
                    return Ok(Err(Stop::TooSlow));
                }
                window_start = now;
                window_bytes = 0;
            }
        }
    }

    /// One GET with retries; the body goes to `sink` as it arrives.
    async fn execute_into(
        &self,
        url: &Url,
        headers: HeaderMap,
        sink: &mut impl BodySink,
        kind: Kind,
    ) -> Result<ResponseHead, ClientError> {
        let Some(http) = &self.http else {
            return Err(ClientError::Offline {
                what: redact_url(url),
            });
        };
        let limit = self.limit(kind);
        let mut attempt = 0;
        loop {
            sink.reset().map_err(|e| sink.error(e))?;
            let speculation = if SPECULATIVE.try_with(|s| *s).unwrap_or(false) {
                Some(self.speculative.acquire().await.expect("never closed"))
            } else {
                None
            };
            let permit = self
                .in_flight
                .acquire()
                .await
                .expect("semaphore is never closed");
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let mark = self.timings.mark();
            let result = self.attempt(http, url, &headers, sink, limit).await;
            drop((permit, speculation));
            self.timings.request_with(mark, || {
                let (status, bytes) = match &result {
                    Ok(Ok((head, received))) => (Some(head.status.as_u16()), *received),
                    _ => (None, 0),
                };
                let origin = if status == Some(304) {
                    Origin::Revalidated
                } else {
                    Origin::Network
                };
                let kind = request_kind(kind, headers.contains_key(RANGE));
                self.request_info(url, kind, origin, status, bytes)
            });
            let result = match result {
                Ok(Err(Stop::TooLarge)) => {
                    return Err(ClientError::BadResponse {
                        url: redact_url(url),
                        reason: format!(
                            "response larger than the {}-byte limit ({})",
                            limit.bytes, limit.option
                        ),
                    })
                }
                Ok(Err(Stop::Sink(e))) => return Err(sink.error(e)),
                Ok(Err(Stop::TooSlow)) => Err(Failure::TooSlow),
                Ok(Ok((head, received))) => {
                    self.counters.bytes.fetch_add(received, Ordering::Relaxed);
                    Ok(head)
                }
                Err(e) => Err(Failure::Http(e)),
            };
            self.update_progress();
            let delay = match result {
                Ok(head) if retryable_status(head.status) && attempt < self.retries => {
                    retry_after(&head.headers).unwrap_or_else(|| backoff(attempt))
                }
                Ok(head) => return Ok(head),
                Err(Failure::Http(err)) if retryable_error(&err) && attempt < self.retries => {
                    backoff(attempt)
                }
                Err(Failure::TooSlow) if attempt < self.retries => backoff(attempt),
                Err(Failure::Http(err)) => return Err(ClientError::network(redact_url(url), err)),
                Err(Failure::TooSlow) => {
                    return Err(ClientError::BadResponse {
                        url: redact_url(url),
                        reason: format!(
                            "transfer slower than {} bytes/s for {:.1} s (--low-speed-limit, --low-speed-time)",
                            self.low_speed_limit,
                            self.low_speed_time.as_secs_f64()
                        ),
                    })
                }
            };
            attempt += 1;
            tokio::time::sleep(delay).await;
        }
    }

    /// A GET through the HTTP cache. Non-success statuses are `ClientError::Status`.
    ///
    /// Bodies go straight to a new cache entry and are handed back as a stream from it, so
    /// that a large page never has to be in memory whole; where the cache cannot be written,
    /// they are kept in memory instead.
    async fn fetch_cached(
        &self,
        url: &Url,
        accept: Option<&'static str>,
        what: &str,
        kind: Kind,
    ) -> Result<Fetched, ClientError> {
        let key = strip_credentials(url);
        let path = self.cache.http_path(&key);
        let mark = self.timings.mark();
        let cached = self.cache.open_entry(&path);
        let from_cache = |entry: &EntryReader| {
            self.cached(mark, url, request_kind(kind, false), entry.body_len());
        };
        let to_fetched = |meta: &EntryMeta, body: Body| Fetched {
            body,
            content_type: meta.content_type.clone(),
            base: base_of(meta, url),
        };

        if self.offline {
            return match cached {
                Some(entry) => {
                    from_cache(&entry);
                    self.cache_hit();
                    Ok(to_fetched(&entry.meta.clone(), Body::Entry(entry)))
                }
                None => Err(ClientError::Offline {
                    what: what.to_string(),
                }),
            };
        }
        let cached = match cached {
            Some(entry) if entry.meta.is_fresh(now_secs()) => {
                from_cache(&entry);
                self.cache_hit();
                return Ok(to_fetched(&entry.meta.clone(), Body::Entry(entry)));
            }
            other => other,
        };

        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(ACCEPT, HeaderValue::from_static(accept));
        }
        if let Some(entry) = &cached {
            if let Some(value) = entry
                .meta
                .etag
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                headers.insert(IF_NONE_MATCH, value);
            }
            if let Some(value) = entry
                .meta
                .last_modified
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                headers.insert(IF_MODIFIED_SINCE, value);
            }
        }
        let mut sink = Sink::new(self.cache.create_entry(&path));
        let head = self.execute_into(url, headers, &mut sink, kind).await?;

        if head.status == StatusCode::NOT_MODIFIED {
            let Some(entry) = cached else {
                return Err(ClientError::BadResponse {
                    url: redact_url(url),
                    reason: "304 Not Modified to an unconditional request".into(),
                });
            };
            self.counters.not_modified.fetch_add(1, Ordering::Relaxed);
            let mut meta = entry.meta.clone();
            meta.refresh(&head.headers);
            // Record the refresh by rewriting the entry; if that fails it only costs a
            // revalidation next time, and the old entry still has the body.
            let Sink::Disk(mut writer) = sink else {
                return Ok(to_fetched(&meta, Body::Entry(entry)));
            };
            let rewritten = std::io::copy(&mut entry.into_body(), &mut WriterAdapter(&mut writer))
                .and_then(|_| writer.commit(&meta, true));
            let entry = match rewritten {
                Ok(fresh) => fresh,
                Err(_) => self
                    .cache
                    .open_entry(&path)
                    .ok_or_else(|| ClientError::Io {
                        path: path.clone(),
                        source: std::io::Error::other("cache entry vanished during revalidation")
                            .into(),
                    })?,
            };
            return Ok(to_fetched(&meta, Body::Entry(entry)));
        }
        if !head.status.is_success() {
            return Err(ClientError::Status {
                url: redact_url(url),
                status: head.status.as_u16(),
            });
        }
        let meta = EntryMeta::from_response(&head.headers, &strip_credentials(&head.final_url));
        let store = !CacheControl::from_headers(&head.headers).no_store;
        let body =
            match sink {
                Sink::Disk(writer) => Body::Entry(writer.commit(&meta, store).map_err(
                    |source| ClientError::Io {
                        path,
                        source: source.into(),
                    },
                )?),
                Sink::Memory(body) => Body::Memory(body.into()),
            };
        Ok(to_fetched(&meta, body))
    }

    /// [`Self::fetch_cached`] for bodies wanted in memory.
    async fn fetch_cached_bytes(
        &self,
        url: &Url,
        what: &str,
        kind: Kind,
    ) -> Result<Bytes, ClientError> {
        let fetched = self.fetch_cached(url, None, what, kind).await?;
        fetched.body.into_bytes().map_err(|source| ClientError::Io {
            path: self.cache.http_path(&strip_credentials(url)),
            source: source.into(),
        })
    }

    /// What a parsed page is kept under: the page, where it was served from in the end, and
    /// everything that decides what parsing keeps of it.
    fn parsed_page_key(&self, url: &Url, final_url: Option<&str>) -> String {
        [
            bitpoll_simple::COMPACT_FORMAT,
            strip_credentials(url).as_str(),
            final_url.unwrap_or(""),
            self.wheel_filter.as_ref().map_or("all wheels", |f| f.key()),
            &self
                .exclude_newer
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
        ]
        .join("\n")
    }

    /// The page as an earlier run parsed it, when the cached body it came from is what this
    /// run would use without asking the index (offline, or still fresh): parsing the JSON
    /// again is most of what a run without the network costs.
    fn parsed_page_unasked(&self, url: &Url, name: &PackageName) -> Option<ProjectPage> {
        let mark = self.timings.mark();
        let head = self
            .cache
            .peek_entry(&self.cache.http_path(&strip_credentials(url)))?;
        if !(self.offline || head.meta.is_fresh(now_secs()))
            || !is_simple_json(head.meta.content_type.as_deref().unwrap_or(""))
        {
            return None;
        }
        let page = self.stored_page(url, name, &head.meta, &head.body_sha256)?;
        self.cached(mark, url, request_kind(Kind::Page, false), head.body_len);
        self.cache_hit();
        Some(page)
    }

    /// The page an earlier run parsed from the body with `body_sha256`, if it kept it.
    fn stored_page(
        &self,
        url: &Url,
        name: &PackageName,
        meta: &EntryMeta,
        body_sha256: &[u8; 32],
    ) -> Option<ProjectPage> {
        let key = self.parsed_page_key(url, meta.final_url.as_deref());
        let stored = self
            .cache
            .read_page(&self.cache.page_path(&key), body_sha256)?;
        let page = ProjectPage::decode_compact(stored, &base_of(meta, url)).ok()?;
        if &page.name != name {
            return None;
        }
        self.counters.parsed_pages.fetch_add(1, Ordering::Relaxed);
        Some(page)
    }

    /// One file's publisher, memoised by its provenance URL: every target that chose the
    /// file asks, often at the same moment, and without the memo the second ask would be a
    /// cache hit or a second request depending on whether the first answer had arrived.
    async fn publisher(&self, url: Url, label: String) -> Result<Option<String>, ClientError> {
        let key = strip_credentials(&url).to_string();
        let fetch = || async {
            let body = match self.fetch_cached_bytes(&url, &label, Kind::Metadata).await {
                Ok(body) => body,
                Err(ClientError::Status { status: 404, .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            provenance::publisher_identity(&body).map_err(|reason| ClientError::BadResponse {
                url: redact_url(&url),
                reason,
            })
        };
        serving(&self.timings, &url, memoised(&self.publishers, key, fetch)).await
    }

    async fn project(&self, name: &PackageName) -> Result<Arc<ProjectPage>, ClientError> {
        let fact = self.index.project_url(name);
        serving(&self.timings, &fact, memoised(&self.projects, name.clone(), || async {
            let url = self.index.project_url(name);
            if let Some(page) = self.parsed_page_unasked(&url, name) {
                return Ok(Arc::new(page));
            }
            let what = format!("the index page of `{name}`");
            let fetched = match self
                .fetch_cached(&url, Some(SIMPLE_JSON_V1), &what, Kind::Page)
                .await {
                Err(ClientError::Status { status: 404, .. }) => {
                    return Err(ClientError::NotFound {
                        package: name.to_string(),
                    })
                }
                other => other?,
            };
            let content_type = fetched.content_type.as_deref().unwrap_or("none");
            if !is_simple_json(content_type) {
                return Err(ClientError::BadResponse {
                    url: redact_url(&url),
                    reason: format!(
                        "content type `{content_type}` is not the JSON simple API ({SIMPLE_JSON_V1}, PEP 691); \
                         the index must support PEP 691"
                    ),
                });
            }
            let parser = PageParser {
                page_url: &fetched.base,
                project: name,
                exclude_newer: self.exclude_newer.as_ref(),
                filter: self.wheel_filter.as_ref(),
            };
            // Only a body kept on disk can be named by its hash; one the server said not to
            // store, or one kept in memory (the cache could not be written), leaves nothing
            // for a parsed page to be checked against, and nothing to keep.
            let source = match &fetched.body {
                Body::Entry(entry) if entry.is_kept() => {
                    // A revalidated page (`304`) is the body parsed before.
                    if let Some(page) =
                        self.stored_page(&url, name, &entry.meta, &entry.body_sha256())
                    {
                        return Ok(Arc::new(page));
                    }
                    Some((entry.body_sha256(), entry.meta.final_url.clone()))
                }
                _ => None,
            };
            let page = match fetched.body {
                // A stream is parsed a byte at a time, several times slower than bytes in
                // memory: only pages too large to hold whole are streamed.
                Body::Entry(entry) if entry.body_len() <= STREAMED_PAGE_BYTES => {
                    let bytes = entry.into_bytes().map_err(|source| ClientError::Io {
                        path: self.cache.http_path(&strip_credentials(&url)),
                        source: source.into(),
                    })?;
                    parser.parse_slice(&bytes)
                }
                Body::Entry(entry) => parser.parse_reader(entry.into_body()),
                Body::Memory(bytes) => parser.parse_slice(&bytes),
            };
            let page = page.map_err(|source| ClientError::Page {
                url: redact_url(&url),
                source,
            })?;
            let compact = page.encode_compact();
            if let Some((body_sha256, final_url)) = source {
                let key = self.parsed_page_key(&url, final_url.as_deref());
                self.cache
                    .write_page(&self.cache.page_path(&key), &body_sha256, &compact);
            }
            // Kept for the run in the compact form too: a file is built only when a solver
            // reads it, and the form takes less than half the memory of the built files
            // (readthedocs' pages: 4 MB against about 10).
            let page = ProjectPage::decode_compact(compact, &fetched.base).unwrap_or(page);
            Ok(Arc::new(page))
        }))
        .await
    }

    /// The bytes of `url`, which must hash to `sha256`; cached by that hash.
    async fn fetch_by_hash(
        &self,
        url: &Url,
        sha256: &str,
        kind: &str,
        label: &str,
    ) -> Result<Blob, ClientError> {
        let path = self.cache.blob_path(kind, sha256);
        let mark = self.timings.mark();
        let checked = self.is_verified(sha256);
        let stored = if checked {
            std::fs::File::open(&path).ok()
        } else {
            self.cache.open_blob(&path, sha256)
        };
        if let Some(file) = stored {
            self.mark_verified(sha256);
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let timeline_kind = if kind == "metadata" {
                RequestKind::Metadata
            } else {
                RequestKind::Download
            };
            self.cached(mark, url, timeline_kind, len);
            self.cache_hit();
            return Ok(Blob::File(file, path));
        }
        if self.offline {
            return Err(ClientError::Offline {
                what: label.to_string(),
            });
        }
        // Straight to disk: an sdist can be tens of megabytes, of which a few files are read.
        let mut sink = Sink::new(self.cache.create_blob(&path));
        // The files that say what an sdist is are looked for while it downloads, rather than
        // after: a tar has no index, and a backend may write them last (scipy's PKG-INFO is
        // the last of its 19,000 members, behind 256 MB of tar: about a second to find).
        let reading = match &mut sink {
            Sink::Disk(writer)
                if kind == "artifacts"
                    && is_tar_sdist(label)
                    && self.stored_members(sha256).is_none() =>
            {
                writer.follow().ok().map(|mut follower| {
                    let filename = label.to_string();
                    tokio::task::spawn_blocking(move || {
                        (tar_sdist_members(&filename, &mut follower), follower)
                    })
                })
            }
            _ => None,
        };
        let limit_kind = if kind == "metadata" {
            Kind::Metadata
        } else {
            Kind::Artifact
        };
        let head = self
            .execute_into(url, HeaderMap::new(), &mut sink, limit_kind)
            .await?;
        if !head.status.is_success() {
            return Err(ClientError::Status {
                url: redact_url(url),
                status: head.status.as_u16(),
            });
        }
        if limit_kind == Kind::Artifact {
            self.downloaded
                .lock()
                .expect("downloaded lock")
                .insert(sha256.to_string());
        }
        let mismatch = |actual: String| ClientError::HashMismatch {
            file: label.to_string(),
            expected: sha256.to_string(),
            actual,
        };
        match sink {
            Sink::Disk(writer) => match writer.finish(sha256) {
                Ok(Ok(file)) => {
                    if let Some(reading) = reading {
                        // Kept only when read from the attempt whose bytes were checked;
                        // otherwise (or on a fault in the archive, which the reader of the
                        // stored file reports) the stored file is read as before.
                        if let Ok((Ok(members), follower)) = reading.await {
                            if follower.completed() {
                                self.keep_members(sha256, &members);
                            }
                        }
                    }
                    self.mark_verified(sha256);
                    Ok(Blob::File(file, path))
                }
                Ok(Err(actual)) => Err(mismatch(actual)),
                Err(source) => Err(ClientError::Io {
                    path,
                    source: source.into(),
                }),
            },
            Sink::Memory(body) => {
                let actual = sha256_hex(&body);
                if actual != sha256 {
                    return Err(mismatch(actual));
                }
                Ok(Blob::Memory(body.into()))
            }
        }
    }

    fn is_verified(&self, sha256: &str) -> bool {
        self.verified
            .lock()
            .expect("verified lock")
            .contains(sha256)
    }

    fn mark_verified(&self, sha256: &str) {
        self.verified
            .lock()
            .expect("verified lock")
            .insert(sha256.to_string());
    }

    /// The bytes of `url`, which must hash to `sha256`, in memory.
    async fn fetch_bytes_by_hash(
        &self,
        url: &Url,
        sha256: &str,
        kind: &str,
        label: &str,
    ) -> Result<Bytes, ClientError> {
        self.fetch_by_hash(url, sha256, kind, label)
            .await?
            .into_bytes()
    }

    /// One download at a time per file, so that a second caller finds it in the cache rather
    /// than fetching it again.
    fn download_lock(&self, url: &Url) -> Arc<tokio::sync::Mutex<()>> {
        let key = strip_credentials(url).to_string();
        self.downloads
            .lock()
            .expect("downloads lock")
            .entry(key)
            .or_default()
            .clone()
    }

    async fn download(&self, file: &DistFile) -> Result<Bytes, ClientError> {
        self.download_blob(file).await?.into_bytes()
    }

    /// An artifact: the cache's file where there is one, so that a large sdist is read from
    /// disk rather than memory.
    async fn download_blob(&self, file: &DistFile) -> Result<Blob, ClientError> {
        let url = file.url();
        let lock = self.download_lock(&url);
        let _guard = lock.lock().await;
        match &file.sha256 {
            Some(sha256) => {
                self.fetch_by_hash(&url, &sha256.to_string(), "artifacts", &file.filename)
                    .await
            }
            None => Ok(Blob::Memory(
                self.fetch_cached_bytes(&url, &file.filename, Kind::Artifact)
                    .await?,
            )),
        }
    }

    async fn sdist_info(&self, file: &DistFile) -> Result<Arc<SdistInfo>, ClientError> {
        serving(
            &self.timings,
            &file.url(),
            memoised(&self.sdists, file.identity(), || async {
                let metadata_error = |source| ClientError::Metadata {
                    file: file.filename.to_string(),
                    source,
                };
                let sha256 = file.sha256.as_ref().map(|s| s.to_string());
                let stored = || sha256.as_deref().and_then(|s| self.stored_members(s));
                let members = match stored() {
                    Some(members) => {
                        self.cache_hit();
                        members
                    }
                    None => {
                        let blob = self.download_blob(file).await?;
                        // Usually read while it downloaded.
                        match stored() {
                            Some(members) => members,
                            None => self
                                .read_members(&file.filename, sha256.as_deref(), blob)
                                .await
                                .map_err(metadata_error)?,
                        }
                    }
                };
                let info = interpret_sdist(&file.filename, &members).map_err(metadata_error)?;
                Ok(Arc::new(info))
            }),
        )
        .await
    }

    /// The members of a downloaded sdist that say what it is, read from its bytes and kept
    /// under its sha256 for later runs.
    async fn read_members(
        &self,
        filename: &str,
        sha256: Option<&str>,
        blob: Blob,
    ) -> Result<SdistMembers, bitpoll_metadata::MetadataError> {
        let name = filename.to_string();
        let members = tokio::task::spawn_blocking(move || match blob {
            Blob::File(f, _) => sdist_members(&name, std::io::BufReader::new(f)),
            Blob::Memory(bytes) => sdist_members(&name, std::io::Cursor::new(bytes)),
        })
        .await
        .expect("sdist reader does not panic")?;
        if let Some(sha256) = sha256 {
            self.keep_members(sha256, &members);
        }
        Ok(members)
    }

    /// What the few files that say what an sdist is held, kept beside the artifact by its
    /// hash: decompressing a large sdist on every run would dominate offline runs.
    fn stored_members(&self, sha256: &str) -> Option<SdistMembers> {
        let entry = self
            .cache
            .read_entry(&self.cache.derived_path("sdist-members", sha256))?;
        serde_json::from_slice(&entry).ok()
    }

    fn keep_members(&self, sha256: &str, members: &SdistMembers) {
        if let Ok(body) = serde_json::to_vec(members) {
            let path = self.cache.derived_path("sdist-members", sha256);
            let _ = self.cache.write_entry(&path, &EntryMeta::default(), &body);
        }
    }

    /// One range request; `Whole` when the server ignores the range.
    async fn fetch_range(&self, url: &Url, range: ByteRange) -> Result<RangeReply, ClientError> {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(&range.header()) {
            headers.insert(RANGE, value);
        }
        // Offsets only mean something in the file as stored, not in a re-encoded body.
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        // Ranges are parts of an artifact, and a server that ignores the range sends all of it.
        let response = self.execute(url, headers, Kind::Artifact).await?;
        match response.status {
            StatusCode::PARTIAL_CONTENT => {
                let content_range = response
                    .headers
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok());
                let Some((start, end, total)) = content_range.and_then(parse_content_range) else {
                    return Err(ClientError::BadResponse {
                        url: redact_url(url),
                        reason: "206 Partial Content without a usable Content-Range".into(),
                    });
                };
                if end - start + 1 != response.body.len() as u64 {
                    return Err(ClientError::BadResponse {
                        url: redact_url(url),
                        reason: "206 Partial Content body does not match its Content-Range".into(),
                    });
                }
                Ok(RangeReply::Partial {
                    start,
                    total,
                    body: response.body,
                })
            }
            StatusCode::OK => Ok(RangeReply::Whole(response.body)),
            status => Err(ClientError::Status {
                url: redact_url(url),
                status: status.as_u16(),
            }),
        }
    }

    /// The `METADATA` bytes of a whole wheel, read off the runtime's threads.
    async fn wheel_metadata_bytes(
        &self,
        file: &DistFile,
        bytes: Bytes,
    ) -> Result<Vec<u8>, ClientError> {
        let limit = self.max_metadata_bytes;
        tokio::task::spawn_blocking(move || bitpoll_metadata::wheel_metadata_bytes(&bytes, limit))
            .await
            .expect("wheel reader does not panic")
            .map_err(|source| ClientError::Metadata {
                file: file.filename.to_string(),
                source,
            })
    }

    /// A wheel's `METADATA` when the index serves no metadata file: from the cache, else
    /// read remotely with range requests, else from the downloaded wheel.
    ///
    /// Metadata read through ranges cannot be checked against the wheel's hash (that
    /// needs the whole file); the artifact itself is still verified whenever it is
    /// downloaded.
    async fn wheel_metadata(&self, file: &DistFile) -> Result<CoreMetadata, ClientError> {
        let parse = |bytes: &[u8]| {
            bitpoll_metadata::parse_core_metadata(bytes, MetadataSource::Wheel).map_err(|source| {
                ClientError::Metadata {
                    file: file.filename.to_string(),
                    source,
                }
            })
        };
        let url = file.url();
        let key = match &file.sha256 {
            Some(sha256) => sha256.to_string(),
            None => sha256_hex(strip_credentials(&url).as_str().as_bytes()),
        };
        let derived = self.cache.derived_path("wheel-metadata", &key);
        let mark = self.timings.mark();
        if let Some(entry) = self.cache.read_entry(&derived) {
            self.cached(mark, &url, RequestKind::Range, entry.len() as u64);
            self.cache_hit();
            return parse(&entry);
        }
        // A wheel this run downloaded (for a build environment, say) is not read here: whether
        // its download had finished by now depends on timing, and with it whether its
        // metadata costs range requests; one downloaded by an earlier run is.
        let sha256 = file.sha256.map(|h| h.to_string()).filter(|sha256| {
            !self
                .downloaded
                .lock()
                .expect("downloaded lock")
                .contains(sha256)
        });
        if let Some(sha256) = sha256 {
            let path = self.cache.blob_path("artifacts", &sha256);
            if let Some(bytes) = self.cache.read_blob(&path, &sha256) {
                self.cache_hit();
                // Kept apart, so that later runs read a few kilobytes instead of checking and
                // holding the whole wheel (build backends' wheels run to megabytes).
                let metadata = self.wheel_metadata_bytes(file, bytes).await?;
                let meta = parse(&metadata)?;
                let _ = self
                    .cache
                    .write_entry(&derived, &EntryMeta::default(), &metadata);
                return Ok(meta);
            }
        }
        if self.offline {
            return Err(ClientError::Offline {
                what: file.filename.to_string(),
            });
        }
        let lazy = remote_wheel_metadata(LAZY_WHEEL_TAIL, self.max_metadata_bytes, |range| {
            self.fetch_range(&url, range)
        })
        .await;
        match lazy {
            Ok(Outcome::Metadata(bytes)) => {
                let meta = parse(&bytes)?;
                let _ = self
                    .cache
                    .write_entry(&derived, &EntryMeta::default(), &bytes);
                Ok(meta)
            }
            Ok(Outcome::TooLarge) => Err(ClientError::Metadata {
                file: file.filename.to_string(),
                source: bitpoll_metadata::MetadataError::TooLarge {
                    limit: self.max_metadata_bytes,
                },
            }),
            Ok(Outcome::Whole(bytes)) => {
                if let Some(expected) = file.sha256.map(|h| h.to_string()) {
                    let actual = sha256_hex(&bytes);
                    if actual != expected {
                        return Err(ClientError::HashMismatch {
                            file: file.filename.to_string(),
                            expected,
                            actual,
                        });
                    }
                    let path = self.cache.blob_path("artifacts", &expected);
                    let _ = self.cache.write_blob(&path, &expected, &bytes);
                }
                parse(&self.wheel_metadata_bytes(file, bytes).await?)
            }
            // A server that mishandles ranges may still serve the whole file.
            Ok(Outcome::Unsupported(_))
            | Err(ClientError::Status { .. } | ClientError::BadResponse { .. }) => {
                let bytes = self.download(file).await?;
                parse(&self.wheel_metadata_bytes(file, bytes).await?)
            }
            Err(err) => Err(err),
        }
    }

    async fn core_metadata(&self, file: &DistFile) -> Result<Arc<CoreMetadata>, ClientError> {
        serving(
            &self.timings,
            &file.url(),
            memoised(&self.metadata, file.identity(), || async {
                let label = format!("{}.metadata", file.filename);
                if let Some(declared) = &file.core_metadata {
                    let url = file.metadata_url();
                    let fetched = match declared {
                        Some(sha256) => {
                            self.fetch_bytes_by_hash(&url, &sha256.to_string(), "metadata", &label)
                                .await
                        }
                        None => self.fetch_cached_bytes(&url, &label, Kind::Metadata).await,
                    };
                    match fetched {
                        Ok(bytes) => {
                            let meta = bitpoll_metadata::parse_core_metadata(
                                &bytes,
                                MetadataSource::CoreMetadata,
                            )
                            .map_err(|source| {
                                ClientError::Metadata {
                                    file: label,
                                    source,
                                }
                            })?;
                            return Ok(Arc::new(meta));
                        }
                        // Some indexes advertise metadata files they cannot serve; the
                        // artifact itself still has the answer.
                        Err(ClientError::Status { status: 404, .. }) => {}
                        Err(err) => return Err(err),
                    }
                }
                if file.is_wheel() {
                    self.wheel_metadata(file).await.map(Arc::new)
                } else {
                    let info = self.sdist_info(file).await?;
                    match &info.static_metadata {
                        Some(meta) => Ok(Arc::new(meta.clone())),
                        None => Err(ClientError::NoStaticMetadata {
                            file: file.filename.to_string(),
                        }),
                    }
                }
            }),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_are_followed_within_one_origin_only() {
        let url = |s: &str| Url::parse(s).unwrap();
        let from = [url("https://index.test/simple/helper/")];
        assert_eq!(
            redirect_refusal(&from, &url("https://index.test/simple/helper/v2/")),
            None
        );
        // https to plain http on the same host and port: the scheme is part of the origin.
        assert_eq!(
            redirect_refusal(&from, &url("http://index.test:443/simple/helper/")),
            Some("redirect to another origin refused")
        );
        assert_eq!(
            redirect_refusal(&from, &url("http://index.test/simple/helper/")),
            Some("redirect to another origin refused")
        );
        assert_eq!(
            redirect_refusal(&from, &url("https://mirror.test/simple/helper/")),
            Some("redirect to another origin refused")
        );
        assert_eq!(
            redirect_refusal(&from, &url("https://index.test:8443/simple/helper/")),
            Some("redirect to another origin refused")
        );
        let chain: Vec<Url> = (0..6)
            .map(|i| url(&format!("https://index.test/{i}")))
            .collect();
        assert_eq!(
            redirect_refusal(&chain, &url("https://index.test/7")),
            Some("too many redirects")
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) >= BACKOFF_BASE && backoff(0) <= BACKOFF_BASE * 3 / 2);
        assert!(backoff(3) >= BACKOFF_BASE * 8);
        assert!(backoff(30) <= BACKOFF_MAX * 3 / 2);
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("99999"));
        assert_eq!(retry_after(&h), Some(RETRY_AFTER_MAX));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }

    #[test]
    fn client_types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<IndexClient>();
        check::<ClientError>();
        check::<DistFile>();
    }
}
