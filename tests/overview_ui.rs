//! Render snapshots of the fleet's Overview (issue 16) at 80x24 and 120x40, driven through the
//! same pure `update` the real loop uses: a fleet with every state (critical, warning, down,
//! stale, connecting, ok), the help, the filter, and a target opened from it.

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use idemtop::app::overview::{
    update, Figures, FleetEvent, FleetRequest, Overview, TargetError, TargetInfo, TargetResult,
};
use idemtop::app::Event;
use idemtop::checks::Level;
use idemtop::ui::{self, Theme};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn render(o: &Overview, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| ui::overview::draw(f, o, &Theme::new(false)))
        .unwrap();
    term.backend().to_string()
}

fn key(code: KeyCode) -> FleetEvent {
    FleetEvent::Ui(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn figures(
    rows: i64,
    expired: i64,
    lag: Option<f64>,
    worst: Option<(Level, &str, &str)>,
) -> Figures {
    Figures {
        rows,
        rows_exact: rows < 10_000,
        expired,
        cleanup_lag_secs: lag,
        level: worst.map_or(Level::Ok, |w| w.0),
        worst: worst.map(|(_, n, v)| (n.to_string(), v.to_string())),
        taken_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
    }
}

/// `n` extra ok targets besides the six of every state.
fn fleet(extra: usize) -> Overview {
    let t0 = Instant::now();
    let mut names = vec![
        ("orders", "db1.internal:5432/orders"),
        ("payments", "db1.internal:5432/payments"),
        ("ledger", "db2.internal:5432/ledger"),
        ("refunds", "db2.internal:5432/refunds"),
        ("signup", "db3.internal:6432/accounts"),
        ("search", "db4.internal:5432/search"),
    ];
    let more: Vec<(String, String)> = (1..=extra)
        .map(|i| {
            (
                format!("svc-{i:02}"),
                format!("db5.internal:5432/svc_{i:02}"),
            )
        })
        .collect();
    names.extend(more.iter().map(|(a, b)| (a.as_str(), b.as_str())));
    let infos = names
        .iter()
        .map(|(n, s)| TargetInfo {
            name: n.to_string(),
            connection: format!("monitor@{s}"),
            table: "public.idempotency_records".into(),
        })
        .collect();
    let mut o = Overview::new(infos, Duration::from_secs(2), false, t0);
    let reqs = update(&mut o, FleetEvent::Ui(Event::Tick(t0)));
    assert_eq!(reqs.len(), 6 + extra);
    let answer = |o: &mut Overview, index: usize, result: Result<Figures, TargetError>| {
        let generation = o.rows[index].in_flight.unwrap();
        update(
            o,
            FleetEvent::Target(TargetResult {
                index,
                generation,
                took: Duration::from_millis(40 + index as u64),
                result,
            }),
        );
    };
    // refunds (3) measured once, then its table is locked: stale, figures kept.
    update(
        &mut o,
        FleetEvent::Ui(Event::Tick(t0 + Duration::from_millis(300))),
    );
    answer(&mut o, 3, Ok(figures(880, 0, None, None)));
    update(
        &mut o,
        FleetEvent::Ui(Event::Tick(t0 + Duration::from_millis(2400))),
    );
    answer(
        &mut o,
        3,
        Err(TargetError {
            message: "locked: AccessExclusiveLock held by pid 4242".into(),
            connection_lost: false,
        }),
    );
    answer(
        &mut o,
        0,
        Ok(figures(
            48_210,
            9_870,
            Some(5.0 * 3600.0 + 120.0),
            Some((Level::Critical, "Cleanup lag", "5h 02m")),
        )),
    );
    answer(
        &mut o,
        1,
        Ok(figures(
            1_204,
            12,
            Some(300.0),
            // Text from the database (an operation name) with an escape sequence in it.
            Some((
                Level::Warning,
                "Cached 5xx results",
                "\u{1b}]52;c;eA==\u{7}charge 2.0% 5xx",
            )),
        )),
    );
    answer(
        &mut o,
        2,
        Err(TargetError {
            message: "cannot connect to monitor@db2.internal:5432/ledger: connection refused \
                      (is the server running on that host and port?)"
                .into(),
            connection_lost: true,
        }),
    );
    // signup (4) never answers: connecting, and nobody waits for it.
    answer(&mut o, 5, Ok(figures(0, 0, None, None)));
    for i in 0..extra {
        answer(
            &mut o,
            6 + i,
            Ok(figures(100 * i as i64, i as i64, Some(60.0), None)),
        );
    }
    o
}

fn assert_clean(screen: &str) {
    assert!(
        !screen.chars().any(|c| c.is_control() && c != '\n'),
        "no control character reaches the terminal"
    );
}

#[test]
fn overview_120x40() {
    let o = fleet(4);
    let screen = render(&o, 120, 40);
    assert_clean(&screen);
    // Worst first: critical, warning, down, stale, connecting, then the ok ones by name.
    let order: Vec<&str> = [
        "orders ",
        "payments ",
        "ledger ",
        "refunds ",
        "signup ",
        "search ",
        "svc-01 ",
    ]
    .into_iter()
    .collect();
    let pos = |n: &str| {
        screen
            .find(&format!("│{n}"))
            .unwrap_or_else(|| panic!("{n} in\n{screen}"))
    };
    for pair in order.windows(2) {
        assert!(pos(pair[0]) < pos(pair[1]), "{pair:?}\n{screen}");
    }
    assert!(
        screen.contains("db2.internal:5432/ledger"),
        "server column when wide"
    );
    assert!(screen.contains("down 1×: connection refused"));
    assert!(screen.contains("stale (data 2 s old): locked"));
    assert!(screen.contains("20.5%"), "expired share: {screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn overview_80x24_with_more_targets_than_rows() {
    let mut o = fleet(22);
    let screen = render(&o, 80, 24);
    assert_clean(&screen);
    assert!(
        !screen.contains("db1.internal:5432/orders  "),
        "no server column at 80"
    );
    assert!(
        screen.contains("ledger  on monitor@db2.internal:5432/ledger"),
        "the selected one (first by name at the start, followed since) whole"
    );
    insta::assert_snapshot!("overview_80x24_top", screen);
    // Down to the last target: the table scrolls and the selection stays in view.
    for _ in 0..40 {
        update(&mut o, key(KeyCode::Char('j')));
    }
    let screen = render(&o, 80, 24);
    assert!(screen.contains("│svc-22"), "{screen}");
    assert!(screen.contains("svc-22  on monitor@db5.internal:5432/svc_22"));
    insta::assert_snapshot!("overview_80x24_scrolled", screen);
}

#[test]
fn overview_help_and_filter_at_80x24() {
    let mut o = fleet(0);
    update(
        &mut o,
        FleetEvent::Ui(Event::Resize {
            width: 80,
            height: 24,
        }),
    );
    update(&mut o, key(KeyCode::Char('?')));
    let screen = render(&o, 80, 24);
    for line in [
        "Overview (the fleet)",
        "refresh every target now",
        "filter the targets by name",
    ] {
        assert!(screen.contains(line), "{line} in\n{screen}");
    }
    insta::assert_snapshot!("overview_help_80x24", screen);
    update(&mut o, key(KeyCode::Esc));
    update(&mut o, key(KeyCode::Char('/')));
    for c in "pay".chars() {
        update(&mut o, key(KeyCode::Char(c)));
    }
    let screen = render(&o, 80, 24);
    assert!(screen.contains("Targets (1 of 6)"), "{screen}");
    assert!(screen.contains("target name contains (empty: all): pay"));
    insta::assert_snapshot!("overview_filter_80x24", screen);
}

#[test]
fn a_target_opened_from_the_overview_120x40() {
    let mut o = fleet(0);
    for _ in 0..3 {
        update(&mut o, key(KeyCode::Up));
    }
    update(&mut o, key(KeyCode::Enter));
    let reqs = update(&mut o, FleetEvent::Ui(Event::Tick(Instant::now())));
    assert!(
        reqs.iter()
            .any(|r| matches!(r, FleetRequest::Refresh { .. }))
            || reqs.is_empty()
    );
    let screen = render(&o, 120, 40);
    assert!(
        screen.contains("target orders, monitor@db1.internal:5432/orders"),
        "{screen}"
    );
    assert!(
        screen.contains("Esc overview"),
        "the way back in the footer: {screen}"
    );
    insta::assert_snapshot!(screen);
    update(&mut o, key(KeyCode::Esc));
    assert!(render(&o, 120, 40).contains("Targets (6)"));
}
