//! PEP 691 project pages from a hostile index: parse or refuse, never panic, and never accept
//! a file name that could escape a directory.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let url = url::Url::parse("http://127.0.0.1:1/simple/fuzz/").unwrap();
    let name: pep508_rs::PackageName = "fuzz".parse().unwrap();
    if let Ok(page) = bitpoll_client::parse_project_page(data, &url, &name, None) {
        for file in &page.files {
            assert!(!file.filename.contains('/') && !file.filename.contains(".."));
        }
    }
});
