//! Unit tests of the configuration.

use super::*;

#[test]
fn an_endless_or_huge_file_is_refused_without_reading_it_all() {
    let err = Config::load_file(Path::new("/dev/zero")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "config file /dev/zero is larger than 1024 KiB: not a configuration file?"
    );
    let dir = std::env::temp_dir().join(format!("idemtop-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("big.toml");
    std::fs::write(&big, "# x\n".repeat(300_000)).unwrap();
    assert!(Config::load_file(&big)
        .unwrap_err()
        .to_string()
        .ends_with("is larger than 1024 KiB: not a configuration file?"));
    let bin = dir.join("bin.toml");
    std::fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
    assert!(Config::load_file(&bin)
        .unwrap_err()
        .to_string()
        .ends_with("is not UTF-8 text"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn xdg_then_home() {
    assert_eq!(
        default_path_from(Some("/x".into()), Some("/home/a".into())),
        Some(PathBuf::from("/x/idemtop/config.toml"))
    );
    assert_eq!(
        default_path_from(Some("rel".into()), Some("/home/a".into())),
        Some(PathBuf::from("/home/a/.config/idemtop/config.toml"))
    );
    assert_eq!(default_path_from(None, None), None);
}

#[test]
fn line_and_column() {
    assert_eq!(line_col("a\nbc\nd", 4), (2, 3));
    assert_eq!(line_col("x", 0), (1, 1));
    assert_eq!(line_col("é=1", 2), (1, 2));
}

#[test]
fn floats_keep_a_point() {
    assert_eq!(float(24.0), "24.0");
    assert_eq!(float(0.25), "0.25");
}
