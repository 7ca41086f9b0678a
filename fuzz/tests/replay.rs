//! Replays every committed corpus file through its target's body, on
//! stable, without libFuzzer.

use std::path::Path;

#[test]
fn replay_every_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut replayed = 0;
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let body: fn(&[u8]) = match name.as_str() {
            "kickstart" => entropool_fuzz::kickstart,
            "set_args" => entropool_fuzz::set_args,
            "api_add" => entropool_fuzz::api_add,
            "http_request" => entropool_fuzz::http_request,
            "storage_load" => entropool_fuzz::storage_load,
            "pem_key" => entropool_fuzz::pem_key,
            other => panic!("corpus/{other} has no target"),
        };
        let mut files = 0;
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            let data = std::fs::read(&f).unwrap();
            println!("replay {name}/{}", f.file_name().unwrap().to_string_lossy());
            body(&data);
            let fname = f.file_name().unwrap().to_string_lossy().into_owned();
            if name == "kickstart" && !fname.starts_with("fuzzed-") {
                // Hand-written seeds say in their name whether the parser
                // must accept them (`fuzzed-*` were found by libFuzzer).
                let r = entropool::kickstart::read_kickstart_with_limits(
                    &data[..],
                    entropool_fuzz::FUZZ_LIMITS,
                );
                assert_eq!(r.is_ok(), fname.starts_with("valid"), "{fname}: {r:?}");
            }
            files += 1;
        }
        assert!(files > 0, "corpus/{name} is empty");
        replayed += files;
    }
    assert!(replayed >= 2);
    println!("replayed {replayed} corpus files");
}
