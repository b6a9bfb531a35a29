//! The operations the dashboard keeps: the largest [`TOP_OPERATIONS`] and one "(other)" row
//! for the rest, folded once when a snapshot arrives (never on a draw). With 10,000 distinct
//! operations the list, every draw and the memory stay the size of a screenful.

use crate::db::snapshot::{OperationStats, StatusCounts};

/// Operations kept by name; the rest become one "(other)" row.
pub const TOP_OPERATIONS: usize = 50;

/// The name of the row that holds every operation not kept by name.
pub const OTHER: &str = "(other)";

/// Keep the `keep` largest operations (by total, as the snapshot orders them) and fold the rest,
/// with any "(other)" row already there, into one "(other)" row at the end. Counts add up; an
/// unknown part (None) makes the sum unknown; the average payload is weighted by rows.
pub fn fold(mut ops: Vec<OperationStats>, keep: usize) -> Vec<OperationStats> {
    let named = ops.iter().filter(|o| o.operation != OTHER).count();
    if named <= keep {
        return ops;
    }
    ops.sort_by(|a, b| {
        (a.operation == OTHER)
            .cmp(&(b.operation == OTHER))
            .then(b.total.cmp(&a.total))
            .then(a.operation.cmp(&b.operation))
    });
    let rest = ops.split_off(keep);
    let mut other = OperationStats {
        operation: OTHER.into(),
        total: 0,
        live: Some(0),
        expired: Some(0),
        avg_payload_bytes: None,
        status: Some(StatusCounts::default()),
        exact: true,
    };
    let (mut payload_sum, mut payload_rows) = (0.0, 0i64);
    let add = |a: Option<i64>, b: Option<i64>| Some(a? + b?);
    for o in &rest {
        other.total += o.total;
        other.live = add(other.live, o.live);
        other.expired = add(other.expired, o.expired);
        other.exact &= o.exact;
        other.status = match (other.status, o.status) {
            (Some(a), Some(b)) => Some(StatusCounts {
                s2xx: a.s2xx + b.s2xx,
                s3xx: a.s3xx + b.s3xx,
                s4xx: a.s4xx + b.s4xx,
                s5xx: a.s5xx + b.s5xx,
                other: a.other + b.other,
            }),
            _ => None,
        };
        if let Some(avg) = o.avg_payload_bytes {
            payload_sum += avg * o.total as f64;
            payload_rows += o.total;
        }
    }
    if payload_rows > 0 {
        other.avg_payload_bytes = Some(payload_sum / payload_rows as f64);
    }
    ops.shrink_to_fit();
    ops.push(other);
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(name: &str, total: i64) -> OperationStats {
        OperationStats {
            operation: name.into(),
            total,
            live: Some(total - 1),
            expired: Some(1),
            avg_payload_bytes: Some(100.0),
            status: Some(StatusCounts {
                s2xx: total,
                ..StatusCounts::default()
            }),
            exact: true,
        }
    }

    #[test]
    fn ten_thousand_operations_become_the_top_ones_and_other() {
        let ops: Vec<OperationStats> = (0..10_000)
            .map(|i| op(&format!("op{i:05}"), 10_000 - i))
            .collect();
        let total: i64 = ops.iter().map(|o| o.total).sum();
        let folded = fold(ops, TOP_OPERATIONS);
        assert_eq!(folded.len(), TOP_OPERATIONS + 1);
        assert_eq!(folded[0].operation, "op00000");
        assert_eq!(folded[TOP_OPERATIONS - 1].operation, "op00049");
        let other = &folded[TOP_OPERATIONS];
        assert_eq!(other.operation, OTHER);
        assert_eq!(folded.iter().map(|o| o.total).sum::<i64>(), total);
        assert_eq!(other.expired, Some(10_000 - TOP_OPERATIONS as i64));
        assert_eq!(other.status.unwrap().s2xx, other.total);
        assert_eq!(other.avg_payload_bytes, Some(100.0));
    }

    #[test]
    fn few_operations_stay_as_they_are_and_an_unknown_part_stays_unknown() {
        let few = vec![op("a", 5), op("b", 3), op(OTHER, 2)];
        assert_eq!(fold(few.clone(), 2), few);
        let mut est = op("c", 1);
        est.live = None;
        est.status = None;
        let folded = fold(vec![op("a", 5), op("b", 3), est, op(OTHER, 2)], 1);
        assert_eq!(
            folded
                .iter()
                .map(|o| o.operation.as_str())
                .collect::<Vec<_>>(),
            vec!["a", OTHER]
        );
        assert_eq!(folded[1].total, 3 + 1 + 2);
        assert_eq!(folded[1].live, None);
        assert_eq!(folded[1].status, None);
        assert_eq!(folded[1].expired, Some(3));
    }
}
