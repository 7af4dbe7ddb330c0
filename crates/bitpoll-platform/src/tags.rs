use std::collections::HashMap;
use std::sync::Arc;

/// The wheel tags one interpreter accepts, with a rank: lower is better. Ranking follows the
/// order installers use: the most specific interpreter and ABI first, newer platforms before
/// older ones, pure-Python wheels last.
#[derive(Debug, Clone, Default)]
pub struct TagPriority {
    // Shared: resolution hands a target's table to more than one owner.
    table: Arc<Table>,
}

/// The ranks, factored: every interpreter-and-ABI pair that takes a platform is ranked with
/// each of the target's platforms, pair first, platform second, so a rank is the pair's
/// position times the number of platforms plus the platform's. A darwin target accepts
/// hundreds of platform tags (each macOS release since 10.0 times each form), and a table of
/// every triple made its tags the largest part of starting a target.
#[derive(Debug, Default)]
struct Table {
    /// Each platform's position in the target's list (the first, if listed twice).
    platforms: HashMap<String, usize>,
    /// The length of that list.
    platforms_listed: usize,
    /// Interpreter tag -> ABI tag -> the pair's position among those ranked with platforms.
    pairs: HashMap<String, HashMap<String, usize>>,
    /// Interpreter tag -> ABI tag -> rank, for the `any` platform: after every other.
    any: HashMap<String, HashMap<String, usize>>,
}

fn insert_first(map: &mut HashMap<String, HashMap<String, usize>>, py: &str, abi: &str, at: usize) {
    map.entry(py.to_string())
        .or_default()
        .entry(abi.to_string())
        .or_insert(at);
}

fn lookup(map: &HashMap<String, HashMap<String, usize>>, py: &str, abi: &str) -> Option<usize> {
    map.get(py)?.get(abi).copied()
}

impl TagPriority {
    /// Tags for CPython `major.minor` on the given platforms (best first).
    pub fn cpython(major: u16, minor: u16, platforms: &[String]) -> Self {
        let cp = format!("cp{major}{minor}");
        // The pairs ranked with each platform, best first.
        let mut pairs: Vec<(String, String)> = vec![(cp.clone(), cp.clone())];
        // abi3 wheels built for this or any older 3.x (PEP 384) run here.
        for m in (2..=minor).rev() {
            pairs.push((format!("cp{major}{m}"), "abi3".into()));
        }
        pairs.push((cp.clone(), "none".into()));
        for m in (0..=minor).rev() {
            pairs.push((format!("py{major}{m}"), "none".into()));
            if m == minor {
                pairs.push((format!("py{major}"), "none".into()));
            }
        }
        let mut any = vec![
            cp.clone(),
            format!("py{major}{minor}"),
            format!("py{major}"),
        ];
        for m in (0..minor).rev() {
            any.push(format!("py{major}{m}"));
        }

        let mut table = Table {
            platforms_listed: platforms.len(),
            ..Table::default()
        };
        for (at, plat) in platforms.iter().enumerate() {
            table.platforms.entry(plat.clone()).or_insert(at);
        }
        for (at, (py, abi)) in pairs.iter().enumerate() {
            insert_first(&mut table.pairs, py, abi, at);
        }
        let first_any = pairs.len() * platforms.len();
        for (k, py) in any.iter().enumerate() {
            insert_first(&mut table.any, py, "none", first_any + k);
        }
        Self {
            table: Arc::new(table),
        }
    }

    /// The rank of one tag triple, or `None` if it is not accepted.
    fn rank_of(&self, py: &str, abi: &str, plat: &str) -> Option<usize> {
        let table = &*self.table;
        if plat == "any" {
            return lookup(&table.any, py, abi);
        }
        let pair = lookup(&table.pairs, py, abi)?;
        let plat = *table.platforms.get(plat)?;
        Some(pair * table.platforms_listed + plat)
    }

    /// The best rank among a wheel's expanded tag triples, or `None` if none is accepted.
    pub fn rank<'a>(
        &self,
        tags: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> Option<usize> {
        tags.into_iter()
            .filter_map(|(py, abi, plat)| self.rank_of(py, abi, plat))
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
