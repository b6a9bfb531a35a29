//! Records pages and maintenance actions run by the worker, with progress and results sent back.

use super::*;

impl Worker {
    pub(super) async fn load_page(&self, req: &PageRequest) -> Result<(records::Page, bool)> {
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

    /// A page (or a lookup) of a table of another shape, by its mapping, read afresh on a
    /// pooled connection (the table model and the mapping: a few catalog reads).
    pub(super) async fn load_mapped(
        &self,
        req: &crate::app::mapped::MappedRequest,
    ) -> Result<crate::app::mapped::MappedResult> {
        use crate::db::snapshot::TableMapping;
        let mut conn = self.pool.acquire().await?;
        let info = crate::db::table::resolve(&mut conn, &self.table).await?;
        let tm = TableMapping::resolve(&self.config.tables, &self.table, &info);
        let sorts = records::sorts(&tm, &info);
        if let Some(typed) = &req.lookup {
            let cols = records::key_columns(&tm, &info).map_err(anyhow::Error::msg)?;
            let key = records::parse_key(typed, &cols).map_err(anyhow::Error::msg)?;
            let record = records::mapped_get(
                &mut conn,
                &self.table,
                &info,
                &tm,
                &key,
                crate::app::records::MAX_PAYLOAD_BYTES,
            )
            .await?;
            return Ok(crate::app::mapped::MappedResult {
                page: None,
                sorts,
                record: Some(record),
            });
        }
        let page = records::mapped_page(
            &mut conn,
            &self.table,
            &info,
            &tm,
            req.sort,
            req.after.as_ref(),
            PAGE_SIZE,
        )
        .await?;
        Ok(crate::app::mapped::MappedResult {
            page: Some(page),
            sorts,
            record: None,
        })
    }

    pub(super) async fn run_maintenance(
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
                // A pool of its own, closed when done: a backend flushes its row counters to
                // pg_stat when it exits, while an idle one may hold them back for 10 s; the
                // refresh right after the cleanup then counts what it deleted.
                let pool = self.connect.pool(2).await?;
                let result = maintenance::cleanup(
                    &pool,
                    &self.table,
                    &maintenance::CleanupOptions {
                        tables: self.config.tables.clone(),
                        ..maintenance::CleanupOptions::default()
                    },
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
                pool.close().await;
                let s = result?;
                let dropped = s
                    .partitions
                    .iter()
                    .filter(|p| p.dropped.as_ref().is_some_and(|d| d.dropped))
                    .count();
                let mut detail = format!(
                    "deleted {} rows in {} batches by {}",
                    crate::format::count(s.deleted as i64),
                    s.batches,
                    match s.method {
                        maintenance::Method::Walk => "index walk",
                        maintenance::Method::Sweep => "heap sweep",
                    },
                );
                if dropped > 0 {
                    detail.push_str(&format!(", {dropped} partitions dropped"));
                }
                if s.stopped == maintenance::StopReason::Incomplete {
                    detail.push_str(&format!(
                        " (incomplete: {} expired rows left, locked by other sessions)",
                        crate::format::count(s.skipped as i64)
                    ));
                } else {
                    detail.push_str(&format!(" ({})", s.stopped.describe()));
                }
                Ok(Finished {
                    rows: Some(s.deleted),
                    detail,
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
                let id = cron::schedule_hourly(&mut conn, &self.table).await?;
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
            M::CancelBackend(t) | M::TerminateBackend(t) => {
                use crate::db::horizon::{signal, SignalOutcome};
                let terminate = matches!(what, M::TerminateBackend(_));
                let mut conn = self.pool.acquire().await?;
                match signal(&mut conn, t, terminate).await? {
                    SignalOutcome::Signalled => Ok(Finished {
                        rows: None,
                        detail: format!(
                            "pid {} {}",
                            t.pid,
                            if terminate {
                                "terminated; VACUUM can now remove the dead rows it kept"
                            } else {
                                "had its query cancelled (an idle transaction stays open: T ends it)"
                            }
                        ),
                    }),
                    SignalOutcome::Gone => Ok(Finished {
                        rows: None,
                        detail: format!("pid {} had already ended; nothing sent", t.pid),
                    }),
                    SignalOutcome::Changed => Err(anyhow::anyhow!(
                        "pid {} is no longer the backend or transaction shown (it ended, or began \
                         another transaction); nothing sent; press r to look again",
                        t.pid
                    )),
                }
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
