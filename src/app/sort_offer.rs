//! Which record orders the Records screen offers: only those an index serves. A page in an
//! order no index serves sorts the whole table (2.8 s at 10M rows for "newest first" on the
//! guide's schema, which has no index on `created_at`), so such an order is skipped, and the
//! skip says why and which index would serve it.

use crate::db::records::Sort;
use crate::db::snapshot::IndexStats;

/// True when a valid index leads with the order's column (a B-tree walks it either way).
/// Without a snapshot yet, nothing is known and every order is offered.
pub fn served(sort: Sort, indexes: Option<&[IndexStats]>) -> bool {
    match indexes {
        None => true,
        Some(ix) => ix.iter().any(|i| i.valid && i.column == sort.column()),
    }
}

/// The order after `current` that an index serves, and the orders skipped on the way.
pub fn next_served(current: Sort, indexes: Option<&[IndexStats]>) -> (Sort, Vec<Sort>) {
    let mut skipped = Vec::new();
    let mut s = current;
    for _ in 0..Sort::ALL.len() {
        s = s.next();
        if served(s, indexes) {
            return (s, skipped);
        }
        skipped.push(s);
    }
    // No order is served (no index at all): keep the one on screen.
    (current, Vec::new())
}

/// Why the skipped orders are not offered, in one line.
pub fn why_skipped(skipped: &[Sort]) -> Option<String> {
    let first = skipped.first()?;
    let labels: Vec<&str> = skipped.iter().map(|s| s.label()).collect();
    Some(format!(
        "not offered: {} (no index on {}: each page would sort the whole table; \
         CREATE INDEX CONCURRENTLY ON the table ({}) to offer it)",
        labels.join(", "),
        first.column(),
        first.column()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ix(column: &str) -> IndexStats {
        IndexStats {
            name: format!("idx_{column}"),
            column: column.into(),
            size_bytes: 0,
            idx_scan: 0,
            idx_tup_read: 0,
            idx_tup_fetch: 0,
            primary: false,
            unique: false,
            valid: true,
        }
    }

    #[test]
    fn orders_no_index_serves_are_skipped_and_say_why() {
        // The guide's schema: expires_at and operation are indexed, created_at is not.
        let guide = [ix("request_id"), ix("expires_at"), ix("operation")];
        let (next, skipped) = next_served(Sort::ExpiringLatest, Some(&guide));
        assert_eq!(next, Sort::ExpiringSoonest);
        assert_eq!(skipped, vec![Sort::Newest, Sort::Oldest]);
        let why = why_skipped(&skipped).unwrap();
        assert!(why.contains("newest first, oldest first"), "{why}");
        assert!(why.contains("no index on created_at"), "{why}");
        assert_eq!(
            next_served(Sort::ExpiringSoonest, Some(&guide)),
            (Sort::ExpiringLatest, vec![])
        );
        // With an index on created_at every order is offered.
        let all = [ix("expires_at"), ix("created_at")];
        assert_eq!(
            next_served(Sort::ExpiringLatest, Some(&all)),
            (Sort::Newest, vec![])
        );
        // An invalid index (a failed CREATE INDEX CONCURRENTLY) serves nothing.
        let mut broken = ix("created_at");
        broken.valid = false;
        assert!(!served(Sort::Newest, Some(&[ix("expires_at"), broken])));
        // No index at all: the order on screen stays.
        assert_eq!(next_served(Sort::Oldest, Some(&[])), (Sort::Oldest, vec![]));
        // Nothing known yet: every order.
        assert_eq!(
            next_served(Sort::ExpiringLatest, None),
            (Sort::Newest, vec![])
        );
        assert_eq!(why_skipped(&[]), None);
    }
}
