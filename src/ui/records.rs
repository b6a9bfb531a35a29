//! The records screen: a keyset-paged list, and a record's detail with its payload.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

use super::Theme;
use crate::app::action::Action;
use crate::app::payload::Token;
use crate::app::records::{created_relative, expires_relative, status_short, ts_full, Detail};
use crate::app::{keys, App};
use crate::db::ts::Ts;
use crate::format;
use crate::sanitize;

use super::panel as block;

pub fn draw(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    match &app.records.detail {
        Some(d) => draw_detail(frame, area, app, d, t),
        None => draw_list(frame, area, app, t),
    }
}

fn status_style(code: Option<i32>, t: &Theme) -> Style {
    match code {
        Some(200..=399) => t.ok(),
        Some(400..=499) => t.warn(),
        Some(500..=599) => t.crit(),
        _ => t.dim(),
    }
}

/// Width of a full request_id.
const KEY_WIDTH: u16 = 36;

fn draw_list(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    let r = &app.records;
    let mut title = format!(
        " Records · {} · page {} ",
        r.describe_filter(),
        r.page_index + 1
    );
    if let Some(page) = &r.page {
        // The server's clock when the page was read: what the list shows is as of then.
        title.push_str(&format!(
            "· as of {} UTC ",
            page.server_now.format("%H:%M:%S")
        ));
    }
    if r.sort_indexed == Some(false) {
        title.push_str("· sort column has no index: slow on big tables ");
    }
    if r.loading.is_some() {
        title.push_str("· loading… ");
    }
    let Some(page) = &r.page else {
        let text = match &r.error {
            Some(e) => Line::from(vec![
                Span::styled("error: ", t.crit()),
                Span::raw(sanitize::line(e)),
            ]),
            None => Line::from(Span::styled("Loading…", t.dim())),
        };
        frame.render_widget(
            Paragraph::new(text)
                .wrap(Wrap { trim: false })
                .block(block(title, t)),
            area,
        );
        return;
    };
    if page.rows.is_empty() {
        let filters: Vec<String> = [
            Action::ClearFilters,
            Action::CycleSort,
            Action::CycleStatus,
            Action::CycleLiveness,
            Action::FilterOperation,
        ]
        .iter()
        .filter_map(|a| {
            let b = keys::BINDINGS
                .iter()
                .find(|b| b.action == *a && b.context == keys::Context::Records)?;
            Some(format!("{} {}", b.keys[0].label(), b.short))
        })
        .collect();
        let lines = vec![
            Line::from(Span::styled("No records match.", t.dim())),
            Line::from(Span::styled(filters.join(" · "), t.dim())),
        ];
        frame.render_widget(Paragraph::new(lines).block(block(title, t)), area);
        return;
    }
    if let Some(e) = &r.error {
        // A reload failed: the page stays, and the error says why above it (wrapped).
        title.push_str("· reload failed (below) ");
        let rows = super::wrapped_rows(&e.to_string(), usize::from(area.width.max(8)) - 8);
        let [list, err] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(rows.min(4))]).areas(area);
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled("error: ", t.crit()),
                Span::raw(sanitize::line(e)),
            ]))
            .wrap(Wrap { trim: false }),
            err,
        );
        return draw_rows(frame, list, app, page, title, t);
    }
    draw_rows(frame, area, app, page, title, t)
}

fn draw_rows(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    page: &crate::db::records::Page,
    title: String,
    t: &Theme,
) {
    let r = &app.records;
    // Ages tick: from the server's clock as last read, plus the time since (never frozen at
    // the page's load).
    let now = app.server_now().unwrap_or(page.server_now);
    let inner = area.width.saturating_sub(2);
    // The request_id whole when it fits beside an operation column of 12; the payload size
    // goes first on a narrow terminal, then the key is cut, with an ellipsis and `Y` to copy.
    let fixed = |payload: bool| {
        let mut c = vec![
            Constraint::Length(6),
            Constraint::Length(9),
            Constraint::Length(11),
        ];
        if payload {
            c.push(Constraint::Length(10));
        }
        c
    };
    // The fixed columns and every gap between columns (one each).
    let fixed_w = |payload: bool| 6 + 9 + 11 + 4 + if payload { 10 + 1 } else { 0 };
    let payload_col = inner >= KEY_WIDTH + 12 + fixed_w(true);
    let key_w = KEY_WIDTH.min(inner.saturating_sub(12 + fixed_w(payload_col)));
    let mut constraints = vec![Constraint::Length(key_w), Constraint::Min(8)];
    constraints.extend(fixed(payload_col));
    let widths = super::column_widths(inner, &constraints);
    let key_cut = widths[0] < usize::from(KEY_WIDTH);
    let rows = page.rows.iter().map(|rec| {
        let expires = expires_relative(rec.expires_at, now);
        let mut cells = vec![
            Cell::from(format::fit(&rec.request_id.to_string(), widths[0])),
            Cell::from(format::fit(&sanitize::line(&rec.operation), widths[1])),
            Cell::from(Span::styled(
                status_short(rec.status_code, 6),
                status_style(rec.status_code, t),
            )),
            Cell::from(created_relative(rec.created_at, now)),
            Cell::from(Span::styled(
                format::fit(&expires, widths[4]),
                if rec.is_live(now) {
                    t.label()
                } else {
                    t.warn()
                },
            )),
        ];
        if payload_col {
            cells.push(Cell::from(format::bytes(rec.payload_bytes)));
        }
        Row::new(cells)
    });
    let mut header = vec![
        if key_cut {
            // The cut shows, and says how to get the whole key.
            let copy = keys::key_for(Action::CopyKey).unwrap_or_default();
            format::fit(&format!("request_id ({copy}: copy)"), widths[0])
        } else {
            "request_id".to_string()
        },
        "operation".into(),
        "status".into(),
        "created".into(),
        "expires".into(),
    ];
    if payload_col {
        header.push("payload".into());
    }
    let table = Table::new(rows, constraints)
        .header(Row::new(header).style(t.label()))
        .row_highlight_style(t.selected())
        .block(block(title, t));
    let mut state = TableState::default().with_selected(Some(r.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_detail(frame: &mut Frame, area: Rect, app: &App, d: &Detail, t: &Theme) {
    let title = format!(" Record {} ", d.id);
    let Some(rec) = &d.record else {
        let text = if d.loading {
            Line::from(Span::styled("Loading…", t.dim()))
        } else if d.not_found {
            Line::from(vec![
                Span::styled("No record with request_id ", t.warn()),
                Span::raw(d.id.to_string()),
                Span::styled(" in this table.", t.warn()),
            ])
        } else {
            Line::from(vec![
                Span::styled("error: ", t.crit()),
                Span::raw(sanitize::line(d.error.as_deref().unwrap_or(""))),
            ])
        };
        frame.render_widget(Paragraph::new(text).block(block(title, t)), area);
        return;
    };
    let s = &rec.summary;
    // The server's newest clock: the page's, or the last refresh's (usually more recent).
    let now = app.server_now().unwrap_or_else(chrono::Utc::now);
    let state = match s.expires_at {
        Ts::Infinity => Span::styled("live, never expires (expires_at = infinity)", t.ok()),
        Ts::NegInfinity => Span::styled("EXPIRED (expires_at = -infinity)", t.warn()),
        _ if s.is_live(now) => Span::styled(
            format!("live, expires {}", expires_relative(s.expires_at, now)),
            t.ok(),
        ),
        _ => Span::styled(
            format!("EXPIRED {}", expires_relative(s.expires_at, now)),
            t.warn(),
        ),
    };
    let created = match s.created_at {
        Ts::At(_) => format!(
            "{} ({})",
            ts_full(s.created_at),
            expires_relative(s.created_at, now)
        ),
        Ts::NegInfinity => "-infinity (before any date)".to_string(),
        Ts::Infinity => "infinity".to_string(),
    };
    let ttl = match s.expires_at.since(s.created_at) {
        Some(d) => format!("TTL {}", format::duration_secs(d.num_seconds() as f64)),
        None => "TTL unbounded".to_string(),
    };
    let field = |k: &'static str, v: Span<'static>| {
        Line::from(vec![Span::styled(format!("{k:<15}"), t.label()), v])
    };
    let total = s.payload_bytes;
    let head = vec![
        field(
            "request_id",
            Span::styled(s.request_id.to_string(), t.value()),
        ),
        field("operation", Span::raw(sanitize::line(&s.operation))),
        field(
            "status_code",
            Span::styled(
                match s.status_code {
                    Some(c) if !(100..=599).contains(&c) => format!("{c} (not an HTTP status)"),
                    Some(c) => c.to_string(),
                    None => "NULL".into(),
                },
                status_style(s.status_code, t),
            ),
        ),
        field("created_at", Span::raw(created)),
        field(
            "expires_at",
            Span::raw(format!("{} ({ttl})", ts_full(s.expires_at))),
        ),
        field("state", state),
        field(
            "result_payload",
            Span::raw(format!(
                "{} {}",
                format::bytes(total),
                if d.view.is_json {
                    "JSON"
                } else {
                    "(not JSON: shown raw)"
                }
            )),
        ),
    ];
    let [head_area, body_area] = Layout::vertical([
        Constraint::Length(head.len() as u16 + 2),
        Constraint::Min(3),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(head).block(block(title, t)), head_area);
    let mut payload_title = format!(
        " Payload · line {}/{} ",
        d.scroll + 1,
        d.view.lines.len().max(1)
    );
    if rec.payload_truncated_bytes > 0 {
        payload_title.push_str(&format!(
            "· truncated: {} of {} not shown ",
            format::bytes(rec.payload_truncated_bytes),
            format::bytes(total)
        ));
    }
    // Only the visible lines are built: `scroll` counts payload lines (a long line wraps below
    // its own, the next ones move down), and a 20,000-line payload costs nothing per frame.
    let visible = usize::from(body_area.height.saturating_sub(2));
    let mut lines: Vec<Line> = d
        .view
        .lines
        .iter()
        .skip(d.scroll)
        .take(visible)
        .map(|toks| {
            Line::from(
                toks.iter()
                    .map(|(kind, text)| {
                        let style = match kind {
                            Token::Key => t.json_key(),
                            Token::String => t.json_string(),
                            Token::Number | Token::Keyword => t.json_number(),
                            Token::Punct => t.dim(),
                            Token::Plain => Style::new(),
                        };
                        Span::styled(text.as_str(), style)
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    if rec.payload_truncated_bytes > 0 && lines.len() < visible {
        lines.push(Line::from(Span::styled(
            format!(
                "… {} more not shown",
                format::bytes(rec.payload_truncated_bytes)
            ),
            t.warn(),
        )));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(payload_title, t)),
        body_area,
    );
}
