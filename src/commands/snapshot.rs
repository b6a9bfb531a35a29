//! `idemtop snapshot`: one refresh without the UI, by the same code that feeds the dashboard.

use anyhow::Result;

use crate::db::snapshot::{Snapshot, SnapshotOptions};
use crate::format::{self, approx, count};
use crate::options::{Format, Global};
use crate::sanitize;

/// Exit status when the table is locked and nothing was measured.
pub const EXIT_LOCKED: i32 = 4;

/// One snapshot; returns the exit status: 0, or [`EXIT_LOCKED`] when the table is locked (the
/// lock, not figures, is printed: JSON `{"table", "locked": {...}, "error"}`). Other errors are
/// returned (exit 1).
pub async fn run(global: &Global, format: Format, exact: bool) -> Result<i32> {
    let table = global.table_ref()?;
    let mut conn = global.connect_config().connect().await?;
    let opts = SnapshotOptions {
        exact_pass: exact,
        ..SnapshotOptions::default()
    };
    let snap = match crate::worker::refresh(&mut conn, &table, opts).await {
        Ok(snap) => snap,
        Err(e) => {
            let Some(lock) = crate::db::locks::locked_in(&e) else {
                return Err(e);
            };
            let msg = sanitize::line(&e.to_string());
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "table": table.to_string(),
                        "locked": lock,
                        "error": msg,
                    }))?
                ),
                Format::Text => println!("{table}: {msg}"),
            }
            return Ok(EXIT_LOCKED);
        }
    };
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&snap.to_json())?),
        Format::Text => print!("{}", render_text(&snap)),
    }
    Ok(0)
}

/// The human form of a snapshot.
pub fn render_text(s: &Snapshot) -> String {
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    line(format!(
        "{} in {} (PostgreSQL {}) at {}{}",
        s.table,
        sanitize::line(&s.database),
        sanitize::line(&s.server_version),
        s.taken_at.format("%Y-%m-%d %H:%M:%S UTC"),
        if s.partitioned { ", partitioned" } else { "" }
    ));
    if let Some(b) = &s.blocked_by {
        line(format!("not probed: {}", sanitize::line(b)));
    }
    line(format!(
        "size     total {}  table {}  indexes {}  toast {}",
        format::bytes(s.sizes.total_bytes),
        format::bytes(s.sizes.table_bytes),
        format::bytes(s.sizes.index_bytes),
        format::bytes(s.sizes.toast_bytes)
    ));
    let r = &s.rows;
    line(format!(
        "rows     total {}  live {}  expired {}{}",
        approx(r.total, r.exact),
        approx(r.live, r.exact),
        approx(r.expired, r.expired_exact),
        if r.exact {
            ""
        } else {
            "  (~ = estimate from statistics)"
        }
    ));
    line(format!(
        "cleanup  lag {}  oldest expired {}",
        if r.oldest_expired_at.is_some() {
            format::duration_secs(r.cleanup_lag_secs)
        } else {
            "none".into()
        },
        r.oldest_expired_at
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|| "-".into())
    ));
    let h = &s.horizon;
    line(format!(
        "expiring within 1h {}  6h {}  24h {}  later {}",
        approx(h.within_1h, h.exact),
        approx(h.within_6h, h.exact),
        approx(h.within_24h, h.exact),
        approx(h.later, h.exact)
    ));
    let v = &s.vacuum;
    line(format!(
        "vacuum   live tuples {}  dead tuples {} ({})  last vacuum {}  autovacuum {}  analyze {}  autoanalyze {}",
        count(v.n_live_tup),
        count(v.n_dead_tup),
        format::percent(v.dead_ratio()),
        format::ago(v.last_vacuum, s.taken_at),
        format::ago(v.last_autovacuum, s.taken_at),
        format::ago(v.last_analyze, s.taken_at),
        format::ago(v.last_autoanalyze, s.taken_at)
    ));
    line(format!(
        "operations{}",
        if s.operations_exact {
            ""
        } else {
            " (~ estimated from pg_stats)"
        }
    ));
    for o in &s.operations {
        let opt = |v: Option<i64>| v.map(count).unwrap_or_else(|| "-".into());
        line(format!(
            "  {:<28} total {:>10}  live {:>10}  expired {:>10}",
            sanitize::line(&o.operation),
            approx(o.total, o.exact),
            opt(o.live),
            opt(o.expired)
        ));
    }
    line("indexes".into());
    for i in &s.indexes {
        line(format!(
            "  {:<32} {:>10}  scans {:>10}  read {:>10}  fetched {:>10}{}",
            sanitize::line(&i.name),
            format::bytes(i.size_bytes),
            count(i.idx_scan),
            count(i.idx_tup_read),
            count(i.idx_tup_fetch),
            if !i.valid {
                "  INVALID"
            } else if i.idx_scan == 0 {
                "  never scanned"
            } else {
                ""
            }
        ));
    }
    for e in s.expected_indexes.iter().filter(|e| e.missing()) {
        line(format!("  {:<32} MISSING (index on {})", e.name, e.column));
    }
    out
}
