//! The dashboard's figure panels: sizes, rows, vacuum.

use super::*;

pub(super) fn draw_sizes(frame: &mut Frame, area: Rect, app: &App, s: &Snapshot, t: &Theme) {
    let mut lines = if let Some(why) = &s.blocked_by {
        vec![
            Line::from(Span::styled("not probed:", t.warn())),
            Line::from(sanitize::line(why)),
        ]
    } else {
        vec![
            kv("total", format::bytes(s.sizes.total_bytes), t),
            kv("table", format::bytes(s.sizes.table_bytes), t),
            kv("indexes", format::bytes(s.sizes.index_bytes), t),
            kv("TOAST", format::bytes(s.sizes.toast_bytes), t),
        ]
    };
    if let Some(g) = app.dash.growth_bytes() {
        lines.push(kv("growth", format::signed_bytes(g), t));
    }
    if s.partitioned {
        lines.push(Line::from(Span::styled("partitioned: sums", t.dim())));
    }
    frame.render_widget(Paragraph::new(lines).block(block("Size", t)), area);
}

pub(super) fn draw_rows(frame: &mut Frame, area: Rect, s: &Snapshot, t: &Theme) {
    let title = match s.rows.basis {
        _ if s.rows.exact => "Rows (exact)",
        crate::db::snapshot::RowsBasis::CountedSince => "Rows (~ carried)",
        _ => "Rows (~ estimated)",
    };
    let b = block(title, t);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    // Without a mapped expiry nothing is expired or expiring as far as idemtop can tell: the
    // total stands, the rest says what to map. A permanent ledger has nothing that expires.
    let no_expiry = s.mapping.na(crate::db::shape::Role::Expiry);
    if no_expiry.is_some() || s.mapping.columns.permanent {
        let why =
            no_expiry.unwrap_or_else(|| "none: a permanent ledger (rows never expire)".into());
        frame.render_widget(
            Paragraph::new(vec![
                Line::from(vec![
                    Span::styled("total ", t.label()),
                    Span::styled(approx(s.rows.total, s.rows.exact), t.value()),
                ]),
                Line::from(vec![
                    Span::styled("expired ", t.label()),
                    Span::styled(why, t.dim()),
                ]),
            ])
            .wrap(Wrap { trim: false }),
            inner,
        );
        return;
    }
    let [text, gauge, rest] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .areas(inner);
    let r = &s.rows;
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(vec![
                Span::styled("live ", t.label()),
                Span::styled(approx(r.live, r.exact), t.ok()),
                Span::styled("  expired ", t.label()),
                Span::styled(approx(r.expired, r.expired_exact), t.warn()),
            ]),
            Line::from(vec![
                Span::styled("total ", t.label()),
                Span::styled(approx(r.total, r.exact), t.value()),
            ]),
        ]),
        text,
    );
    let share = if r.total > 0 {
        r.expired as f64 / r.total as f64
    } else {
        0.0
    };
    frame.render_widget(
        Gauge::default()
            .gauge_style(t.gauge())
            .ratio(share.clamp(0.0, 1.0))
            .label(format!("{} expired", format::percent(share))),
        gauge,
    );
    let h = &s.horizon;
    let lag = match r.oldest_expired_at {
        Some(_) => format::duration_secs(r.cleanup_lag_secs),
        None => "none".into(),
    };
    let lag_style = if r.cleanup_lag_secs > 2.0 * 3600.0 {
        t.crit()
    } else {
        t.value()
    };
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(vec![
                Span::styled("cleanup lag ", t.label()),
                Span::styled(lag, lag_style),
            ]),
            Line::from(vec![
                Span::styled("expire ≤1h ", t.label()),
                Span::raw(approx(h.within_1h, h.exact)),
                Span::styled(" ≤6h ", t.label()),
                Span::raw(approx(h.within_6h, h.exact)),
            ]),
            Line::from(vec![
                Span::styled("      ≤24h ", t.label()),
                Span::raw(approx(h.within_24h, h.exact)),
                Span::styled(" later ", t.label()),
                Span::raw(approx(h.later, h.exact)),
            ]),
        ]),
        rest,
    );
}

pub(super) fn draw_vacuum(frame: &mut Frame, area: Rect, s: &Snapshot, t: &Theme) {
    let v = &s.vacuum;
    if !s.counters_maintained() {
        // Replay does not maintain pg_stat_user_tables on a standby: its zeros mean nothing.
        let na = crate::db::snapshot::NA_ON_STANDBY;
        let mut lines: Vec<Line> = ["live tup ", "dead tup ", "vacuum   ", "analyze  "]
            .into_iter()
            .map(|l| Line::from(vec![Span::styled(l, t.label()), Span::styled(na, t.dim())]))
            .collect();
        if let Some(h) = v.xmin_horizon.as_ref().and_then(|h| h.holder.as_ref()) {
            lines.push(Line::from(vec![
                Span::styled("xmin     ", t.label()),
                Span::styled(sanitize::line(&holder_short(h)), t.warn()),
            ]));
        }
        frame.render_widget(Paragraph::new(lines).block(block("Vacuum", t)), area);
        return;
    }
    let ratio = v.dead_ratio();
    let ratio_style = if ratio > 0.2 {
        t.crit()
    } else if ratio > 0.1 {
        t.warn()
    } else {
        t.value()
    };
    let mut lines = vec![
        Line::from(vec![
            Span::styled("live tup ", t.label()),
            Span::styled(count(v.n_live_tup), t.value()),
        ]),
        Line::from(vec![
            Span::styled("dead tup ", t.label()),
            Span::styled(count(v.n_dead_tup), ratio_style),
            Span::styled(format!(" ({})", format::percent(ratio)), ratio_style),
        ]),
        Line::from(vec![
            Span::styled("vacuum   ", t.label()),
            Span::raw(format::ago_short(v.last_vacuum, s.taken_at)),
        ]),
        Line::from(vec![
            Span::styled("autovac  ", t.label()),
            Span::raw(format::ago_short(v.last_autovacuum, s.taken_at)),
        ]),
        Line::from(vec![
            Span::styled("analyze  ", t.label()),
            Span::raw(format::ago_short(v.last_any_analyze(), s.taken_at)),
            Span::styled(
                if v.last_autoanalyze >= v.last_analyze && v.last_autoanalyze.is_some() {
                    " (auto)"
                } else {
                    ""
                },
                t.dim(),
            ),
        ]),
    ];
    if let Some(x) = &v.xmin_horizon {
        if let Some(h) = &x.holder {
            let kept = x
                .unremovable
                .map(|n| format!(" ~{}", format::compact(n)))
                .unwrap_or_default();
            lines.push(Line::from(vec![
                Span::styled("xmin     ", t.label()),
                Span::styled(
                    format!("{}{kept}", sanitize::line(&holder_short(h))),
                    t.warn(),
                ),
            ]));
        }
    }
    if let Some(r) = &v.running {
        lines.push(Line::from(vec![
            Span::styled("RUNNING  ", t.warn()),
            Span::raw(format!(
                "{} {}",
                sanitize::line(&r.phase),
                format::percent(r.fraction())
            )),
        ]));
    }
    frame.render_widget(Paragraph::new(lines).block(block("Vacuum", t)), area);
}

/// The holder in a few words: `pid 4242`, `slot 's'`, `2PC 'gid'`, `standby 'name'`.
pub(super) fn holder_short(h: &crate::db::horizon::Holder) -> String {
    use crate::db::horizon::HolderKind as K;
    let name = h.name.as_deref().unwrap_or("");
    match h.kind {
        K::Backend => format!("pid {}", h.pid.unwrap_or(0)),
        K::PreparedXact => format!("2PC '{name}'"),
        K::ReplicationSlot => format!("slot '{name}'"),
        K::StandbyFeedback => format!("standby '{}'", h.application.as_deref().unwrap_or("")),
    }
}
