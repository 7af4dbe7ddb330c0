//! The PEP 691 JSON project page.

use std::borrow::Cow;
use std::sync::Arc;

use pep440_rs::Version;
use pep508_rs::PackageName;
use rustc_hash::FxHashMap;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use url::Url;

use crate::compact::CompactFiles;
use crate::redact_url;
use crate::time::Timestamp;

/// The media type of PEP 691 JSON pages, version 1.
pub const SIMPLE_JSON_V1: &str = "application/vnd.pypi.simple.v1+json";
/// PEP 691 also names this alias for "the newest JSON version".
const SIMPLE_JSON_LATEST: &str = "application/vnd.pypi.simple.latest+json";

/// One project's files as the index lists them, less the wheels a [`WheelFilter`] dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectPage {
    pub name: PackageName,
    pub files: PageFiles,
    /// The versions of the wheels the filter dropped, sorted, each once. A release whose
    /// files were all dropped still exists: it is reported as having nothing installable
    /// rather than as missing, and it counts when deciding whether a project has only
    /// pre-releases.
    pub dropped_wheel_versions: Vec<Version>,
}

/// A page's files in page order. Those of a page read back from its compact form are built
/// the first time each is read (see the `compact` module); to the reader both are a list.
#[derive(Clone)]
pub struct PageFiles(Files);

#[derive(Clone)]
enum Files {
    Parsed(Vec<Arc<DistFile>>),
    Compact(Arc<CompactFiles>),
}

impl PageFiles {
    pub(crate) fn parsed(files: Vec<Arc<DistFile>>) -> PageFiles {
        PageFiles(Files::Parsed(files))
    }

    pub(crate) fn compact(files: CompactFiles) -> PageFiles {
        PageFiles(Files::Compact(Arc::new(files)))
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Files::Parsed(files) => files.len(),
            Files::Compact(files) => files.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// File `i`'s name, without building the file: what grouping a page by release needs.
    pub fn filename(&self, i: usize) -> &str {
        match &self.0 {
            Files::Parsed(files) => &files[i].filename,
            Files::Compact(files) => files.filename(i),
        }
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Arc<DistFile>> + ExactSizeIterator + '_ {
        (0..self.len()).map(|i| &self[i])
    }
}

impl<'a> IntoIterator for &'a PageFiles {
    type Item = &'a Arc<DistFile>;
    type IntoIter = Box<dyn DoubleEndedIterator<Item = &'a Arc<DistFile>> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl std::ops::Index<usize> for PageFiles {
    type Output = Arc<DistFile>;

    fn index(&self, i: usize) -> &Arc<DistFile> {
        match &self.0 {
            Files::Parsed(files) => &files[i],
            Files::Compact(files) => files.get(i),
        }
    }
}

impl PartialEq for PageFiles {
    fn eq(&self, other: &PageFiles) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl std::fmt::Debug for PageFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// What a [`WheelFilter`] decides about one wheel of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WheelVerdict {
    Keep,
    /// No target can install it; the release it belongs to is remembered.
    Drop(Version),
    /// The name is not a valid wheel file name; installers skip such files too.
    Unreadable,
}

/// Decides, while a page is read, which of its wheels are worth keeping, given the project
/// and the file name. Pages list every platform's builds: of the ~42,000 wheels in Bitpoll's
/// closure about 5,000 install on its four targets, and keeping only those is most of the
/// difference in peak memory. Source distributions are always kept.
#[derive(Clone)]
pub struct WheelFilter {
    key: Arc<str>,
    decide: Arc<DecideFn>,
}

type DecideFn = dyn Fn(&PackageName, &str) -> WheelVerdict + Send + Sync;

impl WheelFilter {
    /// `key` names the decisions: two filters with one key must decide every wheel alike,
    /// since parsed pages are cached under it.
    pub fn new(
        key: impl Into<Arc<str>>,
        decide: impl Fn(&PackageName, &str) -> WheelVerdict + Send + Sync + 'static,
    ) -> Self {
        WheelFilter {
            key: key.into(),
            decide: Arc::new(decide),
        }
    }

    pub fn decide(&self, project: &PackageName, filename: &str) -> WheelVerdict {
        (self.decide)(project, filename)
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

impl std::fmt::Debug for WheelFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WheelFilter")
    }
}

/// A sha256 digest; shown as lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// Parses 64 hex digits of either case, surrounding whitespace allowed.
    pub fn from_hex(text: &str) -> Option<Sha256Digest> {
        let text = text.trim().as_bytes();
        if text.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
            let digit = |c: u8| (c as char).to_digit(16);
            *byte = (digit(pair[0])? << 4 | digit(pair[1])?) as u8;
        }
        Some(Sha256Digest(out))
    }
}

impl std::fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// What the URLs of one page's files have in common.
#[derive(PartialEq, Eq, Hash)]
pub(crate) struct PageUrls {
    /// What relative links resolve against; may carry the index credentials.
    pub(crate) base: Url,
    /// The first file's URL as written; the others usually share most of it.
    pub(crate) shared: Box<str>,
}

/// One downloadable file (wheel or sdist) of a project.
///
/// The URL may carry the index credentials, which downloads need; it must never be printed
/// as is. `Debug` redacts it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DistFile {
    pub filename: Box<str>,
    // Pages list tens of thousands of files, few of which are ever fetched, so the URL is
    // kept as the page wrote it, minus the part it shares with the page's first URL and the
    // file name it usually ends with, and resolved only when asked for.
    pub(crate) urls: Arc<PageUrls>,
    pub(crate) shared_len: u32,
    pub(crate) url_rest: Box<str>,
    pub(crate) url_ends_with_name: bool,
    pub sha256: Option<Sha256Digest>,
    /// Shared by the files of a page that declare the same one.
    pub requires_python: Option<Arc<str>>,
    /// `Some(reason)` when yanked (PEP 592); the reason may be empty.
    pub yanked: Option<Box<str>>,
    /// `Some(Some(sha256))` when a core-metadata file is offered with a hash,
    /// `Some(None)` when offered without one, `None` when not offered.
    pub core_metadata: Option<Option<Sha256Digest>>,
    pub size: Option<u64>,
    /// When the file was uploaded, as the index says (PEP 700 `upload-time`).
    pub upload_time: Option<Timestamp>,
    /// The file's PEP 740 provenance URL (simple API 1.3 `provenance`), as the page wrote it.
    pub provenance: Option<Box<str>>,
}

impl DistFile {
    /// Whether the file is a wheel (as opposed to an sdist).
    pub fn is_wheel(&self) -> bool {
        is_wheel_name(&self.filename)
    }

    /// Where the file's PEP 740 provenance is, when the index lists one; may carry the index
    /// credentials, as [`DistFile::url`] does.
    pub fn provenance_url(&self) -> Option<Url> {
        let raw = self.provenance.as_deref()?;
        self.urls.base.join(raw).ok()
    }

    fn raw_url(&self) -> String {
        let shared = &self.urls.shared[..self.shared_len as usize];
        let name = if self.url_ends_with_name {
            &*self.filename
        } else {
            ""
        };
        [shared, &self.url_rest, name].concat()
    }

    /// What tells the file apart from every other of the index, cheaply: its URL before it
    /// is resolved (the page's URL and the link as written). For keys that stay in memory:
    /// it may carry the index credentials.
    pub fn identity(&self) -> String {
        [self.urls.base.as_str(), "\n", &self.raw_url()].concat()
    }

    /// Where the file is; may carry the index credentials.
    pub fn url(&self) -> Url {
        self.urls
            .base
            .join(&self.raw_url())
            .expect("file URLs are checked when the page is parsed")
    }

    /// The URL with credentials replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url())
    }

    /// The PEP 658 location of the file's core metadata: the file URL plus `.metadata`.
    pub fn metadata_url(&self) -> Url {
        let mut url = self.url();
        url.set_fragment(None);
        let path = format!("{}.metadata", url.path());
        url.set_path(&path);
        url
    }
}

impl std::fmt::Debug for DistFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistFile")
            .field("filename", &self.filename)
            .field("url", &self.redacted_url())
            .field("sha256", &self.sha256)
            .field("requires_python", &self.requires_python)
            .field("yanked", &self.yanked)
            .field("core_metadata", &self.core_metadata)
            .field("size", &self.size)
            .field("upload_time", &self.upload_time)
            .field("provenance", &self.provenance)
            .finish()
    }
}

fn is_wheel_name(filename: &str) -> bool {
    let name = filename.as_bytes();
    name.len() >= 4 && name[name.len() - 4..].eq_ignore_ascii_case(b".whl")
}

/// Whether a `Content-Type` header value names a PEP 691 JSON page.
pub fn is_simple_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case(SIMPLE_JSON_V1) || essence.eq_ignore_ascii_case(SIMPLE_JSON_LATEST)
}

#[derive(Deserialize)]
struct RawFile<'a> {
    #[serde(borrow)]
    filename: Cow<'a, str>,
    #[serde(borrow)]
    url: Cow<'a, str>,
    #[serde(default, borrow)]
    hashes: Hashes<'a>,
    #[serde(rename = "requires-python", default, borrow)]
    requires_python: Option<Cow<'a, str>>,
    #[serde(default)]
    yanked: Option<BoolOrString>,
    #[serde(rename = "core-metadata", default, borrow)]
    core_metadata: Option<BoolOrHashes<'a>>,
    #[serde(rename = "data-dist-info-metadata", default, borrow)]
    dist_info_metadata: Option<BoolOrHashes<'a>>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(rename = "upload-time", default, borrow)]
    upload_time: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    provenance: Option<Cow<'a, str>>,
}

/// Only the hash we check; other algorithms are skipped without allocating a map per file.
#[derive(Deserialize, Default)]
struct Hashes<'a> {
    #[serde(default, borrow)]
    sha256: Option<Cow<'a, str>>,
}

// The two "either" fields below have hand-written visitors: serde's `untagged` buffers
// every value before trying each variant, which made them the costliest part of parsing
// pages with tens of thousands of files.

enum BoolOrString {
    Bool(bool),
    String(String),
}

impl<'de> Deserialize<'de> for BoolOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BoolOrString;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a boolean or a string")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(BoolOrString::Bool(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BoolOrString::String(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(BoolOrString::String(v))
            }
        }
        d.deserialize_any(V)
    }
}

enum BoolOrHashes<'a> {
    Bool(bool),
    Hashes(Hashes<'a>),
}

impl<'de: 'a, 'a> Deserialize<'de> for BoolOrHashes<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = BoolOrHashes<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a boolean or a map of hashes")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(BoolOrHashes::Bool(v))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Hashes::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(BoolOrHashes::Hashes)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Turns the files of a page into [`DistFile`]s as they are read, so that the page never
/// exists in memory as a whole a second time. The first problem with a file is kept rather
/// than returned: a malformed document or a page for another project is reported first.
struct FilesBuilder<'p> {
    page_url: &'p Url,
    project: &'p PackageName,
    exclude_newer: Option<&'p Timestamp>,
    filter: Option<&'p WheelFilter>,
    dropped: Vec<Version>,
    /// Releases for which a dropped wheel was kept all the same (see `add`), and whether
    /// that wheel has a core-metadata file.
    donors: FxHashMap<Version, bool>,
    urls: Option<Arc<PageUrls>>,
    requires_python: Vec<Arc<str>>,
    files: Vec<Arc<DistFile>>,
    error: Option<String>,
}

impl FilesBuilder<'_> {
    fn intern_requires_python(&mut self, text: &str) -> Arc<str> {
        // A page repeats a handful of these; a short list beats hashing.
        if let Some(found) = self.requires_python.iter().find(|r| &***r == text) {
            return found.clone();
        }
        let new: Arc<str> = text.into();
        self.requires_python.push(new.clone());
        new
    }

    /// Two kept entries with one name would let the index pick which bytes a hash check
    /// sees. Dropped wheels are never fetched, so only kept files need to be unique, and
    /// checking them after the fact costs no memory beyond a list of references.
    fn duplicate_name(&self) -> Option<String> {
        let mut names: Vec<&str> = self.files.iter().map(|f| &*f.filename).collect();
        names.sort_unstable();
        names
            .windows(2)
            .find(|pair| pair[0] == pair[1])
            .map(|pair| format!("two files are named {:?}", pair[0]))
    }

    fn add(&mut self, file: RawFile<'_>) -> Result<(), String> {
        let filename = &*file.filename;
        if filename.is_empty()
            || filename.contains('/')
            || filename.contains('\\')
            || filename.contains("..")
        {
            return Err(format!("refusing unsafe file name {filename:?}"));
        }
        let yanked = match file.yanked {
            None | Some(BoolOrString::Bool(false)) => None,
            Some(BoolOrString::Bool(true)) => Some("".into()),
            Some(BoolOrString::String(reason)) => Some(reason.into()),
        };
        // PEP 714 renamed the key; prefer the new one, accept the old from older servers.
        let core_metadata = match file.core_metadata.or(file.dist_info_metadata) {
            None | Some(BoolOrHashes::Bool(false)) => None,
            Some(BoolOrHashes::Bool(true)) => Some(None),
            Some(BoolOrHashes::Hashes(hashes)) => {
                Some(hashes.sha256.as_deref().and_then(Sha256Digest::from_hex))
            }
        };
        let uploaded = file.upload_time.as_deref().and_then(Timestamp::parse);
        if let Some(limit) = self.exclude_newer {
            match uploaded {
                Some(t) if t <= *limit => {}
                _ => return Ok(()),
            }
        }
        if let (Some(filter), true) = (self.filter, is_wheel_name(filename)) {
            match filter.decide(self.project, filename) {
                WheelVerdict::Keep => {}
                WheelVerdict::Unreadable => return Ok(()),
                WheelVerdict::Drop(version) => {
                    // One wheel per release is kept anyway: its metadata describes the
                    // release's sdist too (as it does for pip and uv), which saves building
                    // or downloading the sdist. One with a core-metadata file is best; failing
                    // that, one whose METADATA a range request can read. So at most two.
                    let has_core = core_metadata.is_some();
                    let donor = yanked.is_none()
                        && match self.donors.get(&version) {
                            None => true,
                            Some(had_core) => has_core && !had_core,
                        };
                    if donor {
                        self.donors.insert(version.clone(), has_core);
                    }
                    if self.dropped.last() != Some(&version) {
                        self.dropped.push(version);
                    }
                    if !donor {
                        return Ok(());
                    }
                }
            }
        }
        // Checked only for files we keep: the others are never fetched, and checking
        // costs a URL parse for each of tens of thousands of them.
        let url = self
            .page_url
            .join(&file.url)
            .map_err(|e| format!("invalid URL for {filename}: {e}"))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!(
                "{filename} has a non-HTTP URL {}",
                redact_url(&url)
            ));
        }
        let sha256 = match &file.hashes.sha256 {
            Some(h) => Some(
                Sha256Digest::from_hex(h)
                    .ok_or_else(|| format!("{filename} has an invalid sha256 {h:?}"))?,
            ),
            None => None,
        };
        let raw: &str = &file.url;
        let urls = self
            .urls
            .get_or_insert_with(|| {
                Arc::new(PageUrls {
                    base: self.page_url.clone(),
                    shared: raw.into(),
                })
            })
            .clone();
        let mut shared_len = raw
            .bytes()
            .zip(urls.shared.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        while !raw.is_char_boundary(shared_len) {
            shared_len -= 1;
        }
        let rest = &raw[shared_len..];
        let url_ends_with_name = rest.ends_with(filename);
        let url_rest = if url_ends_with_name {
            &rest[..rest.len() - filename.len()]
        } else {
            rest
        };
        let requires_python = match file.requires_python.as_deref() {
            Some(r) if !r.trim().is_empty() => Some(self.intern_requires_python(r)),
            _ => None,
        };
        self.files.push(Arc::new(DistFile {
            filename: file.filename.into(),
            urls,
            shared_len: shared_len as u32,
            url_rest: url_rest.into(),
            url_ends_with_name,
            sha256,
            requires_python,
            yanked,
            core_metadata,
            size: file.size,
            upload_time: uploaded,
            provenance: file.provenance.map(|p| p.into()),
        }));
        Ok(())
    }
}

/// The `files` array, read one entry at a time.
struct FilesSeed<'b, 'p>(&'b mut FilesBuilder<'p>);

impl<'de> de::DeserializeSeed<'de> for FilesSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for FilesSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a sequence")
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(file) = seq.next_element::<RawFile<'de>>()? {
            if self.0.error.is_some() {
                continue;
            }
            if let Err(e) = self.0.add(file) {
                self.0.error = Some(e);
            }
        }
        if self.0.error.is_none() {
            self.0.error = self.0.duplicate_name();
        }
        Ok(())
    }
}

/// The page object; only `name` is kept, `files` goes through [`FilesSeed`].
struct PageVisitor<'b, 'p>(&'b mut FilesBuilder<'p>);

impl<'de> Visitor<'de> for PageVisitor<'_, '_> {
    type Value = String;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("struct RawPage")
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
        let mut name: Option<String> = None;
        let mut files = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match &*key {
                "name" => {
                    if name.is_some() {
                        return Err(de::Error::duplicate_field("name"));
                    }
                    name = Some(map.next_value()?);
                }
                "files" => {
                    if files {
                        return Err(de::Error::duplicate_field("files"));
                    }
                    map.next_value_seed(FilesSeed(&mut *self.0))?;
                    files = true;
                }
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        let name = name.ok_or_else(|| de::Error::missing_field("name"))?;
        if !files {
            return Err(de::Error::missing_field("files"));
        }
        Ok(name)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<String, A::Error> {
        let name: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &"struct RawPage with 2 elements"))?;
        seq.next_element_seed(FilesSeed(&mut *self.0))?
            .ok_or_else(|| de::Error::invalid_length(1, &"struct RawPage with 2 elements"))?;
        Ok(name)
    }
}

/// Why a project page was refused: one line, for the error that names the page's URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PageError(String);

impl PageError {
    pub(crate) fn new(reason: String) -> Self {
        PageError(reason)
    }
}

/// A page the index served that cannot be read is the index's failure, not the input's.
impl bitpoll_error_class::Classify for PageError {
    fn class(&self) -> bitpoll_error_class::ErrorClass {
        bitpoll_error_class::ErrorClass::Unavailable
    }
}

/// Parses a JSON project page fetched from `page_url`; see [`PageParser`].
pub fn parse_project_page(
    body: &[u8],
    page_url: &Url,
    requested: &PackageName,
    exclude_newer: Option<&Timestamp>,
) -> Result<ProjectPage, PageError> {
    PageParser {
        page_url,
        project: requested,
        exclude_newer,
        filter: None,
    }
    .parse_slice(body)
}

/// Reads PEP 691 JSON project pages into [`ProjectPage`]s.
///
/// Relative file URLs are resolved against `page_url`; files uploaded after `exclude_newer`
/// are dropped, and so are the wheels `filter` rejects. Errors are reasons for a
/// `BadResponse`.
pub struct PageParser<'a> {
    pub page_url: &'a Url,
    /// The project asked for; a page naming another one is refused.
    pub project: &'a PackageName,
    pub exclude_newer: Option<&'a Timestamp>,
    pub filter: Option<&'a WheelFilter>,
}

impl PageParser<'_> {
    pub fn parse_slice(&self, body: &[u8]) -> Result<ProjectPage, PageError> {
        self.parse(serde_json::Deserializer::from_slice(body))
            .map_err(PageError)
    }

    /// Parses as the bytes are read, so that a page (one of Bitpoll's is 7 MB) is never held
    /// whole. Strings are copied rather than borrowed, which costs little next to that.
    pub fn parse_reader<R: std::io::Read>(&self, reader: R) -> Result<ProjectPage, PageError> {
        self.parse(serde_json::Deserializer::from_reader(reader))
            .map_err(PageError)
    }

    fn parse<'de, R: serde_json::de::Read<'de>>(
        &self,
        mut de: serde_json::Deserializer<R>,
    ) -> Result<ProjectPage, String> {
        let mut builder = FilesBuilder {
            page_url: self.page_url,
            project: self.project,
            exclude_newer: self.exclude_newer,
            filter: self.filter,
            dropped: Vec::new(),
            donors: FxHashMap::default(),
            urls: None,
            requires_python: Vec::new(),
            files: Vec::new(),
            error: None,
        };
        let raw_name = de::Deserializer::deserialize_struct(
            &mut de,
            "RawPage",
            &["name", "files"],
            PageVisitor(&mut builder),
        )
        .and_then(|name| de.end().map(|()| name))
        .map_err(|e| format!("invalid project JSON: {e}"))?;
        let name = PackageName::new(raw_name.clone())
            .map_err(|e| format!("invalid project name {raw_name:?}: {e}"))?;
        if &name != self.project {
            return Err(format!(
                "asked for project `{}`, the page is for `{name}`",
                self.project
            ));
        }
        if let Some(error) = builder.error {
            return Err(error);
        }
        let mut files = builder.files;
        files.shrink_to_fit();
        let mut dropped_wheel_versions = builder.dropped;
        dropped_wheel_versions.sort();
        dropped_wheel_versions.dedup();
        dropped_wheel_versions.shrink_to_fit();
        Ok(ProjectPage {
            name,
            files: PageFiles::parsed(files),
            dropped_wheel_versions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"{
      "meta": {"api-version": "1.1"},
      "name": "Demo_Pkg",
      "files": [
        {"filename": "demo_pkg-1.0-py3-none-any.whl", "url": "../../files/demo_pkg-1.0-py3-none-any.whl",
         "hashes": {"sha256": "AA00000000000000000000000000000000000000000000000000000000000000"},
         "requires-python": ">=3.8", "core-metadata": {"sha256": "bb00000000000000000000000000000000000000000000000000000000000000"},
         "size": 10, "upload-time": "2020-01-01T00:00:00.000000Z"},
        {"filename": "demo_pkg-1.1.tar.gz", "url": "http://127.0.0.1:9/x/demo_pkg-1.1.tar.gz",
         "hashes": {}, "yanked": "broken", "data-dist-info-metadata": true, "upload-time": "2024-05-01T10:00:00Z"},
        {"filename": "demo_pkg-0.9.tar.gz", "url": "demo_pkg-0.9.tar.gz", "hashes": {}, "yanked": true}
      ]
    }"#;

    fn name() -> PackageName {
        PackageName::new("demo-pkg".into()).unwrap()
    }

    #[test]
    fn parses_fields_and_resolves_urls() {
        let base = Url::parse("http://u:p@127.0.0.1:8/simple/demo-pkg/").unwrap();
        let page = parse_project_page(PAGE.as_bytes(), &base, &name(), None).unwrap();
        assert_eq!(page.files.len(), 3);
        let wheel = &page.files[0];
        assert_eq!(
            wheel.url().as_str(),
            "http://u:p@127.0.0.1:8/files/demo_pkg-1.0-py3-none-any.whl"
        );
        assert_eq!(
            wheel.sha256.map(|h| h.to_string()).as_deref(),
            Some("aa00000000000000000000000000000000000000000000000000000000000000")
        );
        assert_eq!(
            wheel.core_metadata.unwrap().unwrap().to_string()[..2],
            *"bb"
        );
        assert_eq!(wheel.requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(wheel.yanked, None);
        assert!(wheel.is_wheel());
        assert!(!format!("{wheel:?}").contains(":p@"));
        assert_eq!(
            wheel.metadata_url().as_str(),
            "http://u:p@127.0.0.1:8/files/demo_pkg-1.0-py3-none-any.whl.metadata"
        );
        let sdist = &page.files[1];
        assert_eq!(sdist.yanked.as_deref(), Some("broken"));
        assert_eq!(sdist.core_metadata, Some(None));
        assert_eq!(sdist.sha256, None);
        assert_eq!(page.files[2].yanked.as_deref(), Some(""));
        assert_eq!(
            page.files[2].url().as_str(),
            "http://u:p@127.0.0.1:8/simple/demo-pkg/demo_pkg-0.9.tar.gz"
        );
    }

    #[test]
    fn exclude_newer_drops_late_and_undated_files() {
        let base = Url::parse("http://127.0.0.1:8/simple/demo-pkg/").unwrap();
        let limit = Timestamp::parse("2021-01-01T00:00:00Z").unwrap();
        let page = parse_project_page(PAGE.as_bytes(), &base, &name(), Some(&limit)).unwrap();
        assert_eq!(page.files.len(), 1);
        assert_eq!(&*page.files[0].filename, "demo_pkg-1.0-py3-none-any.whl");
    }

    #[test]
    fn reading_from_a_stream_gives_the_same_page() {
        let base = Url::parse("http://u:p@127.0.0.1:8/simple/demo-pkg/").unwrap();
        let parser = PageParser {
            page_url: &base,
            project: &name(),
            exclude_newer: None,
            filter: None,
        };
        let from_slice = parser.parse_slice(PAGE.as_bytes()).unwrap();
        // One byte per read: no token may depend on arriving in one piece.
        struct Trickle<'a>(&'a [u8]);
        impl std::io::Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let Some((first, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                buf[0] = *first;
                self.0 = rest;
                Ok(1)
            }
        }
        let from_reader = parser.parse_reader(Trickle(PAGE.as_bytes())).unwrap();
        assert_eq!(from_slice, from_reader);
        let err = parser
            .parse_reader(Trickle(&PAGE.as_bytes()[..100]))
            .unwrap_err();
        assert!(err.to_string().contains("invalid project JSON"), "{err}");
    }

    fn file(filename: &str, core_metadata: bool) -> String {
        let core = if core_metadata {
            r#", "core-metadata": true"#
        } else {
            ""
        };
        format!(r#"{{"filename": "{filename}", "url": "{filename}", "hashes": {{}}{core}}}"#)
    }

    fn filtered(files: &[String]) -> Result<ProjectPage, PageError> {
        let base = Url::parse("http://127.0.0.1:8/simple/demo-pkg/").unwrap();
        // Drops Windows wheels, keeps the rest.
        let filter = WheelFilter::new("test", |_, filename| {
            if filename.starts_with("junk") {
                WheelVerdict::Unreadable
            } else if filename.contains("win") {
                WheelVerdict::Drop(filename.split('-').nth(1).unwrap().parse().unwrap())
            } else {
                WheelVerdict::Keep
            }
        });
        let page = format!(r#"{{"name": "demo-pkg", "files": [{}]}}"#, files.join(","));
        PageParser {
            page_url: &base,
            project: &name(),
            exclude_newer: None,
            filter: Some(&filter),
        }
        .parse_slice(page.as_bytes())
    }

    #[test]
    fn a_filter_drops_wheels_but_remembers_their_releases() {
        let page = filtered(&[
            file("demo_pkg-1.0-cp313-cp313-win_amd64.whl", true),
            file("demo_pkg-1.0-cp313-cp313-win32.whl", true),
            file("demo_pkg-1.0-py3-none-any.whl", false),
            file("demo_pkg-1.0.tar.gz", false),
            file("demo_pkg-2.0-cp313-cp313-win_amd64.whl", false),
            // Never fetched, so a repeated name among dropped wheels does no harm.
            file("demo_pkg-2.0-cp313-cp313-win_amd64.whl", false),
            file("demo_pkg-3.0-cp313-cp313-win32.whl", false),
            file("demo_pkg-3.0-cp313-cp313-win_amd64.whl", true),
            file("demo_pkg-3.0-cp312-cp312-win_amd64.whl", true),
            file("junk.whl", false),
        ])
        .unwrap();
        let names: Vec<&str> = page.files.iter().map(|f| &*f.filename).collect();
        // One dropped wheel per release stays to describe it: the first with a core-metadata
        // file, else the first at all (read by range requests), replaced as a describer when
        // one with a core-metadata file follows.
        assert_eq!(
            names,
            [
                "demo_pkg-1.0-cp313-cp313-win_amd64.whl",
                "demo_pkg-1.0-py3-none-any.whl",
                "demo_pkg-1.0.tar.gz",
                "demo_pkg-2.0-cp313-cp313-win_amd64.whl",
                "demo_pkg-3.0-cp313-cp313-win32.whl",
                "demo_pkg-3.0-cp313-cp313-win_amd64.whl",
            ]
        );
        let dropped: Vec<String> = page
            .dropped_wheel_versions
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(dropped, ["1.0", "2.0", "3.0"]);
    }

    #[test]
    fn kept_files_must_have_distinct_names() {
        let err = filtered(&[
            file("demo_pkg-1.0.tar.gz", false),
            file("demo_pkg-1.0-py3-none-any.whl", false),
            file("demo_pkg-1.0.tar.gz", false),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("two files are named"), "{err}");
    }

    #[test]
    fn unsafe_names_are_rejected() {
        let base = Url::parse("http://127.0.0.1:8/simple/demo-pkg/").unwrap();
        for bad in ["../evil.whl", "a/b.whl", "a\\b.whl"] {
            let page = format!(
                r#"{{"name": "demo-pkg", "files": [{{"filename": {bad:?}, "url": "x", "hashes": {{}}}}]}}"#
            );
            let err = parse_project_page(page.as_bytes(), &base, &name(), None).unwrap_err();
            assert!(err.to_string().contains("unsafe"), "{err}");
        }
    }

    #[test]
    fn content_types() {
        assert!(is_simple_json(
            "application/vnd.pypi.simple.v1+json; charset=utf-8"
        ));
        assert!(!is_simple_json("text/html"));
        assert!(!is_simple_json("application/vnd.pypi.simple.v1+html"));
    }
}
