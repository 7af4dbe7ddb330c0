//! PEP 691 project pages from a hostile index: parse or refuse, never panic, and never accept
//! a file name that could escape a directory. Pages are read both from memory and as a
//! stream (how the cache hands them over); the two must agree.
#![no_main]
use bitpoll_client::PageParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let url = url::Url::parse("http://127.0.0.1:1/simple/fuzz/").unwrap();
    let name: pep508_rs::PackageName = "fuzz".parse().unwrap();
    let parser = PageParser {
        page_url: &url,
        project: &name,
        exclude_newer: None,
        filter: None,
    };
    let from_slice = parser.parse_slice(data);
    let from_reader = parser.parse_reader(data);
    match (&from_slice, &from_reader) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        _ => panic!("slice and stream disagree: {from_slice:?} / {from_reader:?}"),
    }
    if let Ok(page) = from_slice {
        for file in &page.files {
            assert!(!file.filename.contains('/') && !file.filename.contains(".."));
        }
    }
});
