//! The lock reader, and the policy reader beside it: errors, never panics; a lock that reads
//! must write back to text that reads again to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.lock.json");
    if let Ok(lock) = bitpoll_lockfile::Lock::from_slice(path, data) {
        let again = bitpoll_lockfile::Lock::from_slice(path, lock.to_json().as_bytes())
            .expect("round trip");
        assert_eq!(lock, again);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = bitpoll_policy::Policy::parse(std::path::Path::new("policy.toml"), text);
    }
});
