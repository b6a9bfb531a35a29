//! The xmin horizon of the watched table: the oldest transaction id that VACUUM must still
//! treat as running for this table, and who holds it there. While it is held, a dead row
//! version newer than it cannot be removed ("dead row versions cannot be removed yet"), so
//! VACUUM runs and nothing comes back.
//!
//! Four kinds of holder, each read from its own view with the monitoring role's privileges:
//! a backend's snapshot or transaction (`pg_stat_activity.backend_xmin` / `backend_xid`, in
//! this database), a prepared transaction (`pg_prepared_xacts`, in this database), a
//! replication slot (`pg_replication_slots.xmin`; a logical slot's `catalog_xmin` holds back
//! only the system catalogs, so it is listed but does not hold this table), and a standby's
//! `hot_standby_feedback` (`pg_stat_replication.backend_xmin`). Without `pg_read_all_stats`
//! the first and last views hide other roles' sessions: [`XminHorizon::hidden`] says so.
//!
//! How many dead rows the holder keeps is an estimate, see [`estimate_unremovable`].

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::sanitize;

/// What holds the horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HolderKind {
    Backend,
    PreparedXact,
    ReplicationSlot,
    StandbyFeedback,
}

impl HolderKind {
    /// The `holder` label of the metrics and a word for the screen.
    pub fn as_str(self) -> &'static str {
        match self {
            HolderKind::Backend => "backend",
            HolderKind::PreparedXact => "prepared_xact",
            HolderKind::ReplicationSlot => "replication_slot",
            HolderKind::StandbyFeedback => "standby_feedback",
        }
    }
}

/// One holder of an xmin. Text is raw from the server: sanitize before display.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Holder {
    pub kind: HolderKind,
    /// The backend, the walsender of a standby, or the slot's active process.
    pub pid: Option<i32>,
    /// Role of the backend or walsender; owner of a prepared transaction.
    pub user: Option<String>,
    pub application: Option<String>,
    pub client: Option<String>,
    /// `pg_stat_activity.state` (`idle in transaction`, ...) or the walsender's state.
    pub state: Option<String>,
    pub backend_start: Option<DateTime<Utc>>,
    /// When its transaction began (a prepared transaction: when it was prepared).
    pub xact_start: Option<DateTime<Utc>>,
    pub query_start: Option<DateTime<Utc>>,
    /// Current or last statement, cut to 200 characters.
    pub query: Option<String>,
    /// The prepared transaction's gid, or the slot's name.
    pub name: Option<String>,
    /// `physical` or `logical` (slots).
    pub slot_type: Option<String>,
    /// The slot is in use.
    pub active: Option<bool>,
    /// The xid it holds (`xmin`, or `catalog_xmin` for a logical slot).
    pub xmin: Option<String>,
    /// A slot holding only `catalog_xmin`: it keeps catalog rows, not this table's.
    pub catalog_only: bool,
    /// `age(xmin)`: transactions since.
    pub age_xids: i64,
    /// Seconds since its transaction began (unknown for slots and standbys).
    pub age_secs: Option<f64>,
    /// A slot's retained WAL (`pg_current_wal_lsn() - restart_lsn`) or a standby's replay gap
    /// (`sent_lsn - replay_lsn`), in bytes.
    pub lag_bytes: Option<i64>,
}

/// How [`XminHorizon::unremovable`] was estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnremovableBasis {
    /// Nothing holds the horizon: VACUUM can remove every dead row.
    NoHolder,
    /// The holder began before the last VACUUM (or when it began is unknown): the dead rows
    /// counted now are those that VACUUM had to leave plus those deleted since, all newer
    /// than the horizon.
    AllDeadRows,
    /// The holder began after the last VACUUM: the dead rows counted, scaled by the share of
    /// the time since that VACUUM during which the holder was there (deletes spread evenly).
    Prorated,
    /// The dead-row counter is not maintained here (a standby).
    NotMaintained,
}

/// The table's xmin horizon and who holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct XminHorizon {
    /// The oldest holder that keeps this table's dead rows (catalog-only slots excluded).
    pub holder: Option<Holder>,
    /// Every holder seen, oldest first (at most [`MAX_HOLDERS`]).
    pub holders: Vec<Holder>,
    /// `n_dead_tup` (None on a standby, where it is not maintained).
    pub dead_rows: Option<i64>,
    /// Dead rows not yet removable because of the holder: an estimate (see `basis`).
    pub unremovable: Option<i64>,
    pub basis: UnremovableBasis,
    /// What this role cannot see, one sentence each (empty when nothing is hidden).
    pub hidden: Vec<String>,
}

/// Holders listed at most.
pub const MAX_HOLDERS: usize = 10;

impl Holder {
    /// The backend idemtop may signal: a plain backend (not a prepared transaction, slot or
    /// standby), with its pid and start time.
    pub fn signal_target(&self) -> Option<SignalTarget> {
        match (self.kind, self.pid, self.backend_start) {
            (HolderKind::Backend, Some(pid), Some(backend_start)) => Some(SignalTarget {
                pid,
                backend_start,
                xact_start: self.xact_start,
            }),
            _ => None,
        }
    }

    /// One line: `pid 4242 (alice, psql, idle in transaction for 3h 02m)`,
    /// `prepared transaction 'gid' (owner bob, 2h 10m)`, `replication slot 's' (logical,
    /// inactive, catalog_xmin only)`, `standby 'walreceiver' via walsender pid 99 (10.0.0.2)`.
    pub fn describe(&self) -> String {
        let s = |o: &Option<String>| o.as_deref().map(sanitize::line).filter(|v| !v.is_empty());
        let age = self
            .age_secs
            .map(|a| crate::format::duration_secs(a.max(0.0)));
        match self.kind {
            HolderKind::Backend => {
                let mut who: Vec<String> = [s(&self.user), s(&self.application)]
                    .into_iter()
                    .flatten()
                    .collect();
                match (s(&self.state), &age) {
                    (Some(st), Some(a)) => who.push(format!("{st} for {a}")),
                    (Some(st), None) => who.push(st),
                    (None, Some(a)) => who.push(format!("in a transaction for {a}")),
                    (None, None) => {}
                }
                let pid = self.pid.map_or("?".to_string(), |p| p.to_string());
                if who.is_empty() {
                    format!("pid {pid}")
                } else {
                    format!("pid {pid} ({})", who.join(", "))
                }
            }
            HolderKind::PreparedXact => {
                let mut s2 = format!(
                    "prepared transaction '{}'",
                    s(&self.name).unwrap_or_default()
                );
                let mut parts = Vec::new();
                if let Some(o) = s(&self.user) {
                    parts.push(format!("owner {o}"));
                }
                if let Some(a) = age {
                    parts.push(format!("prepared {a} ago"));
                }
                if !parts.is_empty() {
                    s2.push_str(&format!(" ({})", parts.join(", ")));
                }
                s2
            }
            HolderKind::ReplicationSlot => {
                let mut parts = vec![s(&self.slot_type).unwrap_or_else(|| "?".into())];
                parts.push(
                    if self.active == Some(true) {
                        "active"
                    } else {
                        "inactive"
                    }
                    .into(),
                );
                if self.catalog_only {
                    parts.push("catalog_xmin only: holds back the catalogs, not this table".into());
                }
                if let Some(b) = self.lag_bytes {
                    parts.push(format!("{} of WAL retained", crate::format::bytes(b)));
                }
                format!(
                    "replication slot '{}' ({})",
                    s(&self.name).unwrap_or_default(),
                    parts.join(", ")
                )
            }
            HolderKind::StandbyFeedback => {
                let mut s2 = format!(
                    "standby '{}' (hot_standby_feedback) via walsender pid {}",
                    s(&self.application).unwrap_or_default(),
                    self.pid.map_or("?".to_string(), |p| p.to_string())
                );
                if let Some(c) = s(&self.client) {
                    s2.push_str(&format!(" from {c}"));
                }
                s2
            }
        }
    }

    /// The statement the operator may run to release a slot or a prepared transaction
    /// (idemtop never runs it): literals quoted.
    pub fn operator_sql(&self) -> Option<String> {
        let name = self.name.as_deref()?;
        match self.kind {
            HolderKind::ReplicationSlot => Some(format!(
                "SELECT pg_drop_replication_slot({});",
                sql_literal(name)
            )),
            HolderKind::PreparedXact => Some(format!("ROLLBACK PREPARED {};", sql_literal(name))),
            _ => None,
        }
    }
}

/// A string as an SQL literal: `'it''s'` (standard_conforming_strings on; a backslash needs
/// no escape then). Control characters are replaced so the line can be shown and pasted.
pub fn sql_literal(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    format!("'{}'", clean.replace('\'', "''"))
}

/// The backend the operator saw, identified beyond its pid: a pid is reused, so before a
/// signal idemtop checks that the same backend (same `backend_start`) is still in the same
/// transaction (same `xact_start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalTarget {
    pub pid: i32,
    pub backend_start: DateTime<Utc>,
    pub xact_start: Option<DateTime<Utc>>,
}

/// The estimate of the dead rows a holder keeps. `n_dead_tup` after a VACUUM is what that
/// VACUUM could not remove (PostgreSQL sets it to the recently-dead rows it left), and every
/// delete since adds to it. So when the holder began before the last VACUUM, all of them are
/// newer than the horizon; when it began later, only the rows deleted since it began are, and
/// those are estimated by the share of the time. Without a holder, none.
pub fn estimate_unremovable(
    dead: i64,
    last_vacuum: Option<DateTime<Utc>>,
    holder_since: Option<DateTime<Utc>>,
    has_holder: bool,
    now: DateTime<Utc>,
) -> (i64, UnremovableBasis) {
    if !has_holder {
        return (0, UnremovableBasis::NoHolder);
    }
    let dead = dead.max(0);
    match (last_vacuum, holder_since) {
        (Some(v), Some(since)) if since > v && now > v => {
            let share = (now - since).num_milliseconds().max(0) as f64
                / (now - v).num_milliseconds().max(1) as f64;
            (
                (dead as f64 * share.clamp(0.0, 1.0)).round() as i64,
                UnremovableBasis::Prorated,
            )
        }
        _ => (dead, UnremovableBasis::AllDeadRows),
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    kind: String,
    pid: Option<i32>,
    usr: Option<String>,
    app: Option<String>,
    client: Option<String>,
    state: Option<String>,
    backend_start: Option<DateTime<Utc>>,
    xact_start: Option<DateTime<Utc>>,
    query_start: Option<DateTime<Utc>>,
    query: Option<String>,
    name: Option<String>,
    slot_type: Option<String>,
    active: Option<bool>,
    xmin: Option<String>,
    catalog_only: bool,
    xids: Option<i64>,
    secs: Option<f64>,
    lag: Option<i64>,
}

const HOLDERS_SQL: &str = "
WITH h AS (
    SELECT 'backend'::text AS kind, a.pid, a.usename::text AS usr, a.application_name::text AS app,
           host(a.client_addr) AS client, a.state::text AS state, a.backend_start, a.xact_start,
           a.query_start, left(a.query, 200) AS query, NULL::text AS name, NULL::text AS slot_type,
           NULL::bool AS active,
           (CASE WHEN a.backend_xid IS NOT NULL AND (a.backend_xmin IS NULL OR age(a.backend_xid) > age(a.backend_xmin))
                 THEN a.backend_xid ELSE a.backend_xmin END)::text AS xmin,
           false AS catalog_only,
           greatest(age(a.backend_xmin), age(a.backend_xid))::int8 AS xids,
           extract(epoch FROM now() - a.xact_start)::float8 AS secs,
           NULL::int8 AS lag
      FROM pg_stat_activity a
     WHERE (a.backend_xmin IS NOT NULL OR a.backend_xid IS NOT NULL)
       AND a.pid <> pg_backend_pid()
       AND a.backend_type NOT IN ('walsender', 'autovacuum worker')
       AND (a.datid IS NULL OR a.datid = (SELECT oid FROM pg_database WHERE datname = current_database()))
    UNION ALL
    SELECT 'prepared_xact', NULL, p.owner::text, NULL, NULL, NULL, NULL, p.prepared, NULL, NULL,
           p.gid, NULL, NULL, p.transaction::text, false, age(p.transaction)::int8,
           extract(epoch FROM now() - p.prepared)::float8, NULL
      FROM pg_prepared_xacts p
     WHERE p.database = current_database()
    UNION ALL
    SELECT 'replication_slot', s.active_pid, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           s.slot_name::text, s.slot_type, s.active, coalesce(s.xmin, s.catalog_xmin)::text,
           s.xmin IS NULL, age(coalesce(s.xmin, s.catalog_xmin))::int8, NULL,
           CASE WHEN pg_is_in_recovery() OR s.restart_lsn IS NULL THEN NULL
                ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::int8 END
      FROM pg_replication_slots s
     WHERE s.xmin IS NOT NULL OR s.catalog_xmin IS NOT NULL
    UNION ALL
    SELECT 'standby_feedback', r.pid, r.usename::text, r.application_name::text, host(r.client_addr),
           r.state::text, r.backend_start, NULL, NULL, NULL, NULL, NULL, NULL, r.backend_xmin::text,
           false, age(r.backend_xmin)::int8, NULL,
           pg_wal_lsn_diff(r.sent_lsn, r.replay_lsn)::int8
      FROM pg_stat_replication r
     WHERE r.backend_xmin IS NOT NULL
)
SELECT * FROM h ORDER BY catalog_only, xids DESC NULLS LAST, xact_start NULLS LAST LIMIT $1";

/// Who holds xmins now (oldest first) and what this role cannot see. The estimate of the
/// dead rows kept is left to [`XminHorizon::judge`], which knows the table's counters.
pub async fn read(conn: &mut PgConnection) -> Result<(Vec<Holder>, Vec<String>)> {
    let rows: Vec<Row> = sqlx::query_as(HOLDERS_SQL)
        .bind(MAX_HOLDERS as i64)
        .fetch_all(&mut *conn)
        .await?;
    let holders = rows
        .into_iter()
        .map(|r| Holder {
            kind: match r.kind.as_str() {
                "prepared_xact" => HolderKind::PreparedXact,
                "replication_slot" => HolderKind::ReplicationSlot,
                "standby_feedback" => HolderKind::StandbyFeedback,
                _ => HolderKind::Backend,
            },
            pid: r.pid,
            user: r.usr,
            application: r.app,
            client: r.client,
            state: r.state,
            backend_start: r.backend_start,
            xact_start: r.xact_start,
            query_start: r.query_start,
            query: r.query,
            name: r.name,
            slot_type: r.slot_type,
            active: r.active,
            xmin: r.xmin,
            catalog_only: r.catalog_only,
            age_xids: r.xids.unwrap_or(0),
            age_secs: r.secs,
            lag_bytes: r.lag,
        })
        .collect();
    // Sessions of other roles show neither their xmin nor their query without
    // pg_read_all_stats (or the role itself); walsenders show only their pid.
    let (role, privileged, hidden_sessions, hidden_walsenders): (String, bool, i64, i64) =
        sqlx::query_as(
            "SELECT current_user::text,
                    pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')
                      OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
                    (SELECT count(*) FROM pg_stat_activity a
                      WHERE a.query = '<insufficient privilege>' AND a.pid <> pg_backend_pid()
                        AND a.datid = (SELECT oid FROM pg_database WHERE datname = current_database()))::int8,
                    (SELECT count(*) FROM pg_stat_replication r WHERE r.state IS NULL)::int8",
        )
        .fetch_one(&mut *conn)
        .await?;
    let mut hidden = Vec::new();
    if !privileged && (hidden_sessions > 0 || hidden_walsenders > 0) {
        let mut what = Vec::new();
        if hidden_sessions > 0 {
            what.push(format!(
                "{hidden_sessions} session(s) of other roles (their backend_xmin, state and query)"
            ));
        }
        if hidden_walsenders > 0 {
            what.push(format!(
                "{hidden_walsenders} standby connection(s) (their hot_standby_feedback xmin)"
            ));
        }
        hidden.push(format!(
            "role {} cannot see {}: one of them may hold the horizon (GRANT pg_read_all_stats TO {})",
            sanitize::line(&role),
            what.join(" and "),
            crate::ident::display_quoted(&role)
        ));
    }
    Ok((holders, hidden))
}

impl XminHorizon {
    /// The horizon from the holders read, the table's dead-row counter and last vacuum.
    /// `dead_rows` is None where the counter is not maintained (a standby).
    pub fn judge(
        holders: Vec<Holder>,
        hidden: Vec<String>,
        dead_rows: Option<i64>,
        last_vacuum: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> XminHorizon {
        let holder = holders.iter().find(|h| !h.catalog_only).cloned();
        let (unremovable, basis) = match dead_rows {
            None => (None, UnremovableBasis::NotMaintained),
            Some(dead) => {
                let (n, b) = estimate_unremovable(
                    dead,
                    last_vacuum,
                    holder.as_ref().and_then(|h| h.xact_start),
                    holder.is_some(),
                    now,
                );
                (Some(n), b)
            }
        };
        XminHorizon {
            holder,
            holders,
            dead_rows,
            unremovable,
            basis,
            hidden,
        }
    }

    /// "dead rows not yet removable: ~N, held by pid 4242 (...)" or "nothing holds it".
    pub fn describe(&self) -> String {
        match (&self.holder, self.unremovable) {
            (Some(h), Some(n)) => format!(
                "dead rows not yet removable: ~{}, held by {}",
                crate::format::count(n),
                h.describe()
            ),
            (Some(h), None) => format!(
                "xmin horizon held by {} (dead rows: n/a on a standby)",
                h.describe()
            ),
            (None, _) => {
                "nothing holds the xmin horizon back: VACUUM can remove every dead row".to_string()
            }
        }
    }
}

/// What came of a cancel or terminate request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalOutcome {
    /// Sent.
    Signalled,
    /// The pid is gone: nothing to do.
    Gone,
    /// The pid is now another backend, or the same one in another transaction: nothing sent.
    Changed,
}

/// Cancel the query of (`terminate` false) or terminate the backend `t`, only if it is still
/// the backend, in the transaction, the operator saw. A missing privilege is said in one
/// sentence naming the role and what it needs.
pub async fn signal(
    conn: &mut PgConnection,
    t: &SignalTarget,
    terminate: bool,
) -> Result<SignalOutcome> {
    type Seen = (Option<DateTime<Utc>>, Option<DateTime<Utc>>, Option<String>);
    let now: Option<Seen> = sqlx::query_as(
        "SELECT backend_start, xact_start, usename::text FROM pg_stat_activity WHERE pid = $1",
    )
    .bind(t.pid)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((backend_start, xact_start, owner)) = now else {
        return Ok(SignalOutcome::Gone);
    };
    // Without pg_read_all_stats another role's session shows no start times: not provably the
    // same backend, so nothing is sent.
    if backend_start != Some(t.backend_start) || xact_start != t.xact_start {
        return Ok(SignalOutcome::Changed);
    }
    // Checked again in the same statement that signals: nothing changes in between.
    let sql = if terminate {
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE pid = $1 AND backend_start = $2 AND xact_start IS NOT DISTINCT FROM $3"
    } else {
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
          WHERE pid = $1 AND backend_start = $2 AND xact_start IS NOT DISTINCT FROM $3"
    };
    let r: Result<Option<bool>, sqlx::Error> = sqlx::query_scalar(sql)
        .bind(t.pid)
        .bind(t.backend_start)
        .bind(t.xact_start)
        .fetch_optional(&mut *conn)
        .await;
    match r {
        Ok(Some(true)) => Ok(SignalOutcome::Signalled),
        Ok(Some(false)) | Ok(None) => Ok(SignalOutcome::Gone),
        Err(e) if crate::db::connect::db_sqlstate(&e).as_deref() == Some("42501") => {
            let role: String = sqlx::query_scalar("SELECT current_user::text")
                .fetch_one(&mut *conn)
                .await
                .unwrap_or_else(|_| "<role>".into());
            let owner = owner.unwrap_or_else(|| "another role".into());
            anyhow::bail!(
                "permission denied: role {role} may not {verb} pid {pid} of role {owner}: it needs to be \
                 a superuser, be {owner} (or a member of it), or be granted pg_signal_backend \
                 (GRANT pg_signal_backend TO {qr}); a superuser's backend only a superuser may signal",
                role = sanitize::line(&role),
                verb = if terminate { "terminate" } else { "cancel the query of" },
                pid = t.pid,
                owner = sanitize::line(&owner),
                qr = crate::ident::display_quoted(&role),
            )
        }
        Err(e) => Err(e.into()),
    }
}

/// The server is a hot standby, and how far behind its primary it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Standby {
    /// `now() - pg_last_xact_replay_timestamp()` (None before anything was replayed). On an
    /// idle primary it grows although nothing is missing.
    pub replay_lag_secs: Option<f64>,
    pub receive_lsn: Option<String>,
    pub replay_lsn: Option<String>,
    /// WAL received but not yet replayed, in bytes.
    pub receive_replay_gap_bytes: Option<i64>,
}

/// `Some` on a hot standby (`pg_is_in_recovery()`), with its replay lag.
pub async fn standby(conn: &mut PgConnection) -> Result<Option<Standby>> {
    type R = (
        bool,
        Option<f64>,
        Option<String>,
        Option<String>,
        Option<i64>,
    );
    let r: R = sqlx::query_as(
        "SELECT pg_is_in_recovery(),
                extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8,
                pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,
                pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::int8",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(r.0.then_some(Standby {
        replay_lag_secs: r.1,
        receive_lsn: r.2,
        replay_lsn: r.3,
        receive_replay_gap_bytes: r.4,
    }))
}

impl Standby {
    /// `standby, replay lag 3 s, 0 B received not replayed`.
    pub fn describe(&self) -> String {
        let mut s = "standby".to_string();
        match self.replay_lag_secs {
            Some(l) => s.push_str(&format!(
                ", replay lag {}",
                crate::format::duration_secs(l.max(0.0))
            )),
            None => s.push_str(", nothing replayed yet"),
        }
        if let Some(g) = self.receive_replay_gap_bytes {
            s.push_str(&format!(
                ", {} received not replayed",
                crate::format::bytes(g.max(0))
            ));
        }
        s
    }
}

/// Why writes are refused on a standby, in one sentence.
pub const STANDBY_REFUSAL: &str =
    "the server is a hot standby (in recovery): nothing can be written there; act on the primary";

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(s)
    }

    #[test]
    fn estimate_by_when_the_holder_began() {
        assert_eq!(
            estimate_unremovable(100, Some(t(0)), Some(t(50)), false, t(100)),
            (0, UnremovableBasis::NoHolder)
        );
        assert_eq!(
            estimate_unremovable(100, Some(t(10)), Some(t(0)), true, t(100)),
            (100, UnremovableBasis::AllDeadRows)
        );
        assert_eq!(
            estimate_unremovable(100, Some(t(0)), Some(t(75)), true, t(100)),
            (25, UnremovableBasis::Prorated)
        );
        assert_eq!(
            estimate_unremovable(100, None, None, true, t(100)),
            (100, UnremovableBasis::AllDeadRows)
        );
    }

    #[test]
    fn operator_sql_is_quoted() {
        let h = Holder {
            kind: HolderKind::PreparedXact,
            pid: None,
            user: None,
            application: None,
            client: None,
            state: None,
            backend_start: None,
            xact_start: None,
            query_start: None,
            query: None,
            name: Some("it's\nx".into()),
            slot_type: None,
            active: None,
            xmin: None,
            catalog_only: false,
            age_xids: 1,
            age_secs: None,
            lag_bytes: None,
        };
        assert_eq!(
            h.operator_sql().unwrap(),
            "ROLLBACK PREPARED 'it''s\u{FFFD}x';"
        );
        let slot = Holder {
            kind: HolderKind::ReplicationSlot,
            name: Some("s".into()),
            ..h
        };
        assert_eq!(
            slot.operator_sql().unwrap(),
            "SELECT pg_drop_replication_slot('s');"
        );
        assert!(slot.signal_target().is_none());
    }
}
