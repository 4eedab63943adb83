//! The source identity behind cache keys: a changed size, modification time, or bytes in the first
//! or last 64 KiB give a new identity (so the entries of that video are rebuilt); the same file
//! gives the same identity. Bytes changed only in the middle of a large file with size and time
//! restored are not seen (the documented cost of not hashing whole 4K videos).

use std::time::{Duration, SystemTime};

use ethos_data::cache::source_identity;

fn set_mtime(p: &std::path::Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn size_mtime_and_content_changes_change_the_identity() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("video.mp4");
    let bytes: Vec<u8> = (0..400_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&p, &bytes).unwrap();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    set_mtime(&p, t0);
    let id = source_identity(&p).unwrap();
    assert_eq!(source_identity(&p).unwrap(), id, "stable");

    set_mtime(&p, t0 + Duration::from_secs(1));
    let by_time = source_identity(&p).unwrap();
    assert_ne!(by_time, id, "modification time");
    set_mtime(&p, t0);
    assert_eq!(source_identity(&p).unwrap(), id, "time restored");

    let mut longer = bytes.clone();
    longer.push(0);
    std::fs::write(&p, &longer).unwrap();
    set_mtime(&p, t0);
    assert_ne!(source_identity(&p).unwrap(), id, "size");

    for at in [10, 65_535, bytes.len() - 65_536, bytes.len() - 1] {
        let mut changed = bytes.clone();
        changed[at] ^= 0xff;
        std::fs::write(&p, &changed).unwrap();
        set_mtime(&p, t0);
        assert_ne!(source_identity(&p).unwrap(), id, "content at byte {at}");
    }

    let mut middle = bytes.clone();
    middle[200_000] ^= 0xff;
    std::fs::write(&p, &middle).unwrap();
    set_mtime(&p, t0);
    assert_eq!(
        source_identity(&p).unwrap(),
        id,
        "only the first and last 64 KiB are hashed"
    );

    assert!(source_identity(&dir.path().join("missing.mp4")).is_err());
}
