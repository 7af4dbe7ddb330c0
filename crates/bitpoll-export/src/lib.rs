//! The lock in other installers' formats, for one target: pip's requirements with
//! `--hash` options, and PEP 751's `pylock.toml`.
//!
//! Only index packages are installable this way; nixpkgs-served ones are listed as comments.
//! It must not resolve anything: what the lock pins is what is written. The lock names no
//! hosts, so `pylock.toml`'s file URLs come from a package source, credentials removed.

use bitpoll_lockfile::{Lock, Source};
use bitpoll_source::{PackageSource, SourceError};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the lock has no target {0}")]
    NoTarget(String),
    #[error("`{0}` in the lock is not a package name")]
    BadName(String),
    #[error("{0} is no longer listed by the index; run `bitpoll-lock update`")]
    Gone(String),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("cannot write pylock.toml: {0}")]
    Toml(#[source] toml::ser::Error),
}

/// A lock that names files the index no longer answers for means the index moved, whatever
/// the source said: asking again later, or updating the lock, is what helps.
impl bitpoll_source::Classify for ExportError {
    fn class(&self) -> bitpoll_source::ErrorClass {
        match self {
            ExportError::Source(_) | ExportError::Gone(_) => {
                bitpoll_source::ErrorClass::Unavailable
            }
            ExportError::NoTarget(_) | ExportError::BadName(_) | ExportError::Toml(_) => {
                bitpoll_source::ErrorClass::BadInput
            }
        }
    }
}

/// A URL without user name and password.
fn without_credentials(mut url: url::Url) -> String {
    let _ = url.set_password(None);
    let _ = url.set_username("");
    url.to_string()
}

/// `name==version` with the target's artifact hashes, for every Python-index package of the
/// target. nixpkgs-served packages have no index hashes in the lock; they are listed as
/// comments so the output stays installable with `--require-hashes`.
pub fn requirements_txt(lock: &Lock, target: &str) -> String {
    let mut out = format!(
        "# Exported by bitpoll-lock for {target}; install with pip --require-hashes --no-deps\n"
    );
    let pkgs = lock.packages_for(target);
    let mut nix = Vec::new();
    for p in pkgs.values() {
        match p.source {
            Source::Index => {
                out.push_str(&format!("{}=={}", p.name, p.version));
                for a in p
                    .artifacts
                    .iter()
                    .filter(|a| a.targets.iter().any(|t| t == target))
                {
                    out.push_str(&format!(" \\\n    --hash=sha256:{}", a.sha256));
                }
                out.push('\n');
            }
            Source::Nixpkgs => nix.push(format!(
                "#   {}=={} (attribute {})",
                p.name,
                p.version,
                p.attr.as_deref().unwrap_or("?")
            )),
        }
    }
    if !nix.is_empty() {
        out.push_str("# Provided by nixpkgs, not pinned here:\n");
        for line in nix {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[derive(serde::Serialize)]
struct Pylock {
    #[serde(rename = "lock-version")]
    lock_version: &'static str,
    environments: Vec<String>,
    #[serde(rename = "requires-python")]
    requires_python: String,
    #[serde(rename = "created-by")]
    created_by: &'static str,
    packages: Vec<PylockPackage>,
}

#[derive(serde::Serialize)]
struct PylockPackage {
    name: String,
    version: String,
    index: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    wheels: Vec<PylockFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sdist: Option<PylockFile>,
}

#[derive(serde::Serialize)]
struct PylockFile {
    name: String,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    hashes: std::collections::BTreeMap<&'static str, String>,
}

/// PEP 751 for one target. The lock names no hosts, so file URLs are looked up on the index
/// (through the cache); credentials are stripped from every URL written.
///
/// `index_url` is the index the files are listed on, without credentials.
pub fn pylock(
    lock: &Lock,
    target: &str,
    source: &dyn PackageSource,
    index_url: &str,
) -> Result<String, ExportError> {
    let info = lock
        .targets
        .iter()
        .find(|t| t.name == target)
        .ok_or_else(|| ExportError::NoTarget(target.to_string()))?;
    let m = |k: &str| info.markers.get(k).cloned().unwrap_or_default();
    let environment = format!(
        "sys_platform == '{}' and platform_machine == '{}' and implementation_name == '{}'",
        m("sys_platform"),
        m("platform_machine"),
        m("implementation_name")
    );
    let index = index_url.to_string();
    let mut packages = Vec::new();
    let mut nix = Vec::new();
    for p in lock.packages_for(target).values() {
        if p.source == Source::Nixpkgs {
            nix.push(format!(
                "#   {}=={} (attribute {})",
                p.name,
                p.version,
                p.attr.as_deref().unwrap_or("?")
            ));
            continue;
        }
        let name: pep508_rs::PackageName = p
            .name
            .parse()
            .map_err(|_| ExportError::BadName(p.name.clone()))?;
        let page = source.project(&name)?;
        let mut pkg = PylockPackage {
            name: p.name.clone(),
            version: p.version.clone(),
            index: index.clone(),
            wheels: Vec::new(),
            sdist: None,
        };
        for a in p
            .artifacts
            .iter()
            .filter(|a| a.targets.iter().any(|t| t == target))
        {
            let file = page
                .files
                .iter()
                .find(|f| *f.filename == *a.filename)
                .ok_or_else(|| ExportError::Gone(a.filename.clone()))?;
            let entry = PylockFile {
                name: a.filename.clone(),
                url: without_credentials(file.url()),
                size: a.size,
                hashes: [("sha256", a.sha256.clone())].into(),
            };
            match a.kind {
                bitpoll_lockfile::ArtifactKind::Wheel => pkg.wheels.push(entry),
                bitpoll_lockfile::ArtifactKind::Sdist => pkg.sdist = Some(entry),
            }
        }
        packages.push(pkg);
    }
    let doc = Pylock {
        lock_version: "1.0",
        environments: vec![environment],
        requires_python: format!("=={}.*", m("python_version")),
        created_by: "bitpoll-lock",
        packages,
    };
    let mut out = format!("# Exported by bitpoll-lock for {target}.\n");
    if !nix.is_empty() {
        out.push_str("# Provided by nixpkgs, not pinned here:\n");
        for line in nix {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out.push_str(&toml::to_string(&doc).map_err(ExportError::Toml)?);
    Ok(out)
}
