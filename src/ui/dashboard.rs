//! The dashboard screen: sizes, rows, vacuum health, operations, indexes, history.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Gauge, Paragraph, Row, Sparkline, Table, TableState, Wrap};
use ratatui::Frame;

use super::Theme;
use crate::app::App;
use crate::db::snapshot::Snapshot;
use crate::format::{self, approx, count};
use crate::sanitize;

fn block(title: &str, t: &Theme) -> Block<'static> {
    super::panel(format!(" {title} "), t)
}

fn kv<'a>(label: &'a str, value: String, t: &Theme) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{label:<9}"), t.label()),
        Span::styled(value, t.value()),
    ])
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    // While the table is locked, who holds the lock comes first, above the last figures.
    let area = match &app.dash.lock {
        Some(lock) => {
            let h = if app.dash.current.is_some() {
                7
            } else {
                area.height
            };
            let [blocker, rest] =
                Layout::vertical([Constraint::Length(h), Constraint::Min(0)]).areas(area);
            draw_blocker(frame, blocker, app, lock, t);
            rest
        }
        None => area,
    };
    let Some(snap) = app.dash.current.as_ref() else {
        if area.height == 0 {
            return;
        }
        let msg = match &app.dash.error {
            Some(e) => vec![
                Line::from(Span::styled("Could not read the table:", t.crit())),
                Line::from(sanitize::line(e)),
                Line::from(Span::styled("Retrying…", t.dim())),
            ],
            None => vec![Line::from(Span::styled(
                "Loading the first snapshot…",
                t.dim(),
            ))],
        };
        frame.render_widget(
            Paragraph::new(msg)
                .wrap(Wrap { trim: false })
                .block(block("Dashboard", t)),
            area,
        );
        return;
    };
    // Figures that are not current say so, and how old they are, above them.
    let area = if app.data_stale() {
        let age = app.data_age().map(super::age).unwrap_or_else(|| "?".into());
        let banner_line = Line::from(vec![
            Span::styled(format!("STALE, {age} old: "), t.warn()),
            Span::styled(
                format!(
                    "measured at {}; nothing newer could be read",
                    snap.taken_at.format("%H:%M:%S UTC")
                ),
                t.label(),
            ),
        ]);
        let rows = super::wrapped_rows(&banner_line.to_string(), usize::from(area.width));
        let [banner, rest] =
            Layout::vertical([Constraint::Length(rows), Constraint::Min(0)]).areas(area);
        frame.render_widget(
            Paragraph::new(banner_line).wrap(Wrap { trim: false }),
            banner,
        );
        rest
    } else {
        area
    };
    let busy = app.running.is_some() || snap.vacuum.running.is_some();
    // Sparklines (or the progress of a running action) when there is room or something runs.
    let bottom_h = if busy {
        4
    } else if area.height >= 28 {
        5
    } else {
        0
    };
    let horizon = snap.vacuum.xmin_horizon.as_ref();
    let strip_h = super::horizon::height(app, horizon, area.width, t);
    // The strip only when every panel keeps its room.
    let strip_h = if area.height >= 8 + 6 + strip_h {
        strip_h
    } else {
        0
    };
    let [top, strip, middle, bottom_area] = Layout::vertical([
        Constraint::Length(8),
        Constraint::Length(strip_h),
        Constraint::Min(6),
        Constraint::Length(bottom_h),
    ])
    .areas(area);
    if let (Some(h), true) = (horizon, strip_h > 0) {
        super::horizon::draw(frame, strip, app, h, t);
    }
    if area.height < 8 + 6 {
        // Too short for every panel (a lock or an outage takes room above): the main figures
        // only, whole, rather than every panel squeezed to its borders.
        let [top, _] = Layout::vertical([Constraint::Length(8), Constraint::Min(0)]).areas(area);
        let [sizes, rows, vacuum] = Layout::horizontal([
            Constraint::Percentage(30),
            Constraint::Percentage(36),
            Constraint::Percentage(34),
        ])
        .areas(top);
        draw_sizes(frame, sizes, app, snap, t);
        draw_rows(frame, rows, snap, t);
        draw_vacuum(frame, vacuum, snap, t);
        return;
    }
    let [sizes, rows, vacuum] = Layout::horizontal([
        Constraint::Percentage(30),
        Constraint::Percentage(36),
        Constraint::Percentage(34),
    ])
    .areas(top);
    draw_sizes(frame, sizes, app, snap, t);
    draw_rows(frame, rows, snap, t);
    draw_vacuum(frame, vacuum, snap, t);
    // Operations above indexes: both keep their full width at any terminal size.
    let idx_rows =
        (snap.indexes.len() + snap.expected_indexes.iter().filter(|e| e.missing()).count()) as u16;
    let [ops, idx] = Layout::vertical([
        Constraint::Min(4),
        Constraint::Length((idx_rows + 3).min(middle.height / 2).max(4)),
    ])
    .areas(middle);
    draw_operations(frame, ops, app, snap, t);
    draw_indexes(frame, idx, app, snap, t);
    if busy {
        super::activity::draw_progress(frame, bottom_area, app, t);
    } else if bottom_h > 0 {
        draw_history(frame, bottom_area, app, t);
    }
}

/// The session that holds (or first awaits) the ACCESS EXCLUSIVE lock on the table: who it is,
/// what it does and for how long, the lock, how many wait, and its statement, cut visibly.
fn draw_blocker(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    lock: &crate::db::locks::TableLock,
    t: &Theme,
) {
    let b = block("Blocker: the table is locked, nothing measured", t).border_style(t.crit());
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let opt = |v: &Option<String>| {
        v.as_deref()
            .filter(|v| !v.is_empty())
            .map(sanitize::line)
            .unwrap_or_else(|| "—".into())
    };
    let w = usize::from(inner.width);
    let field = |label: &'static str, value: String, style| {
        vec![
            Span::styled(format!("{label} "), t.label()),
            Span::styled(value, style),
        ]
    };
    let mut line1 = field("pid", lock.pid.to_string(), t.value());
    line1.push(Span::raw("  "));
    line1.extend(field("user", opt(&lock.user), t.value()));
    line1.push(Span::raw("  "));
    line1.extend(field("application", opt(&lock.application), t.value()));
    line1.push(Span::raw("  "));
    line1.extend(field("client", opt(&lock.client), t.value()));
    let mut line2 = field("state", opt(&lock.state), t.warn());
    line2.push(Span::raw("  "));
    line2.extend(field(
        "transaction open for",
        super::lock_xact_age(app, lock).unwrap_or_else(|| "—".into()),
        t.warn(),
    ));
    let line3 = field(
        "lock",
        format!(
            "{} {} on {}",
            sanitize::line(&lock.mode),
            if lock.granted {
                "held"
            } else {
                "requested (waits, and queues everyone after it)"
            },
            sanitize::line(&lock.relation)
        ),
        t.crit(),
    );
    let mut line4 = field(
        "waiting",
        format!(
            "{} {}",
            lock.waiting,
            if lock.waiting == 1 {
                "session"
            } else {
                "sessions"
            }
        ),
        t.crit(),
    );
    line4.push(Span::styled(
        format!("  to end it: SELECT pg_terminate_backend({})", lock.pid),
        t.dim(),
    ));
    // The statement as the server gave it (already cut at 200 characters there): one line,
    // sanitized, and cut with an ellipsis that shows.
    let query = lock.query.as_deref().unwrap_or("");
    let mut query = sanitize::line(query.trim());
    if lock
        .query
        .as_deref()
        .is_some_and(|q| q.chars().count() >= 200)
    {
        query.push('…');
    }
    let query = format::fit(&query, w.saturating_sub(6));
    let fit_line = |spans: Vec<Span<'static>>| {
        // A line too long for the panel is cut visibly, never silently.
        let text: String = spans.iter().map(|s| s.content.as_ref()).collect();
        if format::width(&text) <= w {
            Line::from(spans)
        } else {
            Line::from(Span::styled(format::fit(&text, w), t.value()))
        }
    };
    let lines = vec![
        fit_line(line1),
        fit_line(line2),
        fit_line(line3),
        fit_line(line4),
        Line::from(vec![
            Span::styled("query ", t.label()),
            Span::raw(if query.is_empty() {
                "—".into()
            } else {
                query
            }),
        ]),
    ];
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_sizes(frame: &mut Frame, area: Rect, app: &App, s: &Snapshot, t: &Theme) {
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

fn draw_rows(frame: &mut Frame, area: Rect, s: &Snapshot, t: &Theme) {
    let title = match s.rows.basis {
        _ if s.rows.exact => "Rows (exact)",
        crate::db::snapshot::RowsBasis::CountedSince => "Rows (~ carried)",
        _ => "Rows (~ estimated)",
    };
    let b = block(title, t);
    let inner = b.inner(area);
    frame.render_widget(b, area);
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

fn draw_vacuum(frame: &mut Frame, area: Rect, s: &Snapshot, t: &Theme) {
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
fn holder_short(h: &crate::db::horizon::Holder) -> String {
    use crate::db::horizon::HolderKind as K;
    let name = h.name.as_deref().unwrap_or("");
    match h.kind {
        K::Backend => format!("pid {}", h.pid.unwrap_or(0)),
        K::PreparedXact => format!("2PC '{name}'"),
        K::ReplicationSlot => format!("slot '{name}'"),
        K::StandbyFeedback => format!("standby '{}'", h.application.as_deref().unwrap_or("")),
    }
}

fn draw_operations(frame: &mut Frame, area: Rect, app: &App, s: &Snapshot, t: &Theme) {
    let widths = [
        Constraint::Min(14),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(16),
    ];
    let name_w = super::column_widths(area.width.saturating_sub(2), &widths)[0];
    let total: i64 = s.operations.iter().map(|o| o.total).sum::<i64>().max(1);
    let rows = s.operations.iter().map(|o| {
        let share = o.total as f64 / total as f64;
        let bar = "█".repeat((share * 8.0).round() as usize);
        let opt = |v: Option<i64>| v.map(count).unwrap_or_else(|| "—".into());
        let status = o
            .status
            .map(|st| {
                format!(
                    "{}/{}/{}",
                    format::compact(st.s2xx),
                    format::compact(st.s4xx),
                    format::compact(st.s5xx)
                )
            })
            .unwrap_or_else(|| "—".into());
        let avg = o
            .avg_payload_bytes
            .map(|b| format::bytes(b.round() as i64))
            .unwrap_or_else(|| "—".into());
        Row::new(vec![
            Cell::from(format::fit(&sanitize::line(&o.operation), name_w)),
            Cell::from(approx(o.total, o.exact)),
            Cell::from(opt(o.live)),
            Cell::from(opt(o.expired)),
            Cell::from(Span::styled(format!("{bar:<8}"), t.gauge())),
            Cell::from(avg),
            Cell::from(status),
        ])
    });
    let open = crate::app::keys::key_for(crate::app::action::Action::Open).unwrap_or_default();
    let title = match s.operations_as_of {
        Some(at) if !s.operations_exact => format!(
            "Operations (~ exact pass of {} carried to now; Enter: records)",
            format::ago_short(Some(at), s.taken_at)
        ),
        Some(at) if at < s.taken_at => format!(
            "Operations (exact as of {}; {open}: records)",
            format::ago_short(Some(at), s.taken_at)
        ),
        Some(_) => format!("Operations ({open}: records)"),
        None => "Operations (~ from pg_stats; exact pass pending)".to_string(),
    };
    let table = Table::new(rows, widths)
        .header(
            Row::new([
                "operation",
                "total",
                "live",
                "expired",
                "share",
                "avg pay",
                "2xx/4xx/5xx",
            ])
            .style(t.label()),
        )
        .block(block(&title, t))
        .row_highlight_style(t.selected());
    let mut state = TableState::default().with_selected(Some(app.dash.selected_op));
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_indexes(frame: &mut Frame, area: Rect, app: &App, s: &Snapshot, t: &Theme) {
    let widths = [
        Constraint::Min(26),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(7),
    ];
    let name_w = super::column_widths(area.width.saturating_sub(2), &widths)[0];
    let mut rows: Vec<Row> = s
        .indexes
        .iter()
        .map(|i| {
            let per_s = app.dash.rates.idx_scans_per_s.get(&i.name).copied();
            let flag = if !i.valid {
                Span::styled("INVALID", t.crit())
            } else if crate::checks::index_unused(
                i,
                s.counters.n_tup_ins,
                app.unused_index_after_inserts,
            ) {
                Span::styled("unused", t.warn())
            } else if i.idx_scan == 0 {
                Span::styled("not yet", t.dim())
            } else {
                Span::raw("")
            };
            Row::new(vec![
                Cell::from(format::fit(&sanitize::line(&i.name), name_w)),
                Cell::from(format::bytes(i.size_bytes)),
                Cell::from(count(i.idx_scan)),
                Cell::from(format::rate(per_s)),
                Cell::from(count(i.idx_tup_read)),
                Cell::from(flag),
            ])
        })
        .collect();
    for e in s.expected_indexes.iter().filter(|e| e.missing()) {
        rows.push(Row::new(vec![
            Cell::from(Span::styled(e.name.clone(), t.crit())),
            Cell::from(Span::styled("MISSING", t.crit())),
            Cell::from(format!("on {}", e.column)),
        ]));
    }
    let table = Table::new(rows, widths)
        .header(Row::new(["index", "size", "scans", "rate", "tup read", ""]).style(t.label()))
        .block(block("Indexes", t));
    frame.render_widget(table, area);
}

fn draw_history(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    let cols = Layout::horizontal([
        Constraint::Ratio(1, 3),
        Constraint::Ratio(1, 3),
        Constraint::Ratio(1, 3),
    ])
    .split(area);
    let h = &app.dash.history;
    let width = cols[0].width.saturating_sub(2) as usize;
    let tail = h.iter().skip(h.len().saturating_sub(width));
    let live: Vec<u64> = tail.clone().map(|p| p.live.max(0) as u64).collect();
    let expired: Vec<u64> = tail.clone().map(|p| p.expired.max(0) as u64).collect();
    let ins: Vec<u64> = tail
        .map(|p| p.ins_per_s.unwrap_or(0.0).max(0.0).round() as u64)
        .collect();
    let r = &app.dash.rates;
    let titles = [
        format!(
            "live {}",
            h.back().map(|p| count(p.live)).unwrap_or_default()
        ),
        format!(
            "expired {}",
            h.back().map(|p| count(p.expired)).unwrap_or_default()
        ),
        format!(
            "ins {} del {}",
            format::rate(r.ins_per_s),
            format::rate(r.del_per_s)
        ),
    ];
    for (i, (data, title)) in [live, expired, ins].iter().zip(titles.iter()).enumerate() {
        frame.render_widget(
            Sparkline::default()
                .block(block(title, t))
                .data(data)
                .style(t.spark(i)),
            cols[i],
        );
    }
}
