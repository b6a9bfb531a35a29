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

mod lists;
mod panels;

use lists::*;
use panels::*;

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
    // A table that is not the guide's: what its mapping recognised and what is missing, in one
    // line above the panels (the full message: `idemtop schema`, `idemtop snapshot`).
    let area = match mapping_banner(snap, t) {
        Some(line) if area.height >= 8 + 6 + 2 => {
            let rows = super::wrapped_rows(&line.to_string(), usize::from(area.width)).min(2);
            let [banner, rest] =
                Layout::vertical([Constraint::Length(rows), Constraint::Min(0)]).areas(area);
            frame.render_widget(Paragraph::new(line).wrap(Wrap { trim: false }), banner);
            rest
        }
        _ => area,
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
    // A table with an in-flight state: its keys in flight beside the operations.
    if snap.mapping.has_inflight() && ops.width >= 80 {
        let [ops, flying] =
            Layout::horizontal([Constraint::Min(50), Constraint::Length(40)]).areas(ops);
        draw_operations(frame, ops, app, snap, t);
        draw_inflight(frame, flying, snap, t);
    } else {
        draw_operations(frame, ops, app, snap, t);
    }
    draw_indexes(frame, idx, app, snap, t);
    if busy {
        super::activity::draw_progress(frame, bottom_area, app, t);
    } else if bottom_h > 0 {
        draw_history(frame, bottom_area, app, t);
    }
}

/// One line on the table's mapping, for a table that is not the guide's: the first line of its
/// message, what is missing, whether cleanup is refused.
pub fn mapping_banner(snap: &Snapshot, t: &Theme) -> Option<Line<'static>> {
    let m = &snap.mapping;
    if m.is_guide() {
        return None;
    }
    let head = sanitize::line(m.message.lines().next().unwrap_or("").trim_end_matches('.'));
    let missing: Vec<&str> = m.missing.iter().map(|r| r.name()).collect();
    let mut spans = vec![
        Span::styled("MAPPING ", t.label()),
        Span::styled(head, t.value()),
    ];
    if m.error.is_none() {
        spans.push(Span::styled(
            if missing.is_empty() {
                "; nothing missing".to_string()
            } else {
                format!(
                    "; missing {} (map in config: idemtop schema)",
                    missing.join(", ")
                )
            },
            if missing.is_empty() {
                t.dim()
            } else {
                t.warn()
            },
        ));
    }
    if let Some(why) = &m.cleanup_refused {
        let why = why.strip_prefix("cleanup refused: ").unwrap_or(why);
        spans.push(Span::styled(
            format!("; cleanup refused: {}", sanitize::line(why)),
            t.dim(),
        ));
    }
    Some(Line::from(spans))
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
