//! Core metadata, wheels and sdists as the index serves them: errors, never panics, and the
//! archive readers stay within their size limits.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ =
        bitpoll_metadata::parse_core_metadata(data, bitpoll_metadata::MetadataSource::CoreMetadata);
    let _ = bitpoll_metadata::read_wheel_metadata(data);
    let _ = bitpoll_metadata::read_sdist("fuzz-1.0.tar.gz", data);
    let _ = bitpoll_metadata::read_sdist("fuzz-1.0.zip", data);
});
