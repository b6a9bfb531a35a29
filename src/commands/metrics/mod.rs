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
use crate::config::Config;
use crate::db::connect::{is_connection_lost, ConnectConfig};
use crate::db::snapshot::Snapshot;
use crate::ident::TableRef;
use crate::options::Global;
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
        global.connect_config_for(config)?,
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
        let snap = crate::refresh::refresh_with(
            conn,
            &self.table,
            &self.cfg.tables,
            self.cfg.snapshot_options(),
        )
        .await?;
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

mod exposition;
pub use exposition::*;

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
    fn without_a_mapped_expiry_only_the_total_is_exposed() {
        let snap = crate::fixtures::snapshot(0, 1000);
        let text = render(Some((&snap, &[])), None, 0.1);
        assert!(text.contains("idemtop_rows{state=\"expired\"}"), "{text}");
        assert!(text.contains("\nidemtop_cleanup_lag_seconds "), "{text}");
        let mut blind = snap.clone();
        blind.mapping.missing.push(crate::db::shape::Role::Expiry);
        let text = render(Some((&blind, &[])), None, 0.1);
        assert!(text.contains("idemtop_rows{state=\"total\"}"), "{text}");
        assert!(!text.contains("idemtop_rows{state=\"expired\"}"), "{text}");
        assert!(!text.contains("idemtop_rows{state=\"live\"}"), "{text}");
        assert!(!text.contains("\nidemtop_cleanup_lag_seconds "), "{text}");
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
