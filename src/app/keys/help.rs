//! The help overlay, generated from the key table: sections, lines, columns.

use super::*;

pub(super) const GOTO_HELP: &str = "screens: dashboard, records, partitions, health, activity";

pub fn help_sections() -> Vec<HelpSection> {
    let order = [
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
