//! Unit tests of the connection, lock and health states, the help and the input prompt.

use super::*;

fn lock(waiting: i64) -> crate::db::locks::TableLock {
    crate::db::locks::TableLock {
        relation: "public.idempotency_records".into(),
        mode: "AccessExclusiveLock".into(),
        granted: true,
        pid: 4242,
        user: Some("alice".into()),
        application: Some("psql".into()),
        client: Some("10.0.0.7".into()),
        state: Some("idle in transaction".into()),
        xact_secs: Some(180.0),
        query: Some("LOCK TABLE idempotency_records IN ACCESS EXCLUSIVE MODE;".into()),
        waiting,
        seen_at: crate::fixtures::at(0),
    }
}

fn check(id: &'static str, level: crate::checks::Level) -> crate::checks::CheckResult {
    crate::checks::CheckResult {
        id,
        name: id.into(),
        level,
        value: String::new(),
        detail: String::new(),
        advice: String::new(),
        pending: false,
        not_applicable: false,
    }
}

/// Loaded at `t0`, with the checks all ok.
fn healthy(t0: Instant) -> App {
    let mut a = app(t0);
    let g = refresh_gen(&update(&mut a, Event::Tick(t0)));
    update(&mut a, ok(g, snapshot(0, 10)));
    update(
        &mut a,
        Event::Db(DbEvent::Checks(Ok(vec![
            check("cleanup_lag", crate::checks::Level::Ok),
            check("bloat", crate::checks::Level::Ok),
        ]))),
    );
    assert_eq!(a.health_summary(), HealthSummary::Ok);
    a
}

#[test]
fn the_first_lost_connection_says_disconnected_at_once_and_the_countdown_ticks() {
    let t0 = Instant::now();
    let mut a = healthy(t0);
    let t1 = t0 + Duration::from_secs(2);
    let g = refresh_gen(&update(&mut a, Event::Tick(t1)));
    update(&mut a, err(g, true));
    assert!(
        matches!(&a.conn, ConnState::Disconnected { failures: 1, error, since }
            if error == "connection refused" && *since == t1),
        "{:?}",
        a.conn
    );
    assert!(a.data_stale(), "the last figures stay, stale");
    assert_eq!(a.dash.current.as_ref().unwrap().rows.total, 48_210);
    // Backoff 0.5 s: "retrying in 1 s" (rounded up), then due: a retry, in flight.
    assert_eq!(a.next_refresh_in(), Some(Duration::from_secs(1)));
    let g = refresh_gen(&update(
        &mut a,
        Event::Tick(t1 + Duration::from_millis(500)),
    ));
    assert_eq!(a.next_refresh_in(), None, "retrying now");
    update(&mut a, err(g, true));
    update(&mut a, Event::Tick(t1 + Duration::from_millis(600)));
    // Second failure: 1 s backoff, counted down from the state's clock.
    assert!(matches!(
        a.conn,
        ConnState::Disconnected { failures: 2, .. }
    ));
    assert_eq!(a.next_refresh_in(), Some(Duration::from_secs(1)));
    assert_eq!(a.data_age(), Some(Duration::from_millis(2_600)));
    // Never "ok" from stale data: unknown, remembering what the checks last said.
    assert_eq!(
        a.health_summary(),
        HealthSummary::Unknown {
            why: UnknownWhy::Stale,
            last: Some((0, 0))
        }
    );
}

#[test]
fn a_failed_refresh_that_is_not_a_lost_connection_is_stale_not_disconnected() {
    let t0 = Instant::now();
    let mut a = healthy(t0);
    let g = refresh_gen(&update(&mut a, key('r')));
    update(&mut a, err(g, false));
    assert_eq!(a.conn, ConnState::Connected);
    assert!(a.data_stale());
    assert_eq!(a.dash.error.as_deref(), Some("connection refused"));
    assert!(matches!(
        a.health_summary(),
        HealthSummary::Unknown {
            why: UnknownWhy::Stale,
            ..
        }
    ));
}

#[test]
fn messages_expire() {
    let t0 = Instant::now();
    let mut a = app(t0);
    a.say("VACUUM (ANALYZE) done: 12 ms");
    update(
        &mut a,
        Event::Tick(t0 + FLASH_TTL - Duration::from_millis(1)),
    );
    assert_eq!(a.flash_text(), Some("VACUUM (ANALYZE) done: 12 ms"));
    update(&mut a, Event::Tick(t0 + FLASH_TTL));
    assert_eq!(a.flash_text(), None, "an old message does not stay");
    // A new message lasts its own ten seconds.
    a.say("cancelled");
    assert_eq!(a.flash.as_ref().unwrap().at, t0 + FLASH_TTL);
}

#[test]
fn a_locked_table_keeps_the_last_figures_stale_and_health_is_unknown() {
    let t0 = Instant::now();
    let mut a = healthy(t0);
    let t1 = t0 + Duration::from_secs(2);
    let g = refresh_gen(&update(&mut a, Event::Tick(t1)));
    update(
        &mut a,
        Event::Db(DbEvent::Locked {
            generation: g,
            lock: Box::new(lock(5)),
        }),
    );
    assert_eq!(a.conn, ConnState::Connected, "the server answered");
    assert_eq!(a.dash.lock.as_ref().map(|l| l.pid), Some(4242));
    assert_eq!(a.dash.error, None, "a lock is not an error message");
    assert!(a.data_stale() && a.dash.stale());
    assert_eq!(a.dash.current.as_ref().unwrap().rows.total, 48_210);
    assert_eq!(a.dash.lock_since, Some(t1));
    // Checks that say ok while locked (they measured nothing) do not make the header say ok.
    update(
        &mut a,
        Event::Db(DbEvent::Checks(Ok(vec![check(
            "cleanup_lag",
            crate::checks::Level::Ok,
        )]))),
    );
    assert!(
        matches!(a.health_summary(), HealthSummary::Unknown { .. }),
        "{:?}",
        a.health_summary()
    );
    // Still locked at the next refresh: the run of locked refreshes started at t1.
    let t2 = t1 + Duration::from_secs(2);
    let g = refresh_gen(&update(&mut a, Event::Tick(t2)));
    update(
        &mut a,
        Event::Db(DbEvent::Locked {
            generation: g,
            lock: Box::new(lock(6)),
        }),
    );
    assert_eq!(a.dash.lock_since, Some(t1));
    assert_eq!(a.dash.lock_at, Some(t2));
    assert_eq!(a.data_age(), Some(Duration::from_secs(4)));
    // The lock goes away: figures again, the lock forgotten, health from the checks.
    let g = refresh_gen(&update(&mut a, Event::Tick(t2 + Duration::from_secs(2))));
    update(&mut a, ok(g, snapshot(6, 20)));
    assert!(a.dash.lock.is_none() && a.dash.lock_since.is_none() && !a.data_stale());
    assert_eq!(a.health_summary(), HealthSummary::Ok);
}

#[test]
fn health_is_never_ok_from_missing_data() {
    use crate::checks::Level;
    let t0 = Instant::now();
    let mut a = app(t0);
    assert_eq!(
        a.health_summary(),
        HealthSummary::Unknown {
            why: UnknownWhy::NotYet,
            last: None
        }
    );
    update(
        &mut a,
        Event::Db(DbEvent::Checks(Ok(vec![check("bloat", Level::Ok)]))),
    );
    assert!(
        matches!(a.health_summary(), HealthSummary::Unknown { .. }),
        "checks but no snapshot yet"
    );
    let mut a = healthy(t0);
    update(
        &mut a,
        Event::Db(DbEvent::Checks(Ok(vec![
            check("bloat", Level::Ok),
            check("replay_rate", Level::Unknown),
        ]))),
    );
    assert_eq!(a.health_summary(), HealthSummary::SomeUnknown(1));
    update(
        &mut a,
        Event::Db(DbEvent::Checks(Ok(vec![
            check("bloat", Level::Warning),
            check("cleanup_lag", Level::Critical),
            check("indexes", Level::Critical),
        ]))),
    );
    assert_eq!(a.health_summary(), HealthSummary::Critical(2));
    update(
        &mut a,
        Event::Db(DbEvent::Checks(Err(DbError {
            message: "permission denied".into(),
            connection_lost: false,
        }))),
    );
    assert_eq!(
        a.health_summary(),
        HealthSummary::Unknown {
            why: UnknownWhy::Failed,
            last: Some((2, 1))
        }
    );
}

/// Lines of the help for the dashboard, in one column.
fn help_len(a: &App) -> usize {
    keys::help_for(&a.screen_contexts())
        .iter()
        .map(Vec::len)
        .sum()
}

#[test]
fn the_help_scrolls_to_every_line_and_no_further() {
    let mut a = app(Instant::now());
    update(
        &mut a,
        Event::Resize {
            width: 80,
            height: 24,
        },
    );
    update(&mut a, key('?'));
    let max = help_len(&a) - 21;
    assert!(max > 0, "the help is longer than 80x24");
    let scroll = |a: &App| match a.overlay {
        Some(Overlay::Help { scroll }) => scroll,
        ref other => panic!("{other:?}"),
    };
    update(&mut a, key('k'));
    assert_eq!(scroll(&a), 0, "not above the top");
    update(&mut a, key('j'));
    update(&mut a, code(KeyCode::Down));
    assert_eq!(scroll(&a), 2);
    update(&mut a, key('G'));
    assert_eq!(scroll(&a), max, "G: the last line at the bottom");
    update(&mut a, key('j'));
    assert_eq!(scroll(&a), max, "not past the end");
    update(&mut a, key('k'));
    assert_eq!(scroll(&a), max - 1, "one line back from the end, at once");
    update(&mut a, code(KeyCode::PageUp));
    assert_eq!(scroll(&a), (max - 1).saturating_sub(20));
    update(&mut a, key('g'));
    assert_eq!(scroll(&a), 0);
    update(&mut a, code(KeyCode::PageDown));
    assert_eq!(scroll(&a), 20.min(max));
    // Keys behind the help do nothing; q still quits, Esc closes.
    assert!(update(&mut a, key('c')).is_empty());
    assert!(matches!(a.overlay, Some(Overlay::Help { .. })));
    update(&mut a, code(KeyCode::Esc));
    assert_eq!(a.overlay, None);
    // A taller terminal needs less scrolling: the scroll is clamped on resize.
    update(&mut a, key('?'));
    update(&mut a, key('G'));
    update(
        &mut a,
        Event::Resize {
            width: 100,
            height: 200,
        },
    );
    assert_eq!(scroll(&a), 0);
}

#[test]
fn y_copies_the_whole_key_and_says_it() {
    use crate::db::records::{Page, RecordSummary};
    use crate::db::ts::Ts;
    let t0 = Instant::now();
    let mut a = app(t0);
    let reqs = update(&mut a, key('2'));
    let Some(Request::LoadPage(req)) = reqs.first().cloned() else {
        panic!("{reqs:?}")
    };
    let id = uuid::Uuid::from_u128(0x550e8400_e29b_41d4_a716_446655440007);
    let row = RecordSummary {
        request_id: id,
        operation: "payment".into(),
        status_code: Some(201),
        created_at: Ts::At(crate::fixtures::at(-30)),
        expires_at: Ts::At(crate::fixtures::at(3_600)),
        payload_bytes: 12,
        xmin: 7,
    };
    update(
        &mut a,
        Event::Db(DbEvent::Page {
            generation: req.generation,
            result: Ok((
                Page {
                    rows: vec![row],
                    next: None,
                    server_now: crate::fixtures::at(0),
                },
                true,
            )),
        }),
    );
    assert!(update(&mut a, key('Y')).is_empty(), "no database work");
    assert_eq!(a.clipboard.as_deref(), Some(id.to_string().as_str()));
    assert!(
        a.flash_text().unwrap().contains(&id.to_string()),
        "shown whole"
    );
    // The page's ages tick with the state's clock.
    assert_eq!(a.server_now(), Some(crate::fixtures::at(0)));
    update(&mut a, Event::Tick(t0 + Duration::from_secs(5)));
    assert_eq!(
        a.server_now(),
        Some(crate::fixtures::at(0) + chrono::Duration::seconds(5))
    );
    // r reloads the page on screen, in place (same page, same selection).
    let reqs = update(&mut a, key('r'));
    assert!(
        reqs.iter()
            .any(|r| matches!(r, Request::LoadPage(p) if p.after.is_none())),
        "{reqs:?}"
    );
    assert!(a.records.page.is_some(), "the page stays while it reloads");
}

#[test]
fn a_pasted_kilobyte_is_cut_at_the_limit_and_says_so() {
    let mut a = app(Instant::now());
    update(&mut a, key('/'));
    update(&mut a, Event::Paste("x".repeat(4_096)));
    let input = a.input.as_ref().unwrap();
    assert_eq!(input.text.chars().count(), MAX_INPUT_CHARS);
    assert!(
        input
            .error
            .as_deref()
            .unwrap()
            .contains("at most 256 characters"),
        "{:?}",
        input.error
    );
    // Typed one key at a time, the same limit.
    update(&mut a, code(KeyCode::Backspace));
    update(&mut a, key('y'));
    update(&mut a, key('z'));
    let input = a.input.as_ref().unwrap();
    assert_eq!(input.text.chars().count(), MAX_INPUT_CHARS);
    assert!(input.text.ends_with('y'));
    assert!(input.error.is_some());
    // Line breaks and controls in a paste are not typed; Ctrl-U clears, q is typed.
    update(
        &mut a,
        Event::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)),
    );
    update(
        &mut a,
        Event::Paste("550e8400-e29b-41d4-a716-446655440000\n".into()),
    );
    update(&mut a, key('q'));
    assert!(!a.quit);
    let input = a.input.as_ref().unwrap();
    assert_eq!(input.text, "550e8400-e29b-41d4-a716-446655440000q");
    assert_eq!(input.error, None);
    update(&mut a, code(KeyCode::Backspace));
    assert_eq!(
        update(&mut a, code(KeyCode::Enter)),
        vec![Request::LoadRecord(uuid::Uuid::from_u128(
            0x550e8400_e29b_41d4_a716_446655440000
        ))]
    );
}
