//! How much of the table the per-operation facts read: the whole table only while it is small,
//! otherwise a `TABLESAMPLE SYSTEM` sample of about [`SAMPLE_ROWS`] rows; either way at most
//! [`ROW_BOUND`] rows, so the scan's cost does not grow with the table even when the
//! statistics it is planned from are stale (a table never analyzed reads as empty).

use super::*;

/// The most rows one gather reads, whatever the plan: twice the sample it aims at.
pub(super) const ROW_BOUND: i64 = 2 * SAMPLE_ROWS as i64;

/// What to read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct SamplePlan {
    /// Read a `TABLESAMPLE SYSTEM` sample rather than every page.
    pub sampled: bool,
    /// Share of the table's pages to read, in percent (100 when not sampled).
    pub percent: f64,
    /// The row count the plan was made for.
    pub total: i64,
}

impl SamplePlan {
    /// For a table of `total` rows (the snapshot's count: exact, carried forward or estimated).
    pub(super) fn for_rows(total: i64) -> Self {
        let total = total.max(0);
        if total as f64 <= SAMPLE_ROWS {
            return Self {
                sampled: false,
                percent: 100.0,
                total,
            };
        }
        let percent = (SAMPLE_ROWS / total as f64 * 100.0).clamp(0.0001, 100.0);
        Self {
            sampled: percent < 100.0,
            percent,
            total,
        }
    }

    /// The clause after the table's name in `FROM`.
    pub(super) fn tablesample(&self) -> String {
        if self.sampled {
            format!(" TABLESAMPLE SYSTEM ({:.6})", self.percent)
        } else {
            String::new()
        }
    }

    /// The clause that ends the subquery that reads the rows.
    pub(super) fn limit() -> String {
        format!(" LIMIT {ROW_BOUND}")
    }

    /// `(sampled, percent)` as read: when the bound cut the read short, only part of what was
    /// planned was read, and the share is that of the rows read in the table's rows.
    pub(super) fn settle(&self, rows_read: i64) -> (bool, f64) {
        if rows_read < ROW_BOUND {
            return (self.sampled, self.percent);
        }
        let total = self.total.max(rows_read) as f64;
        let read = (rows_read as f64 / total * 100.0).min(self.percent);
        (true, read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_tables_are_read_whole_large_ones_sampled() {
        let small = SamplePlan::for_rows(5_000);
        assert!(!small.sampled);
        assert_eq!(small.tablesample(), "");
        let large = SamplePlan::for_rows(2_000_000);
        assert!(large.sampled);
        assert!((large.percent - 1.0).abs() < 1e-9, "{}", large.percent);
        assert_eq!(large.tablesample(), " TABLESAMPLE SYSTEM (1.000000)");
        assert_eq!(SamplePlan::limit(), " LIMIT 40000");
    }

    #[test]
    fn a_read_cut_short_by_the_bound_says_how_much_it_read() {
        // Stale statistics: the table looked empty and is not.
        let stale = SamplePlan::for_rows(0);
        assert_eq!(stale.settle(100), (false, 100.0));
        let (sampled, percent) = stale.settle(ROW_BOUND);
        assert!(sampled);
        assert!((percent - 100.0).abs() < 1e-9);
        // Planned on 100k rows, the bound hit: 40% of them read.
        let plan = SamplePlan {
            sampled: false,
            percent: 100.0,
            total: 100_000,
        };
        let (sampled, percent) = plan.settle(ROW_BOUND);
        assert!(sampled);
        assert!((percent - 40.0).abs() < 1e-9, "{percent}");
    }
}
