//! What a lock target is, and what it can install.
//!
//! A target is one Nix system paired with the nixpkgs Python the lock is for. This crate
//! turns a target into the PEP 508 marker environment that requirement markers are evaluated
//! against, and into the ordered list of wheel tags that an interpreter on that system would
//! accept, so the resolver and the artifact selection agree on one definition of "installable".
//! It also parses distribution file names, which is where wheel tags and versions come from.
//!
//! It must not look at the machine it runs on: a target is described, never detected, so a
//! lock for aarch64-darwin made on x86_64-linux is the same lock.

mod filename;
mod tags;
mod target;

pub use filename::{DistFilename, FilenameError, SdistFilename, WheelFilename};
pub use tags::TagPriority;
pub use target::{parse_macos_version, Target, TargetError, DEFAULT_SYSTEMS, MACOS_DEFAULT};
