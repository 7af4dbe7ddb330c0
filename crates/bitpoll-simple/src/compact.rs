//! A parsed page in a compact binary form, for the client's cache of parsed pages.
//!
//! Reading a page's JSON costs far more than fetching it from the disk cache: the pages of a
//! large resolution come to tens of megabytes, and most of what they list is dropped by the
//! wheel filter. What is left after parsing and filtering is a tenth of that, and decoding it
//! needs no JSON scanner, no URL check and no hex parsing. The form is private to this crate
//! and versioned by [`COMPACT_FORMAT`]; it carries no URL base (and so no credentials): the
//! base is given back when decoding.

use std::borrow::Cow;
use std::sync::Arc;

use pep440_rs::Version;
use pep508_rs::PackageName;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::page::{DistFile, PageError, PageUrls, ProjectPage, Sha256Digest};
use crate::time::Timestamp;

/// Changes whenever the encoding below, or what parsing keeps of a page, changes: a
/// cache keyed with it never hands an older form to newer code.
pub const COMPACT_FORMAT: &str = "compact-page-1";

#[derive(Serialize, Deserialize)]
struct CompactPage<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    /// The URL prefix the page's files share, as the page wrote it (see `PageUrls`).
    #[serde(borrow)]
    shared_url: Option<Cow<'a, str>>,
    /// Each distinct `requires-python` once; files refer to it by position.
    #[serde(borrow)]
    requires_python: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    files: Vec<CompactFile<'a>>,
    #[serde(borrow)]
    dropped_wheel_versions: Vec<Cow<'a, str>>,
}

#[derive(Serialize, Deserialize)]
struct CompactFile<'a> {
    #[serde(borrow)]
    filename: Cow<'a, str>,
    shared_len: u32,
    #[serde(borrow)]
    url_rest: Cow<'a, str>,
    url_ends_with_name: bool,
    sha256: Option<[u8; 32]>,
    requires_python: Option<u32>,
    #[serde(borrow)]
    yanked: Option<Cow<'a, str>>,
    core_metadata: Option<Option<[u8; 32]>>,
    size: Option<u64>,
    upload_time: Option<(i64, u32)>,
    #[serde(borrow)]
    provenance: Option<Cow<'a, str>>,
}

impl ProjectPage {
    /// The page in the compact form [`ProjectPage::decode_compact`] reads.
    pub fn encode_compact(&self) -> Vec<u8> {
        let mut requires_python: Vec<&Arc<str>> = Vec::new();
        let mut files = Vec::with_capacity(self.files.len());
        let mut shared_url = None;
        for file in &self.files {
            shared_url.get_or_insert_with(|| Cow::Borrowed(&*file.urls.shared));
            let requires_python = file.requires_python.as_ref().map(|r| {
                let at = match requires_python.iter().position(|known| ***known == **r) {
                    Some(at) => at,
                    None => {
                        requires_python.push(r);
                        requires_python.len() - 1
                    }
                };
                at as u32
            });
            files.push(CompactFile {
                filename: Cow::Borrowed(&file.filename),
                shared_len: file.shared_len,
                url_rest: Cow::Borrowed(&file.url_rest),
                url_ends_with_name: file.url_ends_with_name,
                sha256: file.sha256.map(|d| d.0),
                requires_python,
                yanked: file.yanked.as_deref().map(Cow::Borrowed),
                core_metadata: file.core_metadata.map(|m| m.map(|d| d.0)),
                size: file.size,
                upload_time: file.upload_time.map(|t| t.parts()),
                provenance: file.provenance.as_deref().map(Cow::Borrowed),
            });
        }
        let page = CompactPage {
            name: Cow::Borrowed(self.name.as_ref()),
            shared_url,
            requires_python: requires_python
                .into_iter()
                .map(|r| Cow::Borrowed(&**r))
                .collect(),
            files,
            dropped_wheel_versions: self
                .dropped_wheel_versions
                .iter()
                .map(|v| Cow::Owned(v.to_string()))
                .collect(),
        };
        postcard::to_stdvec(&page).expect("a page always encodes")
    }

    /// Reads what [`ProjectPage::encode_compact`] wrote for a page fetched from `page_url`,
    /// which relative file URLs resolve against as they did when the page was parsed.
    pub fn decode_compact(bytes: &[u8], page_url: &Url) -> Result<ProjectPage, PageError> {
        let bad = |what: String| PageError::new(format!("unreadable parsed page: {what}"));
        let page: CompactPage<'_> = postcard::from_bytes(bytes).map_err(|e| bad(e.to_string()))?;
        let name = PackageName::new(page.name.into_owned()).map_err(|e| bad(e.to_string()))?;
        let urls = page.shared_url.map(|shared| {
            Arc::new(PageUrls {
                base: page_url.clone(),
                shared: shared.into(),
            })
        });
        let requires_python: Vec<Arc<str>> = page
            .requires_python
            .iter()
            .map(|r| Arc::from(&**r))
            .collect();
        let mut files = Vec::with_capacity(page.files.len());
        for file in page.files {
            let urls = urls
                .clone()
                .ok_or_else(|| bad("a file without URLs".into()))?;
            if file.shared_len as usize > urls.shared.len()
                || !urls.shared.is_char_boundary(file.shared_len as usize)
            {
                return Err(bad(format!("{}: URL out of range", file.filename)));
            }
            let requires_python = match file.requires_python {
                None => None,
                Some(at) => Some(
                    requires_python
                        .get(at as usize)
                        .ok_or_else(|| {
                            bad(format!("{}: requires-python out of range", file.filename))
                        })?
                        .clone(),
                ),
            };
            files.push(Arc::new(DistFile {
                filename: file.filename.into(),
                urls,
                shared_len: file.shared_len,
                url_rest: file.url_rest.into(),
                url_ends_with_name: file.url_ends_with_name,
                sha256: file.sha256.map(Sha256Digest),
                requires_python,
                yanked: file.yanked.map(Into::into),
                core_metadata: file.core_metadata.map(|m| m.map(Sha256Digest)),
                size: file.size,
                upload_time: file
                    .upload_time
                    .map(|(secs, nanos)| Timestamp::from_parts(secs, nanos)),
                provenance: file.provenance.map(Into::into),
            }));
        }
        let dropped_wheel_versions = page
            .dropped_wheel_versions
            .iter()
            .map(|v| v.parse::<Version>().map_err(|e| bad(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProjectPage {
            name,
            files,
            dropped_wheel_versions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::{PageParser, WheelFilter, WheelVerdict};

    const PAGE: &str = r#"{
      "name": "demo-pkg",
      "files": [
        {"filename": "demo_pkg-1.0-py3-none-any.whl", "url": "../../files/demo_pkg-1.0-py3-none-any.whl",
         "hashes": {"sha256": "aa00000000000000000000000000000000000000000000000000000000000000"},
         "requires-python": ">=3.8", "core-metadata": {"sha256": "bb00000000000000000000000000000000000000000000000000000000000000"},
         "size": 10, "upload-time": "2020-01-01T00:00:00.250000Z", "provenance": "../../prov/demo_pkg-1.0"},
        {"filename": "demo_pkg-1.0-cp27-cp27m-win32.whl", "url": "../../files/demo_pkg-1.0-cp27-cp27m-win32.whl"},
        {"filename": "demo_pkg-0.5-cp27-cp27m-win32.whl", "url": "../../files/demo_pkg-0.5-cp27-cp27m-win32.whl", "yanked": true},
        {"filename": "demo_pkg-1.1.tar.gz", "url": "http://127.0.0.1:9/x/demo_pkg-1.1.tar.gz?x=1",
         "hashes": {}, "yanked": "broken", "data-dist-info-metadata": true, "requires-python": ">=3.8"},
        {"filename": "demo_pkg-0.9.tar.gz", "url": "demo_pkg-0.9.tar.gz", "requires-python": ">=3.6", "yanked": true}
      ]
    }"#;

    fn parse(base: &Url) -> ProjectPage {
        let filter = WheelFilter::new("test", |_, name: &str| {
            if name.contains("win32") {
                WheelVerdict::Drop(name.split('-').nth(1).unwrap().parse().unwrap())
            } else {
                WheelVerdict::Keep
            }
        });
        PageParser {
            page_url: base,
            project: &PackageName::new("demo-pkg".into()).unwrap(),
            exclude_newer: None,
            filter: Some(&filter),
        }
        .parse_slice(PAGE.as_bytes())
        .unwrap()
    }

    #[test]
    fn a_decoded_page_is_the_parsed_page() {
        let base = Url::parse("http://user:secret@127.0.0.1:8/simple/demo-pkg/").unwrap();
        let parsed = parse(&base);
        assert_eq!(parsed.dropped_wheel_versions.len(), 2);
        let bytes = parsed.encode_compact();
        // The base, and with it the credentials, is not part of the stored form.
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("secret") && !text.contains("simple/demo-pkg"));
        let decoded = ProjectPage::decode_compact(&bytes, &base).unwrap();
        assert_eq!(decoded, parsed);
        let urls: Vec<String> = decoded.files.iter().map(|f| f.url().to_string()).collect();
        let expected: Vec<String> = parsed.files.iter().map(|f| f.url().to_string()).collect();
        assert_eq!(urls, expected);
        assert_eq!(
            decoded.files[0].provenance_url().unwrap().as_str(),
            "http://user:secret@127.0.0.1:8/prov/demo_pkg-1.0"
        );
        assert_eq!(decoded.files[0].upload_time, parsed.files[0].upload_time);
    }

    #[test]
    fn relative_urls_resolve_against_the_base_given_back() {
        let parsed = parse(&Url::parse("http://127.0.0.1:8/simple/demo-pkg/").unwrap());
        let other = Url::parse("http://127.0.0.1:9/mirror/simple/demo-pkg/").unwrap();
        let decoded = ProjectPage::decode_compact(&parsed.encode_compact(), &other).unwrap();
        assert_eq!(
            decoded.files[0].url().as_str(),
            "http://127.0.0.1:9/mirror/files/demo_pkg-1.0-py3-none-any.whl"
        );
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        let base = Url::parse("http://127.0.0.1:8/simple/demo-pkg/").unwrap();
        let bytes = parse(&base).encode_compact();
        for cut in 0..bytes.len() {
            assert!(ProjectPage::decode_compact(&bytes[..cut], &base).is_err());
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0xff;
            // Either refused or some page: never a panic.
            let _ = ProjectPage::decode_compact(&flipped, &base);
        }
    }
}
