//! One way to open the index client for every command that talks to the index.

use std::path::PathBuf;

use bitpoll_client::{ClientOptions, IndexClient, IndexOrigin, IndexUrl};

/// Finds the index URL (DESIGN section 4) and returns default client options for it.
pub fn options(
    index_url: Option<&str>,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<(ClientOptions, IndexOrigin)> {
    let (url, origin): (IndexUrl, IndexOrigin) = bitpoll_client::discover_index_url(index_url)?;
    let cache = cache_dir.unwrap_or_else(default_cache_dir);
    Ok((ClientOptions::new(url, cache), origin))
}

/// A client with default options.
pub fn open(
    index_url: Option<&str>,
    cache_dir: Option<PathBuf>,
    offline: bool,
) -> anyhow::Result<IndexClient> {
    let (mut options, _) = options(index_url, cache_dir)?;
    options.offline = offline;
    Ok(IndexClient::new(options)?)
}

pub fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("bitpoll-lock");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/bitpoll-lock"),
        None => std::env::temp_dir().join("bitpoll-lock-cache"),
    }
}
