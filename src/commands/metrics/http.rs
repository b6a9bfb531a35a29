//! The exporter's HTTP/1.1 server, on hyper: keep-alive; `GET` and `HEAD` (the same headers,
//! no body) of `/metrics` and `/probe?target=NAME`, 405 with `Allow` for other methods, 404
//! for other paths; request heads over [`ServeOptions::max_header_bytes`] get 431 and the
//! connection is closed; a client that does not send its whole head within
//! [`ServeOptions::header_read_timeout`] (a slowloris, or an idle keep-alive connection) is
//! disconnected; an answer not ready within [`ServeOptions::request_timeout`] is a 503. On
//! shutdown the listener is closed at once, requests in flight are answered (their connections
//! then close), and whatever is still running after [`ServeOptions::shutdown_grace`] is dropped.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Fleet;
use crate::fleet::list_names;
use crate::sanitize;

/// The HTTP server's limits.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The whole request head (request line and headers) must arrive within this long, counted
    /// from when the server starts waiting for it (so it also closes idle keep-alive
    /// connections). Default 5 s.
    pub header_read_timeout: Duration,
    /// An answer not ready within this long is a 503. Default 20 s (`idemtop metrics` raises it
    /// above `--scrape-timeout`).
    pub request_timeout: Duration,
    /// The largest request head, in bytes; a larger one gets 431. Default 8 KiB.
    pub max_header_bytes: usize,
    /// On shutdown, how long requests in flight may still take. Default 5 s.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            max_header_bytes: 8 * 1024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Every target.
    Metrics,
    /// One target, by name.
    Probe(String),
    /// `/probe` without `target=`.
    ProbeWithoutTarget,
    NotFound,
    MethodNotAllowed,
}

/// Route a request by its method, path and query string.
pub fn route(method: &Method, path: &str, query: Option<&str>) -> Route {
    if path != "/metrics" && path != "/probe" {
        return Route::NotFound;
    }
    if method != Method::GET && method != Method::HEAD {
        return Route::MethodNotAllowed;
    }
    if path == "/metrics" {
        return Route::Metrics;
    }
    let target = query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "target")
            .map(|(_, v)| v.into_owned())
    });
    match target {
        Some(t) if !t.is_empty() => Route::Probe(t),
        _ => Route::ProbeWithoutTarget,
    }
}

/// How many connections may wait to be accepted (std's and tokio's `bind` allow 128: a burst
/// of more concurrent scrapes would see SYNs dropped and retried a second later).
pub const BACKLOG: u32 = 1024;

/// A listener on `addr` with a [`BACKLOG`] of pending connections.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serve `fleet` on `listener` until `shutdown` fires; then stop accepting, let the requests in
/// flight finish (up to `opts.shutdown_grace`) and return.
pub async fn serve_with(
    listener: TcpListener,
    fleet: Arc<Fleet>,
    opts: ServeOptions,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(opts.header_read_timeout)
        .max_header_size(opts.max_header_bytes)
        .max_headers(100);
    let graceful = GracefulShutdown::new();
    let opts = Arc::new(opts);
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (fleet, o) = (Arc::clone(&fleet), Arc::clone(&opts));
        let service = hyper::service::service_fn(move |req| {
            let (fleet, o) = (Arc::clone(&fleet), Arc::clone(&o));
            async move { Ok::<_, Infallible>(answer(req, &fleet, &o).await) }
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("metrics connection: {e}");
            }
        });
    }
    drop(listener);
    let grace = opts.shutdown_grace;
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => {
            tracing::warn!(
                "requests still running {} s after the shutdown began were dropped",
                grace.as_secs_f64()
            );
        }
    }
    Ok(())
}

type Answer = Response<Full<Bytes>>;

async fn answer(req: Request<Incoming>, fleet: &Fleet, opts: &ServeOptions) -> Answer {
    let head = req.method() == Method::HEAD;
    let route = route(req.method(), req.uri().path(), req.uri().query());
    let response = match tokio::time::timeout(opts.request_timeout, respond(route, fleet)).await {
        Ok(r) => r,
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the scrape did not finish within {} s\n",
                opts.request_timeout.as_secs_f64()
            ),
        ),
    };
    if head {
        without_body(response)
    } else {
        response
    }
}

async fn respond(route: Route, fleet: &Fleet) -> Answer {
    match route {
        Route::Metrics => exposition(fleet.scrape_all().await),
        Route::Probe(name) => match fleet.probe(&name).await {
            Some(body) => exposition(body),
            None => text(
                StatusCode::NOT_FOUND,
                format!(
                    "unknown target \"{}\": the targets are {}\n",
                    sanitize::line(&name),
                    list_names(fleet.names())
                ),
            ),
        },
        Route::ProbeWithoutTarget => text(
            StatusCode::BAD_REQUEST,
            format!(
                "/probe needs a target: /probe?target=NAME, NAME one of {}\n",
                list_names(fleet.names())
            ),
        ),
        Route::NotFound => text(
            StatusCode::NOT_FOUND,
            "not found: every target's metrics are at /metrics, one target's at \
             /probe?target=NAME\n"
                .to_string(),
        ),
        Route::MethodNotAllowed => {
            let mut r = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed: use GET (or HEAD)\n".to_string(),
            );
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
    }
}

fn exposition(body: String) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(super::CONTENT_TYPE));
    r
}

fn text(status: StatusCode, body: String) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The answer to a HEAD: a GET's headers, its `Content-Length` included, and no body.
fn without_body(r: Answer) -> Answer {
    use hyper::body::Body;
    let len = r.body().size_hint().exact().unwrap_or(0);
    let (mut parts, _) = r.into_parts();
    parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    Response::from_parts(parts, Full::new(Bytes::new()))
}
