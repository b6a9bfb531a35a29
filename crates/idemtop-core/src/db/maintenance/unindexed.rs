//! A cleanup of a table with no index leading with `expires_at`: what it will cost, said before
//! it starts (by the plan's reason, which the dry run prints too; by `idemtop cleanup` on
//! stderr; by the dashboard's confirmation). Without that index the index walk has nothing to
//! walk: every batch reads the whole table to find its rows (71.6 s instead of ~1 s was
//! measured for a backlog the sweep clears in one pass), while the heap sweep reads it once.

use super::Method;
use crate::format;

/// Rows per walk batch assumed for the estimate (the adaptive walk starts at 2,000 rows).
const WALK_BATCH_ROWS: u64 = 2_000;

/// One sentence: what the cleanup reads without the index, and what fixes it. `heap_bytes`:
/// the table's heap; `expired`: the backlog when counted.
pub fn warning(method: Method, heap_bytes: i64, expired: Option<u64>) -> String {
    let heap = format::bytes(heap_bytes.max(0));
    let fix = "CREATE INDEX CONCURRENTLY ON the table (expires_at) makes cleanups cheap";
    match method {
        Method::Sweep => format!(
            "no index leads with expires_at: the cleanup sweeps the heap, reading all {heap} \
             once; {fix}"
        ),
        Method::Walk => {
            let batches = expired
                .map(|n| n.div_ceil(WALK_BATCH_ROWS).max(1))
                .map(|b| format!(", ~{} batches in all", format::count(b as i64)))
                .unwrap_or_default();
            format!(
                "WARNING: no index leads with expires_at, yet the index walk was chosen: each \
                 batch reads the whole table ({heap}){batches}; use --method sweep, or {fix}"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warning_says_what_is_read_and_how_to_avoid_it() {
        let sweep = warning(Method::Sweep, 1 << 30, Some(600_000));
        assert!(sweep.contains("sweeps the heap"), "{sweep}");
        assert!(sweep.contains("all 1 GiB once"), "{sweep}");
        assert!(sweep.contains("CREATE INDEX CONCURRENTLY"), "{sweep}");
        let walk = warning(Method::Walk, 1 << 30, Some(600_000));
        assert!(walk.starts_with("WARNING"), "{walk}");
        assert!(walk.contains("~300 batches"), "{walk}");
        assert!(walk.contains("--method sweep"), "{walk}");
        let uncounted = warning(Method::Walk, 1 << 20, None);
        assert!(
            uncounted.contains("each batch reads the whole table (1 MiB); use"),
            "{uncounted}"
        );
    }
}
