//! A fleet of 28 targets (issue 16): 20 databases on one throwaway server (trust, by URL), 6 on
//! a second one that wants passwords (by URL without a password and by libpq service, the
//! password from the passfile), one on a server that was stopped and one on a "server" that
//! accepts connections and never answers. `idemtop check` over all of them (exit code, the
//! Nagios line, JSON per target, the dead ones UNKNOWN without holding up the rest), the
//! passfile rules (PGPASSFILE, ~/.pgpass, a group-readable one ignored), `idemtop metrics`
//! (every series labelled, the dead targets `idemtop_up 0`, `/probe?target=`), and how
//! collection time grows from 1 to 20 targets (printed, not asserted).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use idemtop::app::overview::{self, FleetEvent, FleetRequest, Overview, RowState};
use idemtop::app::Event;
use idemtop::checks::Level;
use idemtop::commands::metrics::Fleet;
use idemtop::config::Config;
use idemtop::db::connect::ConnectConfig;
use idemtop::db::migrate;
use idemtop::fleet::Target;
use idemtop::ident::{Ident, TableRef};
use idemtop::pgtemp::{ServerFiles, TempPgOptions, TempPostgres};
use idemtop::worker::fleet::{info, FleetRunner};
use sqlx::Executor;
use tokio::sync::OnceCell;

const PASSWORD: &str = "pw-from-the-passfile";

/// Everything the tests share, made once per test binary.
struct Setup {
    /// The client's files: config, service file, passfile, an empty home.
    dir: PathBuf,
    /// The 20 targets on the trusting server, for the in-process scaling measure.
    trusted: Vec<Target>,
    /// The 6 targets on the password server, by URL with the password in it (in-process: no
    /// passfile in this process's environment).
    second: Vec<Target>,
    /// The stopped server's target and the black hole's.
    dead: Vec<Target>,
    /// Every target's name and what `check` must find there.
    expected: Vec<(String, &'static str)>,
    _password_server: TempPostgres,
    _stopped: TempPostgres,
    _black_hole: TcpListener,
    _server_files: ServerFiles,
}

static SETUP: OnceCell<Setup> = OnceCell::const_new();

async fn setup() -> &'static Setup {
    SETUP.get_or_init(make_setup).await
}

async fn make_setup() -> Setup {
    let dir = std::env::temp_dir().join(format!("idemtop-fleet-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("home")).unwrap();
    remove_at_exit(dir.clone());
    let mut config = String::new();
    let mut expected = Vec::new();
    let mut trusted = Vec::new();

    // 20 databases on the shared, trusting server, by URL; one critical (20 % stored 5xx), one
    // warning (2 %), one in another schema.
    for i in 1..=20 {
        let url = migrated_db().await;
        let name = format!("a{i:02}");
        let mut conn = connect(&url).await;
        let (schema, level) = match i {
            1 => (None, "critical"),
            2 => (None, "warning"),
            3 => (Some("billing"), "ok"),
            _ => (None, "ok"),
        };
        if let Some(s) = schema {
            conn.execute(format!("CREATE SCHEMA {s}").as_str())
                .await
                .unwrap();
            migrate::run(&mut conn, &Ident::new(s).unwrap())
                .await
                .unwrap();
        }
        let table = format!("{}.idempotency_records", schema.unwrap_or("public"));
        let failed = match level {
            "critical" => 20,
            "warning" => 2,
            _ => 0,
        };
        conn.execute(
            format!(
                "INSERT INTO {table} (request_id, operation, result_payload, status_code, created_at, expires_at)
                 SELECT gen_random_uuid(), 'charge', '{{}}', CASE WHEN g <= {failed} THEN 500 ELSE 201 END,
                        now(), now() + interval '1 hour'
                   FROM generate_series(1, 100) g"
            )
            .as_str(),
        )
        .await
        .unwrap();
        config.push_str(&format!("[[target]]\nname = \"{name}\"\nurl = \"{url}\"\n"));
        if let Some(s) = schema {
            config.push_str(&format!("schema = \"{s}\"\n"));
        }
        config.push('\n');
        trusted.push(Target {
            name: name.clone(),
            connect: ConnectConfig::from_url(&url),
            table: TableRef::new(schema.unwrap_or("public"), "idempotency_records").unwrap(),
        });
        expected.push((name, level));
    }

    // A server that wants a password from everyone but its superuser.
    let server_files = ServerFiles::new().unwrap();
    remove_at_exit(server_files.dir().to_path_buf());
    let hba = server_files
        .write(
            "pg_hba.conf",
            b"local all all trust\nhost all postgres 127.0.0.1/32 trust\n\
              host all all 127.0.0.1/32 scram-sha-256\n",
            0o600,
        )
        .unwrap();
    let pw_server = tokio::task::spawn_blocking(move || {
        TempPostgres::start_with(TempPgOptions::default().hba_file(&hba))
    })
    .await
    .unwrap()
    .expect("start the password server");
    let port_b = pw_server.port();
    let mut admin = connect(&pw_server.url()).await;
    admin
        .execute(
            format!(
                "SET password_encryption = 'scram-sha-256';
                 CREATE ROLE monitor LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_read_all_stats"
            )
            .as_str(),
        )
        .await
        .unwrap();
    let mut services = String::new();
    let mut second = Vec::new();
    for i in 1..=6 {
        let db = format!("b{i:02}");
        admin
            .execute(format!("CREATE DATABASE {db}").as_str())
            .await
            .unwrap();
        let mut conn = connect(&pw_server.url_for(&db)).await;
        migrate::run(&mut conn, &Ident::new("public").unwrap())
            .await
            .unwrap();
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO monitor")
            .await
            .unwrap();
        if i <= 3 {
            config.push_str(&format!(
                "[[target]]\nname = \"{db}\"\nurl = \"postgres://monitor@127.0.0.1:{port_b}/{db}\"\n\n"
            ));
        } else {
            services.push_str(&format!(
                "[svc-{db}]\nhost=127.0.0.1\nport={port_b}\ndbname={db}\nuser=monitor\nconnect_timeout=5\n\n"
            ));
            config.push_str(&format!(
                "[[target]]\nname = \"{db}\"\nservice = \"svc-{db}\"\n\n"
            ));
        }
        second.push(Target {
            name: db.clone(),
            connect: ConnectConfig::from_url(format!(
                "postgres://monitor:{PASSWORD}@127.0.0.1:{port_b}/{db}"
            )),
            table: TableRef::new("public", "idempotency_records").unwrap(),
        });
        expected.push((db, "ok"));
    }
    std::fs::write(dir.join("pg_service.conf"), services).unwrap();
    write_private(
        &dir.join("pgpass"),
        &format!("# host:port:database:user:password\n127.0.0.1:{port_b}:*:monitor:{PASSWORD}\n"),
    );

    // A server that was there and has stopped, and one that never answers.
    let mut stopped = tokio::task::spawn_blocking(TempPostgres::start)
        .await
        .unwrap()
        .expect("start the server to stop");
    let port_c = stopped.port();
    let stopped = tokio::task::spawn_blocking(move || {
        stopped.stop();
        stopped
    })
    .await
    .unwrap();
    let black_hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let port_d = black_hole.local_addr().unwrap().port();
    config.push_str(&format!(
        "[[target]]\nname = \"stopped\"\nurl = \"postgres://postgres@127.0.0.1:{port_c}/postgres\"\n\n\
         [[target]]\nname = \"black-hole\"\nurl = \"postgres://postgres@127.0.0.1:{port_d}/postgres?sslmode=disable\"\n"
    ));
    expected.push(("stopped".into(), "unknown"));
    expected.push(("black-hole".into(), "unknown"));
    let dead = [
        (
            "stopped",
            format!("postgres://postgres@127.0.0.1:{port_c}/postgres"),
        ),
        (
            "black-hole",
            format!("postgres://postgres@127.0.0.1:{port_d}/postgres?sslmode=disable"),
        ),
    ]
    .into_iter()
    .map(|(name, url)| Target {
        name: name.into(),
        connect: ConnectConfig::from_url(&url),
        table: TableRef::new("public", "idempotency_records").unwrap(),
    })
    .collect();
    std::fs::write(dir.join("config.toml"), config).unwrap();
    Setup {
        dir,
        trusted,
        second,
        dead,
        expected,
        _password_server: pw_server,
        _stopped: stopped,
        _black_hole: black_hole,
        _server_files: server_files,
    }
}

/// The setup lives in a static, never dropped: its directories (a passfile among them) are
/// removed when the test binary exits. The servers' own watchdogs remove theirs.
fn remove_at_exit(dir: PathBuf) {
    static DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    extern "C" fn remove_all() {
        if let Ok(dirs) = DIRS.lock() {
            for d in dirs.iter() {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }
    let mut dirs = DIRS.lock().unwrap();
    if dirs.is_empty() {
        // SAFETY: registers a function without arguments that only removes directories.
        unsafe {
            libc::atexit(remove_all);
        }
    }
    dirs.push(dir);
}

fn write_private(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

impl Setup {
    /// The environment of an idemtop run: the service file and passfile of the setup, an empty
    /// home, and no stray libpq variable.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_idemtop"));
        cmd.arg("--config")
            .arg(self.dir.join("config.toml"))
            .args(args)
            .env("PGSERVICEFILE", self.dir.join("pg_service.conf"))
            .env("PGSYSCONFDIR", &self.dir)
            .env("PGPASSFILE", self.dir.join("pgpass"))
            .env("HOME", self.dir.join("home"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for v in [
            "DATABASE_URL",
            "PGPASSWORD",
            "PGHOST",
            "PGPORT",
            "PGUSER",
            "PGDATABASE",
            "PGSERVICE",
        ] {
            cmd.env_remove(v);
        }
        cmd
    }

    fn run(&self, args: &[&str], tweak: impl FnOnce(&mut Command)) -> (i32, String, String) {
        let mut cmd = self.command(args);
        tweak(&mut cmd);
        let out = cmd.output().expect("run idemtop");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

#[tokio::test]
async fn check_covers_every_target_and_the_dead_ones_are_unknown_without_hanging() {
    let s = setup().await;
    assert!(s.expected.len() >= 20 + 2);
    let started = Instant::now();
    let (code, out, err) = s.run(&["check", "--format", "json", "--timeout", "5"], |_| {});
    let took = started.elapsed();
    println!("check of {} targets took {took:?}", s.expected.len());
    assert_eq!(code, 2, "critical is the worst\n{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(v["status"], "critical");
    assert_eq!(v["counts"]["critical"], 1, "{v}");
    assert_eq!(v["counts"]["warning"], 1, "{v}");
    assert_eq!(v["counts"]["unknown"], 2, "{v}");
    assert_eq!(v["counts"]["ok"], s.expected.len() - 4, "{v}");
    let targets = v["targets"].as_array().unwrap();
    assert_eq!(targets.len(), s.expected.len());
    for (t, (name, level)) in targets.iter().zip(&s.expected) {
        assert_eq!(&t["target"], name.as_str(), "in the configuration's order");
        assert_eq!(&t["status"], level, "{name}: {t}");
        if *level == "unknown" {
            assert_eq!(t["checks"].as_array().unwrap().len(), 0);
            assert!(t["taken_at"].is_null());
        } else {
            assert_eq!(t["checks"].as_array().unwrap().len(), 11, "{name}");
            assert!(t["taken_at"].is_string());
            assert!(t["error"].is_null());
        }
    }
    let by_name = |n: &str| targets.iter().find(|t| t["target"] == n).unwrap();
    assert_eq!(by_name("a03")["table"], "billing.idempotency_records");
    assert!(by_name("b05")["server"]
        .as_str()
        .unwrap()
        .starts_with("monitor@127.0.0.1:"));
    let stopped = by_name("stopped")["error"].as_str().unwrap();
    assert!(stopped.contains("connection refused"), "{stopped}");
    let hole = by_name("black-hole")["error"].as_str().unwrap();
    assert!(hole.ends_with("no answer within 5 s"), "{hole}");
    assert!(err.contains("idemtop: target stopped: UNKNOWN: "), "{err}");
    // The black hole is cut off at its own timeout; nothing waits for it beyond that.
    assert!(took < Duration::from_secs(60), "{took:?}");

    // As text: the fleet's Nagios line first.
    let (code, out, _) = s.run(&["check", "--timeout", "5"], |_| {});
    println!("{out}");
    assert_eq!(code, 2);
    let first = out.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "CRITICAL: {} targets: 1 critical, 1 warning, 2 unknown, {} ok; worst: a01 (Cached 5xx results: charge 20.0% 5xx)",
            s.expected.len(),
            s.expected.len() - 4
        ),
        "{out}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[1].starts_with("CRITICAL  a01 "),
        "worst first:\n{out}"
    );
    assert!(lines[2].starts_with("WARNING   a02 "), "{out}");
    assert!(lines.iter().any(|l| l.starts_with("UNKNOWN   stopped ")));
    assert!(
        lines.iter().any(
            |l| l.starts_with("a01         CRITICAL  Cached 5xx results  charge 20.0% 5xx  — ")
        ),
        "the checks that are not OK, by target:\n{out}"
    );

    // --target: one target, the single-target document (with its name).
    let (code, out, _) = s.run(&["--target", "b05", "check", "--format", "json"], |_| {});
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["target"], "b05");
    assert_eq!(v["table"], "public.idempotency_records");
    assert_eq!(v["status"], "ok");
    assert!(v.get("targets").is_none());
    let (code, out, _) = s.run(&["--target", "nope", "check"], |_| {});
    assert_eq!(code, 3);
    assert!(
        out.starts_with(
            "UNKNOWN: targets: unknown target \"nope\": the configuration's targets are \"a01\""
        ),
        "{out}"
    );
}

#[tokio::test]
async fn the_password_comes_from_the_passfile_as_libpq_finds_it() {
    let s = setup().await;
    // By URL and by service, with PGPASSFILE: both connect.
    for t in ["b01", "b06"] {
        let (code, out, err) = s.run(&["--target", t, "check"], |_| {});
        assert_eq!(code, 0, "{t}: {out}{err}");
    }
    // Without a passfile: no password, and the error says so.
    let (code, out, _) = s.run(&["--target", "b06", "check"], |c| {
        c.env("PGPASSFILE", s.dir.join("no-such-file"));
    });
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("cannot connect to monitor@127.0.0.1:"),
        "{out}"
    );
    assert!(out.contains("password"), "{out}");
    assert!(!out.contains(PASSWORD));
    // ~/.pgpass, when PGPASSFILE is not set; ignored (as by libpq) when others may read it.
    let home = s.dir.join("home-with-pgpass");
    std::fs::create_dir_all(&home).unwrap();
    let pgpass = std::fs::read_to_string(s.dir.join("pgpass")).unwrap();
    write_private(&home.join(".pgpass"), &pgpass);
    let with_home = |c: &mut Command| {
        c.env_remove("PGPASSFILE").env("HOME", &home);
    };
    let (code, out, err) = s.run(&["--target", "b02", "check"], with_home);
    assert_eq!(code, 0, "{out}{err}");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(home.join(".pgpass"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out, _) = s.run(&["--target", "b02", "check"], with_home);
    assert_eq!(code, 3, "a group-readable passfile is ignored: {out}");
    // The one-table commands take --target's connection too.
    let (code, out, err) = s.run(&["--target", "b04", "snapshot", "--format", "json"], |_| {});
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["rows"]["total"], 0, "{v}");
}

/// A child process, stopped and reaped when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    Some((head.split(' ').nth(1)?.parse().ok()?, body.to_string()))
}

#[tokio::test]
async fn metrics_label_every_series_with_its_target_and_probe_answers_one() {
    let s = setup().await;
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = Running(
        s.command(&[
            "metrics",
            "--scrape-timeout",
            "3",
            "--listen",
            &addr.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "idemtop metrics exited"
        );
        assert!(Instant::now() < deadline, "idemtop metrics does not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = tokio::task::spawn_blocking(move || get(addr, "/metrics"))
        .await
        .unwrap()
        .expect("an answer");
    assert_eq!(status, 200);
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.contains("{target=\""), "unlabelled: {line}");
    }
    for (name, level) in &s.expected {
        let up = if *level == "unknown" { 0 } else { 1 };
        assert!(
            body.contains(&format!("\nidemtop_up{{target=\"{name}\"}} {up}\n")),
            "{name} up {up} in\n{body}"
        );
    }
    assert!(body.contains("idemtop_check_level{target=\"a01\",check=\"cached_failures\"} 2\n"));
    assert!(body.contains("idemtop_rows{target=\"b06\",state=\"total\"} 0\n"));
    assert!(!body.contains("idemtop_rows{target=\"stopped\""));
    assert_eq!(body.matches("# TYPE idemtop_up gauge").count(), 1);

    let (status, body) = tokio::task::spawn_blocking(move || get(addr, "/probe?target=b05"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("\nidemtop_up{target=\"b05\"} 1\n"), "{body}");
    assert!(
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .all(|l| l.contains("{target=\"b05\"")),
        "only b05:\n{body}"
    );
    let (status, body) = tokio::task::spawn_blocking(move || get(addr, "/probe?target=stopped"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("\nidemtop_up{target=\"stopped\"} 0\n"),
        "{body}"
    );
    let (status, body) = tokio::task::spawn_blocking(move || get(addr, "/probe?target=zzz"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 404);
    assert!(body.starts_with("unknown target \"zzz\""), "{body}");
    drop(child);
}

#[tokio::test]
async fn collection_time_from_one_to_twenty_targets() {
    let s = setup().await;
    let cfg = Config::default();
    let mut report = Vec::new();
    for n in [1, 5, 20] {
        let fleet = Fleet::new(&s.trusted[..n], &cfg, Duration::from_secs(8));
        let cold = Instant::now();
        let first = fleet.scrape_all().await;
        let cold = cold.elapsed();
        let warm = Instant::now();
        let second = fleet.scrape_all().await;
        let warm = warm.elapsed();
        for body in [&first, &second] {
            assert_eq!(body.matches("\nidemtop_up{target=").count(), n);
            for t in &s.trusted[..n] {
                let up = format!("\nidemtop_up{{target=\"{}\"}} 1\n", t.name);
                assert!(body.contains(&up), "{up} in\n{body}");
            }
        }
        report.push(format!(
            "{n:>2} targets: first scrape (connecting) {cold:?}, next {warm:?}"
        ));
    }
    println!("collection time by fleet size (information, not asserted):");
    for line in report {
        println!("  {line}");
    }
}

/// The Overview's state machine driven by the real target tasks over the 28 targets (20 on the
/// trusting server, 6 on the password server, the stopped server's and the black hole's): every live target gets its figures and the dead ones
/// show down, each on its own schedule (the black hole answers nothing until its deadline and
/// holds up nobody). What each refresh cost and how long the fleet took is printed
/// (information, not asserted).
#[tokio::test]
async fn the_overview_refreshes_every_target_on_its_own_task() {
    let s = setup().await;
    let mut targets = s.trusted.clone();
    targets.extend(s.second.iter().cloned());
    targets.extend(s.dead.iter().cloned());
    let n = targets.len();
    assert_eq!(n, 28);
    let hole = targets.iter().position(|t| t.name == "black-hole").unwrap();
    let stopped = targets.iter().position(|t| t.name == "stopped").unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let deadline = Duration::from_secs(10);
    let runner = FleetRunner::start(
        &targets,
        std::sync::Arc::new(Config::default()),
        deadline,
        tx,
    );
    let t0 = Instant::now();
    let mut o = Overview::new(
        targets.iter().map(info).collect(),
        Duration::from_secs(2),
        false,
        t0,
    );
    let dispatch = |reqs: Vec<FleetRequest>| {
        for r in reqs {
            if let FleetRequest::Refresh { index, generation } = r {
                runner.refresh(index, generation);
            }
        }
    };
    let live = |o: &Overview| {
        (0..n)
            .filter(|i| *i != hole && *i != stopped)
            .all(|i| o.rows[i].figures.is_some())
    };
    // When each target's first result came back, and the slowest `update` call.
    let mut first: Vec<Option<Duration>> = vec![None; n];
    let mut first_took: Vec<Option<Duration>> = vec![None; n];
    let mut slowest_update = Duration::ZERO;
    let mut step = |o: &mut Overview, ev: FleetEvent| {
        let started = Instant::now();
        let reqs = overview::update(o, ev);
        slowest_update = slowest_update.max(started.elapsed());
        dispatch(reqs);
    };
    step(&mut o, FleetEvent::Ui(Event::Tick(t0)));
    let give_up = t0 + Duration::from_secs(60);
    loop {
        if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            if let FleetEvent::Target(r) = &ev {
                first[r.index].get_or_insert(t0.elapsed());
                first_took[r.index].get_or_insert(r.took);
            }
            step(&mut o, ev);
        }
        step(&mut o, FleetEvent::Ui(Event::Tick(Instant::now())));
        let hole_down = matches!(o.rows[hole].state, RowState::Down { .. });
        if live(&o) && hole_down {
            break;
        }
        assert!(Instant::now() < give_up, "the fleet did not settle");
    }
    let all = t0.elapsed();
    // Every live target measured, with the right verdicts.
    for (i, t) in targets.iter().enumerate() {
        if i == hole || i == stopped {
            continue;
        }
        let f = o.rows[i].figures.as_ref().unwrap();
        let rows = if t.name.starts_with('a') { 100 } else { 0 };
        assert_eq!(f.rows, rows, "{}", t.name);
        let want = match t.name.as_str() {
            "a01" => Level::Critical,
            "a02" => Level::Warning,
            _ => Level::Ok,
        };
        assert_eq!(f.level, want, "{}", t.name);
    }
    // The dead ones are down, with why; the black hole's answer (its deadline) came after every
    // live target's: it held up nobody.
    for i in [stopped, hole] {
        match &o.rows[i].state {
            RowState::Down { reason, .. } => assert!(!reason.is_empty()),
            other => panic!("{}: {other:?}", targets[i].name),
        }
        assert!(o.rows[i].figures.is_none());
    }
    let hole_at = first[hole].unwrap();
    for (i, at) in first.iter().enumerate() {
        if i != hole && i != stopped {
            assert!(
                at.unwrap() < hole_at,
                "{} waited for the black hole",
                targets[i].name
            );
        }
    }
    let names: Vec<&str> = o
        .order
        .iter()
        .map(|i| o.rows[*i].info.name.as_str())
        .collect();
    assert_eq!(
        &names[..4],
        &["a01", "a02", "black-hole", "stopped"],
        "worst first"
    );

    // A second round on the open sessions: `r` refreshes every target not in flight (a live one
    // may already be in flight, from its own schedule: that refresh counts).
    let warm = Instant::now();
    step(
        &mut o,
        FleetEvent::Ui(Event::Key(crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Char('r'),
            crossterm::event::KeyModifiers::NONE,
        ))),
    );
    let awaited: Vec<Option<u64>> = (0..n)
        .map(|i| (i != hole && i != stopped).then(|| o.rows[i].in_flight.unwrap()))
        .collect();
    let mut warm_took = Vec::new();
    while warm_took.len() < n - 2 {
        let ev = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("a result")
            .expect("the channel");
        if let FleetEvent::Target(r) = &ev {
            if awaited[r.index] == Some(r.generation) {
                warm_took.push((r.index, r.took));
            }
        }
        step(&mut o, ev);
    }
    let warm = warm.elapsed();

    println!("Overview of {n} targets (information, not asserted):");
    for (i, t) in targets.iter().enumerate() {
        let w = warm_took.iter().find(|(j, _)| *j == i).map(|(_, d)| *d);
        println!(
            "  {:<11} first result after {:>6} ms, its refresh (connecting) took {:>6} ms{}",
            t.name,
            first[i].map_or(0, |d| d.as_millis()),
            first_took[i].map_or(0, |d| d.as_millis()),
            match w {
                Some(d) => format!("; next, connected: {} ms", d.as_millis()),
                None => String::new(),
            }
        );
    }
    let sum: Duration = warm_took.iter().map(|(_, d)| *d).sum();
    println!(
        "  every live target measured after {:?} (the black hole cut off at {:?}); a second \
         round of {} targets took {warm:?} (sum of their refreshes {sum:?}, mean {:?}); \
         slowest update() {slowest_update:?}",
        first
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != hole && *i != stopped)
            .filter_map(|(_, d)| *d)
            .max()
            .unwrap_or_default(),
        hole_at,
        warm_took.len(),
        sum / warm_took.len().max(1) as u32,
    );
    println!("  whole run until settled: {all:?}");
}
