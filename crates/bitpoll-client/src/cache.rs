//! The on-disk cache.
//!
//! Two kinds of entry live under the cache directory:
//!
//! - `http-v1/`: responses keyed by the sha256 of their URL (credentials removed), kept
//!   with the validators and freshness the server sent, so that a fresh entry is used
//!   without asking and a stale one is revalidated with a conditional request.
//! - `metadata-v1/` and `artifacts-v1/`: files whose sha256 the index declared, keyed by
//!   that hash. Content named by its hash never changes, so these never expire; the hash
//!   doubles as the integrity check.
//!
//! Every file is written to a temporary name and renamed into place, so readers (other
//! threads or processes) see either the old entry or the complete new one. A torn or
//! corrupted entry fails its checksum and is treated as missing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::header::{HeaderMap, AGE, CACHE_CONTROL, CONTENT_TYPE, ETAG, LAST_MODIFIED};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

const MAGIC: &[u8; 8] = b"BPCACHE1";
const HEADER_LEN: usize = 8 + 8 + 8 + 32;

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

pub(crate) struct Entry {
    pub meta: EntryMeta,
    pub body: Bytes,
}

pub(crate) struct DiskCache {
    root: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn atomic_write(path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache paths have a parent");
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(format!(
        ".tmp-{}-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed),
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry")
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        for part in parts {
            file.write_all(part)?;
        }
        file.flush()?;
        drop(file);
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

impl DiskCache {
    pub fn new(root: PathBuf) -> DiskCache {
        DiskCache { root }
    }

    fn sharded(&self, kind: &str, hex: &str) -> PathBuf {
        self.root.join(kind).join(&hex[..2]).join(hex)
    }

    /// Where the response for `url` (already stripped of credentials) is kept.
    pub fn http_path(&self, url: &Url) -> PathBuf {
        self.sharded("http-v1", &sha256_hex(url.as_str().as_bytes()))
    }

    /// Where content with this sha256 is kept; `kind` is `metadata` or `artifacts`.
    pub fn blob_path(&self, kind: &str, sha256: &str) -> PathBuf {
        self.sharded(&format!("{kind}-v1"), sha256)
    }

    pub fn read_entry(&self, path: &Path) -> Option<Entry> {
        let data = std::fs::read(path).ok()?;
        let entry = decode_entry(data);
        if entry.is_none() {
            // Damaged: drop it so the next fetch replaces it.
            let _ = std::fs::remove_file(path);
        }
        entry
    }

    pub fn write_entry(&self, path: &Path, meta: &EntryMeta, body: &[u8]) -> std::io::Result<()> {
        let meta_json = serde_json::to_vec(meta).map_err(std::io::Error::other)?;
        let mut hasher = Sha256::new();
        hasher.update(&meta_json);
        hasher.update(body);
        let checksum = hasher.finalize();
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&(meta_json.len() as u64).to_le_bytes());
        header.extend_from_slice(&(body.len() as u64).to_le_bytes());
        header.extend_from_slice(&checksum);
        atomic_write(path, &[&header, &meta_json, body])
    }

    /// The content stored under `sha256`, if present and intact.
    pub fn read_blob(&self, path: &Path, sha256: &str) -> Option<Bytes> {
        let data = std::fs::read(path).ok()?;
        if sha256_hex(&data) != sha256 {
            let _ = std::fs::remove_file(path);
            return None;
        }
        Some(Bytes::from(data))
    }

    pub fn write_blob(&self, path: &Path, body: &[u8]) -> std::io::Result<()> {
        atomic_write(path, &[body])
    }
}

fn decode_entry(data: Vec<u8>) -> Option<Entry> {
    if data.len() < HEADER_LEN || &data[..8] != MAGIC {
        return None;
    }
    let meta_len = u64::from_le_bytes(data[8..16].try_into().ok()?) as usize;
    let body_len = u64::from_le_bytes(data[16..24].try_into().ok()?) as usize;
    let checksum = &data[24..56];
    if data.len() != HEADER_LEN.checked_add(meta_len)?.checked_add(body_len)? {
        return None;
    }
    let payload = &data[HEADER_LEN..];
    if Sha256::digest(payload).as_slice() != checksum {
        return None;
    }
    let meta: EntryMeta = serde_json::from_slice(&payload[..meta_len]).ok()?;
    let body = Bytes::from(data).slice(HEADER_LEN + meta_len..);
    Some(Entry { meta, body })
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
        let entry = cache.read_entry(&path).unwrap();
        assert_eq!(entry.meta, meta);
        assert_eq!(&entry.body[..], b"hello");

        // Truncation and bit flips are both caught, and the entry is removed.
        let data = std::fs::read(&path).unwrap();
        std::fs::write(&path, &data[..data.len() - 1]).unwrap();
        assert!(cache.read_entry(&path).is_none());
        assert!(!path.exists());
        let mut flipped = data.clone();
        *flipped.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(cache.read_entry(&path).is_none());

        let blob = cache.blob_path("artifacts", &sha256_hex(b"x"));
        cache.write_blob(&blob, b"x").unwrap();
        assert_eq!(
            &cache.read_blob(&blob, &sha256_hex(b"x")).unwrap()[..],
            b"x"
        );
        std::fs::write(&blob, b"y").unwrap();
        assert!(cache.read_blob(&blob, &sha256_hex(b"x")).is_none());
    }
}
