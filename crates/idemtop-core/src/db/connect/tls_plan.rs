//! The TLS plan: libpq sslmode/sslrootcert/sslcert semantics on top of rustls.

use super::*;

/// A certificate or key as given: a file, or (from a `PGSSL*` variable) the PEM text itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    File(PathBuf),
    Pem,
}

impl CertSource {
    /// sqlx's rule for the variables: text that begins and ends like PEM is PEM, else a path.
    pub(super) fn from_env(value: &str) -> Self {
        let t = value.trim();
        if t.starts_with("-----BEGIN") && t.ends_with("-----") {
            CertSource::Pem
        } else {
            CertSource::File(PathBuf::from(value))
        }
    }
}

/// libpq's TLS parameters as given: the URL's query string wins over the `PGSSL*` variables,
/// as in libpq and sqlx. Empty variables count as unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsParams {
    pub sslmode: Option<String>,
    pub sslrootcert: Option<CertSource>,
    pub sslcert: Option<CertSource>,
    pub sslkey: Option<CertSource>,
}

impl TlsParams {
    pub fn gather(url: Option<&str>, env: impl Fn(&str) -> Option<String>) -> Self {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let mut p = TlsParams {
            sslmode: env("PGSSLMODE"),
            sslrootcert: env("PGSSLROOTCERT").map(|v| CertSource::from_env(&v)),
            sslcert: env("PGSSLCERT").map(|v| CertSource::from_env(&v)),
            sslkey: env("PGSSLKEY").map(|v| CertSource::from_env(&v)),
        };
        // The same names as sqlx's URL parser; in the URL a value is always a file name.
        if let Some(url) = url.and_then(|u| url::Url::parse(u).ok()) {
            for (key, value) in url.query_pairs() {
                let file = || Some(CertSource::File(PathBuf::from(value.as_ref())));
                match key.as_ref() {
                    "sslmode" | "ssl-mode" => p.sslmode = Some(value.clone().into_owned()),
                    "sslrootcert" | "ssl-root-cert" | "ssl-ca" => p.sslrootcert = file(),
                    "sslcert" | "ssl-cert" => p.sslcert = file(),
                    "sslkey" | "ssl-key" => p.sslkey = file(),
                    _ => {}
                }
            }
        }
        p
    }
}

/// Roots to trust beyond what sqlx was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootPlan {
    /// `sslrootcert=system`: the operating system's store only (sqlx always adds it).
    System,
    /// libpq's default `~/.postgresql/root.crt`.
    File(PathBuf),
}

/// What [`plan_tls`] decided, to be applied to sqlx's options.
#[derive(Debug, Clone)]
pub struct TlsPlan {
    pub mode: PgSslMode,
    pub root: Option<RootPlan>,
    /// libpq's default client certificate and key (`~/.postgresql/postgresql.crt`, `.key`), when
    /// none was given and they exist.
    pub default_cert: Option<PathBuf>,
    pub default_key: Option<PathBuf>,
}

impl TlsPlan {
    pub fn apply(&self, mut o: PgConnectOptions) -> PgConnectOptions {
        o = o.ssl_mode(self.mode);
        match &self.root {
            // sqlx would read a file called "system"; no PEM at all leaves it the system store.
            Some(RootPlan::System) => o = o.ssl_root_cert_from_pem(Vec::new()),
            Some(RootPlan::File(f)) => o = o.ssl_root_cert(f),
            None => {}
        }
        if let Some(c) = &self.default_cert {
            o = o.ssl_client_cert(c);
        }
        if let Some(k) = &self.default_key {
            o = o.ssl_client_key(k);
        }
        o
    }
}

/// libpq's TLS rules on top of what sqlx does with the same parameters:
///
/// - `sslmode` from `PGSSLMODE` is checked (sqlx silently takes `prefer` for a typo);
/// - `allow` becomes `prefer`: sqlx implements `allow` as `disable`, which cannot reach a
///   server that requires TLS, while `prefer` reaches every server `allow` reaches (it only
///   tries TLS first);
/// - Unix sockets never use TLS (`disable`), as in libpq; the server refuses TLS there anyway;
/// - the root certificate defaults to `~/.postgresql/root.crt`; `verify-ca`/`verify-full`
///   without one is an error (sqlx would silently trust the system store instead), and
///   `require` with one present is `verify-ca`;
/// - `sslrootcert=system` trusts the system store, needs `verify-full` and makes it the default;
/// - the client certificate and key default to `~/.postgresql/postgresql.crt` and `.key`; a
///   key must not be readable by group or others (0600; 0640 if owned by root).
///
/// Differences that remain: `prefer` never verifies the certificate and does not retry in
/// plaintext when the TLS attempt fails; a missing `sslcert` file or an `sslkey` without
/// certificate is an error (libpq ignores them, sqlx refuses them); besides `sslrootcert`,
/// sqlx also trusts the system store.
pub fn plan_tls(p: &TlsParams, socket: bool, home: Option<&Path>) -> Result<TlsPlan, String> {
    let system = p.sslrootcert == Some(CertSource::File(PathBuf::from("system")));
    let mode = match p.sslmode.as_deref() {
        Some(m) => m.parse::<PgSslMode>().map_err(|_| {
            format!(
                "invalid sslmode \"{}\" (expected disable, allow, prefer, require, verify-ca or \
                 verify-full)",
                sanitize::line(m)
            )
        })?,
        None if system => PgSslMode::VerifyFull,
        None => PgSslMode::Prefer,
    };
    if system && !matches!(mode, PgSslMode::VerifyFull) {
        return Err(format!(
            "sslmode={} is too weak for sslrootcert=system: use sslmode=verify-full",
            mode_name(mode)
        ));
    }
    let mode = match mode {
        PgSslMode::Allow => PgSslMode::Prefer,
        m => m,
    };
    let mut plan = TlsPlan {
        mode,
        root: None,
        default_cert: None,
        default_key: None,
    };
    if socket || matches!(mode, PgSslMode::Disable) {
        plan.mode = PgSslMode::Disable;
        return Ok(plan);
    }
    let dot_pg = home.map(|h| h.join(".postgresql"));

    // The root certificate.
    let verify = matches!(mode, PgSslMode::VerifyCa | PgSslMode::VerifyFull);
    if system {
        plan.root = Some(RootPlan::System);
    } else {
        let (path, present) = match &p.sslrootcert {
            Some(CertSource::Pem) => (None, true),
            Some(CertSource::File(f)) => (Some(f.clone()), f.exists()),
            None => match &dot_pg {
                Some(d) => {
                    let f = d.join("root.crt");
                    let present = f.exists();
                    if present {
                        plan.root = Some(RootPlan::File(f.clone()));
                    }
                    (Some(f), present)
                }
                None => (None, false),
            },
        };
        if !present && verify {
            let which = match &path {
                Some(f) => format!(
                    "root certificate file \"{}\" does not exist",
                    sanitize::line(&f.display().to_string())
                ),
                None => "no root certificate (sslrootcert is unset and there is no home \
                         directory for ~/.postgresql/root.crt)"
                    .to_string(),
            };
            return Err(format!(
                "sslmode={} needs the CA that signed the server's certificate: {which}; set \
                 sslrootcert to it, use the system's trusted roots with sslrootcert=system, or \
                 use sslmode=require, which does not verify the certificate",
                mode_name(mode)
            ));
        }
        if present && matches!(mode, PgSslMode::Require) {
            plan.mode = PgSslMode::VerifyCa;
        }
    }

    // The client certificate and key.
    let default = |name: &str| dot_pg.as_ref().map(|d| d.join(name));
    let cert_present = match &p.sslcert {
        Some(CertSource::Pem) => true,
        Some(CertSource::File(f)) if f.exists() => true,
        Some(CertSource::File(f)) => {
            return Err(format!(
                "client certificate file \"{}\" (sslcert) does not exist",
                sanitize::line(&f.display().to_string())
            ))
        }
        None => match default("postgresql.crt").filter(|f| f.exists()) {
            Some(f) => {
                plan.default_cert = Some(f);
                true
            }
            None => false,
        },
    };
    if !cert_present {
        if p.sslkey.is_some() {
            return Err("sslkey is set but there is no client certificate: set sslcert too".into());
        }
        return Ok(plan);
    }
    let key = match &p.sslkey {
        Some(CertSource::Pem) => None,
        Some(CertSource::File(f)) => Some(f.clone()),
        None => {
            let f = default("postgresql.key").ok_or_else(|| {
                "a client certificate is set but no private key: set sslkey".to_string()
            })?;
            plan.default_key = Some(f.clone());
            Some(f)
        }
    };
    if let Some(key) = key {
        check_key_file(&key)?;
    }
    Ok(plan)
}

/// libpq's checks of a private key file: it exists, is a plain file, and is not readable by
/// group or others (0600 or less; 0640 or less when owned by root).
pub(super) fn check_key_file(key: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let shown = sanitize::line(&key.display().to_string());
    let meta = std::fs::metadata(key).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("a client certificate is set but its private key file \"{shown}\" (sslkey) does not exist")
        } else {
            format!("cannot read the private key file \"{shown}\" (sslkey): {}", sanitize::line(&e.to_string()))
        }
    })?;
    if !meta.is_file() {
        return Err(format!(
            "the private key \"{shown}\" (sslkey) is not a regular file"
        ));
    }
    let mode = meta.mode();
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if (meta.uid() == euid && mode & 0o077 != 0) || (meta.uid() == 0 && mode & 0o037 != 0) {
        return Err(format!(
            "the private key file \"{shown}\" (sslkey) has group or world access (mode {:04o}): \
             it must be 0600 or less if owned by the current user, 0640 or less if owned by root \
             (chmod 600 it)",
            mode & 0o7777
        ));
    }
    Ok(())
}

/// True when sqlx will connect through a Unix socket (a host that is a directory).
pub(super) fn is_socket(o: &PgConnectOptions) -> bool {
    o.get_socket().is_some() || o.get_host().starts_with('/')
}

/// libpq's home directory: `$HOME`, else the user database's.
pub(super) fn home_dir() -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(home));
    }
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: a zeroed passwd is a valid value to be overwritten by getpwuid_r.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes into `pw` and `buf` (its length given) and sets `found` to
    // `&pw` or NULL; the strings it points to live in `buf`, which outlives their use here.
    let rc = unsafe {
        libc::getpwuid_r(
            libc::geteuid(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() || pw.pw_dir.is_null() {
        return None;
    }
    // SAFETY: pw_dir points to a NUL-terminated string inside `buf`.
    let dir = unsafe { std::ffi::CStr::from_ptr(pw.pw_dir) };
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes())))
}
