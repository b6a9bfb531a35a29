//! Unit tests of the horizon module.

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
