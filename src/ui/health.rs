//! The Health screen: every check, worst first, one line each; Enter explains the selected
//! one (what was found and what to do). Draws only, no I/O.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;

use super::Theme;
use crate::checks::{self, CheckResult, Level};
use crate::sanitize;

/// The style of a level: ok green, warning yellow, critical red, unknown dim.
pub fn level_style(level: Level, t: &Theme) -> Style {
    match level {
        Level::Ok => t.ok(),
        Level::Warning => t.warn(),
        Level::Critical => t.crit(),
        Level::Unknown => t.dim(),
    }
}

/// The Health screen of the dashboard: the checks, marked stale when the data they judged is.
pub fn draw_screen(frame: &mut Frame, area: Rect, app: &crate::app::App, t: &Theme) {
    let h = &app.health;
    // Checks that judged data which is now stale (or that failed since) say so: what they
    // said is no longer known to hold.
    let stale = if h.error.is_some() {
        " · STALE: the last evaluation failed"
    } else if app.data_stale() || app.dash.current.is_none() {
        " · STALE: the last refresh measured nothing"
    } else {
        ""
    };
    let area = match &h.space {
        Some(space) => {
            let [checks_area, space_area] =
                Layout::vertical([Constraint::Min(5), Constraint::Length(8)]).areas(area);
            draw_space(frame, space_area, space, t);
            checks_area
        }
        None => area,
    };
    draw_marked(
        frame,
        area,
        h.checks.as_deref(),
        h.error.as_deref(),
        h.selected,
        h.expanded,
        stale,
        t,
    );
}

pub fn draw(
    frame: &mut Frame,
    area: Rect,
    checks: Option<&[CheckResult]>,
    error: Option<&str>,
    selected: usize,
    expanded: bool,
    t: &Theme,
) {
    draw_marked(frame, area, checks, error, selected, expanded, "", t);
}

#[allow(clippy::too_many_arguments)]
fn draw_marked(
    frame: &mut Frame,
    area: Rect,
    checks: Option<&[CheckResult]>,
    error: Option<&str>,
    selected: usize,
    expanded: bool,
    stale: &str,
    t: &Theme,
) {
    let block = |title: String| super::panel(title, t);
    let Some(checks) = checks else {
        let line = match error {
            Some(e) => Span::styled(
                format!("the checks failed: {}", sanitize::line(e)),
                t.crit(),
            ),
            None => Span::styled("running the checks…", t.dim()),
        };
        frame.render_widget(
            Paragraph::new(Line::from(line))
                .wrap(Wrap { trim: false })
                .block(block(" Health checks ".into())),
            area,
        );
        return;
    };
    let selected = selected.min(checks.len().saturating_sub(1));
    let title = format!(
        " Health checks: {} ({}){stale} ",
        checks::worst(checks).label(),
        checks::summary(checks)
    );
    let (list_area, detail_area) = if expanded && !checks.is_empty() {
        let detail_h = area.height.saturating_sub(5).clamp(3, 12);
        let [a, b] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(detail_h)]).areas(area);
        (a, Some(b))
    } else {
        (area, None)
    };

    if checks.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled("no checks", t.dim()))).block(block(title)),
            list_area,
        );
        return;
    }
    let name_w = checks
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0);
    // Borders, the highlight symbol, the level and the name: the value gets the rest, and is
    // cut with an ellipsis when it does not fit (Enter shows it whole, wrapped).
    let value_w = usize::from(list_area.width).saturating_sub(2 + 2 + 8 + 2 + name_w + 2);
    let items: Vec<ListItem> = checks
        .iter()
        .map(|c| {
            ListItem::new(Line::from(vec![
                Span::styled(format!("{:<8}", c.level.label()), level_style(c.level, t)),
                Span::raw("  "),
                Span::styled(format!("{:<name_w$}", sanitize::line(&c.name)), t.label()),
                Span::raw("  "),
                Span::styled(
                    crate::format::fit(&sanitize::line(&c.value), value_w),
                    t.value(),
                ),
            ]))
        })
        .collect();
    let list = List::new(items)
        .block(block(title))
        .highlight_style(t.selected())
        .highlight_symbol("▶ ");
    let mut state = ListState::default().with_selected(Some(selected));
    frame.render_stateful_widget(list, list_area, &mut state);

    if let Some(detail_area) = detail_area {
        let c = &checks[selected];
        let mut lines = vec![
            Line::from(vec![
                Span::styled(c.level.label(), level_style(c.level, t)),
                Span::raw("  "),
                Span::styled(sanitize::line(&c.value), t.value()),
            ]),
            Line::from(Span::raw(sanitize::line(&c.detail))),
        ];
        if !c.advice.is_empty() {
            lines.push(Line::from(vec![
                Span::styled("What to do: ", t.key()),
                Span::raw(sanitize::line(&c.advice)),
            ]));
        }
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .block(block(format!(" {} ({}) ", sanitize::line(&c.name), c.id))),
            detail_area,
        );
    }
}

/// `B`: the free space measured with pgstattuple, and whether a rewrite is advised.
fn draw_space(frame: &mut Frame, area: Rect, space: &crate::app::SpaceState, t: &Theme) {
    use crate::app::SpaceState;
    use crate::format::bytes;
    let why = Line::from(Span::styled(
        "VACUUM makes dead rows' space reusable by new rows but gives it back to the system only \
         from the table's end; a rewrite compacts it: pg_repack online (a brief ACCESS EXCLUSIVE \
         lock), or VACUUM FULL (ACCESS EXCLUSIVE for the whole rewrite: the application waits).",
        t.dim(),
    ));
    let lines = match space {
        SpaceState::Measuring => vec![
            Line::from(Span::styled(
                "measuring with pgstattuple (reads the whole table, at most 30 s)…",
                t.dim(),
            )),
            why,
        ],
        SpaceState::Failed(e) => vec![Line::from(Span::styled(sanitize::line(e), t.crit())), why],
        SpaceState::Measured(r) => {
            let f = &r.figures;
            let pct = |n: i64| {
                if f.table_len > 0 {
                    n as f64 * 100.0 / f.table_len as f64
                } else {
                    0.0
                }
            };
            let mut lines = vec![Line::from(vec![
                Span::styled("heap ", t.label()),
                Span::styled(bytes(f.table_len), t.value()),
                Span::raw(format!(
                    "  live {} rows ({:.1}%)  dead {} ({:.1}%)  ",
                    crate::format::count(f.tuple_count),
                    pct(f.tuple_len),
                    crate::format::count(f.dead_tuple_count),
                    pct(f.dead_tuple_len),
                )),
                Span::styled("free ", t.label()),
                Span::styled(
                    format!("{} ({:.1}%)", bytes(f.free_space), f.free_percent),
                    if r.advice.is_some() {
                        t.warn()
                    } else {
                        t.value()
                    },
                ),
                Span::styled(format!("  by {}", f.method), t.dim()),
            ])];
            match &r.advice {
                Some(a) => lines.push(Line::from(vec![
                    Span::styled("What to do: ", t.key()),
                    Span::raw(sanitize::line(a)),
                ])),
                None => lines.push(Line::from(Span::styled(
                    "below the rewrite threshold: VACUUM's reuse of the free space is enough",
                    t.ok(),
                ))),
            }
            lines.push(why);
            lines
        }
    };
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(super::panel(
                format!(
                    " Free space ({}: measure again) ",
                    crate::app::keys::key_for(crate::app::action::Action::MeasureSpace)
                        .unwrap_or_default()
                ),
                t,
            )),
        area,
    );
}
