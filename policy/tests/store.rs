//! PolicyStore: the last good policy stays in force, reloads are atomic, decisions in
//! flight keep their snapshot, and unsafe files are refused.

use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use steward_policy::{permitted, OpSet, Operation, PolicyStore, StoreOptions, Subject};

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x");
    std::fs::write(&p, "").unwrap();
    std::fs::metadata(&p).unwrap().uid() == 0
}

fn store() -> PolicyStore {
    PolicyStore::new(StoreOptions {
        require_root_owned: is_root(),
    })
}

const READ_ALL: &str = "[owners.\"*\".\"*\"]\ndefault = \"READ\"\n";
const CONTROL_ALL: &str = "[owners.\"*\".\"*\"]\ndefault = [\"READ\", \"CONTROL\"]\n";

#[test]
fn load_reports_sha256_and_swaps_atomically() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("site.toml");
    std::fs::write(&path, READ_ALL).unwrap();
    let s = store();
    let (o, a) = (
        Subject::new("o", Vec::<String>::new()),
        Subject::new("a", Vec::<String>::new()),
    );
    assert_eq!(
        permitted(&s.current(), None, &o, &a, ""),
        OpSet::EMPTY,
        "empty until loaded"
    );
    assert!(s.reload().is_err(), "nothing to reload yet");

    let r = s.load(&path).unwrap();
    assert_eq!(r.sha256, hex::encode(Sha256::digest(READ_ALL.as_bytes())));
    assert_eq!((r.entries, r.changed), (1, true));
    assert!(r.warnings.is_empty());

    // A decision in flight holds its snapshot across a reload.
    let in_flight: Arc<_> = s.current();
    std::fs::write(&path, CONTROL_ALL).unwrap();
    let r2 = s.reload().unwrap();
    assert!(r2.changed);
    assert_ne!(r2.sha256, r.sha256);
    assert_eq!(permitted(&in_flight, None, &o, &a, ""), OpSet::READ_LEVEL);
    assert!(permitted(&s.current(), None, &o, &a, "").contains(Operation::Stop));

    // Same bytes again: not changed.
    assert!(!s.reload().unwrap().changed);
}

#[test]
fn a_bad_file_never_replaces_the_good_one() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("site.toml");
    std::fs::write(&path, READ_ALL).unwrap();
    let s = store();
    s.load(&path).unwrap();
    let good = s.current();

    std::fs::write(&path, "[owners.\"*\".\"*\"]\ndefault = []\n").unwrap();
    let err = s.reload().unwrap_err();
    assert!(err.to_string().contains(":2:11: error:"), "{err}");
    assert!(Arc::ptr_eq(&good, &s.current()), "still the good policy");

    std::fs::write(&path, [0xff, 0xfe]).unwrap();
    assert!(s.reload().is_err());
    std::fs::remove_file(&path).unwrap();
    assert!(s.reload().unwrap_err().to_string().contains("cannot open"));
    assert!(Arc::ptr_eq(&good, &s.current()));
    // The source recorded is still the good file's hash.
    assert_eq!(
        s.source().unwrap().1,
        hex::encode(Sha256::digest(READ_ALL.as_bytes()))
    );
}

#[test]
fn unsafe_site_files_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("site.toml");
    std::fs::write(&path, READ_ALL).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let strict = PolicyStore::default();
    let e = strict.load(&path).unwrap_err().to_string();
    assert!(
        e.contains("writable by") || e.contains("owned by root"),
        "{e}"
    );
    if is_root() {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        strict.load(&path).unwrap();
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let e = strict.reload().unwrap_err().to_string();
        assert!(e.contains("owner is uid 65534"), "{e}");
        std::os::unix::fs::chown(&path, Some(0), None).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o620)).unwrap();
        let e = strict.reload().unwrap_err().to_string();
        assert!(e.contains("writable by its group"), "{e}");
    }
    // The demo's relaxed store accepts it.
    let relaxed = PolicyStore::new(StoreOptions {
        require_root_owned: false,
    });
    relaxed.load(&path).unwrap();
}
