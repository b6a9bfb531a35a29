//! The targets and whether each one passed.

use super::*;

// ---------------------------------------------------------------------------------------------
// Targets and the printed table

pub(super) fn targets(
    refresh: &RefreshReport,
    paging: &PagingReport,
    mem: &MemoryReport,
    stall: &StallReport,
    cleanup: Option<&CleanupReport>,
) -> Vec<TargetCheck> {
    let mut out = Vec::new();
    let mut check = |name: &str, value: String, target: &str, pass: Option<bool>| {
        out.push(TargetCheck {
            name: name.into(),
            value,
            target: target.into(),
            pass,
        })
    };
    check(
        "refresh server time (median)",
        format!("{:.2} ms", refresh.idemtop.server.median_ms),
        "<= 5 ms",
        Some(refresh.idemtop.server.median_ms <= 5.0),
    );
    check(
        "refresh: guide / idemtop server time",
        format!("{:.0}x", refresh.ratio_server),
        ">= 150x",
        Some(refresh.ratio_server >= 150.0),
    );
    let worst_keyset = paging
        .pages
        .iter()
        .filter(|p| p.method == "keyset")
        .map(|p| p.server.median_ms)
        .fold(0.0, f64::max);
    check(
        "records page, any depth (keyset, median)",
        format!("{worst_keyset:.2} ms"),
        "<= 5 ms",
        Some(worst_keyset <= 5.0),
    );
    match cleanup {
        Some(c) => {
            check(
                "cleanup throughput vs single DELETE",
                format!("{:.2}x", c.throughput_ratio),
                ">= 0.5x",
                Some(c.throughput_ratio >= 0.5),
            );
            check(
                "insert p99 during cleanup vs idle",
                format!(
                    "{:.1}x ({:.1} / {:.1} ms)",
                    c.idemtop.p99_vs_idle, c.idemtop.during.p99_ms, c.idemtop.idle.p99_ms
                ),
                "<= 3x",
                Some(c.idemtop.p99_vs_idle <= 3.0),
            );
        }
        None => {
            check(
                "cleanup throughput vs single DELETE",
                "skipped".into(),
                ">= 0.5x",
                None,
            );
            check(
                "insert p99 during cleanup vs idle",
                "skipped".into(),
                "<= 3x",
                None,
            );
        }
    }
    let rss_mb = mem.rss_max_kb as f64 / 1024.0;
    check(
        "dashboard RSS (max)",
        format!("{rss_mb:.1} MB"),
        "<= 30 MB",
        Some(rss_mb <= 30.0),
    );
    check(
        "refreshes never overlap (max in flight)",
        format!("{}", stall.max_refreshes_in_flight),
        "<= 1",
        Some(stall.max_refreshes_in_flight <= 1),
    );
    check(
        "key to frame while locked (max)",
        format!("{:.1} ms", stall.key_to_frame_stall.max_ms),
        "<= 100 ms (guideline)",
        Some(stall.key_to_frame_stall.n > 0 && stall.key_to_frame_stall.max_ms <= 100.0),
    );
    out
}
