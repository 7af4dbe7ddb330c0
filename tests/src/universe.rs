//! A universe of packages (packse's `[packages]` shape) and the PEP 691 index built from it.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::server::Response;

pub const SIMPLE_JSON: &str = "application/vnd.pypi.simple.v1+json";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Universe {
    #[serde(default)]
    pub packages: BTreeMap<String, Project>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    #[serde(default)]
    pub versions: BTreeMap<String, Release>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    #[serde(default)]
    pub requires: Vec<String>,
    pub requires_python: Option<String>,
    #[serde(default)]
    pub extras: BTreeMap<String, Vec<String>>,
    /// Tags (`py3-none-any`, `cp313-cp313-manylinux_2_17_x86_64`) of the wheels to publish.
    pub wheel_tags: Option<Vec<String>>,
    #[serde(default)]
    pub yanked: bool,
    #[serde(default = "yes")]
    pub sdist: bool,
    #[serde(default = "yes")]
    pub wheel: bool,
    /// RFC 3339 upload time (default: a fixed date, so indexes are reproducible).
    pub upload_time: Option<String>,
    /// Serve no core-metadata file for this release's wheels (the client must read the wheel).
    #[serde(default)]
    pub no_core_metadata: bool,
    /// Write a pre-2.2 PKG-INFO without dependencies into the sdist (metadata only a build or
    /// the egg-info could tell).
    #[serde(default)]
    pub legacy_sdist: bool,
    /// Write a 2.2 PKG-INFO that lists `Requires-Dist` as `Dynamic` (only a build can tell).
    #[serde(default)]
    pub dynamic_sdist: bool,
    /// More files for the wheels, by path inside the wheel (a build backend's modules).
    #[serde(default)]
    pub wheel_files: BTreeMap<String, String>,
    /// More files for the sdist, by path below its top directory; a `setup.py` here replaces
    /// the one written from `requires`.
    #[serde(default)]
    pub sdist_files: BTreeMap<String, String>,
    /// The publisher of every file of this release, as a PEP 740 attestation bundle names it
    /// (`{ kind = "GitHub", repository = "org/app", workflow = "release.yml" }`): each file
    /// gets a provenance file and the page's `provenance` key points at it.
    pub publisher: Option<BTreeMap<String, String>>,
    /// The release's advisories as the index's JSON API lists them (`id`, `aliases`,
    /// `summary`, `fixed_in`); every release's JSON API document has the list, empty by
    /// default.
    #[serde(default)]
    pub vulnerabilities: Vec<serde_json::Value>,
}

fn yes() -> bool {
    true
}

impl Default for Release {
    fn default() -> Self {
        Self {
            requires: Vec::new(),
            requires_python: None,
            extras: BTreeMap::new(),
            wheel_tags: None,
            yanked: false,
            sdist: true,
            wheel: true,
            upload_time: None,
            no_core_metadata: false,
            legacy_sdist: false,
            dynamic_sdist: false,
            wheel_files: BTreeMap::new(),
            sdist_files: BTreeMap::new(),
            publisher: None,
            vulnerabilities: Vec::new(),
        }
    }
}

impl Release {
    /// A release with these requirements and the default files.
    pub fn requiring(requires: &[&str]) -> Self {
        Self {
            requires: requires.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        }
    }
}

pub fn normalise(name: &str) -> String {
    let mut out = String::new();
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// A built index: routes for the server, plus each file's sha256 for assertions.
pub struct BuiltIndex {
    pub routes: HashMap<String, Response>,
    pub sha256: BTreeMap<String, String>,
}

impl Universe {
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    pub fn build(&self) -> BuiltIndex {
        let mut routes = HashMap::new();
        let mut sha = BTreeMap::new();
        let mut root_links = Vec::new();
        for (raw_name, project) in &self.packages {
            let name = normalise(raw_name);
            let dist = name.replace('-', "_");
            let mut files = Vec::new();
            for (version, release) in &project.versions {
                let metadata = metadata_text(&name, version, release);
                let upload = release
                    .upload_time
                    .clone()
                    .unwrap_or_else(|| "2024-01-01T00:00:00Z".into());
                let mut add = |filename: String, bytes: Vec<u8>, core: Option<&str>| {
                    let digest = hex::encode(Sha256::digest(&bytes));
                    let mut entry = serde_json::json!({
                        "filename": filename,
                        "url": format!("../../files/{filename}"),
                        "hashes": {"sha256": digest},
                        "size": bytes.len(),
                        "upload-time": upload,
                        "yanked": if release.yanked { serde_json::json!("yanked for testing") } else { serde_json::json!(false) },
                    });
                    if let Some(rp) = &release.requires_python {
                        entry["requires-python"] = serde_json::json!(rp);
                    }
                    if let Some(core) = core {
                        let core_digest = hex::encode(Sha256::digest(core.as_bytes()));
                        entry["core-metadata"] = serde_json::json!({"sha256": core_digest});
                        routes.insert(
                            format!("/files/{filename}.metadata"),
                            Response::new(
                                200,
                                "application/octet-stream",
                                core.as_bytes().to_vec(),
                            ),
                        );
                    }
                    if let Some(publisher) = &release.publisher {
                        let provenance = serde_json::json!({
                            "version": 1,
                            "attestation_bundles": [{
                                "publisher": publisher,
                                "attestations": [],
                            }],
                        });
                        entry["provenance"] =
                            serde_json::json!(format!("../../files/{filename}.provenance"));
                        routes.insert(
                            format!("/files/{filename}.provenance"),
                            Response::new(200, "application/json", provenance.to_string()),
                        );
                    }
                    sha.insert(filename.clone(), digest);
                    routes.insert(
                        format!("/files/{filename}"),
                        Response::new(200, "application/octet-stream", bytes),
                    );
                    files.push(entry);
                };
                if release.wheel {
                    let tags = release
                        .wheel_tags
                        .clone()
                        .unwrap_or_else(|| vec!["py3-none-any".into()]);
                    for tag in tags {
                        let filename = format!("{dist}-{version}-{tag}.whl");
                        let bytes = wheel_bytes(&dist, version, &metadata, &release.wheel_files);
                        add(
                            filename,
                            bytes,
                            (!release.no_core_metadata).then_some(metadata.as_str()),
                        );
                    }
                }
                if release.sdist {
                    let filename = format!("{dist}-{version}.tar.gz");
                    let pkg_info = if release.legacy_sdist {
                        format!("Metadata-Version: 1.1\nName: {name}\nVersion: {version}\n\n")
                    } else if release.dynamic_sdist {
                        format!("Metadata-Version: 2.2\nName: {name}\nVersion: {version}\nDynamic: Requires-Dist\n\n")
                    } else {
                        metadata.clone()
                    };
                    let egg_requires = release.legacy_sdist.then(|| release.requires.join("\n"));
                    let mut files = BTreeMap::new();
                    files.insert("PKG-INFO".to_string(), pkg_info);
                    files.insert("setup.py".to_string(), setup_py(&name, version, release));
                    if let Some(req) = egg_requires {
                        files.insert(format!("{dist}.egg-info/requires.txt"), req);
                    }
                    files.extend(release.sdist_files.clone());
                    add(filename, sdist_bytes(&dist, version, &files), None);
                }
            }
            for (version, release) in &project.versions {
                let release_json = serde_json::json!({
                    "info": {"name": name, "version": version},
                    "urls": [],
                    "vulnerabilities": release.vulnerabilities,
                });
                routes.insert(
                    format!("/pypi/{name}/{version}/json"),
                    Response::new(200, "application/json", release_json.to_string()),
                );
            }
            let page = serde_json::json!({
                "meta": {"api-version": "1.1"},
                "name": name,
                "files": files,
                "versions": project.versions.keys().collect::<Vec<_>>(),
            });
            routes.insert(
                format!("/simple/{name}/"),
                Response::new(200, SIMPLE_JSON, page.to_string()),
            );
            root_links.push(serde_json::json!({"name": name}));
        }
        let root = serde_json::json!({"meta": {"api-version": "1.1"}, "projects": root_links});
        routes.insert(
            "/simple/".into(),
            Response::new(200, SIMPLE_JSON, root.to_string()),
        );
        BuiltIndex {
            routes,
            sha256: sha,
        }
    }
}

fn metadata_text(name: &str, version: &str, release: &Release) -> String {
    let mut m = format!("Metadata-Version: 2.3\nName: {name}\nVersion: {version}\n");
    if let Some(rp) = &release.requires_python {
        m.push_str(&format!("Requires-Python: {rp}\n"));
    }
    for r in &release.requires {
        m.push_str(&format!("Requires-Dist: {r}\n"));
    }
    for (extra, reqs) in &release.extras {
        m.push_str(&format!("Provides-Extra: {extra}\n"));
        for r in reqs {
            let marker = if r.contains(';') {
                let (req, mk) = r.split_once(';').unwrap();
                format!("{} ; ({}) and extra == \"{extra}\"", req.trim(), mk.trim())
            } else {
                format!("{r} ; extra == \"{extra}\"")
            };
            m.push_str(&format!("Requires-Dist: {marker}\n"));
        }
    }
    m.push('\n');
    m
}

fn wheel_bytes(
    dist: &str,
    version: &str,
    metadata: &str,
    extra: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts =
            zip::write::SimpleFileOptions::default().last_modified_time(zip::DateTime::default());
        let init = format!("{dist}/__init__.py");
        if !extra.contains_key(&init) {
            zip.start_file(init, opts).unwrap();
            zip.write_all(b"").unwrap();
        }
        zip.start_file(format!("{dist}-{version}.dist-info/METADATA"), opts)
            .unwrap();
        zip.write_all(metadata.as_bytes()).unwrap();
        zip.start_file(format!("{dist}-{version}.dist-info/WHEEL"), opts)
            .unwrap();
        zip.write_all(b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\n")
            .unwrap();
        for (path, text) in extra {
            zip.start_file(path.as_str(), opts).unwrap();
            zip.write_all(text.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
    }
    buf.into_inner()
}

/// A `setup.py` that declares the release's dependencies the way most legacy sdists do.
fn setup_py(name: &str, version: &str, release: &Release) -> String {
    let quoted = |items: &[String]| {
        items
            .iter()
            .map(|r| format!("{r:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let extras = release
        .extras
        .iter()
        .map(|(extra, reqs)| format!("{extra:?}: [{}]", quoted(reqs)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "from setuptools import setup\nsetup(name={name:?}, version={version:?}, install_requires=[{}], extras_require={{{extras}}})\n",
        quoted(&release.requires)
    )
}

fn sdist_bytes(dist: &str, version: &str, files: &BTreeMap<String, String>) -> Vec<u8> {
    let top = format!("{dist}-{version}");
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (path, text) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, format!("{top}/{path}"), text.as_bytes())
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}
