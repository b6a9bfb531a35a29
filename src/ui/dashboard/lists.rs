//! The dashboard's lists: operations, indexes, history.

use super::*;

pub(super) fn draw_operations(frame: &mut Frame, area: Rect, app: &App, s: &Snapshot, t: &Theme) {
    if let Some(na) = s.mapping.na(crate::db::shape::Role::Operation) {
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(na, t.dim())))
                .wrap(Wrap { trim: false })
                .block(block("Operations", t)),
            area,
        );
        return;
    }
    let widths = [
        Constraint::Min(14),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(16),
    ];
    let name_w = super::super::column_widths(area.width.saturating_sub(2), &widths)[0];
    let total: i64 = s.operations.iter().map(|o| o.total).sum::<i64>().max(1);
    let rows = s.operations.iter().map(|o| {
        let share = o.total as f64 / total as f64;
        let bar = "█".repeat((share * 8.0).round() as usize);
        let opt = |v: Option<i64>| v.map(count).unwrap_or_else(|| "—".into());
        let status = o
            .status
            .map(|st| {
                format!(
                    "{}/{}/{}",
                    format::compact(st.s2xx),
                    format::compact(st.s4xx),
                    format::compact(st.s5xx)
                )
            })
            .unwrap_or_else(|| "—".into());
        let avg = o
            .avg_payload_bytes
            .map(|b| format::bytes(b.round() as i64))
            .unwrap_or_else(|| "—".into());
        Row::new(vec![
            Cell::from(format::fit(&sanitize::line(&o.operation), name_w)),
            Cell::from(approx(o.total, o.exact)),
            Cell::from(opt(o.live)),
            Cell::from(opt(o.expired)),
            Cell::from(Span::styled(format!("{bar:<8}"), t.gauge())),
            Cell::from(avg),
            Cell::from(status),
        ])
    });
    let open = crate::app::keys::key_for(crate::app::action::Action::Open).unwrap_or_default();
    let title = match s.operations_as_of {
        Some(at) if !s.operations_exact => format!(
            "Operations (~ exact pass of {} carried to now; {open}: records)",
            format::ago_short(Some(at), s.taken_at)
        ),
        Some(at) if at < s.taken_at => format!(
            "Operations (exact as of {}; {open}: records)",
            format::ago_short(Some(at), s.taken_at)
        ),
        Some(_) => format!("Operations ({open}: records)"),
        None => {
            let exact = crate::app::keys::key_for(crate::app::action::Action::CountExactly)
                .unwrap_or_default();
            format!("Operations (~ from pg_stats; {exact}: count exactly)")
        }
    };
    let table = Table::new(rows, widths)
        .header(
            Row::new([
                "operation",
                "total",
                "live",
                "expired",
                "share",
                "avg pay",
                "2xx/4xx/5xx",
            ])
            .style(t.label()),
        )
        .block(block(&title, t))
        .row_highlight_style(t.selected());
    let mut state = TableState::default().with_selected(Some(app.dash.selected_op));
    frame.render_stateful_widget(table, area, &mut state);
}

pub(super) fn draw_indexes(frame: &mut Frame, area: Rect, app: &App, s: &Snapshot, t: &Theme) {
    let widths = [
        Constraint::Min(26),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(7),
    ];
    let name_w = super::super::column_widths(area.width.saturating_sub(2), &widths)[0];
    let mut rows: Vec<Row> = s
        .indexes
        .iter()
        .map(|i| {
            let per_s = app.dash.rates.idx_scans_per_s.get(&i.name).copied();
            let flag = if !i.valid {
                Span::styled("INVALID", t.crit())
            } else if crate::checks::index_unused(
                i,
                s.counters.n_tup_ins,
                app.unused_index_after_inserts,
            ) {
                Span::styled("unused", t.warn())
            } else if i.idx_scan == 0 {
                Span::styled("not yet", t.dim())
            } else {
                Span::raw("")
            };
            Row::new(vec![
                Cell::from(format::fit(&sanitize::line(&i.name), name_w)),
                Cell::from(format::bytes(i.size_bytes)),
                Cell::from(count(i.idx_scan)),
                Cell::from(format::rate(per_s)),
                Cell::from(count(i.idx_tup_read)),
                Cell::from(flag),
            ])
        })
        .collect();
    for e in s.expected_indexes.iter().filter(|e| e.missing()) {
        rows.push(Row::new(vec![
            Cell::from(Span::styled(e.name.clone(), t.crit())),
            Cell::from(Span::styled("MISSING", t.crit())),
            Cell::from(format!("on {}", e.column)),
        ]));
    }
    let table = Table::new(rows, widths)
        .header(Row::new(["index", "size", "scans", "rate", "tup read", ""]).style(t.label()))
        .block(block("Indexes", t));
    frame.render_widget(table, area);
}

pub(super) fn draw_history(frame: &mut Frame, area: Rect, app: &App, t: &Theme) {
    let cols = Layout::horizontal([
        Constraint::Ratio(1, 3),
        Constraint::Ratio(1, 3),
        Constraint::Ratio(1, 3),
    ])
    .split(area);
    let h = &app.dash.history;
    let width = cols[0].width.saturating_sub(2) as usize;
    let tail = h.iter().skip(h.len().saturating_sub(width));
    let live: Vec<u64> = tail.clone().map(|p| p.live.max(0) as u64).collect();
    let expired: Vec<u64> = tail.clone().map(|p| p.expired.max(0) as u64).collect();
    let ins: Vec<u64> = tail
        .map(|p| p.ins_per_s.unwrap_or(0.0).max(0.0).round() as u64)
        .collect();
    let r = &app.dash.rates;
    let titles = [
        format!(
            "live {}",
            h.back().map(|p| count(p.live)).unwrap_or_default()
        ),
        format!(
            "expired {}",
            h.back().map(|p| count(p.expired)).unwrap_or_default()
        ),
        format!(
            "ins {} del {}",
            format::rate(r.ins_per_s),
            format::rate(r.del_per_s)
        ),
    ];
    for (i, (data, title)) in [live, expired, ins].iter().zip(titles.iter()).enumerate() {
        frame.render_widget(
            Sparkline::default()
                .block(block(title, t))
                .data(data)
                .style(t.spark(i)),
            cols[i],
        );
    }
}

/// Keys in flight (a table whose mapping has an in-flight state): how many, how many stuck,
/// the oldest and its age, the rows by state (those in flight marked).
pub(super) fn draw_inflight(frame: &mut Frame, area: Rect, s: &Snapshot, t: &Theme) {
    let Some(f) = &s.inflight else {
        let why = s
            .mapping
            .na(crate::db::shape::Role::InFlight)
            .unwrap_or_else(|| "not counted in time".into());
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(why, t.dim())))
                .wrap(Wrap { trim: false })
                .block(block("In flight", t)),
            area,
        );
        return;
    };
    let stuck_style = if f.stuck > 0 { t.crit() } else { t.ok() };
    let mut lines = vec![
        Line::from(vec![
            Span::styled("in flight ", t.label()),
            Span::styled(count(f.in_flight), t.value()),
            Span::styled("  stuck ", t.label()),
            Span::styled(count(f.stuck), stuck_style),
        ]),
        Line::from(vec![
            Span::styled("oldest    ", t.label()),
            Span::styled(
                match (&f.oldest_key, f.oldest_age_secs) {
                    (Some(k), Some(age)) => format!(
                        "{} ({})",
                        format::fit(
                            &sanitize::line(k),
                            usize::from(area.width).saturating_sub(24)
                        ),
                        format::duration_secs(age)
                    ),
                    _ => "—".into(),
                },
                t.value(),
            ),
        ]),
    ];
    for st in &f.by_state {
        lines.push(Line::from(vec![
            Span::styled(
                format!(
                    "{}{:<16}",
                    if st.in_flight { "● " } else { "  " },
                    format::fit(&sanitize::line(&st.state), 16)
                ),
                if st.in_flight { t.warn() } else { t.label() },
            ),
            Span::styled(format!("{:>10}", count(st.rows)), t.value()),
        ]));
    }
    let title = format!(
        "In flight (stuck: {} > {})",
        if f.stuck_by == "locked_at" {
            "locked"
        } else {
            "created"
        },
        format::duration_secs(f.stuck_after_secs)
    );
    frame.render_widget(Paragraph::new(lines).block(block(&title, t)), area);
}
