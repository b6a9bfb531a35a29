//! The shipped Prometheus alert rules (`contrib/prometheus/idemtop.rules.yml`): they name only
//! metrics that `idemtop metrics` exposes, `promtool check rules` accepts them and their unit
//! tests (`idemtop.rules.test.yml`) pass under `promtool test rules`; and a real Prometheus
//! scrapes `idemtop metrics` on a throwaway server, loads the rules and answers `idemtop_rows`
//! through its HTTP API. The promtool and Prometheus tests skip, saying why, when the Debian
//! `prometheus` package is not installed (`.ci/run` installs it).
//!
//! And the exporter's HTTP server over real sockets: keep-alive, HEAD, 405, /probe errors, an
//! oversized head (431), a slowloris and an idle connection (cut off by the header-read
//! timeout), 200 concurrent scrapes (timings printed; they share collections), and a graceful
//! shutdown on SIGTERM (the scrape in flight finishes, exit 0).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use idemtop::checks::{self, Extras};
use idemtop::commands::metrics;
use idemtop::config::Config;
use idemtop::fixtures;
use sqlx::Executor;

const RULES: &str = "contrib/prometheus/idemtop.rules.yml";
const RULE_TESTS: &str = "contrib/prometheus/idemtop.rules.test.yml";

/// The program on PATH, or None after saying that the test is skipped.
fn program(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!(
            "skipped: `{name}` is not installed (apt-get install prometheus; .ci/run installs it)"
        );
    }
    found
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("run the program");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_rules_name_only_metrics_and_checks_that_idemtop_exposes() {
    let snap = fixtures::snapshot(0, 1000);
    let results = checks::evaluate(&snap, None, &Extras::default(), &Config::default());
    let text = metrics::render(Some((&snap, &results)), None, 0.1);
    let exposed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let rules = std::fs::read_to_string(RULES).unwrap();
    let mut used: Vec<String> = Vec::new();
    let mut rest = rules.as_str();
    while let Some(at) = rest.find("idemtop_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        if !used.contains(&name) {
            used.push(name);
        }
    }
    for name in [
        "idemtop_up",
        "idemtop_table_locked",
        "idemtop_rows",
        "idemtop_cleanup_lag_seconds",
        "idemtop_dead_tuples",
        "idemtop_check_level",
    ] {
        assert!(used.iter().any(|u| u == name), "the rules use {name}");
    }
    for name in &used {
        assert!(
            exposed.contains(&name.as_str()),
            "{name} is not exposed by idemtop metrics: {exposed:?}"
        );
    }
    // Every check the rules select exists.
    for part in rules.split("check=\"").skip(1) {
        let id = part.split('"').next().unwrap();
        assert!(checks::CHECK_IDS.contains(&id), "no check {id}");
    }
    for part in rules.split("state=\"").skip(1) {
        let state = part.split('"').next().unwrap();
        assert!(
            text.contains(&format!("idemtop_rows{{state=\"{state}\"}}")),
            "no idemtop_rows state {state}"
        );
    }
}

#[test]
fn promtool_accepts_the_rules_and_their_unit_tests_pass() {
    let Some(promtool) = program("promtool") else {
        return;
    };
    let (ok, out) = run(Command::new(&promtool).args(["check", "rules", RULES]));
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS: 7 rules found"), "{out}");
    let (ok, out) = run(Command::new(&promtool).args(["test", "rules", RULE_TESTS]));
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS"), "{out}");
    // The unit tests are not vacuous: a rule that no longer fires fails them.
    let dir = TempDir::new("promtool");
    let broken = std::fs::read_to_string(RULES)
        .unwrap()
        .replace("check=\"grants\"} == 2", "check=\"grants\"} == 9");
    std::fs::write(dir.path("idemtop.rules.yml"), broken).unwrap();
    std::fs::copy(RULE_TESTS, dir.path("idemtop.rules.test.yml")).unwrap();
    let (ok, out) = run(Command::new(&promtool)
        .args(["test", "rules"])
        .arg(dir.path("idemtop.rules.test.yml")));
    assert!(!ok, "{out}");
    assert!(out.contains("alertname: IdemtopUpdateGrant"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus against `idemtop metrics`.

/// A private directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> Self {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "idemtop-{what}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process, stopped (SIGTERM, then SIGKILL after 10 s) and reaped when dropped, also
/// when the test fails.
struct Running {
    child: Child,
    what: &'static str,
    log: PathBuf,
}

impl Running {
    fn spawn(what: &'static str, cmd: &mut Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        Running { child, what, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{} exited ({status}):\n{}", self.what, self.log());
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: kill(2) on a child we spawned and have not reaped.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `path` from 127.0.0.1:`port` (HTTP/1.0, so the server closes); the body, or None when
/// nothing answers yet.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_string())
}

/// `query` against Prometheus' HTTP API: the value of each result, by the given label.
fn query(port: u16, query: &str, by: &str) -> Option<Vec<(String, String)>> {
    let mut encoded = String::new();
    for b in query.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let body = http_get(port, &format!("/api/v1/query?query={encoded}"))?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    if v["status"] != "success" {
        return None;
    }
    Some(
        v["data"]["result"]
            .as_array()?
            .iter()
            .map(|r| {
                (
                    r["metric"][by].as_str().unwrap_or("").to_string(),
                    r["value"][1].as_str().unwrap_or("").to_string(),
                )
            })
            .collect(),
    )
}

fn wait_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test]
async fn a_real_prometheus_scrapes_idemtop_and_answers_idemtop_rows() {
    let Some(prometheus) = program("prometheus") else {
        return;
    };
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    conn.execute(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), 'op', '{}', 200, now() - interval '2 hours',
                CASE WHEN g <= 3 THEN now() + interval '1 hour' ELSE now() - interval '1 hour' END
           FROM generate_series(1, 5) g",
    )
    .await
    .unwrap();

    // Dropped in reverse order: Prometheus, then idemtop, then their files.
    let dir = TempDir::new("prometheus");
    let exporter_port = free_port();
    let mut exporter = Running::spawn(
        "idemtop metrics",
        Command::new(env!("CARGO_BIN_EXE_idemtop"))
            .args(["--database-url", &url, "metrics", "--listen"])
            .arg(format!("127.0.0.1:{exporter_port}"))
            .env_remove("DATABASE_URL"),
        dir.path("idemtop.log"),
    );
    wait_until("idemtop serves /metrics", Duration::from_secs(20), || {
        exporter.assert_running();
        http_get(exporter_port, "/metrics").filter(|b| b.contains("idemtop_up 1"))
    });

    let rules = std::fs::canonicalize(Path::new(RULES)).unwrap();
    std::fs::write(
        dir.path("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: idemtop\n    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n",
            rules.display()
        ),
    )
    .unwrap();
    let prom_port = free_port();
    let mut prom = Running::spawn(
        "prometheus",
        Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                dir.path("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}")),
        dir.path("prometheus.log"),
    );

    let rows = wait_until(
        "Prometheus has scraped idemtop_rows",
        Duration::from_secs(60),
        || {
            prom.assert_running();
            exporter.assert_running();
            query(prom_port, "idemtop_rows", "state").filter(|r| r.len() == 3)
        },
    );
    let value = |state: &str| {
        rows.iter()
            .find(|(s, _)| s == state)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(value("live"), Some("3"), "{rows:?}");
    assert_eq!(value("expired"), Some("2"), "{rows:?}");
    assert_eq!(value("total"), Some("5"), "{rows:?}");
    // Without [[target]], the one target is named after its database and table.
    let db = url.rsplit('/').next().unwrap();
    let target = query(prom_port, "idemtop_up", "target").unwrap();
    assert_eq!(
        target,
        [(format!("{db}/public.idempotency_records"), "1".to_string())]
    );
    let up = query(prom_port, "up{job=\"idemtop\"}", "instance").unwrap();
    assert_eq!(
        up,
        [(format!("127.0.0.1:{exporter_port}"), "1".to_string())]
    );
    // The shipped rules loaded and evaluated without errors.
    let rules = wait_until("the rules are evaluated", Duration::from_secs(30), || {
        let body = http_get(prom_port, "/api/v1/rules")?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let rules = v["data"]["groups"][0]["rules"].as_array()?.clone();
        rules
            .iter()
            .all(|r| r["health"] == "ok" && r["lastEvaluation"] != "0001-01-01T00:00:00Z")
            .then_some(rules)
    });
    assert_eq!(rules.len(), 7);
    assert!(
        rules.iter().any(|r| r["name"] == "IdemtopCleanupLag"),
        "{rules:?}"
    );
    drop(prom);
    drop(exporter);
}

// ---------------------------------------------------------------------------------------------
// The exporter's HTTP server: keep-alive, HEAD, limits, timeouts, load and shutdown.

use idemtop::commands::metrics::{Fleet, ServeOptions};
use idemtop::db::connect::ConnectConfig;
use idemtop::fleet::Target;
use idemtop::ident::TableRef;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt as _, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

fn target(name: &str, url: &str) -> Target {
    Target {
        name: name.into(),
        connect: ConnectConfig::from_url(url),
        table: TableRef::default(),
    }
}

/// An exporter of `targets` on a free port, served until the returned token is cancelled.
async fn exporter(
    targets: Vec<Target>,
    opts: ServeOptions,
    scrape_timeout: Duration,
) -> (
    std::net::SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let listener = metrics::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let fleet = Arc::new(Fleet::new(&targets, &Config::default(), scrape_timeout));
    let server = tokio::spawn(metrics::serve_with(listener, fleet, opts, shutdown.clone()));
    (addr, shutdown, server)
}

/// One response read from a connection that may stay open: (status, head, body). `head_only`
/// for the answer to a HEAD (its Content-Length announces a body that is not sent). None when
/// the server closed the connection first.
async fn read_response<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    head_only: bool,
) -> Option<(u16, String, String)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let len: usize = header(&head, "content-length")?.parse().ok()?;
    let mut body = vec![0; if head_only { 0 } else { len }];
    r.read_exact(&mut body).await.ok()?;
    Some((status, head, String::from_utf8(body).ok()?))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

async fn get_close(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut s = BufReader::new(s);
    s.get_mut()
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let r = read_response(&mut s, false).await.expect("a response");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "nothing after the response");
    r
}

/// True when the server closed the connection (EOF or reset) within `within`.
async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn keep_alive_head_and_405_on_one_connection() {
    let url = migrated_db().await;
    let (addr, shutdown, server) = exporter(
        vec![target("orders", &url)],
        ServeOptions::default(),
        Duration::from_secs(8),
    )
    .await;
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut s = BufReader::new(s);
    // Two GETs, a HEAD, a POST and a GET, on one connection.
    let mut bodies = Vec::new();
    for path in ["/metrics", "/probe?target=orders"] {
        s.get_mut()
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (status, head, body) = read_response(&mut s, false).await.expect("kept alive");
        assert_eq!(status, 200, "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("connection: close"),
            "{head}"
        );
        assert!(body.contains("idemtop_up{target=\"orders\"} 1\n"), "{body}");
        bodies.push((head, body));
    }
    s.get_mut()
        .write_all(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, head, _) = read_response(&mut s, true).await.expect("kept alive");
    assert_eq!(status, 200, "{head}");
    assert_eq!(
        header(&head, "content-type"),
        header(&bodies[0].0, "content-type")
    );
    let announced: usize = header(&head, "content-length").unwrap().parse().unwrap();
    assert!(
        announced > 1000,
        "a HEAD announces the scrape's length: {head}"
    );
    // No body came after the HEAD's head: the next bytes are the next response's status line.
    s.get_mut()
        .write_all(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let (status, head, body) = read_response(&mut s, false).await.expect("kept alive");
    assert_eq!(status, 405, "{head}");
    assert_eq!(header(&head, "allow"), Some("GET, HEAD"), "{head}");
    assert!(body.contains("use GET"), "{body}");
    s.get_mut()
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (status, _, _) = read_response(&mut s, false).await.expect("answered");
    assert_eq!(status, 200);
    assert!(closed_within(s.get_mut(), Duration::from_secs(5)).await);

    // /probe: an unknown or missing target is a readable 404 / 400.
    let (status, _, body) = get_close(addr, "/probe?target=nope%1b").await;
    assert_eq!(status, 404);
    assert!(body.starts_with("unknown target \"nope"), "{body}");
    assert!(body.contains("the targets are \"orders\""), "{body}");
    assert!(!body.contains('\u{1b}'), "{body}");
    let (status, _, body) = get_close(addr, "/probe").await;
    assert_eq!(status, 400);
    assert!(body.contains("/probe?target=NAME"), "{body}");
    let (status, _, _) = get_close(addr, "/").await;
    assert_eq!(status, 404);

    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn oversized_heads_get_431_and_slow_heads_are_cut_off() {
    let url = migrated_db().await;
    let opts = ServeOptions {
        header_read_timeout: Duration::from_secs(1),
        ..ServeOptions::default()
    };
    let (addr, shutdown, server) =
        exporter(vec![target("orders", &url)], opts, Duration::from_secs(8)).await;

    // 20 KiB of headers: 431, and the connection is closed.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let big = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    // The server may close while the rest is still being written: that is fine.
    let _ = s.write_all(big.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await;
    let raw = String::from_utf8_lossy(&raw);
    assert!(
        raw.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{raw}"
    );

    // A slowloris: the head trickles in a byte at a time and never ends. The connection is
    // closed once the header-read timeout (1 s here) has passed...
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut cut_after = None;
    for _ in 0..100 {
        if slow.write_all(b"X").await.is_err() {
            cut_after = Some(started.elapsed());
            break;
        }
        if closed_within(&mut slow, Duration::from_millis(200)).await {
            cut_after = Some(started.elapsed());
            break;
        }
    }
    let cut_after = cut_after.expect("the slow client was disconnected");
    println!("slowloris disconnected after {cut_after:?} (header-read timeout 1 s)");
    assert!(cut_after < Duration::from_secs(15), "{cut_after:?}");
    // ... and so is a connection that never sends anything, while others are served, and a
    // kept-alive connection that stays idle after its answer.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (status, _, _) = get_close(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(closed_within(&mut idle, Duration::from_secs(15)).await);
    let mut kept = BufReader::new(tokio::net::TcpStream::connect(addr).await.unwrap());
    kept.get_mut()
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, _, _) = read_response(&mut kept, false).await.expect("an answer");
    assert_eq!(status, 200);
    assert!(closed_within(kept.get_mut(), Duration::from_secs(15)).await);

    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_scrapes_are_all_answered_sharing_collections() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    conn.execute(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), 'op', '{}', 200, now(), now() + interval '1 hour'
           FROM generate_series(1, 100)",
    )
    .await
    .unwrap();
    let (addr, shutdown, server) = exporter(
        vec![target("orders", &url)],
        ServeOptions::default(),
        Duration::from_secs(8),
    )
    .await;
    let _ = get_close(addr, "/metrics").await; // the session is made once
    let started = Instant::now();
    let scrapes: Vec<_> = (0..200)
        .map(|_| {
            tokio::spawn(async move {
                let t = Instant::now();
                let r = get_close(addr, "/metrics").await;
                (t.elapsed(), r)
            })
        })
        .collect();
    let mut took = Vec::new();
    let mut durations = std::collections::BTreeSet::new();
    for s in scrapes {
        let (elapsed, (status, _, body)) = s.await.unwrap();
        assert_eq!(status, 200);
        assert!(body.contains("idemtop_up{target=\"orders\"} 1\n"), "{body}");
        assert!(
            body.contains("idemtop_rows{target=\"orders\",state=\"total\"} 100\n"),
            "{body}"
        );
        let d = body
            .lines()
            .find(|l| l.starts_with("idemtop_scrape_duration_seconds{"))
            .unwrap()
            .to_string();
        durations.insert(d);
        took.push(elapsed);
    }
    let all = started.elapsed();
    took.sort();
    println!(
        "200 concurrent scrapes: all answered in {all:?}; each min {:?}, median {:?}, p95 {:?}, \
         max {:?}; {} collections shared between them",
        took[0],
        took[100],
        took[190],
        took[199],
        durations.len()
    );
    println!("their durations: {durations:?}");
    // Sanity bound only (a loaded CI machine is slow), and single flight: a scrape that arrives
    // during a collection waits for the next one and shares it, so far fewer collections ran
    // than scrapes were answered.
    assert!(all < Duration::from_secs(120), "{all:?}");
    assert!(durations.len() < 100, "{} collections", durations.len());

    shutdown.cancel();
    server.await.unwrap().unwrap();
}

/// A "server" that accepts TCP connections and never answers: a scrape of it runs until its
/// deadline.
fn black_hole() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

#[test]
fn sigterm_lets_the_scrape_in_flight_finish_and_exits_0() {
    let url = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(migrated_db());
    let (_hole, hole_port) = black_hole();
    let dir = TempDir::new("shutdown");
    std::fs::write(
        dir.path("config.toml"),
        format!(
            "[[target]]\nname = \"live\"\nurl = \"{url}\"\n\n\
             [[target]]\nname = \"hole\"\nurl = \"postgres://nobody@127.0.0.1:{hole_port}/x?sslmode=disable\"\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let mut exporter = Running::spawn(
        "idemtop metrics",
        Command::new(env!("CARGO_BIN_EXE_idemtop"))
            .arg("--config")
            .arg(dir.path("config.toml"))
            .args(["metrics", "--scrape-timeout", "3", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .env_remove("DATABASE_URL"),
        dir.path("idemtop.log"),
    );
    wait_until("idemtop listens", Duration::from_secs(20), || {
        exporter.assert_running();
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    // An idle keep-alive connection, and a scrape that runs until the black hole's deadline.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let in_flight = std::thread::spawn(move || {
        let started = Instant::now();
        let body = http_get(port, "/metrics");
        (started.elapsed(), body)
    });
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    unsafe {
        libc::kill(exporter.child.id() as i32, libc::SIGTERM);
    }
    let signalled = Instant::now();
    // New connections are refused soon.
    wait_until("the listener is closed", Duration::from_secs(5), || {
        TcpStream::connect(("127.0.0.1", port))
            .is_err()
            .then_some(())
    });
    // The idle connection is closed rather than kept waiting.
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(matches!(idle.read(&mut buf), Ok(0) | Err(_)));
    // The scrape in flight is answered in full.
    let (took, body) = in_flight.join().unwrap();
    let body = body.expect("the scrape in flight was answered");
    assert!(body.contains("idemtop_up{target=\"hole\"} 0\n"), "{body}");
    assert!(body.contains("idemtop_up{target=\"live\"} 1\n"), "{body}");
    // And the process exits 0.
    let status = wait_until("idemtop exits", Duration::from_secs(15), || {
        exporter.child.try_wait().unwrap()
    });
    println!(
        "scrape in flight answered after {took:?}; exit {:?} after {:?} from SIGTERM",
        status.code(),
        signalled.elapsed()
    );
    assert_eq!(status.code(), Some(0), "{}", exporter.log());
    assert!(
        exporter.log().contains("finishing the requests in flight"),
        "{}",
        exporter.log()
    );
}
