//! Statistics, sizes and indexes from the catalogs and pg_stat (no table scan).

use super::*;

/// The relations that hold the rows: the table itself, or the leaf partitions. A table that
/// is not partitioned stays so while it keeps its oid (the model is read again when the oid
/// changes), so it skips the partition tree.
pub(super) fn rels(partitioned: bool) -> &'static str {
    if partitioned {
        "rels AS (
        SELECT relid FROM pg_partition_tree($1::oid) WHERE isleaf
        UNION ALL
        SELECT $1::oid WHERE NOT EXISTS (SELECT 1 FROM pg_partition_tree($1::oid))
    )"
    } else {
        "rels AS (SELECT $1::oid AS relid)"
    }
}

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
    pub(super) analyze_count: Option<i64>,
    pub(super) n_tup_ins: Option<i64>,
    pub(super) n_tup_del: Option<i64>,
    pub(super) n_tup_upd: Option<i64>,
    pub(super) seq_scan: Option<i64>,
    pub(super) idx_scan: Option<i64>,
    pub(super) blocked_by: Option<String>,
    pub(super) in_recovery: bool,
    pub(super) replay_lag_secs: Option<f64>,
    pub(super) receive_lsn: Option<String>,
    pub(super) replay_lsn: Option<String>,
    pub(super) receive_replay_gap: Option<i64>,
    pub(super) cleanup_function: bool,
    pub(super) current_oid: Option<i64>,
    pub(super) vp_phase: Option<String>,
    pub(super) vp_total: Option<i64>,
    pub(super) vp_scanned: Option<i64>,
    pub(super) vp_vacuumed: Option<i64>,
    pub(super) vp_index_passes: Option<i64>,
    pub(super) vp_pid: Option<i32>,
}

pub(super) struct StatsRow {
    pub(super) now: DateTime<Utc>,
    pub(super) reltuples: f64,
    pub(super) n_live_tup: i64,
    pub(super) n_ins_since_vacuum: i64,
    pub(super) vacuum: Vacuum,
    pub(super) counters: Counters,
    pub(super) blocked_by: Option<String>,
    /// ANALYZE runs (manual and auto) of the relations: what the planner statistics were read
    /// at ([`super::SnapshotCache`]).
    pub(super) analyze_count: i64,
    pub(super) standby: Option<crate::db::horizon::Standby>,
    /// The table's own cleanup function (migration 046) exists in its schema.
    pub(super) cleanup_function: bool,
    /// The oid the table's name has now (None: no such table).
    pub(super) current_oid: Option<i64>,
}

/// The table's statistics and counters, with what every refresh also needs from the server
/// in the same round trip: the refresh's `lock_timeout` (set for the session, before anything
/// could wait on a lock), the oid the table's name (`qualified`) has now (the model was read
/// for `oid`), a VACUUM running on it, whether the server is a standby, and whether the
/// cleanup function (`cleanup_fn`, `schema.name()`) exists.
pub(super) async fn stats_row(
    conn: &mut PgConnection,
    oid: i64,
    partitioned: bool,
    qualified: &str,
    cleanup_fn: &str,
) -> Result<StatsRow> {
    let r: RawStats = sqlx::query_as(&format!(
        "WITH {rels},
         st AS (SELECT s.* FROM pg_stat_user_tables s JOIN rels USING (relid)),
         vp AS ({progress})
         SELECT set_config('lock_timeout', '500ms', false) IS NOT NULL AS lock_timeout_set,
                to_regclass($3)::oid::int8 AS current_oid,
                (SELECT phase FROM vp) AS vp_phase, (SELECT total FROM vp) AS vp_total,
                (SELECT scanned FROM vp) AS vp_scanned, (SELECT vacuumed FROM vp) AS vp_vacuumed,
                (SELECT index_passes FROM vp) AS vp_index_passes, (SELECT pid FROM vp) AS vp_pid,
                now() AS now,
                pg_is_in_recovery() AS in_recovery,
                CASE WHEN pg_is_in_recovery() THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END AS replay_lag_secs,
                CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()::text END AS receive_lsn,
                CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END AS replay_lsn,
                CASE WHEN pg_is_in_recovery() THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::int8 END AS receive_replay_gap,
                to_regprocedure($2) IS NOT NULL AS cleanup_function,
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
                (SELECT sum(analyze_count + autoanalyze_count)::int8 FROM st) AS analyze_count,
                (SELECT sum(n_tup_ins)::int8 FROM st) AS n_tup_ins,
                (SELECT sum(n_tup_del)::int8 FROM st) AS n_tup_del,
                (SELECT sum(n_tup_upd)::int8 FROM st) AS n_tup_upd,
                (SELECT sum(seq_scan)::int8 FROM st) AS seq_scan,
                (SELECT sum(coalesce(idx_scan, 0))::int8 FROM st) AS idx_scan,
                (SELECT string_agg(what, ', ') FROM ({locks}) l
                  WHERE l.relation = $1::oid OR l.relation IN (SELECT relid FROM rels)) AS blocked_by",
        rels = rels(partitioned),
        progress = crate::db::maintenance::VACUUM_PROGRESS_SQL,
        locks = access_exclusive_locks_sql!()
    ))
    .bind(oid)
    .bind(cleanup_fn)
    .bind(qualified)
    .fetch_one(&mut *conn)
    .await?;
    let running = match (r.vp_phase, r.vp_pid) {
        (Some(phase), Some(pid)) => Some(crate::db::maintenance::VacuumProgress {
            phase,
            heap_blks_total: r.vp_total.unwrap_or(0),
            heap_blks_scanned: r.vp_scanned.unwrap_or(0),
            heap_blks_vacuumed: r.vp_vacuumed.unwrap_or(0),
            index_vacuum_count: r.vp_index_passes.unwrap_or(0),
            pid,
        }),
        _ => None,
    };
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
        analyze_count: r.analyze_count.unwrap_or(0),
        standby: r.in_recovery.then_some(crate::db::horizon::Standby {
            replay_lag_secs: r.replay_lag_secs,
            receive_lsn: r.receive_lsn,
            replay_lsn: r.replay_lsn,
            receive_replay_gap_bytes: r.receive_replay_gap,
        }),
        cleanup_function: r.cleanup_function,
        current_oid: r.current_oid,
    })
}

/// Sizes by three size functions a relation (the total is the table with its TOAST plus the
/// indexes, as `pg_total_relation_size` adds them).
pub(super) async fn sizes(conn: &mut PgConnection, oid: i64, partitioned: bool) -> Result<Sizes> {
    let (table_with_toast, index, toast): (Option<i64>, Option<i64>, Option<i64>) =
        sqlx::query_as(&format!(
            "WITH {rels}
             SELECT sum(pg_table_size(r.relid))::int8,
                    sum(pg_indexes_size(r.relid))::int8,
                    sum(CASE WHEN c.reltoastrelid <> 0
                        THEN pg_total_relation_size(c.reltoastrelid) ELSE 0 END)::int8
               FROM rels r JOIN pg_class c ON c.oid = r.relid",
            rels = rels(partitioned)
        ))
        .bind(oid)
        .fetch_one(&mut *conn)
        .await?;
    let (with_toast, index, toast) = (
        table_with_toast.unwrap_or(0),
        index.unwrap_or(0),
        toast.unwrap_or(0),
    );
    Ok(Sizes {
        total_bytes: with_toast + index,
        table_bytes: with_toast - toast,
        index_bytes: index,
        toast_bytes: toast,
    })
}

/// The indexes of a table that is not partitioned: the counters straight from the statistics
/// functions (what `pg_stat_user_indexes` reads, without the view's joins).
const PLAIN_INDEXES_SQL: &str = "
SELECT c.relname::text,
       coalesce((SELECT a.attname::text FROM pg_attribute a
                  WHERE a.attrelid = $1::oid AND a.attnum = i.indkey[0]), '(expression)'),
       CASE WHEN $2 THEN pg_relation_size(i.indexrelid)::int8 END,
       pg_stat_get_numscans(i.indexrelid)::int8,
       pg_stat_get_tuples_returned(i.indexrelid)::int8,
       pg_stat_get_tuples_fetched(i.indexrelid)::int8,
       i.indisprimary, i.indisunique, i.indisvalid
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = $1::oid
 ORDER BY c.relname";

pub(super) async fn indexes(
    conn: &mut PgConnection,
    oid: i64,
    probe: bool,
    partitioned: bool,
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
    let sql = if partitioned {
        PARTITIONED_INDEXES_SQL
    } else {
        PLAIN_INDEXES_SQL
    };
    let rows: Vec<Row> = sqlx::query_as(sql)
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

const PARTITIONED_INDEXES_SQL: &str = "WITH idx AS (
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
          ORDER BY c.relname";

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
