//! PEP 740 provenance: who published a file. The index lists a provenance object per file
//! (the simple API's `provenance` key); each of its attestation bundles names a publisher,
//! such as a trusted publisher's repository and workflow. We read the publisher only: the
//! attestations' signatures are for an installer that verifies them, and a lock that names
//! the publisher lets a reviewer see when it changes.

use serde::Deserialize;

#[derive(Deserialize)]
struct Provenance {
    #[serde(default)]
    attestation_bundles: Vec<Bundle>,
}

#[derive(Deserialize)]
struct Bundle {
    publisher: serde_json::Map<String, serde_json::Value>,
}

/// The publisher identities in a provenance object, one line each: the publisher's `kind`
/// and then its other text fields as sorted `key=value` pairs (`claims`, free-form data that
/// varies per run, is left out). Several bundles are joined with `; `.
pub(crate) fn publisher_identity(body: &[u8]) -> Result<Option<String>, String> {
    let provenance: Provenance =
        serde_json::from_slice(body).map_err(|e| format!("invalid provenance JSON: {e}"))?;
    let mut identities: Vec<String> = provenance
        .attestation_bundles
        .iter()
        .map(|bundle| {
            let kind = bundle
                .publisher
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or("unknown");
            let mut fields: Vec<String> = bundle
                .publisher
                .iter()
                .filter(|(key, _)| *key != "kind" && *key != "claims")
                .filter_map(|(key, value)| Some(format!("{key}={}", value.as_str()?)))
                .filter(|pair| !pair.contains(char::is_whitespace))
                .collect();
            fields.sort();
            std::iter::once(kind.to_string())
                .chain(fields)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    identities.sort();
    identities.dedup();
    Ok((!identities.is_empty()).then(|| identities.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publisher_is_its_kind_and_sorted_claims() {
        let body = br#"{"version": 1, "attestation_bundles": [{"publisher": {
            "kind": "GitHub", "workflow": "release.yml", "repository": "org/app",
            "environment": "pypi", "claims": {"sha": "abc"}}, "attestations": []}]}"#;
        assert_eq!(
            publisher_identity(body).unwrap().as_deref(),
            Some("GitHub environment=pypi repository=org/app workflow=release.yml")
        );
        assert_eq!(
            publisher_identity(br#"{"version": 1, "attestation_bundles": []}"#).unwrap(),
            None
        );
        assert!(publisher_identity(b"<html>").is_err());
    }
}
