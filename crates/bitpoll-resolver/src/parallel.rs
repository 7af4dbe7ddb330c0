//! Blocking calls to a package source, side by side.
//!
//! A source's calls block until the answer arrives, and most of that time is a network round
//! trip, not work: a few threads waiting together finish in about one round trip where a loop
//! would take one per item. The threads are scoped, so the items and the source are borrowed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// How many calls wait at once: enough to hide round trips, well under the client's own
/// limit on requests in flight.
const WIDTH: usize = 16;

/// `f` of every item, in the items' order.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.len() <= 1 {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..WIDTH.min(items.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                results.lock().expect("results lock")[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .map(|r| r.expect("every item was mapped"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Condvar;
    use std::time::Duration;

    #[test]
    fn keeps_order_and_waits_side_by_side() {
        // Each call waits until WIDTH calls have started: only calls made side by side all
        // see that happen (in a row, the first would give up waiting).
        let started = Mutex::new(0);
        let all_started = Condvar::new();
        let items: Vec<usize> = (0..WIDTH * 2).collect();
        let out = map(&items, |i| {
            let mut n = started.lock().unwrap();
            *n += 1;
            all_started.notify_all();
            let (n, timeout) = all_started
                .wait_timeout_while(n, Duration::from_secs(10), |n| *n < WIDTH)
                .unwrap();
            drop(n);
            (*i * 2, !timeout.timed_out())
        });
        assert_eq!(
            out.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
            items.iter().map(|i| i * 2).collect::<Vec<_>>()
        );
        assert!(out.iter().all(|(_, together)| *together));
    }
}
