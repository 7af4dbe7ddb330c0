//! The PEP 691 JSON project page.

use std::sync::Arc;

use pep508_rs::PackageName;
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

/// One downloadable file (wheel or sdist) of a project.
///
/// `url` may carry the index credentials, which downloads need; it must never be printed
/// as is. `Debug` redacts it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DistFile {
    pub filename: String,
    pub url: Url,
    /// Lower-case hex.
    pub sha256: Option<String>,
    pub requires_python: Option<String>,
    /// `Some(reason)` when yanked (PEP 592); the reason may be empty.
    pub yanked: Option<String>,
    /// `Some(Some(sha256))` when a core-metadata file is offered with a hash,
    /// `Some(None)` when offered without one, `None` when not offered.
    pub core_metadata: Option<Option<String>>,
    pub size: Option<u64>,
    /// ISO 8601, as the index wrote it.
    pub upload_time: Option<String>,
}

impl DistFile {
    /// Whether the file is a wheel (as opposed to an sdist).
    pub fn is_wheel(&self) -> bool {
        let name = self.filename.as_bytes();
        name.len() >= 4 && name[name.len() - 4..].eq_ignore_ascii_case(b".whl")
    }

    /// The URL with credentials replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// The PEP 658 location of the file's core metadata: the file URL plus `.metadata`.
    pub fn metadata_url(&self) -> Url {
        let mut url = self.url.clone();
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
            .finish()
    }
}

/// Whether a `Content-Type` header value names a PEP 691 JSON page.
pub(crate) fn is_simple_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case(SIMPLE_JSON_V1) || essence.eq_ignore_ascii_case(SIMPLE_JSON_LATEST)
}

#[derive(Deserialize)]
struct RawPage {
    name: String,
    files: Vec<RawFile>,
}

#[derive(Deserialize)]
struct RawFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: Hashes,
    #[serde(rename = "requires-python", default)]
    requires_python: Option<String>,
    #[serde(default)]
    yanked: Option<BoolOrString>,
    #[serde(rename = "core-metadata", default)]
    core_metadata: Option<BoolOrHashes>,
    #[serde(rename = "data-dist-info-metadata", default)]
    dist_info_metadata: Option<BoolOrHashes>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(rename = "upload-time", default)]
    upload_time: Option<String>,
}

/// Only the hash we check; other algorithms are skipped without allocating a map per file.
#[derive(Deserialize, Default)]
struct Hashes {
    #[serde(default)]
    sha256: Option<String>,
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

enum BoolOrHashes {
    Bool(bool),
    Hashes(Hashes),
}

impl<'de> Deserialize<'de> for BoolOrHashes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BoolOrHashes;
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
        d.deserialize_any(V)
    }
}

fn valid_sha256(value: &str) -> Option<String> {
    let lower = value.trim().to_ascii_lowercase();
    (lower.len() == 64 && lower.bytes().all(|b| b.is_ascii_hexdigit())).then_some(lower)
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
    let raw: RawPage =
        serde_json::from_slice(body).map_err(|e| format!("invalid project JSON: {e}"))?;
    let name = PackageName::new(raw.name.clone())
        .map_err(|e| format!("invalid project name {:?}: {e}", raw.name))?;
    if &name != requested {
        return Err(format!(
            "asked for project `{requested}`, the page is for `{name}`"
        ));
    }
    let mut files = Vec::with_capacity(raw.files.len());
    let mut seen = std::collections::HashSet::new();
    for file in raw.files {
        // Two entries with one name would let the index pick which bytes a hash check sees.
        if !seen.insert(file.filename.clone()) {
            return Err(format!("two files are named {:?}", file.filename));
        }
        if file.filename.is_empty()
            || file.filename.contains('/')
            || file.filename.contains('\\')
            || file.filename.contains("..")
        {
            return Err(format!("refusing unsafe file name {:?}", file.filename));
        }
        let url = page_url
            .join(&file.url)
            .map_err(|e| format!("invalid URL for {}: {e}", file.filename))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!(
                "{} has a non-HTTP URL {}",
                file.filename,
                redact_url(&url)
            ));
        }
        let sha256 = match &file.hashes.sha256 {
            Some(h) => Some(
                valid_sha256(h)
                    .ok_or_else(|| format!("{} has an invalid sha256 {h:?}", file.filename))?,
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
                Some(hashes.sha256.as_deref().and_then(valid_sha256))
            }
        };
        if let Some(limit) = exclude_newer {
            let uploaded = file.upload_time.as_deref().and_then(Timestamp::parse);
            match uploaded {
                Some(t) if t <= *limit => {}
                _ => continue,
            }
        }
        files.push(Arc::new(DistFile {
            filename: file.filename,
            url,
            sha256,
            requires_python: file.requires_python.filter(|r| !r.trim().is_empty()),
            yanked,
            core_metadata,
            size: file.size,
            upload_time: file.upload_time,
        }));
    }
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
            wheel.url.as_str(),
            "http://u:p@127.0.0.1:8/files/demo_pkg-1.0-py3-none-any.whl"
        );
        assert_eq!(
            wheel.sha256.as_deref(),
            Some("aa00000000000000000000000000000000000000000000000000000000000000")
        );
        assert_eq!(
            wheel.core_metadata.as_ref().unwrap().as_deref().unwrap()[..2],
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
            page.files[2].url.as_str(),
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
