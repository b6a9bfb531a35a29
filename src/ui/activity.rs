//! The activity log screen, and the progress panel of a running action.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Gauge, Paragraph, Row, Table};
use ratatui::Frame;

use super::Theme;
use crate::app::action::Maintenance;
use crate::app::App;
use crate::format::{self, count};
use crate::sanitize;

pub fn draw(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    let [cron_area, log_area] =
        Layout::vertical([Constraint::Length(8), Constraint::Min(4)]).areas(area);
    draw_cron(frame, cron_area, app, t);
    draw_log(frame, log_area, app, t);
}

/// The pg_cron panel: the `cleanup-idempotency` job and its last runs, or how to enable it.
fn draw_cron(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    use crate::db::cron::{enable_hint, CronStatus, JOB_NAME};
    let key = |a| crate::app::keys::key_for(a).unwrap_or_default();
    let block = super::panel(
        format!(
            " pg_cron job '{JOB_NAME}' ({} schedule hourly · {} unschedule) ",
            key(crate::app::action::Action::ScheduleCron),
            key(crate::app::action::Action::UnscheduleCron)
        ),
        t,
    );
    let now = app
        .dash
        .current
        .as_ref()
        .map(|s| s.taken_at)
        .unwrap_or_else(chrono::Utc::now);
    let lines: Vec<Line> = match &app.cron {
        None => vec![Line::from(Span::styled("reading pg_cron…", t.dim()))],
        Some(Err(e)) => vec![Line::from(vec![
            Span::styled("error: ", t.crit()),
            Span::raw(sanitize::line(e)),
        ])],
        Some(Ok(CronStatus::Ready { job: None, .. })) => vec![
            Line::from(Span::styled(
                "pg_cron is ready; the cleanup job is not scheduled.",
                t.warn(),
            )),
            Line::from(Span::styled(
                format!(
                    "{} schedules SELECT cleanup_expired_idempotency_records() hourly (0 * * * *).",
                    key(crate::app::action::Action::ScheduleCron)
                ),
                t.dim(),
            )),
        ],
        Some(Ok(CronStatus::Ready {
            job: Some(job),
            runs,
        })) => {
            let mut lines = vec![Line::from(vec![
                Span::styled("schedule ", t.label()),
                Span::styled(sanitize::line(&job.schedule), t.value()),
                Span::styled("  active ", t.label()),
                if job.active {
                    Span::styled("yes", t.ok())
                } else {
                    Span::styled("NO", t.crit())
                },
                Span::styled("  command ", t.label()),
                Span::raw(sanitize::line(&job.command)),
            ])];
            if runs.is_empty() {
                lines.push(Line::from(Span::styled("no runs yet", t.dim())));
            }
            for r in runs.iter().take(4) {
                let took = match (r.start_time, r.end_time) {
                    (Some(s), Some(e)) => {
                        format!("{:.2} s", (e - s).num_milliseconds() as f64 / 1000.0)
                    }
                    _ => "—".into(),
                };
                lines.push(Line::from(vec![
                    Span::raw(format!("{:<10}", format::ago_short(r.start_time, now))),
                    Span::styled(
                        format!("{:<10}", sanitize::line(&r.status)),
                        if r.status == "succeeded" {
                            t.ok()
                        } else if r.status == "failed" {
                            t.crit()
                        } else {
                            t.label()
                        },
                    ),
                    Span::raw(format!("{took:<9}")),
                    Span::styled(sanitize::line(&r.return_message), t.dim()),
                ]));
            }
            lines
        }
        Some(Ok(other)) => vec![
            Line::from(Span::styled("pg_cron is not usable here.", t.warn())),
            Line::from(sanitize::line(&enable_hint(other).unwrap_or_default())),
        ],
    };
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: true })
            .block(block),
        area,
    );
}

fn draw_log(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    let widths = [
        Constraint::Length(8),
        Constraint::Length(22),
        Constraint::Length(9),
        Constraint::Length(10),
        Constraint::Length(6),
        Constraint::Min(10),
    ];
    let detail_w = super::column_widths(area.width.saturating_sub(2), &widths)[5];
    let rows = app.log.iter().rev().map(|e| {
        // A message (an error, most often) wraps over up to three rows; past that it ends in
        // "…", never cut without a sign.
        let detail = wrap_lines(&sanitize::line(&e.message), detail_w, 3);
        let height = detail.len().max(1) as u16;
        Row::new(vec![
            Cell::from(e.at.format("%H:%M:%S").to_string()),
            Cell::from(format::fit(&e.what, 22)),
            Cell::from(
                e.elapsed
                    .map(|d| format!("{:.2} s", d.as_secs_f64()))
                    .unwrap_or_default(),
            ),
            Cell::from(e.rows.map(|r| count(r as i64)).unwrap_or_default()),
            Cell::from(if e.ok {
                Span::styled("ok", t.ok())
            } else {
                Span::styled("FAILED", t.crit())
            }),
            Cell::from(ratatui::text::Text::from(
                detail.into_iter().map(Line::from).collect::<Vec<_>>(),
            )),
        ])
        .height(height)
    });
    let table = Table::new(rows, widths)
        .header(Row::new(["time", "action", "took", "rows", "result", "detail"]).style(t.label()))
        .block(super::panel(" Activity log (newest first) ", t));
    if app.log.is_empty() {
        frame.render_widget(
            Paragraph::new(vec![
                Line::from(Span::styled("No maintenance yet this session.", t.dim())),
                Line::from(Span::styled(
                    {
                        use crate::app::action::Action;
                        let k = |a| crate::app::keys::key_for(a).unwrap_or_default();
                        format!(
                            "{} cleanup · {} ANALYZE · {} VACUUM: each asks first, then shows up here.",
                            k(Action::Cleanup),
                            k(Action::Analyze),
                            k(Action::Vacuum)
                        )
                    },
                    t.dim(),
                )),
            ])
            .block(super::panel(" Activity log ", t)),
            area,
        );
    } else {
        frame.render_widget(table, area);
    }
}

/// Progress of the running maintenance action (or of a VACUUM seen in pg_stat_progress_vacuum).
pub fn draw_progress(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.border())
        .title(Span::styled(" Running ", t.warn()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [gauge_area, text_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(inner);
    let vac = app
        .dash
        .current
        .as_ref()
        .and_then(|s| s.vacuum.running.as_ref());
    let (ratio, label, text) = match (&app.running, vac) {
        (Some(r), _) if r.what == Maintenance::Cleanup => {
            let p = r.progress.clone().unwrap_or_default();
            let total = p.remaining.map(|r| p.deleted + r).unwrap_or(0);
            // A sweep knows exactly how far through the table it is; a walk estimates by rows.
            let (ratio, how) = match p.pages {
                Some((done, all)) if all > 0 => (
                    done as f64 / all as f64,
                    format!(
                        "heap sweep, page {} of {}",
                        count(done as i64),
                        count(all as i64)
                    ),
                ),
                _ => (
                    if total > 0 {
                        p.deleted as f64 / total as f64
                    } else {
                        0.0
                    },
                    format!(
                        "{} batches of ~{}",
                        p.batches,
                        count(i64::from(p.batch_size))
                    ),
                ),
            };
            (
                ratio,
                // Without a counted backlog a walk has no denominator: no percentage then.
                if p.pages.is_some() || p.remaining.is_some() {
                    format!("cleanup {}", format::percent(ratio))
                } else {
                    "cleanup".to_string()
                },
                format!(
                    "deleted {} · {} · {} rows/s · {how} · {:.1} s{}",
                    count(p.deleted as i64),
                    match p.remaining {
                        Some(r) => format!("left ~{}", count(r as i64)),
                        None => "backlog not counted".to_string(),
                    },
                    count(p.rows_per_sec.round() as i64),
                    p.elapsed.as_secs_f64(),
                    if r.stopping {
                        " · stopping after this batch".to_string()
                    } else {
                        let stop = crate::app::keys::BINDINGS
                            .iter()
                            .find(|b| b.context == crate::app::keys::Context::Running)
                            .map(|b| b.keys[0].label())
                            .unwrap_or_default();
                        format!(" · {stop} stops")
                    }
                ),
            )
        }
        (_, Some(v)) => (
            v.fraction(),
            format!("VACUUM {}", format::percent(v.fraction())),
            format!(
                "pid {} · {} · heap {}/{} blocks scanned, {} vacuumed · index passes {}",
                v.pid,
                sanitize::line(&v.phase),
                count(v.heap_blks_scanned),
                count(v.heap_blks_total),
                count(v.heap_blks_vacuumed),
                v.index_vacuum_count
            ),
        ),
        (Some(r), None) => (
            0.0,
            format!("{} …", r.what.verb()),
            format!(
                "{} running for {:.1} s; the dashboard stays live",
                r.what.verb(),
                app.now.saturating_duration_since(r.started).as_secs_f64()
            ),
        ),
        (None, None) => (0.0, String::new(), String::new()),
    };
    frame.render_widget(
        Gauge::default()
            .gauge_style(t.gauge())
            .ratio(ratio.clamp(0.0, 1.0))
            .label(label),
        gauge_area,
    );
    frame.render_widget(Paragraph::new(text), text_area);
}

/// A screen whose data has not arrived yet.
pub fn draw_placeholder(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    frame.render_widget(
        Paragraph::new(Line::from(Span::styled("Loading…", t.dim())))
            .block(super::panel(format!(" {} ", app.screen.title()), t)),
        area,
    );
}

/// `text` word-wrapped to `width` columns, at most `max_rows` rows; the last row ends in "…"
/// when something was left out. A word wider than a row is cut (with "…" when it is the end).
pub fn wrap_lines(text: &str, width: usize, max_rows: usize) -> Vec<String> {
    let width = width.max(1);
    let mut rows: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut left_out = false;
    for word in text.split_whitespace() {
        let need = if cur.is_empty() {
            format::width(word)
        } else {
            format::width(&cur) + 1 + format::width(word)
        };
        if need > width && !cur.is_empty() {
            rows.push(std::mem::take(&mut cur));
        }
        if rows.len() == max_rows {
            left_out = true;
            break;
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        if rows.len() < max_rows {
            rows.push(cur);
        } else {
            left_out = true;
        }
    }
    for r in rows.iter_mut() {
        if format::width(r) > width {
            *r = format::fit(r, width);
        }
    }
    if left_out {
        if let Some(last) = rows.last_mut() {
            let cut = format::fit(last, width.saturating_sub(1));
            *last = if cut.ends_with('…') {
                cut
            } else {
                format!("{cut}…")
            };
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::wrap_lines;

    #[test]
    fn messages_wrap_and_show_what_was_left_out() {
        assert_eq!(
            wrap_lines("canceling statement due to statement timeout", 20, 3),
            vec!["canceling statement", "due to statement", "timeout"]
        );
        let rows = wrap_lines(
            "held by pid 11234 for 3m 02s, 5 sessions wait behind it",
            12,
            2,
        );
        assert_eq!(rows.len(), 2);
        assert!(rows[1].ends_with('…'), "{rows:?}");
        assert!(
            rows.iter().all(|r| crate::format::width(r) <= 12),
            "{rows:?}"
        );
        assert_eq!(wrap_lines("", 10, 3), Vec::<String>::new());
        assert_eq!(wrap_lines("abcdefghijkl", 5, 3), vec!["abcd…"]);
    }
}
