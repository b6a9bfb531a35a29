//! Drawing. Reads the state, never changes it, never does I/O.

pub mod activity;
pub mod dashboard;
pub mod health;
pub mod overlay;
pub mod partitions;
pub mod records;
pub mod theme;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::app::action::Screen;
use crate::app::{App, ConnState, Overlay};
use crate::sanitize;
pub use theme::Theme;

/// A bordered panel titled `title` (given with its surrounding spaces), in the theme's colours.
pub fn panel(title: impl Into<String>, t: &Theme) -> ratatui::widgets::Block<'static> {
    ratatui::widgets::Block::default()
        .borders(ratatui::widgets::Borders::ALL)
        .border_style(t.border())
        .title(Span::styled(title.into(), t.title()))
}

/// Draw the whole screen.
pub fn draw(frame: &mut Frame, app: &App, theme: &Theme) {
    let [header, tabs, body, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(1),
        Constraint::Min(5),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_header(frame, header, app, theme);
    draw_tabs(frame, tabs, app, theme);
    match app.screen {
        Screen::Dashboard => dashboard::draw(frame, body, app, theme),
        Screen::Activity => activity::draw(frame, body, app, theme),
        Screen::Records => records::draw(frame, body, app, theme),
        Screen::Health => health::draw(
            frame,
            body,
            app.health.checks.as_deref(),
            app.health.error.as_deref(),
            app.health.selected,
            app.health.expanded,
            theme,
        ),
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
    draw_footer(frame, footer, app, theme);
    match &app.overlay {
        Some(Overlay::Help) => overlay::help(frame, app, theme),
        Some(Overlay::Confirm(c)) => overlay::confirm(frame, c, theme),
        None => {}
    }
}

fn draw_header(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    let snap = app.dash.current.as_ref();
    let version = snap
        .map(|s| {
            let v = s.server_version.split_whitespace().next().unwrap_or("");
            format!("PG {}", sanitize::line(v))
        })
        .unwrap_or_default();
    let line1 = Line::from(vec![
        Span::styled("idemtop ", t.title()),
        Span::styled(sanitize::line(&app.session.table), t.value()),
        Span::styled("  on ", t.label()),
        Span::raw(sanitize::line(&app.session.target)),
        Span::styled(format!("  {version}"), t.label()),
        if app.session.read_only {
            Span::styled("  READ-ONLY", t.warn())
        } else {
            Span::raw("")
        },
    ]);
    let (dot, state) = match &app.conn {
        ConnState::Connecting => (Span::styled("○ ", t.warn()), "connecting…".to_string()),
        ConnState::Connected if app.dash.stale() => (
            Span::styled("● ", t.warn()),
            "connected (last refresh failed)".into(),
        ),
        ConnState::Connected => (Span::styled("● ", t.ok()), "connected".into()),
        ConnState::Reconnecting { attempt, .. } => (
            Span::styled("✖ ", t.crit()),
            format!("server unreachable, reconnecting (attempt {})", attempt + 1),
        ),
    };
    let mut spans = vec![dot, Span::raw(state)];
    spans.push(Span::styled(
        format!("  every {}s", app.refresh.interval.as_secs()),
        t.label(),
    ));
    if app.refresh.paused {
        spans.push(Span::styled("  PAUSED", t.warn()));
    }
    if let Some(s) = snap {
        spans.push(Span::styled("  refreshed ", t.label()));
        spans.push(Span::raw(s.taken_at.format("%H:%M:%S UTC").to_string()));
        spans.push(Span::styled(
            format!(" in {:.0} ms", s.refresh_ms),
            t.label(),
        ));
    }
    if let Some(checks) = &app.health.checks {
        use crate::checks::Level;
        let count = |l: Level| checks.iter().filter(|c| c.level == l).count();
        let (crit, warn) = (count(Level::Critical), count(Level::Warning));
        let (text, style) = match (crit, warn) {
            (0, 0) => ("  health ok".to_string(), t.ok()),
            (0, w) => (format!("  health: {w} warning(s) (4)"), t.warn()),
            (c, _) => (format!("  health: {c} critical (4)"), t.crit()),
        };
        spans.push(Span::styled(text, style));
    }
    if app.refresh.in_flight.is_some() {
        spans.push(Span::styled("  ⟳", t.dim()));
    }
    frame.render_widget(Paragraph::new(vec![line1, Line::from(spans)]), area);
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

fn draw_footer(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    let line = if let Some(input) = &app.input {
        let mut spans = vec![
            Span::styled(input.kind.prompt(), t.key()),
            Span::raw(sanitize::line(&input.text)),
            Span::styled("▏", t.key()),
        ];
        if let Some(e) = &input.error {
            spans.push(Span::styled(format!("  {}", sanitize::line(e)), t.crit()));
        } else {
            spans.push(Span::styled("  Enter ok · Esc cancel", t.dim()));
        }
        Line::from(spans)
    } else if let Some(msg) = &app.flash {
        Line::from(Span::styled(sanitize::line(msg), t.warn()))
    } else if let (true, Some(err)) = (
        app.dash.stale() || app.dash.current.is_none(),
        &app.dash.error,
    ) {
        let label = if app.dash.current.is_some() {
            "stale: "
        } else {
            "error: "
        };
        Line::from(vec![
            Span::styled(label, t.crit()),
            Span::raw(sanitize::line(err)),
        ])
    } else {
        let mut spans = Vec::new();
        let hints: &[(&str, &str)] = if app.session.read_only {
            &[
                ("?", "help"),
                ("q", "quit"),
                ("/", "lookup"),
                ("space", "pause"),
                ("Tab", "screens"),
            ]
        } else {
            &[
                ("?", "help"),
                ("q", "quit"),
                ("c", "cleanup"),
                ("a", "analyze"),
                ("v", "vacuum"),
                ("/", "lookup"),
                ("space", "pause"),
                ("Tab", "screens"),
            ]
        };
        if app.session.read_only {
            spans.push(Span::styled("read-only: c a v d S U disabled  ", t.warn()));
        }
        for (k, what) in hints.iter().copied() {
            spans.push(Span::styled(k, t.key()));
            spans.push(Span::styled(format!(" {what}  "), t.label()));
        }
        Line::from(spans)
    };
    frame.render_widget(Paragraph::new(line), area);
}
