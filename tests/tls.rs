//! TLS against real throwaway servers with `ssl=on`: libpq's sslmode semantics, certificate
//! checks, readable errors, the `PGSSL*` variables and client certificates. Each test makes its
//! own CA and certificates with the `openssl` command and starts its own server, so a failing
//! test stops its server and removes its files (both are dropped while unwinding).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::idemtop;
use idemtop::db::connect::ConnectConfig;
use idemtop::pgtemp::{ServerFiles, TempPgOptions, TempPostgres};

/// Plaintext and TLS alike (and the Unix socket).
const HBA_ANY: &str = "local all all trust\nhost all all 127.0.0.1/32 trust\n";
/// TLS only over TCP, like most managed PostgreSQL.
const HBA_TLS_ONLY: &str = "local all all trust\nhostssl all all 127.0.0.1/32 trust\n";
/// TLS only, and `certuser` must also show a client certificate for that name.
const HBA_CLIENT_CERT: &str = "local all all trust\n\
    hostssl all certuser 127.0.0.1/32 trust clientcert=verify-full\n\
    hostssl all all 127.0.0.1/32 trust\n";

/// A new unencrypted P-256 key (fast to make, and what managed servers often use).
const NEW_KEY: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

const OPENSSL_CNF: &str = "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = placeholder\n\
    [ca]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n\
    subjectKeyIdentifier = hash\n";

/// A test PKI in a directory the server may read: a CA (`ca`), a second, unrelated CA
/// (`wrong-ca`), server certificates signed by `ca` for `localhost`/`127.0.0.1` (`server`) and
/// for another name only (`other`), and a client certificate for `certuser` (`client`).
struct Pki {
    files: ServerFiles,
}

impl Pki {
    fn new() -> Pki {
        let files = ServerFiles::new().expect("a directory for the test certificates");
        let pki = Pki { files };
        pki.write("openssl.cnf", OPENSSL_CNF.as_bytes(), 0o644);
        pki.ca("ca", "idemtop test CA");
        pki.ca("wrong-ca", "some other CA");
        pki.leaf(
            "server",
            "localhost",
            "subjectAltName = DNS:localhost, IP:127.0.0.1\nextendedKeyUsage = serverAuth\n",
            2,
        );
        pki.leaf(
            "other",
            "db.example.invalid",
            "subjectAltName = DNS:db.example.invalid\nextendedKeyUsage = serverAuth\n",
            3,
        );
        pki.leaf("client", "certuser", "extendedKeyUsage = clientAuth\n", 4);
        // The server refuses a key that is not its own with mode 0600; so does libpq (and
        // idemtop) for the client's.
        for key in ["server.key", "other.key", "client.key"] {
            let bytes = std::fs::read(pki.path(key)).expect("read a generated key");
            pki.write(key, &bytes, 0o600);
        }
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.files.path(name)
    }

    fn write(&self, name: &str, contents: &[u8], mode: u32) -> PathBuf {
        self.files
            .write(name, contents, mode)
            .expect("write a file for the server")
    }

    /// `openssl` with `args` (split at spaces) and then `extra` (which may hold spaces).
    fn openssl(&self, args: &str, extra: &[&str]) {
        let out = Command::new("openssl")
            .args(args.split_whitespace())
            .args(extra)
            .current_dir(self.files.dir())
            .output()
            .expect("run openssl (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args} {extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A self-signed CA: `name.crt`, `name.key`.
    fn ca(&self, name: &str, cn: &str) {
        self.openssl(
            &format!(
                "req -x509 -config openssl.cnf -extensions ca {NEW_KEY} -keyout {name}.key \
                 -out {name}.crt -days 2"
            ),
            &["-subj", &format!("/CN={cn}")],
        );
    }

    /// A certificate signed by `ca`: `name.crt`, `name.key`.
    fn leaf(&self, name: &str, cn: &str, extensions: &str, serial: u32) {
        let ext = format!(
            "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n\
             {extensions}"
        );
        self.write(&format!("{name}.ext"), ext.as_bytes(), 0o644);
        self.openssl(
            &format!("req -new -config openssl.cnf {NEW_KEY} -keyout {name}.key -out {name}.csr"),
            &["-subj", &format!("/CN={cn}")],
        );
        self.openssl(
            &format!(
                "x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -set_serial {serial} -days 2 \
                 -out {name}.crt -extfile {name}.ext"
            ),
            &[],
        );
    }

    /// A server with TLS on, presenting `cert` (`server` or `other`), with this pg_hba.conf.
    fn server(&self, cert: &str, hba: &str) -> TempPostgres {
        let hba = self.write(&format!("pg_hba-{cert}.conf"), hba.as_bytes(), 0o600);
        TempPostgres::start_with(
            TempPgOptions::default()
                .tls(
                    &self.path(&format!("{cert}.crt")),
                    &self.path(&format!("{cert}.key")),
                )
                .client_ca(&self.path("ca.crt"))
                .hba_file(&hba),
        )
        .expect("start a throwaway PostgreSQL with TLS")
    }
}

/// `postgres://postgres@HOST:PORT/postgres` with these query parameters (values encoded).
fn url(pg: &TempPostgres, host: &str, user: &str, params: &[(&str, &Path)]) -> String {
    let mut url = format!("postgres://{user}@{host}:{}/postgres", pg.port());
    for (i, (k, v)) in params.iter().enumerate() {
        let v: String =
            url::form_urlencoded::byte_serialize(v.to_string_lossy().as_bytes()).collect();
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(&format!("{k}={v}"));
    }
    url
}

fn p(s: &str) -> &Path {
    Path::new(s)
}

/// Connect with `url` and tell whether the session uses TLS (from the server's own
/// `pg_stat_ssl`), with the client certificate's DN the server saw.
async fn session_tls(url: &str) -> anyhow::Result<(bool, Option<String>)> {
    let mut conn = ConnectConfig::from_url(url).connect().await?;
    let row: (bool, Option<String>) =
        sqlx::query_as("SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut conn)
            .await?;
    Ok(row)
}

/// The error of a connection that must fail, checked to be one readable line.
async fn connect_error(url: &str) -> String {
    let err = match ConnectConfig::from_url(url).connect().await {
        Ok(_) => panic!("connecting with {url} should fail"),
        Err(e) => e.to_string(),
    };
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("cannot connect to "), "{err}");
    assert!(!err.chars().any(char::is_control), "{err}");
    err
}

#[tokio::test]
async fn require_connects_over_tls() {
    let pki = Pki::new();
    let pg = pki.server("server", HBA_TLS_ONLY);
    let (ssl, _) = session_tls(&url(
        &pg,
        "127.0.0.1",
        "postgres",
        &[("sslmode", p("require"))],
    ))
    .await
    .expect("sslmode=require connects to a TLS-only server");
    assert!(ssl, "pg_stat_ssl says the session is not encrypted");
}

#[tokio::test]
async fn prefer_is_the_default_and_uses_tls_when_offered() {
    let pki = Pki::new();
    let pg = pki.server("server", HBA_ANY);
    let (ssl, _) = session_tls(&pg.url()).await.expect("default connects");
    assert!(ssl, "with no sslmode (prefer) the session should use TLS");
    // sqlx would take `allow` as plaintext only; idemtop makes it prefer.
    let (ssl, _) = session_tls(&url(
        &pg,
        "127.0.0.1",
        "postgres",
        &[("sslmode", p("allow"))],
    ))
    .await
    .expect("allow connects");
    assert!(ssl, "sslmode=allow should use TLS when offered");
    // disable means plaintext, even where TLS is offered.
    let (ssl, _) = session_tls(&url(
        &pg,
        "127.0.0.1",
        "postgres",
        &[("sslmode", p("disable"))],
    ))
    .await
    .expect("disable connects");
    assert!(!ssl, "sslmode=disable must not use TLS");
    // Unix sockets never use TLS in libpq, whatever the sslmode: require still connects.
    let dir: String =
        url::form_urlencoded::byte_serialize(pg.dir().to_string_lossy().as_bytes()).collect();
    let socket = format!(
        "postgres://postgres@{dir}:{}/postgres?sslmode=require",
        pg.port()
    );
    let (ssl, _) = session_tls(&socket)
        .await
        .expect("require over the Unix socket");
    assert!(!ssl);
}

#[tokio::test]
async fn verify_full_with_the_right_root_certificate_connects() {
    let pki = Pki::new();
    let pg = pki.server("server", HBA_TLS_ONLY);
    let ca = pki.path("ca.crt");
    for host in ["127.0.0.1", "localhost"] {
        let url = url(
            &pg,
            host,
            "postgres",
            &[("sslmode", p("verify-full")), ("sslrootcert", &ca)],
        );
        let (ssl, _) = session_tls(&url)
            .await
            .unwrap_or_else(|e| panic!("verify-full via {host}: {e}"));
        assert!(ssl);
    }
    // verify-ca checks the chain only; the name matches here anyway.
    let url = url(
        &pg,
        "127.0.0.1",
        "postgres",
        &[("sslmode", p("verify-ca")), ("sslrootcert", &ca)],
    );
    assert!(session_tls(&url).await.expect("verify-ca").0);
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_readably() {
    let pki = Pki::new();
    let pg = pki.server("server", HBA_TLS_ONLY);
    let wrong = pki.path("wrong-ca.crt");
    for mode in ["verify-full", "verify-ca", "require"] {
        // `require` with a root certificate present verifies like verify-ca (libpq's rule).
        let url = url(
            &pg,
            "127.0.0.1",
            "postgres",
            &[("sslmode", p(mode)), ("sslrootcert", &wrong)],
        );
        let err = connect_error(&url).await;
        assert!(
            err.contains("not signed by a trusted CA (unknown CA)") && err.contains("sslrootcert"),
            "{mode}: {err}"
        );
        assert!(err.contains("postgres@127.0.0.1:"), "{mode}: {err}");
    }
}

#[tokio::test]
async fn a_certificate_for_another_host_name_is_refused_readably() {
    let pki = Pki::new();
    let pg = pki.server("other", HBA_TLS_ONLY);
    let ca = pki.path("ca.crt");
    let err = connect_error(&url(
        &pg,
        "127.0.0.1",
        "postgres",
        &[("sslmode", p("verify-full")), ("sslrootcert", &ca)],
    ))
    .await;
    assert!(
        err.contains("does not match the host name 127.0.0.1")
            && err.contains("hostname mismatch")
            && err.contains("db.example.invalid"),
        "{err}"
    );
    // libpq's verify-ca would accept this certificate (right CA, other name), but sqlx 0.8.6
    // checks the name there too (launchbadge/sqlx#3793): the error says so. When this starts to
    // connect, sqlx was fixed: drop the note in connect.rs and README.md.
    let err = connect_error(&url(
        &pg,
        "127.0.0.1",
        "postgres",
        &[("sslmode", p("verify-ca")), ("sslrootcert", &ca)],
    ))
    .await;
    assert!(
        err.contains("hostname mismatch") && err.contains("sslmode=verify-ca"),
        "{err}"
    );
    // require does not verify (no root certificate given, none in ~/.postgresql).
    let home = ServerFiles::new().expect("an empty home");
    let url_require = url(&pg, "127.0.0.1", "postgres", &[("sslmode", p("require"))]);
    let (code, _, err) = idemtop(
        &["--database-url", &url_require, "migrate", "status"],
        &[("HOME", &home.dir().to_string_lossy())],
    );
    assert_eq!(code, 0, "{err}");
}

#[tokio::test]
async fn disable_against_a_tls_only_server_says_tls_is_required() {
    let pki = Pki::new();
    let pg = pki.server("server", HBA_TLS_ONLY);
    let err = connect_error(&url(
        &pg,
        "127.0.0.1",
        "postgres",
        &[("sslmode", p("disable"))],
    ))
    .await;
    assert!(
        err.contains("the server requires TLS") && err.contains("sslmode=require"),
        "{err}"
    );
}

#[tokio::test]
async fn require_against_a_server_without_tls_says_so() {
    let pg = TempPostgres::start().expect("a plaintext throwaway server");
    let err = connect_error(&url(
        &pg,
        "127.0.0.1",
        "postgres",
        &[("sslmode", p("require"))],
    ))
    .await;
    assert!(
        err.contains("the server does not support TLS") && err.contains("sslmode=require"),
        "{err}"
    );
    // prefer falls back to plaintext there.
    let (ssl, _) = session_tls(&pg.url()).await.expect("prefer without TLS");
    assert!(!ssl);
}

#[tokio::test]
async fn pgsslmode_and_friends_are_honoured() {
    let pki = Pki::new();
    let pg = pki.server("server", HBA_TLS_ONLY);
    let port = pg.port().to_string();
    let ca = pki.path("ca.crt").to_string_lossy().into_owned();
    let wrong = pki.path("wrong-ca.crt").to_string_lossy().into_owned();
    let empty_home = ServerFiles::new().expect("an empty home");
    let empty_home = empty_home.dir().to_string_lossy().into_owned();
    let base = [
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", port.as_str()),
        ("PGUSER", "postgres"),
        ("PGDATABASE", "postgres"),
        ("HOME", empty_home.as_str()),
    ];
    let run = |extra: &[(&str, &str)]| {
        let env: Vec<(&str, &str)> = base.iter().chain(extra).copied().collect();
        idemtop(&["migrate", "status"], &env)
    };

    let (code, _, err) = run(&[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &ca)]);
    assert_eq!(code, 0, "verify-full with the right CA: {err}");

    let (code, _, err) = run(&[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &wrong)]);
    assert_ne!(code, 0);
    assert!(err.contains("unknown CA"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // PGSSLMODE=disable against a TLS-only server: proof that the variable is read at all.
    let (code, _, err) = run(&[("PGSSLMODE", "disable")]);
    assert_ne!(code, 0);
    assert!(err.contains("the server requires TLS"), "{err}");

    // A typo is an error, not a silent prefer.
    let (code, _, err) = run(&[("PGSSLMODE", "verify_full")]);
    assert_ne!(code, 0);
    assert!(err.contains("invalid sslmode \"verify_full\""), "{err}");

    // verify-full with no sslrootcert: libpq's ~/.postgresql/root.crt, or a clear error.
    let (code, _, err) = run(&[("PGSSLMODE", "verify-full")]);
    assert_ne!(code, 0);
    assert!(
        err.contains("root.crt\" does not exist") && err.contains("sslrootcert=system"),
        "{err}"
    );
    let home = ServerFiles::new().expect("a home with ~/.postgresql/root.crt");
    std::fs::create_dir(home.path(".postgresql")).expect("mkdir ~/.postgresql");
    std::fs::copy(pki.path("ca.crt"), home.path(".postgresql/root.crt")).expect("root.crt");
    let home_dir = home.dir().to_string_lossy().into_owned();
    let (code, _, err) = run(&[("PGSSLMODE", "verify-full"), ("HOME", &home_dir)]);
    assert_eq!(code, 0, "verify-full with ~/.postgresql/root.crt: {err}");
    // ... which turns require into verify-ca: the wrong CA there is refused.
    std::fs::copy(pki.path("wrong-ca.crt"), home.path(".postgresql/root.crt")).expect("root.crt");
    let (code, _, err) = run(&[("PGSSLMODE", "require"), ("HOME", &home_dir)]);
    assert_ne!(code, 0);
    assert!(err.contains("unknown CA"), "{err}");

    // sslrootcert=system wants verify-full.
    let (code, _, err) = run(&[("PGSSLMODE", "require"), ("PGSSLROOTCERT", "system")]);
    assert_ne!(code, 0);
    assert!(err.contains("too weak for sslrootcert=system"), "{err}");
    // ... and with it, our test CA is not in the system's store.
    let (code, _, err) = run(&[("PGSSLROOTCERT", "system")]);
    assert_ne!(code, 0);
    assert!(err.contains("unknown CA"), "{err}");
}

#[tokio::test]
async fn client_certificates_are_sent() {
    let pki = Pki::new();
    let pg = pki.server("server", HBA_CLIENT_CERT);
    pg.psql("postgres", "CREATE ROLE certuser LOGIN")
        .expect("create the certificate's role");
    let ca = pki.path("ca.crt");
    let (cert, key) = (pki.path("client.crt"), pki.path("client.key"));

    let with_cert = url(
        &pg,
        "localhost",
        "certuser",
        &[
            ("sslmode", p("verify-full")),
            ("sslrootcert", &ca),
            ("sslcert", &cert),
            ("sslkey", &key),
        ],
    );
    let (ssl, dn) = session_tls(&with_cert)
        .await
        .expect("connect with a client certificate");
    assert!(ssl);
    assert_eq!(dn.as_deref(), Some("/CN=certuser"));

    // Without one, the server's refusal is explained.
    let without = url(
        &pg,
        "localhost",
        "certuser",
        &[("sslmode", p("verify-full")), ("sslrootcert", &ca)],
    );
    let err = connect_error(&without).await;
    assert!(err.contains("sslcert") && err.contains("sslkey"), "{err}");

    // A key others may read is refused before connecting, as libpq does.
    // (Our own file: one of the server's user would pass, as root may read it anyway.)
    let loose = pki.path("loose.key");
    std::fs::copy(&key, &loose).expect("copy the client key");
    std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod 644");
    let err = connect_error(&url(
        &pg,
        "localhost",
        "certuser",
        &[
            ("sslmode", p("verify-full")),
            ("sslrootcert", &ca),
            ("sslcert", &cert),
            ("sslkey", &loose),
        ],
    ))
    .await;
    assert!(err.contains("group or world access"), "{err}");
}
