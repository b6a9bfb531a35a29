//! Statistics, sizes and indexes from the catalogs and pg_stat (no table scan).

use super::*;

/// The relations that hold the rows: the table itself, or the leaf partitions.
pub(super) const RELS: &str = "rels AS (
        SELECT relid FROM pg_partition_tree($1::oid) WHERE isleaf
        UNION ALL
        SELECT $1::oid WHERE NOT EXISTS (SELECT 1 FROM pg_partition_tree($1::oid))
    )";

#[derive(sqlx::FromRow)]
pub(super) struct RawStats {
    pub(super) now: DateTime<Utc>,
    pub(super) reltuples: Option<f64>,
    pub(super) n_live_tup: Option<i64>,
    pub(super) n_dead_tup: Option<i64>,
    pub(super) n_mod_since_analyze: Option<i64>,
    pub(super) n_ins_since_vacuum: Option<i64>,
    pub(super) last_vacuum: Option<DateTime<Utc>>,
    pub(super) last_autovacuum: Option<DateTime<Utc>>,
    pub(super) last_analyze: Option<DateTime<Utc>>,
    pub(super) last_autoanalyze: Option<DateTime<Utc>>,
    pub(super) vacuum_count: Option<i64>,
    pub(super) autovacuum_count: Option<i64>,
    pub(super) n_tup_ins: Option<i64>,
    pub(super) n_tup_del: Option<i64>,
    pub(super) n_tup_upd: Option<i64>,
    pub(super) seq_scan: Option<i64>,
    pub(super) idx_scan: Option<i64>,
    pub(super) blocked_by: Option<String>,
}

pub(super) struct StatsRow {
    pub(super) now: DateTime<Utc>,
    pub(super) reltuples: f64,
    pub(super) n_live_tup: i64,
    pub(super) n_ins_since_vacuum: i64,
    pub(super) vacuum: Vacuum,
    pub(super) counters: Counters,
    pub(super) blocked_by: Option<String>,
}

pub(super) async fn stats_row(conn: &mut PgConnection, oid: i64) -> Result<StatsRow> {
    let r: RawStats = sqlx::query_as(&format!(
        "WITH {RELS},
         st AS (SELECT s.* FROM pg_stat_user_tables s JOIN rels USING (relid))
         SELECT now() AS now,
                (SELECT sum(greatest(c.reltuples, 0))::float8 FROM pg_class c JOIN rels r ON r.relid = c.oid) AS reltuples,
                (SELECT sum(n_live_tup)::int8 FROM st) AS n_live_tup,
                (SELECT sum(n_dead_tup)::int8 FROM st) AS n_dead_tup,
                (SELECT sum(n_mod_since_analyze)::int8 FROM st) AS n_mod_since_analyze,
                (SELECT sum(n_ins_since_vacuum)::int8 FROM st) AS n_ins_since_vacuum,
                (SELECT max(last_vacuum) FROM st) AS last_vacuum,
                (SELECT max(last_autovacuum) FROM st) AS last_autovacuum,
                (SELECT max(last_analyze) FROM st) AS last_analyze,
                (SELECT max(last_autoanalyze) FROM st) AS last_autoanalyze,
                (SELECT sum(vacuum_count)::int8 FROM st) AS vacuum_count,
                (SELECT sum(autovacuum_count)::int8 FROM st) AS autovacuum_count,
                (SELECT sum(n_tup_ins)::int8 FROM st) AS n_tup_ins,
                (SELECT sum(n_tup_del)::int8 FROM st) AS n_tup_del,
                (SELECT sum(n_tup_upd)::int8 FROM st) AS n_tup_upd,
                (SELECT sum(seq_scan)::int8 FROM st) AS seq_scan,
                (SELECT sum(coalesce(idx_scan, 0))::int8 FROM st) AS idx_scan,
                (SELECT string_agg(what, ', ') FROM ({locks}) l
                  WHERE l.relation = $1::oid OR l.relation IN (SELECT relid FROM rels)) AS blocked_by",
        locks = access_exclusive_locks_sql!()
    ))
    .bind(oid)
    .fetch_one(&mut *conn)
    .await?;
    let running = crate::db::maintenance::vacuum_progress(conn, oid as u32).await?;
    Ok(StatsRow {
        now: r.now,
        reltuples: r.reltuples.unwrap_or(0.0),
        n_live_tup: r.n_live_tup.unwrap_or(0),
        n_ins_since_vacuum: r.n_ins_since_vacuum.unwrap_or(0),
        vacuum: Vacuum {
            n_live_tup: r.n_live_tup.unwrap_or(0),
            n_dead_tup: r.n_dead_tup.unwrap_or(0),
            n_mod_since_analyze: r.n_mod_since_analyze.unwrap_or(0),
            last_vacuum: r.last_vacuum,
            last_autovacuum: r.last_autovacuum,
            last_analyze: r.last_analyze,
            last_autoanalyze: r.last_autoanalyze,
            vacuum_count: r.vacuum_count.unwrap_or(0),
            autovacuum_count: r.autovacuum_count.unwrap_or(0),
            running,
            xmin_horizon: None,
        },
        counters: Counters {
            n_tup_ins: r.n_tup_ins.unwrap_or(0),
            n_tup_del: r.n_tup_del.unwrap_or(0),
            n_tup_upd: r.n_tup_upd.unwrap_or(0),
            seq_scan: r.seq_scan.unwrap_or(0),
            idx_scan: r.idx_scan.unwrap_or(0),
        },
        blocked_by: r.blocked_by,
    })
}

pub(super) async fn sizes(conn: &mut PgConnection, oid: i64) -> Result<Sizes> {
    let (total, table, index, toast): (Option<i64>, Option<i64>, Option<i64>, Option<i64>) =
        sqlx::query_as(&format!(
            "WITH {RELS}
             SELECT sum(pg_total_relation_size(r.relid))::int8,
                    sum(pg_table_size(r.relid) - CASE WHEN c.reltoastrelid <> 0
                        THEN pg_total_relation_size(c.reltoastrelid) ELSE 0 END)::int8,
                    sum(pg_indexes_size(r.relid))::int8,
                    sum(CASE WHEN c.reltoastrelid <> 0
                        THEN pg_total_relation_size(c.reltoastrelid) ELSE 0 END)::int8
               FROM rels r JOIN pg_class c ON c.oid = r.relid"
        ))
        .bind(oid)
        .fetch_one(&mut *conn)
        .await?;
    Ok(Sizes {
        total_bytes: total.unwrap_or(0),
        table_bytes: table.unwrap_or(0),
        index_bytes: index.unwrap_or(0),
        toast_bytes: toast.unwrap_or(0),
    })
}

pub(super) async fn indexes(
    conn: &mut PgConnection,
    oid: i64,
    probe: bool,
) -> Result<Vec<IndexStats>> {
    type Row = (
        String,
        String,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        bool,
        bool,
        bool,
    );
    // On a partitioned table the parent's indexes are partitioned indexes: add up their leaves.
    let rows: Vec<Row> = sqlx::query_as(
        "WITH idx AS (
             SELECT i.indexrelid, i.indisprimary, i.indisunique, i.indisvalid
               FROM pg_index i WHERE i.indrelid = $1::oid
         ),
         leaves AS (
             -- pg_inherits, not pg_partition_tree(): it takes no lock on the indexes.
             WITH RECURSIVE tree(parent, relid) AS (
                 SELECT idx.indexrelid, idx.indexrelid FROM idx
                 UNION ALL
                 SELECT tree.parent, inh.inhrelid FROM tree JOIN pg_inherits inh ON inh.inhparent = tree.relid
             )
             SELECT parent, relid FROM tree
         )
         SELECT c.relname::text,
                coalesce((SELECT a.attname::text FROM pg_attribute a
                           WHERE a.attrelid = $1::oid AND a.attnum = (SELECT i.indkey[0] FROM pg_index i WHERE i.indexrelid = idx.indexrelid)),
                         '(expression)'),
                CASE WHEN $2 THEN (SELECT sum(pg_relation_size(l.relid))::int8 FROM leaves l JOIN pg_class lc ON lc.oid = l.relid WHERE l.parent = idx.indexrelid AND lc.relkind = 'i') END,
                (SELECT sum(s.idx_scan)::int8 FROM leaves l JOIN pg_stat_user_indexes s ON s.indexrelid = l.relid WHERE l.parent = idx.indexrelid),
                (SELECT sum(s.idx_tup_read)::int8 FROM leaves l JOIN pg_stat_user_indexes s ON s.indexrelid = l.relid WHERE l.parent = idx.indexrelid),
                (SELECT sum(s.idx_tup_fetch)::int8 FROM leaves l JOIN pg_stat_user_indexes s ON s.indexrelid = l.relid WHERE l.parent = idx.indexrelid),
                idx.indisprimary, idx.indisunique, idx.indisvalid
           FROM idx JOIN pg_class c ON c.oid = idx.indexrelid
          ORDER BY c.relname",
    )
    .bind(oid)
    .bind(probe)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| IndexStats {
            name: r.0,
            column: r.1,
            size_bytes: r.2.unwrap_or(0),
            idx_scan: r.3.unwrap_or(0),
            idx_tup_read: r.4.unwrap_or(0),
            idx_tup_fetch: r.5.unwrap_or(0),
            primary: r.6,
            unique: r.7,
            valid: r.8,
        })
        .collect())
}

/// Which of the guide's indexes exist, by name or, failing that, by leading column.
pub fn expected(indexes: &[IndexStats]) -> Vec<ExpectedIndex> {
    EXPECTED_INDEXES
        .iter()
        .map(|(name, column)| expected_one(indexes, name, column, *column == "expires_at"))
        .collect()
}

fn expected_one(indexes: &[IndexStats], name: &str, column: &str, expiry: bool) -> ExpectedIndex {
    let found_as = indexes
        .iter()
        .find(|i| i.name == name)
        .or_else(|| indexes.iter().find(|i| i.column == column))
        .map(|i| i.name.clone());
    ExpectedIndex {
        name: name.into(),
        column: column.into(),
        expiry,
        found_as,
    }
}

/// The indexes a mapped table should have: the guide's two on the guide's shape; otherwise one
/// on the column in expiry order (the expiry column, or the creation column of a TTL), when
/// rows expire; none for a permanent ledger or an unmapped expiry.
pub fn expected_for(
    indexes: &[IndexStats],
    tm: &TableMapping,
    table: &TableRef,
) -> Vec<ExpectedIndex> {
    if tm.report.is_guide() {
        return expected(indexes);
    }
    let Some(column) = tm.sql.expiry.as_ref().and_then(|e| e.column()) else {
        return Vec::new();
    };
    let name = format!("{}_{}_idx", table.table.as_str(), column);
    vec![expected_one(indexes, &name, column, true)]
}
