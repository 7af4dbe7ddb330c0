//! One way to open the index client for every command that talks to the index.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bitpoll_client::{
    ClientOptions, DiscoveryEnv, IndexClient, IndexOrigin, IndexUrl, NoPipDefault,
};

use crate::exit::Result;

/// Where the Python index is and where its answers are cached: the options every command
/// that talks to the index shares.
#[derive(clap::Args, Debug, Clone)]
pub struct IndexArgs {
    /// Python package index (simple API) URL. Default: `BITPOLL_LOCK_INDEX_URL`, the variables
    /// pip and uv read, pip's configuration files, then the installed pip's default.
    #[arg(long, value_name = "URL")]
    pub index_url: Option<String>,
    /// HTTP cache directory.
    #[arg(long, value_name = "DIR", env = "BITPOLL_LOCK_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Use only cached index responses; never touch the network.
    #[arg(long)]
    pub offline: bool,
}

impl IndexArgs {
    /// Default client options for this index, and where its URL came from.
    pub fn options(&self) -> Result<(ClientOptions, IndexOrigin)> {
        self.options_asking(None)
    }

    /// [`IndexArgs::options`]; when it comes to asking pip, the pip of `python` (the
    /// interpreter a run was told to build with) is asked before `python3`'s. It is a path
    /// the user gave: `python3` on `PATH` may be a version manager's shell script that costs
    /// a tenth of a second before Python even starts (pyenv's here: 0.13-0.23 s for the
    /// question, against 0.06 s for the interpreter it runs), and every cold run waits for
    /// this answer before its first request.
    pub fn options_asking(&self, python: Option<&Path>) -> Result<(ClientOptions, IndexOrigin)> {
        let (mut options, origin) = options(
            self.index_url.as_deref(),
            self.cache_dir.clone(),
            python.map(Path::to_path_buf),
        )?;
        options.offline = self.offline;
        Ok((options, origin))
    }

    pub fn open(&self) -> Result<IndexClient> {
        Ok(IndexClient::new(self.options()?.0)?)
    }
}

/// Finds the index URL (in the order ARCHITECTURE.md, "Constraints", gives) and returns default client options for it.
fn options(
    index_url: Option<&str>,
    cache_dir: Option<PathBuf>,
    python: Option<PathBuf>,
) -> Result<(ClientOptions, IndexOrigin)> {
    let cache = cache_dir.unwrap_or_else(default_cache_dir);
    let mut env = DiscoveryEnv::system();
    let remembered = cache.join("pip-default-index.json");
    env.ask_pip = Box::new(move || ask_pip_remembered(&remembered, python.as_deref()));
    let (url, origin): (IndexUrl, IndexOrigin) =
        bitpoll_client::discover_index_url_with(index_url, &env)?;
    Ok((ClientOptions::new(url, cache), origin))
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

/// How long the installed pip's answer is reused. Starting Python costs more than a warm
/// resolution, and pip's built-in default has not changed in years; a day bounds how long a
/// changed interpreter goes unnoticed. Environment variables and pip's configuration files
/// are still read on every run, before this step.
const PIP_ANSWER_TTL_SECS: u64 = 24 * 60 * 60;

/// Asks the installed pip for its default index (`python`'s first, when given) unless the
/// cache holds a fresh answer from the same interpreter file (path and modification time).
fn ask_pip_remembered(
    file: &Path,
    python: Option<&Path>,
) -> std::result::Result<(String, String), NoPipDefault> {
    let interpreter = python
        .filter(|p| p.is_file())
        .map(Path::to_path_buf)
        .or_else(|| which("python3"))
        .or_else(|| which("python"));
    let stamp = interpreter.as_ref().and_then(|p| {
        let modified = std::fs::metadata(p).ok()?.modified().ok()?;
        let secs = modified.duration_since(UNIX_EPOCH).ok()?.as_secs();
        Some(format!("{}@{secs}", p.display()))
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if let (Some(stamp), Ok(text)) = (&stamp, std::fs::read_to_string(file)) {
        if let Ok(saved) = serde_json::from_str::<serde_json::Value>(&text) {
            let fresh = saved["asked_at"]
                .as_u64()
                .is_some_and(|t| now.saturating_sub(t) < PIP_ANSWER_TTL_SECS);
            if fresh && saved["interpreter"].as_str() == Some(stamp.as_str()) {
                if let (Some(name), Some(url)) = (saved["name"].as_str(), saved["url"].as_str()) {
                    return Ok((name.to_string(), url.to_string()));
                }
            }
        }
    }
    let asked: Vec<&std::ffi::OsStr> = python
        .map(Path::as_os_str)
        .into_iter()
        .chain(["python3".as_ref(), "python".as_ref()])
        .collect();
    let (name, url) = bitpoll_client::ask_pip_of(&asked)?;
    if let Some(stamp) = stamp {
        let saved =
            serde_json::json!({ "interpreter": stamp, "name": name, "url": url, "asked_at": now });
        // Best effort: a cache that cannot be written only costs the next run a Python start.
        let _ = bitpoll_lockfile::write_atomic(file, saved.to_string().as_bytes());
    }
    Ok((name, url))
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
