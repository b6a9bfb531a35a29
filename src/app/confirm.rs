//! What the operator is asked before an action, and why an action is refused.

use super::*;

impl App {
    pub(super) fn confirm_question(&self, what: &Maintenance) -> String {
        let table = &self.session.table;
        match what {
            Maintenance::Cleanup => {
                let expired = self.dash.current.as_ref().map(|s| {
                    let approx = if s.rows.expired_exact { "" } else { "~" };
                    // Expired rows still in flight stay: the count is an upper bound then.
                    let up_to = if s.mapping.has_inflight() && !s.mapping.is_guide() {
                        "up to "
                    } else {
                        ""
                    };
                    format!(
                        "{up_to}{approx}{} expired rows",
                        crate::format::count(s.rows.expired)
                    )
                });
                // What may go, by the table's mapping, and what the foreign keys of other
                // tables will do, before the operator says yes.
                let mapping = self.dash.current.as_ref().map(|s| &s.mapping);
                let rule = mapping
                    .and_then(|m| m.cleanup_rule.clone())
                    .unwrap_or_else(|| "expires_at <= cutoff".into())
                    .replace("cutoff", "the server's now()");
                // No index on expires_at: say what the cleanup will read before it starts
                // (the dashboard's cleanup is the auto choice: a sweep of the heap).
                let unindexed = self
                    .dash
                    .current
                    .as_ref()
                    .filter(|s| {
                        s.expected_indexes
                            .iter()
                            .any(|i| i.column == "expires_at" && i.missing())
                    })
                    .map(|s| {
                        format!(
                            " Note: {}.",
                            crate::db::maintenance::unindexed::warning(
                                crate::db::maintenance::Method::Sweep,
                                s.sizes.table_bytes,
                                None
                            )
                        )
                    })
                    .unwrap_or_default();
                let mut q = format!(
                    "Delete {} from {table} in short batches ({})?",
                    expired.unwrap_or_else(|| "all expired rows".into()),
                    crate::sanitize::line(&rule)
                );
                for r in mapping.map(|m| m.referenced_by.as_slice()).unwrap_or(&[]) {
                    q.push_str(&format!(
                        " Referenced by {}.",
                        crate::sanitize::line(&r.describe())
                    ));
                }
                q.push_str(&unindexed);
                q
            }
            Maintenance::Analyze => format!("Run ANALYZE on {table}?"),
            Maintenance::Vacuum => {
                format!("Run VACUUM (ANALYZE) on {table}? It reads the whole table.")
            }
            Maintenance::ScheduleCron => {
                "Schedule pg_cron job 'cleanup-idempotency' hourly (0 * * * *)?".into()
            }
            Maintenance::UnscheduleCron => "Unschedule pg_cron job 'cleanup-idempotency'?".into(),
            Maintenance::DeleteRecord(_) => format!("Delete this record from {table}?"),
            Maintenance::CancelBackend(t) => format!(
                "Cancel the current query of pid {}? Its transaction stays open if it is idle in one.",
                t.pid
            ),
            Maintenance::TerminateBackend(t) => format!(
                "Terminate pid {}? Its session ends and its open transaction is rolled back.",
                t.pid
            ),
        }
    }

    /// The backend holding the xmin horizon as last shown.
    pub fn horizon_holder(&self) -> Option<&crate::db::horizon::Holder> {
        self.dash
            .current
            .as_ref()?
            .vacuum
            .xmin_horizon
            .as_ref()?
            .holder
            .as_ref()
    }

    /// `C` / `T`: ask to signal the holder when it is a backend; for a slot, a prepared
    /// transaction or a standby, say what the operator can run instead (never run here).
    pub(super) fn ask_signal(&mut self, terminate: bool) {
        let Some(h) = self.horizon_holder().cloned() else {
            self.say("nothing holds the xmin horizon back: no backend to signal");
            return;
        };
        let Some(target) = h.signal_target() else {
            let what = crate::sanitize::line(&h.describe());
            let text = match h.operator_sql() {
                Some(sql) => format!(
                    "{what} holds the horizon; idemtop never does this itself, run it if you are sure: {sql}"
                ),
                None => format!(
                    "{what} holds the horizon: end the query on that standby (or turn its hot_standby_feedback off)"
                ),
            };
            self.say(text);
            return;
        };
        let what = if terminate {
            Maintenance::TerminateBackend(target)
        } else {
            Maintenance::CancelBackend(target)
        };
        if !self.refusal(&what) {
            return;
        }
        let question = self.confirm_question(&what);
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        let mut details = vec![
            ("pid".to_string(), target.pid.to_string()),
            ("user".to_string(), opt(&h.user)),
            ("app".to_string(), opt(&h.application)),
            ("client".to_string(), opt(&h.client)),
            ("state".to_string(), opt(&h.state)),
        ];
        if let Some(x) = h.xact_start {
            let age = h
                .age_secs
                .map(|a| format!(" ({} ago)", crate::format::duration_secs(a.max(0.0))))
                .unwrap_or_default();
            details.push((
                "began".to_string(),
                format!("{}{age}", x.format("%Y-%m-%d %H:%M:%S UTC")),
            ));
        }
        details.push(("query".to_string(), opt(&h.query)));
        if let Some(n) = self
            .dash
            .current
            .as_ref()
            .and_then(|s| s.vacuum.xmin_horizon.as_ref())
            .and_then(|x| x.unremovable)
        {
            details.push((
                "keeps".to_string(),
                format!("~{} dead rows from VACUUM", crate::format::count(n)),
            ));
        }
        self.overlay = Some(Overlay::Confirm(ConfirmDialog {
            what,
            question,
            details,
            warning: Some(
                "Only if it is still this backend in this transaction (checked before the signal); \
                 the application sees an error."
                    .to_string(),
            ),
        }));
    }

    /// Whether a write may be asked for now; if not, says why in the footer and returns false.
    pub(super) fn refusal(&mut self, what: &Maintenance) -> bool {
        if self.session.read_only {
            self.say(format!("read-only mode: {} is disabled", what.verb()));
            return false;
        }
        if self
            .dash
            .current
            .as_ref()
            .is_some_and(|s| s.standby.is_some())
        {
            self.say(format!(
                "{} is disabled: {}",
                what.verb(),
                crate::db::horizon::STANDBY_REFUSAL
            ));
            return false;
        }
        if let Some(r) = &self.running {
            self.say(format!(
                "{} is still running: one maintenance action at a time",
                r.what.verb()
            ));
            return false;
        }
        // The table's mapping gives no readable expiry (none mapped, a permanent ledger, an
        // unreadable column): cleanup is refused before it is asked, with the reason.
        if matches!(what, Maintenance::Cleanup) {
            if let Some(why) = self
                .dash
                .current
                .as_ref()
                .and_then(|s| s.mapping.cleanup_refused.clone())
            {
                self.say(crate::sanitize::line(&why));
                return false;
            }
        }
        true
    }

    /// The server's clock now: its newest reading (the records page's or the last refresh's)
    /// plus the time elapsed since on this machine's monotonic clock. Ages drawn from it tick.
    pub fn server_now(&self) -> Option<DateTime<Utc>> {
        let since = |at: Instant| {
            chrono::Duration::from_std(self.now.saturating_duration_since(at)).unwrap_or_default()
        };
        [
            self.records
                .page
                .as_ref()
                .zip(self.records.loaded_at)
                .map(|(p, at)| p.server_now + since(at)),
            self.dash
                .current
                .as_ref()
                .zip(self.dash.updated_at)
                .map(|(s, at)| s.taken_at + since(at)),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    /// The delete dialog's facts about the row as shown, and the warning when the key is live.
    pub(super) fn delete_details(
        &self,
        row: &crate::db::records::RecordSummary,
    ) -> (Vec<(String, String)>, Option<String>) {
        use records::{expires_relative, ts_full};
        let mut details = vec![
            ("key".to_string(), row.request_id.to_string()),
            ("operation".to_string(), row.operation.clone()),
            (
                "status".to_string(),
                row.status_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "NULL".into()),
            ),
        ];
        let now = self.server_now();
        let expires = match (row.expires_at, now) {
            (crate::db::ts::Ts::Infinity, _) => "never (infinity)".to_string(),
            (ts, Some(now)) => format!("{} ({})", ts_full(ts), expires_relative(ts, now)),
            (ts, None) => ts_full(ts),
        };
        details.push(("expires".to_string(), expires));
        let live = match (row.expires_at, now) {
            (crate::db::ts::Ts::Infinity, _) => Some(true),
            (crate::db::ts::Ts::NegInfinity, _) => Some(false),
            (_, Some(now)) => Some(row.is_live(now)),
            (_, None) => None,
        };
        let warning = match live {
            Some(true) => Some(
                "LIVE key: a client retry with it will run the operation again (a second charge)."
                    .to_string(),
            ),
            Some(false) => {
                details.push((
                    "state".to_string(),
                    "expired: a client retry already runs the operation again".to_string(),
                ));
                None
            }
            None => Some(
                "The server's clock was not read yet: if the key is live, a client retry with it \
                 will run the operation again (a second charge)."
                    .to_string(),
            ),
        };
        (details, warning)
    }

    pub(super) fn ask(&mut self, what: Maintenance) {
        if !self.refusal(&what) {
            return;
        }
        let question = self.confirm_question(&what);
        let (details, warning) = match (&what, self.records.action_target()) {
            (Maintenance::DeleteRecord(v), Some(row)) if row.version() == *v => {
                self.delete_details(row)
            }
            _ => (Vec::new(), None),
        };
        self.overlay = Some(Overlay::Confirm(ConfirmDialog {
            what,
            question,
            details,
            warning,
        }));
    }
}
