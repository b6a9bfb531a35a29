//! Unit tests of the snapshot module.

use super::*;
use chrono::TimeZone;

fn t(h: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(h)
}

#[test]
fn histogram_interpolates() {
    let b = vec![t(0), t(10), t(20), t(30), t(40)];
    assert_eq!(histogram_fraction(&b, t(-1)), Some(0.0));
    assert_eq!(histogram_fraction(&b, t(40)), Some(1.0));
    assert_eq!(histogram_fraction(&b, t(20)), Some(0.5));
    assert!((histogram_fraction(&b, t(5)).unwrap() - 0.125).abs() < 1e-9);
    assert_eq!(histogram_fraction(&b[..1], t(5)), None);
}

#[test]
fn horizon_from_histogram_adds_up_to_live() {
    // 100 buckets, one per hour from -50 h to +50 h: half expired.
    let b: Vec<_> = (-50..=50).map(t).collect();
    let est = Estimates {
        expires_histogram: b,
        now: Some(t(0)),
        expired_fraction: None,
        operation_mcv: vec![],
    };
    let h = est.horizon(10_000, 5_000);
    assert_eq!(h.within_1h, 100);
    assert_eq!(h.within_6h, 500);
    assert_eq!(h.within_24h, 1_800);
    assert_eq!(h.later, 5_000 - 2_400);
    assert!(!h.exact);
}

#[test]
fn mcv_operations_with_other() {
    let est = Estimates {
        operation_mcv: vec![("a".into(), 0.5), ("b".into(), 0.3)],
        ..Estimates::default()
    };
    let ops = est.operations(1000);
    assert_eq!(
        ops.iter()
            .map(|o| (o.operation.as_str(), o.total))
            .collect::<Vec<_>>(),
        vec![("a", 500), ("b", 300), ("(other)", 200)]
    );
}

#[test]
fn expected_indexes_found_by_name_or_column() {
    let idx = |name: &str, col: &str| IndexStats {
        name: name.into(),
        column: col.into(),
        size_bytes: 0,
        idx_scan: 0,
        idx_tup_read: 0,
        idx_tup_fetch: 0,
        primary: false,
        unique: false,
        valid: true,
    };
    let e = expected(&[
        idx("idx_idempotency_expires", "expires_at"),
        idx("by_op", "operation"),
    ]);
    assert_eq!(e[0].found_as.as_deref(), Some("idx_idempotency_expires"));
    assert_eq!(e[1].found_as.as_deref(), Some("by_op"));
    let e = expected(&[]);
    assert!(e.iter().all(ExpectedIndex::missing));
}
