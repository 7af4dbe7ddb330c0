//! Targets that answer alike share one solve.
//!
//! A target's solve is a function of what the solver reads about packages for that target:
//! which top-level requirements apply, each package's candidate list, and each release's
//! dependencies. PubGrub and the provider add nothing else but their own state, which those
//! answers determine. Two targets that give the same answers to every question one of them
//! asked therefore make the same solve, restarts and all, and end with the same versions.
//! Most targets do: `x86_64-linux` and `aarch64-linux` differ only where a wheel or a
//! `platform_machine` marker does.
//!
//! So one target of a group leads: its solve writes each answer to a [`Trace`], once, in the
//! order it first read it. The others follow: each reads its own answer to every question in
//! the trace, in the same order, and compares. When the leader is done and every answer
//! matched, the follower takes the leader's versions and works out the rest (its own files,
//! hashes, build environments) as after a solve of its own. At the first answer that differs,
//! or when the leader fails, the follower solves on its own from the start.
//!
//! The lock is the same either way: a follower only takes versions its own solve would have
//! chosen. So are the requests: up to a difference, the questions a follower asked are the
//! first questions its own solve asks, in the same order. What following saves is the solve
//! itself (an offline run of sentry's set restarts twelve times per target, each time asking
//! for every release's dependencies again); what it costs a cold run is nothing a solve of its
//! own would not have waited for, since a follower reads its answers as the leader reads
//! them.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use pep440_rs::Version;
use pep508_rs::PackageName;

use crate::candidates::Outline;
use crate::universe::{Pkg, ProviderError};
use crate::version::{Range, SolverVersion};

/// A release's dependencies as the solver is told them, before any ruling out (which depends on
/// what the solve has seen, not on the release): the edges, or why the release is unusable.
pub(crate) type RawDeps = Result<Vec<(Pkg, Range)>, String>;

/// One answer the leader read, with what it asked.
#[derive(Debug, PartialEq)]
pub(crate) enum Fact {
    /// The packages of the top-level requirements that apply, in declaration order.
    Declared(Vec<PackageName>),
    /// A package's candidate list (nixpkgs' builds alone, or all), without its index
    /// releases, which come one by one as [`Fact::Release`]s; plus the two things the solver
    /// reads with it: whether pre-releases are allowed and which versions are pinned.
    Listed {
        name: PackageName,
        nixpkgs_only: bool,
        outline: Outline,
        prereleases: bool,
        pinned: Vec<Version>,
    },
    /// What the index release at `at` (newest first) of a package gives: a version, or none.
    Release {
        name: PackageName,
        at: usize,
        version: Option<SolverVersion>,
    },
    Dependencies {
        package: Pkg,
        version: SolverVersion,
        deps: RawDeps,
    },
}

/// What the leader ended with.
#[derive(Debug)]
pub(crate) struct Solved {
    pub(crate) solution: Vec<(Pkg, SolverVersion)>,
    /// Packages with only pre-releases in range, and the newest of them (a warning each).
    pub(crate) prereleases_only: Vec<(PackageName, Version)>,
}

#[derive(Clone)]
enum End {
    Solved(Arc<Solved>),
    Failed,
}

#[derive(Default)]
struct Log {
    facts: Vec<Arc<Fact>>,
    end: Option<End>,
}

/// The answers of a leading target, read by its followers while it writes them.
#[derive(Default)]
pub(crate) struct Trace {
    log: Mutex<Log>,
    grown: Condvar,
}

enum Next {
    Facts(Vec<Arc<Fact>>),
    End(End),
}

impl Trace {
    fn push(&self, facts: impl IntoIterator<Item = Fact>) {
        let mut log = self.log.lock().expect("trace lock");
        if log.end.is_none() {
            log.facts.extend(facts.into_iter().map(Arc::new));
            self.grown.notify_all();
        }
    }

    fn end(&self, end: End) {
        let mut log = self.log.lock().expect("trace lock");
        log.end.get_or_insert(end);
        self.grown.notify_all();
    }

    /// Every fact handed over so far, in order.
    pub(crate) fn facts(&self) -> Vec<Arc<Fact>> {
        self.log.lock().expect("trace lock").facts.clone()
    }

    /// The facts from the `from`th on, waiting for at least one (with `waiting` held while
    /// it does); or how the leader ended, once it has and they are all read.
    fn next<W>(&self, from: usize, waiting: impl Fn() -> W) -> Next {
        let mut log = self.log.lock().expect("trace lock");
        let mut waited = None;
        loop {
            if let Some(facts) = log.facts.get(from..).filter(|f| !f.is_empty()) {
                return Next::Facts(facts.to_vec());
            }
            if let Some(end) = &log.end {
                return Next::End(end.clone());
            }
            if waited.is_none() {
                waited = Some(waiting());
            }
            log = self.grown.wait(log).expect("trace lock");
        }
    }

    /// Ends the trace when the leader is dropped without having ended it (an error, or a
    /// panic): a follower never waits for a leader that is gone.
    pub(crate) fn guard(self: &Arc<Self>) -> EndGuard {
        EndGuard(self.clone())
    }
}

/// How many answers a leader keeps before handing them over: each handing over wakes the
/// followers, and waking them per answer cost more than comparing.
const BATCH: usize = 256;

/// How long answers recorded before a wait may stay with the leader (see
/// [`Recorder::waiting`]): well under a round trip to the index.
const HAND_OVER_AFTER: Duration = Duration::from_millis(2);

/// The leader's side: writes each answer once, in batches.
pub(crate) struct Recorder {
    trace: Arc<Trace>,
    pending: Rc<RefCell<Vec<Fact>>>,
    /// When answers were last handed over.
    handed: Cell<Instant>,
    asked: RefCell<HashSet<(Pkg, SolverVersion)>>,
}

impl Recorder {
    pub(crate) fn new(trace: Arc<Trace>) -> Self {
        Self {
            trace,
            pending: Rc::default(),
            handed: Cell::new(Instant::now()),
            asked: RefCell::default(),
        }
    }

    pub(crate) fn fact(&self, fact: Fact) {
        record(&self.pending, &self.trace, fact);
    }

    /// Hands what is recorded to the followers before the leader waits for an answer, so
    /// that they work meanwhile; unless little is recorded and the last handing over was
    /// just now: offline, where every answer is on disk, handing over at each of the
    /// leader's waits woke the followers so often that they cost as much as a solve.
    pub(crate) fn waiting(&self) {
        let handed = self.handed.get();
        if self.pending.borrow().len() >= BATCH / 8 || handed.elapsed() >= HAND_OVER_AFTER {
            self.flush();
        }
    }

    /// Hands what is recorded to the followers.
    pub(crate) fn flush(&self) {
        let facts = std::mem::take(&mut *self.pending.borrow_mut());
        if !facts.is_empty() {
            self.trace.push(facts);
            self.handed.set(Instant::now());
        }
    }

    /// Records a release's dependencies the first time the solve reads them.
    pub(crate) fn dependencies(&self, package: &Pkg, version: &SolverVersion, deps: &RawDeps) {
        if self
            .asked
            .borrow_mut()
            .insert((package.clone(), version.clone()))
        {
            self.fact(Fact::Dependencies {
                package: package.clone(),
                version: version.clone(),
                deps: deps.clone(),
            });
        }
    }

    /// What a candidate list of `name` calls as it works out each index release (see
    /// [`crate::candidates::Candidates::watch`]).
    pub(crate) fn releases_of(&self, name: &PackageName) -> crate::candidates::ReleaseWatch {
        let (pending, trace, name) = (self.pending.clone(), self.trace.clone(), name.clone());
        Box::new(move |at, version| {
            let fact = Fact::Release {
                name: name.clone(),
                at,
                version: version.cloned(),
            };
            record(&pending, &trace, fact);
        })
    }

    /// Ends the trace with the leader's solve.
    pub(crate) fn solved(&self, solved: Solved) {
        self.solved_as(Arc::new(solved));
    }

    /// [`Self::solved`] with a solve that is shared already.
    pub(crate) fn solved_as(&self, solved: Arc<Solved>) {
        self.flush();
        self.trace.end(End::Solved(solved));
    }
}

fn record(pending: &RefCell<Vec<Fact>>, trace: &Trace, fact: Fact) {
    let mut pending = pending.borrow_mut();
    pending.push(fact);
    if pending.len() >= BATCH {
        trace.push(pending.drain(..));
    }
}

pub(crate) struct EndGuard(Arc<Trace>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0.end(End::Failed);
    }
}

/// How a follower answers the leader's questions.
pub(crate) trait Answers {
    /// Whether this target's answer to what `fact` asked is `fact`'s.
    fn agrees(&self, fact: &Fact) -> Result<bool, ProviderError>;
}

/// How following a leader ended.
pub(crate) enum Followed {
    /// Every answer agreed: the leader's solve is this target's.
    Solved(Arc<Solved>),
    /// This answer of the leader's differs from this target's.
    Differs(Arc<Fact>),
    /// The leader failed, before or after the answers that were compared.
    LeaderFailed,
}

/// Follows a leader's trace until every answer agreed or one did not; `waiting` is held
/// while the follower waits for the leader (a timeline's wait).
pub(crate) fn follow<W>(
    answers: &impl Answers,
    trace: &Trace,
    waiting: impl Fn() -> W,
) -> Result<Followed, ProviderError> {
    let mut read = 0;
    loop {
        match trace.next(read, &waiting) {
            Next::Facts(facts) => {
                for fact in &facts {
                    if !answers.agrees(fact)? {
                        return Ok(Followed::Differs(fact.clone()));
                    }
                }
                read += facts.len();
            }
            Next::End(End::Solved(solved)) => return Ok(Followed::Solved(solved)),
            Next::End(End::Failed) => return Ok(Followed::LeaderFailed),
        }
    }
}

impl std::fmt::Display for Fact {
    /// What was asked, for the timeline.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.question().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// Answers releases from a table, noting which it was asked about.
    struct Table(Vec<(usize, bool)>, Mutex<Vec<usize>>);

    impl Answers for Table {
        fn agrees(&self, fact: &Fact) -> Result<bool, ProviderError> {
            let Fact::Release { at, .. } = fact else {
                unreachable!("only releases are recorded here")
            };
            self.1.lock().unwrap().push(*at);
            Ok(self.0.iter().any(|(a, ok)| a == at && *ok))
        }
    }

    fn release(recorder: &Recorder, at: usize) {
        recorder.releases_of(&PackageName::from_str("django").unwrap())(at, None);
    }

    fn solved(solution: Vec<(Pkg, SolverVersion)>) -> Solved {
        Solved {
            solution,
            prereleases_only: Vec::new(),
        }
    }

    #[test]
    fn a_follower_reads_what_is_handed_over_and_stops_at_the_first_difference() {
        let trace = Arc::new(Trace::default());
        let table = Table(vec![(0, true), (1, false), (2, true)], Mutex::default());
        let asked = std::thread::scope(|s| {
            let follower =
                s.spawn(|| matches!(follow(&table, &trace, || ()).unwrap(), Followed::Solved(_)));
            let recorder = Recorder::new(trace.clone());
            release(&recorder, 0);
            recorder.flush();
            std::thread::sleep(std::time::Duration::from_millis(20));
            release(&recorder, 1);
            release(&recorder, 2);
            recorder.solved(solved(Vec::new()));
            assert!(
                !follower.join().unwrap(),
                "a difference means a solve of its own"
            );
            table.1.lock().unwrap().clone()
        });
        assert_eq!(asked, vec![0, 1], "nothing after the difference is asked");
    }

    #[test]
    fn a_follower_takes_the_solve_only_when_every_answer_agreed() {
        let trace = Arc::new(Trace::default());
        let recorder = Recorder::new(trace.clone());
        release(&recorder, 0);
        release(&recorder, 2);
        recorder.solved(solved(vec![(Pkg::Root, SolverVersion::root())]));
        let table = Table(vec![(0, true), (2, true)], Mutex::default());
        let Followed::Solved(taken) = follow(&table, &trace, || ()).unwrap() else {
            panic!("every answer agreed");
        };
        assert_eq!(taken.solution.len(), 1);
        assert_eq!(
            *table.1.lock().unwrap(),
            vec![0, 2],
            "the answers recorded before the end"
        );
    }

    #[test]
    fn a_leader_gone_without_an_end_releases_its_followers() {
        let trace = Arc::new(Trace::default());
        let table = Table(vec![(0, true)], Mutex::default());
        std::thread::scope(|s| {
            let follower = s.spawn(|| {
                matches!(
                    follow(&table, &trace, || ()).unwrap(),
                    Followed::LeaderFailed
                )
            });
            {
                let _guard = trace.guard();
                let recorder = Recorder::new(trace.clone());
                release(&recorder, 0);
                recorder.flush();
            }
            assert!(follower.join().unwrap());
        });
        // What a leader records after its end is not read.
        let recorder = Recorder::new(trace.clone());
        release(&recorder, 1);
        recorder.flush();
        assert!(matches!(
            follow(&table, &trace, || ()).unwrap(),
            Followed::LeaderFailed
        ));
        assert_eq!(*table.1.lock().unwrap(), vec![0, 0]);
    }
}
