//! Host names looked up once per run, and asked again when an answer is late.
//!
//! The system's resolver (`getaddrinfo`) sends its questions over UDP and waits five seconds
//! (resolv.conf's default `timeout`) before it asks again when an answer is lost. On a
//! machine whose name server drops one question in a few dozen (this one's did: 7 of 200
//! lookups of the file host's name took 5.0 s, the median 0.3 ms), that is a five-second
//! stall of every request to that host at once, since they all wait for its first
//! connection: two of six cold runs of one set in a bench took 9.2 and 9.5 s instead of
//! 4.0-4.7 s that way. So a lookup not answered within [`ASK_AGAIN_AFTER`] is asked again
//! beside the first, and the first answer wins; a lost question costs that delay instead of
//! five seconds.
//! Every connection to a host after the first takes the addresses found then, so a run asks
//! once per host (the system keeps no cache of its own on many machines).
//!
//! Lookups run on threads of their own, not the runtime's blocking pool: one that hangs is
//! left behind without holding up the end of the run.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

/// How long a lookup may take before it is asked again, beside the first: far above an
/// answer from a name server on the network (milliseconds), far below the system's own
/// retry (seconds).
const ASK_AGAIN_AFTER: Duration = Duration::from_millis(250);

/// At most this many lookups of one name at once: a name server that answers nothing is
/// not asked ever more often.
const MOST_ASKS: usize = 3;

type Lookup = Arc<dyn Fn(&str) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

/// Each host's addresses, once found; a lookup in progress is waited for by every
/// connection that needs it.
type Found = Arc<Mutex<HashMap<String, Arc<OnceCell<Vec<SocketAddr>>>>>>;

/// A [`reqwest::dns::Resolve`] that asks the system once per host and run, again beside a
/// late lookup (see the module documentation). Clones share what was found.
#[derive(Clone)]
pub(crate) struct HedgedResolver {
    lookup: Lookup,
    hosts: Found,
    timings: bitpoll_timings::Timings,
}

impl HedgedResolver {
    pub(crate) fn new(timings: bitpoll_timings::Timings) -> Self {
        Self::with_lookup(
            Arc::new(|host: &str| Ok((host, 0).to_socket_addrs()?.collect())),
            timings,
        )
    }

    /// With `lookup` in place of the system's resolver (for tests).
    pub(crate) fn with_lookup(lookup: Lookup, timings: bitpoll_timings::Timings) -> Self {
        Self {
            lookup,
            hosts: Arc::default(),
            timings,
        }
    }

    /// `host`'s addresses: those found earlier in the run, or a lookup's.
    pub(crate) async fn addresses(&self, host: &str) -> io::Result<Vec<SocketAddr>> {
        let cell = self
            .hosts
            .lock()
            .expect("hosts lock")
            .entry(host.to_string())
            .or_default()
            .clone();
        // A failed lookup leaves the cell empty: the next connection asks again.
        cell.get_or_try_init(|| self.hedged(host)).await.cloned()
    }

    /// The first answer of up to [`MOST_ASKS`] lookups of `host`, each started
    /// [`ASK_AGAIN_AFTER`] after the one before while none has answered. A failed lookup
    /// starts no other (a name that does not exist does not exist twice); its error is the
    /// answer once no lookup is left that may still succeed.
    async fn hedged(&self, host: &str) -> io::Result<Vec<SocketAddr>> {
        let mark = self.timings.mark();
        let (sender, mut answers) = tokio::sync::mpsc::unbounded_channel();
        let start = || {
            let (lookup, host, sender) = (self.lookup.clone(), host.to_string(), sender.clone());
            std::thread::Builder::new()
                .name("bitpoll-lookup".into())
                .spawn(move || {
                    // The receiver is gone when another lookup answered first.
                    let _ = sender.send(lookup(&host));
                })
                .map(drop)
        };
        start()?;
        let (mut asked, mut pending) = (1, 1);
        let result = loop {
            let answer = if asked < MOST_ASKS {
                match tokio::time::timeout(ASK_AGAIN_AFTER, answers.recv()).await {
                    Ok(answer) => answer,
                    Err(_late) => {
                        asked += 1;
                        if start().is_ok() {
                            pending += 1;
                        }
                        continue;
                    }
                }
            } else {
                answers.recv().await
            };
            match answer.expect("a sender is held here") {
                Ok(addresses) => break Ok(addresses),
                Err(e) => {
                    pending -= 1;
                    if pending == 0 {
                        break Err(e);
                    }
                }
            }
        };
        self.timings
            .span(mark, bitpoll_timings::Category::Lookup, || match asked {
                1 => "host name looked up".to_string(),
                n => format!("host name looked up, asked {n} times"),
            });
        result
    }
}

impl reqwest::dns::Resolve for HedgedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            let addresses = resolver.addresses(name.as_str()).await?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn address(last: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, last], 0))
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// The first lookup never answers (a lost question the system would wait seconds
    /// for); the second does, and its answer is taken while the first still hangs.
    #[test]
    fn a_late_lookup_is_asked_again_and_the_first_answer_is_taken() {
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, hang) = std::sync::mpsc::channel::<()>();
        let hang = Arc::new(Mutex::new(hang));
        let lookup: Lookup = {
            let calls = calls.clone();
            Arc::new(move |host: &str| {
                assert_eq!(host, "files.example");
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => {
                        let _ = hang.lock().unwrap().recv();
                        Ok(vec![address(1)])
                    }
                    _ => Ok(vec![address(2)]),
                }
            })
        };
        let resolver = HedgedResolver::with_lookup(lookup, bitpoll_timings::Timings::off());
        let found = runtime()
            .block_on(resolver.addresses("files.example"))
            .unwrap();
        assert_eq!(found, [address(2)]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        drop(release);
    }

    /// Connections after the first take the addresses found then; lookups of one host at
    /// once share one.
    #[test]
    fn a_host_is_looked_up_once_per_run() {
        let calls = Arc::new(AtomicUsize::new(0));
        let lookup: Lookup = {
            let calls = calls.clone();
            Arc::new(move |host: &str| {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(vec![address(if host == "a.example" { 1 } else { 2 })])
            })
        };
        let resolver = HedgedResolver::with_lookup(lookup, bitpoll_timings::Timings::off());
        runtime().block_on(async {
            let (x, y) = tokio::join!(
                resolver.addresses("a.example"),
                resolver.addresses("a.example")
            );
            assert_eq!(x.unwrap(), [address(1)]);
            assert_eq!(y.unwrap(), [address(1)]);
            assert_eq!(resolver.addresses("a.example").await.unwrap(), [address(1)]);
            assert_eq!(resolver.addresses("b.example").await.unwrap(), [address(2)]);
        });
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    /// A name that does not resolve fails at once (nothing is asked again while no lookup
    /// is late), and the next connection asks anew.
    #[test]
    fn a_failed_lookup_is_the_answer_and_is_not_kept() {
        let calls = Arc::new(AtomicUsize::new(0));
        let lookup: Lookup = {
            let calls = calls.clone();
            Arc::new(move |_: &str| match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(io::Error::new(io::ErrorKind::NotFound, "no such host")),
                _ => Ok(vec![address(3)]),
            })
        };
        let resolver = HedgedResolver::with_lookup(lookup, bitpoll_timings::Timings::off());
        let rt = runtime();
        let err = rt.block_on(resolver.addresses("gone.example")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            rt.block_on(resolver.addresses("gone.example")).unwrap(),
            [address(3)]
        );
    }

    /// Lookups that all hang and then fail: no more than [`MOST_ASKS`] are started, and
    /// the answer is the failure.
    #[test]
    fn a_name_server_that_never_answers_is_asked_a_bounded_number_of_times() {
        let calls = Arc::new(AtomicUsize::new(0));
        let lookup: Lookup = {
            let calls = calls.clone();
            Arc::new(move |_: &str| {
                calls.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(ASK_AGAIN_AFTER * 4);
                Err(io::Error::new(io::ErrorKind::TimedOut, "no answer"))
            })
        };
        let resolver = HedgedResolver::with_lookup(lookup, bitpoll_timings::Timings::off());
        let err = runtime()
            .block_on(resolver.addresses("silent.example"))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(calls.load(Ordering::SeqCst), MOST_ASKS);
    }
}
