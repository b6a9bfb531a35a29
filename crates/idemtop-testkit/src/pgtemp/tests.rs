//! Unit tests of pgtemp.

use super::*;

#[test]
fn newest_version_dir_wins() {
    let root = std::env::temp_dir().join(format!("idemtop-bins-{}", std::process::id()));
    for v in ["9.6", "15", "13"] {
        let bin = root.join(v).join("bin");
        fs::create_dir_all(&bin).unwrap();
        fs::write(bin.join("initdb"), "").unwrap();
        fs::write(bin.join("postgres"), "").unwrap();
    }
    fs::create_dir_all(root.join("common")).unwrap();
    let best = newest_debian_bin(&root).unwrap();
    fs::remove_dir_all(&root).unwrap();
    assert!(best.ends_with("15/bin"), "{best:?}");
}

#[test]
fn server_files_are_private_and_removed() {
    use std::os::unix::fs::MetadataExt;
    let files = ServerFiles::new().unwrap();
    let dir = files.dir().to_path_buf();
    let key = files.write("server.key", b"secret", 0o600).unwrap();
    assert_eq!(fs::read(&key).unwrap(), b"secret");
    assert_eq!(fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
    assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    if let Some((uid, _)) = server_identity().unwrap() {
        assert_eq!(fs::metadata(&key).unwrap().uid(), uid);
    }
    for bad in ["", "..", "../x", "a/b"] {
        assert!(files.write(bad, b"", 0o600).is_err(), "{bad:?}");
    }
    drop(files);
    assert!(!dir.exists());
}

#[test]
fn no_binaries_is_one_sentence_naming_the_package() {
    let empty = std::env::temp_dir().join(format!("idemtop-nobins-{}", std::process::id()));
    fs::create_dir_all(&empty).unwrap();
    let err = PgBinaries::find_from(None, &empty, Some(empty.clone().into_os_string()))
        .unwrap_err()
        .to_string();
    fs::remove_dir_all(&empty).unwrap();
    assert!(err.contains("apt-get install postgresql"), "{err}");
    assert_eq!(err.lines().count(), 1);
    let err = PgBinaries::find_from(Some(PathBuf::from("/nonexistent")), &empty, None)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("PG_BIN=/nonexistent"), "{err}");
}
