//! Overlays drawn on top of a screen: the help (from the key table) and confirmation dialogs.

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::Theme;
use crate::app::action::Maintenance;
use crate::app::keys;
use crate::app::App;
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

pub fn confirm(frame: &mut Frame, what: &Maintenance, question: &str, t: &Theme) {
    let popup = centered(frame.area(), 64, 7);
    frame.render_widget(Clear, popup);
    let lines = vec![
        Line::from(sanitize::line(question)),
        Line::from(""),
        Line::from(vec![
            Span::styled("y", t.key()),
            Span::raw("/"),
            Span::styled("Enter", t.key()),
            Span::raw(" confirm    "),
            Span::styled("n", t.key()),
            Span::raw("/"),
            Span::styled("Esc", t.key()),
            Span::raw(" cancel"),
        ]),
    ];
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(t.warn())
                .title(Span::styled(format!(" Confirm {} ", what.verb()), t.warn())),
        ),
        popup,
    );
}
