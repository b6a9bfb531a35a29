//! Pure state tests: events in, state and requests out. No terminal, no database.

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::fixtures::snapshot;

fn app(now: Instant) -> App {
    App::new(
        SessionInfo {
            target: "me@db:5432/app".into(),
            table: "public.idempotency_records".into(),
            read_only: false,
        },
        Duration::from_secs(2),
        now,
    )
}

fn key(c: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

fn code(c: KeyCode) -> Event {
    Event::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn refresh_gen(reqs: &[Request]) -> u64 {
    match reqs {
        [Request::Refresh { generation, .. }] => *generation,
        other => panic!("expected one refresh, got {other:?}"),
    }
}

fn ok(generation: u64, snap: crate::db::snapshot::Snapshot) -> Event {
    Event::Db(DbEvent::Snapshot {
        generation,
        result: Ok(Box::new(snap)),
    })
}

fn err(generation: u64, lost: bool) -> Event {
    Event::Db(DbEvent::Snapshot {
        generation,
        result: Err(DbError {
            message: "connection refused".into(),
            connection_lost: lost,
        }),
    })
}

#[test]
fn first_tick_refreshes_and_no_second_refresh_while_one_is_in_flight() {
    let t0 = Instant::now();
    let mut a = app(t0);
    let g = refresh_gen(&update(&mut a, Event::Tick(t0)));
    assert_eq!(a.refresh.in_flight, Some(g));
    assert!(update(&mut a, Event::Tick(t0 + Duration::from_secs(10))).is_empty());
    assert!(update(&mut a, key('r')).is_empty(), "r while in flight");
    assert_eq!(a.flash_text(), Some("a refresh is already in flight"));
    update(&mut a, ok(g, snapshot(0, 100)));
    assert_eq!(a.refresh.in_flight, None);
    assert_eq!(a.conn, ConnState::Connected);
    // Due again after the interval, not before.
    assert!(update(&mut a, Event::Tick(t0 + Duration::from_secs(11))).is_empty());
    let g2 = refresh_gen(&update(&mut a, Event::Tick(t0 + Duration::from_secs(12))));
    assert_eq!(g2, g + 1);
}

#[test]
fn results_of_an_older_generation_are_dropped() {
    let t0 = Instant::now();
    let mut a = app(t0);
    let g = refresh_gen(&update(&mut a, Event::Tick(t0)));
    update(&mut a, ok(g + 7, snapshot(0, 100)));
    assert!(a.dash.current.is_none());
    assert_eq!(a.refresh.in_flight, Some(g));
}

#[test]
fn rates_from_counter_deltas_over_the_server_clock() {
    let t0 = Instant::now();
    let mut a = app(t0);
    let g = refresh_gen(&update(&mut a, Event::Tick(t0)));
    update(&mut a, ok(g, snapshot(0, 1_000)));
    assert_eq!(a.dash.rates.ins_per_s, None, "one snapshot has no rate");
    let g = refresh_gen(&update(&mut a, key('r')));
    // 4 s later on the server's clock, 200 more inserts and 100 more deletes.
    update(&mut a, ok(g, snapshot(4, 1_200)));
    assert_eq!(a.dash.rates.ins_per_s, Some(50.0));
    assert_eq!(a.dash.rates.del_per_s, Some(25.0));
    assert_eq!(a.dash.rates.interval_secs, 4.0);
    assert!(!a.dash.rates.reset);
    assert_eq!(a.dash.history.len(), 2);
    assert_eq!(a.dash.history.back().unwrap().ins_per_s, Some(50.0));
}

#[test]
fn a_counter_reset_gives_no_rate_instead_of_a_negative_one() {
    let t0 = Instant::now();
    let mut a = app(t0);
    let g = refresh_gen(&update(&mut a, Event::Tick(t0)));
    update(&mut a, ok(g, snapshot(0, 5_000)));
    let g = refresh_gen(&update(&mut a, key('r')));
    update(&mut a, ok(g, snapshot(2, 40)));
    assert!(a.dash.rates.reset);
    assert_eq!(a.dash.rates.ins_per_s, None);
    let g = refresh_gen(&update(&mut a, key('r')));
    update(&mut a, ok(g, snapshot(4, 140)));
    assert_eq!(a.dash.rates.ins_per_s, Some(50.0));
    assert!(!a.dash.rates.reset);
}

#[test]
fn an_error_keeps_the_last_good_data_marked_stale() {
    let t0 = Instant::now();
    let mut a = app(t0);
    let g = refresh_gen(&update(&mut a, Event::Tick(t0)));
    update(&mut a, err(g, false));
    assert!(!a.dash.stale(), "nothing to be stale yet");
    assert_eq!(a.dash.error.as_deref(), Some("connection refused"));
    let g = refresh_gen(&update(&mut a, key('r')));
    update(&mut a, ok(g, snapshot(0, 10)));
    assert!(!a.dash.stale() && a.dash.error.is_none());
    let g = refresh_gen(&update(&mut a, key('r')));
    update(&mut a, err(g, false));
    assert!(a.dash.stale());
    assert_eq!(a.dash.current.as_ref().unwrap().rows.total, 48_210);
}

#[test]
fn a_lost_connection_reconnects_with_growing_backoff_forever() {
    let t0 = Instant::now();
    let mut a = app(t0);
    let g = refresh_gen(&update(&mut a, Event::Tick(t0)));
    update(&mut a, ok(g, snapshot(0, 10)));
    let mut now = t0 + Duration::from_secs(2);
    let mut expected_wait = Duration::from_millis(500);
    for attempt in 1..=10 {
        let g = refresh_gen(&update(&mut a, Event::Tick(now)));
        update(&mut a, err(g, true));
        match &a.conn {
            ConnState::Disconnected {
                failures, since, ..
            } => {
                assert_eq!(*failures, attempt);
                assert_eq!(
                    *since,
                    t0 + Duration::from_secs(2),
                    "since the first failure"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(a.dash.stale());
        assert_eq!(a.refresh.due - now, expected_wait, "attempt {attempt}");
        assert!(update(
            &mut a,
            Event::Tick(now + expected_wait - Duration::from_millis(1))
        )
        .is_empty());
        now += expected_wait;
        expected_wait = (expected_wait * 2).min(Duration::from_secs(30));
    }
    let g = refresh_gen(&update(&mut a, Event::Tick(now)));
    update(&mut a, ok(g, snapshot(60, 20)));
    assert_eq!(a.conn, ConnState::Connected);
    assert!(!a.dash.stale());
}

#[test]
fn pause_stops_refreshing_and_resume_refreshes_at_once() {
    let t0 = Instant::now();
    let mut a = app(t0);
    let g = refresh_gen(&update(&mut a, Event::Tick(t0)));
    update(&mut a, ok(g, snapshot(0, 10)));
    update(&mut a, key(' '));
    assert!(a.refresh.paused);
    assert!(update(&mut a, Event::Tick(t0 + Duration::from_secs(60))).is_empty());
    let reqs = update(&mut a, key(' '));
    assert!(!a.refresh.paused);
    refresh_gen(&reqs);
    // r still refreshes while paused.
    let mut b = app(t0);
    update(&mut b, key(' '));
    refresh_gen(&update(&mut b, key('r')));
}

#[test]
fn plus_and_minus_change_the_interval_within_bounds() {
    let mut a = app(Instant::now());
    update(&mut a, key('+'));
    assert_eq!(a.refresh.interval, Duration::from_secs(3));
    for _ in 0..10 {
        update(&mut a, key('-'));
    }
    assert_eq!(a.refresh.interval, MIN_INTERVAL);
    for _ in 0..100 {
        update(&mut a, key('+'));
    }
    assert_eq!(a.refresh.interval, MAX_INTERVAL);
}

#[test]
fn esc_closes_what_is_on_top_and_never_quits() {
    let mut a = app(Instant::now());
    update(&mut a, key('?'));
    assert_eq!(a.overlay, Some(Overlay::Help { scroll: 0 }));
    update(&mut a, key('c'));
    assert_eq!(
        a.overlay,
        Some(Overlay::Help { scroll: 0 }),
        "keys under the help do nothing"
    );
    update(&mut a, code(KeyCode::Esc));
    assert_eq!(a.overlay, None);
    update(&mut a, code(KeyCode::Esc));
    update(&mut a, code(KeyCode::Esc));
    assert!(!a.quit);
    update(&mut a, key('q'));
    assert!(a.quit);
}

#[test]
fn tab_and_number_keys_switch_screens() {
    let mut a = app(Instant::now());
    update(&mut a, code(KeyCode::Tab));
    assert_eq!(a.screen, Screen::Records);
    update(&mut a, code(KeyCode::BackTab));
    update(&mut a, code(KeyCode::BackTab));
    assert_eq!(a.screen, Screen::Activity);
    update(&mut a, key('4'));
    assert_eq!(a.screen, Screen::Health);
    update(&mut a, key('1'));
    assert_eq!(a.screen, Screen::Dashboard);
}

#[test]
fn cleanup_is_confirmed_first_naming_the_expired_count() {
    let t0 = Instant::now();
    let mut a = app(t0);
    let g = refresh_gen(&update(&mut a, Event::Tick(t0)));
    update(&mut a, ok(g, snapshot(0, 10)));
    assert!(update(&mut a, key('c')).is_empty());
    match &a.overlay {
        Some(Overlay::Confirm(crate::app::ConfirmDialog { what, question, .. })) => {
            assert_eq!(*what, Maintenance::Cleanup);
            assert!(question.contains("22,000 expired rows"), "{question}");
        }
        other => panic!("{other:?}"),
    }
    update(&mut a, key('n'));
    assert_eq!(a.overlay, None);
    assert!(a.running.is_none());
    update(&mut a, key('c'));
    assert!(
        update(&mut a, code(KeyCode::Enter)).is_empty(),
        "Enter does not confirm"
    );
    assert!(matches!(a.overlay, Some(Overlay::Confirm(_))));
    assert!(a.running.is_none());
    assert_eq!(
        update(&mut a, key('y')),
        vec![Request::Run(Maintenance::Cleanup)]
    );
    assert!(a.running.is_some());
    // One maintenance action at a time.
    update(&mut a, key('v'));
    assert_eq!(a.overlay, None);
    assert!(a
        .flash_text()
        .unwrap()
        .contains("one maintenance action at a time"));
    // Esc stops the cleanup (between batches), once.
    assert_eq!(
        update(&mut a, code(KeyCode::Esc)),
        vec![Request::StopCleanup]
    );
    assert!(update(&mut a, code(KeyCode::Esc)).is_empty());
    // Done: logged, and a refresh shows the effect.
    let reqs = update(
        &mut a,
        Event::Db(DbEvent::Done {
            what: Maintenance::Cleanup,
            elapsed: Duration::from_millis(1500),
            result: Ok(Finished {
                rows: Some(900),
                detail: "deleted 900 rows in 3 batches (cancelled)".into(),
            }),
        }),
    );
    refresh_gen(&reqs);
    assert!(a.running.is_none());
    assert_eq!(a.log.len(), 1);
    assert_eq!(a.log[0].rows, Some(900));
    assert!(a.log[0].ok);
}

#[test]
fn a_failed_action_is_logged_with_its_error() {
    let mut a = app(Instant::now());
    update(&mut a, key('a'));
    assert_eq!(
        update(&mut a, key('y')),
        vec![Request::Run(Maintenance::Analyze)]
    );
    update(
        &mut a,
        Event::Db(DbEvent::Done {
            what: Maintenance::Analyze,
            elapsed: Duration::from_millis(5),
            result: Err(DbError {
                message: "permission denied: only the table owner can ANALYZE".into(),
                connection_lost: false,
            }),
        }),
    );
    assert!(!a.log[0].ok);
    assert!(a
        .flash_text()
        .unwrap()
        .starts_with("ANALYZE failed: permission denied"));
}

#[test]
fn read_only_mode_disables_every_write_key() {
    let mut a = app(Instant::now());
    a.session.read_only = true;
    for c in ['c', 'a', 'v'] {
        assert!(update(&mut a, key(c)).is_empty());
        assert_eq!(a.overlay, None);
        assert!(a.flash_text().unwrap().starts_with("read-only mode"));
    }
}

#[test]
fn arrow_and_vi_keys_move_through_the_partitions() {
    let mut a = app(Instant::now());
    update(&mut a, key('3'));
    assert_eq!(a.screen, Screen::Partitions);
    let part = |name: &str| crate::db::partitions::PartitionInfo {
        name: name.into(),
        lower: None,
        upper: None,
        is_default: false,
        rows: 0,
        rows_exact: true,
        size_bytes: 0,
        fully_expired: false,
        straddles_now: false,
        detach_pending: false,
        blocked_by: None,
        ..Default::default()
    };
    update(
        &mut a,
        Event::Db(DbEvent::Partitions(Ok(vec![
            part("p1"),
            part("p2"),
            part("p3"),
        ]))),
    );
    assert_eq!(a.partitions.selected, 0);
    update(&mut a, code(KeyCode::Down));
    update(&mut a, key('j'));
    update(&mut a, key('j'));
    assert_eq!(a.partitions.selected, 2, "stops at the last partition");
    update(&mut a, code(KeyCode::Up));
    assert_eq!(a.partitions.selected, 1);
    update(&mut a, key('k'));
    update(&mut a, key('k'));
    assert_eq!(a.partitions.selected, 0, "stops at the first");
}

#[test]
fn the_partitions_screen_asks_for_data_only_on_a_partitioned_table() {
    let t0 = Instant::now();
    let mut a = app(t0);
    let g = refresh_gen(&update(&mut a, Event::Tick(t0)));
    update(&mut a, ok(g, snapshot(0, 10)));
    assert!(
        update(&mut a, key('3')).is_empty(),
        "nothing to list on a plain table"
    );
    update(&mut a, key('1'));
    let t1 = t0 + Duration::from_secs(3);
    let g = refresh_gen(&update(&mut a, Event::Tick(t1)));
    let mut partitioned = snapshot(0, 10);
    partitioned.partitioned = true;
    update(&mut a, ok(g, partitioned));
    assert_eq!(
        refresh_gen(&update(&mut a, key('3'))),
        g + 1,
        "a partitioned table's list is fetched at once"
    );
}

#[test]
fn delete_needs_the_record_as_shown_never_just_a_key() {
    let mut a = app(Instant::now());
    // `/` look-up: the detail is open but its record has not arrived yet.
    update(&mut a, key('/'));
    for c in "550e8400-e29b-41d4-a716-446655440000".chars() {
        update(&mut a, key(c));
    }
    let id = uuid::Uuid::from_u128(0x550e8400_e29b_41d4_a716_446655440000);
    assert_eq!(
        update(&mut a, code(KeyCode::Enter)),
        vec![Request::LoadRecord(id)]
    );
    assert!(update(&mut a, key('d')).is_empty());
    assert_eq!(a.overlay, None, "nothing shown, nothing to confirm");
    assert!(a.flash_text().unwrap().contains("nothing to delete"));
    // `r` reads the record again, keeping the detail open.
    let reqs = update(&mut a, key('r'));
    assert!(reqs.contains(&Request::LoadRecord(id)), "{reqs:?}");
    assert!(a.records.detail.as_ref().is_some_and(|d| d.loading));
}

mod health;

#[test]
fn e_asks_for_an_exact_pass_now_once_even_while_a_refresh_is_in_flight() {
    let t0 = Instant::now();
    let mut a = app(t0);
    let g = refresh_gen(&update(&mut a, Event::Tick(t0)));
    // In flight: nothing is sent now, the request waits for the next refresh.
    assert!(update(&mut a, key('E')).is_empty());
    assert_eq!(
        a.flash_text(),
        Some("counting exactly with the next refresh")
    );
    update(&mut a, ok(g, snapshot(0, 100)));
    let reqs = update(&mut a, Event::Tick(t0 + Duration::from_secs(2)));
    match reqs.as_slice() {
        [Request::Refresh {
            exact_pass, also, ..
        }] => assert!(*exact_pass && also.exact_now, "{reqs:?}"),
        other => panic!("expected one refresh, got {other:?}"),
    }
    let g2 = refresh_gen(&reqs);
    update(&mut a, ok(g2, snapshot(0, 100)));
    // Once: the next refresh is an ordinary one.
    let reqs = update(&mut a, Event::Tick(t0 + Duration::from_secs(4)));
    match reqs.as_slice() {
        [Request::Refresh { also, .. }] => assert!(!also.exact_now, "{reqs:?}"),
        other => panic!("expected one refresh, got {other:?}"),
    }
}
