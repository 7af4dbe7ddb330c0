//! Against the real package index, found the way the CLI finds it. Ignored by default (they
//! need the network): `cargo test -p bitpoll-client --test live -- --ignored`.

use bitpoll_client::{discover_index_url, ClientOptions, DistFile, IndexClient};
use bitpoll_metadata::MetadataSource;
use pep508_rs::PackageName;

#[test]
#[ignore = "talks to the real index"]
fn live_project_and_metadata() {
    let (index, origin) = discover_index_url(None).expect("an index URL");
    eprintln!("index {index} from {origin}");
    let cache = tempfile::tempdir().unwrap();
    let client = IndexClient::new(ClientOptions::new(index, cache.path().to_path_buf())).unwrap();
    let name = PackageName::new("packaging".into()).unwrap();
    let page = client.project(&name).unwrap();
    assert!(page.files.len() > 20);
    assert!(page.files.iter().all(|f| f.sha256.is_some()));
    let wheel = page
        .files
        .iter()
        .rev()
        .find(|f| f.is_wheel() && f.yanked.is_none())
        .expect("a wheel");
    let meta = client.core_metadata(wheel).unwrap();
    assert_eq!(meta.name, name);
    // Mirrors do not always serve metadata files; the wheel is the fallback.
    let expected = if wheel.core_metadata.is_some() {
        MetadataSource::CoreMetadata
    } else {
        MetadataSource::Wheel
    };
    assert_eq!(meta.source, expected);
    let sdist = page
        .files
        .iter()
        .rev()
        .find(|f| f.filename.ends_with(".tar.gz"))
        .expect("an sdist");
    let info = client.sdist_info(sdist).unwrap();
    assert!(!info.build_requires.is_empty());
    eprintln!("{:?}", client.stats());
}

#[test]
#[ignore = "talks to the real index"]
fn live_newest_release_metadata() {
    let (index, _) = discover_index_url(None).expect("an index URL");
    let cache = tempfile::tempdir().unwrap();
    let client = IndexClient::new(ClientOptions::new(index, cache.path().to_path_buf())).unwrap();
    let names = [
        "requests",
        "django",
        "caldav",
        "psycopg2",
        "icalendar",
        "vobject",
        "numpy",
    ];
    let names: Vec<PackageName> = names
        .iter()
        .map(|n| PackageName::new(n.to_string()).unwrap())
        .collect();
    for name in &names {
        client.prefetch_project(name);
    }
    for name in &names {
        let page = client.project(name).unwrap();
        // A wheel's version is the second field of its name; the newest is the one to ask about.
        let version = |f: &DistFile| {
            f.filename
                .split('-')
                .nth(1)
                .and_then(|v| v.parse::<pep440_rs::Version>().ok())
        };
        let newest = page
            .files
            .iter()
            .filter(|f| f.yanked.is_none() && f.is_wheel())
            .max_by_key(|f| version(f))
            .or(page.files.iter().last())
            .unwrap();
        match client.core_metadata(newest) {
            Ok(meta) => {
                assert_eq!(&meta.name, name);
                eprintln!(
                    "{}: {} ({} deps, {})",
                    newest.filename,
                    meta.version,
                    meta.requires_dist.len(),
                    meta.source
                );
            }
            Err(bitpoll_client::ClientError::NoStaticMetadata { file }) => {
                eprintln!("{file}: no static metadata")
            }
            Err(err) => panic!("{}: {err}", newest.filename),
        }
    }
    eprintln!("{:?}", client.stats());
}
