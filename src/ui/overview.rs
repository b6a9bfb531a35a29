//! The fleet's Overview: one row per target, worst first; or, when a target is open, that
//! target's screens. Reads the state only.

use std::time::Duration;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row as TableRow, Table, TableState, Wrap};
use ratatui::Frame;

use super::{age, panel, secs, Theme};
use crate::app::keys::{self, Context};
use crate::app::overview::{Overview, Row, RowState, Standing};
use crate::checks::Level;
use crate::format;
use crate::sanitize;

/// From this width on the server has a column, and from [`WIDEST`] on the table too;
/// narrower, the selected target's line under the table names them.
const WIDE: u16 = 110;
const WIDEST: u16 = 150;

/// Draw the Overview, or the open target's screens.
pub fn draw(frame: &mut Frame, o: &Overview, theme: &Theme) {
    if let Some(opened) = &o.opened {
        super::draw(frame, &opened.app, theme);
        return;
    }
    let area = frame.area();
    let footer_lines = footer(o, theme, area.width);
    let [header_area, body, detail_area, footer_area] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(4),
        Constraint::Length(3),
        Constraint::Length(footer_lines.len().clamp(1, 2) as u16),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(header(o, theme)), header_area);
    table(frame, body, o, theme);
    if let Some((who, state)) = detail(o, theme) {
        let [who_area, state_area] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(detail_area);
        frame.render_widget(Paragraph::new(who), who_area);
        frame.render_widget(Paragraph::new(state).wrap(Wrap { trim: false }), state_area);
    }
    frame.render_widget(
        Paragraph::new(footer_lines).wrap(Wrap { trim: false }),
        footer_area,
    );
    if let Some(scroll) = o.help {
        super::overlay::help_of(frame, Overview::help_lines(), o.read_only, scroll, theme);
    }
}

fn standing_style(s: Standing, t: &Theme) -> Style {
    match s {
        Standing::Critical | Standing::Down => t.crit(),
        Standing::Warning | Standing::Stale | Standing::Unknown => t.warn(),
        Standing::Connecting => t.dim(),
        Standing::Ok => t.ok(),
    }
}

/// "idemtop Overview  28 targets, each every 2s ...", then how many stand where, worst first.
fn header(o: &Overview, t: &Theme) -> Vec<Line<'static>> {
    let mut line1 = vec![
        Span::styled("idemtop ", t.title()),
        Span::styled("Overview", t.value()),
        Span::styled(
            format!(
                "  {} targets, each every {}s (down ones: retried with backoff)",
                o.rows.len(),
                o.interval.as_secs()
            ),
            t.label(),
        ),
    ];
    if let Some(f) = &o.filter {
        line1.push(Span::styled(
            format!(
                "  filter \"{}\": {} shown",
                sanitize::line(f),
                o.order.len()
            ),
            t.warn(),
        ));
    }
    let mut line2 = Vec::new();
    for (i, (s, n)) in o.counts().into_iter().enumerate() {
        if i > 0 {
            line2.push(Span::styled(" · ", t.label()));
        }
        line2.push(Span::styled(
            format!("{n} {}", s.label()),
            standing_style(s, t),
        ));
    }
    vec![Line::from(line1), Line::from(line2)]
}

/// The row's figures, or dashes before any.
fn figures_cells(r: &Row) -> [String; 3] {
    match &r.figures {
        Some(f) => [
            format::approx(f.rows, f.rows_exact),
            format::percent(f.expired_share()),
            match f.cleanup_lag_secs {
                Some(s) => format::duration_secs(s),
                None => "none".into(),
            },
        ],
        None => ["—".into(), "—".into(), "—".into()],
    }
}

/// "CRIT Cached 5xx results: charge 20% 5xx", "ok", "—".
fn worst_cell(r: &Row, t: &Theme) -> (String, Style) {
    match &r.figures {
        None => ("—".into(), t.dim()),
        Some(f) => match (&f.worst, f.level) {
            (Some((name, value)), level) => {
                let short = match level {
                    Level::Critical => "CRIT",
                    Level::Warning => "WARN",
                    Level::Unknown => "UNKN",
                    Level::Ok => "OK",
                };
                let style = match level {
                    Level::Critical => t.crit(),
                    _ => t.warn(),
                };
                (
                    format!(
                        "{short} {}: {}",
                        sanitize::line(name),
                        sanitize::line(value)
                    ),
                    style,
                )
            }
            (None, _) => ("all ok".into(), t.ok()),
        },
    }
}

/// The state and how old the figures are: "ok, 2 s ago", "stale (data 40 s old): locked ...",
/// "down (3×, retry in 4 s): connection refused", "connecting…". `short`: without when the
/// next retry is ("down 3×: connection refused"), for the table's column.
pub fn state_text(o: &Overview, r: &Row, short: bool) -> String {
    let old = |r: &Row| {
        r.updated_at
            .map(|at| age(o.now.saturating_duration_since(at)))
    };
    match &r.state {
        RowState::Connecting => "connecting…".into(),
        RowState::Ok => match old(r) {
            Some(a) => format!("ok, {a} ago"),
            None => "ok".into(),
        },
        RowState::Stale { reason } => {
            let data = match old(r) {
                Some(a) => format!("data {a} old"),
                None => "no data".into(),
            };
            format!("stale ({data}): {}", sanitize::line(reason))
        }
        RowState::Down { reason, failures } if short => {
            format!("down {failures}×: {}", sanitize::line(reason))
        }
        RowState::Down { reason, failures } => {
            let when = match r.in_flight {
                Some(_) => "retrying".to_string(),
                None => {
                    let left = r.due.saturating_duration_since(o.now);
                    let left = Duration::from_secs(left.as_millis().div_ceil(1000) as u64);
                    format!("retry in {}", secs(left))
                }
            };
            format!("down ({failures}×, {when}): {}", sanitize::line(reason))
        }
    }
}

fn table(frame: &mut Frame, area: Rect, o: &Overview, t: &Theme) {
    let wide = area.width >= WIDE;
    let widest = area.width >= WIDEST;
    let mut constraints = vec![Constraint::Length(if widest { 16 } else { 12 })];
    if wide {
        constraints.push(Constraint::Length(26));
    }
    if widest {
        constraints.push(Constraint::Length(26));
    }
    constraints.extend([
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(match (wide, widest) {
            (_, true) => 30,
            (true, false) => 22,
            _ => 16,
        }),
        Constraint::Fill(1),
    ]);
    // The cells are cut to their columns with a visible ellipsis.
    let widths = super::column_widths(area.width.saturating_sub(2), &constraints);
    let w = |i: usize| widths.get(i).copied().unwrap_or(0);
    let mut head = vec!["TARGET"];
    if wide {
        head.push("SERVER");
    }
    if widest {
        head.push("TABLE");
    }
    head.extend([
        "ROWS",
        "EXPIRED",
        "LAG",
        "WORST CHECK",
        "STATE / LAST REFRESH",
    ]);
    let header = TableRow::new(head.into_iter().map(|h| {
        let line = match h {
            "ROWS" | "EXPIRED" | "LAG" => {
                Line::from(h).alignment(ratatui::layout::Alignment::Right)
            }
            _ => Line::from(h),
        };
        Cell::from(line).style(t.label())
    }));
    let rows: Vec<TableRow> = o
        .order
        .iter()
        .filter_map(|i| o.rows.get(*i))
        .map(|r| {
            let standing = r.standing();
            let measured = matches!(r.state, RowState::Ok);
            let figure_style = if measured { t.value() } else { t.dim() };
            let mut cells = vec![Cell::from(format::fit(&sanitize::line(&r.info.name), w(0)))
                .style(standing_style(standing, t))];
            let mut col = 1;
            if wide {
                let server = sanitize::line(r.info.server());
                cells.push(Cell::from(format::fit(&server, w(col))));
                col += 1;
            }
            if widest {
                let table = sanitize::line(&r.info.table);
                cells.push(Cell::from(format::fit(&table, w(col))));
                col += 1;
            }
            let [rows, expired, lag] = figures_cells(r);
            for (i, text) in [rows, expired, lag].into_iter().enumerate() {
                let text = format!("{text:>width$}", width = w(col + i));
                cells.push(Cell::from(format::fit(&text, w(col + i))).style(figure_style));
            }
            let (worst, worst_style) = worst_cell(r, t);
            let worst_style = if measured { worst_style } else { t.dim() };
            cells.push(Cell::from(format::fit(&worst, w(col + 3))).style(worst_style));
            cells.push(
                Cell::from(format::fit(&state_text(o, r, true), w(col + 4)))
                    .style(standing_style(standing, t)),
            );
            TableRow::new(cells)
        })
        .collect();
    let title = match &o.filter {
        Some(_) => format!(" Targets ({} of {}) ", o.order.len(), o.rows.len()),
        None => format!(" Targets ({}) ", o.rows.len()),
    };
    let empty = rows.is_empty();
    let table = Table::new(rows, constraints)
        .header(header)
        .block(panel(title, t))
        .row_highlight_style(t.selected());
    let mut state = TableState::default().with_selected(o.selected_position());
    frame.render_stateful_widget(table, area, &mut state);
    if empty && area.height > 3 && area.width > 4 {
        let inner = Rect::new(area.x + 2, area.y + 2, area.width - 4, 1);
        frame.render_widget(
            Paragraph::new(Span::styled(
                "no target's name matches the filter (Esc clears it)",
                t.dim(),
            )),
            inner,
        );
    }
}

/// The selected target whole: name, connection and table (one line, cut at the edge), then
/// its state with the full reason (wrapped) and what its last refresh cost.
fn detail(o: &Overview, t: &Theme) -> Option<(Line<'static>, Line<'static>)> {
    let r = o
        .rows
        .get(o.selected)
        .filter(|_| o.order.contains(&o.selected))?;
    let who = Line::from(vec![
        Span::styled(sanitize::line(&r.info.name), t.title()),
        Span::styled("  on ", t.label()),
        Span::raw(sanitize::line(&r.info.connection)),
        Span::styled("  table ", t.label()),
        Span::raw(sanitize::line(&r.info.table)),
    ]);
    let mut state = vec![Span::styled(
        state_text(o, r, false),
        standing_style(r.standing(), t),
    )];
    if let Some(d) = r.took {
        state.push(Span::styled(
            format!("  (last refresh took {} ms)", d.as_millis()),
            t.dim(),
        ));
    }
    Some((who, Line::from(state)))
}

/// The filter's prompt while it is open, else a message while it lasts, else the keys.
fn footer(o: &Overview, t: &Theme, width: u16) -> Vec<Line<'static>> {
    let width = usize::from(width);
    let hints = keys::footer(&o.contexts(), true);
    if let Some(input) = &o.input {
        let prompt = input.kind.prompt();
        let tail = super::hint_spans(&hints, false, t, width.saturating_sub(prompt.len() + 30));
        let tail_w: usize = tail.iter().map(|s| s.width()).sum();
        let room = width.saturating_sub(format::width(prompt) + 1 + tail_w + 2);
        let mut spans = vec![
            Span::styled(prompt, t.key()),
            Span::raw(format::fit_tail(&sanitize::line(&input.text), room)),
            Span::styled("▏ ", t.key()),
            Span::raw(" "),
        ];
        spans.extend(tail);
        return vec![Line::from(spans)];
    }
    if let Some(msg) = o.flash_text() {
        return vec![Line::from(Span::styled(sanitize::line(msg), t.warn()))];
    }
    let hints = if o.help.is_some() {
        keys::footer(&[Context::Help], true)
    } else {
        hints
    };
    vec![Line::from(super::hint_spans(&hints, false, t, width))]
}
