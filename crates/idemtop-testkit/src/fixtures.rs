//! Deterministic sample data for render and state tests (and nothing else).

use chrono::{DateTime, TimeZone, Utc};

use idemtop_core::db::snapshot::*;

/// 2026-01-01 12:00:00 UTC plus `secs`.
pub fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

fn op(name: &str, total: i64, expired: i64, avg: f64, s5xx: i64) -> OperationStats {
    OperationStats {
        operation: name.into(),
        total,
        live: Some(total - expired),
        expired: Some(expired),
        avg_payload_bytes: Some(avg),
        status: Some(StatusCounts {
            s2xx: total - s5xx - total / 10,
            s3xx: 0,
            s4xx: total / 10,
            s5xx,
            other: 0,
        }),
        exact: true,
    }
}

fn index(name: &str, column: &str, size: i64, scans: i64, primary: bool) -> IndexStats {
    IndexStats {
        name: name.into(),
        column: column.into(),
        size_bytes: size,
        idx_scan: scans,
        idx_tup_read: scans * 3,
        idx_tup_fetch: scans * 2,
        primary,
        unique: primary,
        valid: true,
    }
}

/// A healthy-looking table of 48,210 rows, taken at `at(secs)`, with `inserted` rows
/// inserted since the statistics were reset.
pub fn snapshot(secs: i64, inserted: i64) -> Snapshot {
    let operations = vec![
        op("create_transaction", 18_000, 6_100, 231.0, 12),
        op("get_balance", 11_500, 4_000, 148.0, 0),
        op("payment", 8_200, 5_900, 312.0, 41),
        op("transfer", 6_010, 4_300, 298.0, 3),
        op("refund", 4_500, 1_700, 204.0, 0),
    ];
    let total: i64 = operations.iter().map(|o| o.total).sum();
    let expired: i64 = operations.iter().filter_map(|o| o.expired).sum();
    let indexes = vec![
        index(
            "idempotency_records_pkey",
            "request_id",
            1_540_096,
            91_220,
            true,
        ),
        index(
            "idx_idempotency_expires",
            "expires_at",
            1_105_920,
            1_204,
            false,
        ),
        index("idx_idempotency_operation", "operation", 352_256, 0, false),
    ];
    Snapshot {
        taken_at: at(secs),
        table: "public.idempotency_records".into(),
        database: "app".into(),
        server_version: "15.18".into(),
        partitioned: false,
        refresh_ms: 3.2,
        sizes: Sizes {
            total_bytes: 14_680_064,
            table_bytes: 11_272_192,
            index_bytes: 2_998_272,
            toast_bytes: 409_600,
        },
        rows: Rows {
            basis: idemtop_core::db::snapshot::RowsBasis::Statistics,
            basis_at: None,
            total,
            live: total - expired,
            expired,
            exact: true,
            expired_exact: true,
            oldest_expired_at: Some(at(secs - 5_400)),
            cleanup_lag_secs: 5_400.0,
        },
        horizon: Horizon {
            within_1h: 2_900,
            within_6h: 6_100,
            within_24h: 17_210,
            later: 0,
            exact: true,
        },
        vacuum: Vacuum {
            n_live_tup: total,
            n_dead_tup: 3_120,
            n_mod_since_analyze: 4_400,
            last_vacuum: None,
            last_autovacuum: Some(at(secs - 1_260)),
            last_analyze: Some(at(secs - 7_200)),
            last_autoanalyze: Some(at(secs - 1_250)),
            vacuum_count: 0,
            autovacuum_count: 7,
            running: None,
            xmin_horizon: None,
        },
        counters: Counters {
            n_tup_ins: inserted,
            n_tup_del: inserted / 2,
            n_tup_upd: 0,
            seq_scan: 12,
            idx_scan: 92_424,
        },
        operations,
        operations_exact: true,
        operations_as_of: Some(at(secs)),
        expected_indexes: expected(&indexes),
        indexes,
        cleanup_function: true,
        blocked_by: None,
        standby: None,
        mapping: idemtop_core::db::snapshot::MappingReport::guide(),
        inflight: None,
    }
}
