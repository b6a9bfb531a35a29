//! Unit tests of the partitions module.

use super::*;
use chrono::TimeZone;

fn h(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(n)
}

fn part(lo: i64, now: i64) -> PartitionInfo {
    PartitionInfo {
        name: format!("p{lo}"),
        lower: Some(h(lo)),
        upper: Some(h(lo + 1)),
        is_default: false,
        rows: 10,
        rows_exact: true,
        size_bytes: 100,
        fully_expired: lo < now,
        straddles_now: lo <= now && now < lo + 1,
        detach_pending: false,
        blocked_by: None,
        by_expiry: true,
        ..PartitionInfo::default()
    }
}

#[test]
fn states_and_totals() {
    let parts: Vec<_> = (-3..3).map(|lo| part(lo, 0)).collect();
    let states: Vec<_> = parts.iter().map(|p| p.state()).collect();
    use PartitionState::*;
    assert_eq!(states, [Expired, Expired, Expired, Current, Future, Future]);
    let t = totals(&parts);
    assert_eq!((t.partitions, t.rows, t.size_bytes), (6, 60, 600));
    assert_eq!(
        (t.droppable, t.droppable_rows, t.droppable_bytes),
        (3, 30, 300)
    );
    assert!(t.rows_exact);
}

#[test]
fn coverage_stops_at_the_first_gap() {
    let mut parts: Vec<_> = (-2..5).map(|lo| part(lo, 0)).collect();
    assert_eq!(covered_until(&parts, h(0)), Some(h(5)));
    parts.remove(4); // the hour [2, 3)
    assert_eq!(covered_until(&parts, h(0)), Some(h(2)));
    assert_eq!(covered_until(&parts, h(10)), None);
}
