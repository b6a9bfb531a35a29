//! Runs database requests on tasks and reports back over a channel, so the UI never waits on
//! a query. Knows nothing of the screen.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use sqlx::{PgConnection, PgPool};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::app::records::{PageRequest, MAX_PAYLOAD_BYTES, PAGE_SIZE};
use crate::app::{Also, DbError, DbEvent, Request};
use crate::checks;
use crate::config::Config;
use crate::db::connect::{is_connection_lost, ConnectConfig};
use crate::db::partitions;
use crate::db::records;
use crate::db::snapshot::{self, Sampler, Snapshot, SnapshotOptions};
use crate::db::table;
use crate::db::table::TableInfo;
use crate::ident::TableRef;
use crate::sanitize;

/// The refreshes' own session, made again after the server went away, with the sampler that
/// carries exact figures between exact passes and the previous snapshot (for rates in checks).
#[derive(Default)]
pub struct RefreshSession {
    conn: Option<PgConnection>,
    sampler: Sampler,
    /// The last snapshot taken on this session.
    pub previous: Option<Snapshot>,
}

impl RefreshSession {
    /// The session's connection, made when there is none (first use, or after it was lost).
    pub async fn connection(&mut self, connect: &ConnectConfig) -> Result<&mut PgConnection> {
        connected(&mut self.conn, connect).await
    }

    /// Drop the connection (lost, or possibly mid-query): the next use connects afresh.
    pub fn disconnect(&mut self) {
        self.conn = None;
    }
}

pub struct Worker {
    /// For maintenance actions, each on its own connection.
    pub pool: PgPool,
    pub table: TableRef,
    pub events: UnboundedSender<DbEvent>,
    connect: ConnectConfig,
    /// The refreshes' own session, made again after the server went away. Refreshes never
    /// overlap (the state allows one in flight), so this lock is never contended.
    refresh_conn: tokio::sync::Mutex<RefreshSession>,
    config: Config,
    cleanup_cancel: Mutex<Option<CancellationToken>>,
}

async fn connected<'a>(
    conn: &'a mut Option<PgConnection>,
    connect: &ConnectConfig,
) -> Result<&'a mut PgConnection> {
    if conn.is_none() {
        *conn = Some(connect.connect().await?);
    }
    Ok(conn.as_mut().expect("connected above"))
}

/// An error as one readable line, and whether the connection is gone.
pub fn db_error(e: &anyhow::Error) -> DbError {
    let message = format!("{e:#}");
    DbError {
        message: sanitize::line(message.lines().next().unwrap_or("")),
        connection_lost: is_connection_lost(e),
    }
}

/// One refresh: resolve the table (it may have been recreated) and take a snapshot.
pub async fn refresh(
    conn: &mut PgConnection,
    table: &TableRef,
    opts: SnapshotOptions,
) -> Result<Snapshot> {
    let info = table::resolve(conn, table).await?;
    snapshot::take(conn, table, &info, opts).await
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
            refresh_conn: tokio::sync::Mutex::new(RefreshSession::default()),
            config,
            cleanup_cancel: Mutex::new(None),
        })
    }

    /// One refresh on the refreshes' own session, then what the screens on show also need;
    /// each result goes back as its own event.
    async fn refresh_and_send(&self, generation: u64, opts: SnapshotOptions, also: Also) {
        let mut guard = self.refresh_conn.lock().await;
        let session = &mut *guard;
        let result = self.refresh_on(session, opts).await;
        let (snap, info) = match result {
            Ok(pair) => pair,
            Err(e) => {
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
        let Some(conn) = session.conn.as_mut() else {
            return;
        };
        // The checks read pg_cron's status too: the Activity screen's panel reuses it.
        let mut cron_from_checks = None;
        if also.checks {
            let result = match checks::gather(conn, &self.table, &snap, &self.config).await {
                Ok(extras) => {
                    let results =
                        checks::evaluate(&snap, session.previous.as_ref(), &extras, &self.config);
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
            let result = partitions::list(conn, info.oid)
                .await
                .map_err(|e| db_error(&e));
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
        session.previous = Some(snap);
    }

    async fn refresh_on(
        &self,
        session: &mut RefreshSession,
        opts: SnapshotOptions,
    ) -> Result<(Snapshot, TableInfo)> {
        let conn = connected(&mut session.conn, &self.connect).await?;
        let info = table::resolve(conn, &self.table).await?;
        let keep = crate::app::EXACT_PASS_EVERY * 3;
        let snap = session
            .sampler
            .take(conn, &self.table, &info, opts, keep)
            .await?;
        Ok((snap, info))
    }

    /// Start the request on its own task; the result comes back on `events`.
    pub fn handle(self: &Arc<Self>, req: Request) {
        let me = Arc::clone(self);
        match req {
            Request::Refresh {
                generation,
                exact_pass,
                also,
            } => {
                tokio::spawn(async move {
                    let opts = SnapshotOptions {
                        exact_pass,
                        ..SnapshotOptions::default()
                    };
                    me.refresh_and_send(generation, opts, also).await;
                });
            }
            Request::LoadPage(req) => {
                tokio::spawn(async move {
                    let result = me.load_page(&req).await.map_err(|e| db_error(&e));
                    let _ = me.events.send(DbEvent::Page {
                        generation: req.generation,
                        result,
                    });
                });
            }
            Request::LoadRecord(id) => {
                tokio::spawn(async move {
                    let result = async {
                        let mut conn = me.pool.acquire().await?;
                        records::get(&mut conn, &me.table, id, MAX_PAYLOAD_BYTES).await
                    }
                    .await
                    .map_err(|e| db_error(&e));
                    let _ = me.events.send(DbEvent::Record { id, result });
                });
            }
            Request::StopCleanup => {
                if let Some(token) = self.cleanup_cancel.lock().ok().and_then(|g| g.clone()) {
                    token.cancel();
                }
            }
            Request::Run(what) => {
                tokio::spawn(async move {
                    let started = Instant::now();
                    let result = me.run_maintenance(&what).await.map_err(|e| db_error(&e));
                    let _ = me.events.send(DbEvent::Done {
                        what,
                        elapsed: started.elapsed(),
                        result,
                    });
                });
            }
        }
    }
}

impl Worker {
    async fn load_page(&self, req: &PageRequest) -> Result<(records::Page, bool)> {
        let mut conn = self.pool.acquire().await?;
        let page = records::page(
            &mut conn,
            &self.table,
            &req.filter,
            req.sort,
            req.after.as_ref(),
            PAGE_SIZE,
        )
        .await?;
        let indexed = records::sort_is_indexed(&mut conn, &self.table, req.sort).await?;
        Ok((page, indexed))
    }

    async fn run_maintenance(
        &self,
        what: &crate::app::action::Maintenance,
    ) -> Result<crate::app::Finished> {
        use crate::app::action::Maintenance as M;
        use crate::app::{Finished, Progress};
        use crate::db::{cron, maintenance};
        match what {
            M::Cleanup => {
                let token = CancellationToken::new();
                if let Ok(mut g) = self.cleanup_cancel.lock() {
                    *g = Some(token.clone());
                }
                let events = self.events.clone();
                let result = maintenance::cleanup(
                    &self.pool,
                    &self.table,
                    &maintenance::CleanupOptions::default(),
                    &token,
                    |p| {
                        let _ = events.send(DbEvent::Progress(Progress {
                            deleted: p.deleted,
                            remaining: p.remaining_estimate,
                            batches: p.batches,
                            rows_per_sec: p.rows_per_sec,
                            elapsed: p.elapsed,
                            batch_size: p.batch_size,
                            pages: p.pages_done.zip(p.pages_total),
                        }));
                    },
                )
                .await;
                if let Ok(mut g) = self.cleanup_cancel.lock() {
                    *g = None;
                }
                let s = result?;
                Ok(Finished {
                    rows: Some(s.deleted),
                    detail: format!(
                        "deleted {} rows in {} batches by {} ({})",
                        crate::format::count(s.deleted as i64),
                        s.batches,
                        match s.method {
                            maintenance::Method::Walk => "index walk",
                            maintenance::Method::Sweep => "heap sweep",
                        },
                        s.stopped.describe()
                    ),
                })
            }
            M::Analyze | M::Vacuum => {
                // Its own connection, outside any transaction; the refreshes keep theirs.
                let mut conn = self.pool.acquire().await?;
                let took = if *what == M::Analyze {
                    maintenance::analyze(&mut conn, &self.table).await?
                } else {
                    maintenance::vacuum(&mut conn, &self.table, true).await?
                };
                // The pool's session must not keep the maintenance settings.
                conn.close_on_drop();
                Ok(Finished {
                    rows: None,
                    detail: format!("took {:.2} s", took.as_secs_f64()),
                })
            }
            M::ScheduleCron => {
                let mut conn = self.pool.acquire().await?;
                let id = cron::schedule_hourly(&mut conn).await?;
                Ok(Finished {
                    rows: None,
                    detail: format!("job {} '{}' runs hourly", id, cron::JOB_NAME),
                })
            }
            M::UnscheduleCron => {
                let mut conn = self.pool.acquire().await?;
                let gone = cron::unschedule(&mut conn).await?;
                Ok(Finished {
                    rows: None,
                    detail: if gone {
                        format!("job '{}' unscheduled", cron::JOB_NAME)
                    } else {
                        format!("there was no job '{}'", cron::JOB_NAME)
                    },
                })
            }
            M::DeleteRecord(version) => {
                let mut conn = self.pool.acquire().await?;
                let id = version.request_id;
                match records::delete(&mut conn, &self.table, version).await? {
                    records::DeleteOutcome::Deleted => Ok(Finished {
                        rows: Some(1),
                        detail: format!("record {id} deleted"),
                    }),
                    records::DeleteOutcome::Gone => Ok(Finished {
                        rows: Some(0),
                        detail: format!("record {id} was already gone; nothing deleted"),
                    }),
                    // Not a success: the operator asked to delete a row that no longer exists
                    // as shown, and must look again before deciding.
                    records::DeleteOutcome::Changed => Err(anyhow::anyhow!(
                        "the record changed since it was shown (key reused by the application?); \
                         nothing deleted; press r to reload"
                    )),
                }
            }
        }
    }
}
