//! Which package index to talk to, and how to print its URL safely.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pep508_rs::PackageName;
use url::Url;

use crate::ClientError;

/// The base URL of a PEP 503/691 simple index, always ending in `/`.
///
/// It may carry credentials (`https://user:token@host/simple/`); they are used for
/// requests but `Display` and `Debug` print `***` in their place.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IndexUrl {
    url: Url,
}

impl IndexUrl {
    /// Parses an index URL; only `http` and `https` are accepted.
    pub fn parse(text: &str) -> Result<Self, ClientError> {
        let text = text.trim();
        let mut url = Url::parse(text).map_err(|e| ClientError::InvalidIndexUrl {
            url: redact_str(text),
            reason: e.to_string(),
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(ClientError::InvalidIndexUrl {
                url: redact_url(&url),
                reason: "only http and https index URLs are supported".into(),
            });
        }
        if url.cannot_be_a_base() || url.host().is_none() {
            return Err(ClientError::InvalidIndexUrl {
                url: redact_url(&url),
                reason: "the URL has no host".into(),
            });
        }
        url.set_fragment(None);
        // Project pages are found by joining relative names onto the base, which drops
        // the last path segment unless the base ends in a slash.
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(IndexUrl { url })
    }

    /// The URL including any credentials; never print it.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The URL with credentials replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(&self.url)
    }

    /// The URL with credentials removed, for cache keys.
    pub fn without_credentials(&self) -> Url {
        strip_credentials(&self.url)
    }

    /// The index's JSON API root, where it has one: the simple API's URL with its last
    /// segment `simple` replaced by `pypi`, as the Python index lays them out and as tools
    /// that read both assume. `None` for an index laid out otherwise.
    pub fn json_api_base(&self) -> Option<Url> {
        let path = self.url.path();
        let parent = path.strip_suffix("simple/")?;
        if !parent.ends_with('/') {
            return None;
        }
        let mut url = self.url.clone();
        url.set_path(&format!("{parent}pypi/"));
        Some(url)
    }

    /// `<index>/<normalized-name>/`.
    pub fn project_url(&self, name: &PackageName) -> Url {
        let mut url = self.url.clone();
        let path = format!("{}{}/", url.path(), name.as_ref());
        url.set_path(&path);
        url
    }
}

impl fmt::Display for IndexUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for IndexUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IndexUrl({})", self.redacted())
    }
}

impl std::str::FromStr for IndexUrl {
    type Err = ClientError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IndexUrl::parse(s)
    }
}

/// `url` with any user name and password replaced by `***`.
pub use bitpoll_simple::redact_url;

/// `url` without user name and password.
pub fn strip_credentials(url: &Url) -> Url {
    let mut copy = url.clone();
    let _ = copy.set_password(None);
    let _ = copy.set_username("");
    copy
}

/// Redacts the user-info part of something that did not parse as a URL.
fn redact_str(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_string();
    };
    let rest = &text[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}://***@{}", &text[..scheme_end], &rest[at + 1..]),
        None => text.to_string(),
    }
}

/// Where the index URL was found, for a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexOrigin {
    /// `--index-url`.
    CommandLine,
    /// The named environment variable.
    Environment(String),
    /// A pip configuration file and the section (`global` or `install`) that set it.
    PipConfig { file: PathBuf, section: String },
    /// The default compiled into the installed pip, asked through this interpreter.
    PipDefault { interpreter: String },
}

impl fmt::Display for IndexOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexOrigin::CommandLine => f.write_str("--index-url"),
            IndexOrigin::Environment(var) => write!(f, "environment variable {var}"),
            IndexOrigin::PipConfig { file, section } => {
                write!(f, "pip configuration {} [{section}]", file.display())
            }
            IndexOrigin::PipDefault { interpreter } => {
                write!(f, "default index of the pip installed for {interpreter}")
            }
        }
    }
}

/// The environment variables consulted, in order, after `--index-url`.
pub const INDEX_URL_VARIABLES: [&str; 4] = [
    "BITPOLL_LOCK_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_INDEX_URL",
    "PIP_INDEX_URL",
];

/// Prints pip's default index. The module that defines it is executed on its own where it
/// stands alone (it imports only `urllib.parse`): importing it through pip's packages took
/// 40-60 ms against 30-40 ms here, and a cold run waits for this answer before its first
/// request. Anything unexpected (another layout, a module that needs pip's other modules)
/// falls back to the import.
const PIP_DEFAULT_SCRIPT: &str = r#"
import importlib.util, os
try:
    spec = importlib.util.find_spec("pip")
    path = os.path.join(spec.submodule_search_locations[0], "_internal", "models", "index.py")
    with open(path, encoding="utf-8") as f:
        namespace = {"__name__": "pip_default_index"}
        exec(compile(f.read(), path, "exec"), namespace)
    url = namespace["PyPI"].simple_url
except Exception:
    from pip._internal.models.index import PyPI
    url = PyPI.simple_url
print(url)
"#;

type VarFn<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;
type ReadFn<'a> = Box<dyn Fn(&Path) -> Option<String> + 'a>;
type AskPipFn<'a> = Box<dyn Fn() -> Result<(String, String), NoPipDefault> + 'a>;

/// Why the installed pip could not say its default index: every interpreter tried, and
/// what went wrong with each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoPipDefault(pub String);

/// What index discovery looks at, replaceable so tests need no real environment.
pub struct DiscoveryEnv<'a> {
    /// An environment variable's value.
    pub var: VarFn<'a>,
    /// The user's home directory.
    pub home: Option<PathBuf>,
    /// A file's contents, `None` when it cannot be read.
    pub read_file: ReadFn<'a>,
    /// Asks the installed pip for its default index: `(interpreter, url)`.
    pub ask_pip: AskPipFn<'a>,
}

impl DiscoveryEnv<'static> {
    /// The real process environment, file system and Python.
    pub fn system() -> Self {
        DiscoveryEnv {
            var: Box::new(|name| std::env::var(name).ok()),
            home: std::env::var_os("HOME").map(PathBuf::from),
            read_file: Box::new(|path| std::fs::read_to_string(path).ok()),
            ask_pip: Box::new(ask_installed_pip),
        }
    }
}

fn ask_installed_pip() -> Result<(String, String), NoPipDefault> {
    ask_pip_of(&["python3".as_ref(), "python".as_ref()])
}

/// Asks the pip installed for each interpreter in turn (a program name looked up on `PATH`,
/// or a path) for its default index: `(interpreter, url)` from the first that answers.
pub fn ask_pip_of(interpreters: &[&std::ffi::OsStr]) -> Result<(String, String), NoPipDefault> {
    let mut failures = Vec::new();
    for program in interpreters {
        let interpreter = program.to_string_lossy();
        let output = Command::new(program)
            .args(["-c", PIP_DEFAULT_SCRIPT])
            .stdin(Stdio::null())
            .output();
        match output {
            Ok(out) if out.status.success() => {
                let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if !url.is_empty() {
                    return Ok((interpreter.to_string(), url));
                }
                failures.push(format!("{interpreter} printed nothing"));
            }
            Ok(out) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let last = stderr.lines().last().unwrap_or("").trim().to_string();
                failures.push(format!("{interpreter} failed ({last})"));
            }
            Err(e) => failures.push(format!("{interpreter}: {e}")),
        }
    }
    Err(NoPipDefault(failures.join("; ")))
}

/// Finds the index URL: `explicit` (the `--index-url` value), then the environment
/// variables in [`INDEX_URL_VARIABLES`], then pip's configuration files, then the default
/// of the installed pip.
pub fn discover_index_url(explicit: Option<&str>) -> Result<(IndexUrl, IndexOrigin), ClientError> {
    discover_index_url_with(explicit, &DiscoveryEnv::system())
}

/// [`discover_index_url`] against an injected environment.
pub fn discover_index_url_with(
    explicit: Option<&str>,
    env: &DiscoveryEnv<'_>,
) -> Result<(IndexUrl, IndexOrigin), ClientError> {
    if let Some(url) = explicit.filter(|u| !u.trim().is_empty()) {
        return Ok((IndexUrl::parse(url)?, IndexOrigin::CommandLine));
    }
    for var in INDEX_URL_VARIABLES {
        if let Some(value) = (env.var)(var).filter(|v| !v.trim().is_empty()) {
            return Ok((
                IndexUrl::parse(&value)?,
                IndexOrigin::Environment(var.to_string()),
            ));
        }
    }
    if let Some((value, file, section)) = pip_config_index_url(env) {
        return Ok((
            IndexUrl::parse(&value)?,
            IndexOrigin::PipConfig { file, section },
        ));
    }
    match (env.ask_pip)() {
        Ok((interpreter, url)) => Ok((
            IndexUrl::parse(&url)?,
            IndexOrigin::PipDefault { interpreter },
        )),
        Err(reason) => Err(ClientError::IndexDiscovery(format!(
            "no --index-url, none of {} is set, no pip configuration file sets index-url, \
             and asking pip for its default failed: {reason}",
            INDEX_URL_VARIABLES.join(", ")
        ))),
    }
}

/// pip's configuration files, lowest priority first, as pip itself orders them: the
/// site-wide files, the user's files (skipped when `PIP_CONFIG_FILE` names an existing
/// file), the virtual environment's file, and `PIP_CONFIG_FILE`. `PIP_CONFIG_FILE` set to
/// the null device turns all of them off.
pub fn pip_config_files(env: &DiscoveryEnv<'_>) -> Vec<PathBuf> {
    let var = |name: &str| (env.var)(name).filter(|v| !v.is_empty());
    let config_file = var("PIP_CONFIG_FILE");
    if config_file.as_deref() == Some("/dev/null") {
        return Vec::new();
    }
    let mut files = Vec::new();

    if cfg!(target_os = "macos") {
        files.push(PathBuf::from("/Library/Application Support/pip/pip.conf"));
    } else {
        let dirs = var("XDG_CONFIG_DIRS").unwrap_or_else(|| "/etc/xdg".to_string());
        for dir in dirs.split(':').filter(|d| !d.is_empty()) {
            files.push(Path::new(dir).join("pip").join("pip.conf"));
        }
    }
    files.push(PathBuf::from("/etc/pip.conf"));

    let env_file_exists = config_file
        .as_ref()
        .is_some_and(|f| (env.read_file)(Path::new(f)).is_some());
    if !env_file_exists {
        if let Some(home) = &env.home {
            files.push(home.join(".pip").join("pip.conf"));
            let config_home = var("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".config"));
            files.push(config_home.join("pip").join("pip.conf"));
            if cfg!(target_os = "macos") {
                files.push(home.join("Library/Application Support/pip/pip.conf"));
            }
        }
    }

    if let Some(venv) = var("VIRTUAL_ENV") {
        files.push(Path::new(&venv).join("pip.conf"));
    }
    if let Some(file) = config_file {
        files.push(PathBuf::from(file));
    }
    files
}

/// The `index-url` pip would use for `pip install`: `[install]` from any file beats
/// `[global]` from any file, and within a section a later file beats an earlier one.
fn pip_config_index_url(env: &DiscoveryEnv<'_>) -> Option<(String, PathBuf, String)> {
    let mut global: Option<(String, PathBuf)> = None;
    let mut install: Option<(String, PathBuf)> = None;
    for file in pip_config_files(env) {
        let Some(text) = (env.read_file)(&file) else {
            continue;
        };
        let ini = parse_ini(&text);
        for (section, slot) in [("global", &mut global), ("install", &mut install)] {
            if let Some(value) = ini_value(&ini, section, "index-url") {
                *slot = Some((value, file.clone()));
            }
        }
    }
    install
        .map(|(v, f)| (v, f, "install".to_string()))
        .or_else(|| global.map(|(v, f)| (v, f, "global".to_string())))
}

/// `(section, key, value)` triples, keys lower-cased with `_` read as `-` as pip does.
pub(crate) fn parse_ini(text: &str) -> Vec<(String, String, String)> {
    let mut entries: Vec<(String, String, String)> = Vec::new();
    let mut section: Option<String> = None;
    let mut continuing = false;
    for raw in text.lines() {
        let line = raw.trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            continuing = false;
            continue;
        }
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if continuing && line.starts_with([' ', '\t']) {
            if let Some(last) = entries.last_mut() {
                if !last.2.is_empty() {
                    last.2.push('\n');
                }
                last.2.push_str(trimmed);
            }
            continue;
        }
        continuing = false;
        if let Some(name) = trimmed.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            section = Some(name.trim().to_string());
            continue;
        }
        let Some(section) = &section else {
            // Python's configparser refuses keys before the first section; pip then
            // fails, we just ignore them.
            continue;
        };
        let split = trimmed.find(['=', ':']);
        let (key, value) = match split {
            Some(at) => (&trimmed[..at], trimmed[at + 1..].trim()),
            None => (trimmed, ""),
        };
        let key = key.trim().to_lowercase().replace('_', "-");
        entries.push((section.clone(), key, value.to_string()));
        continuing = true;
    }
    entries
}

fn ini_value(entries: &[(String, String, String)], section: &str, key: &str) -> Option<String> {
    // configparser's DEFAULT section supplies values to every other section.
    let lookup = |sec: &str| {
        entries
            .iter()
            .rev()
            .find(|(s, k, _)| s == sec && k == key)
            .map(|(_, _, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    lookup(section).or_else(|| {
        let section_exists = entries.iter().any(|(s, _, _)| s == section);
        if section_exists {
            lookup("DEFAULT")
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env<'a>(vars: &'a [(&str, &str)], files: &'a [(&str, &str)]) -> DiscoveryEnv<'a> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let files: HashMap<PathBuf, String> = files
            .iter()
            .map(|(k, v)| (PathBuf::from(k), v.to_string()))
            .collect();
        DiscoveryEnv {
            var: Box::new(move |name| vars.get(name).cloned()),
            home: Some(PathBuf::from("/home/u")),
            read_file: Box::new(move |path| files.get(path).cloned()),
            ask_pip: Box::new(|| Ok(("python3".into(), "http://127.0.0.1:1/pip-default".into()))),
        }
    }

    fn found(explicit: Option<&str>, env: &DiscoveryEnv<'_>) -> (String, IndexOrigin) {
        let (url, origin) = discover_index_url_with(explicit, env).unwrap();
        (url.url().to_string(), origin)
    }

    #[test]
    fn the_json_api_sits_beside_a_simple_api_named_simple() {
        let base = |u: &str| {
            IndexUrl::parse(u)
                .unwrap()
                .json_api_base()
                .map(|b| b.to_string())
        };
        assert_eq!(
            base("https://user:pw@index.test/simple"),
            Some("https://user:pw@index.test/pypi/".into())
        );
        assert_eq!(
            base("http://127.0.0.1:8080/mirror/simple/"),
            Some("http://127.0.0.1:8080/mirror/pypi/".into())
        );
        assert_eq!(base("https://index.test/root/notsimple/"), None);
        assert_eq!(base("https://index.test/packages/"), None);
    }

    #[test]
    fn explicit_beats_everything() {
        let e = env(&[("BITPOLL_LOCK_INDEX_URL", "http://127.0.0.1:2/a")], &[]);
        assert_eq!(
            found(Some("http://127.0.0.1:1/cli"), &e),
            ("http://127.0.0.1:1/cli/".into(), IndexOrigin::CommandLine)
        );
    }

    #[test]
    fn environment_order() {
        let all = [
            ("BITPOLL_LOCK_INDEX_URL", "http://127.0.0.1:1/bitpoll/"),
            ("UV_DEFAULT_INDEX", "http://127.0.0.1:1/uv-default/"),
            ("UV_INDEX_URL", "http://127.0.0.1:1/uv/"),
            ("PIP_INDEX_URL", "http://127.0.0.1:1/pip/"),
        ];
        for skip in 0..all.len() {
            let e = env(
                &all[skip..],
                &[(
                    "/etc/pip.conf",
                    "[global]\nindex-url = http://127.0.0.1:1/conf\n",
                )],
            );
            let (url, origin) = found(None, &e);
            assert_eq!(url, all[skip].1);
            assert_eq!(origin, IndexOrigin::Environment(all[skip].0.to_string()));
        }
        // Empty variables count as unset.
        let e = env(
            &[
                ("BITPOLL_LOCK_INDEX_URL", ""),
                ("PIP_INDEX_URL", "http://127.0.0.1:1/pip/"),
            ],
            &[],
        );
        assert_eq!(found(None, &e).0, "http://127.0.0.1:1/pip/");
    }

    #[test]
    fn pip_files_later_overrides_earlier_and_install_beats_global() {
        let files = [
            (
                "/etc/xdg/pip/pip.conf",
                "[global]\nindex-url = http://127.0.0.1:1/xdg\n",
            ),
            (
                "/etc/pip.conf",
                "[global]\nindex_url = http://127.0.0.1:1/etc\n",
            ),
            (
                "/home/u/.pip/pip.conf",
                "[global]\nindex-url=http://127.0.0.1:1/legacy\n",
            ),
            (
                "/home/u/.config/pip/pip.conf",
                "# comment\n[global]\nIndex-URL: http://127.0.0.1:1/user\n",
            ),
        ];
        let e = env(&[], &files);
        assert_eq!(
            found(None, &e),
            (
                "http://127.0.0.1:1/user/".into(),
                IndexOrigin::PipConfig {
                    file: "/home/u/.config/pip/pip.conf".into(),
                    section: "global".into()
                }
            )
        );

        let mut more = files.to_vec();
        more.push((
            "/venv/pip.conf",
            "[global]\nindex-url = http://127.0.0.1:1/venv\n",
        ));
        let e = env(&[("VIRTUAL_ENV", "/venv")], &more);
        assert_eq!(found(None, &e).0, "http://127.0.0.1:1/venv/");

        // [install] in an early file beats [global] in a later one.
        let mut more = files.to_vec();
        more[0] = (
            "/etc/xdg/pip/pip.conf",
            "[install]\nindex-url = http://127.0.0.1:1/install\n",
        );
        let e = env(&[], &more);
        let (url, origin) = found(None, &e);
        assert_eq!(url, "http://127.0.0.1:1/install/");
        assert!(matches!(origin, IndexOrigin::PipConfig { section, .. } if section == "install"));
    }

    #[test]
    fn pip_config_file_variable() {
        let files = [
            (
                "/home/u/.config/pip/pip.conf",
                "[global]\nindex-url = http://127.0.0.1:1/user\n",
            ),
            (
                "/etc/pip.conf",
                "[global]\nindex-url = http://127.0.0.1:1/etc\n",
            ),
            ("/custom.conf", "[global]\ntimeout = 5\n"),
        ];
        // An existing PIP_CONFIG_FILE hides the user files but not the site-wide ones.
        let e = env(&[("PIP_CONFIG_FILE", "/custom.conf")], &files);
        assert_eq!(found(None, &e).0, "http://127.0.0.1:1/etc/");
        // A missing one hides nothing.
        let e = env(&[("PIP_CONFIG_FILE", "/missing.conf")], &files);
        assert_eq!(found(None, &e).0, "http://127.0.0.1:1/user/");
        // The null device turns all files off, leaving pip's default.
        let e = env(&[("PIP_CONFIG_FILE", "/dev/null")], &files);
        assert_eq!(
            found(None, &e),
            (
                "http://127.0.0.1:1/pip-default/".into(),
                IndexOrigin::PipDefault {
                    interpreter: "python3".into()
                }
            )
        );
    }

    #[test]
    fn xdg_variables_move_the_files() {
        let files = [
            (
                "/cfg/pip/pip.conf",
                "[global]\nindex-url = http://127.0.0.1:1/xdg-home\n",
            ),
            (
                "/sys-cfg/pip/pip.conf",
                "[global]\nindex-url = http://127.0.0.1:1/xdg-dirs\n",
            ),
        ];
        let e = env(&[("XDG_CONFIG_HOME", "/cfg")], &files);
        assert_eq!(found(None, &e).0, "http://127.0.0.1:1/xdg-home/");
        let e = env(&[("XDG_CONFIG_DIRS", "/nope:/sys-cfg")], &files);
        assert_eq!(found(None, &e).0, "http://127.0.0.1:1/xdg-dirs/");
    }

    #[test]
    fn ini_parsing() {
        let text = "[DEFAULT]\ntimeout = 3\n[global]\n; note\nextra-index-url =\n    http://127.0.0.1:1/a\n    http://127.0.0.1:1/b\nindex_url = http://127.0.0.1:1/x  \nkey without value\n";
        let ini = parse_ini(text);
        assert_eq!(
            ini_value(&ini, "global", "index-url").unwrap(),
            "http://127.0.0.1:1/x"
        );
        assert_eq!(
            ini_value(&ini, "global", "extra-index-url").unwrap(),
            "http://127.0.0.1:1/a\nhttp://127.0.0.1:1/b"
        );
        assert_eq!(ini_value(&ini, "global", "timeout").unwrap(), "3");
        assert_eq!(ini_value(&ini, "install", "timeout"), None);
    }

    /// An interpreter that finds the packages in `site` first: a script around `python3`.
    fn python_with(site: &Path) -> Option<PathBuf> {
        let python3 = std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join("python3"))
            .find(|p| p.is_file())?;
        let script = site.join("python");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nPYTHONPATH='{}' exec '{}' \"$@\"\n",
                site.display(),
                python3.display()
            ),
        )
        .ok()?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).ok()?;
        Some(script)
    }

    /// A `pip` package in `site` whose default index module is `index_py`, and whose
    /// `__init__.py` is `init_py`.
    fn fake_pip(site: &Path, init_py: &str, index_py: &str) {
        let models = site.join("pip/_internal/models");
        std::fs::create_dir_all(&models).unwrap();
        std::fs::write(site.join("pip/__init__.py"), init_py).unwrap();
        std::fs::write(site.join("pip/_internal/__init__.py"), "").unwrap();
        std::fs::write(models.join("__init__.py"), "").unwrap();
        std::fs::write(models.join("helper.py"), "PREFIX = 'http://127.0.0.1:7/'\n").unwrap();
        std::fs::write(models.join("index.py"), index_py).unwrap();
    }

    #[test]
    fn pips_default_index_is_read_without_importing_pip_and_else_imported() {
        const INDEX_PY: &str = "import urllib.parse\nclass PackageIndex:\n    def __init__(self, url):\n        self.simple_url = urllib.parse.urljoin(url, 'simple')\nPyPI = PackageIndex('http://127.0.0.1:9/')\n";
        // Importing this pip fails: the answer must come from the module alone.
        let site = tempfile::tempdir().unwrap();
        fake_pip(
            site.path(),
            "raise ImportError('pip was imported')\n",
            INDEX_PY,
        );
        let Some(python) = python_with(site.path()) else {
            bitpoll_test_skip::skip("no python3 on PATH");
            return;
        };
        let (name, url) = ask_pip_of(&[python.as_os_str()]).unwrap();
        assert_eq!(url, "http://127.0.0.1:9/simple");
        assert_eq!(name, python.to_string_lossy());

        // A module that needs the rest of pip is imported as pip imports it.
        let site = tempfile::tempdir().unwrap();
        fake_pip(
            site.path(),
            "",
            "from .helper import PREFIX\nclass PackageIndex:\n    simple_url = PREFIX + 'simple'\nPyPI = PackageIndex()\n",
        );
        let python = python_with(site.path()).unwrap();
        let (_, url) = ask_pip_of(&[python.as_os_str()]).unwrap();
        assert_eq!(url, "http://127.0.0.1:7/simple");
    }

    #[test]
    fn pip_failure_is_a_clear_error() {
        let mut e = env(&[], &[]);
        e.ask_pip = Box::new(|| Err(NoPipDefault("python3: not found; python: not found".into())));
        let err = discover_index_url_with(None, &e).unwrap_err();
        assert!(err.is_network());
        let text = err.to_string();
        assert!(
            text.contains("PIP_INDEX_URL") && text.contains("python3: not found"),
            "{text}"
        );
    }

    #[test]
    fn credentials_are_redacted() {
        let url = IndexUrl::parse("https://alice:s3cret@127.0.0.1:8/simple").unwrap();
        assert_eq!(url.url().password(), Some("s3cret"));
        assert_eq!(url.to_string(), "https://***@127.0.0.1:8/simple/");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!(!url.without_credentials().to_string().contains("alice"));
        let err = IndexUrl::parse("ftp://alice:s3cret@127.0.0.1/x").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let err = IndexUrl::parse("https://alice:s3cret@[::1/x").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let name = PackageName::new("Foo_Bar".into()).unwrap();
        assert_eq!(
            url.project_url(&name).to_string(),
            "https://alice:s3cret@127.0.0.1:8/simple/foo-bar/"
        );
    }
}
