//! Requirement files: any text must give requirements or a file:line error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // Includes are resolved relative to a directory that does not exist, so `-r` lines
        // exercise the error path without touching real files.
        let _ = bitpoll_requirements::parse_str(std::path::Path::new("/nonexistent/fuzz.in"), text);
    }
});
