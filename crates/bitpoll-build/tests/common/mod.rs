//! What the tests of builds share: an sdist made in memory and the machine's Python.

use bitpoll_build::Interpreter;

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

pub fn python() -> Option<Interpreter> {
    match Interpreter::find("3", None, None) {
        Ok(found) => Some(found),
        Err(e) => {
            bitpoll_test_skip::skip(format!("no Python to run a backend: {e}"));
            None
        }
    }
}
