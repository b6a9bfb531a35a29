//! `idemtop metrics --listen 127.0.0.1:9187`: a Prometheus exporter. Each scrape of `GET
//! /metrics` takes a snapshot, gathers the checks' extras and evaluates the checks (keeping the
//! previous snapshot for rates), and answers in the text exposition format 0.0.4. When the
//! database cannot be reached the answer is still 200, with `idemtop_up 0`.
//!
//! The HTTP side is a deliberately small HTTP/1.1 responder: one request per connection
//! (`Connection: close`), `GET` and `HEAD /metrics` only (404 for other paths, 405 for other
//! methods). Concurrent scrapes share one collection.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::checks::{self, CheckResult, Level};
use crate::cli::Global;
use crate::config::Config;
use crate::db::connect::{is_connection_lost, ConnectConfig};
use crate::db::snapshot::{Snapshot, SnapshotOptions};
use crate::ident::TableRef;
use crate::worker::RefreshSession;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// A scrape gives up on the database after this long (Prometheus' default timeout is 10 s).
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(8);
/// How long a client may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_HEAD: usize = 16 * 1024;

#[derive(clap::Args, Debug, Clone)]
pub struct MetricsArgs {
    /// Address to serve GET /metrics on.
    #[arg(long, default_value = "127.0.0.1:9187", value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
}

pub async fn run(global: &Global, config: &Config, args: &MetricsArgs) -> Result<i32> {
    let table = global.table_ref()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    eprintln!("idemtop: serving metrics of {table} on http://{addr}/metrics (Ctrl-C to stop)");
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        stop.cancel();
    });
    serve(
        listener,
        global.connect_config(),
        table,
        config.clone(),
        shutdown,
    )
    .await?;
    Ok(0)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Scrapes the database; one scrape at a time (they share the connection).
pub struct Exporter {
    connect: ConnectConfig,
    table: TableRef,
    cfg: Config,
    /// Its own session, kept between scrapes (with the last snapshot, for rates).
    state: Mutex<RefreshSession>,
    /// The last answer and when it was finished: scrapes that were waiting while it was being
    /// made get it too (one query round for a burst of concurrent scrapes, not one each).
    last: std::sync::Mutex<Option<(Instant, Arc<String>)>>,
}

impl Exporter {
    pub fn new(connect: ConnectConfig, table: TableRef, cfg: Config) -> Self {
        Self {
            connect,
            table,
            cfg,
            state: Mutex::new(RefreshSession::default()),
            last: std::sync::Mutex::new(None),
        }
    }

    /// One scrape: the exposition text (with `idemtop_up 0` when the database failed).
    pub async fn scrape(&self) -> String {
        self.scrape_shared().await.as_ref().clone()
    }

    /// One scrape, shared with every scrape that arrived while it was being made.
    pub async fn scrape_shared(&self) -> Arc<String> {
        let arrived = Instant::now();
        let mut state = self.state.lock().await;
        if let Some((done, text)) = self.last.lock().ok().and_then(|l| l.clone()) {
            if done >= arrived {
                return text;
            }
        }
        let text = Arc::new(self.collect_and_render(&mut state).await);
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), text.clone()));
        }
        text
    }

    async fn collect_and_render(&self, state: &mut RefreshSession) -> String {
        let started = Instant::now();
        let outcome = tokio::time::timeout(SCRAPE_TIMEOUT, self.collect(state)).await;
        let mut locked = None;
        let ok = match outcome {
            Ok(Ok(found)) => Some(found),
            Ok(Err(e)) if crate::db::locks::locked_in(&e).is_some() => {
                locked = crate::db::locks::locked_in(&e).cloned();
                None
            }
            Ok(Err(e)) => {
                if is_connection_lost(&e) {
                    state.disconnect();
                }
                tracing::warn!("scrape failed: {e:#}");
                None
            }
            Err(_) => {
                // The connection may be mid-query: drop it, connect afresh next time.
                state.disconnect();
                tracing::warn!("scrape timed out after {} s", SCRAPE_TIMEOUT.as_secs());
                None
            }
        };
        let elapsed = started.elapsed().as_secs_f64();
        match ok {
            Some((snap, checks)) => {
                let text = render(Some((&snap, &checks)), None, elapsed);
                state.previous = Some(snap);
                text
            }
            None => render(None, locked.as_ref(), elapsed),
        }
    }

    async fn collect(&self, state: &mut RefreshSession) -> Result<(Snapshot, Vec<CheckResult>)> {
        let conn = state.connection(&self.connect).await?;
        let snap = crate::worker::refresh(conn, &self.table, SnapshotOptions::default()).await?;
        let extras = checks::gather(conn, &self.table, &snap, &self.cfg).await?;
        let results = checks::evaluate(&snap, state.previous.as_ref(), &extras, &self.cfg);
        Ok((snap, results))
    }
}

/// Serve `GET /metrics` on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    connect: ConnectConfig,
    table: TableRef,
    cfg: Config,
    shutdown: CancellationToken,
) -> Result<()> {
    let exporter = Arc::new(Exporter::new(connect, table, cfg));
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let exporter = Arc::clone(&exporter);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                r = handle(stream, &exporter) => {
                    if let Err(e) = r {
                        tracing::debug!("metrics connection: {e:#}");
                    }
                }
            }
        });
    }
}

/// What the request head asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Metrics,
    /// `HEAD /metrics`: the headers of a scrape, no body.
    MetricsHead,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Route a request head (`GET /metrics HTTP/1.1`, headers ignored).
pub fn route(head: &str) -> Route {
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || target.is_empty() {
        return Route::BadRequest;
    }
    let path = target.split(['?', '#']).next().unwrap_or("");
    if path != "/metrics" {
        return Route::NotFound;
    }
    match method {
        "GET" => Route::Metrics,
        "HEAD" => Route::MetricsHead,
        _ => Route::MethodNotAllowed,
    }
}

async fn handle(mut stream: TcpStream, exporter: &Exporter) -> Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let head = tokio::time::timeout(READ_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = find_head_end(&buf) {
                return Ok::<_, std::io::Error>(Some(end));
            }
            if buf.len() > MAX_HEAD {
                return Ok(None);
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    let route = match head {
        Ok(Ok(Some(end))) => route(&String::from_utf8_lossy(&buf[..end])),
        Ok(Ok(None)) if buf.is_empty() => return Ok(()),
        Ok(Ok(None)) => Route::BadRequest,
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Ok(()),
    };
    let response = match route {
        Route::Metrics => {
            let body = exporter.scrape_shared().await;
            response("200 OK", CONTENT_TYPE, &[], &body)
        }
        Route::MetricsHead => {
            let body = exporter.scrape_shared().await;
            let mut head = response("200 OK", CONTENT_TYPE, &[], &body);
            head.truncate(head.len() - body.len());
            head
        }
        Route::NotFound => response(
            "404 Not Found",
            "text/plain; charset=utf-8",
            &[],
            "not found: metrics are at /metrics\n",
        ),
        Route::MethodNotAllowed => response(
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            &[("Allow", "GET, HEAD")],
            "method not allowed: use GET\n",
        ),
        Route::BadRequest => response(
            "400 Bad Request",
            "text/plain; charset=utf-8",
            &[],
            "bad request\n",
        ),
    };
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| {
        // Be lenient with bare LF line endings.
        buf.windows(2).position(|w| w == b"\n\n")
    })
}

fn response(status: &str, content_type: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out
}

/// A label value escaped for the exposition format: backslash, double quote, newline.
pub fn escape_label(v: &str) -> String {
    // Text from the database first loses its control characters (ESC, BEL, CR, C1...: shown
    // visibly, as everywhere else): `curl /metrics` in a terminal must not run escape sequences.
    let v = crate::sanitize::text(v);
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A float as the exposition format writes it (`+Inf`, `-Inf`, `NaN`).
fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    /// Samples `(name, holder kind, value)`, each labelled `holder`.
    fn family_once_samples<'a>(&mut self, samples: impl Iterator<Item = (&'a str, &'a str, f64)>) {
        for (name, holder, v) in samples {
            self.sample(name, &[("holder", holder)], v);
        }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", num(value));
    }
}

/// The exposition text for one scrape: `None` when the database could not be read.
pub fn render(
    found: Option<(&Snapshot, &[CheckResult])>,
    locked: Option<&crate::db::locks::TableLock>,
    scrape_secs: f64,
) -> String {
    let mut o = Out(String::new());
    o.family(
        "idemtop_up",
        "gauge",
        "1 when the last scrape reached the database and the table, 0 when they could not be read.",
    );
    let up = found.is_some() || locked.is_some();
    o.sample("idemtop_up", &[], if up { 1.0 } else { 0.0 });
    o.family(
        "idemtop_table_locked",
        "gauge",
        "1 when an ACCESS EXCLUSIVE lock on the table (held or requested) kept this scrape from measuring it: no figure is served then.",
    );
    o.sample(
        "idemtop_table_locked",
        &[],
        if locked.is_some() { 1.0 } else { 0.0 },
    );
    if let Some(lock) = locked {
        o.family(
            "idemtop_table_lock_waiting_sessions",
            "gauge",
            "Sessions waiting behind the lock on the table.",
        );
        o.sample(
            "idemtop_table_lock_waiting_sessions",
            &[],
            lock.waiting as f64,
        );
    }
    if let Some((s, checks)) = found {
        o.family(
            "idemtop_rows",
            "gauge",
            "Rows of the table by state (estimates unless idemtop_rows_exact is 1).",
        );
        for (state, v) in [
            ("live", s.rows.live),
            ("expired", s.rows.expired),
            ("total", s.rows.total),
        ] {
            o.sample("idemtop_rows", &[("state", state)], v as f64);
        }
        o.family(
            "idemtop_rows_exact",
            "gauge",
            "1 when the row counts are exact, 0 when estimated from statistics.",
        );
        o.sample("idemtop_rows_exact", &[], f64::from(u8::from(s.rows.exact)));
        o.family(
            "idemtop_size_bytes",
            "gauge",
            "On-disk size of the table: total, heap (table), indexes, TOAST.",
        );
        for (kind, v) in [
            ("total", s.sizes.total_bytes),
            ("table", s.sizes.table_bytes),
            ("index", s.sizes.index_bytes),
            ("toast", s.sizes.toast_bytes),
        ] {
            o.sample("idemtop_size_bytes", &[("kind", kind)], v as f64);
        }
        o.family(
            "idemtop_dead_tuples",
            "gauge",
            "Dead tuples (pg_stat_user_tables.n_dead_tup; absent on a standby, which does not maintain it).",
        );
        if s.counters_maintained() {
            o.sample("idemtop_dead_tuples", &[], s.vacuum.n_dead_tup as f64);
        }
        o.family(
            "idemtop_standby",
            "gauge",
            "1 when the server is a hot standby (in recovery): nothing can be written, and the table's activity counters are not maintained (their metrics are absent).",
        );
        o.sample(
            "idemtop_standby",
            &[],
            f64::from(u8::from(s.standby.is_some())),
        );
        if let Some(sb) = &s.standby {
            o.family(
                "idemtop_standby_replay_lag_seconds",
                "gauge",
                "now() - pg_last_xact_replay_timestamp() on a standby (grows while the primary is idle).",
            );
            if let Some(l) = sb.replay_lag_secs {
                o.sample("idemtop_standby_replay_lag_seconds", &[], l);
            }
            o.family(
                "idemtop_standby_receive_replay_gap_bytes",
                "gauge",
                "WAL received by the standby but not yet replayed.",
            );
            if let Some(g) = sb.receive_replay_gap_bytes {
                o.sample("idemtop_standby_receive_replay_gap_bytes", &[], g as f64);
            }
        }
        if let Some(h) = &s.vacuum.xmin_horizon {
            o.family(
                "idemtop_xmin_horizon_age_xids",
                "gauge",
                "Age in transaction ids of the oldest xmin holding back this table's VACUUM, by holder kind (backend, prepared_xact, replication_slot, standby_feedback); absent when nothing holds it.",
            );
            o.family_once_samples(h.holder.iter().map(|x| {
                (
                    "idemtop_xmin_horizon_age_xids",
                    x.kind.as_str(),
                    x.age_xids as f64,
                )
            }));
            o.family(
                "idemtop_xmin_horizon_age_seconds",
                "gauge",
                "Transaction age in seconds of the oldest xmin holder (backends and prepared transactions; slots and standbys have no start time).",
            );
            o.family_once_samples(h.holder.iter().filter_map(|x| {
                x.age_secs
                    .map(|a| ("idemtop_xmin_horizon_age_seconds", x.kind.as_str(), a))
            }));
            o.family(
                "idemtop_xmin_horizon_unremovable_dead_tuples",
                "gauge",
                "Estimated dead tuples of the table that VACUUM cannot remove yet because of the xmin holder (absent on a standby).",
            );
            if let Some(n) = h.unremovable {
                o.sample(
                    "idemtop_xmin_horizon_unremovable_dead_tuples",
                    &[],
                    n as f64,
                );
            }
        }
        o.family(
            "idemtop_cleanup_lag_seconds",
            "gauge",
            "Age of the oldest expired row, 0 when nothing is expired.",
        );
        o.sample("idemtop_cleanup_lag_seconds", &[], s.rows.cleanup_lag_secs);
        o.family(
            "idemtop_last_vacuum_timestamp_seconds",
            "gauge",
            "Unix time of the last VACUUM or autovacuum of the table (absent when never).",
        );
        if let Some(t) = s
            .vacuum
            .last_any_vacuum()
            .filter(|_| s.counters_maintained())
        {
            o.sample(
                "idemtop_last_vacuum_timestamp_seconds",
                &[],
                t.timestamp_millis() as f64 / 1000.0,
            );
        }
        o.family(
            "idemtop_operation_rows",
            "gauge",
            "Rows per operation (estimated from pg_stats on a large table).",
        );
        for op in &s.operations {
            o.sample(
                "idemtop_operation_rows",
                &[("operation", &op.operation)],
                op.total as f64,
            );
        }
        o.family(
            "idemtop_index_scans_total",
            "counter",
            "Index scans per index of the table (pg_stat_user_indexes.idx_scan).",
        );
        for i in &s.indexes {
            o.sample(
                "idemtop_index_scans_total",
                &[("index", &i.name)],
                i.idx_scan as f64,
            );
        }
        o.family(
            "idemtop_index_size_bytes",
            "gauge",
            "Size of each index of the table.",
        );
        for i in &s.indexes {
            o.sample(
                "idemtop_index_size_bytes",
                &[("index", &i.name)],
                i.size_bytes as f64,
            );
        }
        o.family(
            "idemtop_check_level",
            "gauge",
            "Level of each health check: 0 ok, 1 warning, 2 critical, 3 unknown.",
        );
        // A pending check (a rate before its second sample) has no level yet: it is left out
        // here, so that an alert on `>= 2` does not fire on every exporter restart, and
        // counted in idemtop_check_pending.
        for id in checks::CHECK_IDS {
            let found = checks.iter().find(|c| c.id == id);
            // An n/a check (the mapping leaves out what it needs) has no level either.
            if found.is_some_and(|c| !c.counted()) {
                continue;
            }
            let level = found.map(|c| c.level).unwrap_or(Level::Unknown);
            o.sample(
                "idemtop_check_level",
                &[("check", id)],
                f64::from(level.exit_code()),
            );
        }
        o.family(
            "idemtop_check_pending",
            "gauge",
            "1 for a check that has no data yet (a rate needs two scrapes); its idemtop_check_level is absent until then.",
        );
        for c in checks.iter().filter(|c| c.pending) {
            o.sample("idemtop_check_pending", &[("check", c.id)], 1.0);
        }
    }
    o.family(
        "idemtop_scrape_duration_seconds",
        "gauge",
        "Time this scrape took, database queries included.",
    );
    o.sample("idemtop_scrape_duration_seconds", &[], scrape_secs);
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route("GET /metrics HTTP/1.1\r\nHost: x\r\n"),
            Route::Metrics
        );
        assert_eq!(route("GET /metrics?x=1 HTTP/1.0"), Route::Metrics);
        assert_eq!(route("POST /metrics HTTP/1.1"), Route::MethodNotAllowed);
        assert_eq!(route("HEAD /metrics HTTP/1.1"), Route::MetricsHead);
        assert_eq!(route("GET / HTTP/1.1"), Route::NotFound);
        assert_eq!(route("garbage"), Route::BadRequest);
    }

    #[test]
    fn escapes_labels() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        // No raw control character reaches a terminal running `curl /metrics`.
        let hostile = escape_label("op\u{1b}]52;c;aGk=\u{7}\r\u{9b}x");
        assert!(!hostile.chars().any(char::is_control), "{hostile:?}");
    }

    #[test]
    fn down_is_up_zero() {
        let text = render(None, None, 0.5);
        assert!(text.contains("\nidemtop_up 0\n"), "{text}");
        assert!(text.contains("\nidemtop_table_locked 0\n"), "{text}");
        assert!(text.contains("idemtop_scrape_duration_seconds 0.5"));
    }

    #[test]
    fn locked_is_up_but_serves_no_figure() {
        let lock = crate::db::locks::TableLock {
            relation: "idempotency_records".into(),
            mode: "AccessExclusiveLock".into(),
            granted: true,
            pid: 4242,
            user: Some("alice".into()),
            application: Some("psql".into()),
            client: None,
            state: Some("idle in transaction".into()),
            xact_secs: Some(30.0),
            query: Some("LOCK TABLE idempotency_records".into()),
            waiting: 3,
            seen_at: chrono::Utc::now(),
        };
        let text = render(None, Some(&lock), 0.1);
        assert!(text.contains("\nidemtop_up 1\n"), "{text}");
        assert!(text.contains("\nidemtop_table_locked 1\n"), "{text}");
        assert!(
            text.contains("\nidemtop_table_lock_waiting_sessions 3\n"),
            "{text}"
        );
        assert!(
            !text.contains("idemtop_rows{"),
            "no figure under a lock: {text}"
        );
        assert!(!text.contains("idemtop_size_bytes{"), "{text}");
    }
}
