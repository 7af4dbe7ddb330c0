//! Reads requirement files the way pip reads them.
//!
//! Supported: comments, `\` line continuations, `-r`/`--requirement` and `-c`/`--constraint`
//! includes resolved relative to the including file, PEP 508 requirements with extras and
//! markers, per-line `--hash` options and `${VAR}` environment references. Everything that
//! would make a lock depend on something other than an index name, a file name and a hash
//! (editable installs, direct URLs, local paths, per-file index options) is rejected with an
//! error that names the file and line, so the lock never silently means something else.
//!
//! It reads files only: it must not resolve, fetch or decide which requirements apply to a
//! target (markers are kept for the resolver).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use pep508_rs::{Requirement, VersionOrUrl};

/// Where a requirement was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One requirement line.
#[derive(Debug, Clone)]
pub struct Entry {
    pub requirement: Requirement,
    pub origin: Origin,
    /// `--hash` values as written (`sha256:...`).
    pub hashes: Vec<String>,
}

/// Everything read from a set of top-level requirement files and their includes.
#[derive(Debug, Default)]
pub struct RequirementSet {
    pub requirements: Vec<Entry>,
    pub constraints: Vec<Entry>,
    /// Every file read, in reading order (top-level files and includes).
    pub files: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum RequirementsError {
    #[error("{origin}: {message}")]
    Line { origin: Origin, message: String },
    #[error("{}: cannot read requirement file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{included_from}: cannot read included file {}: {source}", path.display())]
    Include {
        included_from: Origin,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RequirementsError {
    fn line(file: &Path, line: usize, message: impl Into<String>) -> Self {
        Self::Line {
            origin: Origin {
                file: file.to_path_buf(),
                line,
            },
            message: message.into(),
        }
    }
}

/// Reads top-level requirement files (as `-r` on pip's command line) with their includes.
pub fn read_files(paths: &[PathBuf]) -> Result<RequirementSet, RequirementsError> {
    let mut reader = Reader {
        set: RequirementSet::default(),
        stack: HashSet::new(),
    };
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|source| RequirementsError::Read {
            path: path.clone(),
            source,
        })?;
        reader.read(path, &text, Kind::Requirement)?;
    }
    Ok(reader.set)
}

/// Parses requirement text as if it were the file `path` (includes are read from disk).
pub fn parse_str(path: &Path, text: &str) -> Result<RequirementSet, RequirementsError> {
    let mut reader = Reader {
        set: RequirementSet::default(),
        stack: HashSet::new(),
    };
    reader.read(path, text, Kind::Requirement)?;
    Ok(reader.set)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Requirement,
    Constraint,
}

struct Reader {
    set: RequirementSet,
    /// Files being read right now, to stop include cycles.
    stack: HashSet<PathBuf>,
}

impl Reader {
    fn read(&mut self, path: &Path, text: &str, kind: Kind) -> Result<(), RequirementsError> {
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if !self.stack.insert(key.clone()) {
            return Err(RequirementsError::line(
                path,
                1,
                "include cycle: this file includes itself",
            ));
        }
        self.set.files.push(path.to_path_buf());
        for (line_no, line) in logical_lines(text) {
            self.line(path, line_no, &line, kind)?;
        }
        self.stack.remove(&key);
        Ok(())
    }

    fn line(
        &mut self,
        path: &Path,
        line_no: usize,
        raw: &str,
        kind: Kind,
    ) -> Result<(), RequirementsError> {
        let err = |message: String| RequirementsError::line(path, line_no, message);
        let line = expand_env(strip_comment(raw).trim()).map_err(err)?;
        let line = line.trim();
        if line.is_empty() {
            return Ok(());
        }
        if line.starts_with('-') {
            let (option, value) = split_option(line);
            return match option {
                "-r" | "--requirement" | "-c" | "--constraint" => {
                    let value = value.ok_or_else(|| err(format!("`{option}` needs a file name")))?;
                    let include = path.parent().unwrap_or(Path::new("")).join(value);
                    let text = std::fs::read_to_string(&include).map_err(|source| RequirementsError::Include {
                        included_from: Origin { file: path.to_path_buf(), line: line_no },
                        path: include.clone(),
                        source,
                    })?;
                    // pip treats everything a constraint file includes as constraints too.
                    let kind = if matches!(option, "-c" | "--constraint") { Kind::Constraint } else { kind };
                    self.read(&include, &text, kind)
                }
                "-e" | "--editable" => Err(err(
                    "editable requirements cannot be locked: a lock pins released artifacts by hash".into(),
                )),
                "-i" | "--index-url" | "--extra-index-url" | "-f" | "--find-links" | "--trusted-host"
                | "--no-index" => Err(err(format!(
                    "`{option}` in a requirement file is not supported: pass the index with --index-url \
                     (or BITPOLL_LOCK_INDEX_URL) so the lock records one index"
                ))),
                "--pre" | "--prefer-binary" | "--only-binary" | "--no-binary" | "--require-hashes"
                | "--use-feature" => Err(err(format!(
                    "`{option}` in a requirement file is not supported; put resolution policy in lock/policy.toml"
                ))),
                _ => Err(err(format!("unknown option `{option}`"))),
            };
        }
        let (spec, hashes) = split_hashes(line).map_err(err)?;
        if looks_like_path_or_url(spec) {
            return Err(err(format!(
                "`{spec}`: local paths and direct URLs are not supported; the lock pins packages from \
                 the index by name, version and hash"
            )));
        }
        let requirement = bitpoll_pep508::parse(spec)
            .map_err(|e| err(format!("invalid requirement `{spec}`: {e}")))?;
        if let Some(VersionOrUrl::Url(_)) = requirement.version_or_url {
            return Err(err(format!(
                "`{spec}`: direct URL requirements are not supported; the lock pins packages from the \
                 index by name, version and hash. Publish the package to the index or add a policy entry"
            )));
        }
        let entry = Entry {
            requirement,
            origin: Origin {
                file: path.to_path_buf(),
                line: line_no,
            },
            hashes,
        };
        match kind {
            Kind::Requirement => self.set.requirements.push(entry),
            Kind::Constraint => {
                if !entry.requirement.extras.is_empty() {
                    return Err(err(format!("`{spec}`: constraints cannot name extras")));
                }
                self.set.constraints.push(entry)
            }
        }
        Ok(())
    }
}

fn looks_like_path_or_url(s: &str) -> bool {
    s.starts_with('.')
        || s.starts_with('/')
        || s.contains("://")
        || s.ends_with(".whl")
        || s.ends_with(".tar.gz")
}

/// Joins `\`-continued lines and numbers each logical line by its first physical line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (idx, line) in text.lines().enumerate() {
        let (start, mut buf) = current.take().unwrap_or((idx + 1, String::new()));
        // A comment line ends a continuation in pip too, so strip before looking for `\`.
        let stripped = strip_comment(line);
        if let Some(body) = stripped.trim_end().strip_suffix('\\') {
            buf.push_str(body);
            buf.push(' ');
            current = Some((start, buf));
        } else {
            buf.push_str(line);
            out.push((start, buf));
        }
    }
    if let Some(rest) = current {
        out.push(rest);
    }
    out
}

/// Removes a `#` comment: at the start of a line or after whitespace, as pip does.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

/// Expands `${NAME}` (upper-case letters, digits, `_`) from the environment, like pip.
fn expand_env(line: &str) -> Result<String, String> {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or("unterminated `${` in line")?;
        let name = &after[..end];
        if !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            let value = std::env::var(name)
                .map_err(|_| format!("environment variable `{name}` is not set"))?;
            out.push_str(&value);
        } else {
            out.push_str(&rest[start..start + 3 + end]);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn split_option(line: &str) -> (&str, Option<&str>) {
    if let Some((opt, value)) = line.split_once('=') {
        if opt.starts_with("--") && !opt.contains(char::is_whitespace) {
            return (opt, Some(value.trim()));
        }
    }
    match line.split_once(char::is_whitespace) {
        Some((opt, value)) => (opt, Some(value.trim()).filter(|v| !v.is_empty())),
        None => {
            // `-rfile.txt` is valid pip syntax for short options. Split after the second
            // character, not byte: the line may be any UTF-8 (found by fuzzing).
            match line.char_indices().nth(2) {
                Some((at, _)) if !line.starts_with("--") => (&line[..at], Some(line[at..].trim())),
                _ => (line, None),
            }
        }
    }
}

/// Splits trailing `--hash=algo:hex` options off a requirement line.
fn split_hashes(line: &str) -> Result<(&str, Vec<String>), String> {
    let Some(idx) = line.find(" --") else {
        return Ok((line, Vec::new()));
    };
    let (spec, options) = line.split_at(idx);
    let mut hashes = Vec::new();
    let mut tokens = options.split_whitespace();
    while let Some(tok) = tokens.next() {
        let value = if tok == "--hash" {
            tokens.next().ok_or("`--hash` needs a value")?
        } else if let Some(v) = tok.strip_prefix("--hash=") {
            v
        } else {
            return Err(format!(
                "unsupported per-requirement option `{tok}` (only --hash is supported)"
            ));
        };
        let (algo, digest) = value
            .split_once(':')
            .ok_or_else(|| format!("invalid hash `{value}`: expected sha256:<hex>"))?;
        if algo != "sha256" || digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(format!(
                "invalid hash `{value}`: expected sha256:<64 hex digits>"
            ));
        }
        hashes.push(format!("sha256:{}", digest.to_ascii_lowercase()));
    }
    Ok((spec.trim_end(), hashes))
}

/// A requirement file that cannot be read or says something unsupported is the input's.
impl bitpoll_error_class::Classify for RequirementsError {
    fn class(&self) -> bitpoll_error_class::ErrorClass {
        bitpoll_error_class::ErrorClass::BadInput
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RequirementSet, RequirementsError> {
        parse_str(Path::new("reqs.in"), text)
    }

    #[test]
    fn comments_continuations_extras_markers_hashes() {
        let set = parse(
            "# top comment\n\
             django>=4.2 # trailing\n\
             simple_openid_connect[django] ; python_version >= '3.9'\n\
             foo \\\n  ==1.0 \\\n  --hash=sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n\
             \n",
        )
        .unwrap();
        let names: Vec<String> = set
            .requirements
            .iter()
            .map(|e| e.requirement.name.to_string())
            .collect();
        assert_eq!(names, ["django", "simple-openid-connect", "foo"]);
        assert_eq!(
            set.requirements[1].requirement.extras[0].to_string(),
            "django"
        );
        assert_eq!(set.requirements[2].origin.line, 4);
        assert_eq!(
            set.requirements[2].hashes,
            vec![format!("sha256:{}", "a".repeat(64))]
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = parse("django\n\nfoo >>> 1\n").unwrap_err().to_string();
        assert!(
            err.starts_with("reqs.in:3: invalid requirement `foo >>> 1`"),
            "{err}"
        );
        let err = parse("pkg @ https://example.invalid/pkg.whl\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("reqs.in:1:") && err.contains("direct URL"),
            "{err}"
        );
        let err = parse("-\u{d4}\n").unwrap_err().to_string();
        assert!(err.contains("unknown option"), "{err}");
        // Found by fuzzing: pep508_rs panics on this shape; it must be an ordinary error.
        let err = parse("ok\n9B.*\n").unwrap_err().to_string();
        assert!(
            err.starts_with("reqs.in:2: invalid requirement `9B.*`"),
            "{err}"
        );
        let err = parse("-e .\n").unwrap_err().to_string();
        assert!(err.contains("editable"), "{err}");
        let err = parse("./local/pkg\n").unwrap_err().to_string();
        assert!(err.contains("local paths"), "{err}");
        let err = parse("x --hash=md5:00\n").unwrap_err().to_string();
        assert!(err.contains("invalid hash"), "{err}");
    }

    #[test]
    fn includes_are_relative_to_the_including_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(
            dir.path().join("top.in"),
            "-r sub/base.in\n-c sub/pins.txt\nextra\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("sub/base.in"),
            "django\n--requirement=more.in\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("sub/more.in"), "pytz\n").unwrap();
        std::fs::write(dir.path().join("sub/pins.txt"), "django<6\n").unwrap();
        let set = read_files(&[dir.path().join("top.in")]).unwrap();
        let names: Vec<_> = set
            .requirements
            .iter()
            .map(|e| e.requirement.name.to_string())
            .collect();
        assert_eq!(names, ["django", "pytz", "extra"]);
        assert_eq!(set.constraints.len(), 1);
        assert_eq!(set.files.len(), 4);

        std::fs::write(dir.path().join("broken.in"), "ok\n-r missing.in\n").unwrap();
        let err = read_files(&[dir.path().join("broken.in")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("broken.in:2") && err.contains("missing.in"),
            "{err}"
        );

        std::fs::write(dir.path().join("cycle.in"), "-r cycle.in\n").unwrap();
        let err = read_files(&[dir.path().join("cycle.in")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cycle"), "{err}");
    }
}
