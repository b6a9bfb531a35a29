//! Runs database requests on tasks and reports back over a channel, so the UI never waits on
//! a query. Knows nothing of the screen.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use sqlx::{PgConnection, PgPool};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::app::records::{PageRequest, MAX_PAYLOAD_BYTES, PAGE_SIZE};
use crate::app::{DbError, DbEvent, Request};
use crate::db::connect::{is_connection_lost, ConnectConfig};
use crate::db::records;
use crate::db::snapshot::{self, Sampler, Snapshot, SnapshotOptions};
use crate::db::table;
use crate::ident::TableRef;
use crate::sanitize;

pub struct Worker {
    /// For maintenance actions, each on its own connection.
    pub pool: PgPool,
    pub table: TableRef,
    pub events: UnboundedSender<DbEvent>,
    config: ConnectConfig,
    /// The refreshes' own session, made again after the server went away. Refreshes never
    /// overlap (the state allows one in flight), so this lock is never contended.
    refresh_conn: tokio::sync::Mutex<(Option<PgConnection>, Sampler)>,
    cleanup_cancel: Mutex<Option<CancellationToken>>,
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
        config: ConnectConfig,
        pool: PgPool,
        table: TableRef,
        events: UnboundedSender<DbEvent>,
    ) -> Arc<Self> {
        Arc::new(Self {
            pool,
            table,
            events,
            config,
            refresh_conn: tokio::sync::Mutex::new((None, Sampler::default())),
            cleanup_cancel: Mutex::new(None),
        })
    }

    async fn refresh(&self, opts: SnapshotOptions) -> Result<Snapshot> {
        let mut guard = self.refresh_conn.lock().await;
        let (conn, sampler) = &mut *guard;
        if conn.is_none() {
            *conn = Some(self.config.connect().await?);
        }
        let c = conn.as_mut().expect("connected above");
        let result = async {
            let info = table::resolve(c, &self.table).await?;
            sampler
                .take(
                    c,
                    &self.table,
                    &info,
                    opts,
                    crate::app::EXACT_PASS_EVERY * 3,
                )
                .await
        }
        .await;
        if let Err(e) = &result {
            if is_connection_lost(e) {
                *conn = None;
            }
        }
        result
    }

    /// Start the request on its own task; the result comes back on `events`.
    pub fn handle(self: &Arc<Self>, req: Request) {
        let me = Arc::clone(self);
        match req {
            Request::Refresh {
                generation,
                exact_pass,
                cron,
            } => {
                tokio::spawn(async move {
                    let opts = SnapshotOptions {
                        exact_pass,
                        ..SnapshotOptions::default()
                    };
                    let result = me
                        .refresh(opts)
                        .await
                        .map(Box::new)
                        .map_err(|e| db_error(&e));
                    let ok = result.is_ok();
                    let _ = me.events.send(DbEvent::Snapshot { generation, result });
                    if cron && ok {
                        let status = me.cron_status().await.map_err(|e| db_error(&e));
                        let _ = me.events.send(DbEvent::Cron(status));
                    }
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
    async fn cron_status(&self) -> Result<crate::db::cron::CronStatus> {
        let mut conn = self.pool.acquire().await?;
        crate::db::cron::status(&mut conn).await
    }

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
                        "deleted {} rows in {} batches ({})",
                        s.deleted,
                        s.batches,
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
            M::DeleteRecord(id) => {
                let mut conn = self.pool.acquire().await?;
                let existed = records::delete(&mut conn, &self.table, *id).await?;
                Ok(Finished {
                    rows: Some(u64::from(existed)),
                    detail: if existed {
                        format!("record {id} deleted")
                    } else {
                        format!("record {id} was already gone")
                    },
                })
            }
        }
    }
}
