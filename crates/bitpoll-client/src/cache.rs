//! The on-disk cache.
//!
//! Two kinds of entry live under the cache directory:
//!
//! - `http-v3/`: responses keyed by the sha256 of their URL (credentials removed), kept
//!   with the validators and freshness the server sent, so that a fresh entry is used
//!   without asking and a stale one is revalidated with a conditional request. The header
//!   holds the body's sha256 and the metadata's apart, so that the metadata (and what the
//!   body is) can be checked without reading a body of megabytes.
//! - `pages-v2/`: project pages as the parser left them (filtered, in the compact form of
//!   `bitpoll_simple`), keyed by the page's URL and how it was parsed, and valid for one
//!   body: each names the sha256 of the `http-v3/` body it was parsed from, and is checked
//!   with a CRC-32 of its own bytes.
//! - `sdist-members-v2/` and `wheel-metadata-v2/`: what was read out of an sdist or a wheel
//!   (its metadata files), in the `http-v3/` entry layout, keyed by the file's sha256.
//! - `metadata-v1/` and `artifacts-v1/`: files whose sha256 the index declared, keyed by
//!   that hash. Content named by its hash never changes, so these never expire; the hash
//!   doubles as the integrity check.
//!
//! Every file is written to a temporary name and renamed into place, so readers (other
//! threads or processes) see either the old entry or the complete new one. A torn or
//! corrupted entry fails its checksum and is treated as missing.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::header::{HeaderMap, AGE, CACHE_CONTROL, CONTENT_TYPE, ETAG, LAST_MODIFIED};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

const MAGIC: &[u8; 8] = b"BPCACHE3";
/// Magic, metadata length, body length, the body's sha256, the metadata's sha256.
const HEADER_LEN: usize = 8 + 8 + 8 + 32 + 32;
const PAGE_MAGIC: &[u8; 8] = b"BPPAGE02";
/// Magic, the sha256 of the body parsed, the CRC-32 of what follows. A checksum, not a
/// digest, guards what follows: it is read on every run, a sha256 of it was a twentieth of an
/// offline run's CPU, and it only has to catch damage (whoever can write the cache could
/// write a matching digest just as well).
const PAGE_HEADER_LEN: usize = 8 + 32 + 4;

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What we keep about a cached response besides its body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct EntryMeta {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub content_type: Option<String>,
    /// Where the response came from after redirects, without credentials.
    pub final_url: Option<String>,
    /// When the response was (re)validated, seconds since the epoch.
    pub stored_at: u64,
    /// Remaining freshness at `stored_at`; `None` means revalidate every time.
    pub max_age: Option<u64>,
    pub no_cache: bool,
}

/// The directives of `Cache-Control` that matter to a private client cache.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct CacheControl {
    pub max_age: Option<u64>,
    pub no_cache: bool,
    pub no_store: bool,
}

impl CacheControl {
    pub fn from_headers(headers: &HeaderMap) -> CacheControl {
        let mut cc = CacheControl::default();
        for value in headers.get_all(CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in value.split(',') {
                let directive = directive.trim();
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive, None),
                };
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => cc.no_store = true,
                    "no-cache" => cc.no_cache = true,
                    "max-age" => cc.max_age = arg.and_then(|a| a.parse().ok()),
                    _ => {}
                }
            }
        }
        cc
    }
}

fn header_string(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

impl EntryMeta {
    /// Metadata for a response with these headers, received now.
    pub fn from_response(headers: &HeaderMap, final_url: &Url) -> EntryMeta {
        let mut meta = EntryMeta {
            final_url: Some(final_url.to_string()),
            ..EntryMeta::default()
        };
        meta.refresh(headers);
        meta.etag = header_string(headers, ETAG);
        meta.last_modified = header_string(headers, LAST_MODIFIED);
        meta.content_type = header_string(headers, CONTENT_TYPE);
        meta
    }

    /// Applies a revalidation (304) answer: new freshness, and new validators if sent.
    pub fn refresh(&mut self, headers: &HeaderMap) {
        let cc = CacheControl::from_headers(headers);
        let age: u64 = header_string(headers, AGE)
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or(0);
        self.stored_at = now_secs();
        self.max_age = cc.max_age.map(|m| m.saturating_sub(age));
        self.no_cache = cc.no_cache;
        if let Some(etag) = header_string(headers, ETAG) {
            self.etag = Some(etag);
        }
        if let Some(lm) = header_string(headers, LAST_MODIFIED) {
            self.last_modified = Some(lm);
        }
    }

    pub fn is_fresh(&self, now: u64) -> bool {
        !self.no_cache
            && self
                .max_age
                .is_some_and(|max_age| now < self.stored_at.saturating_add(max_age))
    }
}

/// An HTTP cache entry that passed its checksum, open at the start of its body.
///
/// Bodies are read as a stream so that a large page is parsed without being held whole.
pub(crate) struct EntryReader {
    pub meta: EntryMeta,
    body: EntryBody,
    body_sha256: [u8; 32],
    /// Whether the entry is in the cache (it is not when the response said `no-store`).
    kept: bool,
}

/// What an entry says about itself, read without its body: enough to decide whether the
/// body is wanted, and to name it.
pub(crate) struct EntryHead {
    pub meta: EntryMeta,
    pub body_len: u64,
    pub body_sha256: [u8; 32],
}

/// The buffer outside the limit, not inside: a JSON parser reads byte by byte, and the
/// standard library serves single bytes straight from a `BufReader`'s buffer.
pub(crate) type EntryBody = BufReader<std::io::Take<File>>;

impl EntryReader {
    fn new(
        meta: EntryMeta,
        file: File,
        body_len: u64,
        body_sha256: [u8; 32],
        kept: bool,
    ) -> EntryReader {
        EntryReader {
            meta,
            body: BufReader::with_capacity(64 * 1024, file.take(body_len)),
            body_sha256,
            kept,
        }
    }

    pub fn body_sha256(&self) -> [u8; 32] {
        self.body_sha256
    }

    pub fn is_kept(&self) -> bool {
        self.kept
    }

    pub fn into_body(self) -> EntryBody {
        self.body
    }

    /// The body's length in bytes.
    pub fn body_len(&self) -> u64 {
        self.body.get_ref().limit()
    }

    /// The whole body in memory, for the small responses that are wanted that way.
    pub fn into_bytes(mut self) -> std::io::Result<Bytes> {
        let mut body = Vec::with_capacity(self.body.get_ref().limit() as usize);
        self.body.read_to_end(&mut body)?;
        Ok(body.into())
    }
}

/// A file written under a temporary name beside where it will live, hashed as it is
/// written; the temporary file is removed unless the owner takes the file to finish it.
pub(crate) struct Staged {
    dest: PathBuf,
    temp: PathBuf,
    file: Option<BufWriter<File>>,
    hasher: Sha256,
    /// Bytes reserved at the start (an entry's header), not part of the content.
    start: u64,
    len: u64,
    /// A reader of the content as it is written (see [`BlobWriter::follow`]).
    followed: Option<std::sync::Arc<Progress>>,
}

impl Staged {
    fn create(dest: &Path, start: u64) -> std::io::Result<Staged> {
        let temp = temp_path(dest)?;
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)?;
        let mut staged = Staged {
            dest: dest.to_path_buf(),
            temp,
            file: Some(BufWriter::new(file)),
            hasher: Sha256::new(),
            start,
            len: 0,
            followed: None,
        };
        // On failure, dropping `staged` removes the temporary file.
        staged.reset()?;
        Ok(staged)
    }

    fn file(&mut self) -> &mut BufWriter<File> {
        self.file
            .as_mut()
            .expect("the file is only taken to finish")
    }

    /// Starts the content over, as when a download is retried.
    pub fn reset(&mut self) -> std::io::Result<()> {
        // Every attempt starts with a reset; only one after content was written starts over,
        // and what a follower read of the first attempt no longer describes the file.
        if self.len > 0 {
            if let Some(progress) = self.followed.take() {
                progress.end(Written::Abandoned);
            }
        }
        let start = self.start;
        let file = self.file();
        file.flush()?;
        file.get_ref().set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&vec![0; start as usize])?;
        self.hasher = Sha256::new();
        self.len = 0;
        Ok(())
    }

    pub fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.file().write_all(chunk)?;
        self.hasher.update(chunk);
        self.len += chunk.len() as u64;
        if let Some(progress) = &self.followed {
            // The follower reads the file, not the buffer.
            self.file.as_mut().expect("written before taken").flush()?;
            progress.advance(self.len);
        }
        Ok(())
    }

    /// The file and the hash of what was written; from here on the caller owns the
    /// temporary file.
    fn take(&mut self) -> (BufWriter<File>, Sha256) {
        let mut file = self.file.take().expect("taken once");
        if let Some(progress) = self.followed.take() {
            // Flushed first, so that everything announced as written is in the file.
            let flushed = file.flush().is_ok();
            progress.end(if flushed {
                Written::Complete
            } else {
                Written::Abandoned
            });
        }
        (file, std::mem::take(&mut self.hasher))
    }

    fn discard(&self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(progress) = self.followed.take() {
            progress.end(Written::Abandoned);
        }
        if self.file.is_some() {
            self.discard();
        }
    }
}

/// How far a [`Staged`] file has been written, for a [`Follower`] reading it meanwhile.
struct Progress {
    state: std::sync::Mutex<(u64, Option<Written>)>,
    changed: std::sync::Condvar,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Written {
    /// Every byte is in the file.
    Complete,
    /// The writer failed, was dropped or started over: the file is not what was followed.
    Abandoned,
}

impl Progress {
    fn advance(&self, len: u64) {
        self.state.lock().expect("progress lock").0 = len;
        self.changed.notify_all();
    }

    fn end(&self, how: Written) {
        self.state.lock().expect("progress lock").1 = Some(how);
        self.changed.notify_all();
    }
}

/// Reads a cache file while it is being downloaded, waiting for the bytes still to come.
///
/// It ends like the file does only when the download was complete; when the download failed
/// or was retried, reading fails, so that nothing is concluded from part of an attempt.
/// Whether the bytes hash to what the index declared is the caller's to check afterwards.
pub(crate) struct Follower {
    file: File,
    read: u64,
    progress: std::sync::Arc<Progress>,
}

impl Follower {
    /// Whether the whole download was read from one attempt that ended complete.
    pub fn completed(&self) -> bool {
        self.progress.state.lock().expect("progress lock").1 == Some(Written::Complete)
    }
}

impl Read for Follower {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.file.read(buf)?;
            if n > 0 {
                self.read += n as u64;
                return Ok(n);
            }
            let mut state = self.progress.state.lock().expect("progress lock");
            loop {
                match *state {
                    (_, Some(Written::Abandoned)) => {
                        return Err(std::io::Error::other("the download did not complete"))
                    }
                    // Announced bytes are flushed: read them.
                    (written, _) if written > self.read => break,
                    (_, Some(Written::Complete)) => return Ok(0),
                    _ => state = self.progress.changed.wait(state).expect("progress lock"),
                }
            }
        }
    }
}

/// The writers of new cache files: a [`Staged`] file and what finishing it means.
pub(crate) trait Staging {
    fn staged(&mut self) -> &mut Staged;
    /// Where the file goes when finished.
    fn destination(&self) -> &Path;
}

/// A new HTTP cache entry, written as its body arrives.
///
/// An entry is laid out as header, body, metadata: the metadata describes the response as a
/// whole (final URL, validators), and putting it last lets the body go to disk before it is
/// known. Until [`EntryWriter::commit`] the entry lives under a temporary name that is
/// removed if the writer is dropped.
pub(crate) struct EntryWriter(Staged);

impl Staging for EntryWriter {
    fn staged(&mut self) -> &mut Staged {
        &mut self.0
    }
    fn destination(&self) -> &Path {
        &self.0.dest
    }
}

impl EntryWriter {
    /// Finishes the entry and, when `store`, moves it into place. Either way the body can
    /// then be read back from the returned reader; an entry that is not stored disappears
    /// when the reader is dropped.
    pub fn commit(mut self, meta: &EntryMeta, store: bool) -> std::io::Result<EntryReader> {
        let (file, hasher) = self.0.take();
        let result = self.finish(file, hasher, meta, store);
        if result.is_err() {
            self.0.discard();
        }
        result
    }

    fn finish(
        &self,
        mut file: BufWriter<File>,
        hasher: Sha256,
        meta: &EntryMeta,
        store: bool,
    ) -> std::io::Result<EntryReader> {
        let meta_json = serde_json::to_vec(meta).map_err(std::io::Error::other)?;
        file.write_all(&meta_json)?;
        let body_sha256: [u8; 32] = hasher.finalize().into();
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header(
            meta_json.len() as u64,
            self.0.len,
            &body_sha256,
            &Sha256::digest(&meta_json),
        ))?;
        let mut file = file.into_inner().map_err(|e| e.into_error())?;
        if store {
            std::fs::rename(&self.0.temp, &self.0.dest)?;
        } else {
            // The open handle keeps the data readable after the name is gone.
            std::fs::remove_file(&self.0.temp)?;
        }
        file.seek(SeekFrom::Start(HEADER_LEN as u64))?;
        Ok(EntryReader::new(
            meta.clone(),
            file,
            self.0.len,
            body_sha256,
            store,
        ))
    }
}

/// A download on its way into `artifacts-v1/` or `metadata-v1/`: kept only if its sha256 is
/// the one the index declared.
pub(crate) struct BlobWriter(Staged);

impl Staging for BlobWriter {
    fn staged(&mut self) -> &mut Staged {
        &mut self.0
    }
    fn destination(&self) -> &Path {
        &self.0.dest
    }
}

impl BlobWriter {
    /// A reader of the content from its start as it is written; before anything is written.
    pub fn follow(&mut self) -> std::io::Result<Follower> {
        let staged = &mut self.0;
        if staged.len > 0 || staged.followed.is_some() {
            return Err(std::io::Error::other("followed from the start only, once"));
        }
        let mut file = File::open(&staged.temp)?;
        file.seek(SeekFrom::Start(staged.start))?;
        let progress = std::sync::Arc::new(Progress {
            state: std::sync::Mutex::new((0, None)),
            changed: std::sync::Condvar::new(),
        });
        staged.followed = Some(progress.clone());
        Ok(Follower {
            file,
            read: 0,
            progress,
        })
    }

    /// The stored file, open at its start; `Ok(Err(actual))` when the content's sha256 is
    /// not `expected`, in which case nothing is stored.
    pub fn finish(mut self, expected: &str) -> std::io::Result<Result<File, String>> {
        let (file, hasher) = self.0.take();
        let actual = hex::encode(hasher.finalize());
        let file = file.into_inner().map_err(|e| e.into_error());
        if actual != expected || file.is_err() {
            self.0.discard();
            return file.map(|_| Err(actual));
        }
        let mut file = file?;
        // Content checked against its hash is usable even where it cannot be kept.
        if std::fs::rename(&self.0.temp, &self.0.dest).is_err() {
            self.0.discard();
        }
        file.seek(SeekFrom::Start(0))?;
        Ok(Ok(file))
    }
}

fn header(meta_len: u64, body_len: u64, body_sha256: &[u8], meta_sha256: &[u8]) -> Vec<u8> {
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&meta_len.to_le_bytes());
    header.extend_from_slice(&body_len.to_le_bytes());
    header.extend_from_slice(body_sha256);
    header.extend_from_slice(meta_sha256);
    header
}

#[derive(Debug, Clone)]
pub(crate) struct DiskCache {
    root: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_path(path: &Path) -> std::io::Result<PathBuf> {
    let dir = path.parent().expect("cache paths have a parent");
    std::fs::create_dir_all(dir)?;
    Ok(dir.join(format!(
        ".tmp-{}-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed),
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry")
    )))
}

/// Layouts earlier versions wrote and nothing reads any more.
const RETIRED: &[&str] = &[
    "http-v1",
    "http-v2",
    "pages-v1",
    "sdist-members-v1",
    "wheel-metadata-v1",
];

impl DiskCache {
    pub fn new(root: PathBuf) -> DiskCache {
        DiskCache { root }
    }

    /// Removes what older layouts left behind, so that a cache does not keep growing across
    /// upgrades. Best effort: a cache we cannot clean is still usable.
    pub fn remove_retired(&self) {
        for dir in RETIRED {
            let _ = std::fs::remove_dir_all(self.root.join(dir));
        }
    }

    fn sharded(&self, kind: &str, hex: &str) -> PathBuf {
        self.root.join(kind).join(&hex[..2]).join(hex)
    }

    /// Where the response for `url` (already stripped of credentials) is kept.
    pub fn http_path(&self, url: &Url) -> PathBuf {
        self.sharded("http-v3", &sha256_hex(url.as_str().as_bytes()))
    }

    /// Where a parsed page is kept; `key` says which page and how it was parsed.
    pub fn page_path(&self, key: &str) -> PathBuf {
        self.sharded("pages-v2", &sha256_hex(key.as_bytes()))
    }

    /// The parsed page at `path`, if it is intact and was parsed from the body with
    /// `source_sha256`. Anything else reads as missing: the page is parsed again.
    pub fn read_page(&self, path: &Path, source_sha256: &[u8; 32]) -> Option<Vec<u8>> {
        // The header is read on its own so that the payload lands at the start of its
        // buffer: pages run to hundreds of kilobytes, and moving each down its buffer after
        // reading copied every page once more.
        let mut file = File::open(path).ok()?;
        let mut header = [0u8; PAGE_HEADER_LEN];
        file.read_exact(&mut header).ok()?;
        if &header[..8] != PAGE_MAGIC || header[8..40] != source_sha256[..] {
            return None;
        }
        let len = file
            .metadata()
            .ok()?
            .len()
            .checked_sub(PAGE_HEADER_LEN as u64)?;
        let mut data = Vec::with_capacity(usize::try_from(len).ok()?);
        file.read_to_end(&mut data).ok()?;
        if crc32fast::hash(&data).to_le_bytes() != header[40..44] {
            let _ = std::fs::remove_file(path);
            return None;
        }
        Some(data)
    }

    /// Stores a parsed page of the body with `source_sha256`; best effort, since a missing
    /// one only costs a parse.
    pub fn write_page(&self, path: &Path, source_sha256: &[u8; 32], payload: &[u8]) {
        let Ok(mut staged) = Staged::create(path, 0) else {
            return;
        };
        let written = [
            PAGE_MAGIC.as_slice(),
            source_sha256,
            &crc32fast::hash(payload).to_le_bytes(),
            payload,
        ]
        .iter()
        .try_for_each(|part| staged.write(part));
        let (file, _) = staged.take();
        let finished = written
            .and_then(|()| file.into_inner().map_err(|e| e.into_error()))
            .and_then(|_| std::fs::rename(&staged.temp, &staged.dest));
        if finished.is_err() {
            staged.discard();
        }
    }

    /// Where the resolver keeps the solve of `slot` for the next run. Stored as a parsed page
    /// is, with the key it was kept under where a page has its source's digest: one kept
    /// under another key, or damaged, reads as missing.
    pub fn solve_path(&self, slot: &[u8; 32]) -> PathBuf {
        self.sharded("solves-v1", &hex::encode(slot))
    }

    /// An entry's metadata and the identity of its body, checked without reading the body.
    /// `None` when absent or damaged; the body itself is only checked by [`Self::open_entry`].
    pub fn peek_entry(&self, path: &Path) -> Option<EntryHead> {
        let mut file = File::open(path).ok()?;
        let (meta_len, body_len, head) = read_header(&mut file)?;
        file.seek(SeekFrom::Start(HEADER_LEN as u64 + body_len))
            .ok()?;
        let mut meta_json = Vec::with_capacity(meta_len as usize);
        file.take(meta_len).read_to_end(&mut meta_json).ok()?;
        if meta_json.len() as u64 != meta_len
            || Sha256::digest(&meta_json).as_slice() != &head[56..88]
        {
            return None;
        }
        Some(EntryHead {
            meta: serde_json::from_slice(&meta_json).ok()?,
            body_len,
            body_sha256: head[24..56].try_into().ok()?,
        })
    }

    /// Where content with this sha256 is kept; `kind` is `metadata` or `artifacts`.
    pub fn blob_path(&self, kind: &str, sha256: &str) -> PathBuf {
        self.sharded(&format!("{kind}-v1"), sha256)
    }

    /// Where something derived from a file with this sha256 is kept as an HTTP-style entry
    /// (`sdist-members`, `wheel-metadata`); versioned with the entry layout.
    pub fn derived_path(&self, kind: &str, sha256: &str) -> PathBuf {
        self.sharded(&format!("{kind}-v2"), sha256)
    }

    /// The entry at `path` if it is intact; a damaged one is removed so that the next fetch
    /// replaces it.
    pub fn open_entry(&self, path: &Path) -> Option<EntryReader> {
        let reader = check_entry(path);
        if reader.is_none() && path.exists() {
            let _ = std::fs::remove_file(path);
        }
        reader
    }

    /// The body of the entry at `path`, if it is intact.
    pub fn read_entry(&self, path: &Path) -> Option<Bytes> {
        self.open_entry(path)?.into_bytes().ok()
    }

    /// Starts writing the entry at `path`.
    pub fn create_entry(&self, path: &Path) -> std::io::Result<EntryWriter> {
        Staged::create(path, HEADER_LEN as u64).map(EntryWriter)
    }

    /// Starts writing content that must hash to the name of `path`.
    pub fn create_blob(&self, path: &Path) -> std::io::Result<BlobWriter> {
        Staged::create(path, 0).map(BlobWriter)
    }

    pub fn write_entry(&self, path: &Path, meta: &EntryMeta, body: &[u8]) -> std::io::Result<()> {
        let mut writer = self.create_entry(path)?;
        writer.staged().write(body)?;
        writer.commit(meta, true).map(drop)
    }

    /// The file stored under `sha256`, open at its start, if present and intact; checked in
    /// one streaming pass rather than read into memory.
    pub fn open_blob(&self, path: &Path, sha256: &str) -> Option<File> {
        let mut file = File::open(path).ok()?;
        let mut hasher = Sha256::new();
        std::io::copy(
            &mut BufReader::with_capacity(64 * 1024, &mut file),
            &mut HashWriter(&mut hasher),
        )
        .ok()?;
        if hex::encode(hasher.finalize()) != sha256 {
            let _ = std::fs::remove_file(path);
            return None;
        }
        file.seek(SeekFrom::Start(0)).ok()?;
        Some(file)
    }

    /// Stores `body`, which the caller found to hash to `sha256`.
    pub fn write_blob(&self, path: &Path, sha256: &str, body: &[u8]) -> std::io::Result<()> {
        let mut writer = self.create_blob(path)?;
        writer.staged().write(body)?;
        writer.finish(sha256).map(drop)
    }

    /// The content stored under `sha256`, if present and intact.
    pub fn read_blob(&self, path: &Path, sha256: &str) -> Option<Bytes> {
        let mut data = Vec::new();
        self.open_blob(path, sha256)?.read_to_end(&mut data).ok()?;
        Some(Bytes::from(data))
    }
}

/// Opens an entry after checking its length and checksum in one streaming pass (the body is
/// then read a second time, from the page cache, by whoever wants it).
fn check_entry(path: &Path) -> Option<EntryReader> {
    let mut file = File::open(path).ok()?;
    let (meta_len, body_len, head) = read_header(&mut file)?;
    let mut hasher = Sha256::new();
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let copied = std::io::copy(
        &mut (&mut reader).take(body_len),
        &mut HashWriter(&mut hasher),
    )
    .ok()?;
    let mut meta_json = Vec::with_capacity(meta_len as usize);
    reader.read_to_end(&mut meta_json).ok()?;
    if copied != body_len || meta_json.len() as u64 != meta_len {
        return None;
    }
    if hasher.finalize().as_slice() != &head[24..56]
        || Sha256::digest(&meta_json).as_slice() != &head[56..88]
    {
        return None;
    }
    let meta: EntryMeta = serde_json::from_slice(&meta_json).ok()?;
    let mut file = reader.into_inner();
    file.seek(SeekFrom::Start(HEADER_LEN as u64)).ok()?;
    Some(EntryReader::new(
        meta,
        file,
        body_len,
        head[24..56].try_into().ok()?,
        true,
    ))
}

/// An entry's header, once its magic and the file's length agree with it: the metadata's
/// length, the body's, and the header itself.
fn read_header(file: &mut File) -> Option<(u64, u64, [u8; HEADER_LEN])> {
    let mut head = [0u8; HEADER_LEN];
    file.read_exact(&mut head).ok()?;
    if &head[..8] != MAGIC {
        return None;
    }
    let meta_len = u64::from_le_bytes(head[8..16].try_into().ok()?);
    let body_len = u64::from_le_bytes(head[16..24].try_into().ok()?);
    let expected = (HEADER_LEN as u64)
        .checked_add(meta_len)?
        .checked_add(body_len)?;
    if file.metadata().ok()?.len() != expected || meta_len > MAX_META_LEN {
        return None;
    }
    Some((meta_len, body_len, head))
}

/// Metadata is a few hundred bytes; a larger length field means damage.
const MAX_META_LEN: u64 = 1 << 20;

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn cache_control_parsing() {
        let mut h = HeaderMap::new();
        h.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("max-age=600, public"),
        );
        assert_eq!(
            CacheControl::from_headers(&h),
            CacheControl {
                max_age: Some(600),
                no_cache: false,
                no_store: false
            }
        );
        h.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("No-Cache, no-store"),
        );
        let cc = CacheControl::from_headers(&h);
        assert!(cc.no_cache && cc.no_store && cc.max_age.is_none());
    }

    #[test]
    fn freshness_accounts_for_age() {
        let mut h = HeaderMap::new();
        h.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=100"));
        h.insert(AGE, HeaderValue::from_static("40"));
        let meta = EntryMeta::from_response(&h, &Url::parse("http://127.0.0.1/").unwrap());
        assert_eq!(meta.max_age, Some(60));
        assert!(meta.is_fresh(meta.stored_at + 59));
        assert!(!meta.is_fresh(meta.stored_at + 60));
        let mut no_cache = meta.clone();
        no_cache.no_cache = true;
        assert!(!no_cache.is_fresh(meta.stored_at));
    }

    #[test]
    fn entries_round_trip_and_detect_damage() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::new(dir.path().to_path_buf());
        let path = cache.http_path(&Url::parse("http://127.0.0.1/simple/x/").unwrap());
        let meta = EntryMeta {
            etag: Some("\"abc\"".into()),
            ..EntryMeta::default()
        };
        cache.write_entry(&path, &meta, b"hello").unwrap();
        let entry = cache.open_entry(&path).unwrap();
        assert_eq!(entry.meta, meta);
        let mut body = String::new();
        entry.into_body().read_to_string(&mut body).unwrap();
        assert_eq!(body, "hello");

        // Truncation and bit flips are both caught, and the entry is removed.
        let data = std::fs::read(&path).unwrap();
        std::fs::write(&path, &data[..data.len() - 1]).unwrap();
        assert!(cache.read_entry(&path).is_none());
        assert!(!path.exists());
        // The body comes right after the header, the metadata last: damage to either counts.
        for at in [HEADER_LEN, data.len() - 1] {
            let mut flipped = data.clone();
            flipped[at] ^= 1;
            std::fs::write(&path, &flipped).unwrap();
            assert!(cache.read_entry(&path).is_none(), "flip at {at}");
        }

        let blob = cache.blob_path("artifacts", &sha256_hex(b"x"));
        cache.write_blob(&blob, &sha256_hex(b"x"), b"x").unwrap();
        assert_eq!(
            &cache.read_blob(&blob, &sha256_hex(b"x")).unwrap()[..],
            b"x"
        );
        std::fs::write(&blob, b"y").unwrap();
        assert!(cache.read_blob(&blob, &sha256_hex(b"x")).is_none());
    }

    /// A blob being downloaded, its follower on another thread, and what it read.
    fn follow_while_writing(
        write: impl FnOnce(BlobWriter) + Send + 'static,
    ) -> (std::io::Result<Vec<u8>>, bool) {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::new(dir.path().to_path_buf());
        let mut writer = cache.create_blob(&dir.path().join("blob")).unwrap();
        let mut follower = writer.follow().unwrap();
        let reader = std::thread::spawn(move || {
            let mut read = Vec::new();
            let result = follower.read_to_end(&mut read).map(|_| read);
            (result, follower.completed())
        });
        write(writer);
        reader.join().unwrap()
    }

    fn finish(writer: BlobWriter, content: &[u8]) {
        let sha256 = hex::encode(Sha256::digest(content));
        assert!(writer.finish(&sha256).unwrap().is_ok());
    }

    #[test]
    fn a_follower_reads_what_is_written_as_it_comes() {
        let chunks: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 1000 + i as usize]).collect();
        let expected: Vec<u8> = chunks.concat();
        let content = expected.clone();
        let (read, completed) = follow_while_writing(move |mut writer| {
            for chunk in &chunks {
                writer.staged().write(chunk).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            finish(writer, &content);
        });
        assert_eq!(read.unwrap(), expected);
        assert!(completed);
    }

    #[test]
    fn a_follower_fails_when_the_download_starts_over_or_is_dropped() {
        // A retried download starts over: what was read of the first attempt is not the file.
        let (read, completed) = follow_while_writing(|mut writer| {
            writer.staged().write(b"first attempt").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            writer.staged().reset().unwrap();
            writer.staged().write(b"second").unwrap();
            finish(writer, b"second");
        });
        assert!(read.is_err(), "{read:?}");
        assert!(!completed);
        // A download that fails drops its writer half-way.
        let (read, completed) = follow_while_writing(|mut writer| {
            writer.staged().write(b"half of it").unwrap();
            drop(writer);
        });
        assert!(read.is_err(), "{read:?}");
        assert!(!completed);
        // The reset each attempt starts with, before anything is written, keeps the follower.
        let (read, completed) = follow_while_writing(|mut writer| {
            writer.staged().reset().unwrap();
            writer.staged().write(b"whole").unwrap();
            finish(writer, b"whole");
        });
        assert_eq!(read.unwrap(), b"whole");
        assert!(completed);
    }
}
