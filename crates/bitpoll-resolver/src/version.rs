//! Versions and version sets as the solver sees them.
//!
//! The solver must tell nixpkgs' `caldav 3.3.0` apart from the index's `caldav 3.3.0`: a
//! nixpkgs package pins its dependencies to nixpkgs builds (its closure comes with it), and a PyPI
//! build of the same version would be a second copy of the module in one environment. So a
//! solver version is a PEP 440 version plus its source. Every PEP 440 version becomes two
//! adjacent points, `(v, Index) < (v, Nixpkgs)`; a specifier range covers both points, and
//! "this exact nixpkgs build" is the singleton `(v, Nixpkgs)`.
//!
//! PEP 440 lets `==1.2.3`, `!=1.2.3` and `<=1.2.3` match local versions such as `1.2.3+cpu`
//! when the specifier has no local label itself. Local versions sort above their public
//! version, so such a range ends at a bound no real version can be: "above every local
//! version of 1.2.3" (see [`SolverVersion::after_locals`]).

use std::cmp::Ordering;
use std::fmt;
use std::ops::Bound;

use pep440_rs::{Operator, Version, VersionSpecifier, VersionSpecifiers};
use pubgrub::{Ranges, VersionSet};

pub use bitpoll_lockfile::Source;

/// Where a solver version comes from: one of the lock's sources, or the root the solve
/// starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The virtual root; sorts first so it never falls inside a real range.
    Root,
    Package(Source),
}

impl Origin {
    pub const INDEX: Origin = Origin::Package(Source::Index);
    pub const NIXPKGS: Origin = Origin::Package(Source::Nixpkgs);

    /// `(v, Index) < (v, Nixpkgs)`, whatever order the lock writes sources in; also how a
    /// kept solve writes an origin (see `saved`), so the order is part of that format.
    pub(crate) fn rank(self) -> u8 {
        match self {
            Origin::Root => 0,
            Origin::Package(Source::Index) => 1,
            Origin::Package(Source::Nixpkgs) => 2,
        }
    }
}

impl Ord for Origin {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl PartialOrd for Origin {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SolverVersion {
    pub version: Version,
    pub source: Origin,
    /// A range bound, never a candidate: just above every build of every local version of
    /// `version` (which has no local label itself).
    after_locals: bool,
}

impl SolverVersion {
    pub fn new(version: Version, source: Origin) -> Self {
        Self {
            version,
            source,
            after_locals: false,
        }
    }

    pub fn root() -> Self {
        Self::new(Version::new([0]), Origin::Root)
    }

    /// Whether this is a range bound past local versions (see [`Self::after_locals`]).
    pub(crate) fn is_bound_after_locals(&self) -> bool {
        self.after_locals
    }

    /// The bound just above `version` and all its local versions, from either source.
    fn after_locals(version: Version) -> Self {
        Self {
            version: version.without_local(),
            source: Origin::NIXPKGS,
            after_locals: true,
        }
    }
}

impl Ord for SolverVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        if !self.after_locals && !other.after_locals {
            return (&self.version, self.source).cmp(&(&other.version, other.source));
        }
        // Only bounds take this path, so the copies it makes stay off the hot path of
        // comparing candidates.
        let public = |v: &SolverVersion| v.version.clone().without_local();
        public(self).cmp(&public(other)).then_with(|| {
            match (self.after_locals, other.after_locals) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => unreachable!("handled above"),
            }
        })
    }
}

impl PartialOrd for SolverVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SolverVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source {
            Origin::Root => Ok(()),
            Origin::Package(Source::Index) => write!(f, "{}", self.version),
            Origin::Package(Source::Nixpkgs) => write!(f, "{} (nixpkgs)", self.version),
        }
    }
}

/// A set of solver versions with a Display that reads like PEP 440 specifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range(pub Ranges<SolverVersion>);

impl Range {
    /// The solver range for PEP 440 specifiers: both sources of every matching version.
    pub fn from_pep440(ranges: &Ranges<Version>) -> Self {
        let mut out = Ranges::empty();
        for (lo, hi) in ranges.iter() {
            let lo = match lo {
                Bound::Included(v) => Bound::Included(SolverVersion::new(v.clone(), Origin::INDEX)),
                Bound::Excluded(v) => {
                    Bound::Excluded(SolverVersion::new(v.clone(), Origin::NIXPKGS))
                }
                Bound::Unbounded => Bound::Excluded(SolverVersion::root()),
            };
            let hi = match hi {
                Bound::Included(v) => {
                    Bound::Included(SolverVersion::new(v.clone(), Origin::NIXPKGS))
                }
                Bound::Excluded(v) => Bound::Excluded(SolverVersion::new(v.clone(), Origin::INDEX)),
                Bound::Unbounded => Bound::Unbounded,
            };
            out = out.union(&Ranges::from_range_bounds((lo, hi)));
        }
        Range(out)
    }

    /// The solver range for PEP 440 specifiers, with local versions matched the PEP 440 way.
    pub fn from_specifiers(specifiers: &VersionSpecifiers) -> Self {
        let mut out = Range::any();
        for spec in specifiers.iter() {
            out = out.intersection(&Self::from_specifier(spec));
        }
        out
    }

    fn from_specifier(spec: &VersionSpecifier) -> Self {
        let v = spec.version();
        let public = v.local().is_empty();
        let from = || Bound::Included(SolverVersion::new(v.clone(), Origin::INDEX));
        let through_locals = || Bound::Included(SolverVersion::after_locals(v.clone()));
        let bounded = |lo, hi| Range(Ranges::from_range_bounds((lo, hi)));
        match spec.operator() {
            Operator::Equal if public => bounded(from(), through_locals()),
            Operator::NotEqual if public => {
                Range::any().intersection(&bounded(from(), through_locals()).complement())
            }
            Operator::LessThanEqual if public => {
                bounded(Bound::Excluded(SolverVersion::root()), through_locals())
            }
            _ => Self::from_pep440(&Ranges::from(spec.clone())),
        }
    }

    /// Every real version (what an unconstrained requirement allows).
    pub fn any() -> Self {
        Range(Ranges::strictly_higher_than(SolverVersion::root()))
    }

    pub fn exact(v: SolverVersion) -> Self {
        Range(Ranges::singleton(v))
    }

    pub fn is_singleton(&self) -> bool {
        self.0.as_singleton().is_some()
    }
}

impl VersionSet for Range {
    type V = SolverVersion;

    fn empty() -> Self {
        Range(Ranges::empty())
    }
    fn singleton(v: Self::V) -> Self {
        Range(Ranges::singleton(v))
    }
    fn complement(&self) -> Self {
        Range(self.0.complement())
    }
    fn intersection(&self, other: &Self) -> Self {
        Range(self.0.intersection(&other.0))
    }
    fn contains(&self, v: &Self::V) -> bool {
        self.0.contains(v)
    }
    fn full() -> Self {
        Range(Ranges::full())
    }
    fn union(&self, other: &Self) -> Self {
        Range(self.0.union(&other.0))
    }
    fn is_disjoint(&self, other: &Self) -> bool {
        self.0.is_disjoint(&other.0)
    }
    fn subset_of(&self, other: &Self) -> bool {
        self.0.subset_of(&other.0)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(no version)");
        }
        // "Anything but this one build" reads better than two half-open ranges.
        let complement = Range(self.0.complement()).0.intersection(&Range::any().0);
        if let Some(v) = complement.as_singleton() {
            let from = if v.source == Origin::NIXPKGS {
                "nixpkgs"
            } else {
                "the index"
            };
            return write!(f, "other than {} from {from}", v.version);
        }
        let mut parts = Vec::new();
        for (lo, hi) in self.0.iter() {
            parts.push(segment(lo, hi));
        }
        let text = parts
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" or ");
        f.write_str(&text)
    }
}

fn segment(lo: &Bound<SolverVersion>, hi: &Bound<SolverVersion>) -> String {
    use Bound::*;
    if let (Included(a), Included(b)) = (lo, hi) {
        if a == b {
            return match a.source {
                Origin::Root => String::new(),
                Origin::Package(Source::Index) => format!("=={} (index)", a.version),
                Origin::Package(Source::Nixpkgs) => format!("=={} (nixpkgs)", a.version),
            };
        }
        if a.version == b.version {
            return format!("=={}", a.version);
        }
    }
    let low = match lo {
        Unbounded => None,
        Excluded(v) if v.source == Origin::Root => None,
        Included(v) if v.source == Origin::Root => None,
        Included(v) if v.source == Origin::INDEX => Some(format!(">={}", v.version)),
        Excluded(v) if v.source == Origin::NIXPKGS => Some(format!(">{}", v.version)),
        // Half of a version's two points: the other source's build of that version.
        Included(v) => Some(format!(">={} (nixpkgs build of {0} only)", v.version)),
        Excluded(v) => Some(format!(">={} (not the index build of {0})", v.version)),
    };
    let high = match hi {
        Unbounded => None,
        Excluded(v) if v.source == Origin::INDEX => Some(format!("<{}", v.version)),
        Included(v) if v.source == Origin::NIXPKGS => Some(format!("<={}", v.version)),
        Included(v) => Some(format!("<={} (index build of {0} only)", v.version)),
        Excluded(v) => Some(format!("<={} (not the nixpkgs build of {0})", v.version)),
    };
    match (low, high) {
        (None, None) => "*".to_string(),
        (Some(l), None) => l,
        (None, Some(h)) => h,
        (Some(l), Some(h)) => format!("{l}, {h}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn range(spec: &str) -> Range {
        Range::from_specifiers(&VersionSpecifiers::from_str(spec).unwrap())
    }

    fn v(s: &str, source: Origin) -> SolverVersion {
        SolverVersion::new(Version::from_str(s).unwrap(), source)
    }

    #[test]
    fn a_specifier_covers_both_builds_of_a_version() {
        let r = range(">=1.0, <2.0");
        for src in [Origin::INDEX, Origin::NIXPKGS] {
            assert!(r.contains(&v("1.0", src)));
            assert!(r.contains(&v("1.5", src)));
            assert!(!r.contains(&v("2.0", src)));
            assert!(!r.contains(&v("0.9", src)));
        }
        let r = range(">1.0, <=2.0");
        for src in [Origin::INDEX, Origin::NIXPKGS] {
            assert!(!r.contains(&v("1.0", src)));
            assert!(r.contains(&v("2.0", src)));
        }
        assert!(!Range::any().contains(&SolverVersion::root()));
    }

    #[test]
    fn a_nixpkgs_pin_excludes_the_index_build() {
        let pin = Range::exact(v("3.3.0", Origin::NIXPKGS));
        let wanted = range(">=3").intersection(&pin);
        assert!(wanted.contains(&v("3.3.0", Origin::NIXPKGS)));
        assert!(!wanted.contains(&v("3.3.0", Origin::INDEX)));
        assert_eq!(pin.to_string(), "==3.3.0 (nixpkgs)");
        assert_eq!(range(">=1.0, <2.0").to_string(), ">=1.0, <2.0");
        assert_eq!(Range::any().to_string(), "*");
    }

    #[test]
    fn public_specifiers_match_local_versions() {
        let local = v("1.2.3+foo", Origin::INDEX);
        assert!(range("==1.2.3").contains(&local));
        assert!(range("<=1.2.3").contains(&local));
        assert!(range(">=1.2.3").contains(&local));
        assert!(!range("!=1.2.3").contains(&local));
        assert!(!range("<1.2.3").contains(&local));
        assert!(!range(">1.2.3").contains(&local));
        assert!(range("==1.2.3+foo").contains(&local));
        assert!(!range("==1.2.3+bar").contains(&local));
        let next = v("1.2.3.post1", Origin::INDEX);
        assert!(!range("==1.2.3").contains(&next));
        assert!(!range("<=1.2.3").contains(&next));
        assert!(range("!=1.2.3").contains(&next));
        assert!(range("!=1.2.3").contains(&v("1.2.2+foo", Origin::NIXPKGS)));
        assert!(!range("!=1.2.3").contains(&SolverVersion::root()));
        assert_eq!(range("==1.2.3").to_string(), "==1.2.3");
        assert_eq!(range("<=1.2.3").to_string(), "<=1.2.3");
        assert_eq!(range("!=1.2.3").to_string(), "<1.2.3 or >1.2.3");
    }
}
