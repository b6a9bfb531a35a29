//! `idemtop metrics --listen 127.0.0.1:9187`: a Prometheus exporter for every target of the fleet
//! ([`crate::fleet`]). `GET /metrics` scrapes every target at once, each under its own deadline
//! (`--scrape-timeout`), and answers them in one exposition where every series is labelled
//! `target="…"`; `GET /probe?target=NAME` answers one target (the multi-target exporter pattern
//! of postgres_exporter and blackbox_exporter). A scrape of a target takes a snapshot, gathers
//! the checks' extras and evaluates the checks (keeping the previous snapshot for rates). A
//! target that cannot be read gives `idemtop_up{target="…"} 0`; the answer is still 200.
//!
//! Each target keeps its own session between scrapes, and concurrent scrapes of a target share
//! one collection (single flight). The exposition format is [`render`]; the HTTP server
//! ([`http`]) is hyper's HTTP/1.1.

pub mod http;
pub mod render;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::db::connect::ConnectConfig;
use crate::fleet::collect::collect_within;
use crate::fleet::{self, Target};
use crate::ident::TableRef;
use crate::options::Global;
use crate::refresh::RefreshSession;

pub use http::{bind, serve_with, ServeOptions};
pub use render::{escape_label, merge, render, render_target, Exposition};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// A target's scrape gives up on its database after this long by default (Prometheus' default
/// scrape timeout is 10 s).
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(8);

#[derive(clap::Args, Debug, Clone)]
pub struct MetricsArgs {
    /// Address to serve GET /metrics and /probe?target=NAME on.
    #[arg(long, default_value = "127.0.0.1:9187", value_name = "ADDR:PORT")]
    pub listen: SocketAddr,

    /// Seconds each target's scrape may take (1..=300); a target that takes longer is
    /// `idemtop_up 0` for that scrape. Keep it below Prometheus' scrape_timeout.
    #[arg(long, default_value_t = 8, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub scrape_timeout: u64,
}

pub async fn run(global: &Global, config: &Config, args: &MetricsArgs) -> Result<i32> {
    let targets = fleet::targets(config, global)?;
    let listener =
        http::bind(args.listen).with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    match targets.as_slice() {
        [one] => eprintln!(
            "idemtop: serving metrics of {} (target \"{}\") on http://{addr}/metrics (Ctrl-C to stop)",
            one.table, one.name
        ),
        many => eprintln!(
            "idemtop: serving metrics of {} targets on http://{addr}/metrics, one at \
             http://{addr}/probe?target=NAME (Ctrl-C to stop)",
            many.len()
        ),
    }
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        eprintln!("idemtop: stopping: finishing the requests in flight (again to stop at once)");
        stop.cancel();
        wait_for_signal().await;
        std::process::exit(130);
    });
    let scrape_timeout = Duration::from_secs(args.scrape_timeout);
    let fleet = Fleet::new(&targets, config, scrape_timeout);
    let opts = ServeOptions {
        // A scrape of every target takes at most the scrape timeout, plus the rendering.
        request_timeout: ServeOptions::default()
            .request_timeout
            .max(scrape_timeout + Duration::from_secs(5)),
        ..ServeOptions::default()
    };
    serve_with(listener, Arc::new(fleet), opts, shutdown).await?;
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

/// Serve `/metrics` and `/probe` for `targets` on `listener` with the default HTTP settings and
/// scrape timeout, until `shutdown` fires (then in-flight requests finish, up to
/// [`ServeOptions::shutdown_grace`]).
pub async fn serve(
    listener: TcpListener,
    targets: Vec<Target>,
    cfg: Config,
    shutdown: CancellationToken,
) -> Result<()> {
    let fleet = Fleet::new(&targets, &cfg, SCRAPE_TIMEOUT);
    serve_with(listener, Arc::new(fleet), ServeOptions::default(), shutdown).await
}

/// The exporters of every target.
pub struct Fleet {
    exporters: Vec<Arc<Exporter>>,
}

impl Fleet {
    pub fn new(targets: &[Target], cfg: &Config, timeout: Duration) -> Self {
        let cfg = Arc::new(cfg.clone());
        Self {
            exporters: targets
                .iter()
                .map(|t| Arc::new(Exporter::for_target(t, Arc::clone(&cfg), timeout)))
                .collect(),
        }
    }

    /// The targets' names, in the configuration's order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.exporters.iter().filter_map(|e| e.label.as_deref())
    }

    /// Every target at once (each under its own deadline), in one exposition.
    pub async fn scrape_all(&self) -> String {
        let parts =
            futures::future::join_all(self.exporters.iter().map(Exporter::scrape_detached)).await;
        merge(parts.iter().map(|p| p.as_ref()))
    }

    /// One target's exposition; `None` when no target has that name.
    pub async fn probe(&self, name: &str) -> Option<String> {
        let e = self
            .exporters
            .iter()
            .find(|e| e.label.as_deref() == Some(name))?;
        Some(merge([e.scrape_detached().await.as_ref()]))
    }
}

/// Scrapes one target's database; one collection at a time (they share the session).
pub struct Exporter {
    connect: ConnectConfig,
    table: TableRef,
    cfg: Arc<Config>,
    /// The target's name: every sample is labelled `target="…"` with it (none when `None`).
    label: Option<String>,
    /// How long one collection may take.
    timeout: Duration,
    /// Its own session, kept between scrapes (with the last snapshot, for rates).
    state: Mutex<RefreshSession>,
    /// The last answer and when it was finished: scrapes that were waiting while it was being
    /// made get it too (one query round for a burst of concurrent scrapes, not one each).
    last: std::sync::Mutex<Option<(Instant, Arc<Exposition>)>>,
}

impl Exporter {
    /// An exporter of one table whose samples carry no `target` label.
    pub fn new(connect: ConnectConfig, table: TableRef, cfg: Config) -> Self {
        Self::build(connect, table, Arc::new(cfg), None, SCRAPE_TIMEOUT)
    }

    /// The exporter of a fleet's target: its samples labelled `target="<name>"`.
    pub fn for_target(target: &Target, cfg: Arc<Config>, timeout: Duration) -> Self {
        Self::build(
            target.connect.clone(),
            target.table.clone(),
            cfg,
            Some(target.name.clone()),
            timeout,
        )
    }

    fn build(
        connect: ConnectConfig,
        table: TableRef,
        cfg: Arc<Config>,
        label: Option<String>,
        timeout: Duration,
    ) -> Self {
        Self {
            connect,
            table,
            cfg,
            label,
            timeout,
            state: Mutex::new(RefreshSession::default()),
            last: std::sync::Mutex::new(None),
        }
    }

    /// One scrape: the exposition text (with `idemtop_up 0` when the database failed).
    pub async fn scrape(&self) -> String {
        merge([self.scrape_shared().await.as_ref()])
    }

    /// One scrape, shared with every scrape that arrived while it was being made.
    pub async fn scrape_shared(&self) -> Arc<Exposition> {
        let arrived = Instant::now();
        let mut state = self.state.lock().await;
        if let Some((done, found)) = self.last.lock().ok().and_then(|l| l.clone()) {
            if done >= arrived {
                return found;
            }
        }
        let found = Arc::new(self.collect_and_render(&mut state).await);
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), found.clone()));
        }
        found
    }

    /// [`scrape_shared`](Self::scrape_shared) on a task of its own: a client that goes away
    /// (or a request timeout) does not cancel the collection halfway through a query, and the
    /// next scrape gets its result. A collection that panics is `idemtop_up 0`.
    pub async fn scrape_detached(self: &Arc<Self>) -> Arc<Exposition> {
        let me = Arc::clone(self);
        match tokio::spawn(async move { me.scrape_shared().await }).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("scrape of target {:?} failed: {e}", self.label);
                Arc::new(render_target(self.label.as_deref(), None, None, 0.0))
            }
        }
    }

    async fn collect_and_render(&self, state: &mut RefreshSession) -> Exposition {
        let started = Instant::now();
        let outcome =
            collect_within(state, &self.connect, &self.table, &self.cfg, self.timeout).await;
        let elapsed = started.elapsed().as_secs_f64();
        let label = self.label.as_deref();
        match outcome {
            Ok((snap, checks)) => render_target(label, Some((&snap, &checks)), None, elapsed),
            Err(e) => {
                let locked = crate::db::locks::locked_in(&e).cloned();
                if locked.is_none() {
                    tracing::warn!("scrape of target \"{}\" failed: {e:#}", label.unwrap_or(""));
                }
                render_target(label, None, locked.as_ref(), elapsed)
            }
        }
    }
}

#[cfg(test)]
mod tests;
