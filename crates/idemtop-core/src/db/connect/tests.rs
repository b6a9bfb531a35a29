//! Unit tests of the connect module.

use super::*;

/// A refused connection is a lost connection (the dashboard says "disconnected" and
/// retries), not a failed refresh on a live one.
#[tokio::test]
async fn a_failed_connect_counts_as_a_lost_connection() {
    let err = ConnectConfig::from_url("postgres://nobody@127.0.0.1:1/none")
        .connect()
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot connect to nobody@127.0.0.1:1/none"),
        "{err}"
    );
    assert!(is_connection_lost(&err));
    assert!(!is_connection_lost(&anyhow!(
        "column \"nope\" does not exist"
    )));
}

#[test]
fn describe_never_shows_the_password() {
    let cfg = ConnectConfig::from_url("postgres://alice:hunter2@example.org:6543/shop");
    let d = cfg.describe();
    assert_eq!(d, "alice@example.org:6543/shop");
    assert!(!d.contains("hunter2"));
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "idemtop-connect-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(dir.join(".postgresql")).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.0.join(name);
        std::fs::write(&path, "-----BEGIN X-----\n-----END X-----\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn params(url: Option<&str>, env: &[(&str, &str)]) -> TlsParams {
    TlsParams::gather(url, |name| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
}

fn file(path: &str) -> Option<CertSource> {
    Some(CertSource::File(PathBuf::from(path)))
}

#[test]
fn tls_parameters_come_from_the_url_before_the_variables() {
    let p = params(
        Some("postgres://u@h/db?sslmode=verify-full&ssl-root-cert=%2Fca%20dir%2Fca.crt&sslkey=k"),
        &[
            ("PGSSLMODE", "require"),
            ("PGSSLROOTCERT", "/env/ca.crt"),
            ("PGSSLCERT", "/env/c.crt"),
            ("PGSSLKEY", ""),
        ],
    );
    assert_eq!(p.sslmode.as_deref(), Some("verify-full"));
    assert_eq!(p.sslrootcert, file("/ca dir/ca.crt"));
    assert_eq!(p.sslcert, file("/env/c.crt"));
    assert_eq!(p.sslkey, file("k"));

    // Without a URL: the variables; an empty one is unset; PEM text is PEM.
    let p = params(
        None,
        &[
            ("PGSSLMODE", ""),
            (
                "PGSSLROOTCERT",
                "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
            ),
        ],
    );
    assert_eq!(p.sslmode, None);
    assert_eq!(p.sslrootcert, Some(CertSource::Pem));
}

#[test]
fn sslmode_follows_libpq() {
    let home = Scratch::new("mode");
    let plan = |mode: Option<&str>, socket: bool| {
        let p = TlsParams {
            sslmode: mode.map(str::to_owned),
            ..TlsParams::default()
        };
        plan_tls(&p, socket, Some(&home.0)).map(|plan| plan.mode)
    };
    assert!(matches!(plan(None, false), Ok(PgSslMode::Prefer)));
    assert!(matches!(plan(Some("allow"), false), Ok(PgSslMode::Prefer)));
    assert!(matches!(
        plan(Some("DISABLE"), false),
        Ok(PgSslMode::Disable)
    ));
    assert!(matches!(
        plan(Some("require"), false),
        Ok(PgSslMode::Require)
    ));
    // Unix sockets never use TLS.
    assert!(matches!(
        plan(Some("require"), true),
        Ok(PgSslMode::Disable)
    ));
    let err = plan(Some("verify_full\u{1b}[2J"), false).unwrap_err();
    assert!(
        err.starts_with("invalid sslmode \"verify_full␛[2J\""),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'));
}

#[test]
fn verification_needs_a_root_certificate_and_finds_libpqs_default() {
    let home = Scratch::new("root");
    let with = |mode: &str, root: Option<CertSource>| TlsParams {
        sslmode: Some(mode.into()),
        sslrootcert: root,
        ..TlsParams::default()
    };
    let err = plan_tls(&with("verify-full", None), false, Some(&home.0)).unwrap_err();
    assert!(
        err.contains(&format!(
            "\"{}\" does not exist",
            home.0.join(".postgresql/root.crt").display()
        )) && err.contains("sslrootcert=system"),
        "{err}"
    );
    let err = plan_tls(&with("verify-ca", None), false, None).unwrap_err();
    assert!(err.contains("no home directory"), "{err}");
    let err = plan_tls(&with("verify-ca", file("/nonexistent/ca.crt")), false, None).unwrap_err();
    assert!(
        err.contains("\"/nonexistent/ca.crt\" does not exist"),
        "{err}"
    );
    // require with a missing root certificate does not verify, as in libpq.
    let plan = plan_tls(&with("require", file("/nonexistent/ca.crt")), false, None).unwrap();
    assert!(matches!(plan.mode, PgSslMode::Require));

    // With ~/.postgresql/root.crt: used, and require becomes verify-ca.
    let root = home.file(".postgresql/root.crt", 0o644);
    let plan = plan_tls(&with("verify-full", None), false, Some(&home.0)).unwrap();
    assert!(matches!(plan.mode, PgSslMode::VerifyFull));
    assert_eq!(plan.root, Some(RootPlan::File(root.clone())));
    let plan = plan_tls(&with("require", None), false, Some(&home.0)).unwrap();
    assert!(matches!(plan.mode, PgSslMode::VerifyCa));
    // prefer never verifies.
    let plan = plan_tls(&with("prefer", None), false, Some(&home.0)).unwrap();
    assert!(matches!(plan.mode, PgSslMode::Prefer));
    // A given root certificate wins over the default and is left to sqlx.
    let ca = home.file("ca.crt", 0o644);
    let plan = plan_tls(
        &with("require", Some(CertSource::File(ca))),
        false,
        Some(&home.0),
    )
    .unwrap();
    assert!(matches!(plan.mode, PgSslMode::VerifyCa));
    assert_eq!(plan.root, None);
}

#[test]
fn sslrootcert_system_means_verify_full() {
    let system = |mode: Option<&str>| TlsParams {
        sslmode: mode.map(str::to_owned),
        sslrootcert: file("system"),
        ..TlsParams::default()
    };
    let plan = plan_tls(&system(None), false, None).unwrap();
    assert!(matches!(plan.mode, PgSslMode::VerifyFull));
    assert_eq!(plan.root, Some(RootPlan::System));
    for weak in ["disable", "prefer", "require", "verify-ca"] {
        let err = plan_tls(&system(Some(weak)), false, None).unwrap_err();
        assert_eq!(
            err,
            format!("sslmode={weak} is too weak for sslrootcert=system: use sslmode=verify-full")
        );
    }
}

#[test]
fn client_certificates_follow_libpq() {
    let home = Scratch::new("client");
    let base = TlsParams {
        sslmode: Some("require".into()),
        ..TlsParams::default()
    };
    // Nothing given, nothing in ~/.postgresql: no client certificate.
    let plan = plan_tls(&base, false, Some(&home.0)).unwrap();
    assert_eq!((plan.default_cert, plan.default_key), (None, None));
    // A key alone: sqlx refuses it, so say so.
    let key_only = TlsParams {
        sslkey: file("/k.key"),
        ..base.clone()
    };
    let err = plan_tls(&key_only, false, Some(&home.0)).unwrap_err();
    assert!(err.contains("set sslcert too"), "{err}");
    // A missing certificate file.
    let missing = TlsParams {
        sslcert: file("/nonexistent/c.crt"),
        ..base.clone()
    };
    let err = plan_tls(&missing, false, Some(&home.0)).unwrap_err();
    assert!(
        err.contains("\"/nonexistent/c.crt\" (sslcert) does not exist"),
        "{err}"
    );

    // libpq's defaults: the certificate without its key is an error...
    let cert = home.file(".postgresql/postgresql.crt", 0o644);
    let err = plan_tls(&base, false, Some(&home.0)).unwrap_err();
    assert!(
        err.contains("postgresql.key\" (sslkey) does not exist"),
        "{err}"
    );
    // ... a key others can read is refused ...
    let key = home.file(".postgresql/postgresql.key", 0o640);
    let err = plan_tls(&base, false, Some(&home.0)).unwrap_err();
    assert!(err.contains("group or world access (mode 0640)"), "{err}");
    // ... and a private one is used.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let plan = plan_tls(&base, false, Some(&home.0)).unwrap();
    assert_eq!(
        (plan.default_cert, plan.default_key),
        (Some(cert), Some(key))
    );
    // disable needs none of it.
    let disable = TlsParams {
        sslmode: Some("disable".into()),
        ..key_only
    };
    assert!(plan_tls(&disable, false, Some(&home.0)).is_ok());
}

#[test]
fn tls_errors_in_the_settings_name_the_target_but_not_the_password() {
    let cfg = ConnectConfig::from_url(
        "postgres://alice:hunter2@example.org/shop?sslmode=verify-full&sslrootcert=%2Fnonexistent%2Fca.crt",
    );
    let err = cfg.options().unwrap_err().to_string();
    assert!(
        err.starts_with("cannot connect to alice@example.org:5432/shop: sslmode=verify-full needs"),
        "{err}"
    );
    assert!(!err.contains("hunter2"));
    // describe() is about the target only.
    assert_eq!(cfg.describe(), "alice@example.org:5432/shop");
}

#[test]
fn bad_url_is_one_readable_error_without_the_password() {
    let cfg = ConnectConfig::from_url("postgres://alice:hunter2@example.org:notaport/shop");
    let err = cfg.options().unwrap_err().to_string();
    assert!(err.starts_with("invalid database URL"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
