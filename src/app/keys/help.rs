//! The help overlay, generated from the key table: sections, lines, columns.

use super::*;

pub(super) const GOTO_HELP: &str = "screens: dashboard, records, partitions, health, activity";

pub fn help_sections() -> Vec<HelpSection> {
    let order = [
        Context::Overview,
        Context::Fleet,
        Context::Global,
        Context::Dashboard,
        Context::Records,
        Context::Detail,
        Context::Health,
        Context::Partitions,
        Context::Confirm,
        Context::Running,
        Context::Input,
        Context::Help,
    ];
    order
        .iter()
        .map(|ctx| {
            let mut rows: Vec<(String, &'static str, bool)> = Vec::new();
            for b in BINDINGS.iter().filter(|b| b.context == *ctx) {
                if let Action::GoTo(_) = b.action {
                    // The number keys share one line: "1…5  screens: ...".
                    if !rows.iter().any(|(_, h, _)| *h == GOTO_HELP) {
                        rows.push(("1…5".into(), GOTO_HELP, false));
                    }
                    continue;
                }
                rows.push((keys_label(b), b.help, b.writes));
            }
            (*ctx, ctx.title(), rows)
        })
        .collect()
}

/// One line of the help overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelpLine {
    Title(&'static str),
    Key {
        keys: String,
        help: &'static str,
        writes: bool,
    },
}

/// The help for a screen whose contexts are `screen_contexts`: its own keys first, then those
/// that work everywhere, then the dialogs', the prompt's and the help's own; one section each.
pub fn help_for(screen_contexts: &[Context]) -> Vec<Vec<HelpLine>> {
    let mut contexts: Vec<Context> = screen_contexts
        .iter()
        .copied()
        .filter(|c| *c != Context::Global)
        .collect();
    contexts.extend([
        Context::Global,
        Context::Confirm,
        Context::Input,
        Context::Help,
    ]);
    help_of(&contexts)
}

/// The help of exactly `contexts`, one section each, in that order (the Overview's help is its
/// own keys and the help's).
pub fn help_of(contexts: &[Context]) -> Vec<Vec<HelpLine>> {
    let mut sections = help_sections();
    sections.retain(|(ctx, _, rows)| !rows.is_empty() && contexts.contains(ctx));
    sections.sort_by_key(|(ctx, _, _)| contexts.iter().position(|c| c == ctx));
    sections
        .into_iter()
        .map(|(_, title, rows)| {
            let mut lines = vec![HelpLine::Title(title)];
            lines.extend(rows.into_iter().map(|(keys, help, writes)| HelpLine::Key {
                keys,
                help,
                writes,
            }));
            lines
        })
        .collect()
}

/// Rows of help text visible in a terminal `height` rows high: the popup leaves the footer
/// (which shows the help's keys) in view, and has borders.
pub fn help_rows(height: u16) -> usize {
    usize::from(height.saturating_sub(3))
}

/// The help's sections laid out in columns for a `width` x `height` terminal: two columns when
/// the terminal is wide (120 or more) and one would not fit, split between sections as evenly
/// as possible; otherwise one column, which scrolls.
pub fn help_columns(sections: Vec<Vec<HelpLine>>, width: u16, height: u16) -> Vec<Vec<HelpLine>> {
    let total: usize = sections.iter().map(Vec::len).sum();
    if width < 120 || total <= help_rows(height) {
        return vec![sections.into_iter().flatten().collect()];
    }
    let half = total.div_ceil(2);
    let mut left = Vec::new();
    let mut right = Vec::new();
    for s in sections {
        if right.is_empty() && (left.is_empty() || left.len() + s.len() <= half) {
            left.extend(s);
        } else {
            right.extend(s);
        }
    }
    vec![left, right]
}

/// The last first line the help can scroll to, for `sections` in a terminal of `viewport`
/// (one column when the size is not known: every line can reach the top, the drawing keeps
/// the page full).
pub fn max_scroll(sections: Vec<Vec<HelpLine>>, viewport: Option<(u16, u16)>) -> usize {
    match viewport {
        Some((w, h)) => {
            let columns = help_columns(sections, w, h);
            let len = columns.iter().map(Vec::len).max().unwrap_or(0);
            len.saturating_sub(help_rows(h))
        }
        None => sections
            .iter()
            .map(Vec::len)
            .sum::<usize>()
            .saturating_sub(1),
    }
}

/// The help's scroll position after `action` (Up, Down, PageUp, PageDown, Home, End), within
/// `max`, a page being what a terminal of `viewport` shows.
pub fn scroll_to(scroll: usize, max: usize, viewport: Option<(u16, u16)>, action: Action) -> usize {
    let page = viewport.map_or(10, |(_, h)| help_rows(h).saturating_sub(1).max(1));
    let s = scroll.min(max);
    match action {
        Action::Up => s.saturating_sub(1),
        Action::Down => (s + 1).min(max),
        Action::PageUp => s.saturating_sub(page),
        Action::PageDown => (s + page).min(max),
        Action::Home => 0,
        Action::End => max,
        _ => s,
    }
}
