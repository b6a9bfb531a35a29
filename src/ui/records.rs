//! The records screen: a keyset-paged list, and a record's detail with its payload.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

use super::Theme;
use crate::app::payload::Token;
use crate::app::records::{created_relative, expires_relative, status_short, ts_full, Detail};
use crate::app::App;
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

fn draw_list(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    let r = &app.records;
    let mut title = format!(
        " Records · {} · page {} ",
        r.describe_filter(),
        r.page_index + 1
    );
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
        frame.render_widget(Paragraph::new(text).block(block(title, t)), area);
        return;
    };
    if page.rows.is_empty() {
        let lines = vec![
            Line::from(Span::styled("No records match.", t.dim())),
            Line::from(Span::styled(
                "x clears the filters · s sort · f status · l live/expired · o operation",
                t.dim(),
            )),
        ];
        frame.render_widget(Paragraph::new(lines).block(block(title, t)), area);
        return;
    }
    let now = page.server_now;
    let rows = page.rows.iter().map(|rec| {
        let expires = expires_relative(rec.expires_at, now);
        Row::new(vec![
            Cell::from(rec.request_id.to_string()),
            Cell::from(sanitize::line(&rec.operation)),
            Cell::from(Span::styled(
                status_short(rec.status_code, 6),
                status_style(rec.status_code, t),
            )),
            Cell::from(created_relative(rec.created_at, now)),
            Cell::from(Span::styled(
                expires,
                if rec.is_live(now) {
                    t.label()
                } else {
                    t.warn()
                },
            )),
            Cell::from(format::bytes(rec.payload_bytes)),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(36),
            Constraint::Min(12),
            Constraint::Length(6),
            Constraint::Length(9),
            Constraint::Length(13),
            Constraint::Length(10),
        ],
    )
    .header(
        Row::new([
            "request_id",
            "operation",
            "status",
            "created",
            "expires",
            "payload",
        ])
        .style(t.label()),
    )
    .row_highlight_style(t.selected())
    .block(block(title, t));
    let mut state = TableState::default().with_selected(Some(r.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_detail(frame: &mut Frame, area: Rect, app: &App, d: &Detail, t: &Theme) {
    let title = format!(" Record {} (Esc: back · d: delete) ", d.id);
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
