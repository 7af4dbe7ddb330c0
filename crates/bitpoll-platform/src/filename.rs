use pep440_rs::Version;
use pep508_rs::PackageName;

use crate::TagPriority;

#[derive(Debug, thiserror::Error)]
pub enum FilenameError {
    #[error("`{0}` is not a wheel or sdist file name")]
    Unknown(String),
    #[error("`{filename}` has an invalid version `{version}`")]
    BadVersion { filename: String, version: String },
}

/// A parsed wheel file name (PEP 427 / binary distribution format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelFilename {
    pub name: String,
    pub version: Version,
    pub python: Vec<String>,
    pub abi: Vec<String>,
    pub platform: Vec<String>,
}

impl WheelFilename {
    pub fn parse(filename: &str) -> Result<Self, FilenameError> {
        let stem = filename
            .strip_suffix(".whl")
            .ok_or_else(|| FilenameError::Unknown(filename.to_string()))?;
        let parts: Vec<&str> = stem.split('-').collect();
        // name-version[-build]-python-abi-platform
        let (name, version, py, abi, plat) = match parts.as_slice() {
            [n, v, py, abi, plat] | [n, v, _, py, abi, plat] => (*n, *v, *py, *abi, *plat),
            _ => return Err(FilenameError::Unknown(filename.to_string())),
        };
        let version = version.parse().map_err(|_| FilenameError::BadVersion {
            filename: filename.to_string(),
            version: version.to_string(),
        })?;
        let split = |s: &str| s.split('.').map(str::to_string).collect::<Vec<_>>();
        Ok(Self {
            name: name.to_string(),
            version,
            python: split(py),
            abi: split(abi),
            platform: split(plat),
        })
    }

    /// Every (python, abi, platform) triple the compressed tag set stands for.
    pub fn tag_triples(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.python.iter().flat_map(move |py| {
            self.abi.iter().flat_map(move |abi| {
                self.platform
                    .iter()
                    .map(move |plat| (py.as_str(), abi.as_str(), plat.as_str()))
            })
        })
    }

    /// How well this wheel fits a target (lower is better); `None` when it cannot be installed.
    pub fn rank(&self, tags: &TagPriority) -> Option<usize> {
        tags.rank(self.tag_triples())
    }

    /// Whether the wheel contains compiled code (anything but `none-any`).
    pub fn is_native(&self) -> bool {
        !(self.abi.iter().all(|a| a == "none") && self.platform.iter().all(|p| p == "any"))
    }
}

/// A parsed source distribution file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdistFilename {
    pub version: Version,
    pub extension: &'static str,
}

const SDIST_EXTENSIONS: [&str; 5] = [".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz"];

impl SdistFilename {
    /// Parses `{name}-{version}{ext}`; the project name is needed because both name and version
    /// may contain hyphens in legacy file names.
    pub fn parse(filename: &str, project: &PackageName) -> Result<Self, FilenameError> {
        let (stem, extension) = SDIST_EXTENSIONS
            .iter()
            .find_map(|ext| filename.strip_suffix(ext).map(|stem| (stem, *ext)))
            .ok_or_else(|| FilenameError::Unknown(filename.to_string()))?;
        for (idx, _) in stem.match_indices('-') {
            let (name, version) = (&stem[..idx], &stem[idx + 1..]);
            if PackageName::new(name.to_string()).ok().as_ref() == Some(project) {
                let version = version.parse().map_err(|_| FilenameError::BadVersion {
                    filename: filename.to_string(),
                    version: version.to_string(),
                })?;
                return Ok(Self { version, extension });
            }
        }
        Err(FilenameError::Unknown(filename.to_string()))
    }
}

/// Either kind of distribution file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DistFilename {
    Wheel(WheelFilename),
    Sdist(SdistFilename),
}

impl DistFilename {
    pub fn parse(filename: &str, project: &PackageName) -> Result<Self, FilenameError> {
        if filename.ends_with(".whl") {
            WheelFilename::parse(filename).map(Self::Wheel)
        } else {
            SdistFilename::parse(filename, project).map(Self::Sdist)
        }
    }

    pub fn version(&self) -> &Version {
        match self {
            Self::Wheel(w) => &w.version,
            Self::Sdist(s) => &s.version,
        }
    }
}

impl bitpoll_error_class::Classify for FilenameError {
    fn class(&self) -> bitpoll_error_class::ErrorClass {
        bitpoll_error_class::ErrorClass::BadInput
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_names_with_build_tags_and_compressed_tags() {
        let w = WheelFilename::parse("foo_bar-1.2.post1-3-py2.py3-none-any.whl").unwrap();
        assert_eq!(w.version.to_string(), "1.2.post1");
        assert_eq!(w.tag_triples().count(), 2);
        assert!(!w.is_native());
        assert!(WheelFilename::parse("foo-1.0-any.whl").is_err());
    }

    #[test]
    fn sdist_names_need_the_project_name() {
        let name = PackageName::new("django-simple-csp".into()).unwrap();
        let s = SdistFilename::parse("django-simple-csp-0.5.dev1.tar.gz", &name).unwrap();
        assert_eq!(s.version.to_string(), "0.5.dev1");
        let s = SdistFilename::parse("django_simple_csp-0.5.tar.gz", &name).unwrap();
        assert_eq!(s.version.to_string(), "0.5");
        assert!(SdistFilename::parse("other-1.0.tar.gz", &name).is_err());
        assert!(SdistFilename::parse("django-simple-csp-1.0.exe", &name).is_err());
    }
}
