//! A [`PackageSource`] that answers from a [`Universe`] built in memory: the resolver's view
//! of an index without HTTP, for tests about resolution rather than transport (the packse
//! conformance suite). The loopback server stays for what is about HTTP.

use std::collections::HashMap;
use std::sync::Arc;

use bitpoll_metadata::{parse_core_metadata, read_sdist, read_wheel_metadata, MetadataSource};
use bitpoll_simple::{PageParser, WheelFilter};
use bitpoll_source::{Bytes, DistFile, ErrorClass, PackageSource, ProjectPage, SourceError};
use pep508_rs::PackageName;
use url::Url;

use crate::universe::Universe;

/// Pages, files and metadata files of a universe, by path (`/simple/NAME/`, `/files/FILE`).
pub struct MemorySource {
    base: Url,
    routes: HashMap<String, Vec<u8>>,
    filter: Option<WheelFilter>,
}

fn failed(message: String) -> SourceError {
    SourceError::Failed {
        class: ErrorClass::Unavailable,
        source: Arc::new(std::io::Error::other(message)),
    }
}

impl MemorySource {
    /// `filter`: the wheel filter pages are read with, as the index client's.
    pub fn new(universe: &Universe, filter: Option<WheelFilter>) -> Self {
        let routes = universe
            .build()
            .routes
            .into_iter()
            .map(|(path, response)| (path, response.body))
            .collect();
        Self {
            // Never fetched: only the base that the pages' relative file URLs resolve against.
            base: Url::parse("http://127.0.0.1/").expect("a valid URL"),
            routes,
            filter,
        }
    }

    fn file(&self, file: &DistFile) -> Result<&Vec<u8>, SourceError> {
        self.routes
            .get(file.url().path())
            .ok_or_else(|| failed(format!("{} is not in the universe", file.filename)))
    }
}

impl PackageSource for MemorySource {
    fn project(&self, name: &PackageName) -> Result<Arc<ProjectPage>, SourceError> {
        let path = format!("/simple/{name}/");
        let Some(body) = self.routes.get(&path) else {
            return Err(SourceError::NotFound {
                package: name.to_string(),
            });
        };
        let page_url = self.base.join(&path).expect("a valid path");
        let page = PageParser {
            page_url: &page_url,
            project: name,
            exclude_newer: None,
            filter: self.filter.as_ref(),
        }
        .parse_slice(body)
        .map_err(|e| failed(format!("{path}: {e}")))?;
        Ok(Arc::new(page))
    }

    fn core_metadata(
        &self,
        file: &DistFile,
    ) -> Result<Arc<bitpoll_metadata::CoreMetadata>, SourceError> {
        let metadata_error = |source| SourceError::Metadata {
            file: file.filename.to_string(),
            source,
        };
        if file.core_metadata.is_some() {
            let path = format!("{}.metadata", file.url().path());
            if let Some(body) = self.routes.get(&path) {
                let meta = parse_core_metadata(body, MetadataSource::CoreMetadata)
                    .map_err(metadata_error)?;
                return Ok(Arc::new(meta));
            }
        }
        let bytes = self.file(file)?;
        if file.is_wheel() {
            let meta = read_wheel_metadata(bytes).map_err(metadata_error)?;
            return Ok(Arc::new(meta));
        }
        let info = read_sdist(&file.filename, bytes).map_err(metadata_error)?;
        info.static_metadata
            .map(Arc::new)
            .ok_or_else(|| SourceError::NoStaticMetadata {
                file: file.filename.to_string(),
            })
    }

    fn sdist_info(&self, file: &DistFile) -> Result<Arc<bitpoll_metadata::SdistInfo>, SourceError> {
        let info = read_sdist(&file.filename, self.file(file)?).map_err(|source| {
            SourceError::Metadata {
                file: file.filename.to_string(),
                source,
            }
        })?;
        Ok(Arc::new(info))
    }

    fn download(&self, file: &DistFile) -> Result<Bytes, SourceError> {
        Ok(Bytes::from(self.file(file)?.clone()))
    }
}
