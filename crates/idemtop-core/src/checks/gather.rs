//! The facts a snapshot lacks (grants, the TTL and status distribution per operation,
//! pg_cron), each cheap and bounded, and one whole `check` run.

use super::*;

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
        self.forbidden_on(false)
    }

    /// The privileges forbidden on a table: TRUNCATE always; UPDATE (also per column) unless
    /// the table is a state machine (an in-flight state that requests update as they finish).
    pub fn forbidden_on(&self, state_machine: bool) -> Vec<String> {
        let mut out = Vec::new();
        if state_machine {
        } else if self.has("UPDATE") {
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
    /// When they were read (this machine's clock). A session reuses them for up to
    /// [`OPERATION_FACTS_REUSE`]: the checks say how old they are.
    pub read_at: Option<chrono::DateTime<chrono::Utc>>,
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

    /// [`OperationFacts::describe`], and how long before `now` they were read when that is a
    /// minute or more (a session reuses them: see [`OPERATION_FACTS_REUSE`]).
    pub fn describe_at(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        let how = self.describe();
        match self.read_at.map(|at| (now - at).num_seconds()) {
            Some(age) if age >= 60 => {
                format!(
                    "{how}, read {} ago",
                    crate::format::duration_secs(age as f64)
                )
            }
            _ => how,
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
/// local `statement_timeout` ([`GATHER_TIMEOUT`]), without parallel workers, and reads a
/// `TABLESAMPLE SYSTEM` sample unless the table is small, never more than
/// `sample::ROW_BOUND` rows; a fact that fails is kept as its error. Fails only
/// when the connection itself is lost.
pub async fn gather(
    conn: &mut PgConnection,
    table: &TableRef,
    snap: &Snapshot,
    cfg: &Config,
) -> Result<Extras> {
    gather_cached(conn, table, snap, cfg, &mut GatherCache::default(), true).await
}

/// How long the per-operation facts (the TTL sample, the costliest read of a gather: tens of
/// ms of server CPU on a large table) are reused by a session that gathers again and again.
/// TTLs and status mixes change with deployments, not from one refresh to the next.
pub const OPERATION_FACTS_REUSE: std::time::Duration = std::time::Duration::from_secs(600);

/// What a session that gathers again and again reuses ([`gather_cached`]).
#[derive(Debug, Default, Clone)]
pub struct GatherCache {
    operations: Option<(std::time::Instant, OperationFacts)>,
}

impl GatherCache {
    /// The per-operation facts read less than [`OPERATION_FACTS_REUSE`] ago, if any.
    pub fn operations(&self) -> Option<&OperationFacts> {
        self.operations
            .as_ref()
            .filter(|(at, _)| at.elapsed() < OPERATION_FACTS_REUSE)
            .map(|(_, f)| f)
    }
}

/// [`gather`] on a session that gathers again and again: the per-operation facts read less
/// than [`OPERATION_FACTS_REUSE`] ago are reused unless `fresh` (the operator's `r`, after an
/// action). Everything else (grants, owner, pg_cron) is read every time.
pub async fn gather_cached(
    conn: &mut PgConnection,
    table: &TableRef,
    snap: &Snapshot,
    cfg: &Config,
    cache: &mut GatherCache,
    fresh: bool,
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

    let reuse = if fresh { None } else { cache.operations() };
    extras.operations = if let Some(b) = &snap.blocked_by {
        Err(format!("not read: {}", sanitize::line(b)))
    } else if let Some(facts) = reuse {
        Ok(facts.clone())
    } else {
        let read = keep(operation_facts(conn, table, snap, cfg).await)?;
        if let Ok(facts) = &read {
            cache.operations = Some((std::time::Instant::now(), facts.clone()));
        }
        read
    };

    extras.cron = keep(cron::status(conn).await)?;
    Ok(extras)
}

/// A fact's error as one line, unless the connection is gone (then the whole gather fails).
pub(super) fn keep<T>(r: Result<T>) -> Result<Result<T, String>> {
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

pub(super) async fn grants(conn: &mut PgConnection, table: &TableRef) -> Result<Vec<RoleGrant>> {
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

type OpRow = (
    Option<String>,
    i64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    f64,
    i64,
    i64,
);

pub(super) async fn operation_facts(
    conn: &mut PgConnection,
    table: &TableRef,
    snap: &Snapshot,
    cfg: &Config,
) -> Result<OperationFacts> {
    let plan = super::sample::SamplePlan::for_rows(snap.rows.total);
    let (sample, limit) = (plan.tablesample(), super::sample::SamplePlan::limit());
    let (ops, ttls): (Vec<String>, Vec<f64>) = cfg
        .retention
        .per_operation
        .iter()
        .map(|(op, h)| (op.clone(), h * 3600.0))
        .unzip();
    // The mapped columns; what is not mapped is NULL (the checks that need it are n/a).
    let m = &snap.mapping.sql;
    let op = m.operation.clone().unwrap_or_else(|| "'(all)'".into());
    let at = m.expires_at().unwrap_or_else(|| "NULL::timestamptz".into());
    let created = m
        .created
        .clone()
        .unwrap_or_else(|| "NULL::timestamptz".into());
    let status = m.status.clone().unwrap_or_else(|| "NULL::int".into());
    let sql = format!(
        "WITH p(op, ttl) AS (SELECT * FROM unnest($1::text[], $2::float8[])),
              r AS (SELECT {op} AS operation,
                           extract(epoch FROM ({at}) - {created})::float8 AS ttl,
                           {status} AS status_code
                      FROM {q}{sample}
                     -- 'infinity' has no TTL (and subtracting it is an error before 17)
                     WHERE coalesce(isfinite({at}) AND isfinite({created}), true){limit})
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
    let mut tx = crate::db::connect::begin_bounded_serial(&mut *conn, GATHER_TIMEOUT).await?;
    let rows: Result<Vec<OpRow>, sqlx::Error> = sqlx::query_as(&sql)
        .bind(&ops)
        .bind(&ttls)
        .bind(cfg.retention.default_hours * 3600.0)
        .bind(cfg.thresholds.retention_excess.slack_secs)
        .fetch_all(&mut *tx)
        .await;
    let _ = tx.rollback().await;
    let rows = rows?;
    let (sampled, percent) = plan.settle(rows.iter().map(|r| r.1).sum());
    Ok(OperationFacts {
        sampled,
        sample_percent: percent,
        read_at: Some(chrono::Utc::now()),
        operations: rows
            .into_iter()
            .map(|r| OperationFact {
                operation: r.0.unwrap_or_else(|| "(null)".into()),
                rows: r.1,
                ttl_min_secs: r.2.unwrap_or(0.0),
                ttl_median_secs: r.3.unwrap_or(0.0),
                ttl_max_secs: r.4.unwrap_or(0.0),
                policy_secs: r.5,
                over_policy: r.6,
                s5xx: r.7,
            })
            .collect(),
    })
}

/// Two snapshots [`RATE_WINDOW`] apart (so the replay rate is known), the extras, the checks.
pub async fn run_once(
    conn: &mut PgConnection,
    table: &TableRef,
    cfg: &Config,
) -> Result<(Snapshot, Vec<CheckResult>)> {
    let started = tokio::time::Instant::now();
    let first =
        crate::refresh::refresh_with(conn, table, &cfg.tables, cfg.snapshot_options()).await?;
    let extras = gather(conn, table, &first, cfg).await?;
    tokio::time::sleep_until(started + RATE_WINDOW).await;
    let snap =
        crate::refresh::refresh_with(conn, table, &cfg.tables, cfg.snapshot_options()).await?;
    let checks = evaluate(&snap, Some(&first), &extras, cfg);
    Ok((snap, checks))
}
