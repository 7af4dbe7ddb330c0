//! A parsed page in a compact binary form, for the client's cache of parsed pages.
//!
//! Reading a page's JSON costs far more than fetching it from the disk cache: the pages of a
//! large resolution come to tens of megabytes, and most of what they list is dropped by the
//! wheel filter. What is left after parsing and filtering is a tenth of that, and decoding it
//! needs no JSON scanner, no URL check and no hex parsing. The form is private to this crate
//! and versioned by [`COMPACT_FORMAT`]; it carries no URL base (and so no credentials): the
//! base is given back when decoding.
//!
//! Even so, turning every file of every page into a [`DistFile`] was a quarter of an offline
//! run: a resolution reads a few releases of each project, and its pages list tens of
//! thousands of files (readthedocs' set: 32,000, 9,300 on the pages of `boto3` and
//! `botocore` alone). So a
//! decoded page keeps the bytes and checks every record once, without allocating; a file
//! becomes a [`DistFile`] the first time it is read, which can then no longer fail.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use pep440_rs::Version;
use pep508_rs::PackageName;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::page::{DistFile, PageError, PageFiles, PageUrls, ProjectPage, Sha256Digest};
use crate::time::Timestamp;

/// Changes whenever the encoding below, or what parsing keeps of a page, changes: a
/// cache keyed with it never hands an older form to newer code.
pub const COMPACT_FORMAT: &str = "compact-page-3";

/// What comes first; then `files` records, each a [`CompactFile`] on its own, so that one
/// can be read without the others.
#[derive(Serialize, Deserialize)]
struct CompactHead<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    /// The URL prefix the page's files share, as the page wrote it (see `PageUrls`).
    #[serde(borrow)]
    shared_url: Option<Cow<'a, str>>,
    /// Each distinct `requires-python` once; files refer to it by position.
    #[serde(borrow)]
    requires_python: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    dropped_wheel_versions: Vec<Cow<'a, str>>,
    files: u32,
}

#[derive(Serialize, Deserialize)]
struct CompactFile<'a> {
    /// First, so that a file's name is read without the rest of its record.
    #[serde(borrow)]
    filename: Cow<'a, str>,
    shared_len: u32,
    #[serde(borrow)]
    url_rest: Cow<'a, str>,
    url_ends_with_name: bool,
    #[serde(with = "serde_bytes")]
    sha256: Option<[u8; 32]>,
    requires_python: Option<u32>,
    #[serde(borrow)]
    yanked: Option<Cow<'a, str>>,
    /// Whether a core-metadata file is offered, and its hash when one is given.
    core_metadata: bool,
    #[serde(with = "serde_bytes")]
    core_metadata_sha256: Option<[u8; 32]>,
    size: Option<u64>,
    upload_time: Option<(i64, u32)>,
    #[serde(borrow)]
    provenance: Option<Cow<'a, str>>,
}

/// A page's files still in the compact form: the bytes, where each record starts and ends,
/// and each file once it has been read.
pub(crate) struct CompactFiles {
    bytes: Vec<u8>,
    /// Record `i` is `bytes[bounds[i]..bounds[i + 1]]`.
    bounds: Vec<u32>,
    urls: Option<Arc<PageUrls>>,
    requires_python: Vec<Arc<str>>,
    decoded: Box<[OnceLock<Arc<DistFile>>]>,
}

impl CompactFiles {
    pub(crate) fn len(&self) -> usize {
        self.decoded.len()
    }

    fn record(&self, i: usize) -> &[u8] {
        &self.bytes[self.bounds[i] as usize..self.bounds[i + 1] as usize]
    }

    pub(crate) fn filename(&self, i: usize) -> &str {
        postcard::take_from_bytes::<&str>(self.record(i))
            .expect("records are checked when the page is decoded")
            .0
    }

    pub(crate) fn get(&self, i: usize) -> &Arc<DistFile> {
        self.decoded[i].get_or_init(|| {
            let file: CompactFile<'_> = postcard::from_bytes(self.record(i))
                .expect("records are checked when the page is decoded");
            Arc::new(self.dist_file(file))
        })
    }

    /// Whether a record can become a file: what [`Self::dist_file`] relies on.
    fn check(&self, file: &CompactFile<'_>) -> Result<(), String> {
        let Some(urls) = &self.urls else {
            return Err("a file without URLs".into());
        };
        if file.shared_len as usize > urls.shared.len()
            || !urls.shared.is_char_boundary(file.shared_len as usize)
        {
            return Err(format!("{}: URL out of range", file.filename));
        }
        if file
            .requires_python
            .is_some_and(|at| at as usize >= self.requires_python.len())
        {
            return Err(format!("{}: requires-python out of range", file.filename));
        }
        if !file.core_metadata && file.core_metadata_sha256.is_some() {
            return Err(format!(
                "{}: a metadata hash without metadata",
                file.filename
            ));
        }
        Ok(())
    }

    /// A record that passed [`Self::check`] as a file.
    fn dist_file(&self, file: CompactFile<'_>) -> DistFile {
        DistFile {
            filename: file.filename.into(),
            urls: self
                .urls
                .clone()
                .expect("checked: a page with files has URLs"),
            shared_len: file.shared_len,
            url_rest: file.url_rest.into(),
            url_ends_with_name: file.url_ends_with_name,
            sha256: file.sha256.map(Sha256Digest),
            requires_python: file
                .requires_python
                .map(|at| self.requires_python[at as usize].clone()),
            yanked: file.yanked.map(Into::into),
            core_metadata: file
                .core_metadata
                .then_some(file.core_metadata_sha256.map(Sha256Digest)),
            size: file.size,
            upload_time: file
                .upload_time
                .map(|(secs, nanos)| Timestamp::from_parts(secs, nanos)),
            provenance: file.provenance.map(Into::into),
        }
    }
}

impl ProjectPage {
    /// The page in the compact form [`ProjectPage::decode_compact`] reads.
    pub fn encode_compact(&self) -> Vec<u8> {
        let mut requires_python: Vec<&Arc<str>> = Vec::new();
        let mut shared_url = None;
        let mut records = Vec::new();
        for file in self.files.iter() {
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
            let record = CompactFile {
                filename: Cow::Borrowed(&file.filename),
                shared_len: file.shared_len,
                url_rest: Cow::Borrowed(&file.url_rest),
                url_ends_with_name: file.url_ends_with_name,
                sha256: file.sha256.map(|d| d.0),
                requires_python,
                yanked: file.yanked.as_deref().map(Cow::Borrowed),
                core_metadata: file.core_metadata.is_some(),
                core_metadata_sha256: file.core_metadata.flatten().map(|d| d.0),
                size: file.size,
                upload_time: file.upload_time.map(|t| t.parts()),
                provenance: file.provenance.as_deref().map(Cow::Borrowed),
            };
            records = postcard::to_extend(&record, records).expect("a file always encodes");
        }
        let head = CompactHead {
            name: Cow::Borrowed(self.name.as_ref()),
            shared_url,
            requires_python: requires_python
                .into_iter()
                .map(|r| Cow::Borrowed(&**r))
                .collect(),
            dropped_wheel_versions: self
                .dropped_wheel_versions
                .iter()
                .map(|v| Cow::Owned(v.to_string()))
                .collect(),
            files: self.files.len() as u32,
        };
        let mut bytes = postcard::to_stdvec(&head).expect("a page always encodes");
        bytes.extend_from_slice(&records);
        bytes
    }

    /// Reads what [`ProjectPage::encode_compact`] wrote for a page fetched from `page_url`,
    /// which relative file URLs resolve against as they did when the page was parsed. Every
    /// record is checked here; the files themselves are built as they are read.
    pub fn decode_compact(bytes: Vec<u8>, page_url: &Url) -> Result<ProjectPage, PageError> {
        let bad = |what: String| PageError::new(format!("unreadable parsed page: {what}"));
        if bytes.len() > u32::MAX as usize {
            return Err(bad("too large".into()));
        }
        let (head, mut rest) =
            postcard::take_from_bytes::<CompactHead<'_>>(&bytes).map_err(|e| bad(e.to_string()))?;
        let name = PackageName::new(head.name.into_owned()).map_err(|e| bad(e.to_string()))?;
        let dropped_wheel_versions = head
            .dropped_wheel_versions
            .iter()
            .map(|v| v.parse::<Version>().map_err(|e| bad(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let count = head.files;
        // Each record takes at least a byte: a count beyond that is damage, not a reason to
        // allocate.
        if count as usize > rest.len() {
            return Err(bad("more files than bytes".into()));
        }
        let mut files = CompactFiles {
            bytes: Vec::new(),
            bounds: Vec::with_capacity(count as usize + 1),
            urls: head.shared_url.map(|shared| {
                Arc::new(PageUrls {
                    base: page_url.clone(),
                    shared: shared.into(),
                })
            }),
            requires_python: head
                .requires_python
                .iter()
                .map(|r| Arc::from(&**r))
                .collect(),
            decoded: Box::default(),
        };
        files.bounds.push((bytes.len() - rest.len()) as u32);
        for _ in 0..count {
            let (file, next) = postcard::take_from_bytes::<CompactFile<'_>>(rest)
                .map_err(|e| bad(e.to_string()))?;
            files.check(&file).map_err(bad)?;
            rest = next;
            files.bounds.push((bytes.len() - rest.len()) as u32);
        }
        if !rest.is_empty() {
            return Err(bad("bytes after the last file".into()));
        }
        files.decoded = (0..count).map(|_| OnceLock::new()).collect();
        files.bytes = bytes;
        Ok(ProjectPage {
            name,
            files: PageFiles::compact(files),
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
        let decoded = ProjectPage::decode_compact(bytes, &base).unwrap();
        assert_eq!(decoded, parsed);
        let urls: Vec<String> = decoded.files.iter().map(|f| f.url().to_string()).collect();
        let expected: Vec<String> = parsed.files.iter().map(|f| f.url().to_string()).collect();
        assert_eq!(urls, expected);
        assert_eq!(
            decoded.files[0].provenance_url().unwrap().as_str(),
            "http://user:secret@127.0.0.1:8/prov/demo_pkg-1.0"
        );
        assert_eq!(decoded.files[0].upload_time, parsed.files[0].upload_time);
        // Names are read without building the files, and agree with the built ones.
        let names: Vec<&str> = (0..decoded.files.len())
            .map(|i| decoded.files.filename(i))
            .collect();
        let expected: Vec<&str> = parsed.files.iter().map(|f| &*f.filename).collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn relative_urls_resolve_against_the_base_given_back() {
        let parsed = parse(&Url::parse("http://127.0.0.1:8/simple/demo-pkg/").unwrap());
        let other = Url::parse("http://127.0.0.1:9/mirror/simple/demo-pkg/").unwrap();
        let decoded = ProjectPage::decode_compact(parsed.encode_compact(), &other).unwrap();
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
            assert!(ProjectPage::decode_compact(bytes[..cut].to_vec(), &base).is_err());
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0xff;
            // Either refused or some page whose files can all be read: never a panic, now
            // or when a file is built later.
            if let Ok(page) = ProjectPage::decode_compact(flipped, &base) {
                for (i, file) in page.files.iter().enumerate() {
                    assert_eq!(page.files.filename(i), &*file.filename);
                    let _ = (file.url(), file.provenance_url());
                }
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(ProjectPage::decode_compact(longer, &base).is_err());
    }
}
