//! Conversion of `nixpkgs-python-subset.json` (a partial, hand-collected picture of
//! nixpkgs' Python set) into the index format. The subset is not from one commit, so the
//! identity says so; a real index comes from `bitpoll-lock index`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{Identity, NixPackage, NixpkgsIndex, PythonInfo, SCHEMA};

#[derive(Deserialize)]
struct Subset {
    collected: String,
    packages: Vec<SubsetPackage>,
}

#[derive(Deserialize)]
struct SubsetPackage {
    pypi_name: String,
    attr: String,
    version: String,
    #[serde(default)]
    dependencies: Vec<String>,
    #[serde(default)]
    optional_dependencies: BTreeMap<String, Vec<String>>,
    disabled: Option<String>,
    #[serde(default)]
    broken: bool,
    /// Where the package's file lives in nixpkgs.
    #[serde(default)]
    path: Option<String>,
}

/// Where nixpkgs keeps the packages of its Python sets. The subset also records a few
/// top-level packages (uWSGI, maturin) whose PyPI names match: they are not attributes of
/// `python3Packages`, so a lock must not take them from there.
const PYTHON_MODULES_DIR: &str = "pkgs/development/python-modules/";

impl SubsetPackage {
    fn in_python_set(&self) -> bool {
        self.path
            .as_deref()
            .is_none_or(|path| path.starts_with(PYTHON_MODULES_DIR))
    }
}

/// Aliases that nixpkgs' python-packages.nix defines for packages in the subset. The subset
/// records versioned attributes only; other packages depend on the unversioned name.
const ALIASES: [(&str, &str); 1] = [("django", "django_5")];

/// Why a subset description cannot be converted.
#[derive(Debug, thiserror::Error)]
pub enum SubsetError {
    #[error("invalid subset JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("bad python version: {0}")]
    Python(#[source] pep440_rs::VersionParseError),
    #[error("{0}")]
    Inherit(String),
}

/// The subset file is named on the command line.
impl bitpoll_error_class::Classify for SubsetError {
    fn class(&self) -> bitpoll_error_class::ErrorClass {
        bitpoll_error_class::ErrorClass::BadInput
    }
}

/// Builds an index for CPython `python_version` (full `X.Y.Z`) from the subset's JSON text.
pub fn import_subset(
    json: &str,
    python_attr: &str,
    python_version: &str,
) -> Result<NixpkgsIndex, SubsetError> {
    let subset: Subset = serde_json::from_str(json).map_err(SubsetError::Json)?;
    let py: pep440_rs::Version = python_version.parse().map_err(SubsetError::Python)?;
    let mut packages = BTreeMap::new();
    // Some versions are written as "(inherits psycopg2 version)": take the named package's.
    let plain: BTreeMap<String, String> = subset
        .packages
        .iter()
        .map(|p| (p.attr.clone(), first_token(&p.version).to_string()))
        .collect();
    for p in subset.packages.iter().filter(|p| p.in_python_set()) {
        let version = if p.version.starts_with("(inherits") {
            let from = p.version.split_whitespace().nth(1).ok_or_else(|| {
                SubsetError::Inherit(format!("{}: unreadable inherited version", p.attr))
            })?;
            plain.get(from).cloned().ok_or_else(|| {
                SubsetError::Inherit(format!("{}: inherits from unknown `{from}`", p.attr))
            })?
        } else {
            first_token(&p.version).to_string()
        };
        let disabled = match p.disabled.as_deref() {
            None => false,
            Some(cond) => evaluate_disabled(cond, &py),
        };
        packages.insert(
            p.attr.clone(),
            NixPackage {
                pypi_name: p.pypi_name.clone(),
                version,
                dependencies: p.dependencies.clone(),
                optional_dependencies: p.optional_dependencies.clone(),
                broken: p.broken,
                disabled,
            },
        );
    }
    let aliases = ALIASES
        .iter()
        .filter(|(_, target)| packages.contains_key(*target))
        .map(|(a, t)| (a.to_string(), t.to_string()))
        .collect();
    Ok(NixpkgsIndex {
        schema: SCHEMA,
        nixpkgs: Identity {
            identity: format!("nixpkgs-python-subset-{}", subset.collected),
            revision: None,
            source:
                "converted from a hand-collected nixpkgs-python-subset.json: package files read from \
                     several nixpkgs revisions up to about 2026-09, not one commit"
                    .into(),
        },
        python: PythonInfo {
            attr: python_attr.into(),
            version: python_version.into(),
        },
        aliases,
        packages,
    })
}

fn first_token(s: &str) -> &str {
    s.split_whitespace().next().unwrap_or(s)
}

/// Evaluates the `disabled = ...` conditions the subset records. Only `pythonOlder "X.Y"` and
/// `isPyPy` occur; anything else is treated as enabled (the Nix evaluator is the real judge).
fn evaluate_disabled(cond: &str, python: &pep440_rs::Version) -> bool {
    if let Some(rest) = cond.trim().strip_prefix("pythonOlder") {
        let quoted = rest.trim().trim_start_matches('"');
        let bound = quoted.split('"').next().unwrap_or("");
        if let Ok(bound) = bound.parse::<pep440_rs::Version>() {
            return python < &bound;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inherited_versions_and_disabled_conditions() {
        let json = r#"{"collected": "2026-01-01", "packages": [
          {"pypi_name": "psycopg2", "attr": "psycopg2", "version": "2.9.11", "disabled": null},
          {"pypi_name": "psycopg2-binary", "attr": "psycopg2-binary", "version": "(inherits psycopg2 version)", "dependencies": ["psycopg2"], "disabled": null},
          {"pypi_name": "flit-core", "attr": "flit-core", "version": "3.12.0 (inherited from flit)", "disabled": null},
          {"pypi_name": "django", "attr": "django_6", "version": "6.0.7", "disabled": "pythonOlder \"3.12\" (seen in 6.0.1)"},
          {"pypi_name": "django", "attr": "django_5", "version": "5.2.16", "disabled": null}
        ]}"#;
        let idx = import_subset(json, "python311", "3.11.9").unwrap();
        assert_eq!(idx.packages["psycopg2-binary"].version, "2.9.11");
        assert_eq!(idx.packages["flit-core"].version, "3.12.0");
        assert!(idx.packages["django_6"].disabled);
        assert!(!idx.packages["django_5"].disabled);
        assert_eq!(idx.aliases["django"], "django_5");
        let idx = import_subset(json, "python313", "3.13.0").unwrap();
        assert!(!idx.packages["django_6"].disabled);
    }

    #[test]
    fn top_level_packages_are_not_in_the_python_set() {
        let json = r#"{"collected": "2026-01-01", "packages": [
          {"pypi_name": "uwsgi", "attr": "uwsgi", "version": "2.0.31", "disabled": null,
           "path": "pkgs/by-name/uw/uwsgi/package.nix"},
          {"pypi_name": "django", "attr": "django_5", "version": "5.2.16", "disabled": null,
           "path": "pkgs/development/python-modules/django/5.nix"}
        ]}"#;
        let idx = import_subset(json, "python313", "3.13.0").unwrap();
        assert!(!idx.packages.contains_key("uwsgi"));
        assert!(idx.packages.contains_key("django_5"));
    }
}
