//! The partitions screen: one row per partition of a table partitioned by range on `expires_at`,
//! or, for a plain table, what partition-based cleanup is and where its migrations are.

use chrono::{DateTime, Utc};
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

use super::Theme;
use crate::app::PartitionsState;
use crate::db::partitions::{covered_until, totals, PartitionInfo, PartitionState};
use crate::format::{self, approx};
use crate::sanitize;

/// Draw the screen. `state.parts` is None until the first list arrived (or its query failed:
/// `state.error`); `now` is the server's clock of that list (the states are relative to it).
pub fn draw(
    frame: &mut Frame,
    area: Rect,
    partitioned: bool,
    state: &PartitionsState,
    now: DateTime<Utc>,
    t: &Theme,
) {
    let (parts, error, selected) = (
        state.parts.as_deref(),
        state.error.as_deref(),
        state.selected,
    );
    if !partitioned {
        draw_not_partitioned(frame, area, t);
        return;
    }
    let Some(parts) = parts else {
        let line = match error {
            Some(e) => Span::styled(
                format!("listing the partitions failed: {}", sanitize::line(e)),
                t.crit(),
            ),
            None => Span::styled("Loading partitions…", t.dim()),
        };
        frame.render_widget(
            Paragraph::new(line)
                .wrap(Wrap { trim: false })
                .block(block(" Partitions ", t)),
            area,
        );
        return;
    };
    if parts.is_empty() {
        frame.render_widget(
            Paragraph::new(vec![
                Line::from(Span::styled(
                    "The table is partitioned but has no partition: every insert fails.",
                    t.crit(),
                )),
                Line::from(Span::styled(
                    "Create them: SELECT create_idempotency_partitions();  (migrations/partitioned/README.md)",
                    t.dim(),
                )),
            ])
            .wrap(Wrap { trim: false })
            .block(block(" Partitions: none ", t)),
            area,
        );
        return;
    }

    let tot = totals(parts);
    let narrow = area.width < 100;
    let mut title = vec![Span::styled(
        format!(
            " Partitions: {} · {} rows · {} ",
            tot.partitions,
            approx(tot.rows, tot.rows_exact),
            format::bytes(tot.size_bytes)
        ),
        t.title(),
    )];
    if tot.droppable > 0 {
        let what = if narrow {
            format!("· {} droppable ", tot.droppable)
        } else {
            format!(
                "· {} droppable ({} rows, {}) ",
                tot.droppable,
                approx(tot.droppable_rows, tot.rows_exact),
                format::bytes(tot.droppable_bytes)
            )
        };
        title.push(Span::styled(what, t.warn()));
    }
    let has_default = parts.iter().any(|p| p.is_default);
    match covered_until(parts, now) {
        Some(until) => title.push(Span::styled(
            if narrow {
                format!("· ok until {} ", until.format("%m-%d %H:%M"))
            } else {
                format!("· inserts ok until {} ", until.format("%m-%d %H:%M UTC"))
            },
            if until - now < chrono::Duration::hours(24) {
                t.crit()
            } else {
                t.label()
            },
        )),
        None if !has_default => title.push(Span::styled(
            "· NO PARTITION FOR NOW: inserts fail ",
            t.crit(),
        )),
        None => {}
    }

    // Narrow screens: the hour at the end of a name matters, the table's prefix does not.
    let (strip, time_format, time_width) = if narrow {
        (name_prefix(parts), "%m-%d %H:%M", 11)
    } else {
        ("", "%Y-%m-%d %H:%M", 16)
    };
    let rows = parts.iter().map(|p| {
        let bound = |b: Option<DateTime<Utc>>, unbounded: &str| match b {
            Some(b) => b.format(time_format).to_string(),
            None if p.is_default => "DEFAULT".into(),
            None => unbounded.into(),
        };
        let state = p.state();
        let state_style = match state {
            PartitionState::Expired | PartitionState::DetachPending => t.warn(),
            PartitionState::Current => t.ok(),
            PartitionState::Future => t.label(),
            PartitionState::Default | PartitionState::Unknown | PartitionState::RowByRow => t.dim(),
        };
        let (rows, size) = if p.blocked_by.is_some() {
            ("locked".to_string(), "—".to_string())
        } else {
            (approx(p.rows, p.rows_exact), format::bytes(p.size_bytes))
        };
        Row::new(vec![
            Cell::from(match p.name.strip_prefix(strip) {
                Some(rest) if !strip.is_empty() => format!("…{}", sanitize::line(rest)),
                _ => sanitize::line(&p.name),
            }),
            Cell::from(bound(p.lower, "MINVALUE")),
            Cell::from(bound(p.upper, "MAXVALUE")),
            Cell::from(rows),
            Cell::from(size),
            Cell::from(Span::styled(state.label(), state_style)),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Min(12),
            Constraint::Length(time_width),
            Constraint::Length(time_width),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(19),
        ],
    )
    .header(
        Row::new([
            "name",
            "lower (UTC)",
            "upper (UTC)",
            "rows",
            "size",
            "state",
        ])
        .style(t.label()),
    )
    .block(
        Block::default()
            .borders(Borders::ALL)
            .border_style(t.border())
            .title(Line::from(title)),
    )
    .row_highlight_style(t.selected());
    let mut state = TableState::default().with_selected(Some(selected.min(parts.len() - 1)));
    frame.render_stateful_widget(table, area, &mut state);
}

/// The prefix all partition names share, up to and including its last `_`
/// (`idempotency_records_` for `idempotency_records_p2026010100`, ...).
fn name_prefix(parts: &[PartitionInfo]) -> &str {
    let Some(first) = parts.first() else {
        return "";
    };
    let mut len = first.name.len();
    for p in &parts[1..] {
        len = first
            .name
            .char_indices()
            .zip(p.name.chars())
            .take_while(|((_, a), b)| a == b)
            .last()
            .map(|((i, c), _)| i + c.len_utf8())
            .unwrap_or(0)
            .min(len);
    }
    match first.name[..len].rfind('_') {
        Some(i) => &first.name[..=i],
        None => "",
    }
}

fn draw_not_partitioned(frame: &mut Frame, area: Rect, t: &Theme) {
    let text = vec![
        Line::from(Span::styled("This table is not partitioned.", t.value())),
        Line::from(""),
        Line::from(Span::styled(
            "Partition-based cleanup: with hourly partitions on expires_at, expired rows go by \
             dropping whole partitions instead of DELETE (measured on 10M rows: 0.9 s and 2 MB of \
             WAL instead of ~3.4 GB), with no dead rows left for VACUUM.",
            t.label(),
        )),
        Line::from(""),
        Line::from(Span::styled(
            "The price: the primary key becomes (request_id, expires_at), so the database no longer \
             enforces a unique request_id on its own, and a lookup by key probes every partition.",
            t.label(),
        )),
        Line::from(""),
        Line::from(vec![
            Span::styled("The optional migration set and its trade-offs: ", t.label()),
            Span::styled("migrations/partitioned/README.md", t.key()),
        ]),
    ];
    frame.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: false })
            .block(block(" Partitions ", t)),
        area,
    );
}

use super::panel as block;
