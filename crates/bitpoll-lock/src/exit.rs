//! Exit codes (ARCHITECTURE.md, "Constraints"): 0 success, 1 a failed check, 2 bad usage or input, 3 network
//! or index failure.

use bitpoll_client::ClientError;
use bitpoll_resolver::ResolveError;
use bitpoll_source::ErrorClass;

/// Marks an error as the user's input being wrong.
#[derive(Debug)]
pub struct BadInput(pub anyhow::Error);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&render(&self.0))
    }
}
impl std::error::Error for BadInput {}

pub fn bad_input(e: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(BadInput(e.into()))
}

pub fn code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.downcast_ref::<BadInput>().is_some() {
            return 2;
        }
        if let Some(e) = cause.downcast_ref::<ClientError>() {
            return if e.is_network() { 3 } else { 2 };
        }
        if let Some(e) = cause.downcast_ref::<ResolveError>() {
            return match e.class() {
                ErrorClass::BadInput => 2,
                ErrorClass::Unavailable => 3,
            };
        }
        if cause.downcast_ref::<bitpoll_merge::MergeError>().is_some() {
            return 3;
        }
        if let Some(e) = cause.downcast_ref::<bitpoll_export::ExportError>() {
            // The lock names files the index no longer answers for: the index moved.
            return match e {
                bitpoll_export::ExportError::Source(_) | bitpoll_export::ExportError::Gone(_) => 3,
                _ => 2,
            };
        }
        if cause
            .downcast_ref::<bitpoll_requirements::RequirementsError>()
            .is_some()
            || cause
                .downcast_ref::<bitpoll_policy::PolicyError>()
                .is_some()
            || cause
                .downcast_ref::<bitpoll_nixpkgs::IndexError>()
                .is_some()
            || cause
                .downcast_ref::<bitpoll_lockfile::LockError>()
                .is_some()
            || cause
                .downcast_ref::<bitpoll_platform::TargetError>()
                .is_some()
        {
            return 2;
        }
    }
    // Anything unexpected is treated as an environment failure, not the user's input.
    3
}

/// The error and its causes on one line, leaving out a cause whose text the message already
/// contains (our library errors name their source in their own message).
pub fn render(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}
