//! A throwaway PostgreSQL cluster: `initdb` into a private temp dir, `postgres` on a free
//! loopback port, everything removed again when the handle is dropped, when a test panics
//! (unwinding drops it) and when the owning process dies (a watchdog process notices that its
//! stdin pipe closed, stops the server and deletes the directory).
//!
//! It uses the machine's own server binaries: `PG_BIN`, else the newest
//! `/usr/lib/postgresql/*/bin`, else `initdb`/`postgres` on `PATH`. As root (CI, containers) it
//! drops to the `postgres` user for `initdb` and `postgres`, which refuse to run as root.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

mod binaries;
#[cfg(test)]
mod tests;

pub use binaries::*;

/// How to start the cluster.
#[derive(Debug, Clone, Default)]
pub struct TempPgOptions {
    /// Extra server settings, passed as `-c name=value` (e.g. `shared_preload_libraries=pg_cron`).
    pub settings: Vec<(String, String)>,
    /// Keep the directory and server when the handle is dropped (`idemtop demo --keep`).
    pub keep: bool,
}

impl TempPgOptions {
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// TLS on (`ssl=on`), with this certificate (chain) and private key, e.g. written with
    /// [`ServerFiles`] so the server may read them. The server then accepts TLS and plaintext
    /// alike unless an [`hba_file`](Self::hba_file) says otherwise.
    pub fn tls(self, cert: &Path, key: &Path) -> Self {
        self.setting("ssl", "on")
            .setting("ssl_cert_file", &cert.to_string_lossy())
            .setting("ssl_key_file", &key.to_string_lossy())
    }

    /// CA certificates the server trusts for client certificates (`ssl_ca_file`), for
    /// `clientcert=verify-full` lines in the hba file.
    pub fn client_ca(self, ca: &Path) -> Self {
        self.setting("ssl_ca_file", &ca.to_string_lossy())
    }

    /// Use this `pg_hba.conf` instead of initdb's (`hba_file`), e.g. `hostssl` lines only.
    pub fn hba_file(self, hba: &Path) -> Self {
        self.setting("hba_file", &hba.to_string_lossy())
    }
}

/// A private directory of files for a throwaway server to read: certificates, keys and hba files
/// named by absolute path in its settings (`ssl_cert_file`, `ssl_key_file`, `ssl_ca_file`,
/// `hba_file`). As root it belongs to the `postgres` user the server runs as, like the cluster
/// itself, because the server refuses a key file that is not its own with mode 0600 (or root's
/// with 0640). Removed when dropped.
pub struct ServerFiles {
    dir: PathBuf,
    who: Option<(u32, u32)>,
}

impl ServerFiles {
    pub fn new() -> Result<Self> {
        let who = server_identity()?;
        let dir = std::env::temp_dir().join(format!(
            "idemtop-files-{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // From here on Drop removes the directory.
        let files = ServerFiles { dir, who };
        fs::set_permissions(&files.dir, fs::Permissions::from_mode(0o700))?;
        files.hand_over(&files.dir)?;
        Ok(files)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of `name` inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Write `name` (a plain file name, no directories) with `mode`, owned by the server's user.
    pub fn write(&self, name: &str, contents: &[u8], mode: u32) -> Result<PathBuf> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            bail!("server file name must be a plain file name, not {name:?}");
        }
        let path = self.path(name);
        fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        self.hand_over(&path)?;
        Ok(path)
    }

    fn hand_over(&self, path: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.who {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .with_context(|| format!("handing {} to the postgres user", path.display()))?;
        }
        Ok(())
    }
}

impl Drop for ServerFiles {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A running throwaway cluster. The superuser is `postgres`, trust authentication, loopback only.
pub struct TempPostgres {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
    version: String,
    server: Option<Child>,
    watchdog: Option<Child>,
    keep: bool,
    opts: TempPgOptions,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl TempPostgres {
    /// Start a cluster with default settings.
    pub fn start() -> Result<Self> {
        Self::start_with(TempPgOptions::default())
    }

    /// Start a cluster. Blocks for about a second (initdb, then server start).
    pub fn start_with(opts: TempPgOptions) -> Result<Self> {
        Self::start_from(opts, |pg, bins, who| pg.init(bins, who))
    }

    /// Start a hot standby of `primary` (same binaries): a base backup taken with
    /// `pg_basebackup -R` (so it streams from the primary; the installation's own, else one at
    /// least as new as the server, see [`PgBinaries::client_for`]), started with `hot_standby=on` and
    /// `opts` (e.g. `hot_standby_feedback=on`) on a port of its own; stopped and removed on
    /// drop like any other. The primary needs `wal_level` replica or logical (the default) and
    /// a free WAL sender; initdb's pg_hba already trusts replication connections on loopback.
    pub fn start_standby(primary: &TempPostgres, opts: TempPgOptions) -> Result<Self> {
        let opts = TempPgOptions {
            settings: [("hot_standby".to_string(), "on".to_string())]
                .into_iter()
                .chain(opts.settings)
                .collect(),
            ..opts
        };
        let port = primary.port;
        let major: u32 = primary.version.parse().unwrap_or(0);
        let basebackup = primary
            .binaries()
            .client_for("pg_basebackup", major)
            .ok_or_else(|| {
                anyhow!(
                    "no pg_basebackup for PostgreSQL {major}: {} has none, and none on PATH is as new \
                     as the server",
                    primary.bin.display()
                )
            })?;
        Self::start_from(opts, move |pg, _bins, who| {
            let mut cmd = Command::new(&basebackup);
            cmd.arg("-D")
                .arg(pg.data_dir())
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .args([
                    "-U",
                    "postgres",
                    "-R",
                    "-X",
                    "stream",
                    "--no-sync",
                    "-c",
                    "fast",
                ])
                .stdin(Stdio::null())
                .current_dir(&pg.dir);
            as_server_user(&mut cmd, who);
            let out = cmd
                .output()
                .with_context(|| format!("running {}", basebackup.display()))?;
            if !out.status.success() {
                bail!(
                    "pg_basebackup failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            pg.version = fs::read_to_string(pg.data_dir().join("PG_VERSION"))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default();
            // -R writes every connection option its own libpq knows (sslsni since 14, ...); a
            // pg_basebackup newer than the server would leave options the server's walreceiver
            // rejects, and the standby would never stream. The last setting in the file wins.
            let auto = pg.data_dir().join("postgresql.auto.conf");
            let mut conf = fs::OpenOptions::new()
                .append(true)
                .open(&auto)
                .with_context(|| format!("opening {}", auto.display()))?;
            writeln!(
                conf,
                "primary_conninfo = 'host=127.0.0.1 port={port} user=postgres'"
            )?;
            Ok(())
        })
    }

    fn start_from(
        opts: TempPgOptions,
        make: impl FnOnce(&mut TempPostgres, &PgBinaries, Option<(u32, u32)>) -> Result<()>,
    ) -> Result<Self> {
        let bins = PgBinaries::find()?;
        let who = server_identity()?;
        let dir = std::env::temp_dir().join(format!(
            "idemtop-pg-{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        if let Some((uid, gid)) = who {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .with_context(|| format!("handing {} to the postgres user", dir.display()))?;
        }
        // From here on a failure must remove the directory: build the handle early.
        let mut pg = TempPostgres {
            dir,
            port: 0,
            bin: bins.bin.clone(),
            version: String::new(),
            server: None,
            watchdog: None,
            keep: opts.keep,
            opts: opts.clone(),
        };
        make(&mut pg, &bins, who)?;
        pg.spawn_watchdog()?;
        // A port can be taken between our probe and the server's bind: retry a few times.
        let mut last_err = None;
        for _ in 0..5 {
            pg.port = free_port()?;
            match pg.launch(&bins, who, &opts) {
                Ok(()) => {
                    last_err = None;
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        if let Some(e) = last_err {
            return Err(e);
        }
        Ok(pg)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn init(&mut self, bins: &PgBinaries, who: Option<(u32, u32)>) -> Result<()> {
        let mut cmd = Command::new(bins.tool("initdb"));
        cmd.arg("-D")
            .arg(self.data_dir())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .stdin(Stdio::null())
            .env("TZ", "UTC")
            .current_dir(&self.dir);
        as_server_user(&mut cmd, who);
        let out = cmd
            .output()
            .with_context(|| format!("running {}", bins.tool("initdb").display()))?;
        if !out.status.success() {
            bail!(
                "initdb failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        self.version = fs::read_to_string(self.data_dir().join("PG_VERSION"))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default();
        Ok(())
    }

    /// A process that outlives us by a moment: it blocks reading its stdin, whose write end only
    /// this process holds. When we die, however we die, the read ends, and it stops the server
    /// (immediate shutdown) and removes the directory.
    fn spawn_watchdog(&mut self) -> Result<()> {
        if self.keep {
            return Ok(());
        }
        let script = r#"
trap '' INT TERM HUP
cat >/dev/null
pidfile="$1/data/postmaster.pid"
if [ -f "$pidfile" ]; then
  pid=$(head -n 1 "$pidfile")
  if [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null; then
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
    kill -KILL "$pid" 2>/dev/null
  fi
fi
rm -rf "$1"
"#;
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .arg("idemtop-pg-watchdog")
            .arg(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting the cleanup watchdog")?;
        self.watchdog = Some(child);
        Ok(())
    }

    fn launch(
        &mut self,
        bins: &PgBinaries,
        who: Option<(u32, u32)>,
        opts: &TempPgOptions,
    ) -> Result<()> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        if let Some((uid, gid)) = who {
            let _ = std::os::unix::fs::chown(self.log_path(), Some(uid), Some(gid));
        }
        let mut cmd = Command::new(bins.tool("postgres"));
        cmd.arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.dir);
        let mut settings: Vec<(String, String)> = vec![
            ("listen_addresses".into(), "127.0.0.1".into()),
            ("fsync".into(), "off".into()),
            ("synchronous_commit".into(), "off".into()),
            ("full_page_writes".into(), "off".into()),
            ("max_connections".into(), "100".into()),
            ("shared_buffers".into(), "128MB".into()),
            ("timezone".into(), "UTC".into()),
            ("log_min_messages".into(), "warning".into()),
        ];
        settings.extend(opts.settings.iter().cloned());
        for (k, v) in &settings {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .current_dir(&self.dir)
            .process_group(0);
        as_server_user(&mut cmd, who);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bins.tool("postgres").display()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let pidfile = self.data_dir().join("postmaster.pid");
        loop {
            if let Some(status) = child.try_wait()? {
                let log = fs::read_to_string(self.log_path()).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "the throwaway PostgreSQL server exited at start ({status}): {}",
                    tail.join(" | ")
                );
            }
            // Line 8 of postmaster.pid is the server status; "ready" once it accepts connections.
            if let Ok(pid) = fs::read_to_string(&pidfile) {
                if pid.lines().nth(7).map(str::trim) == Some("ready") {
                    break;
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the throwaway PostgreSQL server did not become ready within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.server = Some(child);
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Major version of the server, e.g. "15".
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn binaries(&self) -> PgBinaries {
        PgBinaries {
            bin: self.bin.clone(),
        }
    }

    /// URL of a database on this server, as the `postgres` superuser.
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// URL of the default `postgres` database.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// Run a SQL script with this installation's psql as the superuser; returns stdout.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String> {
        let mut child = Command::new(self.binaries().psql())
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url_for(database))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running psql")?;
        child
            .stdin
            .take()
            .ok_or_else(|| anyhow!("psql stdin"))?
            .write_all(sql.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Forget the server: it keeps running and its directory stays (for `demo --keep`).
    pub fn into_kept(mut self) -> (PathBuf, u16) {
        self.keep = true;
        if let Some(mut w) = self.watchdog.take() {
            // Killing the watchdog first means closing its stdin cannot trigger the cleanup.
            let _ = w.kill();
            let _ = w.wait();
        }
        (self.dir.clone(), self.port)
    }

    /// Stop the server now (fast shutdown), waiting for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            // SAFETY: kill(2) on a pid we spawned and have not yet reaped.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGINT);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }

    /// Stop the server abruptly (SIGKILL to the postmaster), to test what clients do when the
    /// server goes away. `restart` brings it back on the same port with the same data.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.server.take() {
            // SAFETY: immediate shutdown of a child we own.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGQUIT);
            }
            let _ = child.wait();
        }
    }

    /// Start the server again after `stop` or `crash`, on the same port.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let bins = self.binaries();
        let who = server_identity()?;
        let opts = self.opts.clone();
        self.launch(&bins, who, &opts)
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
        if let Some(mut w) = self.watchdog.take() {
            drop(w.stdin.take());
            let _ = w.wait();
        }
    }
}
