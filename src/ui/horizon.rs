//! The xmin horizon strip of the dashboard: who keeps VACUUM from removing the table's dead
//! rows, how many it keeps, and what the operator can do (the keys, from the key table, or
//! the SQL idemtop never runs itself).

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::Theme;
use crate::app::action::Action;
use crate::app::{keys, App};
use crate::db::horizon::{Holder, XminHorizon};
use crate::format;
use crate::sanitize;

/// Rows the strip takes at `width` (borders included) when there is something to say, else 0.
pub fn height(app: &App, h: Option<&XminHorizon>, width: u16, t: &Theme) -> u16 {
    let Some(h) = h.filter(|h| h.holder.is_some()) else {
        return 0;
    };
    let inner = usize::from(width.saturating_sub(2)).max(1);
    2 + lines(app, h, t)
        .iter()
        .map(|l| super::wrapped_rows(&l.to_string(), inner))
        .sum::<u16>()
}

/// The holder's age as it ticks: its age when read plus the time since.
fn live_age(app: &App, h: &Holder) -> Option<String> {
    let since = app.data_age().unwrap_or_default();
    h.age_secs
        .map(|a| format::duration_secs(a.max(0.0) + since.as_secs_f64()))
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, h: &XminHorizon, t: &Theme) {
    frame.render_widget(
        Paragraph::new(lines(app, h, t))
            .wrap(Wrap { trim: false })
            .block(super::panel(" xmin horizon ", t)),
        area,
    );
}

fn lines(app: &App, h: &XminHorizon, t: &Theme) -> Vec<Line<'static>> {
    let Some(holder) = &h.holder else {
        return Vec::new();
    };
    let mut first = vec![Span::styled("dead rows not yet removable: ", t.label())];
    first.push(Span::styled(
        match h.unremovable {
            Some(n) => format!("~{}", format::count(n)),
            None => crate::db::snapshot::NA_ON_STANDBY.to_string(),
        },
        t.warn(),
    ));
    first.push(Span::styled(", held by ", t.label()));
    first.push(Span::styled(sanitize::line(&holder.describe()), t.value()));
    // A backend's age is in its description; a prepared transaction's too.
    if holder.kind == crate::db::horizon::HolderKind::StandbyFeedback {
        if let Some(a) = live_age(app, holder) {
            first.push(Span::styled(format!(" · xact {a}"), t.label()));
        }
    }
    first.push(Span::styled(
        format!(" · {} xids", format::count(holder.age_xids)),
        t.label(),
    ));
    let second = match holder.operator_sql() {
        Some(sql) => Line::from(vec![
            Span::styled("idemtop never runs this; if you are sure: ", t.label()),
            Span::styled(sql, t.value()),
        ]),
        None if holder.signal_target().is_some() => {
            let k = |a| keys::key_for(a).unwrap_or_default();
            let spans = vec![
                Span::styled(k(Action::CancelHolder), t.key()),
                Span::styled(" cancel query  ", t.label()),
                Span::styled(k(Action::TerminateHolder), t.key()),
                Span::styled(
                    " terminate (confirmed with y; the dialog shows its query)",
                    t.label(),
                ),
            ];
            Line::from(spans)
        }
        None => Line::from(Span::styled(
            "end the long query on that standby, or turn its hot_standby_feedback off",
            t.label(),
        )),
    };
    let mut lines = vec![Line::from(first), second];
    for s in &h.hidden {
        lines.push(Line::from(Span::styled(sanitize::line(s), t.dim())));
    }
    lines
}
