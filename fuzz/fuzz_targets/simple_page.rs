//! PEP 691 project pages from a hostile index: parse or refuse, never panic, and never accept
//! a file name that could escape a directory. Pages are read both from memory and as a
//! stream (how the cache hands them over); the two must agree, and a page kept in the compact
//! form reads back as itself. The same bytes read as a stored compact page are refused, or
//! give a page every file of which can be built.
#![no_main]
use bitpoll_client::{PageParser, ProjectPage};
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
        let stored = ProjectPage::decode_compact(page.encode_compact(), &url)
            .expect("a parsed page's compact form reads back");
        assert_eq!(stored, page);
    }
    if let Ok(page) = ProjectPage::decode_compact(data.to_vec(), &url) {
        for (i, file) in page.files.iter().enumerate() {
            assert_eq!(page.files.filename(i), &*file.filename);
        }
    }
});
