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
/// current screen first, then those that work everywhere; two columns when the terminal is wide.
pub fn help(frame: &mut Frame, app: &App, t: &Theme) {
    let mut contexts = app.screen_contexts();
    contexts.retain(|c| *c != keys::Context::Global);
    contexts.push(keys::Context::Global);
    contexts.push(keys::Context::Confirm);
    let mut all_sections = keys::help_sections();
    all_sections.retain(|(ctx, _, rows)| !rows.is_empty() && contexts.contains(ctx));
    all_sections.sort_by_key(|(ctx, _, _)| contexts.iter().position(|c| c == ctx));
    let mut sections: Vec<Vec<Line>> = Vec::new();
    for (_, title, rows) in all_sections {
        let mut lines = vec![Line::from(Span::styled(title, t.title()))];
        for (k, help, writes) in rows {
            let disabled = writes && app.session.read_only;
            let mut spans = vec![
                Span::styled(format!("  {k:<11}"), t.key()),
                Span::styled(help, if disabled { t.dim() } else { t.label() }),
            ];
            if disabled {
                spans.push(Span::styled(" (read-only)", t.dim()));
            }
            lines.push(Line::from(spans));
        }
        sections.push(lines);
    }
    let area = frame.area();
    let all: Vec<Line> = sections.iter().flatten().cloned().collect();
    let two_columns = area.width >= 120 && all.len() + 2 > area.height as usize;
    let (left, right): (Vec<Line>, Vec<Line>) = if two_columns {
        // Split between sections, as evenly as possible.
        let half = all.len().div_ceil(2);
        let mut left = Vec::new();
        let mut right = Vec::new();
        for s in sections {
            if left.is_empty() || left.len() + s.len() <= half {
                left.extend(s);
            } else {
                right.extend(s);
            }
        }
        (left, right)
    } else {
        (all, Vec::new())
    };
    let rows = left.len().max(right.len()) as u16 + 3;
    let width = if two_columns { 116 } else { 78 };
    let popup = centered(area, width, rows.min(area.height));
    frame.render_widget(Clear, popup);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.title())
        .title(Span::styled(
            " Keys (? or Esc closes; all keys: README) ",
            t.title(),
        ));
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    if two_columns {
        let [l, r] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(inner);
        frame.render_widget(Paragraph::new(left), l);
        frame.render_widget(Paragraph::new(right), r);
    } else {
        frame.render_widget(Paragraph::new(left), inner);
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
        .map(|l| wrapped_rows(&l.to_string(), inner_width as usize))
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

/// How many rows `text` takes when wrapped at word boundaries to `width` columns (a word wider
/// than the line is cut, as ratatui does).
fn wrapped_rows(text: &str, width: usize) -> u16 {
    let width = width.max(1);
    let mut rows = 1usize;
    let mut used = 0usize;
    for word in text.split_whitespace() {
        let w = Span::raw(word).width();
        let need = if used == 0 { w } else { used + 1 + w };
        if need <= width {
            used = need;
        } else if used == 0 {
            rows += (w - 1) / width;
            used = (w - 1) % width + 1;
        } else {
            rows += 1 + w.saturating_sub(1) / width;
            used = w.saturating_sub(1) % width + 1;
        }
    }
    u16::try_from(rows).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::wrapped_rows;

    #[test]
    fn rows_of_wrapped_text() {
        assert_eq!(wrapped_rows("", 10), 1);
        assert_eq!(wrapped_rows("0123456789", 10), 1);
        assert_eq!(wrapped_rows("01234 6789 abc", 10), 2);
        assert_eq!(wrapped_rows("0123456789abcdefghij0", 10), 3);
        assert_eq!(wrapped_rows("a 0123456789abc", 10), 3);
    }
}
