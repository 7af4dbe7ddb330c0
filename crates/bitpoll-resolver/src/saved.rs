//! Solves kept from one run to the next.
//!
//! A target's solve is a function of the answers it reads (see `replay`): a run whose answers
//! are all the same as an earlier run's makes the same solve, restarts and all. So a leading
//! target keeps, after solving, what it asked and a digest of each answer, and the versions
//! it ended with ([`SolveStore`]). The next run with the same inputs and program asks the
//! same questions in the same order, compares each answer's digest with the kept one, and
//! when every one agrees takes the kept versions without solving. At the first answer that
//! differs it solves as if nothing had been kept: the questions it asked up to there are the
//! first ones its own solve asks (the solve is the same until it reads an answer that
//! differs), and the answers are in memory by then. The lock is the same either way; what
//! this saves is the solve itself (an offline run of sentry's set restarts its solve twelve
//! times per target). Outside `--offline` every page the kept solve read is asked for before
//! comparing starts: when an answer differs early, those of them the new solve does not read
//! are requests a run that keeps nothing would not make, decided by what was kept, never by
//! timing.
//!
//! A digest is of an unambiguous encoding of the answer (every string ends in a byte UTF-8
//! never holds, a version is its parts), so two answers that differ in anything the solve
//! compares give different digests; two that are equal but written differently (`1.0`,
//! `1.0.0`) may not, which only costs a solve.

use std::fmt::Write as _;
use std::str::FromStr;

use pep440_rs::Version;
use pep508_rs::{ExtraName, PackageName};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub use bitpoll_source::SolveStore;

use crate::replay::{Fact, Solved};
use crate::universe::Pkg;
use crate::version::{Origin, Range, SolverVersion};

/// Kept solves, and what else the caller knows a solve depends on besides what the resolver
/// sees (the program itself, the policy): `context` goes into every key. `slot` says whose
/// solves they are (a project's lock, say): each target of it has one slot.
#[derive(Debug, Clone)]
pub struct SavedSolves {
    pub store: std::sync::Arc<dyn SolveStore>,
    pub slot: String,
    pub context: String,
}

/// Changes whenever what is kept, or what a digest covers, changes.
const FORMAT: &str = "bitpoll-lock saved solve 2";

/// What a solve asked, without the answer: enough to ask again.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Question {
    Declared,
    Listed {
        name: PackageName,
        nixpkgs_only: bool,
    },
    Release {
        name: PackageName,
        at: usize,
    },
    Dependencies {
        package: Pkg,
        version: SolverVersion,
    },
}

impl std::fmt::Display for Question {
    /// What was asked, for the timeline (as [`Fact`]'s).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Question::Declared => f.write_str("the top-level requirements that apply"),
            Question::Listed { name, .. } => write!(f, "the candidates of {name}"),
            Question::Release { name, at } => write!(f, "release #{at} of {name}"),
            Question::Dependencies { package, version } => {
                write!(f, "the dependencies of {package} {}", version.version)
            }
        }
    }
}

impl Fact {
    pub(crate) fn question(&self) -> Question {
        match self {
            Fact::Declared(_) => Question::Declared,
            Fact::Listed {
                name, nixpkgs_only, ..
            } => Question::Listed {
                name: name.clone(),
                nixpkgs_only: *nixpkgs_only,
            },
            Fact::Release { name, at, .. } => Question::Release {
                name: name.clone(),
                at: *at,
            },
            Fact::Dependencies {
                package, version, ..
            } => Question::Dependencies {
                package: package.clone(),
                version: version.clone(),
            },
        }
    }

    /// The digest of the whole answer, question included.
    pub(crate) fn digest(&self) -> [u8; 32] {
        let mut d = Digester(Sha256::new());
        match self {
            Fact::Declared(names) => {
                d.tag(0);
                d.len(names.len());
                names.iter().for_each(|n| d.text(n));
            }
            Fact::Listed {
                name,
                nixpkgs_only,
                outline,
                prereleases,
                pinned,
            } => {
                d.tag(1);
                d.text(name);
                d.flag(*nixpkgs_only);
                outline.digest_into(&mut d);
                d.flag(*prereleases);
                d.len(pinned.len());
                pinned.iter().for_each(|v| d.version(v));
            }
            Fact::Release { name, at, version } => {
                d.tag(2);
                d.text(name);
                d.len(*at);
                d.flag(version.is_some());
                version.iter().for_each(|v| d.solver_version(v));
            }
            Fact::Dependencies {
                package,
                version,
                deps,
            } => {
                d.tag(3);
                d.pkg(package);
                d.solver_version(version);
                match deps {
                    Ok(edges) => {
                        d.tag(0);
                        d.len(edges.len());
                        for (pkg, range) in edges {
                            d.pkg(pkg);
                            d.range(range);
                        }
                    }
                    Err(reason) => {
                        d.tag(1);
                        d.text(reason);
                    }
                }
            }
        }
        d.0.finalize().into()
    }
}

/// Feeds an answer to sha256 in a form no two different answers share.
pub(crate) struct Digester(Sha256);

impl Digester {
    pub(crate) fn tag(&mut self, tag: u8) {
        self.0.update([tag]);
    }

    pub(crate) fn flag(&mut self, flag: bool) {
        self.tag(u8::from(flag));
    }

    pub(crate) fn len(&mut self, n: usize) {
        self.0.update((n as u64).to_le_bytes());
    }

    /// Anything displayed, then a byte no UTF-8 text holds: no allocation, and no text can
    /// run into the next.
    pub(crate) fn text(&mut self, shown: &impl std::fmt::Display) {
        let _ = write!(self, "{shown}");
        self.0.update([0xff]);
    }

    fn number(&mut self, n: u64) {
        self.0.update(n.to_le_bytes());
    }

    fn optional(&mut self, n: Option<u64>) {
        self.flag(n.is_some());
        self.number(n.unwrap_or_default());
    }

    /// Every part a version compares by, the solver's own `min` and `max` included, which
    /// its text does not show (`<2` is below `2min0`, `!=2` excludes `2` itself): formatting
    /// it would also take several allocations per version, and pages list thousands.
    pub(crate) fn version(&mut self, v: &Version) {
        self.number(v.epoch());
        self.len(v.release().len());
        v.release().iter().for_each(|&n| self.number(n));
        match v.pre() {
            None => self.tag(0),
            Some(pre) => {
                self.tag(match pre.kind {
                    pep440_rs::PrereleaseKind::Alpha => 1,
                    pep440_rs::PrereleaseKind::Beta => 2,
                    pep440_rs::PrereleaseKind::Rc => 3,
                });
                self.number(pre.number);
            }
        }
        for part in [v.post(), v.dev(), v.min(), v.max()] {
            self.optional(part);
        }
        self.len(v.local().len());
        for segment in v.local() {
            match segment {
                pep440_rs::LocalSegment::String(text) => {
                    self.tag(0);
                    self.text(text);
                }
                pep440_rs::LocalSegment::Number(n) => {
                    self.tag(1);
                    self.number(*n);
                }
            }
        }
    }

    pub(crate) fn solver_version(&mut self, v: &SolverVersion) {
        self.version(&v.version);
        self.tag(v.source.rank());
        self.flag(v.is_bound_after_locals());
    }

    fn pkg(&mut self, pkg: &Pkg) {
        match pkg {
            Pkg::Root => self.tag(0),
            Pkg::Python(name) => {
                self.tag(1);
                self.text(name);
            }
            Pkg::Extra(name, extra) => {
                self.tag(2);
                self.text(name);
                self.text(extra);
            }
        }
    }

    fn range(&mut self, range: &Range) {
        let segments: Vec<_> = range.0.iter().collect();
        self.len(segments.len());
        for (lo, hi) in segments {
            for bound in [lo, hi] {
                match bound {
                    std::ops::Bound::Included(v) => {
                        self.tag(0);
                        self.solver_version(v);
                    }
                    std::ops::Bound::Excluded(v) => {
                        self.tag(1);
                        self.solver_version(v);
                    }
                    std::ops::Bound::Unbounded => self.tag(2),
                }
            }
        }
    }
}

impl std::fmt::Write for Digester {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

/// The slot a target's solve is kept in.
pub(crate) fn slot(saved: &SavedSolves, target: &bitpoll_platform::Target) -> [u8; 32] {
    let mut d = Digester(Sha256::new());
    d.text(&FORMAT);
    d.text(&saved.slot);
    d.text(&target.name);
    d.0.finalize().into()
}

/// The key a target's solve is kept under: everything its solve depends on that its answers
/// do not show (the requirements, constraints and preferences are also answers, but only in
/// part: `required` reads the requirements themselves).
pub(crate) fn key(
    saved: &SavedSolves,
    target: &bitpoll_platform::Target,
    request: &crate::Request<'_>,
) -> [u8; 32] {
    let mut d = Digester(Sha256::new());
    d.text(&FORMAT);
    d.text(&saved.context);
    d.text(&target.name);
    d.text(&target.python_full_version);
    for list in [request.requirements, request.constraints] {
        d.len(list.len());
        list.iter().for_each(|r| d.text(r));
    }
    let mut preferences: Vec<_> = request.preferences.iter().collect();
    preferences.sort_by(|a, b| a.0.cmp(b.0));
    d.len(preferences.len());
    for (name, (version, source)) in preferences {
        d.text(name);
        d.version(version);
        d.text(&format_args!("{source:?}"));
    }
    let options = request.options;
    d.text(&format_args!(
        "{:?} {:?} {:?} {} {}",
        options.prerelease,
        options.no_binary,
        options.no_build,
        matches!(options.builds, crate::Builds::Allowed(_)),
        request.nixpkgs.is_some()
    ));
    d.0.finalize().into()
}

/// A solve as kept: each question with its answer's digest, in the order they were first
/// read, and the versions the solve ended with.
#[derive(Debug)]
pub(crate) struct Kept {
    pub(crate) asked: Vec<(Question, [u8; 32])>,
    pub(crate) solved: Solved,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    asked: Vec<(StoredQuestion, [u8; 32])>,
    solution: Vec<(StoredPkg, StoredVersion)>,
    prereleases_only: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
enum StoredQuestion {
    Declared,
    Listed {
        name: String,
        nixpkgs_only: bool,
    },
    Release {
        name: String,
        at: u64,
    },
    Dependencies {
        package: StoredPkg,
        version: StoredVersion,
    },
}

#[derive(Serialize, Deserialize)]
enum StoredPkg {
    Root,
    Python(String),
    Extra(String, String),
}

/// A candidate's version (never a range bound, so never one past local versions).
#[derive(Serialize, Deserialize)]
struct StoredVersion {
    version: String,
    origin: u8,
}

impl Kept {
    /// What a leader read and ended with, to keep; `None` when a version cannot be kept
    /// (only range bounds are past local versions, never an answer's version).
    pub(crate) fn encode(facts: &[std::sync::Arc<Fact>], solved: &Solved) -> Option<Vec<u8>> {
        let asked = facts
            .iter()
            .map(|f| Some((StoredQuestion::from(&f.question())?, f.digest())))
            .collect::<Option<_>>()?;
        let solution = solved
            .solution
            .iter()
            .map(|(p, v)| Some((StoredPkg::from(p), StoredVersion::from(v)?)))
            .collect::<Option<_>>()?;
        let stored = Stored {
            asked,
            solution,
            prereleases_only: solved
                .prereleases_only
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        };
        postcard::to_stdvec(&stored).ok()
    }

    /// A kept solve, if `bytes` are one whose every name and version reads and whose every
    /// chosen release had its dependencies asked (which taking it relies on).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Kept> {
        let stored: Stored = postcard::from_bytes(bytes).ok()?;
        let asked: Vec<(Question, [u8; 32])> = stored
            .asked
            .into_iter()
            .map(|(q, digest)| Some((q.read()?, digest)))
            .collect::<Option<_>>()?;
        let solution: Vec<(Pkg, SolverVersion)> = stored
            .solution
            .into_iter()
            .map(|(p, v)| Some((p.read()?, v.read()?)))
            .collect::<Option<_>>()?;
        let deps_asked: std::collections::HashSet<(&Pkg, &SolverVersion)> = asked
            .iter()
            .filter_map(|(q, _)| match q {
                Question::Dependencies { package, version } => Some((package, version)),
                _ => None,
            })
            .collect();
        if !solution.iter().all(|(p, v)| deps_asked.contains(&(p, v))) {
            return None;
        }
        let prereleases_only = stored
            .prereleases_only
            .into_iter()
            .map(|(n, v)| Some((PackageName::from_str(&n).ok()?, Version::from_str(&v).ok()?)))
            .collect::<Option<_>>()?;
        Some(Kept {
            asked,
            solved: Solved {
                solution,
                prereleases_only,
            },
        })
    }
}

impl StoredQuestion {
    fn from(q: &Question) -> Option<Self> {
        Some(match q {
            Question::Declared => StoredQuestion::Declared,
            Question::Listed { name, nixpkgs_only } => StoredQuestion::Listed {
                name: name.to_string(),
                nixpkgs_only: *nixpkgs_only,
            },
            Question::Release { name, at } => StoredQuestion::Release {
                name: name.to_string(),
                at: *at as u64,
            },
            Question::Dependencies { package, version } => StoredQuestion::Dependencies {
                package: StoredPkg::from(package),
                version: StoredVersion::from(version)?,
            },
        })
    }

    fn read(self) -> Option<Question> {
        Some(match self {
            StoredQuestion::Declared => Question::Declared,
            StoredQuestion::Listed { name, nixpkgs_only } => Question::Listed {
                name: PackageName::from_str(&name).ok()?,
                nixpkgs_only,
            },
            StoredQuestion::Release { name, at } => Question::Release {
                name: PackageName::from_str(&name).ok()?,
                at: usize::try_from(at).ok()?,
            },
            StoredQuestion::Dependencies { package, version } => Question::Dependencies {
                package: package.read()?,
                version: version.read()?,
            },
        })
    }
}

impl StoredPkg {
    fn from(pkg: &Pkg) -> Self {
        match pkg {
            Pkg::Root => StoredPkg::Root,
            Pkg::Python(name) => StoredPkg::Python(name.to_string()),
            Pkg::Extra(name, extra) => StoredPkg::Extra(name.to_string(), extra.to_string()),
        }
    }

    fn read(self) -> Option<Pkg> {
        Some(match self {
            StoredPkg::Root => Pkg::Root,
            StoredPkg::Python(name) => Pkg::Python(PackageName::from_str(&name).ok()?),
            StoredPkg::Extra(name, extra) => Pkg::Extra(
                PackageName::from_str(&name).ok()?,
                ExtraName::from_str(&extra).ok()?,
            ),
        })
    }
}

impl StoredVersion {
    fn from(v: &SolverVersion) -> Option<Self> {
        if v.is_bound_after_locals() {
            return None;
        }
        Some(StoredVersion {
            version: v.version.to_string(),
            origin: v.source.rank(),
        })
    }

    fn read(self) -> Option<SolverVersion> {
        let origin = match self.origin {
            0 => return Some(SolverVersion::root()).filter(|_| self.version == "0"),
            1 => Origin::INDEX,
            2 => Origin::NIXPKGS,
            _ => return None,
        };
        Some(SolverVersion::new(
            Version::from_str(&self.version).ok()?,
            origin,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> PackageName {
        PackageName::from_str(s).unwrap()
    }

    fn index(v: &str) -> SolverVersion {
        SolverVersion::new(Version::from_str(v).unwrap(), Origin::INDEX)
    }

    fn deps(edges: RawEdges) -> Fact {
        Fact::Dependencies {
            package: Pkg::Python(name("app")),
            version: index("1.0"),
            deps: edges,
        }
    }

    type RawEdges = crate::replay::RawDeps;

    #[test]
    fn answers_that_differ_in_anything_the_solve_compares_differ_in_digest() {
        let lib = Pkg::Python(name("lib"));
        let at_least = |v: &str| Range(pubgrub::Ranges::higher_than(index(v)));
        let below = |v: SolverVersion| Range(pubgrub::Ranges::strictly_lower_than(v));
        let answers = [
            deps(Ok(vec![(lib.clone(), at_least("1"))])),
            deps(Ok(vec![(lib.clone(), at_least("2"))])),
            deps(Ok(vec![(
                Pkg::Extra(name("lib"), ExtraName::from_str("x").unwrap()),
                at_least("1"),
            )])),
            deps(Ok(vec![])),
            deps(Err("it requires Python >=4".into())),
            deps(Err("it requires Python >=5".into())),
            Fact::Release {
                name: name("lib"),
                at: 0,
                version: Some(index("1.0")),
            },
            Fact::Release {
                name: name("lib"),
                at: 1,
                version: Some(index("1.0")),
            },
            Fact::Release {
                name: name("lib"),
                at: 1,
                version: None,
            },
            Fact::Release {
                name: name("lib"),
                at: 1,
                version: Some(SolverVersion::new(
                    Version::from_str("1.0").unwrap(),
                    Origin::NIXPKGS,
                )),
            },
            // A text that ran into the next field would make these two alike.
            Fact::Declared(vec![name("ab"), name("c")]),
            Fact::Declared(vec![name("a"), name("bc")]),
            // `<2` stops below `2min0`, which reads as `2`: the text alone would make these
            // two alike.
            deps(Ok(vec![(lib.clone(), below(index("2")))])),
            deps(Ok(vec![(
                lib.clone(),
                below(SolverVersion::new(
                    Version::from_str("2").unwrap().with_min(Some(0)),
                    Origin::INDEX,
                )),
            )])),
        ];
        for (i, a) in answers.iter().enumerate() {
            for (j, b) in answers.iter().enumerate() {
                assert_eq!(i == j, a.digest() == b.digest(), "{a:?} and {b:?}");
            }
        }
        // The same answer built anew (as the next run builds it) has the same digest.
        let again = deps(Ok(vec![(lib.clone(), at_least("1"))]));
        assert_eq!(answers[0].digest(), again.digest());
    }

    #[test]
    fn a_kept_solve_reads_back_as_written_and_damage_reads_as_none() {
        let facts: Vec<std::sync::Arc<Fact>> = vec![
            Fact::Declared(vec![name("app")]).into(),
            Fact::Release {
                name: name("app"),
                at: 0,
                version: Some(index("1.0")),
            }
            .into(),
            Fact::Dependencies {
                package: Pkg::Root,
                version: SolverVersion::root(),
                deps: Ok(vec![]),
            }
            .into(),
            deps(Ok(vec![])).into(),
        ];
        let solved = Solved {
            solution: vec![
                (Pkg::Root, SolverVersion::root()),
                (Pkg::Python(name("app")), index("1.0")),
            ],
            prereleases_only: vec![(name("pre"), Version::from_str("2.0a1").unwrap())],
        };
        let bytes = Kept::encode(&facts, &solved).unwrap();
        let kept = Kept::decode(&bytes).unwrap();
        let expected: Vec<_> = facts.iter().map(|f| (f.question(), f.digest())).collect();
        assert_eq!(kept.asked, expected);
        assert_eq!(kept.solved.solution, solved.solution);
        assert_eq!(kept.solved.prereleases_only, solved.prereleases_only);

        // A chosen release whose dependencies were never asked cannot be taken.
        let unasked = Solved {
            solution: vec![(Pkg::Python(name("other")), index("1.0"))],
            prereleases_only: vec![],
        };
        assert!(Kept::decode(&Kept::encode(&facts, &unasked).unwrap()).is_none());
        assert!(Kept::decode(&bytes[..bytes.len() - 1]).is_none());
        assert!(Kept::decode(b"").is_none());
    }
}
