//! A run's timeline, for `--timings FILE`: what happened when, on which thread, and what it
//! cost. The index client records its requests, the resolver the time its threads spend
//! blocked on a package fact, the build frontend its hook runs; the binary writes the
//! events and their summaries (requests in flight over time, totals, each target's critical
//! path, what speculation cost) as one JSON document (`docs/timings.md` describes it).
//!
//! Recording is meant to stay in the code for good: a disabled [`Timings`] is a `None`, so
//! every call is one branch and no clock read, and labels are built by closures that only
//! run when recording is on. The crate depends on nothing of the project's, so every layer
//! can record into it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

/// The format's version, written as `schema`.
pub const SCHEMA: u32 = 1;

/// Width of the buckets of the requests-in-flight series.
pub const BUCKET_MS: f64 = 100.0;

/// What an event was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Reading the inputs (requirement files, policy, nixpkgs index).
    Inputs,
    /// An HTTP request of the index client, or an answer its cache gave instead.
    Request,
    /// A host name looked up, once per host and run (see the client's `dns` module); the
    /// label says how many lookups of it were started.
    Lookup,
    /// One target's whole resolution, on its own thread; its critical path is computed.
    Target,
    /// One solve (a target's, or a build environment's), within a target's thread.
    Solve,
    /// A target's solve given up to start over with a package promoted: from the start of
    /// that attempt to the moment it was given up.
    Restart,
    /// A resolver thread blocked until a package fact (a page, a file's metadata, an sdist,
    /// a build's answer) was there; or a backend question waiting for a free core.
    Wait,
    /// Unpacking a build environment's wheels and the sdist before a hook runs.
    BuildUnpack,
    /// One run of a build-backend hook (a Python process).
    BuildHook,
    /// A build-backend answer found in the build cache.
    BuildCached,
    /// Removing a hook's working directory after it ran.
    BuildCleanup,
    /// Computing digests (artifacts without a declared hash, the lock's seals).
    Hash,
    /// Merging per-target resolutions into lock entries.
    Merge,
    /// Writing the lock (or finding it unchanged).
    LockWrite,
    /// Waiting at the end for speculative requests still in flight.
    Drain,
}

/// What a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestKind {
    /// A project page (PEP 691).
    Page,
    /// A core-metadata file (PEP 658), a provenance or JSON API document.
    Metadata,
    /// A range request into a wheel, for its METADATA.
    Range,
    /// A whole artifact.
    Download,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    Network,
    /// A conditional request answered `304 Not Modified`.
    Revalidated,
    /// The disk cache, without a request.
    Cache,
}

/// The details of a [`Category::Request`] event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestInfo {
    pub kind: RequestKind,
    /// The URL's path: never its host, which a timeline shared in a bug report should not
    /// need to name.
    pub path: String,
    /// The fact the request serves (the path of the page, or of the file whose metadata is
    /// read): what a later demand for it is matched against.
    pub fact: String,
    pub bytes: u64,
    pub origin: Origin,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Started by a prefetch before anybody asked for its fact.
    pub speculative: bool,
    /// For speculative requests: whether the fact was asked for at some point in the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used: Option<bool>,
    /// A whole download of an sdist.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sdist: bool,
}

/// One thing that happened, from `start_ms` to `end_ms` after the run began.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub start_ms: f64,
    pub end_ms: f64,
    pub thread: String,
    pub category: Category,
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestInfo>,
}

impl Event {
    pub fn ms(&self) -> f64 {
        self.end_ms - self.start_ms
    }
}

struct Recorder {
    start: Instant,
    events: Mutex<Vec<Event>>,
    demanded: Mutex<HashSet<String>>,
}

impl Recorder {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }
}

/// The moment something began, or nothing when recording is off.
#[derive(Debug, Clone, Copy)]
pub struct Mark(Option<f64>);

/// Where events go: cheap to clone and to call when off. Shared by all threads.
#[derive(Clone, Default)]
pub struct Timings(Option<Arc<Recorder>>);

impl std::fmt::Debug for Timings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Timings(on)"
        } else {
            "Timings(off)"
        })
    }
}

fn thread_name() -> String {
    let thread = std::thread::current();
    match thread.name() {
        Some(name) => name.to_string(),
        None => format!("{:?}", thread.id()),
    }
}

impl Timings {
    /// Records nothing.
    pub fn off() -> Self {
        Self(None)
    }

    /// Records from now on; times are measured from this call.
    pub fn on() -> Self {
        Self(Some(Arc::new(Recorder {
            start: Instant::now(),
            events: Mutex::default(),
            demanded: Mutex::default(),
        })))
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Now, to pass to [`Timings::span`] or [`Timings::request`] later.
    pub fn mark(&self) -> Mark {
        Mark(self.0.as_ref().map(|r| r.now()))
    }

    /// Something on this thread from `since` until now.
    pub fn span(&self, since: Mark, category: Category, label: impl FnOnce() -> String) {
        self.push(since, category, label, None);
    }

    /// A request (or a cache's answer instead of one) from `since` until now.
    pub fn request(&self, since: Mark, label: impl FnOnce() -> String, info: RequestInfo) {
        self.push(since, Category::Request, label, Some(info));
    }

    /// Like [`Timings::request`], with the details built only when recording.
    pub fn request_with(&self, since: Mark, info: impl FnOnce() -> (String, RequestInfo)) {
        if self.0.is_some() {
            let (label, info) = info();
            self.push(since, Category::Request, || label, Some(info));
        }
    }

    /// A span that ends when the guard is dropped, for code with many ways out.
    pub fn guard(&self, category: Category, label: impl FnOnce() -> String) -> Guard {
        Guard(self.0.as_ref().map(|r| {
            (
                Timings(Some(r.clone())),
                Mark(Some(r.now())),
                category,
                label(),
            )
        }))
    }

    /// Somebody asked for `fact` (and will wait for it): speculative requests for it were
    /// worth making.
    pub fn demand(&self, fact: impl FnOnce() -> String) {
        if let Some(r) = &self.0 {
            r.demanded.lock().expect("timings lock").insert(fact());
        }
    }

    /// A resolution needed the answer of `sdist`'s build backend: the hooks run for it
    /// (labelled `FILE: HOOK`) were worth running, whenever they started.
    pub fn demand_build(&self, sdist: &str) {
        self.demand(|| build_fact(sdist));
    }

    fn push(
        &self,
        since: Mark,
        category: Category,
        label: impl FnOnce() -> String,
        request: Option<RequestInfo>,
    ) {
        let (Some(r), Some(start_ms)) = (&self.0, since.0) else {
            return;
        };
        let event = Event {
            start_ms,
            end_ms: r.now(),
            thread: thread_name(),
            category,
            label: label(),
            request,
        };
        r.events.lock().expect("timings lock").push(event);
    }

    /// Everything recorded so far, with its summaries; `None` when off. The events move
    /// into the timeline (a run asks once, when it is over): a copy of them and the JSON
    /// text built in memory were the largest allocations at the end of a large run (sentry's
    /// set: 5,800 events, 3.3 MB of JSON, 51 MiB of peak memory becoming 57 MiB).
    pub fn take_timeline(&self) -> Option<Timeline> {
        let r = self.0.as_ref()?;
        let wall_ms = r.now();
        let mut events = std::mem::take(&mut *r.events.lock().expect("timings lock"));
        let demanded = std::mem::take(&mut *r.demanded.lock().expect("timings lock"));
        for event in &mut events {
            if let Some(info) = &mut event.request {
                if info.speculative {
                    info.used = Some(demanded.contains(&info.fact));
                }
            }
        }
        events.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
        let mut summary = Summary::of(&events, wall_ms);
        summary.speculation.count_hooks(&events, &demanded);
        Some(Timeline {
            schema: SCHEMA,
            wall_ms,
            summary,
            events,
        })
    }
}

/// Records its span when dropped (see [`Timings::guard`]).
pub struct Guard(Option<(Timings, Mark, Category, String)>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some((timings, mark, category, label)) = self.0.take() {
            timings.span(mark, category, || label);
        }
    }
}

/// The document `--timings` writes.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub schema: u32,
    pub wall_ms: f64,
    pub summary: Summary,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub count: u64,
    pub ms: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestTotals {
    pub count: u64,
    pub network: u64,
    pub revalidated: u64,
    pub cache: u64,
    pub bytes: u64,
    /// Summed durations (requests overlap, so this exceeds the wall time they took).
    pub ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    /// `wait` (blocked on a fact) or `compute` (everything the thread did in between).
    pub kind: &'static str,
    pub label: String,
    pub start_ms: f64,
    pub ms: f64,
}

/// One target's thread from start to end: its outermost waits, and compute in between.
#[derive(Debug, Clone, Serialize)]
pub struct CriticalPath {
    pub target: String,
    pub thread: String,
    pub start_ms: f64,
    pub end_ms: f64,
    pub wait_ms: f64,
    pub compute_ms: f64,
    /// `wait_ms + compute_ms`: the thread's span, never more than the wall time.
    pub sum_ms: f64,
    pub waits: usize,
    /// The ten longest segments, longest first.
    pub top: Vec<Segment>,
    /// All segments, in order.
    pub segments: Vec<Segment>,
}

/// What prefetching cost.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Speculation {
    /// Requests sent (or answered by the cache) before anybody asked for their fact.
    pub requests: u64,
    /// Of those, the ones whose fact was asked for later.
    pub used: u64,
    pub unused: u64,
    pub unused_network: u64,
    pub unused_bytes: u64,
    pub unused_ms: f64,
    /// Build-backend runs (hooks started on a guess included) for sdists whose answer no
    /// resolution needed, and their summed duration.
    pub hooks_unused: u64,
    pub hooks_unused_ms: f64,
}

impl Speculation {
    fn count_hooks(&mut self, events: &[Event], demanded: &HashSet<String>) {
        for e in events.iter().filter(|e| e.category == Category::BuildHook) {
            let sdist = e
                .label
                .split_once(": ")
                .map_or(e.label.as_str(), |(f, _)| f);
            if !demanded.contains(&build_fact(sdist)) {
                self.hooks_unused += 1;
                self.hooks_unused_ms += e.ms();
            }
        }
    }
}

/// The fact [`Timings::demand_build`] records, apart from request facts (paths).
fn build_fact(sdist: &str) -> String {
    format!("build {sdist}")
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Network requests in flight, averaged over each [`BUCKET_MS`] bucket from the start.
    pub bucket_ms: f64,
    pub in_flight: Vec<f64>,
    pub peak_in_flight: usize,
    pub categories: BTreeMap<Category, Totals>,
    pub requests: BTreeMap<RequestKind, RequestTotals>,
    pub sdist_downloads: RequestTotals,
    pub critical_paths: Vec<CriticalPath>,
    pub speculation: Speculation,
    /// CPU time used up to the end of the run, when the caller could tell (see [`CpuTime`]).
    pub cpu: Option<CpuTime>,
}

/// The CPU time a run used: user and system time of the program itself, and of the child
/// processes it waited for (build backends, with any process they waited for, and the
/// interpreter and index probes). Events show when things happened, not what they cost: on
/// a machine whose cores are all busy, a hook takes longer because something else runs, and
/// only these totals say how much work there was to share the cores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CpuTime {
    pub program_ms: f64,
    pub children_ms: f64,
    /// The cores the program could run on.
    pub cores: usize,
}

impl Summary {
    fn of(events: &[Event], wall_ms: f64) -> Self {
        let mut categories: BTreeMap<Category, Totals> = BTreeMap::new();
        let mut requests: BTreeMap<RequestKind, RequestTotals> = BTreeMap::new();
        let mut sdist_downloads = RequestTotals::default();
        let mut speculation = Speculation::default();
        for e in events {
            let t = categories.entry(e.category).or_default();
            t.count += 1;
            t.ms += e.ms();
            let Some(info) = &e.request else { continue };
            let add = |t: &mut RequestTotals| {
                t.count += 1;
                t.bytes += info.bytes;
                t.ms += e.ms();
                match info.origin {
                    Origin::Network => t.network += 1,
                    Origin::Revalidated => t.revalidated += 1,
                    Origin::Cache => t.cache += 1,
                }
            };
            add(requests.entry(info.kind).or_default());
            if info.sdist {
                add(&mut sdist_downloads);
            }
            if info.speculative {
                speculation.requests += 1;
                if info.used == Some(true) {
                    speculation.used += 1;
                } else {
                    speculation.unused += 1;
                    speculation.unused_bytes += info.bytes;
                    speculation.unused_ms += e.ms();
                    if info.origin != Origin::Cache {
                        speculation.unused_network += 1;
                    }
                }
            }
        }
        let (in_flight, peak_in_flight) = in_flight(events, wall_ms);
        Summary {
            bucket_ms: BUCKET_MS,
            in_flight,
            peak_in_flight,
            categories,
            requests,
            sdist_downloads,
            critical_paths: critical_paths(events),
            speculation,
            cpu: None,
        }
    }
}

fn is_network(e: &Event) -> bool {
    e.request
        .as_ref()
        .is_some_and(|r| r.origin != Origin::Cache)
}

fn in_flight(events: &[Event], wall_ms: f64) -> (Vec<f64>, usize) {
    let buckets = (wall_ms / BUCKET_MS).ceil().max(1.0) as usize;
    let mut busy = vec![0.0f64; buckets];
    let mut edges = Vec::new();
    for e in events.iter().filter(|e| is_network(e)) {
        edges.push((e.start_ms, 1i64));
        edges.push((e.end_ms, -1i64));
        let first = (e.start_ms / BUCKET_MS) as usize;
        let last = ((e.end_ms / BUCKET_MS) as usize).min(buckets - 1);
        for (b, slot) in busy.iter_mut().enumerate().take(last + 1).skip(first) {
            let lo = e.start_ms.max(b as f64 * BUCKET_MS);
            let hi = e.end_ms.min((b + 1) as f64 * BUCKET_MS);
            *slot += (hi - lo).max(0.0);
        }
    }
    // Ends before starts at the same instant: back-to-back requests are not concurrent.
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut peak) = (0i64, 0i64);
    for (_, d) in edges {
        now += d;
        peak = peak.max(now);
    }
    let series = busy
        .into_iter()
        .map(|ms| (ms / BUCKET_MS * 10.0).round() / 10.0)
        .collect();
    (series, peak as usize)
}

fn critical_paths(events: &[Event]) -> Vec<CriticalPath> {
    let mut waits: HashMap<&str, Vec<&Event>> = HashMap::new();
    for e in events.iter().filter(|e| e.category == Category::Wait) {
        waits.entry(e.thread.as_str()).or_default().push(e);
    }
    let mut paths = Vec::new();
    for target in events.iter().filter(|e| e.category == Category::Target) {
        let mut on_thread: Vec<&Event> = waits
            .get(target.thread.as_str())
            .into_iter()
            .flatten()
            .copied()
            .filter(|w| w.start_ms >= target.start_ms && w.end_ms <= target.end_ms)
            .collect();
        // Outermost first where two start together, so the inner one is seen as nested.
        on_thread.sort_by(|a, b| {
            a.start_ms
                .total_cmp(&b.start_ms)
                .then(b.ms().total_cmp(&a.ms()))
        });
        let mut segments = Vec::new();
        let mut at = target.start_ms;
        let (mut wait_ms, mut compute_ms, mut count) = (0.0, 0.0, 0);
        for w in on_thread {
            if w.end_ms <= at {
                continue; // within a wait already counted
            }
            let start = w.start_ms.max(at);
            if start > at {
                segments.push(Segment {
                    kind: "compute",
                    label: "solver and bookkeeping".into(),
                    start_ms: at,
                    ms: start - at,
                });
                compute_ms += start - at;
            }
            segments.push(Segment {
                kind: "wait",
                label: w.label.clone(),
                start_ms: start,
                ms: w.end_ms - start,
            });
            wait_ms += w.end_ms - start;
            count += 1;
            at = w.end_ms;
        }
        if target.end_ms > at {
            segments.push(Segment {
                kind: "compute",
                label: "solver and bookkeeping".into(),
                start_ms: at,
                ms: target.end_ms - at,
            });
            compute_ms += target.end_ms - at;
        }
        let mut top = segments.clone();
        top.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        top.truncate(10);
        paths.push(CriticalPath {
            target: target.label.clone(),
            thread: target.thread.clone(),
            start_ms: target.start_ms,
            end_ms: target.end_ms,
            wait_ms,
            compute_ms,
            sum_ms: wait_ms + compute_ms,
            waits: count,
            top,
            segments,
        });
    }
    paths.sort_by(|a, b| a.target.cmp(&b.target));
    paths
}

impl Timeline {
    /// Writes the timeline as JSON to `out`, as it goes.
    pub fn write_json(&self, mut out: impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut out, self)?;
        out.write_all(b"\n")?;
        out.flush()
    }

    /// A few lines for the terminal: wall time, the longest critical path, requests and
    /// what speculation cost.
    pub fn brief(&self) -> Vec<String> {
        let s = &self.summary;
        let secs = |ms: f64| ms / 1000.0;
        let mut lines = vec![format!("wall {:.2} s", secs(self.wall_ms))];
        if let Some(p) = s
            .critical_paths
            .iter()
            .max_by(|a, b| a.sum_ms.total_cmp(&b.sum_ms))
        {
            lines.push(format!(
                "critical path ({}): {:.2} s = {:.2} s blocked in {} waits + {:.2} s computing",
                p.target,
                secs(p.sum_ms),
                secs(p.wait_ms),
                p.waits,
                secs(p.compute_ms)
            ));
        }
        let all = s
            .requests
            .values()
            .fold(RequestTotals::default(), |mut a, t| {
                a.count += t.count;
                a.network += t.network;
                a.revalidated += t.revalidated;
                a.cache += t.cache;
                a.bytes += t.bytes;
                a
            });
        let builds = s
            .categories
            .get(&Category::BuildHook)
            .cloned()
            .unwrap_or_default();
        lines.push(format!(
            "requests: {} sent ({} revalidated), {} from cache, {:.1} MB, peak {} in flight; {} build hooks, {:.2} s",
            all.network + all.revalidated,
            all.revalidated,
            all.cache,
            all.bytes as f64 / 1e6,
            s.peak_in_flight,
            builds.count,
            secs(builds.ms)
        ));
        if let Some(cpu) = s.cpu {
            lines.push(format!(
                "CPU: {:.2} s in the program, {:.2} s in processes it started (build backends, probes); {:.0}% of {} cores over the run",
                secs(cpu.program_ms),
                secs(cpu.children_ms),
                100.0 * (cpu.program_ms + cpu.children_ms)
                    / (self.wall_ms * cpu.cores.max(1) as f64).max(1.0),
                cpu.cores
            ));
        }
        let sp = &s.speculation;
        lines.push(format!(
            "speculation: {} prefetches, {} used; unused {} ({} sent, {:.1} MB, {:.2} s of requests); {} build hooks no resolution needed ({:.2} s)",
            sp.requests,
            sp.used,
            sp.unused,
            sp.unused_network,
            sp.unused_bytes as f64 / 1e6,
            secs(sp.unused_ms),
            sp.hooks_unused,
            secs(sp.hooks_unused_ms)
        ));
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(thread: &str, category: Category, label: &str, start: f64, end: f64) -> Event {
        Event {
            start_ms: start,
            end_ms: end,
            thread: thread.into(),
            category,
            label: label.into(),
            request: None,
        }
    }

    fn request(start: f64, end: f64, fact: &str, speculative: bool, used: bool) -> Event {
        let mut e = event("net", Category::Request, fact, start, end);
        e.request = Some(RequestInfo {
            kind: RequestKind::Page,
            path: fact.into(),
            fact: fact.into(),
            bytes: 10,
            origin: Origin::Network,
            status: Some(200),
            speculative,
            used: speculative.then_some(used),
            sdist: false,
        });
        e
    }

    #[test]
    fn the_critical_path_splits_a_target_into_outermost_waits_and_compute() {
        let events = vec![
            event("t", Category::Target, "x86_64-linux", 0.0, 100.0),
            event("t", Category::Wait, "page a", 10.0, 30.0),
            // Nested in the build wait: counted once, as part of it.
            event("t", Category::Wait, "build b", 40.0, 90.0),
            event("t", Category::Wait, "page setuptools", 50.0, 60.0),
            // Another thread's wait is not on this path.
            event("u", Category::Wait, "page c", 0.0, 100.0),
        ];
        let paths = critical_paths(&events);
        assert_eq!(paths.len(), 1);
        let p = &paths[0];
        assert_eq!(p.waits, 2);
        assert_eq!(p.wait_ms, 70.0);
        assert_eq!(p.compute_ms, 30.0);
        assert_eq!(p.sum_ms, 100.0);
        assert_eq!(p.top[0].label, "build b");
        let kinds: Vec<&str> = p.segments.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, ["compute", "wait", "compute", "wait", "compute"]);
    }

    #[test]
    fn unused_prefetches_are_counted_as_speculation_cost() {
        let events = vec![
            request(0.0, 50.0, "/simple/a/", true, true),
            request(0.0, 150.0, "/simple/b/", true, false),
            request(60.0, 100.0, "/simple/c/", false, false),
        ];
        let s = Summary::of(&events, 200.0);
        assert_eq!(s.speculation.requests, 2);
        assert_eq!(s.speculation.used, 1);
        assert_eq!(s.speculation.unused, 1);
        assert_eq!(s.speculation.unused_ms, 150.0);
        assert_eq!(s.peak_in_flight, 2);
        // 0-100 ms: a for 50, b for 100, c for 40 -> 1.9 on average; then b alone for 50.
        assert_eq!(s.in_flight, vec![1.9, 0.5]);
        assert_eq!(s.requests[&RequestKind::Page].count, 3);
    }

    #[test]
    fn hooks_for_sdists_no_resolution_needed_are_speculation_cost() {
        let t = Timings::on();
        for label in [
            "a-1.0.tar.gz: get_requires_for_build_wheel",
            "b-1.0.tar.gz: get_requires_for_build_wheel",
            "b-1.0.tar.gz: prepare_metadata_for_build_wheel",
        ] {
            let mark = t.mark();
            t.span(mark, Category::BuildHook, || label.to_string());
        }
        t.demand_build("a-1.0.tar.gz");
        let sp = t.take_timeline().unwrap().summary.speculation;
        assert_eq!(sp.hooks_unused, 2);
    }

    #[test]
    fn demand_marks_speculative_requests_used() {
        let t = Timings::on();
        for (fact, speculative) in [("/a", true), ("/b", true), ("/c", false)] {
            let mark = t.mark();
            t.request(
                mark,
                || fact.into(),
                RequestInfo {
                    kind: RequestKind::Metadata,
                    path: fact.into(),
                    fact: fact.into(),
                    bytes: 1,
                    origin: Origin::Network,
                    status: None,
                    speculative,
                    used: None,
                    sdist: false,
                },
            );
        }
        t.demand(|| "/a".into());
        let timeline = t.take_timeline().unwrap();
        let used: Vec<Option<bool>> = timeline
            .events
            .iter()
            .map(|e| e.request.as_ref().unwrap().used)
            .collect();
        assert!(used.contains(&Some(true)) && used.contains(&Some(false)) && used.contains(&None));
        assert_eq!(timeline.summary.speculation.unused, 1);
    }

    #[test]
    fn off_records_nothing() {
        let t = Timings::off();
        t.span(t.mark(), Category::Merge, || {
            unreachable!("labels are not built when off")
        });
        assert!(t.take_timeline().is_none());
    }
}
