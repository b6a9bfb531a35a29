//! The report as a table for the terminal.

use super::*;

pub(super) fn mb(bytes: i64) -> String {
    idemtop_core::format::bytes(bytes)
}

/// Sections 5 (key to frame on the real binary) and 6 (steady-state watching).
fn render_keyframe_watch(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    match &r.keyframe {
        Some(k) => {
            let _ = writeln!(s, "5. Key to frame on the real binary: {}", k.method);
            for run in [&k.locked, &k.operations_10k].into_iter().flatten() {
                let _ = writeln!(
                    s,
                    "   {:<62} median {:>6.1} ms, p95 {:>6.1} ms, max {:>6.1} ms ({} keys, {} missed); RSS max {:.1} MB; {}",
                    run.what,
                    run.key_to_frame.median_ms,
                    run.key_to_frame.p95_ms,
                    run.key_to_frame.max_ms,
                    run.keys,
                    run.missed,
                    run.rss_max_kb as f64 / 1024.0,
                    run.note
                );
            }
            for why in &k.skipped {
                let _ = writeln!(s, "   {why}");
            }
            let _ = writeln!(s);
        }
        None => {
            let _ = writeln!(s, "5. Key to frame on the real binary: not run\n");
        }
    }
    match &r.watch {
        Some(w) => {
            let _ = writeln!(
                s,
                "6. Steady-state watching: each tool alone, {} s windows x {} rounds (order rotating), \
                 {:.0} inserts/s, {} s refresh; server CPU of the tool's backends + reaped children",
                w.window_secs, w.rounds, w.insert_rate, w.refresh_secs
            );
            for t in &w.tools {
                let _ = writeln!(
                    s,
                    "   {:<22} {:>8.3} s CPU/min (min {:.3}, max {:.3}) = {:>7.2} ms per refresh   ({})",
                    t.name,
                    t.cpu_s_per_min_median,
                    t.cpu_s_per_min_min,
                    t.cpu_s_per_min_max,
                    t.cpu_ms_per_refresh,
                    t.how
                );
                if let Some(note) = &t.periodic_note {
                    let _ = writeln!(
                        s,
                        "   {:<22} {:>8.3} s CPU/min steady state ({note})",
                        "",
                        t.steady_s_per_min()
                    );
                }
            }
            if let Some(why) = &w.pg_activity_missing {
                let _ = writeln!(s, "   {why}");
            }
            let _ = writeln!(s);
        }
        None => {
            let _ = writeln!(s, "6. Steady-state watching: not run\n");
        }
    }
    s
}

/// The report as a readable table.
pub fn render(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let d = &r.data;
    let _ = writeln!(s, "idemtop bench");
    let _ = writeln!(s, "  command : {}", r.command);
    let _ = writeln!(
        s,
        "  server  : PostgreSQL {} on {} cores, {:.0} GB RAM; {}",
        r.server.version,
        r.server.cores,
        r.server.memory_gb,
        r.server
            .settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(
        s,
        "  data    : {} rows, {} expired ({:.1}%), created_at over {:.0} h, {}, {} operations, \
         payload avg {:.0} B; table {} + indexes {} = {}; built in {:.0} s, VACUUM ANALYZE {:.0} s",
        idemtop_core::format::count(d.rows),
        idemtop_core::format::count(d.expired),
        d.expired_share * 100.0,
        d.spread_hours,
        d.layout.describe(),
        d.operations,
        d.avg_payload_bytes,
        mb(d.table_bytes),
        mb(d.index_bytes),
        mb(d.total_bytes),
        d.backfill_secs,
        d.vacuum_analyze_secs
    );
    let _ = writeln!(
        s,
        "  timing  : {}; CPU: {}",
        r.server.server_time_source, r.server.cpu_source
    );
    let _ = writeln!(s);

    match &r.refresh {
        Some(rf) => {
            let _ = writeln!(s, "1. Refresh cost (warm, per refresh)          server median   p95        client median   server CPU");
            for side in [
                &rf.guide,
                &rf.idemtop,
                &rf.idemtop_exact_pass,
                &rf.idemtop_gather,
                &rf.idemtop_gather_sample,
            ] {
                let _ = writeln!(
                    s,
                    "   {:<52} {:>10.2} ms {:>8.2} ms {:>10.2} ms {:>10.2} ms   ({} reps{})",
                    side.what,
                    side.server.median_ms,
                    side.server.p95_ms,
                    side.client.median_ms,
                    side.cpu_ms,
                    side.reps,
                    if side.statements > 0 {
                        format!(", {} statements", side.statements)
                    } else {
                        String::new()
                    }
                );
            }
            for st in rf.idemtop.breakdown.iter().take(3) {
                let _ = writeln!(
                    s,
                    "     idemtop statement {:>6.2} ms/refresh: {}",
                    st.ms_per_refresh,
                    st.query.chars().take(90).collect::<String>()
                );
            }
            let _ = writeln!(
                s,
                "   rounds (guide / idemtop server median): {}",
                rf.rounds
                    .iter()
                    .map(|(o, g, i)| format!("{o}: {g:.2} / {i:.2} ms"))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            let _ = writeln!(s, "   exact pass: {}", rf.exact_schedule);
            let _ = writeln!(
                s,
                "   idemtop amortised per 2 s refresh ({}, checks every 30 s, their TTL sample every {} s): \
                 server {:.3} ms, CPU {:.3} ms = {:.3} s CPU/min",
                match rf.exact_interval_secs {
                    Some(i) => format!("exact pass every {i:.0} s"),
                    None => "no exact pass on schedule".to_string(),
                },
                idemtop_core::checks::OPERATION_FACTS_REUSE.as_secs(),
                rf.amortised_server_ms,
                rf.amortised_cpu_ms,
                rf.amortised_cpu_ms * 30.0 / 1000.0
            );
            let _ = writeln!(
                s,
                "   HEADLINE guide/idemtop, amortised: server CPU {:.0}x, server time {:.0}x \
                 (refresh alone, between passes: CPU {:.0}x, server time {:.0}x)",
                rf.ratio_cpu_amortised, rf.ratio_server_amortised, rf.ratio_cpu, rf.ratio_server
            );
            let _ = writeln!(
                s,
                "   idemtop estimated {} rows, {} expired{}",
                idemtop_core::format::count(rf.estimate_total),
                idemtop_core::format::count(rf.estimate_expired),
                if rf.estimate_expired_exact {
                    " (exact)"
                } else {
                    " (estimate)"
                }
            );
            let _ = writeln!(s);
        }
        None => {
            let _ = writeln!(s, "1. Refresh cost: not run\n");
        }
    }
    match &r.paging {
        Some(pg) => {
            let _ = writeln!(
                s,
                "2. Records page ({} rows)                      server median   p95        client median",
                pg.page_rows
            );
            for p in &pg.pages {
                let _ = writeln!(
                    s,
                    "   {:<17} {:<22} {:>10.2} ms {:>8.2} ms {:>10.2} ms   ({} at row {})",
                    p.sort,
                    format!("{} {}", p.method.split(' ').next().unwrap_or(""), p.label),
                    p.server.median_ms,
                    p.server.p95_ms,
                    p.client.median_ms,
                    p.method,
                    idemtop_core::format::count(p.depth_rows)
                );
            }
            let _ = writeln!(
                s,
                "   keyset page equals the OFFSET page at the same depth: {}",
                if pg.keyset_matches_offset {
                    "yes"
                } else {
                    "NO"
                }
            );
            let _ = writeln!(s);
        }
        None => {
            let _ = writeln!(s, "2. Records page: not run\n");
        }
    }
    match &r.dashboard_memory {
        Some(m) => {
            let _ = writeln!(
                s,
                "3. Dashboard memory: {} for {:.0} s ({} page-downs, {} details, every screen)",
                m.method, m.secs, m.page_keys, m.details_opened
            );
            let _ = writeln!(
                s,
                "   VmRSS after start {:.1} MB, at end {:.1} MB, max {:.1} MB, VmHWM {:.1} MB; {}",
                m.rss_start_kb as f64 / 1024.0,
                m.rss_end_kb as f64 / 1024.0,
                m.rss_max_kb as f64 / 1024.0,
                m.hwm_kb as f64 / 1024.0,
                m.note
            );
            let _ = writeln!(s);
        }
        None => {
            let _ = writeln!(s, "3. Dashboard memory: not run\n");
        }
    }
    match &r.ui_stall {
        Some(u) => {
            let _ = writeln!(
                s,
                "4. Dashboard while another session holds ACCESS EXCLUSIVE for {:.1} s (in-process, TestBackend 120x36)",
                u.lock_secs
            );
            let _ = writeln!(
                s,
                "   key to frame: stall p99 {:.2} ms, max {:.2} ms ({} keys); whole run max {:.2} ms; frame draw max {:.2} ms (stall), {:.2} ms (all, {} frames)",
                u.key_to_frame_stall.p99_ms,
                u.key_to_frame_stall.max_ms,
                u.keys_during_stall,
                u.key_to_frame_all.max_ms,
                u.draw_stall.max_ms,
                u.draw_all.max_ms,
                u.frames
            );
            let _ = writeln!(
                s,
                "   refreshes during the stall: {} sent, {} done (max {:.0} ms), {} saw the lock and skipped the probes; \
                 {} due ticks skipped while one was in flight; max in flight {}",
                u.refreshes_requested_stall,
                u.refreshes_completed_stall,
                u.refresh_max_ms_stall,
                u.blocked_snapshots,
                u.ticks_skipped_in_flight,
                u.max_refreshes_in_flight
            );
            let _ = writeln!(
                s,
                "   record pages asked for during the stall: key to data median {:.0} ms, max {:.0} ms ({} loads; they wait for the lock)",
                u.page_key_to_data_stall.median_ms,
                u.page_key_to_data_stall.max_ms,
                u.page_key_to_data_stall.n
            );
            let _ = writeln!(s);
        }
        None => {
            let _ = writeln!(s, "4. Dashboard under a locked table: not run\n");
        }
    }
    s.push_str(&render_keyframe_watch(r));

    match &r.cleanup {
        Some(c) => {
            let _ = writeln!(
                s,
                "7. Cleanup on a fresh copy each, with {:.0} inserts/s (the guide's INSERT)",
                c.insert_rate
            );
            let _ = writeln!(s, "   {:<58} {:>10} {:>8} {:>10} {:>9}  insert p50/p99/max during   idle p50/p99/max      p99 vs idle", "", "deleted", "secs", "rows/s", "WAL");
            for side in [&c.guide, &c.idemtop] {
                let _ = writeln!(
                    s,
                    "   {:<58} {:>10} {:>8.2} {:>10.0} {:>9}  {:>6.1}/{:>6.1}/{:>7.1} ms   {:>5.1}/{:>5.1}/{:>6.1} ms   {:>5.1}x{}",
                    side.what,
                    idemtop_core::format::count(side.deleted as i64),
                    side.duration_secs,
                    side.rows_per_sec,
                    mb(side.wal_bytes),
                    side.during.p50_ms,
                    side.during.p99_ms,
                    side.during.max_ms,
                    side.idle.p50_ms,
                    side.idle.p99_ms,
                    side.idle.max_ms,
                    side.p99_vs_idle,
                    match side.batches {
                        Some(b) => format!(
                            "  ({b} batches, {})",
                            side.method.as_deref().unwrap_or("?")
                        ),
                        None => String::new(),
                    }
                );
            }
            let _ = writeln!(
                s,
                "   throughput idemtop/guide: median {:.2}x (min {:.2}, max {:.2}) over {} repetitions, \
                 order alternating; idemtop insert p99 vs idle median {:.1}x, max {:.1}x; the rows \
                 above are the median repetition",
                c.throughput_ratio,
                c.throughput_ratio_min,
                c.throughput_ratio_max,
                c.runs.len(),
                c.p99_vs_idle_median,
                c.p99_vs_idle_max
            );
            let _ = writeln!(
                s,
                "   idemtop insert p99 of all {} inserts during its cleanups (every repetition): {:.1}x idle (the target's figure)",
                c.p99_pooled_samples,
                c.p99_pooled_vs_idle
            );
            let _ = writeln!(
                s,
                "   p99 vs idle divides by the server's idle p99, the median of all {} idle windows: {:.1} ms (windows {:.1}-{:.1} ms)",
                c.runs.len() * 2,
                c.idle_p99_ms,
                c.idle_p99_min_ms,
                c.idle_p99_max_ms
            );
            for run in &c.runs {
                let _ = writeln!(
                    s,
                    "     {} first: guide {:.2} s ({:.0} rows/s), idemtop {:.2} s ({:.0} rows/s, p99 {:.1}x idle): {:.2}x",
                    run.first,
                    run.guide.duration_secs,
                    run.guide.rows_per_sec,
                    run.idemtop.duration_secs,
                    run.idemtop.rows_per_sec,
                    run.idemtop.p99_vs_idle,
                    run.throughput_ratio
                );
            }
        }
        None => {
            let _ = writeln!(s, "7. Cleanup: not run");
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Targets                                                                   value                            target         result");
    for t in &r.targets {
        let _ = writeln!(
            s,
            "  {:<71} {:<32} {:<14} {}",
            t.name,
            t.value,
            t.target,
            match t.pass {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None => "-",
            }
        );
    }
    for n in &r.notes {
        let _ = writeln!(s, "note: {n}");
    }
    let _ = writeln!(s, "total {:.0} s", r.total_secs);
    s
}
