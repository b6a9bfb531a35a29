use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::app::{DbEvent, Overlay, Request};
use crate::checks::Level;

fn info(name: &str) -> TargetInfo {
    TargetInfo {
        name: name.into(),
        connection: format!("monitor@db-{name}:5432/{name}"),
        table: "public.idempotency_records".into(),
    }
}

fn fleet(names: &[&str]) -> (Overview, Instant) {
    let t0 = Instant::now();
    let o = Overview::new(
        names.iter().map(|n| info(n)).collect(),
        Duration::from_secs(2),
        false,
        t0,
    );
    (o, t0)
}

fn ui(ev: Event) -> FleetEvent {
    FleetEvent::Ui(ev)
}

fn key(code: KeyCode) -> FleetEvent {
    ui(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn ch(c: char) -> FleetEvent {
    key(KeyCode::Char(c))
}

fn figures(level: Level) -> Figures {
    Figures {
        rows: 100,
        rows_exact: true,
        expired: 25,
        cleanup_lag_secs: Some(90.0),
        level,
        worst: (level != Level::Ok).then(|| ("Cleanup lag".into(), "1m 30s".into())),
        taken_at: chrono::Utc::now(),
    }
}

fn lost(message: &str) -> Result<Figures, TargetError> {
    Err(TargetError {
        message: message.into(),
        connection_lost: true,
    })
}

fn failed(message: &str) -> Result<Figures, TargetError> {
    Err(TargetError {
        message: message.into(),
        connection_lost: false,
    })
}

/// The refreshes asked for, as (target, generation).
fn refreshes(reqs: &[FleetRequest]) -> Vec<(usize, u64)> {
    reqs.iter()
        .filter_map(|r| match r {
            FleetRequest::Refresh { index, generation } => Some((*index, *generation)),
            _ => None,
        })
        .collect()
}

fn answer(o: &mut Overview, index: usize, result: Result<Figures, TargetError>) {
    let generation = o.rows[index].in_flight.expect("a refresh in flight");
    update(
        o,
        FleetEvent::Target(TargetResult {
            index,
            generation,
            took: Duration::from_millis(12),
            result,
        }),
    );
}

fn names(o: &Overview) -> Vec<&str> {
    o.order
        .iter()
        .map(|i| o.rows[*i].info.name.as_str())
        .collect()
}

#[test]
fn the_first_tick_refreshes_every_target_each_on_its_own() {
    let (mut o, t0) = fleet(&["a", "b", "c"]);
    let reqs = update(&mut o, ui(Event::Tick(t0)));
    assert_eq!(refreshes(&reqs), vec![(0, 1), (1, 1), (2, 1)]);
    // Nothing twice while in flight.
    assert!(update(&mut o, ui(Event::Tick(t0 + Duration::from_secs(9)))).is_empty());
    assert!(o.rows.iter().all(|r| r.state == RowState::Connecting));
}

#[test]
fn rows_sort_worst_first_then_by_name_and_the_selection_follows_its_target() {
    let (mut o, t0) = fleet(&["ok-b", "crit", "down", "warn", "ok-a", "stale", "slow"]);
    update(&mut o, ui(Event::Tick(t0)));
    assert_eq!(
        o.rows[o.selected].info.name, "crit",
        "the first row, alphabetical at first"
    );
    // Select ok-b, then let the results come in.
    o.selected = 0;
    answer(&mut o, 0, Ok(figures(Level::Ok)));
    answer(&mut o, 1, Ok(figures(Level::Critical)));
    answer(&mut o, 2, lost("connection refused"));
    answer(&mut o, 3, Ok(figures(Level::Warning)));
    answer(&mut o, 4, Ok(figures(Level::Ok)));
    answer(
        &mut o,
        5,
        failed("permission denied for table idempotency_records"),
    );
    // "slow" never answers: still connecting, and nobody waits for it.
    assert_eq!(
        names(&o),
        vec!["crit", "warn", "down", "stale", "slow", "ok-a", "ok-b"]
    );
    assert_eq!(
        o.rows[o.selected].info.name, "ok-b",
        "still the same target"
    );
    assert_eq!(o.selected_position(), Some(6));
    update(&mut o, ch('k'));
    assert_eq!(o.rows[o.selected].info.name, "ok-a");
    update(&mut o, key(KeyCode::Down));
    update(&mut o, key(KeyCode::Down));
    assert_eq!(o.rows[o.selected].info.name, "ok-b", "stops at the end");
    let counts: Vec<(&str, usize)> = o.counts().iter().map(|(s, n)| (s.label(), *n)).collect();
    assert_eq!(
        counts,
        vec![
            ("critical", 1),
            ("warning", 1),
            ("down", 1),
            ("stale", 1),
            ("connecting", 1),
            ("ok", 2)
        ]
    );
}

#[test]
fn a_dead_target_backs_off_exponentially_up_to_30_s_and_the_others_keep_their_interval() {
    let (mut o, t0) = fleet(&["alive", "dead"]);
    let mut now = t0;
    update(&mut o, ui(Event::Tick(now)));
    let mut waits = Vec::new();
    for _ in 0..9 {
        answer(&mut o, 1, lost("connection refused"));
        let wait = o.rows[1].due - now;
        waits.push(wait.as_millis());
        // Not a moment before the backoff is over.
        now += wait - Duration::from_millis(1);
        let early = update(&mut o, ui(Event::Tick(now)));
        assert!(!refreshes(&early).iter().any(|(i, _)| *i == 1));
        now += Duration::from_millis(1);
        o.now = now;
        let reqs = update(&mut o, ui(Event::Tick(now)));
        assert!(refreshes(&reqs).iter().any(|(i, _)| *i == 1), "retried");
    }
    assert_eq!(
        waits,
        vec![500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
    );
    assert!(matches!(
        o.rows[1].state,
        RowState::Down { failures: 9, .. }
    ));
    // The live one was never held up: it is refreshed every interval in between.
    assert!(o.rows[0].generation > 1 || o.rows[0].in_flight.is_some());
    // Back up: the failures are forgotten and the next refresh is one interval later.
    answer(&mut o, 1, Ok(figures(Level::Ok)));
    assert_eq!(o.rows[1].state, RowState::Ok);
    assert_eq!(o.rows[1].due, now + Duration::from_secs(2));
}

#[test]
fn a_result_of_a_superseded_refresh_is_dropped() {
    let (mut o, t0) = fleet(&["a"]);
    update(&mut o, ui(Event::Tick(t0)));
    update(
        &mut o,
        FleetEvent::Target(TargetResult {
            index: 0,
            generation: 7,
            took: Duration::ZERO,
            result: Ok(figures(Level::Critical)),
        }),
    );
    assert_eq!(o.rows[0].state, RowState::Connecting);
    assert_eq!(o.rows[0].in_flight, Some(1));
    // An unknown target index is ignored too.
    update(
        &mut o,
        FleetEvent::Target(TargetResult {
            index: 9,
            generation: 1,
            took: Duration::ZERO,
            result: Ok(figures(Level::Ok)),
        }),
    );
    assert_eq!(o.rows.len(), 1);
}

#[test]
fn a_stale_target_keeps_its_figures_and_says_why() {
    let (mut o, t0) = fleet(&["a"]);
    update(&mut o, ui(Event::Tick(t0)));
    answer(&mut o, 0, Ok(figures(Level::Ok)));
    let now = t0 + Duration::from_secs(2);
    update(&mut o, ui(Event::Tick(now)));
    answer(
        &mut o,
        0,
        failed("locked: AccessExclusiveLock held by pid 42"),
    );
    assert!(o.rows[0].figures.is_some());
    assert_eq!(o.rows[0].standing(), Standing::Stale);
    assert_eq!(o.rows[0].due, o.now + Duration::from_secs(2), "no backoff");
}

#[test]
fn r_refreshes_every_target_not_in_flight_now() {
    let (mut o, t0) = fleet(&["a", "b"]);
    update(&mut o, ui(Event::Tick(t0)));
    answer(&mut o, 0, Ok(figures(Level::Ok)));
    let reqs = update(&mut o, ch('r'));
    assert_eq!(refreshes(&reqs), vec![(0, 2)]);
    assert_eq!(
        o.flash_text(),
        Some("refreshing 1 target now (1 still in flight)")
    );
}

fn opened_app(o: &Overview) -> &App {
    &o.opened.as_ref().expect("a target is open").app
}

#[test]
fn enter_opens_the_target_and_esc_or_backspace_come_back() {
    let (mut o, t0) = fleet(&["a", "b"]);
    update(&mut o, ui(Event::Tick(t0)));
    answer(&mut o, 0, Ok(figures(Level::Ok)));
    answer(&mut o, 1, Ok(figures(Level::Critical)));
    assert_eq!(names(&o), vec!["b", "a"], "worst first");
    assert_eq!(
        o.rows[o.selected].info.name, "a",
        "selected at the start, followed"
    );
    update(&mut o, ch('k'));
    assert_eq!(o.rows[o.selected].info.name, "b");
    update(&mut o, ch('j'));
    let reqs = update(&mut o, key(KeyCode::Enter));
    assert_eq!(reqs[0], FleetRequest::Open { index: 0 });
    assert!(
        matches!(reqs[1], FleetRequest::App(Request::Refresh { .. })),
        "{reqs:?}"
    );
    let app = opened_app(&o);
    assert!(app.in_fleet);
    assert!(app.session.target.contains("target a, monitor@db-a:5432/a"));
    assert_eq!(app.contexts().0.last(), Some(&Context::Fleet));
    // Its screens work as the single-target dashboard's.
    update(&mut o, ch('2'));
    assert_eq!(opened_app(&o).screen, crate::app::action::Screen::Records);
    let reqs = update(&mut o, key(KeyCode::Esc));
    assert_eq!(reqs, vec![FleetRequest::Close]);
    assert!(o.opened.is_none());
    assert_eq!(o.rows[o.selected].info.name, "a", "the same row selected");
    // Backspace too; and q quits from the Overview.
    update(&mut o, key(KeyCode::Enter));
    assert!(o.opened.is_some());
    assert_eq!(
        update(&mut o, key(KeyCode::Backspace)),
        vec![FleetRequest::Close]
    );
    update(&mut o, ch('q'));
    assert!(o.quit);
}

#[test]
fn esc_closes_what_is_on_top_first_and_never_quits() {
    let (mut o, t0) = fleet(&["a", "b"]);
    update(&mut o, ui(Event::Tick(t0)));
    // On the Overview: Esc closes the help, then nothing more.
    update(&mut o, ch('?'));
    assert!(o.help.is_some());
    update(&mut o, key(KeyCode::Esc));
    assert!(o.help.is_none());
    update(&mut o, key(KeyCode::Esc));
    assert!(!o.quit);
    update(&mut o, key(KeyCode::Enter));
    // The help of the opened target: Esc closes it and stays on the target.
    update(&mut o, ch('?'));
    assert!(matches!(opened_app(&o).overlay, Some(Overlay::Help { .. })));
    assert!(update(&mut o, key(KeyCode::Esc)).is_empty());
    assert!(o.opened.is_some() && opened_app(&o).overlay.is_none());
    // The look-up prompt: Esc cancels it, Backspace deletes a character, neither leaves.
    update(&mut o, ch('/'));
    update(&mut o, ch('x'));
    update(&mut o, key(KeyCode::Backspace));
    assert!(o.opened.is_some());
    update(&mut o, key(KeyCode::Esc));
    assert!(o.opened.is_some() && opened_app(&o).input.is_none());
    // An expanded check on Health: Esc folds it first.
    update(&mut o, ch('4'));
    update(&mut o, key(KeyCode::Enter));
    assert!(opened_app(&o).health.expanded);
    update(&mut o, key(KeyCode::Esc));
    assert!(o.opened.is_some() && !opened_app(&o).health.expanded);
    // A confirmation: Esc cancels it.
    update(&mut o, ch('c'));
    assert!(matches!(opened_app(&o).overlay, Some(Overlay::Confirm(_))));
    update(&mut o, key(KeyCode::Esc));
    assert!(o.opened.is_some() && opened_app(&o).overlay.is_none());
    // Now at the top level: back to the Overview; never a quit.
    update(&mut o, key(KeyCode::Esc));
    assert!(o.opened.is_none());
    assert!(!o.quit);
    // q quits from inside a target too.
    update(&mut o, key(KeyCode::Enter));
    update(&mut o, ch('q'));
    assert!(o.quit);
}

#[test]
fn the_overview_keeps_refreshing_while_a_target_is_open() {
    let (mut o, t0) = fleet(&["a", "b"]);
    update(&mut o, ui(Event::Tick(t0)));
    answer(&mut o, 0, Ok(figures(Level::Ok)));
    answer(&mut o, 1, Ok(figures(Level::Ok)));
    update(&mut o, key(KeyCode::Enter));
    let later = t0 + Duration::from_secs(3);
    let reqs = update(&mut o, ui(Event::Tick(later)));
    assert_eq!(refreshes(&reqs).len(), 2, "both targets: {reqs:?}");
    // The opened target's results reach its screens; after closing they are dropped.
    let generation = match opened_app(&o).refresh.in_flight {
        Some(g) => g,
        None => panic!("the opened target's refresh is in flight"),
    };
    let snap = crate::fixtures::snapshot(0, 1_000);
    update(
        &mut o,
        ui(Event::Db(DbEvent::Snapshot {
            generation,
            result: Ok(Box::new(snap)),
        })),
    );
    assert!(opened_app(&o).dash.current.is_some());
    update(&mut o, key(KeyCode::Esc));
    let late = DbEvent::Snapshot {
        generation: 99,
        result: Ok(Box::new(crate::fixtures::snapshot(0, 1))),
    };
    assert!(update(&mut o, ui(Event::Db(late))).is_empty());
}

#[test]
fn slash_filters_the_targets_by_name() {
    let (mut o, t0) = fleet(&["orders", "billing", "orders-eu"]);
    update(&mut o, ui(Event::Tick(t0)));
    update(&mut o, ch('/'));
    for c in "ORD".chars() {
        update(&mut o, ch(c));
    }
    assert_eq!(names(&o), vec!["orders", "orders-eu"], "any case");
    update(&mut o, key(KeyCode::Enter));
    assert!(o.input.is_none());
    assert_eq!(o.filter.as_deref(), Some("ORD"));
    update(&mut o, ch('/'));
    update(&mut o, ui(Event::Paste("ers-eu\n".into())));
    assert_eq!(names(&o), vec!["orders-eu"]);
    assert_eq!(o.rows[o.selected].info.name, "orders-eu");
    // Esc in the prompt drops the filter; q typed there is a letter, not a quit.
    update(&mut o, ch('q'));
    assert!(!o.quit);
    update(&mut o, key(KeyCode::Esc));
    assert!(o.filter.is_none());
    assert_eq!(o.order.len(), 3);
}

#[test]
fn figures_of_a_snapshot_and_its_checks() {
    let snap = crate::fixtures::snapshot(0, 1_000);
    let f = Figures::new(&snap, &[]);
    assert_eq!(f.rows, snap.rows.total);
    assert_eq!(f.level, Level::Ok);
    assert!(f.worst.is_none());
    assert!((0.0..=1.0).contains(&f.expired_share()));
    let empty = Figures {
        rows: 0,
        ..figures(Level::Ok)
    };
    assert_eq!(empty.expired_share(), 0.0);
    assert_eq!(info("x").server(), "db-x:5432/x");
}
