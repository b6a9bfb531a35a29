//! The server binaries: PG_BIN, the newest /usr/lib/postgresql/*/bin, or PATH, and the server user when running as root.

use super::*;

/// The server binaries of one PostgreSQL installation.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    pub bin: PathBuf,
}

impl PgBinaries {
    /// `PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else `PATH`.
    pub fn find() -> Result<Self> {
        Self::find_from(
            std::env::var_os("PG_BIN").map(PathBuf::from),
            Path::new("/usr/lib/postgresql"),
            std::env::var_os("PATH"),
        )
    }

    /// [`find`](Self::find) with its three sources given, so it can be tested.
    pub fn find_from(
        pg_bin: Option<PathBuf>,
        debian_root: &Path,
        path: Option<std::ffi::OsString>,
    ) -> Result<Self> {
        if let Some(dir) = pg_bin {
            if has_server(&dir) {
                return Ok(Self { bin: dir });
            }
            bail!(
                "PG_BIN={} holds no PostgreSQL server binaries (initdb and postgres): \
                 point it at a bin directory such as /usr/lib/postgresql/15/bin",
                dir.display()
            );
        }
        if let Some(dir) = newest_debian_bin(debian_root) {
            return Ok(Self { bin: dir });
        }
        if let Some(path) = path {
            for dir in std::env::split_paths(&path) {
                if has_server(&dir) {
                    // /usr/local/bin/initdb may be a symlink into the real bin dir.
                    let real = fs::canonicalize(dir.join("initdb"))
                        .ok()
                        .and_then(|p| p.parent().map(Path::to_path_buf))
                        .filter(|d| has_server(d))
                        .unwrap_or(dir);
                    return Ok(Self { bin: real });
                }
            }
        }
        bail!(
            "no PostgreSQL server binaries found (looked in PG_BIN, /usr/lib/postgresql/*/bin and PATH): \
             install the `postgresql` package (apt-get install postgresql)"
        )
    }

    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// A client program such as `psql`: this installation's, else the first on `PATH`, else
    /// the newest Debian one. Server-only builds (the `@embedded-postgres` packages that CI uses
    /// for the oldest and newest majors) ship no `psql`; any recent psql talks to every
    /// supported server.
    pub fn client(&self, name: &str) -> PathBuf {
        let own = self.bin.join(name);
        if own.is_file() {
            return own;
        }
        std::env::var_os("PATH")
            .and_then(|path| {
                std::env::split_paths(&path)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
            .or_else(|| {
                newest_debian_bin(Path::new("/usr/lib/postgresql"))
                    .map(|d| d.join(name))
                    .filter(|p| p.is_file())
            })
            .unwrap_or(own)
    }

    /// [`client`](Self::client)`("psql")`.
    pub fn psql(&self) -> PathBuf {
        self.client("psql")
    }

    /// A client program that works with a server of major version `server_major`, for those
    /// (such as `pg_basebackup`) that refuse a server newer than themselves: this
    /// installation's, else the first on `PATH`, else the newest Debian one, whichever reports
    /// (`--version`) a major at least `server_major`. None when there is none.
    pub fn client_for(&self, name: &str, server_major: u32) -> Option<PathBuf> {
        let mut candidates = vec![self.bin.join(name)];
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path).map(|d| d.join(name)));
        }
        if let Some(dir) = newest_debian_bin(Path::new("/usr/lib/postgresql")) {
            candidates.push(dir.join(name));
        }
        candidates.into_iter().filter(|p| p.is_file()).find(|p| {
            Command::new(p)
                .arg("--version")
                .output()
                .ok()
                .and_then(|out| {
                    let text = String::from_utf8_lossy(&out.stdout).into_owned();
                    let version = text.split("(PostgreSQL) ").nth(1)?.to_owned();
                    version
                        .split(|c: char| !c.is_ascii_digit())
                        .next()?
                        .parse::<u32>()
                        .ok()
                })
                .is_some_and(|major| major >= server_major)
        })
    }

    /// `SHAREDIR` of this installation (extension control files live in `SHAREDIR/extension`).
    pub fn share_dir(&self) -> Option<PathBuf> {
        let out = Command::new(self.tool("pg_config"))
            .arg("--sharedir")
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    }

    /// True when the named extension is installed for this server (e.g. `pg_cron`).
    pub fn has_extension(&self, name: &str) -> bool {
        self.share_dir()
            .map(|d| d.join("extension").join(format!("{name}.control")).exists())
            .unwrap_or(false)
    }
}

pub(super) fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

pub(super) fn newest_debian_bin(root: &Path) -> Option<PathBuf> {
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for entry in fs::read_dir(root).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(version) = name
            .split('.')
            .map(|p| p.parse::<u32>().ok())
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let bin = entry.path().join("bin");
        if has_server(&bin) && best.as_ref().is_none_or(|(v, _)| version > *v) {
            best = Some((version, bin));
        }
    }
    best.map(|(_, bin)| bin)
}

/// The uid/gid the server must run as: ours, or `postgres` when we are root.
pub(super) fn server_identity() -> Result<Option<(u32, u32)>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = std::ffi::CString::new("postgres").expect("no NUL");
    // SAFETY: getpwnam returns a pointer to static storage or NULL; we copy the fields at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        bail!(
            "running as root, but there is no `postgres` user to run the server as \
             (initdb refuses root): install the `postgresql` package, which creates it"
        );
    }
    // SAFETY: pw is non-null and points to a valid passwd struct.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some((uid, gid)))
}

pub(super) fn as_server_user(cmd: &mut Command, who: Option<(u32, u32)>) {
    if let Some((uid, gid)) = who {
        // std drops root's supplementary groups itself when it changes the uid.
        cmd.uid(uid).gid(gid);
    }
}

pub(super) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}
