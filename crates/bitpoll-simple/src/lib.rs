//! The Python package index's project pages (PEP 503/691 simple API, JSON form): their data
//! model ([`ProjectPage`], [`DistFile`]) and a streaming parser that can drop wheels no target
//! can install as it reads ([`WheelFilter`]).
//!
//! It does no I/O: the index client feeds it bytes, tests and the in-memory package source
//! feed it fixtures. It must not learn where a page came from beyond the page's own URL
//! (which relative file URLs are resolved against), and it never prints a URL with its
//! credentials.

mod compact;
mod page;
mod time;

pub use crate::compact::COMPACT_FORMAT;
pub use crate::page::{
    is_simple_json, parse_project_page, DistFile, PageError, PageFiles, PageParser, ProjectPage,
    Sha256Digest, WheelFilter, WheelVerdict, SIMPLE_JSON_V1,
};
pub use crate::time::Timestamp;

use url::Url;

/// `url` with its user name replaced by `***` and its password removed, for messages.
pub fn redact_url(url: &Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    let mut copy = url.clone();
    // Both setters only fail for URLs that cannot have credentials at all.
    let _ = copy.set_password(None);
    let _ = copy.set_username("***");
    copy.to_string()
}
