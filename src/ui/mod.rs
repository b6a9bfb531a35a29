//! Drawing. Reads the state, never changes it, never does I/O.

pub mod activity;
pub mod clipboard;
pub mod dashboard;
pub mod health;
pub mod horizon;
pub mod overlay;
pub mod overview;
pub mod partitions;
pub mod records;
pub mod theme;

use std::time::Duration;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use crate::app::action::{Action, Screen};
use crate::app::{keys, App, ConnState, HealthSummary, Overlay, UnknownWhy};
use crate::db::locks::TableLock;
use crate::format;
use crate::sanitize;
pub use theme::Theme;

/// A bordered panel titled `title` (given with its surrounding spaces), in the theme's colours.
pub fn panel(title: impl Into<String>, t: &Theme) -> ratatui::widgets::Block<'static> {
    ratatui::widgets::Block::default()
        .borders(ratatui::widgets::Borders::ALL)
        .border_style(t.border())
        .title(Span::styled(title.into(), t.title()))
}

/// Rows the header and the footer may take at most: an error message wraps over several rows
/// rather than being cut at the edge, but never pushes the screen's own content out.
const MAX_HEADER_ROWS: u16 = 6;
const MAX_FOOTER_ROWS: u16 = 4;

/// Draw the whole screen.
pub fn draw(frame: &mut Frame, app: &App, theme: &Theme) {
    let area = frame.area();
    let header_lines = header(app, theme);
    let footer_lines = footer(app, theme, area.width);
    let rows = |lines: &[Line], max: u16| {
        lines
            .iter()
            .map(|l| wrapped_rows(&l.to_string(), area.width as usize))
            .sum::<u16>()
            .clamp(1, max)
    };
    let header_h = rows(&header_lines, MAX_HEADER_ROWS);
    let footer_h = rows(&footer_lines, MAX_FOOTER_ROWS);
    let [header_area, tabs, body, footer_area] = Layout::vertical([
        Constraint::Length(header_h),
        Constraint::Length(1),
        Constraint::Min(5),
        Constraint::Length(footer_h),
    ])
    .areas(area);
    frame.render_widget(
        Paragraph::new(header_lines).wrap(Wrap { trim: false }),
        header_area,
    );
    draw_tabs(frame, tabs, app, theme);
    match app.screen {
        Screen::Dashboard => dashboard::draw(frame, body, app, theme),
        Screen::Activity => activity::draw(frame, body, app, theme),
        Screen::Records => records::draw(frame, body, app, theme),
        Screen::Health => health::draw_screen(frame, body, app, theme),
        Screen::Partitions => match &app.dash.current {
            Some(s) => partitions::draw(
                frame,
                body,
                s.partitioned,
                &app.partitions,
                s.taken_at,
                theme,
            ),
            None => activity::draw_placeholder(frame, body, app, theme),
        },
    }
    frame.render_widget(
        Paragraph::new(footer_lines).wrap(Wrap { trim: false }),
        footer_area,
    );
    match &app.overlay {
        Some(Overlay::Help { scroll }) => overlay::help(frame, app, *scroll, theme),
        Some(Overlay::Confirm(c)) => overlay::confirm(frame, c, theme),
        None => {}
    }
}

/// Whole seconds, for ages and countdowns: "42 s".
pub fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs())
}

/// An age that ticks: "42 s", then "3m 05s", "1h 02m".
pub fn age(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        secs(d)
    } else {
        format::duration_secs(d.as_secs_f64())
    }
}

/// "[4] health: 2 critical": what the checks say, the key that opens them first, and
/// "unknown" whenever the data they judged is missing or stale (never "ok" from no data).
pub fn health_span(app: &App, t: &Theme) -> Span<'static> {
    let key = keys::key_for(Action::GoTo(Screen::Health)).unwrap_or_default();
    let last = |last: Option<(usize, usize)>| match last {
        Some((c, _)) if c > 0 => format!(" (was: {c} critical)"),
        Some((_, w)) if w > 0 => format!(" (was: {w} warning(s))"),
        Some(_) => " (was: ok)".to_string(),
        None => String::new(),
    };
    let (text, style) = match app.health_summary() {
        HealthSummary::Ok => ("health ok".to_string(), t.ok()),
        HealthSummary::Warning(w) => (format!("health: {w} warning(s)"), t.warn()),
        HealthSummary::Critical(c) => (format!("health: {c} critical"), t.crit()),
        HealthSummary::SomeUnknown(u) => (format!("health: {u} unknown (no data)"), t.warn()),
        HealthSummary::Unknown { why, last: l } => {
            // Stale data is said just before ("stale, 42 s old"), so it is not said again.
            let why = match why {
                UnknownWhy::NotYet | UnknownWhy::Stale => "",
                UnknownWhy::Failed => ": the checks failed",
            };
            (format!("health unknown{why}{}", last(l)), t.warn())
        }
    };
    Span::styled(format!("[{key}] {text}"), style)
}

/// What the blocker of the table is doing, in one line: "LOCKED — AccessExclusiveLock held by
/// pid 4242 (alice, psql, idle in transaction for 3m 00s); 5 sessions wait". The transaction's
/// age ticks from when the lock was read.
pub fn lock_line(app: &App, lock: &TableLock) -> String {
    let mut who: Vec<String> = [&lock.user, &lock.application, &lock.state]
        .into_iter()
        .flatten()
        .filter(|p| !p.is_empty())
        .map(|p| sanitize::line(p))
        .collect();
    if let Some(age) = lock_xact_age(app, lock) {
        match who.last_mut() {
            Some(last) => last.push_str(&format!(" for {}", age)),
            None => who.push(format!("transaction open for {age}")),
        }
    }
    let who = if who.is_empty() {
        String::new()
    } else {
        format!(" ({})", who.join(", "))
    };
    format!(
        "LOCKED — {} {} by pid {}{who}; {} {} wait",
        sanitize::line(&lock.mode),
        if lock.granted { "held" } else { "requested" },
        lock.pid,
        lock.waiting,
        if lock.waiting == 1 {
            "session"
        } else {
            "sessions"
        }
    )
}

/// The blocker's transaction age now: as read, plus the time since.
pub fn lock_xact_age(app: &App, lock: &TableLock) -> Option<String> {
    let since = app
        .dash
        .lock_at
        .map(|at| app.now.saturating_duration_since(at))
        .unwrap_or_default();
    lock.xact_secs
        .map(|s| format::duration_secs(s.max(0.0) + since.as_secs_f64()))
}

/// The header: who and where, then the connection's state said plainly (with the error, which
/// wraps rather than being cut), then how old the figures are and what health says of them.
fn header(app: &App, t: &Theme) -> Vec<Line<'static>> {
    let snap = app.dash.current.as_ref();
    let version = snap
        .map(|s| {
            let v = s.server_version.split_whitespace().next().unwrap_or("");
            format!("PG {}", sanitize::line(v))
        })
        .unwrap_or_default();
    let mut line1 = vec![
        Span::styled("idemtop ", t.title()),
        Span::styled(sanitize::line(&app.session.table), t.value()),
        Span::styled("  on ", t.label()),
        Span::raw(sanitize::line(&app.session.target)),
        Span::styled(format!("  {version}"), t.label()),
    ];
    if app.session.read_only {
        line1.push(Span::styled("  READ-ONLY", t.warn()));
    }
    if let Some(sb) = snap.and_then(|s| s.standby.as_ref()) {
        line1.push(Span::styled(
            format!(
                "  STANDBY ({})",
                sb.describe().trim_start_matches("standby, ")
            ),
            t.warn(),
        ));
    }
    let mut lines = vec![Line::from(line1)];

    // The state, and whether it needs a line of its own (anything but plainly connected).
    let state: Option<Vec<Span<'static>>> = match &app.conn {
        ConnState::Disconnected {
            failures, error, ..
        } => {
            let when = match app.next_refresh_in() {
                Some(d) => format!("retrying in {}", secs(d)),
                None if app.refresh.paused => "paused, not retrying".to_string(),
                None => "retrying now".to_string(),
            };
            Some(vec![
                Span::styled("✖ ", t.crit()),
                Span::styled(
                    format!("disconnected — {when} (attempt {failures}): "),
                    t.crit(),
                ),
                Span::raw(sanitize::line(error)),
            ])
        }
        _ if app.dash.lock.is_some() => app.dash.lock.as_ref().map(|lock| {
            vec![
                Span::styled("▲ ", t.crit()),
                Span::styled(lock_line(app, lock), t.crit()),
            ]
        }),
        _ if app.dash.error.is_some() => Some(vec![
            Span::styled("▲ ", t.warn()),
            Span::styled("connected, last refresh failed: ", t.warn()),
            Span::raw(sanitize::line(app.dash.error.as_deref().unwrap_or(""))),
        ]),
        ConnState::Connecting | ConnState::Connected => None,
    };
    let mut info = Vec::new();
    match (&state, &app.conn) {
        (None, ConnState::Connecting) => {
            info.push(Span::styled("○ ", t.warn()));
            info.push(Span::raw("connecting…  "));
        }
        (None, _) => {
            info.push(Span::styled("● ", t.ok()));
            info.push(Span::raw("connected  "));
        }
        (Some(_), _) => {}
    }
    info.push(Span::styled(
        format!("every {}s", app.refresh.interval.as_secs()),
        t.label(),
    ));
    if app.refresh.paused {
        info.push(Span::styled("  PAUSED", t.warn()));
    }
    match snap {
        Some(s) if app.data_stale() => {
            info.push(Span::styled("  data of ", t.label()));
            info.push(Span::raw(s.taken_at.format("%H:%M:%S UTC").to_string()));
            let age = app.data_age().map(age).unwrap_or_else(|| "?".into());
            info.push(Span::styled(format!(" (stale, {age} old)"), t.warn()));
        }
        Some(s) => {
            info.push(Span::styled("  refreshed ", t.label()));
            info.push(Span::raw(s.taken_at.format("%H:%M:%S UTC").to_string()));
            info.push(Span::styled(
                format!(" in {:.0} ms", s.refresh_ms),
                t.label(),
            ));
        }
        None if state.is_some() => {
            info.push(Span::styled("  no data yet", t.warn()));
        }
        None => {}
    }
    info.push(Span::raw("  "));
    info.push(health_span(app, t));
    if app.refresh.in_flight.is_some() {
        info.push(Span::styled("  ⟳", t.dim()));
    }
    if let Some(state) = state {
        lines.push(Line::from(state));
    }
    lines.push(Line::from(info));
    lines
}

fn draw_tabs(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    let mut spans = Vec::new();
    for (i, s) in Screen::ALL.iter().enumerate() {
        let label = format!(" {} {} ", i + 1, s.title());
        spans.push(if *s == app.screen {
            Span::styled(label, t.selected())
        } else {
            Span::styled(label, t.label())
        });
        spans.push(Span::styled("│", t.border()));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The footer: the prompt while one is open (its error on a row of its own), else a message
/// while it lasts, else the keys of what is on screen, from the key table.
fn footer(app: &App, t: &Theme, width: u16) -> Vec<Line<'static>> {
    let width = usize::from(width);
    let (contexts, modal) = match &app.overlay {
        Some(Overlay::Help { .. }) => (vec![keys::Context::Help], true),
        _ => app.contexts(),
    };
    let hints = keys::footer(&contexts, modal);
    if let Some(input) = &app.input {
        let mut lines = Vec::new();
        if let Some(e) = &input.error {
            lines.push(Line::from(Span::styled(sanitize::line(e), t.crit())));
        }
        let prompt = input.kind.prompt();
        let tail = hint_spans(&hints, false, t, width.saturating_sub(prompt.len() + 40));
        let tail_w: usize = tail.iter().map(|s| s.width()).sum();
        // The end of the text, where the cursor is, always shows.
        let room = width.saturating_sub(format::width(prompt) + 1 + tail_w + 2);
        let mut spans = vec![
            Span::styled(prompt, t.key()),
            Span::raw(format::fit_tail(&sanitize::line(&input.text), room)),
            Span::styled("▏ ", t.key()),
        ];
        spans.push(Span::raw(" "));
        spans.extend(tail);
        lines.push(Line::from(spans));
        return lines;
    }
    if let Some(msg) = app.flash_text() {
        return vec![Line::from(Span::styled(sanitize::line(msg), t.warn()))];
    }
    let mut spans = Vec::new();
    let mut room = width;
    let standby = app
        .dash
        .current
        .as_ref()
        .is_some_and(|s| s.standby.is_some());
    if app.session.read_only || standby {
        let why = if app.session.read_only {
            "read-only"
        } else {
            "standby"
        };
        let text = format!("{why}: {} disabled  ", keys::write_keys().join(" "));
        room = room.saturating_sub(format::width(&text));
        spans.push(Span::styled(text, t.warn()));
    }
    spans.extend(hint_spans(
        &hints,
        app.session.read_only || standby,
        t,
        room,
    ));
    vec![Line::from(spans)]
}

/// Hints as "key what" pairs, whole ones only, within `room` columns; "…" when some were left
/// out (the help has them all).
fn hint_spans(
    hints: &[keys::FooterHint],
    read_only: bool,
    t: &Theme,
    room: usize,
) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    let mut used = 0;
    for h in hints.iter().filter(|h| !(read_only && h.writes)) {
        let need = format::width(&h.key) + 1 + format::width(h.what) + 2;
        if used + need > room.saturating_sub(1) {
            spans.push(Span::styled("…", t.dim()));
            break;
        }
        used += need;
        spans.push(Span::styled(h.key.clone(), t.key()));
        spans.push(Span::styled(format!(" {}  ", h.what), t.label()));
    }
    spans
}

/// Column widths as ratatui's `Table` lays them out (flex start, one column of spacing), so
/// that a cell can be cut to its column with a visible ellipsis instead of silently.
pub fn column_widths(width: u16, constraints: &[Constraint]) -> Vec<usize> {
    Layout::horizontal(constraints.iter().copied())
        .flex(ratatui::layout::Flex::Start)
        .spacing(1)
        .split(Rect::new(0, 0, width, 1))
        .iter()
        .map(|r| usize::from(r.width))
        .collect()
}

/// How many rows `text` takes when wrapped at word boundaries to `width` columns (a word wider
/// than the line is cut, as ratatui does).
pub fn wrapped_rows(text: &str, width: usize) -> u16 {
    let width = width.max(1);
    let mut rows = 1usize;
    let mut used = 0usize;
    for word in text.split_whitespace() {
        let w = format::width(word);
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
