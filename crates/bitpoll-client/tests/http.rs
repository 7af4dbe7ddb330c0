//! The client against a real HTTP server on 127.0.0.1 serving a fixture index.

use std::collections::HashMap;
use std::io::{Cursor, Write};
use std::net::{TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bitpoll_client::{ClientError, ClientOptions, IndexClient, IndexUrl};
use bitpoll_metadata::MetadataSource;
use pep508_rs::PackageName;
use sha2::{Digest, Sha256};

/// A request as these tests read it: the path and lower-case header names.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    headers: HashMap<String, String>,
}

impl From<&bitpoll_test_server::Request> for Request {
    fn from(r: &bitpoll_test_server::Request) -> Self {
        Request {
            path: r.path.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
        }
    }
}

/// An answer, sent exactly as built (the shared server adds nothing to a handler's answer).
struct Response(bitpoll_test_server::Response);

impl Response {
    fn ok(content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response(bitpoll_test_server::Response::new(200, content_type, body))
    }
    fn status(status: u16) -> Response {
        Response(bitpoll_test_server::Response::new(status, "", Vec::new()))
    }
    fn header(self, name: &str, value: &str) -> Response {
        Response(self.0.with_header(name, value))
    }
}

/// The shared loopback server, answering every request with `handler`.
struct Server {
    inner: bitpoll_test_server::IndexServer,
    port: u16,
}

impl Server {
    fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Server {
        let inner =
            bitpoll_test_server::IndexServer::start_with(move |r| Some(handler(&r.into()).0));
        let port = inner
            .base_url()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the server's port");
        Server { inner, port }
    }

    fn index(&self) -> IndexUrl {
        IndexUrl::parse(&format!("http://127.0.0.1:{}/simple", self.port)).unwrap()
    }

    fn requests(&self) -> Vec<Request> {
        self.inner.requests().iter().map(Request::from).collect()
    }

    fn count(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r.path == path).count()
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

const JSON: &str = "application/vnd.pypi.simple.v1+json";

const METADATA: &[u8] = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Dist: attrs>=21\nRequires-Dist: idna; extra == \"net\"\nProvides-Extra: net\n";

fn wheel_bytes(metadata: &[u8]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    writer.start_file("demo/__init__.py", options).unwrap();
    writer
        .start_file("demo-1.0.dist-info/METADATA", options)
        .unwrap();
    writer.write_all(metadata).unwrap();
    writer.finish().unwrap().into_inner()
}

fn sdist_bytes(pkg_info: &[u8]) -> Vec<u8> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(encoder);
    let mut header = tar::Header::new_gnu();
    header.set_size(pkg_info.len() as u64);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, "demo-1.1/PKG-INFO", pkg_info)
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// The fixture index: project `demo` with a wheel that has a metadata file, a wheel that
/// has none, a static sdist and a dynamic sdist. URLs on the page are relative.
struct Fixture {
    wheel: Vec<u8>,
    plain_wheel: Vec<u8>,
    sdist: Vec<u8>,
    dynamic_sdist: Vec<u8>,
    metadata_hash: String,
    page_etag: String,
    cache_control: String,
    /// Answer `Range` requests with 206 (otherwise they get the whole file).
    ranges: bool,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            wheel: wheel_bytes(METADATA),
            plain_wheel: wheel_bytes(
                b"Metadata-Version: 2.1\nName: demo\nVersion: 0.9\nRequires-Dist: six\n",
            ),
            sdist: sdist_bytes(
                b"Metadata-Version: 2.2\nName: demo\nVersion: 1.1\nRequires-Dist: packaging\n",
            ),
            dynamic_sdist: sdist_bytes(
                b"Metadata-Version: 2.2\nName: demo\nVersion: 1.1\nDynamic: Requires-Dist\n",
            ),
            metadata_hash: sha256(METADATA),
            page_etag: "\"page-v1\"".into(),
            cache_control: "max-age=0".into(),
            ranges: false,
        }
    }

    fn page(&self) -> String {
        serde_json::json!({
            "meta": {"api-version": "1.1"},
            "name": "demo",
            "files": [
                {"filename": "demo-1.0-py3-none-any.whl", "url": "../../files/demo-1.0-py3-none-any.whl",
                 "hashes": {"sha256": sha256(&self.wheel)}, "requires-python": ">=3.8",
                 "core-metadata": {"sha256": self.metadata_hash}, "size": self.wheel.len(),
                 "upload-time": "2023-01-01T00:00:00Z"},
                {"filename": "demo-0.9-py3-none-any.whl", "url": "../../files/demo-0.9-py3-none-any.whl",
                 "hashes": {"sha256": sha256(&self.plain_wheel)}, "yanked": "bad build"},
                {"filename": "demo-1.1.tar.gz", "url": "../../files/demo-1.1.tar.gz",
                 "hashes": {"sha256": sha256(&self.sdist)}},
                {"filename": "demo-1.2.tar.gz", "url": "../../files/demo-1.2.tar.gz",
                 "hashes": {"sha256": sha256(&self.dynamic_sdist)}}
            ]
        })
        .to_string()
    }

    fn serve(self) -> Server {
        let fixture = Arc::new(self);
        Server::start(move |req| fixture.respond(req))
    }

    fn file(&self, req: &Request, bytes: &[u8]) -> Response {
        let range = req
            .headers
            .get("range")
            .and_then(|r| r.strip_prefix("bytes="));
        let (Some(range), true) = (range, self.ranges) else {
            return Response::ok("application/octet-stream", bytes);
        };
        let total = bytes.len();
        let (start, end) = match range.split_once('-').unwrap() {
            ("", suffix) => (total.saturating_sub(suffix.parse().unwrap()), total - 1),
            (a, b) => (
                a.parse().unwrap(),
                b.parse::<usize>().unwrap().min(total - 1),
            ),
        };
        Response(
            bitpoll_test_server::Response::new(206, "", bytes[start..=end].to_vec())
                .with_header("Content-Range", &format!("bytes {start}-{end}/{total}")),
        )
    }

    fn respond(&self, req: &Request) -> Response {
        match req.path.as_str() {
            "/simple/demo/" => {
                if req.headers.get("if-none-match") == Some(&self.page_etag) {
                    return Response::status(304)
                        .header("ETag", &self.page_etag)
                        .header("Cache-Control", &self.cache_control);
                }
                Response::ok(JSON, self.page())
                    .header("ETag", &self.page_etag)
                    .header("Cache-Control", &self.cache_control)
            }
            "/simple/html/" => Response::ok("text/html", "<html><body></body></html>"),
            "/files/demo-1.0-py3-none-any.whl.metadata" => {
                Response::ok("application/octet-stream", METADATA)
            }
            "/files/demo-1.0-py3-none-any.whl" => self.file(req, &self.wheel),
            "/files/demo-0.9-py3-none-any.whl" => self.file(req, &self.plain_wheel),
            "/files/demo-1.1.tar.gz" => self.file(req, &self.sdist),
            "/files/demo-1.2.tar.gz" => self.file(req, &self.dynamic_sdist),
            _ => Response::status(404),
        }
    }
}

fn options(index: IndexUrl, cache: &std::path::Path) -> ClientOptions {
    let mut options = ClientOptions::new(index, cache.to_path_buf());
    options.timeout = Duration::from_secs(10);
    options
}

/// A client for `index` that only reads `cache`.
fn offline_client(index: IndexUrl, cache: &std::path::Path) -> IndexClient {
    let mut opts = options(index, cache);
    opts.offline = true;
    IndexClient::new(opts).unwrap()
}

fn name(n: &str) -> PackageName {
    PackageName::new(n.to_string()).unwrap()
}

#[test]
fn project_page_and_core_metadata() {
    let server = Fixture::new().serve();
    let cache = tempfile::tempdir().unwrap();
    let client = IndexClient::new(options(server.index(), cache.path())).unwrap();

    let page = client.project(&name("Demo")).unwrap();
    assert_eq!(page.name.as_ref(), "demo");
    assert_eq!(page.files.len(), 4);
    let wheel = &page.files[0];
    assert_eq!(
        wheel.url().as_str(),
        format!(
            "http://127.0.0.1:{}/files/demo-1.0-py3-none-any.whl",
            server.port
        )
    );
    assert_eq!(wheel.requires_python.as_deref(), Some(">=3.8"));
    assert_eq!(page.files[1].yanked.as_deref(), Some("bad build"));
    let page_request = &server.requests()[0];
    assert_eq!(page_request.path, "/simple/demo/");
    assert!(page_request.headers["accept"].contains(JSON));

    let meta = client.core_metadata(wheel).unwrap();
    assert_eq!(meta.source, MetadataSource::CoreMetadata);
    assert_eq!(meta.version.to_string(), "1.0");
    assert_eq!(meta.requires_dist.len(), 2);
    assert_eq!(server.count("/files/demo-1.0-py3-none-any.whl.metadata"), 1);
    assert_eq!(
        server.count("/files/demo-1.0-py3-none-any.whl"),
        0,
        "no wheel download needed"
    );

    // Memoised: asking again sends nothing.
    let before = server.requests().len();
    client.project(&name("demo")).unwrap();
    client.core_metadata(wheel).unwrap();
    assert_eq!(server.requests().len(), before);
}

/// An index reached by a host name, not an address: the client's own lookup (see `dns.rs`)
/// finds it, and the page and a file's metadata come from it as they do by address.
#[test]
fn an_index_named_by_host_name_is_reached() {
    if ("localhost", 0).to_socket_addrs().map_or(true, |mut a| {
        !a.any(|a| a.ip().is_loopback() && a.is_ipv4())
    }) {
        bitpoll_test_skip::skip("`localhost` does not name 127.0.0.1 on this machine");
        return;
    }
    let server = Fixture::new().serve();
    let cache = tempfile::tempdir().unwrap();
    let index = IndexUrl::parse(&format!("http://localhost:{}/simple", server.port)).unwrap();
    let client = IndexClient::new(options(index, cache.path())).unwrap();

    let page = client.project(&name("demo")).unwrap();
    assert_eq!(page.files.len(), 4);
    let meta = client.core_metadata(&page.files[0]).unwrap();
    assert_eq!(meta.version.to_string(), "1.0");
    assert_eq!(server.count("/simple/demo/"), 1);
}

#[test]
fn metadata_fallbacks_wheel_and_sdist() {
    let server = Fixture::new().serve();
    let cache = tempfile::tempdir().unwrap();
    let client = IndexClient::new(options(server.index(), cache.path())).unwrap();
    let page = client.project(&name("demo")).unwrap();

    let from_wheel = client.core_metadata(&page.files[1]).unwrap();
    assert_eq!(from_wheel.source, MetadataSource::Wheel);
    assert_eq!(from_wheel.requires_dist[0].name.as_ref(), "six");

    let from_sdist = client.core_metadata(&page.files[2]).unwrap();
    assert_eq!(from_sdist.source, MetadataSource::SdistPkgInfo);
    assert_eq!(from_sdist.requires_dist[0].name.as_ref(), "packaging");
    let info = client.sdist_info(&page.files[2]).unwrap();
    assert_eq!(info.build_requires, vec!["setuptools>=40.8.0".to_string()]);
    assert_eq!(
        server.count("/files/demo-1.1.tar.gz"),
        1,
        "sdist downloaded once"
    );

    let err = client.core_metadata(&page.files[3]).unwrap_err();
    assert!(matches!(err, ClientError::NoStaticMetadata { .. }), "{err}");

    let bytes = client.download(&page.files[0]).unwrap();
    assert_eq!(sha256(&bytes), page.files[0].sha256.unwrap().to_string());
    // Written where a build wants it, from the download or from the cache alike.
    let dest = tempfile::tempdir().unwrap();
    let sdist_copy = dest.path().join("demo-1.1.tar.gz");
    client.download_to(&page.files[2], &sdist_copy).unwrap();
    let sdist_bytes = std::fs::read(&sdist_copy).unwrap();
    assert_eq!(
        sha256(&sdist_bytes),
        page.files[2].sha256.unwrap().to_string()
    );
    drop(client);

    // Without the summary of its members, the sdist is read again from the cached file.
    std::fs::remove_dir_all(cache.path().join("sdist-members-v2")).unwrap();
    let offline = offline_client(server.index(), cache.path());
    let info = offline.sdist_info(&page.files[2]).unwrap();
    assert_eq!(info.build_requires, vec!["setuptools>=40.8.0".to_string()]);
    let wheel_copy = dest.path().join("demo-1.0-py3-none-any.whl");
    offline.download_to(&page.files[0], &wheel_copy).unwrap();
    assert_eq!(std::fs::read(&wheel_copy).unwrap(), bytes.to_vec());
    assert_eq!(offline.stats().requests, 0);

    // A wheel an earlier run kept whole gives its metadata, which is then kept apart: later
    // runs need neither the wheel nor the network.
    let six = |client: &IndexClient| {
        let meta = client.core_metadata(&page.files[1]).unwrap();
        meta.requires_dist[0].name.to_string()
    };
    assert_eq!(six(&offline), "six");
    std::fs::remove_dir_all(cache.path().join("artifacts-v1")).unwrap();
    assert_eq!(six(&offline_client(server.index(), cache.path())), "six");
}

#[test]
fn wheel_metadata_through_range_requests() {
    let mut fixture = Fixture::new();
    fixture.ranges = true;
    let server = fixture.serve();
    let cache = tempfile::tempdir().unwrap();
    let client = IndexClient::new(options(server.index(), cache.path())).unwrap();
    let page = client.project(&name("demo")).unwrap();
    let meta = client.core_metadata(&page.files[1]).unwrap();
    assert_eq!(meta.source, MetadataSource::Wheel);
    assert_eq!(meta.requires_dist[0].name.as_ref(), "six");
    let wheel_requests: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/files/demo-0.9-py3-none-any.whl")
        .collect();
    assert!(!wheel_requests.is_empty());
    assert!(wheel_requests
        .iter()
        .all(|r| r.headers.contains_key("range")));
    drop(client);

    // The extracted METADATA is cached: offline mode finds it.
    let offline = offline_client(server.index(), cache.path());
    let page = offline.project(&name("demo")).unwrap();
    assert_eq!(
        offline
            .core_metadata(&page.files[1])
            .unwrap()
            .version
            .to_string(),
        "0.9"
    );
    assert_eq!(offline.stats().requests, 0);
}

#[test]
fn not_found_and_html() {
    let server = Fixture::new().serve();
    let cache = tempfile::tempdir().unwrap();
    let client = IndexClient::new(options(server.index(), cache.path())).unwrap();

    let err = client.project(&name("missing")).unwrap_err();
    assert!(
        matches!(&err, ClientError::NotFound { package } if package == "missing"),
        "{err}"
    );
    assert!(!err.is_network());

    let err = client.project(&name("html")).unwrap_err();
    assert!(matches!(err, ClientError::BadResponse { .. }), "{err}");
    assert!(err.to_string().contains("text/html"), "{err}");
    assert!(err.is_network());
}

#[test]
fn cache_revalidation_and_freshness() {
    let server = Fixture::new().serve();
    let cache = tempfile::tempdir().unwrap();

    let first = IndexClient::new(options(server.index(), cache.path())).unwrap();
    first.project(&name("demo")).unwrap();
    assert_eq!(server.count("/simple/demo/"), 1);
    drop(first);

    // max-age=0: a second client revalidates, and the 304 serves the cached page.
    let second = IndexClient::new(options(server.index(), cache.path())).unwrap();
    let page = second.project(&name("demo")).unwrap();
    assert_eq!(page.files.len(), 4);
    let requests: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/simple/demo/")
        .collect();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].headers.get("if-none-match").map(String::as_str),
        Some("\"page-v1\"")
    );
    assert_eq!(second.stats().not_modified, 1);

    // A fresh entry is used without any request.
    let mut fixture = Fixture::new();
    fixture.cache_control = "max-age=600".into();
    let fresh_server = fixture.serve();
    let fresh_cache = tempfile::tempdir().unwrap();
    IndexClient::new(options(fresh_server.index(), fresh_cache.path()))
        .unwrap()
        .project(&name("demo"))
        .unwrap();
    let again = IndexClient::new(options(fresh_server.index(), fresh_cache.path())).unwrap();
    again.project(&name("demo")).unwrap();
    assert_eq!(fresh_server.count("/simple/demo/"), 1);
    assert_eq!(again.stats().cache_hits, 1);
    assert_eq!(again.stats().requests, 0);
}

fn cache_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn no_store_pages_are_read_but_not_kept() {
    let mut fixture = Fixture::new();
    fixture.cache_control = "no-store".into();
    let server = fixture.serve();
    let cache = tempfile::tempdir().unwrap();
    let client = IndexClient::new(options(server.index(), cache.path())).unwrap();
    assert_eq!(client.project(&name("demo")).unwrap().files.len(), 4);
    drop(client);
    assert_eq!(cache_files(cache.path()), Vec::<std::path::PathBuf>::new());
    let again = IndexClient::new(options(server.index(), cache.path())).unwrap();
    assert_eq!(again.project(&name("demo")).unwrap().files.len(), 4);
    assert_eq!(server.count("/simple/demo/"), 2);
}

#[test]
fn an_unwritable_cache_costs_memory_not_answers() {
    let server = Fixture::new().serve();
    let dir = tempfile::tempdir().unwrap();
    // A file where the cache directory should be: nothing can be created under it.
    let blocked = dir.path().join("cache");
    std::fs::write(&blocked, b"not a directory").unwrap();
    let client = IndexClient::new(options(server.index(), &blocked)).unwrap();
    let page = client.project(&name("demo")).unwrap();
    assert_eq!(page.files.len(), 4);
    let meta = client.core_metadata(&page.files[0]).unwrap();
    assert_eq!(meta.version.to_string(), "1.0");
}

#[test]
fn an_older_cache_layout_is_cleared_and_the_rest_kept() {
    let cache = tempfile::tempdir().unwrap();
    let old = cache.path().join("http-v1").join("ab");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("entry"), b"an entry in the old layout").unwrap();
    let kept = cache.path().join("artifacts-v1").join("cd");
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::write(kept.join("blob"), b"still valid").unwrap();
    let index = IndexUrl::parse("http://127.0.0.1:9/simple/").unwrap();
    IndexClient::new(options(index, cache.path())).unwrap();
    assert!(!cache.path().join("http-v1").exists());
    assert!(kept.join("blob").exists());
}

#[test]
fn corrupt_cache_entry_is_refetched() {
    let server = Fixture::new().serve();
    let cache = tempfile::tempdir().unwrap();
    let first = IndexClient::new(options(server.index(), cache.path())).unwrap();
    first.project(&name("demo")).unwrap();
    drop(first);
    // Truncate every cached response.
    let http_dir = cache.path().join("http-v3");
    for shard in std::fs::read_dir(&http_dir).unwrap() {
        for entry in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            std::fs::write(&path, &data[..data.len() / 2]).unwrap();
        }
    }
    let second = IndexClient::new(options(server.index(), cache.path())).unwrap();
    assert_eq!(second.project(&name("demo")).unwrap().files.len(), 4);
    let requests: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/simple/demo/")
        .collect();
    assert_eq!(requests.len(), 2);
    assert!(
        !requests[1].headers.contains_key("if-none-match"),
        "damaged entry was not used"
    );
}

#[test]
fn offline_mode() {
    let server = Fixture::new().serve();
    let cache = tempfile::tempdir().unwrap();
    let online = IndexClient::new(options(server.index(), cache.path())).unwrap();
    let page = online.project(&name("demo")).unwrap();
    online.core_metadata(&page.files[0]).unwrap();
    drop(online);
    let seen = server.requests().len();

    let offline = offline_client(server.index(), cache.path());
    let page = offline.project(&name("demo")).unwrap();
    let meta = offline.core_metadata(&page.files[0]).unwrap();
    assert_eq!(meta.version.to_string(), "1.0");

    let err = offline.core_metadata(&page.files[1]).unwrap_err();
    assert!(matches!(err, ClientError::Offline { .. }), "{err}");
    assert!(
        err.to_string().contains("demo-0.9-py3-none-any.whl"),
        "{err}"
    );
    let err = offline.project(&name("other")).unwrap_err();
    assert!(matches!(err, ClientError::Offline { .. }), "{err}");
    assert!(err.to_string().contains("other"), "{err}");
    assert_eq!(server.requests().len(), seen, "offline mode sent a request");
    assert_eq!(offline.stats().requests, 0);
}

#[test]
fn hash_mismatches() {
    let mut fixture = Fixture::new();
    fixture.metadata_hash = "00".repeat(32);
    let server = fixture.serve();
    let cache = tempfile::tempdir().unwrap();
    let client = IndexClient::new(options(server.index(), cache.path())).unwrap();
    let page = client.project(&name("demo")).unwrap();
    let err = client.core_metadata(&page.files[0]).unwrap_err();
    match &err {
        ClientError::HashMismatch {
            file,
            expected,
            actual,
        } => {
            assert_eq!(file, "demo-1.0-py3-none-any.whl.metadata");
            assert_eq!(expected, &"00".repeat(32));
            assert_eq!(actual, &sha256(METADATA));
        }
        other => panic!("expected HashMismatch, got {other}"),
    }

    // An artifact whose bytes differ from the declared hash.
    let mut file = (*page.files[1]).clone();
    file.sha256 = Some(bitpoll_client::Sha256Digest([0x11; 32]));
    let err = client.download(&file).unwrap_err();
    assert!(matches!(err, ClientError::HashMismatch { .. }), "{err}");
    let dest = tempfile::tempdir().unwrap();
    let err = client
        .download_to(&file, &dest.path().join("copy.whl"))
        .unwrap_err();
    assert!(matches!(err, ClientError::HashMismatch { .. }), "{err}");
    assert!(
        !dest.path().join("copy.whl").exists(),
        "nothing unchecked is written"
    );
    let err = client.core_metadata(&file).unwrap_err();
    assert!(matches!(err, ClientError::HashMismatch { .. }), "{err}");
    // Nothing that failed its check is kept, not even under a temporary name.
    for kind in ["metadata-v1", "artifacts-v1"] {
        let kept = cache_files(&cache.path().join(kind));
        assert_eq!(kept, Vec::<std::path::PathBuf>::new(), "{kind}");
    }

    // An sdist is checked as it is written to the cache, before any of it is read.
    let mut sdist = (*page.files[2]).clone();
    sdist.sha256 = Some(bitpoll_client::Sha256Digest([0x22; 32]));
    let err = client.sdist_info(&sdist).unwrap_err();
    assert!(matches!(err, ClientError::HashMismatch { .. }), "{err}");
    assert_eq!(
        cache_files(&cache.path().join("artifacts-v1")),
        Vec::<std::path::PathBuf>::new()
    );
}

#[test]
fn retries_transient_failures() {
    let failures = Arc::new(AtomicUsize::new(0));
    let fixture = Fixture::new();
    let counter = failures.clone();
    let server = Server::start(move |req| {
        if req.path == "/simple/demo/" && counter.fetch_add(1, Ordering::SeqCst) == 0 {
            let mut busy = Response::status(503).header("Retry-After", "0");
            busy.0.body = b"{\"busy\": true}".to_vec();
            return busy;
        }
        fixture.respond(req)
    });
    let cache = tempfile::tempdir().unwrap();
    let client = IndexClient::new(options(server.index(), cache.path())).unwrap();
    assert_eq!(client.project(&name("demo")).unwrap().files.len(), 4);
    assert_eq!(server.count("/simple/demo/"), 2);
    // The failed attempt's body went nowhere: the cache holds the page alone.
    let offline = offline_client(server.index(), cache.path());
    assert_eq!(offline.project(&name("demo")).unwrap().files.len(), 4);

    // Bounded: with no retries left the status comes back.
    let always = Server::start(|_| Response::status(502).header("Retry-After", "0"));
    let mut opts = options(always.index(), cache.path());
    opts.retries = 2;
    let client = IndexClient::new(opts).unwrap();
    let err = client.project(&name("demo")).unwrap_err();
    assert!(
        matches!(err, ClientError::Status { status: 502, .. }),
        "{err}"
    );
    assert!(err.is_network());
    assert_eq!(always.count("/simple/demo/"), 3);
}

#[test]
fn credentials_are_sent_but_never_shown() {
    let server = Server::start(|_| Response::status(500));
    let cache = tempfile::tempdir().unwrap();
    let index = IndexUrl::parse(&format!(
        "http://alice:hunter2@127.0.0.1:{}/simple/",
        server.port
    ))
    .unwrap();
    let mut opts = options(index.clone(), cache.path());
    opts.retries = 0;
    let client = IndexClient::new(opts).unwrap();
    let err = client.project(&name("demo")).unwrap_err();
    for text in [
        err.to_string(),
        format!("{err:?}"),
        format!("{client:?}"),
        index.to_string(),
    ] {
        assert!(
            !text.contains("hunter2") && !text.contains("alice"),
            "{text}"
        );
    }
    let auth = &server.requests()[0].headers["authorization"];
    assert!(auth.starts_with("Basic "), "{auth}");

    // Connection refused: a network error, still redacted.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let index =
        IndexUrl::parse(&format!("https://alice:hunter2@127.0.0.1:{port}/simple/")).unwrap();
    let mut opts = options(index, cache.path());
    opts.retries = 0;
    let client = IndexClient::new(opts).unwrap();
    let err = client.project(&name("demo")).unwrap_err();
    assert!(matches!(err, ClientError::Network { .. }), "{err}");
    assert!(err.is_network());
    let mut chain = format!("{err} {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        chain.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    assert!(
        !chain.contains("hunter2") && !chain.contains("alice"),
        "{chain}"
    );
}

#[test]
fn concurrent_callers_share_one_request() {
    let server = Fixture::new().serve();
    let cache = tempfile::tempdir().unwrap();
    let client = IndexClient::new(options(server.index(), cache.path())).unwrap();
    client.prefetch_project(&name("demo"));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            std::thread::spawn(move || {
                let page = client.project(&name("demo")).unwrap();
                client.prefetch_metadata(&page.files[0]);
                client
                    .core_metadata(&page.files[0])
                    .unwrap()
                    .version
                    .to_string()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), "1.0");
    }
    assert_eq!(server.count("/simple/demo/"), 1);
    assert_eq!(server.count("/files/demo-1.0-py3-none-any.whl.metadata"), 1);
}

#[test]
fn prefetches_leave_room_for_the_requests_a_caller_waits_for() {
    // Eight pages hinted, which the server holds until the end; four requests at most.
    let gate = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let arrived = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let fixture = Arc::new(Fixture::new());
    let server = {
        let (gate, arrived) = (gate.clone(), arrived.clone());
        Server::start(move |req| {
            if req.path.starts_with("/simple/slow") {
                arrived.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let held = std::time::Instant::now();
                while !gate.load(std::sync::atomic::Ordering::SeqCst)
                    && held.elapsed() < Duration::from_secs(20)
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                return Response::status(404);
            }
            fixture.respond(req)
        })
    };
    let cache = tempfile::tempdir().unwrap();
    let mut opts = options(server.index(), cache.path());
    opts.concurrency = 4;
    opts.timeout = Duration::from_secs(30);
    let client = IndexClient::new(opts).unwrap();
    for n in 0..8 {
        client.prefetch_project(&name(&format!("slow{n}")));
    }
    // Until three of them are in flight: the prefetches' share.
    let started = std::time::Instant::now();
    let in_flight = || arrived.load(std::sync::atomic::Ordering::SeqCst);
    while in_flight() < 3 && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (done, answer) = std::sync::mpsc::channel();
    {
        let client = client.clone();
        std::thread::spawn(move || {
            let _ = done.send(client.project(&name("demo")).map(|p| p.files.len()));
        });
    }
    let waited = answer.recv_timeout(Duration::from_secs(5));
    let slow = in_flight();
    gate.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        matches!(waited, Ok(Ok(4))),
        "the page asked for waited behind the prefetches: {waited:?}"
    );
    assert_eq!(slow, 3, "prefetches in flight while the page was asked for");
}

#[test]
fn exclude_newer_filters_files() {
    let server = Fixture::new().serve();
    let cache = tempfile::tempdir().unwrap();
    let mut opts = options(server.index(), cache.path());
    opts.exclude_newer = Some("2024-01-01T00:00:00Z".into());
    let client = IndexClient::new(opts).unwrap();
    let page = client.project(&name("demo")).unwrap();
    let names: Vec<_> = page.files.iter().map(|f| &*f.filename).collect();
    assert_eq!(names, ["demo-1.0-py3-none-any.whl"]);

    let mut opts = options(server.index(), cache.path());
    opts.exclude_newer = Some("last tuesday".into());
    assert!(matches!(
        IndexClient::new(opts),
        Err(ClientError::InvalidOption(_))
    ));
}

#[test]
fn usable_from_inside_an_async_runtime() {
    let server = Fixture::new().serve();
    let cache = tempfile::tempdir().unwrap();
    let client = IndexClient::new(options(server.index(), cache.path())).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let files = runtime.block_on(async { client.project(&name("demo")).unwrap().files.len() });
    assert_eq!(files, 4);
    // Dropping the client in async code must not panic either.
    runtime.block_on(async move { drop(client) });
}

/// A server for `demo` whose page can be replaced between requests; its ETag follows the
/// body, and it is always stale (`max-age=0`), so online clients revalidate.
fn changing_page_server(page: Arc<std::sync::Mutex<String>>) -> Server {
    Server::start(move |req| {
        if req.path != "/simple/demo/" {
            return Response::status(404);
        }
        let body = page.lock().unwrap().clone();
        let etag = format!("\"{}\"", &sha256(body.as_bytes())[..16]);
        if req.headers.get("if-none-match") == Some(&etag) {
            return Response::status(304)
                .header("ETag", &etag)
                .header("Cache-Control", "max-age=0");
        }
        Response::ok(JSON, body)
            .header("ETag", &etag)
            .header("Cache-Control", "max-age=0")
    })
}

fn files_of(page: &bitpoll_client::ProjectPage) -> Vec<(String, String, Option<String>)> {
    page.files
        .iter()
        .map(|f| {
            (
                f.filename.to_string(),
                f.url().to_string(),
                f.requires_python.as_deref().map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn a_page_is_parsed_once_per_body() {
    let page = Arc::new(std::sync::Mutex::new(Fixture::new().page()));
    let server = changing_page_server(page.clone());
    let cache = tempfile::tempdir().unwrap();

    let first = IndexClient::new(options(server.index(), cache.path())).unwrap();
    let parsed = first.project(&name("demo")).unwrap();
    assert_eq!(first.stats().parsed_pages, 0);

    // Offline, the page comes as the first run left it, not from its JSON.
    let offline = offline_client(server.index(), cache.path());
    let reused = offline.project(&name("demo")).unwrap();
    assert_eq!(offline.stats().parsed_pages, 1);
    assert_eq!(files_of(&reused), files_of(&parsed));
    assert_eq!(*reused, *parsed);

    // A stale page that revalidates (`304`) has the same body: still no parse.
    let revalidated = IndexClient::new(options(server.index(), cache.path())).unwrap();
    assert_eq!(*revalidated.project(&name("demo")).unwrap(), *parsed);
    assert_eq!(revalidated.stats().not_modified, 1);
    assert_eq!(revalidated.stats().parsed_pages, 1);

    // A new body is parsed, and what is kept from then on is the new page.
    let mut changed: serde_json::Value = serde_json::from_str(&Fixture::new().page()).unwrap();
    changed["files"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            {"filename": "demo-2.0.tar.gz", "url": "../../files/demo-2.0.tar.gz", "hashes": {}}
        ));
    *page.lock().unwrap() = changed.to_string();
    let online = IndexClient::new(options(server.index(), cache.path())).unwrap();
    let new_page = online.project(&name("demo")).unwrap();
    assert_eq!(online.stats().parsed_pages, 0);
    assert_eq!(new_page.files.len(), parsed.files.len() + 1);
    let offline = offline_client(server.index(), cache.path());
    let reused = offline.project(&name("demo")).unwrap();
    assert_eq!(offline.stats().parsed_pages, 1);
    assert_eq!(files_of(&reused), files_of(&new_page));
}

#[test]
fn a_parsed_page_serves_only_the_filter_it_was_parsed_with() {
    let server = Fixture::new().serve();
    let cache = tempfile::tempdir().unwrap();
    let wheels_dropped = |index: IndexUrl, offline: bool| {
        let mut opts = options(index, cache.path());
        opts.offline = offline;
        opts.wheel_filter = Some(bitpoll_client::WheelFilter::new("no wheels", |_, name| {
            let version = name.split('-').nth(1).unwrap().parse().unwrap();
            bitpoll_client::WheelVerdict::Drop(version)
        }));
        IndexClient::new(opts).unwrap()
    };
    let all = IndexClient::new(options(server.index(), cache.path())).unwrap();
    assert_eq!(all.project(&name("demo")).unwrap().files.len(), 4);

    // Another filter: the page is parsed again, with that filter. (Each release keeps one
    // dropped wheel as its metadata donor; the 0.9 one is yanked, so only 1.0's stays.)
    let filtered = wheels_dropped(server.index(), true);
    let page = filtered.project(&name("demo")).unwrap();
    assert_eq!(filtered.stats().parsed_pages, 0);
    assert_eq!(page.files.len(), 3);
    assert_eq!(page.dropped_wheel_versions.len(), 2);

    // Both are kept side by side.
    let again = wheels_dropped(server.index(), true);
    assert_eq!(*again.project(&name("demo")).unwrap(), *page);
    assert_eq!(again.stats().parsed_pages, 1);
    let unfiltered = offline_client(server.index(), cache.path());
    assert_eq!(unfiltered.project(&name("demo")).unwrap().files.len(), 4);
    assert_eq!(unfiltered.stats().parsed_pages, 1);
}

#[test]
fn a_damaged_parsed_page_is_parsed_again() {
    let server = Fixture::new().serve();
    let cache = tempfile::tempdir().unwrap();
    let parsed = IndexClient::new(options(server.index(), cache.path()))
        .unwrap()
        .project(&name("demo"))
        .unwrap();
    let kept = cache_files(&cache.path().join("pages-v2"));
    assert_eq!(kept.len(), 1);
    let data = std::fs::read(&kept[0]).unwrap();
    let mut flipped = data.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    std::fs::write(&kept[0], &flipped).unwrap();

    let offline = offline_client(server.index(), cache.path());
    assert_eq!(*offline.project(&name("demo")).unwrap(), *parsed);
    assert_eq!(offline.stats().parsed_pages, 0);
    // ... and kept anew.
    let again = offline_client(server.index(), cache.path());
    assert_eq!(*again.project(&name("demo")).unwrap(), *parsed);
    assert_eq!(again.stats().parsed_pages, 1);
}

/// A page of `n` wheels, each with a provenance file whose publisher names the wheel.
fn provenance_page(n: usize) -> String {
    let files: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "filename": format!("signed-1.{i}-py3-none-any.whl"),
                "url": format!("../../files/signed-1.{i}-py3-none-any.whl"),
                "hashes": {},
                "provenance": format!("../../files/signed-1.{i}.provenance"),
            })
        })
        .collect();
    serde_json::json!({"meta": {"api-version": "1.3"}, "name": "signed", "files": files})
        .to_string()
}

#[test]
fn publishers_are_asked_side_by_side_and_answered_in_order() {
    // Each provenance answer waits until every one has been asked for: asked one at a time,
    // the first would wait in vain and the server answers 503.
    const N: usize = 4;
    let arrived = Arc::new((std::sync::Mutex::new(0usize), std::sync::Condvar::new()));
    let server = Server::start(move |r| {
        if r.path == "/simple/signed/" {
            return Response::ok(JSON, provenance_page(N));
        }
        let Some(i) = r
            .path
            .strip_prefix("/files/signed-1.")
            .and_then(|rest| rest.strip_suffix(".provenance"))
        else {
            return Response::status(404);
        };
        let (count, all) = &*arrived;
        let mut n = count.lock().unwrap();
        *n += 1;
        all.notify_all();
        let (n, waited) = all
            .wait_timeout_while(n, Duration::from_secs(5), |n| *n < N)
            .unwrap();
        drop(n);
        if waited.timed_out() {
            return Response::status(503);
        }
        let bundle = serde_json::json!({
            "version": 1,
            "attestation_bundles": [{
                "publisher": {"kind": "GitHub", "repository": format!("org/signed-{i}"),
                              "workflow": "release.yml"},
                "attestations": [],
            }],
        });
        Response::ok("application/json", bundle.to_string())
    });
    let cache = tempfile::tempdir().unwrap();
    let mut opts = options(server.index(), cache.path());
    opts.retries = 0;
    let client = IndexClient::new(opts).unwrap();
    let page = client.project(&name("signed")).unwrap();
    let files: Vec<_> = page.files.iter().cloned().collect();
    let publishers: Vec<String> = client
        .publishers(&files)
        .into_iter()
        .map(|answer| answer.unwrap().expect("every file has provenance"))
        .collect();
    assert_eq!(publishers.len(), N);
    for (i, publisher) in publishers.iter().enumerate() {
        assert!(
            publisher.contains(&format!("repository=org/signed-{i} ")),
            "answer {i} is file {i}'s: {publisher}"
        );
    }
    // Asked again, one file at a time: the answers are remembered, not fetched again.
    assert_eq!(
        client.publisher(&files[2]).unwrap().as_deref(),
        Some(&*publishers[2])
    );
    assert_eq!(server.count("/files/signed-1.2.provenance"), 1);
}

/// A `.tar.gz` sdist of `demo 1.1` whose `PKG-INFO` comes after `filler` incompressible
/// files of 4 KiB (a backend may write it last), or first, with a `pyproject.toml`: then
/// the archive has said all it will say before the filler.
fn sdist_with(pkg_info: &[u8], filler: usize, pkg_info_last: bool) -> Vec<u8> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(encoder);
    let mut append = |path: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, data).unwrap();
    };
    if !pkg_info_last {
        append("demo-1.1/PKG-INFO", pkg_info);
        append(
            "demo-1.1/pyproject.toml",
            b"[build-system]\nrequires = [\"setuptools\"]\n",
        );
    }
    for i in 0..filler {
        // Digests do not compress: 128 of them make 4 KiB.
        let data: Vec<u8> = (0..128)
            .flat_map(|j| Sha256::digest(format!("{i}.{j}")))
            .collect();
        append(&format!("demo-1.1/data/{i}.bin"), &data);
    }
    if pkg_info_last {
        append("demo-1.1/PKG-INFO", pkg_info);
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// A loopback index whose project `demo` has one sdist, `body`, declared with `sha256`.
fn sdist_index(body: &[u8], sha256: &str) -> bitpoll_test_server::IndexServer {
    let server = bitpoll_test_server::IndexServer::start(HashMap::new());
    let page = serde_json::json!({
        "meta": {"api-version": "1.1"},
        "name": "demo",
        "files": [{"filename": "demo-1.1.tar.gz", "url": "../../files/demo-1.1.tar.gz",
                   "hashes": {"sha256": sha256}}]
    });
    server.set_route(
        "/simple/demo/",
        bitpoll_test_server::Response::new(200, JSON, page.to_string()),
    );
    server.set_route(
        "/files/demo-1.1.tar.gz",
        bitpoll_test_server::Response::new(200, "application/octet-stream", body.to_vec()),
    );
    server
}

fn requires(client: &IndexClient, file: &bitpoll_client::DistFile) -> Vec<String> {
    let metadata = client.core_metadata(file).unwrap();
    assert_eq!(metadata.source, MetadataSource::SdistPkgInfo);
    metadata
        .requires_dist
        .iter()
        .map(|r| r.name.to_string())
        .collect()
}

const PKG_INFO: &[u8] =
    b"Metadata-Version: 2.2\nName: demo\nVersion: 1.1\nRequires-Dist: packaging\n";

#[test]
fn an_sdist_is_read_while_it_downloads() {
    // 200 members ahead of PKG-INFO: the download takes many reads, and the file that says
    // what the sdist is arrives last.
    let sdist = sdist_with(PKG_INFO, 200, true);
    let server = sdist_index(&sdist, &sha256(&sdist));
    let index = IndexUrl::parse(&server.index_url()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let client = IndexClient::new(options(index.clone(), cache.path())).unwrap();
    let page = client.project(&name("demo")).unwrap();
    // Downloaded for a build, which reads the archive itself.
    let dest = tempfile::tempdir().unwrap();
    client
        .download_to(&page.files[0], &dest.path().join("demo-1.1.tar.gz"))
        .unwrap();
    drop(client);

    // What it says was found on the way: without the archive, and offline, it is known.
    std::fs::remove_dir_all(cache.path().join("artifacts-v1")).unwrap();
    let offline = offline_client(index, cache.path());
    assert_eq!(requires(&offline, &page.files[0]), ["packaging"]);
    assert_eq!(
        server.requests().len(),
        2,
        "the page and the sdist, once each"
    );
}

#[test]
fn an_sdist_download_that_breaks_off_is_read_from_the_attempt_that_completed() {
    let sdist = sdist_with(PKG_INFO, 200, true);
    let server = sdist_index(&sdist, &sha256(&sdist));
    // The first attempt's bytes are another archive, whose own PKG-INFO names another
    // dependency; it comes first, so it is read in full before the connection drops (and
    // the retry waits a back-off).
    let other = sdist_with(
        b"Metadata-Version: 2.2\nName: demo\nVersion: 1.1\nRequires-Dist: wrong\n",
        200,
        false,
    );
    server.inject(
        "/files/demo-1.1.tar.gz",
        bitpoll_test_server::Fault::TruncateOnce(bitpoll_test_server::Response::new(
            200,
            "application/octet-stream",
            other,
        )),
    );
    let index = IndexUrl::parse(&server.index_url()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let client = IndexClient::new(options(index.clone(), cache.path())).unwrap();
    let page = client.project(&name("demo")).unwrap();
    assert_eq!(requires(&client, &page.files[0]), ["packaging"]);
    let downloads = server
        .requests()
        .iter()
        .filter(|r| r.path == "/files/demo-1.1.tar.gz")
        .count();
    assert_eq!(downloads, 2, "retried once");
    drop(client);
    // What was kept is the complete archive's.
    std::fs::remove_dir_all(cache.path().join("artifacts-v1")).unwrap();
    let offline = offline_client(index, cache.path());
    assert_eq!(requires(&offline, &page.files[0]), ["packaging"]);
}

#[test]
fn an_sdist_that_fails_its_hash_leaves_nothing_read_from_it() {
    let sdist = sdist_with(PKG_INFO, 20, false);
    let server = sdist_index(&sdist, &"33".repeat(32));
    let index = IndexUrl::parse(&server.index_url()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let client = IndexClient::new(options(index, cache.path())).unwrap();
    let page = client.project(&name("demo")).unwrap();
    let err = client.core_metadata(&page.files[0]).unwrap_err();
    assert!(matches!(err, ClientError::HashMismatch { .. }), "{err}");
    for kind in ["artifacts-v1", "sdist-members-v2"] {
        let kept = cache_files(&cache.path().join(kind));
        assert_eq!(kept, Vec::<std::path::PathBuf>::new(), "{kind}");
    }
}
