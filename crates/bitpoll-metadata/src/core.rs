//! The RFC 822-style core-metadata format (`METADATA`, `PKG-INFO`).

use std::str::FromStr;

use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{ExtraName, PackageName, Requirement};

use crate::{CoreMetadata, MetadataError, MetadataSource};

/// Header fields in file order, with folded continuation lines joined by `\n`.
pub(crate) fn parse_headers(text: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for raw in text.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            // The first blank line separates the headers from the body (the long
            // description), which may itself look like headers.
            break;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, value)) = headers.last_mut() {
                value.push('\n');
                value.push_str(line.trim());
            }
            continue;
        }
        // Lines without a colon are malformed; skipping them matches what the Python
        // email parser (which tools use to read these files) does in lenient mode.
        if let Some((key, value)) = line.split_once(':') {
            headers.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    headers
}

fn first<'a>(headers: &'a [(String, String)], key: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

fn all<'a>(headers: &'a [(String, String)], key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

pub(crate) fn parse_name(value: &str) -> Result<PackageName, MetadataError> {
    PackageName::new(value.to_string()).map_err(|e| MetadataError::InvalidField {
        field: "Name",
        value: value.to_string(),
        reason: e.to_string(),
    })
}

pub(crate) fn parse_version(value: &str) -> Result<Version, MetadataError> {
    Version::from_str(value).map_err(|e| MetadataError::InvalidField {
        field: "Version",
        value: value.to_string(),
        reason: e.to_string(),
    })
}

pub(crate) fn parse_requires_python(
    value: &str,
) -> Result<Option<VersionSpecifiers>, MetadataError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    VersionSpecifiers::from_str(value)
        .map(Some)
        .map_err(|e| MetadataError::InvalidField {
            field: "Requires-Python",
            value: value.to_string(),
            reason: e.to_string(),
        })
}

pub(crate) fn parse_requirement(line: &str, origin: &str) -> Result<Requirement, MetadataError> {
    // A folded header spreads one requirement over several lines.
    let joined = line.replace('\n', " ");
    // pep508_rs has no lenient mode, so legacy spellings it rejects are reported rather
    // than guessed at.
    bitpoll_pep508::parse(joined.trim()).map_err(|source| MetadataError::InvalidRequirement {
        origin: origin.to_string(),
        line: joined.trim().to_string(),
        source,
    })
}

/// Parses a core-metadata file (`METADATA` or `PKG-INFO`).
///
/// Only the header block is read; `Name` and `Version` are required. Extras whose names
/// are not valid are skipped: no requirement can ask for them anyway.
pub fn parse_core_metadata(
    bytes: &[u8],
    source: MetadataSource,
) -> Result<CoreMetadata, MetadataError> {
    let text = String::from_utf8_lossy(bytes);
    let headers = parse_headers(&text);

    let name = parse_name(first(&headers, "Name").ok_or(MetadataError::MissingField("Name"))?)?;
    let version =
        parse_version(first(&headers, "Version").ok_or(MetadataError::MissingField("Version"))?)?;
    let requires_dist = all(&headers, "Requires-Dist")
        .filter(|line| !line.trim().is_empty())
        .map(|line| parse_requirement(line, "Requires-Dist"))
        .collect::<Result<Vec<_>, _>>()?;
    let requires_python = match first(&headers, "Requires-Python") {
        Some(value) => parse_requires_python(value)?,
        None => None,
    };
    let mut provides_extra: Vec<ExtraName> = Vec::new();
    for value in all(&headers, "Provides-Extra") {
        if let Ok(extra) = ExtraName::new(value.trim().to_string()) {
            if !provides_extra.contains(&extra) {
                provides_extra.push(extra);
            }
        }
    }
    let dynamic = all(&headers, "Dynamic")
        .map(|v| v.trim().to_string())
        .collect();
    let metadata_version = first(&headers, "Metadata-Version")
        .unwrap_or("")
        .to_string();

    Ok(CoreMetadata {
        name,
        version,
        requires_dist,
        requires_python,
        provides_extra,
        dynamic,
        metadata_version,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Metadata-Version: 2.1\r\n\
Name: Foo_Bar\r\n\
Version: 1.2.post1\r\n\
Summary: A thing\r\n\
Requires-Python: >=3.8\r\n\
Requires-Dist: requests (>=2.0)\r\n\
Requires-Dist: idna; extra == \"Socks\"\r\n\
Requires-Dist: colorama;\r\n\x20 sys_platform == \"win32\"\r\n\
Provides-Extra: Socks\r\n\
Description-Content-Type: text/markdown\r\n\
\r\n\
Requires-Dist: not-a-header-this-is-the-body\r\n";

    #[test]
    fn parses_headers_and_stops_at_body() {
        let meta = parse_core_metadata(SAMPLE.as_bytes(), MetadataSource::CoreMetadata).unwrap();
        assert_eq!(meta.name.as_ref(), "foo-bar");
        assert_eq!(meta.version.to_string(), "1.2.post1");
        assert_eq!(meta.metadata_version, "2.1");
        assert_eq!(meta.requires_dist.len(), 3);
        assert_eq!(meta.requires_dist[0].name.as_ref(), "requests");
        assert_eq!(meta.requires_dist[2].name.as_ref(), "colorama");
        assert!(meta.requires_dist[2]
            .marker
            .try_to_string()
            .unwrap()
            .contains("win32"));
        assert_eq!(meta.requires_python.unwrap().to_string(), ">=3.8");
        assert_eq!(meta.provides_extra.len(), 1);
        assert_eq!(meta.provides_extra[0].as_ref(), "socks");
        assert_eq!(meta.source, MetadataSource::CoreMetadata);
    }

    #[test]
    fn invalid_requirement_names_the_line() {
        let text = "Metadata-Version: 2.1\nName: x\nVersion: 1\nRequires-Dist: foo >>> 1\n";
        let err = parse_core_metadata(text.as_bytes(), MetadataSource::Wheel).unwrap_err();
        assert!(matches!(err, MetadataError::InvalidRequirement { .. }));
        assert!(err.to_string().contains("foo >>> 1"), "{err}");
    }

    #[test]
    fn missing_version_is_an_error() {
        let err = parse_core_metadata(b"Name: x\n", MetadataSource::Wheel).unwrap_err();
        assert_eq!(err, MetadataError::MissingField("Version"));
    }

    #[test]
    fn dynamic_fields_are_kept() {
        let text = "Metadata-Version: 2.2\nName: x\nVersion: 1\nDynamic: Requires-Dist\nDynamic: license\n";
        let meta = parse_core_metadata(text.as_bytes(), MetadataSource::SdistPkgInfo).unwrap();
        assert_eq!(
            meta.dynamic,
            vec!["Requires-Dist".to_string(), "license".to_string()]
        );
    }
}
