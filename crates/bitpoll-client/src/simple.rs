//! The PEP 691 JSON project page.

use std::borrow::Cow;
use std::sync::Arc;

use pep508_rs::PackageName;
use rustc_hash::FxHashSet;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use url::Url;

use crate::index_url::redact_url;
use crate::time::Timestamp;

/// The media type of PEP 691 JSON pages, version 1.
pub const SIMPLE_JSON_V1: &str = "application/vnd.pypi.simple.v1+json";
/// PEP 691 also names this alias for "the newest JSON version".
const SIMPLE_JSON_LATEST: &str = "application/vnd.pypi.simple.latest+json";

/// One project's files as the index lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectPage {
    pub name: PackageName,
    pub files: Vec<Arc<DistFile>>,
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
struct PageUrls {
    /// What relative links resolve against; may carry the index credentials.
    base: Url,
    /// The first file's URL as written; the others usually share most of it.
    shared: Box<str>,
}

/// One downloadable file (wheel or sdist) of a project.
///
/// The URL may carry the index credentials, which downloads need; it must never be printed
/// as is. `Debug` redacts it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DistFile {
    pub filename: String,
    // Pages list tens of thousands of files, few of which are ever fetched, so the URL is
    // kept as the page wrote it, minus the part it shares with the page's first URL and the
    // file name it usually ends with, and resolved only when asked for.
    urls: Arc<PageUrls>,
    shared_len: u32,
    url_rest: Box<str>,
    url_ends_with_name: bool,
    pub sha256: Option<Sha256Digest>,
    /// Shared by the files of a page that declare the same one.
    pub requires_python: Option<Arc<str>>,
    /// `Some(reason)` when yanked (PEP 592); the reason may be empty.
    pub yanked: Option<String>,
    /// `Some(Some(sha256))` when a core-metadata file is offered with a hash,
    /// `Some(None)` when offered without one, `None` when not offered.
    pub core_metadata: Option<Option<Sha256Digest>>,
    pub size: Option<u64>,
}

impl DistFile {
    /// Whether the file is a wheel (as opposed to an sdist).
    pub fn is_wheel(&self) -> bool {
        let name = self.filename.as_bytes();
        name.len() >= 4 && name[name.len() - 4..].eq_ignore_ascii_case(b".whl")
    }

    fn raw_url(&self) -> String {
        let shared = &self.urls.shared[..self.shared_len as usize];
        let name = if self.url_ends_with_name {
            self.filename.as_str()
        } else {
            ""
        };
        [shared, &self.url_rest, name].concat()
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
            .finish()
    }
}

/// Whether a `Content-Type` header value names a PEP 691 JSON page.
pub(crate) fn is_simple_json(content_type: &str) -> bool {
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
    exclude_newer: Option<&'p Timestamp>,
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

    fn add(&mut self, file: RawFile<'_>) -> Result<(), String> {
        let filename = &*file.filename;
        if filename.is_empty()
            || filename.contains('/')
            || filename.contains('\\')
            || filename.contains("..")
        {
            return Err(format!("refusing unsafe file name {filename:?}"));
        }
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
        let yanked = match file.yanked {
            None | Some(BoolOrString::Bool(false)) => None,
            Some(BoolOrString::Bool(true)) => Some(String::new()),
            Some(BoolOrString::String(reason)) => Some(reason),
        };
        // PEP 714 renamed the key; prefer the new one, accept the old from older servers.
        let core_metadata = match file.core_metadata.or(file.dist_info_metadata) {
            None | Some(BoolOrHashes::Bool(false)) => None,
            Some(BoolOrHashes::Bool(true)) => Some(None),
            Some(BoolOrHashes::Hashes(hashes)) => {
                Some(hashes.sha256.as_deref().and_then(Sha256Digest::from_hex))
            }
        };
        if let Some(limit) = self.exclude_newer {
            let uploaded = file.upload_time.as_deref().and_then(Timestamp::parse);
            match uploaded {
                Some(t) if t <= *limit => {}
                _ => return Ok(()),
            }
        }
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
            filename: file.filename.into_owned(),
            urls,
            shared_len: shared_len as u32,
            url_rest: url_rest.into(),
            url_ends_with_name,
            sha256,
            requires_python,
            yanked,
            core_metadata,
            size: file.size,
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
        // Two entries with one name would let the index pick which bytes a hash check sees.
        let mut seen: FxHashSet<Cow<'de, str>> = FxHashSet::default();
        while let Some(file) = seq.next_element::<RawFile<'de>>()? {
            if self.0.error.is_some() {
                continue;
            }
            if !seen.insert(file.filename.clone()) {
                self.0.error = Some(format!("two files are named {:?}", file.filename));
                continue;
            }
            if let Err(e) = self.0.add(file) {
                self.0.error = Some(e);
            }
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

/// Parses a JSON project page fetched from `page_url`.
///
/// Relative file URLs are resolved against `page_url`; files uploaded after
/// `exclude_newer` are dropped. The error is a reason for a `BadResponse`.
pub fn parse_project_page(
    body: &[u8],
    page_url: &Url,
    requested: &PackageName,
    exclude_newer: Option<&Timestamp>,
) -> Result<ProjectPage, String> {
    let mut builder = FilesBuilder {
        page_url,
        exclude_newer,
        urls: None,
        requires_python: Vec::new(),
        files: Vec::new(),
        error: None,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
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
    if &name != requested {
        return Err(format!(
            "asked for project `{requested}`, the page is for `{name}`"
        ));
    }
    if let Some(error) = builder.error {
        return Err(error);
    }
    let mut files = builder.files;
    files.shrink_to_fit();
    Ok(ProjectPage { name, files })
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
        assert_eq!(page.files[0].filename, "demo_pkg-1.0-py3-none-any.whl");
    }

    #[test]
    fn unsafe_names_are_rejected() {
        let base = Url::parse("http://127.0.0.1:8/simple/demo-pkg/").unwrap();
        for bad in ["../evil.whl", "a/b.whl", "a\\b.whl"] {
            let page = format!(
                r#"{{"name": "demo-pkg", "files": [{{"filename": {bad:?}, "url": "x", "hashes": {{}}}}]}}"#
            );
            let err = parse_project_page(page.as_bytes(), &base, &name(), None).unwrap_err();
            assert!(err.contains("unsafe"), "{err}");
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
