use std::collections::BTreeMap;

use pep440_rs::Version;
use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder};

use crate::tags::TagPriority;

/// The systems a lock covers unless told otherwise: the four Nix systems nixpkgs builds
/// Python for.
pub const DEFAULT_SYSTEMS: [&str; 4] = [
    "x86_64-linux",
    "aarch64-linux",
    "aarch64-darwin",
    "x86_64-darwin",
];

/// The newest glibc whose manylinux wheels we accept on Linux targets. nixpkgs ships a newer
/// glibc than most wheels ask for; 2.40 is what its stable branches carried in 2025-2026, and a
/// lower number only costs a fallback to an older wheel or the sdist, never a broken install.
const MANYLINUX_MAX_GLIBC_MINOR: u16 = 40;

/// The macOS deployment target nixpkgs builds for (its minimum supported macOS), used unless
/// the policy sets another per darwin system: wheels that need a newer macOS would fail to
/// load on the oldest release the environment is meant for, so they are not selected.
pub const MACOS_DEFAULT: (u16, u16) = (11, 0);

/// Beyond any macOS release: a wheel that only this would accept needs a newer deployment
/// target than the one set, which an explanation can say.
const MACOS_ANY: (u16, u16) = (40, 0);

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("unknown Nix system `{0}` (supported: x86_64-linux, aarch64-linux, aarch64-darwin, x86_64-darwin)")]
    UnknownSystem(String),
    #[error("invalid Python version `{0}`: expected X.Y or X.Y.Z")]
    BadPython(String),
    #[error("invalid macOS version `{0}`: expected X.Y, 11.0 or later")]
    BadMacos(String),
    #[error("a macOS deployment target is set for `{0}`, which is not a darwin system")]
    MacosOnLinux(String),
}

/// `14.0` -> (14, 0); the range nixpkgs can deploy to.
pub fn parse_macos_version(text: &str) -> Result<(u16, u16), TargetError> {
    let bad = || TargetError::BadMacos(text.to_string());
    let (major, minor) = text.split_once('.').ok_or_else(bad)?;
    let version = (
        major.parse::<u16>().map_err(|_| bad())?,
        minor.parse::<u16>().map_err(|_| bad())?,
    );
    if !(11..MACOS_ANY.0).contains(&version.0) {
        return Err(bad());
    }
    Ok(version)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Os {
    Linux,
    Darwin,
}

/// One (python, system) pair that the lock must describe completely.
#[derive(Debug, Clone)]
pub struct Target {
    /// The name used in the lock; the Nix system string.
    pub name: String,
    pub system: String,
    /// `X.Y.Z` of the interpreter.
    pub python_full_version: Version,
    os: Os,
    /// `platform_machine` as Python reports it (`arm64` on macOS, `aarch64` on Linux).
    machine: &'static str,
    markers: MarkerEnvironment,
    tags: TagPriority,
    /// Darwin only: the deployment target, and the tags any macOS would accept.
    macos: Option<((u16, u16), TagPriority)>,
}

impl Target {
    /// Builds a target for a Nix system and a Python version such as `3.13` or `3.13.9`, with
    /// nixpkgs' macOS deployment target on darwin.
    pub fn new(system: &str, python: &str) -> Result<Self, TargetError> {
        Self::with_macos(system, python, None)
    }

    /// Like [`Target::new`], with a macOS deployment target (`None`: nixpkgs' default).
    pub fn with_macos(
        system: &str,
        python: &str,
        macos: Option<(u16, u16)>,
    ) -> Result<Self, TargetError> {
        let (os, machine) = match system {
            "x86_64-linux" => (Os::Linux, "x86_64"),
            "aarch64-linux" => (Os::Linux, "aarch64"),
            "aarch64-darwin" => (Os::Darwin, "arm64"),
            "x86_64-darwin" => (Os::Darwin, "x86_64"),
            other => return Err(TargetError::UnknownSystem(other.to_string())),
        };
        let full = full_python_version(python)?;
        let release = full.release();
        let (major, minor) = (release[0], release[1]);
        let python_version = format!("{major}.{minor}");
        let full_str = full.to_string();
        let (sys_platform, platform_system) = match os {
            Os::Linux => ("linux", "Linux"),
            Os::Darwin => ("darwin", "Darwin"),
        };
        let markers = MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: &full_str,
            os_name: "posix",
            platform_machine: machine,
            platform_python_implementation: "CPython",
            // Neither is knowable for a system we do not run on; requirements almost never
            // use them, and an empty string makes any comparison against them false.
            platform_release: "",
            platform_version: "",
            platform_system,
            python_full_version: &full_str,
            python_version: &python_version,
            sys_platform,
        })
        .map_err(|_| TargetError::BadPython(python.to_string()))?;
        if os == Os::Linux && macos.is_some() {
            return Err(TargetError::MacosOnLinux(system.to_string()));
        }
        let cpython =
            |platforms: &[String]| TagPriority::cpython(major as u16, minor as u16, platforms);
        let (tags, macos) = match os {
            Os::Linux => (cpython(&linux_platforms(machine)), None),
            Os::Darwin => {
                let floor = macos.unwrap_or(MACOS_DEFAULT);
                (
                    cpython(&macos_platforms(machine, floor)),
                    Some((floor, cpython(&macos_platforms(machine, MACOS_ANY)))),
                )
            }
        };
        Ok(Self {
            name: system.to_string(),
            system: system.to_string(),
            python_full_version: full,
            os,
            machine,
            markers,
            tags,
            macos,
        })
    }

    /// The macOS deployment target of a darwin target, `11.0`.
    pub fn macos_deployment_target(&self) -> Option<String> {
        self.macos
            .as_ref()
            .map(|((major, minor), _)| format!("{major}.{minor}"))
    }

    /// For a wheel this darwin target rejects only because it needs a newer macOS than the
    /// deployment target: the oldest macOS it needs, `14.0`.
    pub fn needs_newer_macos(&self, wheel: &crate::WheelFilename) -> Option<String> {
        let (_, any) = self.macos.as_ref()?;
        if wheel.rank(&self.tags).is_some() || wheel.rank(any).is_none() {
            return None;
        }
        wheel
            .platform
            .iter()
            .filter_map(|p| {
                let rest = p.strip_prefix("macosx_")?;
                let mut parts = rest.splitn(3, '_');
                let major: u16 = parts.next()?.parse().ok()?;
                let minor: u16 = parts.next()?.parse().ok()?;
                Some((major, minor))
            })
            .min()
            .map(|(major, minor)| format!("{major}.{minor}"))
    }

    pub fn markers(&self) -> &MarkerEnvironment {
        &self.markers
    }

    /// The marker environment as the lock records it, one key per marker variable.
    pub fn marker_map(&self) -> BTreeMap<&'static str, String> {
        let m = &self.markers;
        BTreeMap::from([
            ("implementation_name", m.implementation_name().to_string()),
            (
                "implementation_version",
                m.implementation_version().to_string(),
            ),
            ("os_name", m.os_name().to_string()),
            ("platform_machine", m.platform_machine().to_string()),
            (
                "platform_python_implementation",
                m.platform_python_implementation().to_string(),
            ),
            ("platform_system", m.platform_system().to_string()),
            ("python_full_version", m.python_full_version().to_string()),
            ("python_version", m.python_version().to_string()),
            ("sys_platform", m.sys_platform().to_string()),
        ])
    }

    /// Tag preferences for wheels on this target.
    pub fn tags(&self) -> &TagPriority {
        &self.tags
    }

    pub fn is_linux(&self) -> bool {
        self.os == Os::Linux
    }

    pub fn machine(&self) -> &str {
        self.machine
    }
}

fn full_python_version(python: &str) -> Result<Version, TargetError> {
    let bad = || TargetError::BadPython(python.to_string());
    let version: Version = python.parse().map_err(|_| bad())?;
    if version.is_pre() || version.is_post() || version.is_dev() || version.is_local() {
        return Err(bad());
    }
    match version.release() {
        [3, minor] => Ok(Version::new([3, *minor, 0])),
        [3, _, _] => Ok(version),
        _ => Err(bad()),
    }
}

/// Platform tags a glibc-based Linux accepts, best first.
fn linux_platforms(machine: &str) -> Vec<String> {
    let mut out = Vec::new();
    for minor in (5..=MANYLINUX_MAX_GLIBC_MINOR).rev() {
        out.push(format!("manylinux_2_{minor}_{machine}"));
        // The legacy aliases (PEP 513, 571, 599) name the same glibc floors.
        match minor {
            17 => out.push(format!("manylinux2014_{machine}")),
            12 if machine == "x86_64" => out.push(format!("manylinux2010_{machine}")),
            5 if machine == "x86_64" => out.push(format!("manylinux1_{machine}")),
            _ => {}
        }
    }
    out.push(format!("linux_{machine}"));
    out
}

/// Platform tags macOS accepts up to the deployment target, best (newest) first.
fn macos_platforms(machine: &str, floor: (u16, u16)) -> Vec<String> {
    // Binary formats that can run on this machine, best first.
    let formats: &[&str] = match machine {
        "arm64" => &["arm64", "universal2"],
        _ => &[
            "x86_64",
            "intel",
            "fat64",
            "fat32",
            "universal2",
            "universal",
        ],
    };
    let mut out = Vec::new();
    for major in (11..=floor.0).rev() {
        for format in formats {
            out.push(format!("macosx_{major}_0_{format}"));
        }
    }
    // macOS 11 still loads binaries built for 10.x: on Apple silicon only universal2 ones
    // (they carry an arm64 slice), on Intel every Intel-capable format. universal2 wheels
    // exist from 10.9 on.
    for minor in (4..=16).rev() {
        for format in formats.iter().filter(|f| **f != "arm64") {
            if *format == "universal2" && minor < 9 {
                continue;
            }
            out.push(format!("macosx_10_{minor}_{format}"));
        }
    }
    out
}

/// Targets come from the command line and the policy.
impl bitpoll_error_class::Classify for TargetError {
    fn class(&self) -> bitpoll_error_class::ErrorClass {
        bitpoll_error_class::ErrorClass::BadInput
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_follow_the_system() {
        let t = Target::new("aarch64-darwin", "3.13").unwrap();
        let m = t.marker_map();
        assert_eq!(m["sys_platform"], "darwin");
        assert_eq!(m["platform_machine"], "arm64");
        assert_eq!(m["python_full_version"], "3.13.0");
        let t = Target::new("aarch64-linux", "3.12.4").unwrap();
        assert_eq!(t.marker_map()["platform_machine"], "aarch64");
        assert_eq!(t.marker_map()["python_version"], "3.12");
    }

    #[test]
    fn the_macos_deployment_target_decides_which_wheels_load() {
        let wheel = |name: &str| crate::WheelFilename::parse(name).unwrap();
        let new = wheel("torch-2.13.0-cp313-none-macosx_14_0_arm64.whl");
        let old = wheel("torch-2.13.0-cp313-none-macosx_11_0_arm64.whl");
        let default = Target::new("aarch64-darwin", "3.13").unwrap();
        assert_eq!(default.macos_deployment_target().as_deref(), Some("11.0"));
        assert!(new.rank(default.tags()).is_none());
        assert_eq!(default.needs_newer_macos(&new).as_deref(), Some("14.0"));
        assert_eq!(default.needs_newer_macos(&old), None);
        let raised = Target::with_macos("aarch64-darwin", "3.13", Some((14, 0))).unwrap();
        assert!(new.rank(raised.tags()).is_some());
        assert!(new.rank(raised.tags()) < old.rank(raised.tags()));
        // Another Python's wheel is not a deployment-target question.
        let cp312 = wheel("torch-2.13.0-cp312-cp312-macosx_14_0_arm64.whl");
        assert_eq!(default.needs_newer_macos(&cp312), None);
        let linux = Target::new("x86_64-linux", "3.13").unwrap();
        assert_eq!(linux.macos_deployment_target(), None);
        assert!(matches!(
            Target::with_macos("x86_64-linux", "3.13", Some((14, 0))),
            Err(TargetError::MacosOnLinux(_))
        ));
        assert_eq!(parse_macos_version("14.0").unwrap(), (14, 0));
        assert!(parse_macos_version("10.15").is_err());
        assert!(parse_macos_version("fourteen").is_err());
    }

    #[test]
    fn rejects_unknown_systems_and_pythons() {
        assert!(matches!(
            Target::new("x86_64-windows", "3.13"),
            Err(TargetError::UnknownSystem(_))
        ));
        assert!(matches!(
            Target::new("x86_64-linux", "2"),
            Err(TargetError::BadPython(_))
        ));
        assert!(matches!(
            Target::new("x86_64-linux", "3.13rc1"),
            Err(TargetError::BadPython(_))
        ));
    }
}
