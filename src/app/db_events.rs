//! Results from the database tasks, folded into the state.

use super::*;

impl App {
    /// The records view loads its first page when it is first shown.
    pub(super) fn records_need_loading(&mut self) -> Option<Request> {
        if self.mapped_mode() {
            let m = &self.records.mapped;
            return (self.screen == Screen::Records
                && m.page.is_none()
                && m.loading.is_none()
                && m.error.is_none()
                && m.lookup.is_none())
            .then(|| Request::LoadMapped(self.records.mapped.reload()));
        }
        let r = &self.records;
        (self.screen == Screen::Records
            && r.page.is_none()
            && r.loading.is_none()
            && r.error.is_none()
            && r.detail.is_none())
        .then(|| Request::LoadPage(self.records.reload()))
    }

    pub(super) fn on_db(&mut self, ev: DbEvent) -> Vec<Request> {
        match ev {
            DbEvent::Cron(result) => {
                self.cron = Some(result.map_err(|e| e.message));
                Vec::new()
            }
            DbEvent::Checks(result) => {
                match result {
                    Ok(checks) => {
                        self.health.selected =
                            self.health.selected.min(checks.len().saturating_sub(1));
                        self.health.checks = Some(checks);
                        self.health.error = None;
                    }
                    Err(e) => self.health.error = Some(e.message),
                }
                Vec::new()
            }
            DbEvent::Partitions(result) => {
                match result {
                    Ok(parts) => {
                        self.partitions.selected =
                            self.partitions.selected.min(parts.len().saturating_sub(1));
                        self.partitions.parts = Some(parts);
                        self.partitions.error = None;
                    }
                    Err(e) => self.partitions.error = Some(e.message),
                }
                Vec::new()
            }
            DbEvent::Mapped { generation, result } => {
                self.records
                    .mapped
                    .on_result(generation, result.map(|r| *r).map_err(|e| e.message));
                Vec::new()
            }
            DbEvent::Page { generation, result } => {
                self.records
                    .on_page(generation, result.map_err(|e| e.message), self.now);
                Vec::new()
            }
            DbEvent::Record { id, result } => {
                self.records.on_record(id, result.map_err(|e| e.message));
                Vec::new()
            }
            DbEvent::Snapshot { generation, result } => {
                if self.refresh.in_flight != Some(generation) {
                    return Vec::new(); // stale: a newer request superseded it
                }
                self.refresh.in_flight = None;
                match result {
                    Ok(snap) => {
                        self.dash.apply(*snap);
                        self.dash.updated_at = Some(self.now);
                        self.conn = ConnState::Connected;
                        self.refresh.due = self.now + self.refresh.interval;
                    }
                    Err(e) => {
                        self.dash.fail(e.message.clone());
                        self.dash.lock = None;
                        if e.connection_lost {
                            let (failures, since) = match &self.conn {
                                ConnState::Disconnected {
                                    failures, since, ..
                                } => (failures + 1, *since),
                                _ => (1, self.now),
                            };
                            self.refresh.due = self.now + Self::backoff(failures - 1);
                            self.conn = ConnState::Disconnected {
                                failures,
                                error: e.message,
                                since,
                            };
                        } else {
                            // The server answered: connected, but this refresh measured
                            // nothing (the header says "last refresh failed").
                            self.conn = ConnState::Connected;
                            self.refresh.due = self.now + self.refresh.interval;
                        }
                    }
                }
                Vec::new()
            }
            DbEvent::Locked { generation, lock } => {
                if self.refresh.in_flight != Some(generation) {
                    return Vec::new(); // stale: a newer request superseded it
                }
                self.refresh.in_flight = None;
                self.conn = ConnState::Connected;
                // The lock is said by itself (header, blocker panel), not as an error.
                self.dash.error = None;
                if self.dash.lock.is_none() {
                    self.dash.lock_since = Some(self.now);
                }
                self.dash.lock_at = Some(self.now);
                self.dash.lock = Some(*lock);
                self.refresh.due = self.now + self.refresh.interval;
                Vec::new()
            }
            DbEvent::Space(result) => {
                self.health.space = Some(match result {
                    Ok(f) => SpaceState::Measured(f),
                    Err(e) => SpaceState::Failed(e.message),
                });
                Vec::new()
            }
            DbEvent::Progress(p) => {
                if let Some(r) = &mut self.running {
                    r.progress = Some(p);
                }
                Vec::new()
            }
            DbEvent::Done {
                what,
                elapsed,
                result,
            } => {
                self.running = None;
                let ok = result.is_ok();
                let entry = match result {
                    Ok(f) => {
                        self.say(format!("{} done: {}", what.verb(), f.detail));
                        LogEntry {
                            at: Utc::now(),
                            what: what.verb().into(),
                            elapsed: Some(elapsed),
                            rows: f.rows,
                            ok: true,
                            message: f.detail,
                        }
                    }
                    Err(e) => {
                        self.say(format!("{} failed: {}", what.verb(), e.message));
                        LogEntry {
                            at: Utc::now(),
                            what: what.verb().into(),
                            elapsed: Some(elapsed),
                            rows: None,
                            ok: false,
                            message: e.message,
                        }
                    }
                };
                self.log(entry);
                let mut out: Vec<Request> = self.maybe_refresh(true).into_iter().collect();
                if let (Maintenance::DeleteRecord(v), true) = (&what, ok) {
                    if self
                        .records
                        .detail
                        .as_ref()
                        .is_some_and(|d| d.id == v.request_id)
                    {
                        self.records.detail = None;
                    }
                    if self.records.page.is_some() {
                        out.push(Request::LoadPage(self.records.reload_current()));
                    }
                }
                out
            }
        }
    }
}
