use std::collections::HashMap;
use std::sync::Arc;

/// The wheel tags one interpreter accepts, with a rank: lower is better. Ranking follows the
/// order installers use: the most specific interpreter and ABI first, newer platforms before
/// older ones, pure-Python wheels last.
#[derive(Debug, Clone, Default)]
pub struct TagPriority {
    // Shared: a target's table has thousands of entries (every macOS release since 10.0 times
    // each tag form), and resolution hands it to more than one owner.
    ranks: Arc<HashMap<(String, String, String), usize>>,
}

impl TagPriority {
    /// Tags for CPython `major.minor` on the given platforms (best first).
    pub fn cpython(major: u16, minor: u16, platforms: &[String]) -> Self {
        let mut ordered: Vec<(String, String, String)> = Vec::new();
        let cp = format!("cp{major}{minor}");
        for plat in platforms {
            ordered.push((cp.clone(), cp.clone(), plat.clone()));
        }
        // abi3 wheels built for this or any older 3.x (PEP 384) run here.
        for m in (2..=minor).rev() {
            for plat in platforms {
                ordered.push((format!("cp{major}{m}"), "abi3".into(), plat.clone()));
            }
        }
        for plat in platforms {
            ordered.push((cp.clone(), "none".into(), plat.clone()));
        }
        for m in (0..=minor).rev() {
            for plat in platforms {
                ordered.push((format!("py{major}{m}"), "none".into(), plat.clone()));
            }
            if m == minor {
                for plat in platforms {
                    ordered.push((format!("py{major}"), "none".into(), plat.clone()));
                }
            }
        }
        ordered.push((cp.clone(), "none".into(), "any".into()));
        ordered.push((format!("py{major}{minor}"), "none".into(), "any".into()));
        ordered.push((format!("py{major}"), "none".into(), "any".into()));
        for m in (0..minor).rev() {
            ordered.push((format!("py{major}{m}"), "none".into(), "any".into()));
        }
        let mut ranks = HashMap::with_capacity(ordered.len());
        for (rank, tag) in ordered.into_iter().enumerate() {
            ranks.entry(tag).or_insert(rank);
        }
        Self {
            ranks: Arc::new(ranks),
        }
    }

    /// The best rank among a wheel's expanded tag triples, or `None` if none is accepted.
    pub fn rank<'a>(
        &self,
        tags: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> Option<usize> {
        tags.into_iter()
            .filter_map(|(py, abi, plat)| {
                self.ranks
                    .get(&(py.to_string(), abi.to_string(), plat.to_string()))
                    .copied()
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use crate::{Target, WheelFilename};

    fn rank(system: &str, filename: &str) -> Option<usize> {
        let target = Target::new(system, "3.13").unwrap();
        let wheel = WheelFilename::parse(filename).unwrap();
        wheel.rank(target.tags())
    }

    #[test]
    fn linux_accepts_manylinux_and_rejects_other_systems() {
        let native = "lxml-6.0.0-cp313-cp313-manylinux_2_26_x86_64.manylinux_2_28_x86_64.whl";
        assert!(rank("x86_64-linux", native).is_some());
        assert!(rank("aarch64-linux", native).is_none());
        assert!(rank("x86_64-darwin", native).is_none());
        assert!(rank("x86_64-linux", "x-1.0-cp313-cp313-musllinux_1_2_x86_64.whl").is_none());
        assert!(rank("x86_64-linux", "x-1.0-cp312-cp312-manylinux2014_x86_64.whl").is_none());
        assert!(rank(
            "x86_64-linux",
            "x-1.0-cp313-cp313-manylinux_2_99_x86_64.whl"
        )
        .is_none());
    }

    #[test]
    fn specific_beats_abi3_beats_pure() {
        let specific = rank(
            "aarch64-linux",
            "x-1-cp313-cp313-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
        )
        .unwrap();
        let abi3 = rank("aarch64-linux", "x-1-cp39-abi3-manylinux_2_17_aarch64.whl").unwrap();
        let pure = rank("aarch64-linux", "x-1-py3-none-any.whl").unwrap();
        assert!(specific < abi3 && abi3 < pure);
        assert!(rank("aarch64-linux", "x-1-py2-none-any.whl").is_none());
        assert!(rank("aarch64-linux", "x-1-cp314-abi3-manylinux_2_17_aarch64.whl").is_none());
    }

    #[test]
    fn macos_respects_the_deployment_target() {
        assert!(rank("aarch64-darwin", "x-1-cp313-cp313-macosx_11_0_arm64.whl").is_some());
        assert!(rank(
            "aarch64-darwin",
            "x-1-cp313-cp313-macosx_10_13_universal2.whl"
        )
        .is_some());
        assert!(rank("aarch64-darwin", "x-1-cp313-cp313-macosx_14_0_arm64.whl").is_none());
        assert!(rank("x86_64-darwin", "x-1-cp313-cp313-macosx_10_13_x86_64.whl").is_some());
        assert!(rank("x86_64-darwin", "x-1-cp313-cp313-macosx_11_0_arm64.whl").is_none());
    }
}
