//! libpq connection services (`pg_service.conf`), which sqlx does not read: a `[[target]]` with
//! `service = "name"` is looked up here, as libpq looks it up, and becomes a connection URL whose
//! query string carries the service's parameters (`postgres:?host=…&port=…`). What the service
//! leaves out still comes from the `PG*` variables, and the password, when the service has none,
//! from the passfile (`PGPASSFILE`, else `~/.pgpass`), as in libpq.
//!
//! The files, in libpq's order: the user's (`PGSERVICEFILE`, else `~/.pg_service.conf`), then the
//! system's (`$PGSYSCONFDIR/pg_service.conf`, else `/etc/postgresql-common/pg_service.conf`,
//! Debian's libpq default). The first file that defines the service wins; within a file, the
//! first section of that name.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};

use crate::sanitize;

/// The libpq parameters a service may set, and the URL query keys they become (sqlx's names).
const SUPPORTED: [&str; 11] = [
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "options",
];

/// Parameters read and ignored: idemtop sets its own timeouts and `application_name`.
const IGNORED: [&str; 3] = [
    "connect_timeout",
    "application_name",
    "fallback_application_name",
];

/// The largest service file read (they are a few lines per service).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A service's parameters, in the file's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    /// Where it was found (for error messages).
    pub file: PathBuf,
    pub params: Vec<(String, String)>,
}

impl Service {
    /// The connection URL: `postgres:?` and the parameters as its query string (no host part,
    /// so that the `PG*` variables fill in what the service leaves out).
    pub fn url(&self) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.params {
            query.append_pair(k, v);
        }
        format!("postgres:?{}", query.finish())
    }
}

/// The service files to search, in order: the user's, then the system's.
pub fn files(env: &dyn Fn(&str) -> Option<String>, home: Option<&Path>) -> Vec<PathBuf> {
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    let mut out = Vec::new();
    match env("PGSERVICEFILE") {
        Some(f) => out.push(PathBuf::from(f)),
        None => {
            if let Some(h) = home {
                out.push(h.join(".pg_service.conf"));
            }
        }
    }
    let sysconf = env("PGSYSCONFDIR").unwrap_or_else(|| "/etc/postgresql-common".into());
    out.push(Path::new(&sysconf).join("pg_service.conf"));
    out
}

/// Look `name` up in the standard files ([`files`]), with the process's environment.
pub fn lookup(name: &str) -> Result<Service> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let files = files(&|v| std::env::var(v).ok(), home.as_deref());
    lookup_in(name, &files)
}

/// Look `name` up in `files`, in order; a file that does not exist is skipped.
pub fn lookup_in(name: &str, files: &[PathBuf]) -> Result<Service> {
    let shown = sanitize::line(name);
    for file in files {
        let text = match read_bounded(file) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => return Err(e),
        };
        if let Some(params) = parse(&text, name, file)? {
            return Ok(Service {
                name: name.to_string(),
                file: file.clone(),
                params,
            });
        }
    }
    let searched: Vec<String> = files
        .iter()
        .map(|f| sanitize::line(&f.display().to_string()))
        .collect();
    bail!(
        "definition of service \"{shown}\" not found (searched {})",
        searched.join(", ")
    )
}

/// The file's text; `None` when it does not exist.
fn read_bounded(file: &Path) -> Result<Option<String>> {
    use std::io::Read;
    let shown = sanitize::line(&file.display().to_string());
    let f = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("cannot read service file {shown}: {e}"),
    };
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow!("cannot read service file {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        bail!("service file {shown} is larger than 1 MiB: not a service file?");
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| anyhow!("service file {shown} is not UTF-8 text"))
}

/// The parameters of section `[name]` of a service file, `None` when it has no such section.
/// Errors name the file and line, never a value (it may be a password).
pub fn parse(text: &str, name: &str, file: &Path) -> Result<Option<Vec<(String, String)>>> {
    let shown_file = sanitize::line(&file.display().to_string());
    let mut in_section = false;
    let mut found = false;
    let mut params: Vec<(String, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let at = || format!("service file {shown_file}, line {}", i + 1);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            if found {
                break;
            }
            let Some(section) = rest.strip_suffix(']') else {
                bail!("{}: a section header must end with ]", at());
            };
            in_section = section == name;
            found = in_section;
            continue;
        }
        if !in_section {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            bail!("{}: expected key=value", at());
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "service" {
            bail!("{}: nested service specifications are not supported", at());
        }
        if IGNORED.contains(&key) {
            continue;
        }
        if !SUPPORTED.contains(&key) {
            bail!(
                "{}: parameter \"{}\" is not supported by idemtop (supported: {}; a passfile \
                 is PGPASSFILE or ~/.pgpass)",
                at(),
                sanitize::line(key),
                SUPPORTED.join(", ")
            );
        }
        if matches!(key, "host" | "hostaddr" | "port") && value.contains(',') {
            bail!(
                "{}: several hosts in {key} are not supported: one target per server",
                at()
            );
        }
        // Like libpq: the first setting of a parameter wins.
        if !params.iter().any(|(k, _)| k == key) {
            params.push((key.to_string(), value.to_string()));
        }
    }
    Ok(found.then_some(params))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# services\n\
        [other]\nhost=elsewhere\n\n\
        [billing]\n  host = db1.internal \nport=5433\ndbname=bill ing\nuser=monitor\n\
        connect_timeout=10\nsslmode=verify-full\nhost=ignored\n\
        [billing]\nhost=second-section-ignored\n";

    #[test]
    fn a_section_becomes_url_parameters() {
        let params = parse(FILE, "billing", Path::new("/x")).unwrap().unwrap();
        assert_eq!(
            params,
            [
                ("host", "db1.internal"),
                ("port", "5433"),
                ("dbname", "bill ing"),
                ("user", "monitor"),
                ("sslmode", "verify-full"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        let s = Service {
            name: "billing".into(),
            file: "/x".into(),
            params,
        };
        let url = s.url();
        assert_eq!(
            url,
            "postgres:?host=db1.internal&port=5433&dbname=bill+ing&user=monitor&sslmode=verify-full"
        );
        let o: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
        assert_eq!(o.get_host(), "db1.internal");
        assert_eq!(o.get_port(), 5433);
        assert_eq!(o.get_database(), Some("bill ing"));
        assert_eq!(o.get_username(), "monitor");
        assert_eq!(parse(FILE, "nope", Path::new("/x")).unwrap(), None);
    }

    #[test]
    fn errors_name_the_line_but_never_a_value() {
        let err = parse("[a]\npasfile=secret\n", "a", Path::new("/s.conf"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("service file /s.conf, line 2: parameter \"pasfile\" is not supported"),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");
        let err = parse("[a]\nsecret-without-equals\n", "a", Path::new("/s.conf"))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "service file /s.conf, line 2: expected key=value");
        let err = parse("[a]\nservice=b\n", "a", Path::new("/s"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nested service"), "{err}");
        let err = parse("[a]\nhost=x,y\n", "a", Path::new("/s"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("several hosts"), "{err}");
    }

    #[test]
    fn the_user_file_comes_before_the_system_file() {
        let env = |v: &str| match v {
            "PGSYSCONFDIR" => Some("/etc/pg".to_string()),
            _ => None,
        };
        assert_eq!(
            files(&env, Some(Path::new("/home/a"))),
            [
                PathBuf::from("/home/a/.pg_service.conf"),
                PathBuf::from("/etc/pg/pg_service.conf")
            ]
        );
        let env = |v: &str| (v == "PGSERVICEFILE").then(|| "/srv/s.conf".to_string());
        assert_eq!(
            files(&env, None),
            [
                PathBuf::from("/srv/s.conf"),
                PathBuf::from("/etc/postgresql-common/pg_service.conf")
            ]
        );
        let dir = std::env::temp_dir().join(format!("idemtop-svc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (user, system) = (dir.join("user.conf"), dir.join("system.conf"));
        std::fs::write(&user, "[a]\nhost=user\n").unwrap();
        std::fs::write(&system, "[a]\nhost=system\n[b]\nhost=system-b\n").unwrap();
        let both = [dir.join("missing.conf"), user.clone(), system.clone()];
        assert_eq!(lookup_in("a", &both).unwrap().params[0].1, "user");
        let b = lookup_in("b", &both).unwrap();
        assert_eq!(
            (b.params[0].1.as_str(), b.file.clone()),
            ("system-b", system)
        );
        let err = lookup_in("c", &both).unwrap_err().to_string();
        assert!(
            err.starts_with("definition of service \"c\" not found (searched "),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
