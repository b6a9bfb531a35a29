//! Health checks: the migration guide's advice (monitoring, grants, retention, troubleshooting),
//! checked. Shared by `idemtop check` (Nagios/Icinga exit codes), the metrics endpoint and the
//! dashboard's Health screen.
//!
//! Two halves: [`gather`] reads the few facts a [`Snapshot`] lacks (grants, the TTL and status
//! distribution per operation, pg_cron), each cheap and bounded; [`evaluate`] is pure and turns
//! a snapshot, the previous one and those facts into [`CheckResult`]s, worst first.
//!
//! About `replay_rate`: it is primary-key index scans per inserted row between two snapshots.
//! PostgreSQL 15 counts the uniqueness pre-check of `INSERT ... ON CONFLICT` as one scan of the
//! primary key per row attempted (conflicting or not; verified against a 15 server: four
//! `ON CONFLICT DO NOTHING` inserts, one of them a conflict, gave `idx_scan` 4 and `n_tup_ins`
//! 3), while a plain `INSERT`'s uniqueness check is not counted as a scan at all, and a skipped
//! conflicting row is not counted in `n_tup_ins`. So with the store's pattern (look the key up,
//! then `INSERT ... ON CONFLICT DO NOTHING`) a new request costs two scans and one insert, a
//! replay one scan and no insert: the ratio grows with the share of replays.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use sqlx::PgConnection;

use crate::config::Config;
use crate::db::connect::is_connection_lost;
use crate::db::cron::{self, CronStatus};
use crate::db::snapshot::{Snapshot, SnapshotOptions, EXACT_ROW_LIMIT};
use crate::format::{self, approx, count};
use crate::guide::CLEANUP_FUNCTION;
use crate::ident::TableRef;
use crate::sanitize;

/// The bound on each of [`gather`]'s table scans (a local `statement_timeout`).
pub const GATHER_TIMEOUT: Duration = Duration::from_secs(2);
/// A table that is not counted exactly is sampled (`TABLESAMPLE SYSTEM`) for about this many rows.
pub const SAMPLE_ROWS: f64 = 20_000.0;
/// Time between the two snapshots of [`run_once`] (for the replay rate).
pub const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Nagios/Icinga states. Ordered worst first (`Critical < Warning < Unknown < Ok`), so a plain
/// sort puts the worst check first and [`Level::worst`] is the minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Level {
    /// Higher is worse. Unknown ranks between ok and warning: a check that could not run never
    /// hides a warning or critical one.
    fn severity(self) -> u8 {
        match self {
            Level::Ok => 0,
            Level::Unknown => 1,
            Level::Warning => 2,
            Level::Critical => 3,
        }
    }

    /// The plugin exit code: 0 ok, 1 warning, 2 critical, 3 unknown.
    pub fn exit_code(self) -> i32 {
        match self {
            Level::Ok => 0,
            Level::Warning => 1,
            Level::Critical => 2,
            Level::Unknown => 3,
        }
    }

    /// `ok`, `warning`, `critical`, `unknown` (as in the JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Critical => "critical",
            Level::Unknown => "unknown",
        }
    }

    /// `OK`, `WARNING`, `CRITICAL`, `UNKNOWN`.
    pub fn label(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
            Level::Unknown => "UNKNOWN",
        }
    }

    /// The worst of `levels`; `Ok` when there are none.
    pub fn worst(levels: impl IntoIterator<Item = Level>) -> Level {
        levels.into_iter().min().unwrap_or(Level::Ok)
    }
}

impl Ord for Level {
    fn cmp(&self, other: &Self) -> Ordering {
        other.severity().cmp(&self.severity())
    }
}

impl PartialOrd for Level {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One check's outcome. Text in it that came from the database is already sanitized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Stable snake_case id (`cleanup_lag`): for scripts, metrics labels, config.
    pub id: &'static str,
    pub name: String,
    pub level: Level,
    /// One short human value ("5h 02m", "12.5% 5xx").
    pub value: String,
    /// One line: what was found.
    pub detail: String,
    /// What to do about it (from the guide's troubleshooting); may be empty when ok.
    pub advice: String,
    /// The check has no data yet (a rate needs two refreshes): shown as UNKNOWN with the
    /// reason, but left out of the overall status, `check`'s exit code and the alerting
    /// metric until it has one.
    pub pending: bool,
}

/// The one judgement of "unused index", shared by the Indexes check, the dashboard's Indexes
/// panel and `/metrics`: a valid index that is not unique (a unique index enforces something
/// even when never scanned) and was never scanned while the table took at least
/// `min_inserts` inserts (config `thresholds.indexes.unused_after_inserts`). Before that many
/// inserts, "not scanned yet" is no verdict.
pub fn index_unused(i: &crate::db::snapshot::IndexStats, n_tup_ins: i64, min_inserts: i64) -> bool {
    i.valid && i.idx_scan == 0 && !i.unique && !i.primary && n_tup_ins >= min_inserts
}

/// The worst level of `checks`, leaving out the pending ones (ok when there are none).
pub fn worst(checks: &[CheckResult]) -> Level {
    Level::worst(checks.iter().filter(|c| !c.pending).map(|c| c.level))
}

/// Every check's id, in the order they are listed at equal level.
pub const CHECK_IDS: [&str; 11] = [
    "cleanup_lag",
    "expired_backlog",
    "bloat",
    "indexes",
    "cleanup_function",
    "pg_cron",
    "grants",
    "retention",
    "cached_failures",
    "replay_rate",
    "xmin_horizon",
];

/// The facts [`gather`] adds to a snapshot. A fact that could not be read holds why (the
/// check that needs it is then unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct Extras {
    /// The table, named in the advice's statements (`"public"."idempotency_records"`), its
    /// schema with the functions and indexes the advice names.
    pub table: TableRef,
    /// Owner of the table.
    pub owner: Option<String>,
    /// Roles other than the owner (and superusers) with privileges on the table.
    pub grants: Result<Vec<RoleGrant>, String>,
    /// TTL and status distribution per operation.
    pub operations: Result<OperationFacts, String>,
    pub cron: Result<CronStatus, String>,
}

impl Default for Extras {
    /// Nothing gathered.
    fn default() -> Self {
        let no = || "not gathered".to_string();
        Self {
            table: TableRef::default(),
            owner: None,
            grants: Err(no()),
            operations: Err(no()),
            cron: Err(no()),
        }
    }
}

/// What one role may do with the table. Raw names from the catalogs: sanitize before display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleGrant {
    /// Role name, or `PUBLIC`.
    pub role: String,
    /// Table-level privileges (`SELECT`, `INSERT`, `UPDATE`, `DELETE`, `TRUNCATE`, ...).
    pub privileges: Vec<String>,
    /// Columns this role may UPDATE by a column-level grant.
    pub update_columns: Vec<String>,
    /// Held through a predefined role (`pg_write_all_data`, `pg_read_all_data`), not a grant.
    pub via: Option<String>,
}

impl RoleGrant {
    pub fn has(&self, privilege: &str) -> bool {
        self.privileges.iter().any(|p| p == privilege)
    }

    pub fn can_update(&self) -> bool {
        self.has("UPDATE") || !self.update_columns.is_empty()
    }

    /// Every table privilege (`GRANT ALL`).
    pub fn has_all(&self) -> bool {
        [
            "SELECT",
            "INSERT",
            "UPDATE",
            "DELETE",
            "TRUNCATE",
            "REFERENCES",
            "TRIGGER",
        ]
        .iter()
        .all(|p| self.has(p))
    }

    /// The privileges the guide forbids: UPDATE (also per column) and TRUNCATE.
    pub fn forbidden(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.has("UPDATE") {
            out.push("UPDATE".to_string());
        } else if !self.update_columns.is_empty() {
            out.push(format!("UPDATE ({})", self.update_columns.join(", ")));
        }
        if self.has("TRUNCATE") {
            out.push("TRUNCATE".to_string());
        }
        out
    }
}

/// Per-operation facts from one scan of the table (or of a sample of it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperationFacts {
    /// True when only a `TABLESAMPLE SYSTEM` sample was read: counts are of the sample.
    pub sampled: bool,
    /// Share of the table's pages read, in percent (100 when not sampled).
    pub sample_percent: f64,
    pub operations: Vec<OperationFact>,
}

impl OperationFacts {
    /// Multiply a count of the sample by this for an estimate of the whole table.
    pub fn scale(&self) -> f64 {
        if self.sampled && self.sample_percent > 0.0 {
            100.0 / self.sample_percent
        } else {
            1.0
        }
    }

    /// "exact" or "sampled 1.2 % of the pages".
    pub fn describe(&self) -> String {
        if self.sampled {
            format!("sampled {:.3}% of the table's pages", self.sample_percent)
        } else {
            "exact".into()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperationFact {
    /// Raw from the database: sanitize before display.
    pub operation: String,
    /// Rows read (of the sample when sampled).
    pub rows: i64,
    /// TTL (`expires_at - created_at`) in seconds.
    pub ttl_min_secs: f64,
    pub ttl_median_secs: f64,
    pub ttl_max_secs: f64,
    /// The operation's TTL policy, seconds.
    pub policy_secs: f64,
    /// Rows whose TTL exceeds the policy (plus the configured slack).
    pub over_policy: i64,
    /// Rows storing a 5xx status.
    pub s5xx: i64,
}

/// Read the facts the snapshot lacks. Each table scan runs in its own transaction under a
/// local `statement_timeout` ([`GATHER_TIMEOUT`]) and reads a `TABLESAMPLE SYSTEM` sample
/// when the snapshot's rows are not exact; a fact that fails is kept as its error. Fails only
/// when the connection itself is lost.
pub async fn gather(
    conn: &mut PgConnection,
    table: &TableRef,
    snap: &Snapshot,
    cfg: &Config,
) -> Result<Extras> {
    let mut extras = Extras {
        table: table.clone(),
        ..Extras::default()
    };
    let owner: Result<Option<String>> = sqlx::query_scalar(
        "SELECT pg_get_userbyid(c.relowner)::text FROM pg_class c WHERE c.oid = to_regclass($1)",
    )
    .bind(table.qualified())
    .fetch_optional(&mut *conn)
    .await
    .map_err(Into::into);
    extras.owner = keep(owner)?.ok().flatten();

    extras.grants = keep(grants(conn, table).await)?;

    extras.operations = if let Some(b) = &snap.blocked_by {
        Err(format!("not read: {}", sanitize::line(b)))
    } else {
        keep(operation_facts(conn, table, snap, cfg).await)?
    };

    extras.cron = keep(cron::status(conn).await)?;
    Ok(extras)
}

/// A fact's error as one line, unless the connection is gone (then the whole gather fails).
fn keep<T>(r: Result<T>) -> Result<Result<T, String>> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(e) if is_connection_lost(&e) => Err(e),
        Err(e) => {
            let msg = format!("{e:#}");
            let msg = if crate::db::connect::sqlstate(&e).as_deref() == Some("57014") {
                format!(
                    "gave up after {} s (statement_timeout)",
                    GATHER_TIMEOUT.as_secs()
                )
            } else {
                sanitize::line(msg.lines().next().unwrap_or(""))
            };
            Ok(Err(msg))
        }
    }
}

type GrantRow = (String, String, Option<String>, Option<String>);

async fn grants(conn: &mut PgConnection, table: &TableRef) -> Result<Vec<RoleGrant>> {
    // Table ACL (NULL = the owner's defaults), column ACLs, and the predefined roles that
    // imply privileges on every table. The owner and superusers are left out.
    let rows: Vec<GrantRow> = sqlx::query_as(
        "WITH t AS (
             SELECT c.oid, c.relowner, c.relacl FROM pg_class c WHERE c.oid = to_regclass($1)
         ),
         acl AS (
             SELECT a.grantee, a.privilege_type::text AS priv, NULL::text AS col, NULL::text AS via
               FROM t, aclexplode(coalesce(t.relacl, acldefault('r', t.relowner))) a
             UNION ALL
             SELECT a.grantee, a.privilege_type::text, att.attname::text, NULL::text
               FROM t JOIN pg_attribute att
                    ON att.attrelid = t.oid AND att.attnum > 0 AND NOT att.attisdropped
                   AND att.attacl IS NOT NULL,
                    aclexplode(att.attacl) a
              WHERE a.privilege_type = 'UPDATE'
             UNION ALL
             SELECT m.member, p.priv, NULL::text, r.rolname::text
               FROM pg_roles r JOIN pg_auth_members m ON m.roleid = r.oid,
                    unnest(CASE r.rolname WHEN 'pg_write_all_data'
                                THEN ARRAY['INSERT', 'UPDATE', 'DELETE']
                                ELSE ARRAY['SELECT'] END) AS p(priv)
              WHERE r.rolname IN ('pg_write_all_data', 'pg_read_all_data')
         )
         SELECT CASE WHEN acl.grantee = 0 THEN 'PUBLIC'
                     ELSE pg_get_userbyid(acl.grantee)::text END,
                acl.priv, acl.col, acl.via
           FROM acl, t
          WHERE acl.grantee <> t.relowner
            AND NOT coalesce((SELECT rolsuper FROM pg_roles WHERE oid = acl.grantee), false)
          ORDER BY 1, 4 NULLS FIRST, 2, 3",
    )
    .bind(table.qualified())
    .fetch_all(&mut *conn)
    .await?;
    let mut by_role: BTreeMap<(String, Option<String>), RoleGrant> = BTreeMap::new();
    for (role, priv_, col, via) in rows {
        let g = by_role
            .entry((role.clone(), via.clone()))
            .or_insert_with(|| RoleGrant {
                role,
                privileges: Vec::new(),
                update_columns: Vec::new(),
                via,
            });
        match col {
            Some(c) => {
                if !g.update_columns.contains(&c) {
                    g.update_columns.push(c)
                }
            }
            None => {
                if !g.privileges.contains(&priv_) {
                    g.privileges.push(priv_)
                }
            }
        }
    }
    Ok(by_role.into_values().collect())
}

type OpRow = (String, i64, f64, f64, f64, f64, i64, i64);

async fn operation_facts(
    conn: &mut PgConnection,
    table: &TableRef,
    snap: &Snapshot,
    cfg: &Config,
) -> Result<OperationFacts> {
    let (sampled, percent) = if snap.rows.exact {
        (false, 100.0)
    } else {
        let total = (snap.rows.total as f64).max(EXACT_ROW_LIMIT);
        let pct = (SAMPLE_ROWS / total * 100.0).clamp(0.0001, 100.0);
        (pct < 100.0, pct)
    };
    let sample = if sampled {
        format!(" TABLESAMPLE SYSTEM ({percent:.6})")
    } else {
        String::new()
    };
    let (ops, ttls): (Vec<String>, Vec<f64>) = cfg
        .retention
        .per_operation
        .iter()
        .map(|(op, h)| (op.clone(), h * 3600.0))
        .unzip();
    let sql = format!(
        "WITH p(op, ttl) AS (SELECT * FROM unnest($1::text[], $2::float8[])),
              r AS (SELECT operation::text AS operation,
                           extract(epoch FROM expires_at - created_at)::float8 AS ttl,
                           status_code
                      FROM {q}{sample}
                     -- 'infinity' has no TTL (and subtracting it is an error before 17)
                     WHERE isfinite(expires_at) AND isfinite(created_at))
         SELECT r.operation, count(*)::int8,
                min(r.ttl), percentile_cont(0.5) WITHIN GROUP (ORDER BY r.ttl), max(r.ttl),
                coalesce(max(p.ttl), $3::float8),
                count(*) FILTER (WHERE r.ttl > coalesce(p.ttl, $3::float8) + $4::float8)::int8,
                count(*) FILTER (WHERE r.status_code BETWEEN 500 AND 599)::int8
           FROM r LEFT JOIN p ON p.op = r.operation
          GROUP BY r.operation
          ORDER BY count(*) DESC, r.operation",
        q = table.qualified()
    );
    let mut tx = crate::db::connect::begin_bounded(&mut *conn, GATHER_TIMEOUT).await?;
    let rows: Result<Vec<OpRow>, sqlx::Error> = sqlx::query_as(&sql)
        .bind(&ops)
        .bind(&ttls)
        .bind(cfg.retention.default_hours * 3600.0)
        .bind(cfg.thresholds.retention_excess.slack_secs)
        .fetch_all(&mut *tx)
        .await;
    let _ = tx.rollback().await;
    let rows = rows?;
    Ok(OperationFacts {
        sampled,
        sample_percent: percent,
        operations: rows
            .into_iter()
            .map(|r| OperationFact {
                operation: r.0,
                rows: r.1,
                ttl_min_secs: r.2,
                ttl_median_secs: r.3,
                ttl_max_secs: r.4,
                policy_secs: r.5,
                over_policy: r.6,
                s5xx: r.7,
            })
            .collect(),
    })
}

/// What holds back the xmin horizon of the table: a backend, a prepared transaction, a slot or
/// a standby, judged by how long (and how many transactions) it has held it.
pub fn xmin_horizon(snap: &Snapshot, cfg: &Config) -> CheckResult {
    use crate::db::horizon::{HolderKind, UnremovableBasis};
    const ID: &str = "xmin_horizon";
    const NAME: &str = "xmin horizon";
    let t = &cfg.thresholds.xmin_horizon;
    let Some(h) = &snap.vacuum.xmin_horizon else {
        return unknown(
            ID,
            NAME,
            "who holds the xmin horizon was not read",
            "Look at pg_stat_activity.backend_xmin, pg_prepared_xacts, pg_replication_slots and pg_stat_replication.",
        );
    };
    let limits = format!(
        "warning after {} or {} transactions, critical after {} or {}",
        format::duration_secs(t.warning_secs),
        count(t.warning_xids as i64),
        format::duration_secs(t.critical_secs),
        count(t.critical_xids as i64)
    );
    let hidden = if h.hidden.is_empty() {
        String::new()
    } else {
        format!("; {}", h.hidden.join("; "))
    };
    let others = h
        .holders
        .iter()
        .filter(|o| Some(*o) != h.holder.as_ref())
        .count();
    let others = if others > 0 {
        format!(
            "; {others} other xmin holder(s): {}",
            h.holders
                .iter()
                .filter(|o| Some(*o) != h.holder.as_ref())
                .map(|o| o.describe())
                .collect::<Vec<_>>()
                .join("; ")
        )
    } else {
        String::new()
    };
    let Some(holder) = &h.holder else {
        return result(
            ID,
            NAME,
            Level::Ok,
            "not held",
            format!(
                "nothing holds the xmin horizon back: VACUUM can remove every dead row ({limits}){others}{hidden}"
            ),
            if h.hidden.is_empty() {
                String::new()
            } else {
                "Grant the monitoring role pg_read_all_stats to see every session.".to_string()
            },
        );
    };
    let by_secs = holder.age_secs.map_or(Level::Ok, |a| {
        level_above(a, t.warning_secs, t.critical_secs)
    });
    let by_xids = level_above(holder.age_xids as f64, t.warning_xids, t.critical_xids);
    let level = by_secs.min(by_xids);
    let value = match (holder.kind, holder.pid, holder.age_secs) {
        (HolderKind::Backend, Some(pid), Some(a)) => {
            format!("pid {pid}, {}", format::duration_secs(a.max(0.0)))
        }
        (_, _, Some(a)) => format!(
            "{}, {}",
            holder.kind.as_str(),
            format::duration_secs(a.max(0.0))
        ),
        _ => format!("{}, {} xids", holder.kind.as_str(), count(holder.age_xids)),
    };
    let how = match h.basis {
        UnremovableBasis::AllDeadRows => {
            " (the holder began before the last VACUUM: every dead row counted is newer than the horizon)"
        }
        UnremovableBasis::Prorated => {
            " (estimated: the dead rows counted, times the share of the time since the last VACUUM that the holder was there)"
        }
        UnremovableBasis::NotMaintained => " (n/a on a standby: the dead-row counter is not maintained there)",
        UnremovableBasis::NoHolder => "",
    };
    let detail = format!(
        "{}{how}; it holds xmin {} ({} transactions old); {limits}{others}{hidden}",
        h.describe(),
        holder
            .xmin
            .as_deref()
            .map(sanitize::line)
            .unwrap_or_default(),
        count(holder.age_xids),
    );
    let table = extras_free_table(snap);
    let advice = match holder.kind {
        HolderKind::Backend => format!(
            "End that transaction in the application (commit or roll back); if it is stuck, cancel \
             its query (C on the dashboard: SELECT pg_cancel_backend({pid});) or end the session \
             (T: SELECT pg_terminate_backend({pid});), then VACUUM {table}. To prevent it: \
             ALTER ROLE ... SET idle_in_transaction_session_timeout = '5min';",
            pid = holder.pid.unwrap_or(0)
        ),
        HolderKind::PreparedXact => format!(
            "A prepared transaction lives until its transaction manager commits or rolls it back. \
             If it is orphaned, run (idemtop never does): {} (or COMMIT PREPARED with the same gid), \
             then VACUUM {table}.",
            holder.operator_sql().unwrap_or_default()
        ),
        HolderKind::ReplicationSlot => format!(
            "The slot's consumer is behind or gone. If the slot is no longer used, drop it \
             (idemtop never does): {} then VACUUM {table}.",
            holder.operator_sql().unwrap_or_default()
        ),
        HolderKind::StandbyFeedback => format!(
            "A query on that standby holds a snapshot, relayed by hot_standby_feedback: end it on \
             the standby (pg_stat_activity there), or turn hot_standby_feedback off there (its \
             queries may then be cancelled by replay); then VACUUM {table}."
        ),
    };
    result(
        ID,
        NAME,
        level,
        value,
        detail,
        if level == Level::Ok && h.unremovable.unwrap_or(0) == 0 {
            String::new()
        } else {
            advice
        },
    )
}

/// The table as written in advice, from the snapshot's `schema.table`.
fn extras_free_table(snap: &Snapshot) -> String {
    match snap.table.split_once('.') {
        Some((schema, table)) => TableRef::new(schema, table)
            .map(|t| t.qualified())
            .unwrap_or_else(|_| sanitize::line(&snap.table)),
        None => sanitize::line(&snap.table),
    }
}

/// Two snapshots [`RATE_WINDOW`] apart (so the replay rate is known), the extras, the checks.
pub async fn run_once(
    conn: &mut PgConnection,
    table: &TableRef,
    cfg: &Config,
) -> Result<(Snapshot, Vec<CheckResult>)> {
    let started = tokio::time::Instant::now();
    let first = crate::refresh::refresh(conn, table, SnapshotOptions::default()).await?;
    let extras = gather(conn, table, &first, cfg).await?;
    tokio::time::sleep_until(started + RATE_WINDOW).await;
    let snap = crate::refresh::refresh(conn, table, SnapshotOptions::default()).await?;
    let checks = evaluate(&snap, Some(&first), &extras, cfg);
    Ok((snap, checks))
}

/// Every check, worst first (checks of equal level in [`CHECK_IDS`] order). Pure.
pub fn evaluate(
    snap: &Snapshot,
    prev: Option<&Snapshot>,
    extras: &Extras,
    cfg: &Config,
) -> Vec<CheckResult> {
    let mut out = vec![
        cleanup_lag(snap, extras, cfg),
        expired_backlog(snap, extras, cfg),
        bloat(snap, extras, cfg),
        indexes(snap, extras, cfg),
        cleanup_function(snap, extras),
        pg_cron(snap, extras),
        grants_check(extras),
        retention(extras, cfg),
        cached_failures(snap, extras, cfg),
        replay_rate(snap, prev, cfg),
        xmin_horizon(snap, cfg),
    ];
    out.sort_by_key(|c| c.level);
    out
}

fn result(
    id: &'static str,
    name: &str,
    level: Level,
    value: impl Into<String>,
    detail: impl Into<String>,
    advice: impl Into<String>,
) -> CheckResult {
    CheckResult {
        pending: false,
        id,
        name: name.into(),
        level,
        value: sanitize::line(&value.into()),
        detail: sanitize::line(&detail.into()),
        advice: sanitize::line(&advice.into()),
    }
}

/// A check whose facts could not be read: unknown, saying why.
/// A check without data yet: UNKNOWN, said why, and not counted (see [`CheckResult::pending`]).
fn pending(id: &'static str, name: &str, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        pending: true,
        ..result(id, name, Level::Unknown, "pending", detail, "")
    }
}

fn unknown(
    id: &'static str,
    name: &str,
    detail: impl Into<String>,
    advice: impl Into<String>,
) -> CheckResult {
    result(id, name, Level::Unknown, "unknown", detail, advice)
}

fn not_probed(id: &'static str, name: &str, snap: &Snapshot) -> Option<CheckResult> {
    snap.blocked_by.as_ref().map(|b| {
        result(
            id,
            name,
            Level::Unknown,
            "not probed",
            format!("the table was not read: {b}"),
            "Wait for the lock holder to finish (pg_locks, pg_stat_activity), then look again.",
        )
    })
}

/// The statement that runs the cleanup now.
fn cleanup_statement(snap: &Snapshot, extras: &Extras) -> String {
    if snap.cleanup_function {
        format!("SELECT * FROM {}();", sibling(extras, CLEANUP_FUNCTION))
    } else {
        format!(
            "DELETE FROM {} WHERE expires_at <= now(); (in batches on a large table)",
            extras.table.qualified()
        )
    }
}

fn level_above(v: f64, warning: f64, critical: f64) -> Level {
    if v > critical {
        Level::Critical
    } else if v > warning {
        Level::Warning
    } else {
        Level::Ok
    }
}

fn cleanup_lag_level(snap: &Snapshot, cfg: &Config) -> Level {
    let t = &cfg.thresholds.cleanup_lag;
    if snap.rows.oldest_expired_at.is_none() {
        return Level::Ok;
    }
    level_above(
        snap.rows.cleanup_lag_secs,
        t.warning_secs(),
        t.critical_secs(),
    )
}

fn cleanup_lag(snap: &Snapshot, extras: &Extras, cfg: &Config) -> CheckResult {
    const ID: &str = "cleanup_lag";
    const NAME: &str = "Cleanup lag";
    if let Some(r) = not_probed(ID, NAME, snap) {
        return r;
    }
    let t = &cfg.thresholds.cleanup_lag;
    let limits = format!(
        "cleanup is meant to run every {}: warning above {}, critical above {}",
        format::duration_secs(t.schedule_secs as f64),
        format::duration_secs(t.warning_secs()),
        format::duration_secs(t.critical_secs())
    );
    let Some(oldest) = snap.rows.oldest_expired_at else {
        return result(
            ID,
            NAME,
            Level::Ok,
            "none",
            format!("no expired rows wait for cleanup ({limits})"),
            "",
        );
    };
    let lag = snap.rows.cleanup_lag_secs;
    let level = cleanup_lag_level(snap, cfg);
    let advice = if level == Level::Ok {
        String::new()
    } else {
        format!(
            "Run the cleanup now: {} (or `idemtop cleanup`), then find out why the scheduled \
             cleanup did not run: the pg_cron job '{}' (SELECT * FROM cron.job_run_details \
             ORDER BY runid DESC LIMIT 10) or the application's hourly cleanup task and its logs.",
            cleanup_statement(snap, extras),
            cron::JOB_NAME
        )
    };
    result(
        ID,
        NAME,
        level,
        format::duration_secs(lag),
        format!(
            "the oldest expired row expired {} ({} UTC), {} expired rows wait; {limits}",
            format::ago(Some(oldest), snap.taken_at),
            oldest.format("%Y-%m-%d %H:%M:%S"),
            approx(snap.rows.expired, snap.rows.expired_exact)
        ),
        advice,
    )
}

fn expired_backlog(snap: &Snapshot, extras: &Extras, cfg: &Config) -> CheckResult {
    const ID: &str = "expired_backlog";
    const NAME: &str = "Expired backlog";
    if let Some(r) = not_probed(ID, NAME, snap) {
        return r;
    }
    let t = &cfg.thresholds.expired_share;
    let r = &snap.rows;
    if r.total <= 0 {
        return result(ID, NAME, Level::Ok, "empty", "the table holds no rows", "");
    }
    let share = r.expired as f64 / r.total as f64;
    let value = format!(
        "{} ({} of {})",
        format::percent(share),
        approx(r.expired, r.expired_exact),
        approx(r.total, r.exact)
    );
    let limits = format!(
        "warning above {}, critical above {}",
        format::percent(t.warning),
        format::percent(t.critical)
    );
    if r.expired < t.min_rows {
        return result(
            ID,
            NAME,
            Level::Ok,
            value,
            format!(
                "{} expired rows: too few to judge (from {} on; {limits})",
                count(r.expired),
                count(t.min_rows)
            ),
            "",
        );
    }
    let level = level_above(share, t.warning, t.critical);
    let advice = if level == Level::Ok {
        String::new()
    } else {
        format!(
            "Delete the expired rows: {} (or `idemtop cleanup`); after a large cleanup run \
             ANALYZE {t} so the planner sees the new size, and VACUUM {t} so the space is reused.",
            cleanup_statement(snap, extras),
            t = extras.table.qualified()
        )
    };
    result(
        ID,
        NAME,
        level,
        value,
        format!("expired rows that cleanup has not deleted yet, as a share of all rows; {limits}"),
        advice,
    )
}

fn bloat(snap: &Snapshot, extras: &Extras, cfg: &Config) -> CheckResult {
    const ID: &str = "bloat";
    const NAME: &str = "Dead tuples and vacuum";
    let t = &cfg.thresholds.bloat;
    let va = &cfg.thresholds.vacuum_age;
    let v = &snap.vacuum;
    let ratio = v.dead_ratio();
    let value = format!("{} dead ({})", format::percent(ratio), count(v.n_dead_tup));
    let last = v.last_any_vacuum();
    let last_text = format!("last vacuum {}", format::ago(last, snap.taken_at));
    let running = v
        .running
        .as_ref()
        .map(|r| {
            format!(
                "; a VACUUM is running now ({}, {})",
                r.phase,
                format::percent(r.fraction())
            )
        })
        .unwrap_or_default();
    if v.n_dead_tup < t.min_dead_tuples {
        return result(
            ID,
            NAME,
            Level::Ok,
            value,
            format!(
                "{} dead tuples: not judged below {}; {last_text}{running}",
                count(v.n_dead_tup),
                count(t.min_dead_tuples)
            ),
            "",
        );
    }
    let ratio_level = level_above(ratio, t.warning_ratio, t.critical_ratio);
    let (age_level, age_text) = match last {
        None => (Level::Warning, "never vacuumed".to_string()),
        Some(at) => {
            let h = (snap.taken_at - at).num_seconds() as f64 / 3600.0;
            (
                level_above(h, va.warning_hours, va.critical_hours),
                last_text.clone(),
            )
        }
    };
    let level = ratio_level.min(age_level);
    let mut detail = format!(
        "dead tuples {} of all tuples (warning above {}, critical above {}); {age_text} \
         (warning after {}h, critical after {}h){running}",
        format::percent(ratio),
        format::percent(t.warning_ratio),
        format::percent(t.critical_ratio),
        va.warning_hours,
        va.critical_hours
    );
    if age_level != Level::Ok && last.is_none() {
        detail.push_str("; autovacuum has not processed the table yet");
    }
    let advice = if level == Level::Ok {
        String::new()
    } else {
        format!(
            "VACUUM (ANALYZE) {t}; (the guide: vacuum if needed). If autovacuum cannot keep up \
             with the cleanup's deletes, make it run sooner for this table: ALTER TABLE {t} SET \
             (autovacuum_vacuum_scale_factor = 0.05); and check that nothing holds back the xmin \
             horizon (long transactions in pg_stat_activity, stale replication slots).",
            t = extras.table.qualified()
        )
    };
    result(ID, NAME, level, value, detail, advice)
}

fn indexes(snap: &Snapshot, extras: &Extras, cfg: &Config) -> CheckResult {
    const ID: &str = "indexes";
    const NAME: &str = "Indexes";
    let mut level = Level::Ok;
    let mut problems: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut advice: Vec<String> = Vec::new();
    let large = snap.rows.total as f64 > EXACT_ROW_LIMIT;
    let mut missing = 0;
    for e in &snap.expected_indexes {
        match &e.found_as {
            None => {
                missing += 1;
                let l = if e.column == "expires_at" && large {
                    Level::Critical
                } else {
                    Level::Warning
                };
                level = level.min(l);
                let why = if e.column == "expires_at" {
                    "cleanup and the expired count scan the whole table"
                } else {
                    "per-operation monitoring queries scan the whole table"
                };
                problems.push(format!("{} (on {}) is missing: {why}", e.name, e.column));
                advice.push(format!(
                    "CREATE INDEX CONCURRENTLY {} ON {} ({});",
                    e.name,
                    extras.table.qualified(),
                    e.column
                ));
            }
            Some(found) if found != &e.name => {
                notes.push(format!("{} exists as {}", e.name, found));
            }
            Some(_) => {}
        }
    }
    for i in snap.indexes.iter().filter(|i| !i.valid) {
        level = Level::Critical;
        problems.push(format!(
            "{} is INVALID (a failed CREATE INDEX CONCURRENTLY or REINDEX): never used by \
             queries, still updated by every write",
            i.name
        ));
        advice.push(format!(
            "REINDEX INDEX CONCURRENTLY {}; (or DROP INDEX CONCURRENTLY {} and create it again)",
            sibling(extras, &i.name),
            sibling(extras, &i.name)
        ));
    }
    let min_inserts = cfg.thresholds.indexes.unused_after_inserts;
    for i in snap
        .indexes
        .iter()
        .filter(|i| i.valid && i.idx_scan == 0 && !i.unique && !i.primary)
    {
        if index_unused(i, snap.counters.n_tup_ins, min_inserts) {
            level = level.min(Level::Warning);
            problems.push(format!(
                "{} ({}) was never scanned in {} inserts since the statistics were reset",
                i.name,
                format::bytes(i.size_bytes),
                count(snap.counters.n_tup_ins)
            ));
            advice.push(format!(
                "Check whether queries need {n} (pg_stat_user_indexes.idx_scan); an unused index \
                 costs every write: DROP INDEX CONCURRENTLY {n};",
                n = sibling(extras, &i.name)
            ));
        } else {
            notes.push(format!("{} not scanned yet", i.name));
        }
    }
    let value = if problems.is_empty() {
        format!("{} ok", snap.indexes.len())
    } else if missing > 0 {
        format!("{missing} missing")
    } else {
        format!("{} problem(s)", problems.len())
    };
    let mut detail = if problems.is_empty() {
        format!(
            "{} indexes, the guide's {} present and valid",
            snap.indexes.len(),
            snap.expected_indexes
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(" and ")
        )
    } else {
        problems.join("; ")
    };
    if !notes.is_empty() {
        detail.push_str(&format!(" (note: {})", notes.join("; ")));
    }
    if level != Level::Ok {
        advice.push(format!(
            "Then ANALYZE {}; (the guide: check index usage in pg_stat_user_indexes, REINDEX \
             TABLE if needed).",
            extras.table.qualified()
        ));
    }
    result(ID, NAME, level, value, detail, advice.join(" "))
}

/// An index of the table's schema as SQL text.
fn sibling(extras: &Extras, name: &str) -> String {
    format!("{}.{}", extras.table.schema.quoted(), quote_ident(name))
}

/// Does a pg_cron job command run the cleanup?
fn runs_cleanup(command: &str) -> bool {
    let c = command.to_ascii_lowercase();
    c.contains(CLEANUP_FUNCTION) || (c.contains("delete") && c.contains("expires_at"))
}

fn cleanup_function(snap: &Snapshot, extras: &Extras) -> CheckResult {
    const ID: &str = "cleanup_function";
    const NAME: &str = "Cleanup function (046)";
    if snap.cleanup_function {
        return result(
            ID,
            NAME,
            Level::Ok,
            "present",
            format!("{CLEANUP_FUNCTION}() exists in the table's schema"),
            "",
        );
    }
    let job_calls_it = matches!(
        &extras.cron,
        Ok(CronStatus::Ready { job: Some(j), .. })
            if j.command.to_ascii_lowercase().contains(CLEANUP_FUNCTION)
    );
    let (level, why) = if job_calls_it {
        (
            Level::Critical,
            format!(
                "the pg_cron job '{}' calls it, so every run fails",
                cron::JOB_NAME
            ),
        )
    } else {
        (
            Level::Warning,
            "cleanup must run another way (application task, `idemtop cleanup`)".to_string(),
        )
    };
    result(
        ID,
        NAME,
        level,
        "missing",
        format!("{CLEANUP_FUNCTION}() (migration 046) does not exist in the table's schema: {why}"),
        format!(
            "Re-create it (the guide: cleanup function not found): `idemtop migrate run`, or psql \
             -v ON_ERROR_STOP=1 --single-transaction -f \
             migrations/046_create_idempotency_cleanup_job.up.sql; until then delete expired rows \
             with `idemtop cleanup` or DELETE FROM {} WHERE expires_at <= now();",
            extras.table.qualified()
        ),
    )
}

fn pg_cron(snap: &Snapshot, extras: &Extras) -> CheckResult {
    const ID: &str = "pg_cron";
    const NAME: &str = "pg_cron job";
    let schedule_sql = format!(
        "SELECT cron.schedule('{}', '{}', $${}$$);",
        cron::JOB_NAME,
        cron::HOURLY,
        cron::command(&extras.table)
    );
    let status = match &extras.cron {
        Err(e) => {
            return unknown(
                ID,
                NAME,
                format!("cannot read pg_cron's state: {e}"),
                "Connect as a role that may read pg_cron's settings and tables \
                 (pg_read_all_settings, GRANT USAGE ON SCHEMA cron), or ignore: cleanup_lag \
                 tells whether cleanup runs.",
            )
        }
        Ok(s) => s,
    };
    let app_level =
        "application-level cleanup (the guide's recommended option) is fine: cleanup_lag tells whether it runs";
    match status {
        CronStatus::NotAvailable | CronStatus::NotPreloaded | CronStatus::NotCreated { .. } => {
            let what = match status {
                CronStatus::NotAvailable => "pg_cron is not installed on the server",
                CronStatus::NotPreloaded => "pg_cron is installed but not loaded",
                _ => "pg_cron is loaded but not created in this database",
            };
            result(
                ID,
                NAME,
                Level::Ok,
                "not used",
                format!("{what}; {app_level}"),
                format!(
                    "Only if you want database-level cleanup: {}",
                    cron::enable_hint(status).unwrap_or_default()
                ),
            )
        }
        CronStatus::OtherDatabase { database } => result(
            ID,
            NAME,
            Level::Ok,
            format!("in {database}"),
            format!(
                "pg_cron lives in database {database} (cron.database_name): its jobs are not \
                 visible from here; {app_level}"
            ),
            cron::enable_hint(status).unwrap_or_default(),
        ),
        CronStatus::Ready { job: None, .. } => result(
            ID,
            NAME,
            Level::Ok,
            "no job",
            format!(
                "pg_cron is ready but has no job '{}': the database does not clean up by itself \
                 (whether expired rows are cleaned, by anyone, is the cleanup_lag check's judgement)",
                cron::JOB_NAME
            ),
            format!("To let the database clean up itself: {schedule_sql}"),
        ),
        CronStatus::Ready {
            job: Some(job),
            runs,
        } => {
            let mut level = Level::Ok;
            let mut problems = Vec::new();
            let mut advice = Vec::new();
            if !job.active {
                level = Level::Warning;
                problems.push("the job is disabled (active = false)".to_string());
                advice.push(format!(
                    "SELECT cron.alter_job({}, active := true);",
                    job.jobid
                ));
            }
            if !runs_cleanup(&job.command) {
                level = level.min(Level::Warning);
                problems.push(format!(
                    "its command does not run the cleanup: {}",
                    job.command
                ));
                advice.push(format!(
                    "SELECT cron.alter_job({}, command := $$SELECT {CLEANUP_FUNCTION}()$$);",
                    job.jobid
                ));
            }
            if job.database != snap.database {
                level = level.min(Level::Warning);
                problems.push(format!(
                    "it runs in database {}, the table is in {}",
                    job.database, snap.database
                ));
                advice.push(format!(
                    "SELECT cron.alter_job({}, database := '{}');",
                    job.jobid,
                    snap.database.replace('\'', "''")
                ));
            }
            let finished: Vec<_> = runs
                .iter()
                .filter(|r| r.status == "succeeded" || r.status == "failed")
                .collect();
            let failed = finished.iter().filter(|r| r.status == "failed").count();
            let last = finished.first();
            if let Some(last) = last.filter(|r| r.status == "failed") {
                level = Level::Critical;
                problems.push(format!(
                    "the last run failed{}: {}",
                    last.start_time
                        .map(|t| format!(" ({})", format::ago(Some(t), snap.taken_at)))
                        .unwrap_or_default(),
                    last.return_message.trim()
                ));
            } else if failed > 0 {
                level = level.min(Level::Warning);
                problems.push(format!(
                    "{failed} of the last {} runs failed",
                    finished.len()
                ));
            }
            if failed > 0 {
                advice.push(format!(
                    "Read the errors: SELECT start_time, status, return_message FROM \
                     cron.job_run_details WHERE jobid = {} ORDER BY runid DESC LIMIT 10; then run \
                     the command by hand in database {} to see it fail (a missing function: \
                     re-apply migration 046).",
                    job.jobid, job.database
                ));
            }
            let last_text = match last {
                Some(r) => format!(
                    "last run {} {}",
                    r.status,
                    format::ago(r.start_time, snap.taken_at)
                ),
                None => "no finished run yet".to_string(),
            };
            let value = if !job.active {
                "disabled".to_string()
            } else if level == Level::Ok {
                format!("{} ok", job.schedule)
            } else if failed > 0 {
                format!("{failed} failed")
            } else {
                "misconfigured".to_string()
            };
            let detail = if problems.is_empty() {
                format!(
                    "job {} '{}' runs '{}' on schedule {}; {last_text}",
                    job.jobid,
                    cron::JOB_NAME,
                    job.command,
                    job.schedule
                )
            } else {
                format!(
                    "job {} '{}' ({}): {}; {last_text}",
                    job.jobid,
                    cron::JOB_NAME,
                    job.schedule,
                    problems.join("; ")
                )
            };
            result(ID, NAME, level, value, detail, advice.join(" "))
        }
    }
}

/// An identifier as SQL text for the advice (see [`crate::ident::display_quoted`]).
pub use crate::ident::display_quoted as quote_ident;

fn role_sql(role: &str) -> String {
    if role == "PUBLIC" {
        "PUBLIC".into()
    } else {
        quote_ident(role)
    }
}

fn grants_check(extras: &Extras) -> CheckResult {
    const ID: &str = "grants";
    const NAME: &str = "Grants";
    let grants = match &extras.grants {
        Err(e) => {
            return unknown(
                ID,
                NAME,
                format!("cannot read the table's privileges: {e}"),
                "",
            )
        }
        Ok(g) => g,
    };
    let t = &extras.table.qualified();
    let describe = |g: &RoleGrant| -> String {
        let mut s = g.role.clone();
        if let Some(via) = &g.via {
            s.push_str(&format!(" via {via}"));
        }
        s
    };
    let list = |pred: &dyn Fn(&RoleGrant) -> bool| -> String {
        let names: Vec<String> = grants.iter().filter(|g| pred(g)).map(describe).collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    };
    let writers = list(&|g| g.has("INSERT") || g.has("DELETE"));
    let readers = list(&|g| g.has("SELECT"));
    let owner = extras
        .owner
        .as_deref()
        .map(|o| format!("owner {o}; "))
        .unwrap_or_default();
    let risky: Vec<&RoleGrant> = grants
        .iter()
        .filter(|g| !g.forbidden().is_empty())
        .collect();
    if risky.is_empty() {
        return result(
            ID,
            NAME,
            Level::Ok,
            "no UPDATE/TRUNCATE",
            format!(
                "{owner}nobody else may UPDATE or TRUNCATE; INSERT/DELETE: {writers}; SELECT: {readers}"
            ),
            "",
        );
    }
    let who: Vec<String> = risky
        .iter()
        .map(|g| {
            let what = if g.has_all() {
                "ALL PRIVILEGES".to_string()
            } else {
                g.forbidden().join(", ")
            };
            format!("{} ({what})", describe(g))
        })
        .collect();
    let mut advice = Vec::new();
    for g in &risky {
        match &g.via {
            Some(via) => advice.push(format!("REVOKE {via} FROM {};", role_sql(&g.role))),
            None => {
                let mut revoke = Vec::new();
                if g.can_update() {
                    revoke.push("UPDATE");
                }
                if g.has("TRUNCATE") {
                    revoke.push("TRUNCATE");
                }
                if g.has_all() {
                    advice.push(format!(
                        "REVOKE ALL PRIVILEGES ON {t} FROM {r}; GRANT SELECT, INSERT, DELETE ON {t} TO {r};",
                        r = role_sql(&g.role)
                    ));
                } else {
                    advice.push(format!(
                        "REVOKE {} ON {t} FROM {};",
                        revoke.join(", "),
                        role_sql(&g.role)
                    ));
                }
            }
        }
    }
    advice.push(
        "The guide: GRANT SELECT, INSERT, DELETE to the API role only; do not grant UPDATE \
         (records are immutable) nor ALL PRIVILEGES."
            .into(),
    );
    let value = risky
        .iter()
        .map(|g| format!("{}: {}", g.role, g.forbidden().join("+")))
        .collect::<Vec<_>>()
        .join(", ");
    result(
        ID,
        NAME,
        Level::Critical,
        value,
        format!(
            "{owner}{} can change stored results, which must be immutable; INSERT/DELETE: \
             {writers}; SELECT: {readers}",
            who.join(", ")
        ),
        advice.join(" "),
    )
}

/// "1h", "24h", "90m", "2d": a TTL for people.
fn ttl_text(secs: f64) -> String {
    let s = secs.round() as i64;
    if s % 86_400 == 0 && s >= 86_400 * 2 {
        format!("{}d", s / 86_400)
    } else if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format::duration_secs(secs)
    }
}

/// `INTERVAL '1 hour'`, `INTERVAL '90 minutes'`, `INTERVAL '45 seconds'`.
fn interval_literal(secs: i64) -> String {
    let (n, unit) = if secs % 3600 == 0 {
        (secs / 3600, "hour")
    } else if secs % 60 == 0 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("INTERVAL '{n} {unit}{}'", if n == 1 { "" } else { "s" })
}

fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn retention(extras: &Extras, cfg: &Config) -> CheckResult {
    const ID: &str = "retention";
    const NAME: &str = "Retention (TTL policy)";
    let facts = match &extras.operations {
        Err(e) => return unknown(ID, NAME, format!("cannot read the TTLs: {e}"), ""),
        Ok(f) => f,
    };
    let t = &cfg.thresholds.retention_excess;
    let policy_text = {
        let mut p: Vec<String> = cfg
            .retention
            .per_operation
            .iter()
            .map(|(op, h)| format!("{op} {}", ttl_text(h * 3600.0)))
            .collect();
        p.push(format!(
            "others {}",
            ttl_text(cfg.retention.default_hours * 3600.0)
        ));
        p.join(", ")
    };
    let rows: i64 = facts.operations.iter().map(|o| o.rows).sum();
    let over: i64 = facts.operations.iter().map(|o| o.over_policy).sum();
    let scale = facts.scale();
    let est = |n: i64| approx((n as f64 * scale).round() as i64, !facts.sampled);
    if rows == 0 || over == 0 {
        return result(
            ID,
            NAME,
            Level::Ok,
            "within policy",
            format!(
                "every TTL (expires_at - created_at) is within its operation's policy ({policy_text}; {})",
                facts.describe()
            ),
            "",
        );
    }
    let share = over as f64 / rows as f64;
    let level = if share > t.critical {
        Level::Critical
    } else if share > t.warning {
        Level::Warning
    } else {
        Level::Ok
    };
    let offenders: Vec<&OperationFact> = facts
        .operations
        .iter()
        .filter(|o| o.over_policy > 0)
        .collect();
    let value = offenders
        .iter()
        .take(3)
        .map(|o| {
            format!(
                "{} TTL {} > {}",
                o.operation,
                ttl_text(o.ttl_max_secs),
                ttl_text(o.policy_secs)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let per_op = offenders
        .iter()
        .map(|o| {
            format!(
                "{} {} rows (TTL median {}, max {}; policy {})",
                o.operation,
                est(o.over_policy),
                ttl_text(o.ttl_median_secs),
                ttl_text(o.ttl_max_secs),
                ttl_text(o.policy_secs)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    // The guide's UPDATE, per policy.
    let mut by_policy: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for o in &offenders {
        by_policy
            .entry(o.policy_secs.round() as i64)
            .or_default()
            .push(sql_literal(&o.operation));
    }
    let mut advice: Vec<String> = by_policy
        .iter()
        .map(|(secs, ops)| {
            let interval = interval_literal(*secs);
            format!(
                "UPDATE {t} SET expires_at = created_at + {interval} WHERE operation IN ({}) \
                 AND expires_at > created_at + {interval};",
                ops.join(", "),
                t = extras.table.qualified()
            )
        })
        .collect();
    advice.insert(
        0,
        "Fix the TTL the writing service uses for these operations (data retention, GDPR), \
         then shorten the stored ones (the guide's retention policy):"
            .into(),
    );
    result(
        ID,
        NAME,
        level,
        value,
        format!(
            "{} rows ({}) live longer than their operation's TTL policy: {per_op}; policy: \
             {policy_text} ({})",
            est(over),
            format::percent(share),
            facts.describe()
        ),
        advice.join(" "),
    )
}

fn cached_failures(snap: &Snapshot, extras: &Extras, cfg: &Config) -> CheckResult {
    const ID: &str = "cached_failures";
    const NAME: &str = "Cached 5xx results";
    let t = &cfg.thresholds.cached_failures;
    // (operation, rows, 5xx rows), how they were counted, exactly or not, and the scale.
    let (ops, how, exact, scale): (Vec<(String, i64, i64)>, String, bool, f64) =
        match &extras.operations {
            Ok(f) => (
                f.operations
                    .iter()
                    .map(|o| (o.operation.clone(), o.rows, o.s5xx))
                    .collect(),
                f.describe(),
                !f.sampled,
                f.scale(),
            ),
            Err(_) if snap.operations_exact => (
                snap.operations
                    .iter()
                    .filter_map(|o| o.status.map(|s| (o.operation.clone(), o.total, s.s5xx)))
                    .collect(),
                "exact".into(),
                true,
                1.0,
            ),
            Err(e) => {
                return unknown(
                    ID,
                    NAME,
                    format!("cannot count the stored status codes: {e}"),
                    "",
                )
            }
        };
    let est = |n: i64| approx((n as f64 * scale).round() as i64, exact);
    let mut judged: Vec<(String, i64, i64, f64, Level)> = ops
        .into_iter()
        .filter(|(_, rows, _)| *rows >= t.min_rows.max(1))
        .map(|(op, rows, s5)| {
            let share = s5 as f64 / rows as f64;
            (
                op,
                rows,
                s5,
                share,
                level_above(share, t.warning, t.critical),
            )
        })
        .collect();
    judged.sort_by(|a, b| a.4.cmp(&b.4).then(b.3.total_cmp(&a.3)));
    let total_5xx: i64 = judged.iter().map(|j| j.2).sum();
    let level = Level::worst(judged.iter().map(|j| j.4));
    let limits = format!(
        "warning above {}, critical above {} of an operation's rows (from {} rows on)",
        format::percent(t.warning),
        format::percent(t.critical),
        t.min_rows
    );
    if level == Level::Ok {
        return result(
            ID,
            NAME,
            Level::Ok,
            if total_5xx == 0 {
                "none".to_string()
            } else {
                format!("{} rows", est(total_5xx))
            },
            format!("no operation stores a notable share of 5xx results; {limits} ({how})"),
            "",
        );
    }
    let bad: Vec<&(String, i64, i64, f64, Level)> =
        judged.iter().filter(|j| j.4 != Level::Ok).collect();
    let worst = bad[0];
    let value = format!("{} {} 5xx", worst.0, format::percent(worst.3));
    let list = bad
        .iter()
        .take(5)
        .map(|(op, rows, s5, share, _)| {
            format!(
                "{op} {} of {} ({})",
                est(*s5),
                est(*rows),
                format::percent(*share)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let ops_sql = bad
        .iter()
        .map(|j| sql_literal(&j.0))
        .collect::<Vec<_>>()
        .join(", ");
    result(
        ID,
        NAME,
        level,
        value,
        format!("stored 5xx results: {list}; {limits} ({how})"),
        format!(
            "A stored server error is replayed to every retry of that request until it expires, \
             so the client can never succeed: store only final outcomes (2xx, 4xx) and let a \
             5xx be retried. Remove the cached failures: DELETE FROM {} WHERE status_code \
             BETWEEN 500 AND 599 AND operation IN ({ops_sql});",
            extras.table.qualified()
        ),
    )
}

fn replay_rate(snap: &Snapshot, prev: Option<&Snapshot>, cfg: &Config) -> CheckResult {
    const ID: &str = "replay_rate";
    const NAME: &str = "Replay rate";
    let t = &cfg.thresholds.replay_rate;
    let note = "PostgreSQL counts INSERT ... ON CONFLICT's uniqueness check as one primary-key \
                scan per row, a plain INSERT's as none";
    let Some(prev) = prev else {
        return pending(
            ID,
            NAME,
            "needs two refreshes to compare counters; not counted until then",
        );
    };
    let pkey = |s: &Snapshot| s.indexes.iter().find(|i| i.primary).map(|i| i.idx_scan);
    let (Some(now_scans), Some(prev_scans)) = (pkey(snap), pkey(prev)) else {
        return result(
            ID,
            NAME,
            Level::Unknown,
            "n/a",
            "the table has no primary key index",
            "",
        );
    };
    let scans = now_scans - prev_scans;
    let inserts = snap.counters.n_tup_ins - prev.counters.n_tup_ins;
    let secs = (snap.taken_at - prev.taken_at).num_milliseconds() as f64 / 1000.0;
    if scans < 0 || inserts < 0 {
        return result(
            ID,
            NAME,
            Level::Unknown,
            "n/a",
            "the statistics were reset between the refreshes",
            "",
        );
    }
    let window = format!("in {}", format::duration_secs(secs.max(0.0)));
    if inserts == 0 {
        let detail = if scans == 0 {
            format!("idle: no key lookups and no inserts {window}")
        } else {
            format!(
                "{} primary-key lookups and no inserts {window}: every request was a replay \
                 (or a lookup of a key never stored)",
                count(scans)
            )
        };
        return result(ID, NAME, Level::Ok, "no inserts", detail, "");
    }
    let ratio = scans as f64 / inserts as f64;
    let per_sec = |n: i64| {
        if secs > 0.0 {
            format!(" ({})", format::rate(Some(n as f64 / secs)))
        } else {
            String::new()
        }
    };
    let judgement = if ratio > t.high {
        format!(
            "; unusually high (above {}): clients retry a lot, or keys are looked up repeatedly",
            t.high
        )
    } else if ratio < t.low {
        format!(
            "; unusually low (below {}): writers insert without looking the key up first",
            t.low
        )
    } else {
        String::new()
    };
    result(
        ID,
        NAME,
        Level::Ok,
        format!("{ratio:.2} scans/insert"),
        format!(
            "{} primary-key scans{} for {} inserts{} {window}{judgement} ({note})",
            count(scans),
            per_sec(scans),
            count(inserts),
            per_sec(inserts)
        ),
        "",
    )
}

/// "1 critical, 2 warning, 6 ok, 1 unknown".
pub fn summary(checks: &[CheckResult]) -> String {
    let n = |l: Level| checks.iter().filter(|c| c.level == l && !c.pending).count();
    let pending = checks.iter().filter(|c| c.pending).count();
    let mut s = format!(
        "{} critical, {} warning, {} unknown, {} ok",
        n(Level::Critical),
        n(Level::Warning),
        n(Level::Unknown),
        n(Level::Ok)
    );
    if pending > 0 {
        s.push_str(&format!(", {pending} pending"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_sorts_first() {
        let mut v = vec![Level::Ok, Level::Unknown, Level::Critical, Level::Warning];
        v.sort();
        assert_eq!(
            v,
            [Level::Critical, Level::Warning, Level::Unknown, Level::Ok]
        );
        assert_eq!(Level::worst([Level::Ok, Level::Unknown]), Level::Unknown);
        assert_eq!(Level::worst([]), Level::Ok);
    }

    #[test]
    fn identifiers_are_quoted_when_needed() {
        assert_eq!(quote_ident("app"), "app");
        assert_eq!(quote_ident("App"), "\"App\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("user"), "\"user\"");
        assert_eq!(quote_ident("public"), "public");
    }

    #[test]
    fn ttl_texts() {
        assert_eq!(ttl_text(3600.0), "1h");
        assert_eq!(ttl_text(172_800.0), "2d");
        assert_eq!(ttl_text(86_400.0), "24h");
        assert_eq!(ttl_text(5400.0), "90m");
    }
}
