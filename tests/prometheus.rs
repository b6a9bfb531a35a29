//! The shipped Prometheus alert rules (`contrib/prometheus/idemtop.rules.yml`): they name only
//! metrics that `idemtop metrics` exposes, `promtool check rules` accepts them and their unit
//! tests (`idemtop.rules.test.yml`) pass under `promtool test rules`; and a real Prometheus
//! scrapes `idemtop metrics` on a throwaway server, loads the rules and answers `idemtop_rows`
//! through its HTTP API. The promtool and Prometheus tests skip, saying why, when the Debian
//! `prometheus` package is not installed (`.ci/run` installs it).

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
