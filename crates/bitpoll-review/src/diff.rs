//! What changed between two locks, with the changes that need a second look flagged, and
//! its renderings (text, a pull-request body in markdown; JSON through serde).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use bitpoll_lockfile::{ArtifactKind, Lock, Package, Source};
use bitpoll_platform::WheelFilename;
use pep440_rs::Version;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Added,
    Removed,
    Upgraded,
    Downgraded,
    SourceMoved,
    Rebuilt,
}

/// Why a change deserves a second look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flag {
    /// An artifact's hash changed while its version did not.
    HashChanged,
    Downgrade,
    /// Some target now builds this package from an sdist.
    NewSdistBuild,
    /// A new package with compiled code.
    NativeCode,
    PreRelease,
    /// The pinned release is yanked on the index (and was not before).
    Yanked,
    /// A new package that no top-level requirement names.
    NewTransitive,
    /// The dependency metadata now comes from elsewhere.
    MetadataSourceChanged,
    /// What an sdist is built with changed: its backend or a build package.
    BuildSystemChanged,
}

impl Flag {
    fn describe(self) -> &'static str {
        match self {
            Flag::HashChanged => "artifact hash changed but the version did not",
            Flag::Downgrade => "downgrade",
            Flag::NewSdistBuild => "new sdist that must be built",
            Flag::NativeCode => "new package with native code",
            Flag::PreRelease => "new pre-release",
            Flag::Yanked => "yanked release",
            Flag::NewTransitive => "new dependency no requirement names directly",
            Flag::MetadataSourceChanged => "metadata source changed",
            Flag::BuildSystemChanged => "build system changed",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Side {
    pub version: String,
    pub source: Source,
}

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub name: String,
    pub kind: Kind,
    pub old: Option<Side>,
    pub new: Option<Side>,
    /// The targets this change applies to (all targets when it is the same everywhere).
    pub targets: Vec<String>,
    pub flags: Vec<Flag>,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub old: String,
    pub new: String,
    pub targets: Vec<String>,
    pub changes: Vec<Change>,
    pub inputs_changed: Vec<String>,
    /// Supply-chain signals on new pins (see `security.rs`).
    pub security: Vec<crate::security::Finding>,
}

/// One package's entries before and after, on one target.
type Transition<'a> = (Option<&'a Package>, Option<&'a Package>, String);

fn side(p: &Package) -> Side {
    Side {
        version: p.version.clone(),
        source: p.source,
    }
}

fn version(s: &str) -> Option<Version> {
    s.parse().ok()
}

fn root_names(lock: &Lock) -> BTreeSet<String> {
    crate::roots(lock)
        .into_iter()
        .map(|(name, _, _)| name)
        .collect()
}

pub fn compare(old_label: &str, old: &Lock, new_label: &str, new: &Lock) -> Report {
    let targets: BTreeSet<String> = old
        .targets
        .iter()
        .chain(&new.targets)
        .map(|t| t.name.clone())
        .collect();
    let old_roots = root_names(old);
    let new_roots = root_names(new);
    // Names as written, before the policy's replacements.
    let new_requested: BTreeSet<String> = crate::roots(new)
        .into_iter()
        .filter_map(|(_, req, _)| bitpoll_pep508::parse(&req).ok())
        .map(|r| r.name.to_string())
        .collect();
    // name -> (old entry, new entry) -> targets with that pair
    let mut transitions: BTreeMap<String, Vec<Transition>> = BTreeMap::new();
    for t in &targets {
        let o = old.packages_for(t);
        let n = new.packages_for(t);
        let names: BTreeSet<&str> = o.keys().chain(n.keys()).copied().collect();
        for name in names {
            let (a, b) = (o.get(name).copied(), n.get(name).copied());
            if a == b {
                continue;
            }
            transitions
                .entry(name.to_string())
                .or_default()
                .push((a, b, t.clone()));
        }
    }
    let mut changes = Vec::new();
    for (name, list) in transitions {
        // Group targets that saw the same transition.
        let mut groups: Vec<(Option<&Package>, Option<&Package>, Vec<String>)> = Vec::new();
        for (a, b, t) in list {
            match groups.iter_mut().find(|(ga, gb, _)| *ga == a && *gb == b) {
                Some(g) => g.2.push(t),
                None => groups.push((a, b, vec![t])),
            }
        }
        for (a, b, ts) in groups {
            if let Some(change) = classify(&name, a, b, ts, &old_roots, &new_roots, &new_requested)
            {
                changes.push(change);
            }
        }
    }
    changes.extend(build_hash_changes(old, new));
    changes.sort_by(|x, y| x.kind.cmp(&y.kind).then_with(|| x.name.cmp(&y.name)));
    let mut inputs_changed = Vec::new();
    for (file, reqs) in &new.inputs.requirements {
        if old.inputs.requirements.get(file) != Some(reqs) {
            inputs_changed.push(format!("{file} changed"));
        }
    }
    if old.inputs.policy_sha256 != new.inputs.policy_sha256 {
        inputs_changed.push(format!("{} changed", new.inputs.policy));
    }
    if old.nixpkgs.as_ref().map(|n| &n.identity) != new.nixpkgs.as_ref().map(|n| &n.identity) {
        let id = |l: &Lock| {
            l.nixpkgs
                .as_ref()
                .map(|n| n.identity.clone())
                .unwrap_or_else(|| "none".into())
        };
        inputs_changed.push(format!("nixpkgs: {} -> {}", id(old), id(new)));
    }
    Report {
        old: old_label.to_string(),
        new: new_label.to_string(),
        targets: targets.into_iter().collect(),
        changes,
        inputs_changed,
        security: crate::security::review(old, new, bitpoll_simple::Timestamp::now()),
    }
}

fn classify(
    name: &str,
    a: Option<&Package>,
    b: Option<&Package>,
    targets: Vec<String>,
    old_roots: &BTreeSet<String>,
    new_roots: &BTreeSet<String>,
    new_requested: &BTreeSet<String>,
) -> Option<Change> {
    let mut flags = BTreeSet::new();
    let mut notes = Vec::new();
    let kind = match (a, b) {
        (None, None) => return None,
        (None, Some(n)) => {
            if !new_roots.contains(name) {
                flags.insert(Flag::NewTransitive);
            }
            if n.artifacts
                .iter()
                .any(|x| WheelFilename::parse(&x.filename).is_ok_and(|w| w.is_native()))
            {
                flags.insert(Flag::NativeCode);
            }
            Kind::Added
        }
        (Some(_), None) => {
            if new_requested.contains(name) && !new_roots.contains(name) {
                notes.push("still required; served by its replacement in the policy".into());
            } else if old_roots.contains(name) && !new_roots.contains(name) {
                notes.push("no longer required".into());
            }
            Kind::Removed
        }
        (Some(o), Some(n)) => match (version(&o.version), version(&n.version)) {
            (Some(ov), Some(nv)) if nv > ov => Kind::Upgraded,
            (Some(ov), Some(nv)) if nv < ov => {
                flags.insert(Flag::Downgrade);
                Kind::Downgraded
            }
            _ if o.source != n.source => Kind::SourceMoved,
            _ => Kind::Rebuilt,
        },
    };
    if let (Some(o), Some(n)) = (a, b) {
        if o.source != n.source && kind != Kind::SourceMoved {
            notes.push(format!(
                "source {} -> {}",
                source_name(o.source),
                source_name(n.source)
            ));
        }
        if o.version == n.version {
            for na in &n.artifacts {
                if let Some(oa) = o.artifacts.iter().find(|oa| oa.filename == na.filename) {
                    if oa.sha256 != na.sha256 {
                        flags.insert(Flag::HashChanged);
                        notes.push(format!(
                            "{}: sha256 {} -> {}",
                            na.filename, oa.sha256, na.sha256
                        ));
                    }
                }
            }
        }
        for note in build_system_changes(o, n, &targets) {
            flags.insert(Flag::BuildSystemChanged);
            notes.push(note);
        }
        if o.source == Source::Index && n.source == Source::Index && o.metadata != n.metadata {
            flags.insert(Flag::MetadataSourceChanged);
            notes.push(format!("metadata from {} -> {}", o.metadata, n.metadata));
        }
        let added_deps: Vec<&String> = n
            .dependencies
            .iter()
            .filter(|d| !o.dependencies.contains(d))
            .collect();
        let removed_deps: Vec<&String> = o
            .dependencies
            .iter()
            .filter(|d| !n.dependencies.contains(d))
            .collect();
        if !added_deps.is_empty() {
            notes.push(format!("new dependencies: {}", join(&added_deps)));
        }
        if !removed_deps.is_empty() {
            notes.push(format!("dropped dependencies: {}", join(&removed_deps)));
        }
    }
    if let Some(n) = b {
        let had_sdist =
            a.is_some_and(|o| o.artifacts.iter().any(|x| x.kind == ArtifactKind::Sdist));
        if !had_sdist && n.artifacts.iter().any(|x| x.kind == ArtifactKind::Sdist) {
            flags.insert(Flag::NewSdistBuild);
        }
        if n.yanked.is_some() && a.is_none_or(|o| o.yanked.is_none() || o.version != n.version) {
            flags.insert(Flag::Yanked);
        }
        let was_pre = a
            .and_then(|o| version(&o.version))
            .is_some_and(|v| v.any_prerelease());
        if !was_pre && version(&n.version).is_some_and(|v| v.any_prerelease()) {
            flags.insert(Flag::PreRelease);
        }
    }
    Some(Change {
        name: name.to_string(),
        kind,
        old: a.map(side),
        new: b.map(side),
        targets,
        flags: flags.into_iter().collect(),
        notes,
    })
}

/// What changed in the build system of an sdist entry on `targets`, as notes.
fn build_system_changes(o: &Package, n: &Package, targets: &[String]) -> Vec<String> {
    let (Some(ob), Some(nb)) = (&o.build_system, &n.build_system) else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    if ob.backend != nb.backend {
        notes.push(format!("build backend {} -> {}", ob.backend, nb.backend));
    }
    let builds = |p: &Package, t: &String| {
        p.artifacts
            .iter()
            .any(|a| a.kind == ArtifactKind::Sdist && a.targets.contains(t))
    };
    let building: Vec<&String> = targets
        .iter()
        .filter(|t| builds(o, t) || builds(n, t))
        .collect();
    let mut by_change: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for t in &building {
        let (oe, ne) = (ob.environment_for(t), nb.environment_for(t));
        let mut parts = Vec::new();
        for (name, v) in &ne {
            match oe.get(name) {
                Some(old) if old == v => {}
                Some(old) => parts.push(format!("{name} {old} -> {v}")),
                None => parts.push(format!("+{name} {v}")),
            }
        }
        for (name, v) in &oe {
            if !ne.contains_key(name) {
                parts.push(format!("-{name} {v}"));
            }
        }
        if !parts.is_empty() {
            by_change.entry(parts.join(", ")).or_default().push(t);
        }
    }
    for (change, ts) in by_change {
        let whole = ts.len() == building.len();
        notes.push(if whole {
            format!("build packages: {change}")
        } else {
            format!("build packages on {}: {change}", ts.join(", "))
        });
    }
    notes
}

/// Build packages whose artifact hash changed while their version did not.
fn build_hash_changes(old: &Lock, new: &Lock) -> Vec<Change> {
    let mut out = Vec::new();
    for n in &new.build_packages {
        let Some(o) = old
            .build_packages
            .iter()
            .find(|o| o.name == n.name && o.version == n.version && o.source == n.source)
        else {
            continue;
        };
        let notes: Vec<String> = n
            .artifacts
            .iter()
            .filter_map(|na| {
                let oa = o.artifacts.iter().find(|oa| oa.filename == na.filename)?;
                (oa.sha256 != na.sha256)
                    .then(|| format!("{}: sha256 {} -> {}", na.filename, oa.sha256, na.sha256))
            })
            .collect();
        if !notes.is_empty() {
            out.push(Change {
                name: format!("{} (build package)", n.name),
                kind: Kind::Rebuilt,
                old: Some(side(o)),
                new: Some(side(n)),
                targets: n.targets.clone(),
                flags: vec![Flag::HashChanged],
                notes,
            });
        }
    }
    out
}

fn join(items: &[&String]) -> String {
    items
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn source_name(s: Source) -> &'static str {
    match s {
        Source::Nixpkgs => "nixpkgs",
        Source::Index => "index",
    }
}

fn show(side: &Option<Side>) -> String {
    match side {
        Some(s) => format!("{} ({})", s.version, source_name(s.source)),
        None => "-".into(),
    }
}

fn target_note(c: &Change, all: &[String]) -> String {
    if c.targets.len() == all.len() {
        String::new()
    } else {
        format!(" [{}]", c.targets.join(", "))
    }
}

fn kind_word(k: Kind) -> &'static str {
    match k {
        Kind::Added => "added",
        Kind::Removed => "removed",
        Kind::Upgraded => "upgraded",
        Kind::Downgraded => "downgraded",
        Kind::SourceMoved => "source moved",
        Kind::Rebuilt => "changed",
    }
}

pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    if r.changes.is_empty() && r.inputs_changed.is_empty() {
        let _ = writeln!(out, "No changes between {} and {}.", r.old, r.new);
        return out;
    }
    out.push_str(&crate::security::render_text(&r.security));
    let flagged = r.changes.iter().filter(|c| !c.flags.is_empty()).count();
    let _ = writeln!(
        out,
        "{} -> {}: {} changes, {} to look at",
        r.old,
        r.new,
        r.changes.len(),
        flagged
    );
    for i in &r.inputs_changed {
        let _ = writeln!(out, "  input: {i}");
    }
    for c in &r.changes {
        let _ = writeln!(
            out,
            "{:<12} {}: {} -> {}{}",
            kind_word(c.kind),
            c.name,
            show(&c.old),
            show(&c.new),
            target_note(c, &r.targets)
        );
        for f in &c.flags {
            let _ = writeln!(out, "    ! {}", f.describe());
        }
        for n in &c.notes {
            let _ = writeln!(out, "    {n}");
        }
    }
    out
}

pub fn render_markdown(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Lock changes\n");
    if r.changes.is_empty() && r.inputs_changed.is_empty() {
        let _ = writeln!(out, "No changes.");
        return out;
    }
    out.push_str(&crate::security::render_markdown(&r.security));
    let count = |k: Kind| r.changes.iter().filter(|c| c.kind == k).count();
    let _ = writeln!(
        out,
        "| added | removed | upgraded | downgraded | source moved | changed | to look at |"
    );
    let _ = writeln!(out, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} | {} |\n",
        count(Kind::Added),
        count(Kind::Removed),
        count(Kind::Upgraded),
        count(Kind::Downgraded),
        count(Kind::SourceMoved),
        count(Kind::Rebuilt),
        r.changes.iter().filter(|c| !c.flags.is_empty()).count()
    );
    let flagged: Vec<&Change> = r.changes.iter().filter(|c| !c.flags.is_empty()).collect();
    if !flagged.is_empty() {
        let _ = writeln!(out, "### Needs a second look\n");
        for c in flagged {
            let flags: Vec<&str> = c.flags.iter().map(|f| f.describe()).collect();
            let _ = writeln!(
                out,
                "- **{}** {} → {}{}: {}",
                c.name,
                show(&c.old),
                show(&c.new),
                target_note(c, &r.targets),
                flags.join("; ")
            );
        }
        let _ = writeln!(out);
    }
    if !r.inputs_changed.is_empty() {
        let _ = writeln!(out, "Inputs: {}\n", r.inputs_changed.join("; "));
    }
    let _ = writeln!(
        out,
        "<details><summary>All {} changes</summary>\n",
        r.changes.len()
    );
    let _ = writeln!(out, "| package | change | old | new | targets | notes |");
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
    for c in &r.changes {
        let targets = if c.targets.len() == r.targets.len() {
            "all".to_string()
        } else {
            c.targets.join(", ")
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            c.name,
            kind_word(c.kind),
            show(&c.old),
            show(&c.new),
            targets,
            c.notes.join("<br>")
        );
    }
    let _ = writeln!(out, "\n</details>");
    out
}
