//! The records screen on a table of another shape: the list in keyset order of the mapped key
//! (or newest first where an index serves it), and a key looked up with `/`.

use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

use super::panel as block;
use super::Theme;
use crate::app::mapped::MappedRecords;
use crate::app::records::{created_relative, expires_relative, status_short, ts_full};
use crate::app::App;
use crate::db::records::MappedRow;
use crate::format;
use crate::sanitize;

pub fn draw(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    let m = &app.records.mapped;
    match &m.lookup {
        Some((typed, found)) => draw_lookup(frame, area, m, typed, found.as_ref(), t),
        None => draw_list(frame, area, m, t),
    }
}

fn title(m: &MappedRecords) -> String {
    let mut title = format!(" Records · {} · page {} ", m.sort.label(), m.page_index + 1);
    if let Some(p) = &m.page {
        title.push_str(&format!("· as of {} UTC ", p.server_now.format("%H:%M:%S")));
    }
    if m.loading.is_some() {
        title.push_str("· loading… ");
    }
    title
}

fn draw_list(frame: &mut Frame, area: Rect, m: &MappedRecords, t: &Theme) {
    let not_offered: Vec<String> = m
        .sorts
        .iter()
        .filter_map(|(s, ok)| ok.as_ref().err().map(|e| format!("{}: {}", s.label(), e)))
        .collect();
    let Some(page) = &m.page else {
        let text = match &m.error {
            Some(e) => vec![
                Line::from(Span::styled("Could not read the records:", t.crit())),
                Line::from(sanitize::line(e)),
            ],
            None => vec![Line::from(Span::styled("Loading…", t.dim()))],
        };
        frame.render_widget(
            Paragraph::new(text)
                .wrap(Wrap { trim: false })
                .block(block(title(m), t)),
            area,
        );
        return;
    };
    let now = page.server_now;
    let widths = [
        Constraint::Min(24),
        Constraint::Length(18),
        Constraint::Length(6),
        Constraint::Length(10),
        Constraint::Length(12),
        Constraint::Length(9),
        Constraint::Length(9),
    ];
    let key_w = super::column_widths(area.width.saturating_sub(2), &widths)[0];
    let rows = page.rows.iter().map(|r: &MappedRow| {
        Row::new(vec![
            Cell::from(format::fit(&sanitize::line(&r.key.to_string()), key_w)),
            Cell::from(format::fit(
                &r.operation
                    .as_deref()
                    .map(sanitize::line)
                    .unwrap_or_else(|| "—".into()),
                18,
            )),
            Cell::from(status_short(r.status, 6)),
            Cell::from(
                r.created_at
                    .map(|c| created_relative(c, now))
                    .unwrap_or_else(|| "—".into()),
            ),
            Cell::from(
                r.expires_at
                    .map(|e| expires_relative(e, now))
                    .unwrap_or_else(|| "—".into()),
            ),
            Cell::from(match r.in_flight {
                Some(true) => Span::styled("in flight", t.warn()),
                Some(false) => Span::styled("done", t.dim()),
                None => Span::raw("—"),
            }),
            Cell::from(
                r.payload_bytes
                    .map(format::bytes)
                    .unwrap_or_else(|| "—".into()),
            ),
        ])
    });
    let mut t_title = title(m);
    if !not_offered.is_empty() {
        t_title.push_str(&format!("· {} ", sanitize::line(&not_offered.join("; "))));
    }
    if let Some(e) = &m.error {
        t_title.push_str(&format!("· {} ", sanitize::line(e)));
    }
    let table = Table::new(rows, widths)
        .header(
            Row::new([
                "key",
                "operation",
                "status",
                "created",
                "expires",
                "state",
                "payload",
            ])
            .style(t.label()),
        )
        .block(block(t_title, t))
        .row_highlight_style(t.selected());
    let mut state = TableState::default().with_selected(Some(m.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_lookup(
    frame: &mut Frame,
    area: Rect,
    m: &MappedRecords,
    typed: &str,
    found: Option<&Option<crate::db::records::MappedRecord>>,
    t: &Theme,
) {
    let shown = sanitize::line(typed);
    let mut lines = Vec::new();
    match (found, &m.error) {
        (_, Some(e)) if m.loading.is_none() => {
            lines.push(Line::from(Span::styled(
                format!("Cannot look {shown} up:"),
                t.crit(),
            )));
            lines.push(Line::from(sanitize::line(e)));
        }
        (None, _) => lines.push(Line::from(Span::styled("Loading…", t.dim()))),
        (Some(None), _) => lines.push(Line::from(vec![
            Span::styled("No record with key ", t.warn()),
            Span::styled(shown.clone(), t.value()),
        ])),
        (Some(Some(rec)), _) => {
            let r = &rec.row;
            let kv = |k: &str, v: String| {
                Line::from(vec![
                    Span::styled(format!("{k:<10}"), t.label()),
                    Span::styled(v, t.value()),
                ])
            };
            lines.push(kv("key", sanitize::line(&r.key.to_string())));
            lines.push(kv(
                "operation",
                r.operation
                    .as_deref()
                    .map(sanitize::line)
                    .unwrap_or_else(|| "—".into()),
            ));
            lines.push(kv(
                "status",
                r.status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "NULL".into()),
            ));
            lines.push(kv(
                "created",
                r.created_at.map(ts_full).unwrap_or_else(|| "—".into()),
            ));
            lines.push(kv(
                "expires",
                r.expires_at.map(ts_full).unwrap_or_else(|| "—".into()),
            ));
            lines.push(kv(
                "state",
                match r.in_flight {
                    Some(true) => "in flight".into(),
                    Some(false) => "done".into(),
                    None => "—".into(),
                },
            ));
            lines.push(Line::from(Span::styled("payload", t.label())));
            match &rec.payload {
                Some(p) => {
                    for l in sanitize::text(p).lines().take(200) {
                        lines.push(Line::from(l.to_string()));
                    }
                    if rec.payload_truncated_bytes > 0 {
                        lines.push(Line::from(Span::styled(
                            format!(
                                "… {} more not fetched",
                                format::bytes(rec.payload_truncated_bytes)
                            ),
                            t.dim(),
                        )));
                    }
                }
                None => lines.push(Line::from(Span::styled("NULL", t.dim()))),
            }
        }
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(
                format!(
                    " Record {shown} ({}: back) ",
                    crate::app::keys::key_for(crate::app::action::Action::Back).unwrap_or_default()
                ),
                t,
            )),
        area,
    );
}
