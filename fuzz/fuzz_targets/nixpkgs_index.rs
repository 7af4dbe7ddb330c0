//! The nixpkgs index reader: a loaded index must answer lookups for any name without panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = bitpoll_nixpkgs::Nixpkgs::from_bytes(std::path::Path::new("fuzz.json"), data)
    {
        for attr in index
            .index
            .packages
            .keys()
            .chain(index.index.aliases.keys())
        {
            let _ = index.get(attr);
            if let Ok(name) = attr.parse::<pep508_rs::PackageName>() {
                let _ = index.candidates(&name);
            }
        }
    }
});
