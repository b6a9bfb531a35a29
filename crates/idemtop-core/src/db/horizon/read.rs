//! Reading the xmin horizon holders from pg_stat_activity, replication slots and prepared transactions.

use super::*;

#[derive(sqlx::FromRow)]
pub(super) struct Row {
    /// What this role may see (the same on every row).
    pub(super) role: String,
    pub(super) privileged: bool,
    pub(super) hidden_sessions: i64,
    pub(super) hidden_walsenders: i64,
    /// None on the one row of a server where nobody holds the horizon.
    pub(super) kind: Option<String>,
    pub(super) pid: Option<i32>,
    pub(super) usr: Option<String>,
    pub(super) app: Option<String>,
    pub(super) client: Option<String>,
    pub(super) state: Option<String>,
    pub(super) backend_start: Option<DateTime<Utc>>,
    pub(super) xact_start: Option<DateTime<Utc>>,
    pub(super) query_start: Option<DateTime<Utc>>,
    pub(super) query: Option<String>,
    pub(super) name: Option<String>,
    pub(super) slot_type: Option<String>,
    pub(super) active: Option<bool>,
    pub(super) xmin: Option<String>,
    pub(super) catalog_only: Option<bool>,
    pub(super) xids: Option<i64>,
    pub(super) secs: Option<f64>,
    pub(super) lag: Option<i64>,
}

pub(super) const HOLDERS_SQL: &str = "
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
-- Sessions of other roles show neither their xmin nor their query without pg_read_all_stats
-- (or the role itself); walsenders show only their pid.
, p AS (
    SELECT current_user::text AS role,
           pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')
             OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS privileged,
           (SELECT count(*) FROM pg_stat_activity a
             WHERE a.query = '<insufficient privilege>' AND a.pid <> pg_backend_pid()
               AND a.datid = (SELECT oid FROM pg_database WHERE datname = current_database()))::int8
             AS hidden_sessions,
           (SELECT count(*) FROM pg_stat_replication r WHERE r.state IS NULL)::int8 AS hidden_walsenders
)
SELECT p.role, p.privileged, p.hidden_sessions, p.hidden_walsenders, x.*
  FROM p LEFT JOIN LATERAL (
      SELECT * FROM h ORDER BY catalog_only, xids DESC NULLS LAST, xact_start NULLS LAST LIMIT $1
  ) x ON true
 ORDER BY x.catalog_only, x.xids DESC NULLS LAST, x.xact_start NULLS LAST";

/// Who holds xmins now (oldest first) and what this role cannot see. The estimate of the
/// dead rows kept is left to [`XminHorizon::judge`], which knows the table's counters.
pub async fn read(conn: &mut PgConnection) -> Result<(Vec<Holder>, Vec<String>)> {
    let rows: Vec<Row> = sqlx::query_as(HOLDERS_SQL)
        .bind(MAX_HOLDERS as i64)
        .fetch_all(&mut *conn)
        .await?;
    let (role, privileged, hidden_sessions, hidden_walsenders) = rows
        .first()
        .map(|r| {
            (
                r.role.clone(),
                r.privileged,
                r.hidden_sessions,
                r.hidden_walsenders,
            )
        })
        .unwrap_or_default();
    let holders = rows
        .into_iter()
        .filter_map(|r| Some((r.kind.clone()?, r)))
        .map(|(kind, r)| Holder {
            kind: match kind.as_str() {
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
            catalog_only: r.catalog_only.unwrap_or(false),
            age_xids: r.xids.unwrap_or(0),
            age_secs: r.secs,
            lag_bytes: r.lag,
        })
        .collect();
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
