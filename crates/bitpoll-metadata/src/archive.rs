//! Wheels and sdists, read in memory.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Seek};
use std::str::FromStr;

use pep440_rs::Version;
use pep508_rs::ExtraName;

use crate::core::{
    parse_headers, parse_name, parse_requirement, parse_requires_python, parse_version,
};
use crate::{parse_core_metadata, CoreMetadata, MetadataError, MetadataSource};

/// The most decompressed bytes kept in memory from one archive (the metadata files we
/// read). Real `METADATA`, `PKG-INFO` and `pyproject.toml` files are far below this; a zip
/// or gzip bomb hits it and is rejected.
const SDIST_SUFFIXES: [&str; 4] = [".tar.gz", ".tgz", ".tar", ".zip"];

pub const MAX_UNCOMPRESSED_BYTES: u64 = 16 * 1024 * 1024;

/// The most decompressed bytes streamed through (not kept) while looking for those files
/// in a tar sdist, which has no index to jump to them. Large real sdists expand to a few
/// hundred MiB; past this, a bomb costs only bounded time.
pub const MAX_SCANNED_BYTES: u64 = 1024 * 1024 * 1024;

/// The build requirements PEP 517 prescribes for an sdist whose `pyproject.toml` declares
/// none (or that has none).
pub const FALLBACK_BUILD_REQUIRES: &str = "setuptools>=40.8.0";

/// What an sdist tells without building it.
#[derive(Debug, Clone, PartialEq)]
pub struct SdistInfo {
    /// Metadata that the sdist declares static: a top-level `PKG-INFO` with
    /// `Metadata-Version` 2.2 or later whose `Dynamic` lists neither `Requires-Dist` nor
    /// `Requires-Python` (source [`MetadataSource::SdistPkgInfo`]); failing that, the
    /// `pyproject.toml` `[project]` table when `dependencies`, `optional-dependencies` and
    /// `requires-python` are all absent from `project.dynamic` (source
    /// [`MetadataSource::SdistPyproject`]); otherwise `None` and only a build can tell.
    pub static_metadata: Option<CoreMetadata>,
    /// `[build-system].requires`, or the PEP 517 fallback `setuptools>=40.8.0` when there is
    /// no `pyproject.toml` or it has no such table.
    pub build_requires: Vec<String>,
    /// `[build-system].build-backend`; `None` means the legacy setuptools backend.
    pub build_backend: Option<String>,
    /// `[build-system].backend-path`: directories of the sdist that hold an in-tree backend.
    pub backend_path: Vec<String>,
}

/// Rejects names that would escape the directory an archive is unpacked into, and returns
/// the path's components. Metadata reading never unpacks, but an archive built to escape is
/// not one to trust for metadata either; a build unpacks through this check.
pub fn check_member_path(name: &str) -> Result<Vec<String>, MetadataError> {
    let unsafe_path = || MetadataError::UnsafePath(name.to_string());
    let normalised = name.replace('\\', "/");
    if normalised.starts_with('/') {
        return Err(unsafe_path());
    }
    let bytes = normalised.as_bytes();
    if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
        return Err(unsafe_path());
    }
    let mut parts = Vec::new();
    for part in normalised.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(unsafe_path()),
            other => parts.push(other.to_string()),
        }
    }
    Ok(parts)
}

/// Counts decompressed bytes and fails the read once the cap is passed.
struct Capped<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(std::io::Error::other("uncompressed size limit exceeded"));
        }
        Ok(n)
    }
}

fn read_capped(reader: impl Read, budget: &mut u64) -> Result<Vec<u8>, MetadataError> {
    read_capped_reporting(reader, budget, MAX_UNCOMPRESSED_BYTES)
}

/// [`read_capped`], naming `limit` as the cap that was passed.
fn read_capped_reporting(
    reader: impl Read,
    budget: &mut u64,
    limit: u64,
) -> Result<Vec<u8>, MetadataError> {
    let mut out = Vec::new();
    reader
        .take(*budget + 1)
        .read_to_end(&mut out)
        .map_err(|e| MetadataError::Archive(e.to_string()))?;
    if out.len() as u64 > *budget {
        return Err(MetadataError::TooLarge { limit });
    }
    *budget -= out.len() as u64;
    Ok(out)
}

fn zip_error(e: zip::result::ZipError) -> MetadataError {
    MetadataError::Archive(e.to_string())
}

/// Reads `<name>.dist-info/METADATA` from a wheel held in memory.
pub fn read_wheel_metadata(wheel_bytes: &[u8]) -> Result<CoreMetadata, MetadataError> {
    read_wheel_metadata_limited(wheel_bytes, MAX_UNCOMPRESSED_BYTES)
}

/// [`read_wheel_metadata`] with another cap on the decompressed `METADATA`. Inflating
/// stops at the cap, whatever size the zip directory claims, so a bomb costs the work of
/// `limit` bytes only.
pub fn read_wheel_metadata_limited(
    wheel_bytes: &[u8],
    limit: u64,
) -> Result<CoreMetadata, MetadataError> {
    parse_core_metadata(
        &wheel_metadata_bytes(wheel_bytes, limit)?,
        MetadataSource::Wheel,
    )
}

/// The bytes of a wheel's top-level `<name>.dist-info/METADATA`, inflated at most to
/// `limit` bytes.
pub fn wheel_metadata_bytes(wheel_bytes: &[u8], limit: u64) -> Result<Vec<u8>, MetadataError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(wheel_bytes)).map_err(zip_error)?;
    let mut found: Option<String> = None;
    for name in archive.file_names() {
        let parts = check_member_path(name)?;
        if found.is_none()
            && parts.len() == 2
            && parts[0].ends_with(".dist-info")
            && parts[1] == "METADATA"
        {
            found = Some(name.to_string());
        }
    }
    let name = found.ok_or(MetadataError::NoWheelMetadata)?;
    let member = archive.by_name(&name).map_err(zip_error)?;
    if member.size() > limit {
        return Err(MetadataError::TooLarge { limit });
    }
    let mut budget = limit;
    read_capped_reporting(member, &mut budget, limit)
}

/// The files we read, per top-level directory.
#[derive(Default)]
struct TopLevel {
    pkg_info: Option<Vec<u8>>,
    pyproject: Option<Vec<u8>>,
}

#[derive(Clone, Copy)]
enum Member {
    PkgInfo,
    Pyproject,
}

fn wanted(parts: &[String]) -> Option<Member> {
    match parts {
        [_, file] if file == "PKG-INFO" => Some(Member::PkgInfo),
        [_, file] if file == "pyproject.toml" => Some(Member::Pyproject),
        _ => None,
    }
}

fn store(tops: &mut BTreeMap<String, TopLevel>, parts: &[String], member: Member, bytes: Vec<u8>) {
    let top = tops.entry(parts[0].clone()).or_default();
    let slot = match member {
        Member::PkgInfo => &mut top.pkg_info,
        Member::Pyproject => &mut top.pyproject,
    };
    if slot.is_none() {
        *slot = Some(bytes);
    }
}

fn scan_tar(
    reader: impl Read,
    scan_limit: u64,
) -> Result<BTreeMap<String, TopLevel>, MetadataError> {
    let mut capped = Capped {
        inner: reader,
        read: 0,
        limit: scan_limit,
    };
    let mut tops = BTreeMap::new();
    let result = (|| {
        let mut archive = tar::Archive::new(&mut capped);
        let entries = archive
            .entries()
            .map_err(|e| MetadataError::Archive(e.to_string()))?;
        for entry in entries {
            let entry = entry.map_err(|e| MetadataError::Archive(e.to_string()))?;
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let parts = check_member_path(&path)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            if let Some(member) = wanted(&parts) {
                // The whole stream is already capped; this only bounds one member.
                let mut budget = MAX_UNCOMPRESSED_BYTES;
                let bytes = read_capped(entry, &mut budget)?;
                store(&mut tops, &parts, member, bytes);
                // An sdist has one top-level directory; once it has given every file,
                // the rest of a possibly huge archive need not be decompressed.
                if tops
                    .values()
                    .any(|t| t.pkg_info.is_some() && t.pyproject.is_some())
                {
                    break;
                }
            }
        }
        Ok(())
    })();
    if capped.read > capped.limit {
        return Err(MetadataError::TooLarge { limit: scan_limit });
    }
    result.map(|()| tops)
}

fn scan_zip(reader: impl Read + Seek) -> Result<BTreeMap<String, TopLevel>, MetadataError> {
    let mut archive = zip::ZipArchive::new(reader).map_err(zip_error)?;
    let mut wanted_names = Vec::new();
    for name in archive.file_names() {
        let parts = check_member_path(name)?;
        if let Some(member) = wanted(&parts) {
            wanted_names.push((name.to_string(), parts, member));
        }
    }
    let mut budget = MAX_UNCOMPRESSED_BYTES;
    let mut tops = BTreeMap::new();
    for (name, parts, member) in wanted_names {
        let file = archive.by_name(&name).map_err(zip_error)?;
        let bytes = read_capped(file, &mut budget)?;
        store(&mut tops, &parts, member, bytes);
    }
    Ok(tops)
}

/// The few files of an sdist that say what it is, as found at the top of the archive. Small
/// enough to cache, so an sdist is decompressed once, not on every run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SdistMembers {
    pub pkg_info: Option<String>,
    pub pyproject: Option<String>,
}

/// Reads an sdist held in memory: its static metadata, if any, and its build system.
///
/// `filename` picks the archive format (`.tar.gz`, `.tgz`, `.tar`, `.zip`) and, when an
/// archive has several top-level directories, the one named after the sdist.
pub fn read_sdist(filename: &str, bytes: &[u8]) -> Result<SdistInfo, MetadataError> {
    interpret_sdist(filename, &sdist_members(filename, Cursor::new(bytes))?)
}

/// The expensive half of [`read_sdist`]: decompress and find the files that matter.
/// Takes a reader rather than bytes so that a large sdist is read from its file.
pub fn sdist_members(
    filename: &str,
    mut reader: impl Read + Seek,
) -> Result<SdistMembers, MetadataError> {
    if filename.to_ascii_lowercase().ends_with(".zip") {
        let stem = &filename[..filename.len() - ".zip".len()];
        return Ok(members_of(stem, scan_zip(&mut reader)?));
    }
    tar_sdist_members(filename, reader)
}

/// Whether [`tar_sdist_members`] reads `filename`'s format.
pub fn is_tar_sdist(filename: &str) -> bool {
    tar_format(filename).is_some()
}

/// Whether `filename` names a gzipped tar (`.tar.gz`, `.tgz`).
pub fn is_tar_gz(filename: &str) -> bool {
    matches!(tar_format(filename), Some((_, true)))
}

/// The length of the name without its suffix, and whether the tar is gzipped.
fn tar_format(filename: &str) -> Option<(usize, bool)> {
    let lower = filename.to_ascii_lowercase();
    [(".tar.gz", true), (".tgz", true), (".tar", false)]
        .iter()
        .find_map(|(suffix, gzipped)| Some((lower.strip_suffix(suffix)?.len(), *gzipped)))
}

/// [`sdist_members`] of a `.tar.gz`, `.tgz` or `.tar` sdist, read front to back: a tar
/// needs no seeking, so it can be read while it downloads. Anything else is
/// [`MetadataError::UnsupportedFormat`].
pub fn tar_sdist_members(filename: &str, reader: impl Read) -> Result<SdistMembers, MetadataError> {
    let (stem, tops) = match tar_format(filename) {
        Some((stem, true)) => (
            stem,
            scan_tar(flate2::read::GzDecoder::new(reader), MAX_SCANNED_BYTES)?,
        ),
        Some((stem, false)) => (stem, scan_tar(reader, MAX_SCANNED_BYTES)?),
        None => return Err(MetadataError::UnsupportedFormat(filename.to_string())),
    };
    Ok(members_of(&filename[..stem], tops))
}

/// The files of the top-level directory named after the sdist (`original_stem`), else of
/// the first one.
fn members_of(original_stem: &str, tops: BTreeMap<String, TopLevel>) -> SdistMembers {
    let top = tops
        .iter()
        .find(|(dir, _)| dir.eq_ignore_ascii_case(original_stem))
        .or_else(|| tops.iter().next())
        .map(|(_, top)| top);
    let text = |b: &Option<Vec<u8>>| {
        b.as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    match top {
        Some(top) => SdistMembers {
            pkg_info: text(&top.pkg_info),
            pyproject: text(&top.pyproject),
        },
        None => SdistMembers::default(),
    }
}

/// The cheap half of [`read_sdist`]: what the files found say.
pub fn interpret_sdist(filename: &str, members: &SdistMembers) -> Result<SdistInfo, MetadataError> {
    let original_stem = SDIST_SUFFIXES
        .iter()
        .find_map(|suffix| {
            let cut = filename.len().checked_sub(suffix.len())?;
            filename[cut..]
                .eq_ignore_ascii_case(suffix)
                .then(|| &filename[..cut])
        })
        .unwrap_or(filename);
    let pkg_info = members.pkg_info.as_deref().map(str::as_bytes);
    let pyproject = members.pyproject.as_deref().map(str::as_bytes);

    let pyproject: Option<toml::Table> = match pyproject {
        Some(bytes) => {
            let text =
                std::str::from_utf8(bytes).map_err(|e| MetadataError::Pyproject(e.to_string()))?;
            Some(toml::from_str(text).map_err(|e| MetadataError::Pyproject(e.to_string()))?)
        }
        None => None,
    };

    let build_system = pyproject
        .as_ref()
        .and_then(|t| t.get("build-system"))
        .and_then(|v| v.as_table());
    let build_requires = match build_system.and_then(|b| b.get("requires")) {
        Some(requires) => string_array(requires, "build-system.requires")?,
        None => vec![FALLBACK_BUILD_REQUIRES.to_string()],
    };
    let build_backend = match build_system.and_then(|b| b.get("build-backend")) {
        Some(v) => Some(
            v.as_str()
                .ok_or_else(|| {
                    MetadataError::Pyproject("build-system.build-backend is not a string".into())
                })?
                .to_string(),
        ),
        None => None,
    };
    let backend_path = match build_system.and_then(|b| b.get("backend-path")) {
        Some(paths) => string_array(paths, "build-system.backend-path")?,
        None => Vec::new(),
    };

    let static_metadata = match pkg_info_static(pkg_info)? {
        Some(meta) => Some(meta),
        None => match &pyproject {
            Some(table) => pyproject_static(table, pkg_info, original_stem)?,
            None => None,
        },
    };

    Ok(SdistInfo {
        static_metadata,
        build_requires,
        build_backend,
        backend_path,
    })
}

fn pkg_info_static(pkg_info: Option<&[u8]>) -> Result<Option<CoreMetadata>, MetadataError> {
    let Some(bytes) = pkg_info else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(bytes);
    let headers = parse_headers(&text);
    let metadata_version = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Metadata-Version"))
        .and_then(|(_, v)| Version::from_str(v).ok());
    let Some(metadata_version) = metadata_version else {
        return Ok(None);
    };
    // PEP 643: from 2.2 on, a field not marked Dynamic is exactly what a build produces.
    if metadata_version < Version::new([2, 2]) {
        return Ok(None);
    }
    let dynamic_deps = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("Dynamic")
            && (v.eq_ignore_ascii_case("Requires-Dist")
                || v.eq_ignore_ascii_case("Requires-Python"))
    });
    if dynamic_deps {
        return Ok(None);
    }
    parse_core_metadata(bytes, MetadataSource::SdistPkgInfo).map(Some)
}

fn string_array(value: &toml::Value, what: &str) -> Result<Vec<String>, MetadataError> {
    let not_strings = || MetadataError::Pyproject(format!("{what} is not an array of strings"));
    value
        .as_array()
        .ok_or_else(not_strings)?
        .iter()
        .map(|v| v.as_str().map(str::to_string).ok_or_else(not_strings))
        .collect()
}

fn pyproject_static(
    table: &toml::Table,
    pkg_info: Option<&[u8]>,
    stem: &str,
) -> Result<Option<CoreMetadata>, MetadataError> {
    let Some(project) = table.get("project").and_then(|v| v.as_table()) else {
        return Ok(None);
    };
    let dynamic = match project.get("dynamic") {
        Some(v) => string_array(v, "project.dynamic")?,
        None => Vec::new(),
    };
    let is_dynamic = |field: &str| dynamic.iter().any(|d| d.eq_ignore_ascii_case(field));
    if is_dynamic("dependencies")
        || is_dynamic("optional-dependencies")
        || is_dynamic("requires-python")
    {
        return Ok(None);
    }
    let Some(name) = project.get("name").and_then(|v| v.as_str()) else {
        return Ok(None);
    };
    let name = parse_name(name)?;

    // A dynamic version is still known: the sdist's PKG-INFO (of any metadata version)
    // records what the build computed, and the sdist's file name repeats it.
    let version = match project.get("version").and_then(|v| v.as_str()) {
        Some(v) => Some(parse_version(v)?),
        None => {
            let from_pkg_info = pkg_info.and_then(|bytes| {
                let text = String::from_utf8_lossy(bytes);
                parse_headers(&text)
                    .into_iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("Version"))
                    .and_then(|(_, v)| Version::from_str(&v).ok())
            });
            from_pkg_info.or_else(|| {
                stem.rsplit_once('-')
                    .and_then(|(_, v)| Version::from_str(v).ok())
            })
        }
    };
    let Some(version) = version else {
        return Ok(None);
    };

    let mut requires_dist = Vec::new();
    if let Some(deps) = project.get("dependencies") {
        for line in string_array(deps, "project.dependencies")? {
            requires_dist.push(parse_requirement(&line, "dependencies")?);
        }
    }
    let mut provides_extra = Vec::new();
    if let Some(optional) = project.get("optional-dependencies") {
        let optional = optional.as_table().ok_or_else(|| {
            MetadataError::Pyproject("project.optional-dependencies is not a table".into())
        })?;
        for (extra, deps) in optional {
            let extra_name =
                ExtraName::new(extra.clone()).map_err(|e| MetadataError::InvalidField {
                    field: "optional-dependencies",
                    value: extra.clone(),
                    reason: e.to_string(),
                })?;
            let origin = format!("optional-dependencies.{extra}");
            for line in string_array(deps, &format!("project.{origin}"))? {
                requires_dist
                    .push(parse_requirement(&line, &origin)?.with_extra_marker(&extra_name));
            }
            if !provides_extra.contains(&extra_name) {
                provides_extra.push(extra_name);
            }
        }
    }
    let requires_python = match project.get("requires-python") {
        Some(v) => parse_requires_python(v.as_str().ok_or_else(|| {
            MetadataError::Pyproject("project.requires-python is not a string".into())
        })?)?,
        None => None,
    };

    Ok(Some(CoreMetadata {
        name,
        version,
        requires_dist,
        requires_python,
        provides_extra,
        dynamic,
        metadata_version: String::new(),
        source: MetadataSource::SdistPyproject,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar_gz(members: &[(&str, &[u8])]) -> Vec<u8> {
        let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(encoder);
        for (path, data) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            // set_path refuses `..`, so write the raw name to model a hostile archive.
            let name = &mut header.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    fn zip_archive(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (path, data) in members {
            writer.start_file(*path, options).unwrap();
            writer.write_all(data).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    const PKG_INFO_22: &[u8] = b"Metadata-Version: 2.2\nName: demo\nVersion: 1.0\nRequires-Dist: attrs>=20\nRequires-Python: >=3.9\n\nbody\n";
    const PKG_INFO_21: &[u8] =
        b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Dist: wrong\n";

    #[test]
    fn wheel_metadata_is_found() {
        let wheel = zip_archive(&[
            ("demo/__init__.py", b""),
            (
                "demo-1.0.dist-info/METADATA",
                b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Dist: six\n",
            ),
            ("demo-1.0.dist-info/RECORD", b""),
        ]);
        let meta = read_wheel_metadata(&wheel).unwrap();
        assert_eq!(meta.name.as_ref(), "demo");
        assert_eq!(meta.requires_dist[0].name.as_ref(), "six");
        assert_eq!(meta.source, MetadataSource::Wheel);
    }

    #[test]
    fn wheel_without_metadata() {
        let wheel = zip_archive(&[("demo/__init__.py", b"")]);
        assert_eq!(
            read_wheel_metadata(&wheel).unwrap_err(),
            MetadataError::NoWheelMetadata
        );
    }

    #[test]
    fn static_pkg_info_wins() {
        let sdist = tar_gz(&[
            ("demo-1.0/PKG-INFO", PKG_INFO_22),
            ("demo-1.0/pyproject.toml", b"[build-system]\nrequires = [\"flit_core>=3.2\"]\nbuild-backend = \"flit_core.buildapi\"\n"),
            ("demo-1.0/tests/PKG-INFO", b"Metadata-Version: 2.2\nName: other\nVersion: 9\n"),
        ]);
        let info = read_sdist("demo-1.0.tar.gz", &sdist).unwrap();
        let meta = info.static_metadata.unwrap();
        assert_eq!(meta.source, MetadataSource::SdistPkgInfo);
        assert_eq!(meta.name.as_ref(), "demo");
        assert_eq!(meta.requires_dist[0].name.as_ref(), "attrs");
        assert_eq!(info.build_requires, vec!["flit_core>=3.2".to_string()]);
        assert_eq!(info.build_backend.as_deref(), Some("flit_core.buildapi"));
    }

    #[test]
    fn dynamic_pkg_info_falls_back_to_pyproject() {
        let pkg_info = b"Metadata-Version: 2.2\nName: demo\nVersion: 1.0\nDynamic: Requires-Dist\n";
        let pyproject = br#"
[project]
name = "demo"
dynamic = ["version"]
dependencies = ["requests>=2"]
requires-python = ">=3.8"
[project.optional-dependencies]
Fast = ["orjson"]
"#;
        let sdist = zip_archive(&[
            ("demo-1.0/PKG-INFO", pkg_info),
            ("demo-1.0/pyproject.toml", pyproject),
        ]);
        let info = read_sdist("demo-1.0.zip", &sdist).unwrap();
        let meta = info.static_metadata.unwrap();
        assert_eq!(meta.source, MetadataSource::SdistPyproject);
        assert_eq!(meta.version.to_string(), "1.0");
        assert_eq!(meta.requires_dist.len(), 2);
        assert_eq!(meta.provides_extra[0].as_ref(), "fast");
        assert!(meta.requires_dist[1]
            .marker
            .try_to_string()
            .unwrap()
            .contains("extra == 'fast'"));
        assert_eq!(meta.requires_python.unwrap().to_string(), ">=3.8");
        // pyproject without [build-system]: PEP 517 fallback.
        assert_eq!(info.build_requires, vec!["setuptools>=40.8.0".to_string()]);
        assert_eq!(info.build_backend, None);
    }

    #[test]
    fn old_pkg_info_and_dynamic_dependencies_give_nothing() {
        let pyproject =
            b"[project]\nname = \"demo\"\nversion = \"1.0\"\ndynamic = [\"dependencies\"]\n";
        let sdist = tar_gz(&[
            ("demo-1.0/PKG-INFO", PKG_INFO_21),
            ("demo-1.0/pyproject.toml", pyproject),
        ]);
        let info = read_sdist("demo-1.0.tar.gz", &sdist).unwrap();
        assert!(info.static_metadata.is_none());

        let sdist = tar_gz(&[
            ("demo-1.0/PKG-INFO", PKG_INFO_21),
            ("demo-1.0/setup.py", b""),
        ]);
        let info = read_sdist("demo-1.0.tar.gz", &sdist).unwrap();
        assert!(info.static_metadata.is_none());
        assert_eq!(info.build_requires, vec!["setuptools>=40.8.0".to_string()]);
    }

    #[test]
    fn traversal_is_rejected() {
        let sdist = tar_gz(&[
            ("demo-1.0/PKG-INFO", PKG_INFO_22),
            ("demo-1.0/../../evil", b"x"),
        ]);
        let err = read_sdist("demo-1.0.tar.gz", &sdist).unwrap_err();
        assert!(matches!(err, MetadataError::UnsafePath(_)), "{err}");

        let sdist = zip_archive(&[("/etc/evil", b"x")]);
        let err = read_sdist("demo-1.0.zip", &sdist).unwrap_err();
        assert!(matches!(err, MetadataError::UnsafePath(_)), "{err}");
    }

    #[test]
    fn bombs_are_capped() {
        let zeros = vec![0u8; (MAX_UNCOMPRESSED_BYTES + 1024) as usize];
        let sdist = tar_gz(&[("demo-1.0/PKG-INFO", &zeros)]);
        assert!(sdist.len() < 1024 * 1024);
        let err = read_sdist("demo-1.0.tar.gz", &sdist).unwrap_err();
        assert!(matches!(err, MetadataError::TooLarge { .. }), "{err}");

        // Streaming past other members is bounded too (a small limit keeps the test fast).
        let sdist = tar_gz(&[
            ("demo-1.0/big.bin", &zeros[..4 << 20]),
            ("demo-1.0/PKG-INFO", PKG_INFO_22),
        ]);
        let gz = flate2::read::GzDecoder::new(&sdist[..]);
        let err = scan_tar(gz, 1 << 20).err().unwrap();
        assert!(
            matches!(err, MetadataError::TooLarge { limit } if limit == 1 << 20),
            "{err}"
        );

        let sdist = zip_archive(&[("demo-1.0/PKG-INFO", &zeros)]);
        let err = read_sdist("demo-1.0.zip", &sdist).unwrap_err();
        assert!(matches!(err, MetadataError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn unknown_format() {
        let err = read_sdist("demo-1.0.tar.bz2", b"").unwrap_err();
        assert!(matches!(err, MetadataError::UnsupportedFormat(_)));
    }
}
