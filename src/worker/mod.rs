//! Runs database requests on tasks and reports back over a channel, so the UI never waits on
//! a query. Knows nothing of the screen.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use futures::FutureExt;
use sqlx::PgPool;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::app::records::{PageRequest, MAX_PAYLOAD_BYTES, PAGE_SIZE};
use crate::app::{Also, DbError, DbEvent, Request};
use crate::checks;
use crate::config::Config;
use crate::db::connect::{is_connection_lost, ConnectConfig};
use crate::db::partitions;
use crate::db::records;
use crate::db::snapshot::{Snapshot, SnapshotOptions};
use crate::db::table::TableInfo;
use crate::ident::TableRef;
use crate::sanitize;
pub use idemtop_core::refresh::{connected, refresh, RefreshSession};

pub mod fleet;
mod maintenance;
#[cfg(test)]
mod tests;

pub struct Worker {
    /// For maintenance actions, each on its own connection.
    pub pool: PgPool,
    pub table: TableRef,
    pub events: UnboundedSender<DbEvent>,
    connect: ConnectConfig,
    /// The refreshes' own session, made again after the server went away. Refreshes never
    /// overlap (the state allows one in flight), so this lock is never contended.
    refresh_conn: tokio::sync::Mutex<RefreshSession>,
    /// What the checks' gathers reuse from one to the next (their TTL sample). Taken only
    /// with the refresh session, so never contended either.
    gather_cache: tokio::sync::Mutex<checks::GatherCache>,
    config: Config,
    cleanup_cancel: Mutex<Option<CancellationToken>>,
    /// Tests only: every task panics on purpose before doing its work (unit tests, and the
    /// end-to-end test of `IDEMTOP_TEST_PANIC=worker`).
    #[doc(hidden)]
    pub panic_for_test: AtomicBool,
}

/// How long `B` (pgstattuple, which reads the whole heap) may take.
const SPACE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long one refresh (and, separately, what the screens on show need besides it) may take
/// before the server counts as not responding. A healthy refresh takes milliseconds; its slowest
/// parts are bounded on the server (the exact pass and the retention sample by 2 s, lock waits
/// by 500 ms), so this only fires when the server answers nothing at all: within two refresh
/// intervals at the default interval.
pub const REFRESH_DEADLINE: std::time::Duration = std::time::Duration::from_millis(3500);

fn not_responding() -> anyhow::Error {
    anyhow::Error::new(crate::db::connect::NotResponding(format!(
        "the server did not answer within {:.1} s (frozen, overloaded, or the network is gone)",
        REFRESH_DEADLINE.as_secs_f64()
    )))
}

/// The text of a panic's payload (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// A panic in a task as the request's error: one readable, sanitized line.
fn panic_error(doing: &str, payload: &(dyn Any + Send)) -> DbError {
    DbError {
        message: sanitize::line(&format!(
            "internal error: {doing} panicked: {} (a bug in idemtop; the dashboard keeps running)",
            panic_message(payload)
        )),
        connection_lost: false,
    }
}

/// An error as one readable line, and whether the connection is gone.
pub fn db_error(e: &anyhow::Error) -> DbError {
    let message = format!("{e:#}");
    DbError {
        message: sanitize::line(message.lines().next().unwrap_or("")),
        connection_lost: is_connection_lost(e),
    }
}

impl Worker {
    pub fn new(
        connect: ConnectConfig,
        pool: PgPool,
        table: TableRef,
        config: Config,
        events: UnboundedSender<DbEvent>,
    ) -> Arc<Self> {
        Arc::new(Self {
            pool,
            table,
            events,
            connect,
            refresh_conn: tokio::sync::Mutex::new(RefreshSession {
                sampler: crate::db::snapshot::Sampler::budgeted_from_start(),
                ..RefreshSession::default()
            }),
            gather_cache: tokio::sync::Mutex::new(checks::GatherCache::default()),
            config,
            cleanup_cancel: Mutex::new(None),
            panic_for_test: AtomicBool::new(false),
        })
    }

    /// Run `work` on its own task. A panic in it never goes unnoticed and never takes the
    /// dashboard down: it is caught at the task's edge and `on_panic` turns it into the error
    /// event of the request the task was serving (so a refresh or a page is no longer "in
    /// flight", a maintenance action no longer "running"), shown on screen like any error.
    fn spawn_reporting<F, P>(self: &Arc<Self>, doing: &'static str, work: F, on_panic: P)
    where
        F: Future<Output = ()> + Send + 'static,
        P: FnOnce(&Worker, DbError) -> Option<DbEvent> + Send + 'static,
    {
        let me = Arc::clone(self);
        let inject = self.panic_for_test.load(Ordering::Relaxed);
        tokio::spawn(async move {
            let work = async move {
                if inject {
                    panic!("IDEMTOP_TEST_PANIC is set: panicking in a worker task on purpose");
                }
                work.await
            };
            // AssertUnwindSafe: after a panic the task's state is dropped, and what it shares
            // (the refresh session, the cleanup token) is reset by `on_panic`.
            if let Err(payload) = AssertUnwindSafe(work).catch_unwind().await {
                if let Some(ev) = on_panic(&me, panic_error(doing, &*payload)) {
                    let _ = me.events.send(ev);
                }
            }
        });
    }

    /// One refresh on the refreshes' own session, then what the screens on show also need;
    /// each result goes back as its own event.
    async fn refresh_and_send(&self, generation: u64, opts: SnapshotOptions, also: Also) {
        let mut guard = self.refresh_conn.lock().await;
        let session = &mut *guard;
        // A frozen server (or a dead network) answers nothing and enforces no statement_timeout:
        // the client-side deadline turns that into "not responding", and the session, possibly
        // mid-query, is dropped.
        let result = match tokio::time::timeout(
            REFRESH_DEADLINE,
            self.refresh_on(session, opts, also.model, also.exact_now),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => {
                session.disconnect();
                Err(not_responding())
            }
        };
        let (snap, info) = match result {
            Ok(pair) => pair,
            Err(e) => {
                if let Some(lock) = crate::db::locks::locked_in(&e) {
                    let lock = Box::new(lock.clone());
                    let _ = self.events.send(DbEvent::Locked { generation, lock });
                    return;
                }
                session.forget_model_on(&e);
                if is_connection_lost(&e) {
                    session.disconnect();
                }
                let result = Err(db_error(&e));
                let _ = self.events.send(DbEvent::Snapshot { generation, result });
                return;
            }
        };
        let _ = self.events.send(DbEvent::Snapshot {
            generation,
            result: Ok(Box::new(snap.clone())),
        });
        let extras = tokio::time::timeout(
            REFRESH_DEADLINE,
            self.send_extras(session, &snap, info.oid, also),
        )
        .await;
        if extras.is_err() {
            session.disconnect();
            let lost = || db_error(&not_responding());
            if also.checks {
                let _ = self.events.send(DbEvent::Checks(Err(lost())));
            }
            if also.partitions && snap.partitioned {
                let _ = self.events.send(DbEvent::Partitions(Err(lost())));
            }
            if also.cron {
                let _ = self.events.send(DbEvent::Cron(Err(lost())));
            }
        }
        session.previous = Some(snap);
    }

    /// What the screens on show need besides the snapshot, each sent as its own event.
    async fn send_extras(
        &self,
        session: &mut RefreshSession,
        snap: &Snapshot,
        oid: u32,
        also: Also,
    ) {
        let Some(conn) = session.conn.as_mut() else {
            return;
        };
        // The checks read pg_cron's status too: the Activity screen's panel reuses it.
        let mut cron_from_checks = None;
        if also.checks {
            let gathered = checks::gather_cached(
                conn,
                &self.table,
                snap,
                &self.config,
                &mut *self.gather_cache.lock().await,
                also.model,
            )
            .await;
            let result = match gathered {
                Ok(extras) => {
                    let results =
                        checks::evaluate(snap, session.previous.as_ref(), &extras, &self.config);
                    cron_from_checks = Some(extras.cron.map_err(|message| DbError {
                        message,
                        connection_lost: false,
                    }));
                    Ok(results)
                }
                Err(e) => Err(db_error(&e)),
            };
            let _ = self.events.send(DbEvent::Checks(result));
        }
        if also.partitions && snap.partitioned {
            let result = partitions::list(conn, oid).await.map_err(|e| db_error(&e));
            let _ = self.events.send(DbEvent::Partitions(result));
        }
        if also.cron {
            let status = match cron_from_checks {
                Some(status) => status,
                None => crate::db::cron::status(conn)
                    .await
                    .map_err(|e| db_error(&e)),
            };
            let _ = self.events.send(DbEvent::Cron(status));
        }
    }

    /// One refresh; when the table turned out to be another one than its model was read for
    /// (dropped and recreated), the model is read again and the refresh made once more.
    async fn refresh_on(
        &self,
        session: &mut RefreshSession,
        opts: SnapshotOptions,
        reread_model: bool,
        exact_now: bool,
    ) -> Result<(Snapshot, TableInfo)> {
        match self
            .refresh_once(session, opts, reread_model, exact_now)
            .await
        {
            Err(e) if crate::db::snapshot::ModelChanged::is_in(&e) => {
                session.forget_model_on(&e);
                self.refresh_once(session, opts, true, exact_now).await
            }
            other => other,
        }
    }

    async fn refresh_once(
        &self,
        session: &mut RefreshSession,
        opts: SnapshotOptions,
        reread_model: bool,
        exact_now: bool,
    ) -> Result<(Snapshot, TableInfo)> {
        let (info, mapping) = session
            .model_mapped(
                &self.connect,
                &self.table,
                &self.config.tables,
                reread_model,
            )
            .await?;
        let conn = connected(&mut session.conn, &self.connect).await?;
        if exact_now {
            session.sampler.allow_exact_now();
        }
        let keep = crate::app::EXACT_PASS_EVERY * 3;
        let snap = session
            .sampler
            .take(conn, &self.table, &info, &mapping, opts, keep)
            .await?;
        Ok((snap, info))
    }

    /// Start the request on its own task; the result comes back on `events`, also when the
    /// task panics (see [`Worker::spawn_reporting`]).
    pub fn handle(self: &Arc<Self>, req: Request) {
        let me = Arc::clone(self);
        match req {
            Request::Refresh {
                generation,
                exact_pass,
                also,
            } => {
                let work = async move {
                    let opts = SnapshotOptions {
                        exact_pass,
                        stuck_after: me.config.stuck_after(),
                        ..SnapshotOptions::default()
                    };
                    me.refresh_and_send(generation, opts, also).await;
                };
                self.spawn_reporting("the refresh", work, move |w, error| {
                    // The session may have been mid-query: the next refresh connects afresh.
                    if let Ok(mut session) = w.refresh_conn.try_lock() {
                        session.disconnect();
                    }
                    Some(DbEvent::Snapshot {
                        generation,
                        result: Err(error),
                    })
                });
            }
            Request::LoadPage(req) => {
                let generation = req.generation;
                let work = async move {
                    let result = me.load_page(&req).await.map_err(|e| db_error(&e));
                    let _ = me.events.send(DbEvent::Page {
                        generation: req.generation,
                        result,
                    });
                };
                self.spawn_reporting("reading a page of records", work, move |_, error| {
                    Some(DbEvent::Page {
                        generation,
                        result: Err(error),
                    })
                });
            }
            Request::LoadMapped(req) => {
                let generation = req.generation;
                let work = async move {
                    let result = me
                        .load_mapped(&req)
                        .await
                        .map(Box::new)
                        .map_err(|e| db_error(&e));
                    let _ = me.events.send(DbEvent::Mapped { generation, result });
                };
                self.spawn_reporting("reading records by key", work, move |_, error| {
                    Some(DbEvent::Mapped {
                        generation,
                        result: Err(error),
                    })
                });
            }
            Request::LoadRecord(id) => {
                let work = async move {
                    let result = async {
                        let mut conn = me.pool.acquire().await?;
                        records::get(&mut conn, &me.table, id, MAX_PAYLOAD_BYTES).await
                    }
                    .await
                    .map_err(|e| db_error(&e));
                    let _ = me.events.send(DbEvent::Record { id, result });
                };
                self.spawn_reporting("reading a record", work, move |_, error| {
                    Some(DbEvent::Record {
                        id,
                        result: Err(error),
                    })
                });
            }
            Request::MeasureSpace => {
                let work = async move {
                    let result = async {
                        let mut conn = me.pool.acquire().await?;
                        crate::db::bloat::report(
                            &mut conn,
                            &me.table,
                            me.config.thresholds.free_space.rewrite_percent,
                            SPACE_TIMEOUT,
                        )
                        .await
                    }
                    .await
                    .map_err(|e| db_error(&e));
                    let _ = me.events.send(DbEvent::Space(result));
                };
                self.spawn_reporting("measuring the free space", work, move |_, error| {
                    Some(DbEvent::Space(Err(error)))
                });
            }
            Request::StopCleanup => {
                if let Some(token) = self.cleanup_cancel.lock().ok().and_then(|g| g.clone()) {
                    token.cancel();
                }
            }
            Request::Run(what) => {
                let started = Instant::now();
                let reported = what.clone();
                let work = async move {
                    let result = me.run_maintenance(&what).await.map_err(|e| db_error(&e));
                    let _ = me.events.send(DbEvent::Done {
                        what,
                        elapsed: started.elapsed(),
                        result,
                    });
                };
                self.spawn_reporting(reported.verb(), work, move |w, error| {
                    if let Ok(mut g) = w.cleanup_cancel.lock() {
                        *g = None;
                    }
                    Some(DbEvent::Done {
                        what: reported,
                        elapsed: started.elapsed(),
                        result: Err(error),
                    })
                });
            }
        }
    }
}
