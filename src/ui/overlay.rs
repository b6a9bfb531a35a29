//! Overlays drawn on top of a screen: the help (from the key table) and confirmation dialogs.

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::Theme;
use crate::app::keys;
use crate::app::{App, ConfirmDialog};
use crate::sanitize;

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [v] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [h] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(v);
    h
}

/// The help overlay, generated from the key table that dispatches keys: the keys of the
/// current screen first, then those that work everywhere; two columns when the terminal is wide
/// and one would not fit, else one column that scrolls (j/k, PgUp/PgDn, g/G) so that every line
/// is reachable at 80x24. The title says which lines are shown.
pub fn help(frame: &mut Frame, app: &App, scroll: usize, t: &Theme) {
    let sections = keys::help_for(&app.screen_contexts());
    help_of(frame, sections, app.session.read_only, scroll, t);
}

/// The help overlay of `sections` (see [`help`]); a write is shown disabled when `read_only`.
pub fn help_of(
    frame: &mut Frame,
    sections: Vec<Vec<keys::HelpLine>>,
    read_only: bool,
    scroll: usize,
    t: &Theme,
) {
    let area = frame.area();
    let columns = keys::help_columns(sections, area.width, area.height);
    let len = columns.iter().map(Vec::len).max().unwrap_or(0);
    let visible = keys::help_rows(area.height).min(len);
    let scroll = scroll.min(len.saturating_sub(visible));
    let line = |l: &keys::HelpLine| match l {
        keys::HelpLine::Title(title) => Line::from(Span::styled(*title, t.title())),
        keys::HelpLine::Key { keys, help, writes } => {
            let disabled = *writes && read_only;
            let mut spans = vec![
                Span::styled(format!("  {keys:<11}"), t.key()),
                Span::styled(*help, if disabled { t.dim() } else { t.label() }),
            ];
            if disabled {
                spans.push(Span::styled(" (read-only)", t.dim()));
            }
            Line::from(spans)
        }
    };
    let width = if columns.len() > 1 { 116 } else { 78 };
    // The footer row stays in view: it says how to scroll and close.
    let above_footer = Rect {
        height: area.height.saturating_sub(1),
        ..area
    };
    let popup = centered(above_footer, width, visible as u16 + 2);
    frame.render_widget(Clear, popup);
    let title = if visible < len {
        format!(
            " Keys: lines {}–{} of {} (scroll keys below) ",
            scroll + 1,
            scroll + visible,
            len
        )
    } else {
        " Keys (all keys: README) ".to_string()
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.title())
        .title(Span::styled(title, t.title()));
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let areas = Layout::horizontal(vec![
        Constraint::Ratio(1, columns.len().max(1) as u32);
        columns.len()
    ])
    .split(inner);
    for (col, area) in columns.iter().zip(areas.iter()) {
        let lines: Vec<Line> = col.iter().skip(scroll).take(visible).map(line).collect();
        frame.render_widget(Paragraph::new(lines), *area);
    }
}

/// A confirmation dialog: the question, the facts it is about (label, value), a warning in the
/// critical colour, and the keys, generated from the key table (`y` only confirms). Every
/// string is sanitized here: values come from the database.
pub fn confirm(frame: &mut Frame, c: &ConfirmDialog, t: &Theme) {
    let mut lines = vec![Line::from(sanitize::line(&c.question))];
    if !c.details.is_empty() {
        lines.push(Line::from(""));
    }
    for (label, value) in &c.details {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<11}", sanitize::line(label)), t.label()),
            Span::styled(sanitize::line(value), t.value()),
        ]));
    }
    if let Some(w) = &c.warning {
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(sanitize::line(w), t.crit())));
    }
    lines.push(Line::from(""));
    let mut keys_line = Vec::new();
    for (i, (k, help)) in keys::hint(keys::Context::Confirm).into_iter().enumerate() {
        if i > 0 {
            keys_line.push(Span::raw("    "));
        }
        keys_line.push(Span::styled(k, t.key()));
        keys_line.push(Span::raw(format!(" {help}")));
    }
    let area = frame.area();
    // Wide enough for a full request_id line and the live-key warning on one line each.
    let width = if c.details.is_empty() && c.warning.is_none() {
        64
    } else {
        86
    }
    .min(area.width);
    let inner_width = width.saturating_sub(2).max(1);
    // Rows after word wrapping; the keys get their own row below, never cut off.
    let rows: u16 = lines
        .iter()
        .map(|l| super::wrapped_rows(&l.to_string(), inner_width as usize))
        .sum();
    let popup = centered(area, width, rows.saturating_add(3));
    frame.render_widget(Clear, popup);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.warn())
        .title(Span::styled(
            format!(" Confirm {} ", c.what.verb()),
            t.warn(),
        ));
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let [body, keys_area] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(inner);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), body);
    frame.render_widget(Paragraph::new(Line::from(keys_line)), keys_area);
}
