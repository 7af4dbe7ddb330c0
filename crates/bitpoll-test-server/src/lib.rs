//! A small HTTP/1.1 server for tests: fixed routes or a handler, a request log, ETag
//! revalidation, byte ranges and injectable faults. Bound to 127.0.0.1 on a free port; stops
//! when dropped.
//!
//! It has no dependency on the project's crates, so that every crate's tests (the index
//! client's included) can use the same server. It must never listen beyond the loopback
//! address.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type: content_type.into(),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What to do instead of answering normally.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this response instead, `times` times (then normally).
    Replace { response: Response, times: usize },
    /// Send the headers and half the body, then close the connection.
    Truncate,
    /// Send the headers and half the body of this response instead, then close the
    /// connection; once (a download that breaks off, and whose retry gets the route).
    TruncateOnce(Response),
    /// Close the connection without answering.
    Reset,
    /// Wait before answering.
    Delay(Duration),
    /// Send the headers, then the body one byte per interval (a server that never stalls
    /// long enough for a read timeout, yet never finishes).
    Trickle(Duration),
}

/// Answers requests itself; `None` falls back to the routes.
pub type Handler = dyn Fn(&Request) -> Option<Response> + Send + Sync;

#[derive(Default)]
struct State {
    routes: HashMap<String, Response>,
    handler: Option<Arc<Handler>>,
    faults: HashMap<String, Fault>,
    /// Paths answered with `206 Partial Content` to a `Range` request.
    ranges: std::collections::HashSet<String>,
    log: Vec<Request>,
    /// Every answer waits a pseudo-random time up to this long, from this seed.
    jitter: Option<(Duration, u64)>,
    /// `Cache-Control: max-age` for every successful answer that names none.
    max_age: Option<u64>,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// When the request line arrived, so tests can measure the gaps between retries.
    pub at: std::time::Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct IndexServer {
    addr: std::net::SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl IndexServer {
    pub fn start(routes: HashMap<String, Response>) -> Self {
        Self::start_state(State {
            routes,
            ..State::default()
        })
    }

    /// A server whose answers come from `handler`, sent as it returns them (no ETag, no
    /// ranges, no faults): for tests that script the exchange themselves.
    pub fn start_with(
        handler: impl Fn(&Request) -> Option<Response> + Send + Sync + 'static,
    ) -> Self {
        Self::start_state(State {
            handler: Some(Arc::new(handler)),
            ..State::default()
        })
    }

    fn start_state(state: State) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let state = state.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = state.clone();
                    thread::spawn(move || serve(stream, state));
                }
            });
        }
        Self { addr, state, stop }
    }

    /// The simple-API root, e.g. `http://127.0.0.1:PORT/simple/`.
    pub fn index_url(&self) -> String {
        format!("http://{}/simple/", self.addr)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_route(&self, path: &str, response: Response) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(path.into(), response);
    }

    pub fn remove_route(&self, path: &str) {
        self.state.lock().unwrap().routes.remove(path);
    }

    pub fn route(&self, path: &str) -> Option<Response> {
        self.state.lock().unwrap().routes.get(path).cloned()
    }

    pub fn inject(&self, path: &str, fault: Fault) {
        self.state.lock().unwrap().faults.insert(path.into(), fault);
    }

    /// Answers `Range` requests for `path` with the bytes asked for, as file hosts do.
    pub fn serve_ranges(&self, path: &str) {
        self.state.lock().unwrap().ranges.insert(path.into());
    }

    /// Delays every answer by a pseudo-random time of up to `max`, a different sequence for
    /// each `seed`: answers then arrive in an order that no test can rely on.
    pub fn jitter(&self, max: Duration, seed: u64) {
        self.state.lock().unwrap().jitter = Some((max, seed));
    }

    /// Lets clients reuse every successful answer for `secs` seconds without asking again,
    /// as real indexes do for most responses.
    pub fn max_age(&self, secs: u64) {
        self.state.lock().unwrap().max_age = Some(secs);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }
}

impl Drop for IndexServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(stream: TcpStream, state: Arc<Mutex<State>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let at = std::time::Instant::now();
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("/").to_string(),
        );
        let mut headers = Vec::new();
        let mut content_length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    content_length = v.trim().parse().unwrap_or(0);
                }
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut body = vec![0; content_length];
        let _ = reader.read_exact(&mut body);
        let path = target.split('?').next().unwrap_or("/").to_string();
        let request = Request {
            path: path.clone(),
            headers,
            at,
        };
        let handler = state.lock().unwrap().handler.clone();
        if let Some(answer) = handler.and_then(|h| h(&request)) {
            state.lock().unwrap().log.push(request.clone());
            let head = head(&answer, answer.body.len(), None);
            if stream.write_all(head.as_bytes()).is_err()
                || (method != "HEAD" && stream.write_all(&answer.body).is_err())
            {
                return;
            }
            let _ = stream.flush();
            continue;
        }
        let (response, fault, ranges, delay, max_age) = {
            let mut st = state.lock().unwrap();
            st.log.push(request.clone());
            let n = st.log.len() as u64;
            let delay = st.jitter.map(|(max, seed)| {
                let nanos = max.as_nanos().max(1) as u64;
                Duration::from_nanos(
                    splitmix64(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)) % nanos,
                )
            });
            let mut fault = st.faults.get(&path).cloned();
            if let Some(Fault::Replace { times, .. }) = st.faults.get_mut(&path) {
                if *times <= 1 {
                    st.faults.remove(&path);
                } else {
                    *times -= 1;
                }
            }
            if matches!(fault, Some(Fault::TruncateOnce(_))) {
                st.faults.remove(&path);
            }
            if matches!(fault, Some(Fault::Replace { times: 0, .. })) {
                fault = None;
            }
            (
                st.routes.get(&path).cloned(),
                fault,
                st.ranges.contains(&path),
                delay,
                st.max_age,
            )
        };
        if let Some(delay) = delay {
            thread::sleep(delay);
        }
        let mut response =
            response.unwrap_or_else(|| Response::new(404, "text/plain", "not found"));
        let names_cache_control = response
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("cache-control"));
        if let (Some(secs), 200, false) = (max_age, response.status, names_cache_control) {
            response = response.with_header("Cache-Control", &format!("max-age={secs}"));
        }
        match fault {
            Some(Fault::Replace { response: r, .. }) => response = r,
            Some(Fault::Reset) => {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            Some(Fault::Delay(d)) => thread::sleep(d),
            Some(Fault::Trickle(interval)) => {
                let head = head(&response, response.body.len(), None);
                if stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                for byte in &response.body {
                    if stream.write_all(&[*byte]).is_err() || stream.flush().is_err() {
                        return;
                    }
                    thread::sleep(interval);
                }
                continue;
            }
            Some(fault @ (Fault::Truncate | Fault::TruncateOnce(_))) => {
                if let Fault::TruncateOnce(instead) = fault {
                    response = instead;
                }
                let head = head(&response, response.body.len(), None);
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&response.body[..response.body.len() / 2]);
                let _ = stream.flush();
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            None => {}
        }
        if let Some(range) = request
            .header("range")
            .filter(|_| ranges && response.status == 200)
        {
            let partial = byte_range(range, response.body.len()).map(|(start, end)| {
                let mut partial = response.clone();
                partial.status = 206;
                partial.body = response.body[start..end].to_vec();
                partial.headers.push((
                    "Content-Range".into(),
                    format!("bytes {start}-{}/{}", end - 1, response.body.len()),
                ));
                partial
            });
            if let Some(partial) = partial {
                let head = head(&partial, partial.body.len(), None);
                if stream.write_all(head.as_bytes()).is_err()
                    || stream.write_all(&partial.body).is_err()
                {
                    return;
                }
                let _ = stream.flush();
                continue;
            }
        }
        let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&response.body))[..16]);
        if response.status == 200 && request.header("if-none-match") == Some(etag.as_str()) {
            let h =
                format!("HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nContent-Length: 0\r\n\r\n");
            if stream.write_all(h.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        let head = head(
            &response,
            response.body.len(),
            (response.status == 200).then_some(etag.as_str()),
        );
        if stream.write_all(head.as_bytes()).is_err()
            || (method != "HEAD" && stream.write_all(&response.body).is_err())
        {
            return;
        }
        let _ = stream.flush();
    }
}

/// A well-mixed 64-bit function of `x` (SplitMix64's finaliser), for jitter without a
/// random-number crate.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `bytes=-N`, `bytes=A-B` or `bytes=A-` as a half-open span of a body of `len` bytes.
fn byte_range(header: &str, len: usize) -> Option<(usize, usize)> {
    let (start, end) = header.trim().strip_prefix("bytes=")?.split_once('-')?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", n) => (len.saturating_sub(n.parse().ok()?), len),
        (a, "") => (a.parse().ok()?, len),
        (a, b) => (a.parse().ok()?, (b.parse::<usize>().ok()? + 1).min(len)),
    };
    (start < end).then_some((start, end))
}

fn head(response: &Response, len: usize, etag: Option<&str>) -> String {
    let reason = match response.status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut h = format!("HTTP/1.1 {} {reason}\r\n", response.status);
    if !response.content_type.is_empty() {
        h.push_str(&format!("Content-Type: {}\r\n", response.content_type));
    }
    h.push_str(&format!("Content-Length: {len}\r\n"));
    if let Some(etag) = etag {
        h.push_str(&format!("ETag: {etag}\r\n"));
    }
    for (k, v) in &response.headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    h
}
