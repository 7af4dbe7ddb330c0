//! What the tests of builds share: an sdist made in memory, the machine's Python, a builder
//! on a cache, and a look into directories.

// Not every test file uses every helper.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bitpoll_build::{Builder, Interpreter, Isolation, Sdist, Wheel};
use sha2::{Digest, Sha256};

pub fn tar_gz(members: &[(&str, &str)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, text) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, text.as_bytes()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// A wheel of `members` (name and bytes) written to `dir/filename`, as a build environment
/// lists it.
pub fn wheel(dir: &Path, filename: &str, members: &[(&str, &[u8])]) -> Wheel {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default();
        for (name, bytes) in members {
            zip.start_file(*name, opts).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
    }
    let bytes = buf.into_inner();
    let path = dir.join(filename);
    std::fs::write(&path, &bytes).unwrap();
    Wheel {
        path,
        filename: filename.to_string(),
        sha256: hex::encode(Sha256::digest(&bytes)),
    }
}

pub fn python() -> Option<Interpreter> {
    match Interpreter::find("3", None, None) {
        Ok(found) => Some(found),
        Err(e) => {
            bitpoll_test_skip::skip(format!("no Python to run a backend: {e}"));
            None
        }
    }
}

/// An sdist whose build backend is a module inside it (`backend.py`, on `backend-path`),
/// so that its hooks need no wheels.
pub struct LocalBackendSdist {
    pub path: PathBuf,
    filename: &'static str,
    sha256: String,
    backend_path: [String; 1],
}

impl LocalBackendSdist {
    /// Writes `dir/filename` (`name-version.tar.gz`) with `backend` as the backend's source.
    pub fn write(dir: &Path, filename: &'static str, backend: &str) -> Self {
        let top = filename.trim_end_matches(".tar.gz");
        let pyproject =
            "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n";
        let bytes = tar_gz(&[
            (&format!("{top}/pyproject.toml"), pyproject),
            (&format!("{top}/backend.py"), backend),
        ]);
        let path = dir.join(filename);
        std::fs::write(&path, &bytes).unwrap();
        Self {
            path,
            filename,
            sha256: hex::encode(Sha256::digest(&bytes)),
            backend_path: [".".to_string()],
        }
    }

    /// The sdist as a builder is asked about it.
    pub fn sdist(&self) -> Sdist<'_> {
        Sdist {
            path: &self.path,
            filename: self.filename,
            sha256: &self.sha256,
            backend: Some("backend"),
            backend_path: &self.backend_path,
            ahead: None,
        }
    }
}

/// A builder on `cache` with the machine's Python, as a run makes it; only after [`python`]
/// found one.
///
/// Its trees are unpacked below the cache, never in the machine's memory file system, so that
/// tests can look where they went (see `work_dir.rs` for trees in memory).
pub fn builder(cache: PathBuf) -> Builder {
    let interpreter = python().expect("checked by the caller");
    Builder::new(
        interpreter,
        Some(cache),
        Duration::from_secs(120),
        Some(Isolation::detect()),
    )
    .with_memory_dir(None)
}

/// Entries of `dir`, by name, sorted; none when it does not exist.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
