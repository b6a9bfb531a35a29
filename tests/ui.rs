//! Render snapshots of the dashboard's states at fixed sizes (ratatui's TestBackend), driven
//! through the same pure `update` the real loop uses.

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use idemtop::app::{update, App, DbError, DbEvent, Event, Progress, Request, SessionInfo};
use idemtop::fixtures::snapshot;
use idemtop::ui::{self, Theme};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn app() -> (App, Instant) {
    let t0 = Instant::now();
    let a = App::new(
        SessionInfo {
            target: "app@db.internal:5432/app".into(),
            table: "public.idempotency_records".into(),
            read_only: false,
        },
        Duration::from_secs(2),
        t0,
    );
    (a, t0)
}

fn render(a: &App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| ui::draw(f, a, &Theme::new(false))).unwrap();
    term.backend().to_string()
}

fn key(c: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

/// Start, and feed `n` snapshots 2 s apart.
fn loaded(n: i64) -> App {
    let (mut a, t0) = app();
    for i in 0..n {
        let reqs = update(&mut a, Event::Tick(t0 + Duration::from_secs(2 * i as u64)));
        let Some(Request::Refresh { generation, .. }) = reqs.first().cloned() else {
            panic!("expected a refresh: {reqs:?}")
        };
        update(
            &mut a,
            Event::Db(DbEvent::Snapshot {
                generation,
                result: Ok(Box::new(snapshot(2 * i, 1_000 + 37 * i * i))),
            }),
        );
    }
    a
}

#[test]
fn loading() {
    let (mut a, t0) = app();
    update(&mut a, Event::Tick(t0));
    let screen = render(&a, 100, 30);
    assert!(screen.contains("Loading the first snapshot"));
    insta::assert_snapshot!(screen);
}

#[test]
fn loaded_wide() {
    let a = loaded(12);
    let screen = render(&a, 120, 36);
    assert!(screen.contains("48,210"), "total rows shown");
    assert!(screen.contains("idx_idempotency_operation"));
    // Never scanned, but too few inserts to judge: the same verdict as the Indexes check.
    assert!(
        screen.contains("not yet"),
        "never scanned index, no verdict yet"
    );
    insta::assert_snapshot!(screen);
    let mut judged = loaded(12);
    judged.unused_index_after_inserts = 1_000;
    assert!(
        render(&judged, 120, 36).contains("unused"),
        "never scanned over enough inserts: unused"
    );
}

#[test]
fn loaded_80x24() {
    let a = loaded(3);
    let screen = render(&a, 80, 24);
    for needle in [
        "live 26,210",
        "expired 22,000",
        "cleanup lag 1h 30m",
        "create_transaction",
        "idx_idempotency_expires",
    ] {
        assert!(
            screen.contains(needle),
            "{needle} missing at 80x24:\n{screen}"
        );
    }
    insta::assert_snapshot!(screen);
}

/// `r`, and the refresh fails with `message`.
fn fail_refresh(a: &mut App, message: &str, connection_lost: bool) {
    let reqs = update(a, key('r'));
    let Some(Request::Refresh { generation, .. }) = reqs.first().cloned() else {
        panic!("r refreshes: {reqs:?}")
    };
    update(
        a,
        Event::Db(DbEvent::Snapshot {
            generation,
            result: Err(DbError {
                message: message.into(),
                connection_lost,
            }),
        }),
    );
}

#[test]
fn stale_after_an_error() {
    let mut a = loaded(2);
    fail_refresh(
        &mut a,
        "canceling statement due to statement timeout",
        false,
    );
    let screen = render(&a, 100, 30);
    assert!(
        screen.contains(
            "connected, last refresh failed: canceling statement due to statement timeout"
        ),
        "{screen}"
    );
    assert!(screen.contains("48,210"), "last good data stays");
    assert!(screen.contains("(stale, 0 s old)"), "{screen}");
    assert!(screen.contains("STALE, 0 s old: measured at 12:00:02 UTC"));
    assert!(!screen.contains("health ok"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn reconnecting() {
    let mut a = loaded(2);
    fail_refresh(
        &mut a,
        "cannot connect to app@db.internal:5432/app: connection refused",
        true,
    );
    let screen = render(&a, 100, 30);
    assert!(
        screen.contains(
            "disconnected — retrying in 1 s (attempt 1): cannot connect to app@db.internal:5432/app"
        ),
        "{screen}"
    );
    assert!(
        screen.contains("refused"),
        "the error wraps, whole: {screen}"
    );
    assert!(!screen.contains("● connected"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn help_overlay_lists_the_key_table() {
    let mut a = loaded(1);
    update(&mut a, key('?'));
    let screen = render(&a, 100, 40);
    assert!(!screen.contains("y/Enter"), "Enter does not confirm");
    for needle in [
        "show or hide this help",
        "cleanup: delete expired rows",
        "select next operation",
        "n/Esc",
    ] {
        assert!(screen.contains(needle), "{needle}");
    }
    insta::assert_snapshot!(screen);
}

#[test]
fn confirm_dialog_and_cleanup_progress() {
    let mut a = loaded(2);
    update(&mut a, key('c'));
    let screen = render(&a, 100, 30);
    assert!(screen.contains("Delete 22,000 expired rows from public.idempotency_records"));
    assert!(screen.contains("y confirm"), "{screen}");
    assert!(screen.contains("y confirm (Enter does not)"), "{screen}");
    insta::assert_snapshot!("confirm_cleanup", screen);
    // Enter, pressed out of habit, changes nothing: the dialog stays.
    let reqs = update(
        &mut a,
        Event::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
    );
    assert!(reqs.is_empty(), "{reqs:?}");
    assert!(a.running.is_none());
    assert_eq!(render(&a, 100, 30), screen);
    update(&mut a, key('y'));
    update(
        &mut a,
        Event::Db(DbEvent::Progress(Progress {
            deleted: 12_000,
            remaining: Some(10_000),
            batches: 6,
            rows_per_sec: 8_500.0,
            elapsed: Duration::from_millis(1_400),
            batch_size: 4_000,
            pages: None,
        })),
    );
    let screen = render(&a, 100, 30);
    assert!(screen.contains("cleanup 54.5%"));
    assert!(screen.contains("deleted 12,000 · left ~10,000"));
    insta::assert_snapshot!("cleanup_progress", screen);

    // A sweep shows how far through the heap it is.
    update(
        &mut a,
        Event::Db(DbEvent::Progress(Progress {
            deleted: 30_000,
            remaining: Some(20_000),
            batches: 400,
            rows_per_sec: 900_000.0,
            elapsed: Duration::from_millis(2_000),
            batch_size: 90,
            pages: Some((3_000, 4_000)),
        })),
    );
    let screen = render(&a, 100, 30);
    assert!(screen.contains("cleanup 75.0%"), "{screen}");
    assert!(
        screen.contains("heap sweep, page 3,000 of 4,000"),
        "{screen}"
    );
}

#[test]
fn no_color_means_no_colour() {
    let a = loaded(2);
    let mut term = Terminal::new(TestBackend::new(100, 30)).unwrap();
    term.draw(|f| ui::draw(f, &a, &Theme::new(false))).unwrap();
    let buf = term.backend().buffer().clone();
    assert!(buf
        .content()
        .iter()
        .all(|c| c.fg == ratatui::style::Color::Reset && c.bg == ratatui::style::Color::Reset));
    term.draw(|f| ui::draw(f, &a, &Theme::new(true))).unwrap();
    assert!(term
        .backend()
        .buffer()
        .content()
        .iter()
        .any(|c| c.fg != ratatui::style::Color::Reset));
}

#[test]
fn hostile_operation_names_never_reach_the_terminal_raw() {
    let (mut a, t0) = app();
    let mut snap = snapshot(0, 10);
    snap.operations[0].operation = "evil\u{1b}]0;pwned\u{7}\u{1b}[2J".into();
    let reqs = update(&mut a, Event::Tick(t0));
    let Some(Request::Refresh { generation, .. }) = reqs.first().cloned() else {
        panic!()
    };
    update(
        &mut a,
        Event::Db(DbEvent::Snapshot {
            generation,
            result: Ok(Box::new(snap)),
        }),
    );
    let screen = render(&a, 120, 36);
    assert!(!screen.contains('\u{1b}') && !screen.contains('\u{7}'));
    assert!(screen.contains("evil␛]0;pwned␇␛[2J"));
}

mod records_view {
    use super::*;
    use idemtop::app::action::Maintenance;
    use idemtop::db::records::{Page, Record, RecordSummary};
    use idemtop::db::ts::Ts;
    use idemtop::fixtures::at;
    use uuid::Uuid;

    fn summary(
        i: u128,
        op: &str,
        status: Option<i32>,
        age_secs: i64,
        ttl_secs: i64,
        bytes: i64,
    ) -> RecordSummary {
        RecordSummary {
            request_id: Uuid::from_u128(0x550e8400_e29b_41d4_a716_446655440000 + i),
            operation: op.into(),
            status_code: status,
            created_at: Ts::At(at(-age_secs)),
            expires_at: Ts::At(at(-age_secs + ttl_secs)),
            payload_bytes: bytes,
            xmin: 1_000 + i as i64,
        }
    }

    /// The records screen with one page loaded (default sort, which walks an index).
    fn with_page(rows: Vec<RecordSummary>) -> App {
        let (mut a, _) = app();
        let reqs = update(&mut a, key('2'));
        let Some(Request::LoadPage(req)) = reqs.first().cloned() else {
            panic!("entering the view loads a page: {reqs:?}")
        };
        assert!(req.after.is_none(), "first page has no cursor");
        update(
            &mut a,
            Event::Db(DbEvent::Page {
                generation: req.generation,
                result: Ok((
                    Page {
                        rows,
                        next: None,
                        server_now: at(0),
                    },
                    true,
                )),
            }),
        );
        a
    }

    fn with_detail(payload: &str, truncated: i64) -> App {
        let rows = vec![summary(
            0,
            "create_transaction",
            Some(201),
            120,
            86_400,
            payload.len() as i64 + truncated,
        )];
        let mut a = with_page(rows.clone());
        let reqs = update(
            &mut a,
            Event::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
        );
        let Some(Request::LoadRecord(id)) = reqs.first().cloned() else {
            panic!("Enter loads the record: {reqs:?}")
        };
        update(
            &mut a,
            Event::Db(DbEvent::Record {
                id,
                result: Ok(Some(Record {
                    summary: rows[0].clone(),
                    payload: payload.into(),
                    payload_truncated_bytes: truncated,
                })),
            }),
        );
        a
    }

    #[test]
    fn list() {
        let a = with_page(vec![
            summary(1, "create_transaction", Some(201), 30, 86_400, 231),
            summary(2, "payment", Some(500), 4_000, 3_600, 312),
            summary(3, "get_balance", Some(404), 90_000, 86_400, 48),
            summary(4, "refund", None, 600, 86_400, 8_192),
        ]);
        let screen = render(&a, 110, 14);
        assert!(screen.contains("550e8400-e29b-41d4-a716-446655440001"));
        assert!(
            screen.contains("Records · expiring latest (≈ newest) · page 1"),
            "{screen}"
        );
        assert!(!screen.contains("sort column has no index"));
        assert!(
            screen.contains("6m 40s ago"),
            "expired 400 s ago:\n{screen}"
        );
        insta::assert_snapshot!(screen);
    }

    /// A row with `±infinity` timestamps, an extreme status code, or both.
    fn special(i: u128, status: Option<i32>, created: Ts, expires: Ts) -> RecordSummary {
        RecordSummary {
            created_at: created,
            expires_at: expires,
            status_code: status,
            ..summary(i, "subscription", status, 0, 1, 64)
        }
    }

    #[test]
    fn list_with_infinite_timestamps_and_extreme_status_codes() {
        let a = with_page(vec![
            special(1, Some(201), Ts::At(at(-30)), Ts::Infinity),
            special(2, Some(i32::MAX), Ts::NegInfinity, Ts::Infinity),
            special(3, Some(i32::MIN), Ts::NegInfinity, Ts::At(at(-400))),
            special(4, None, Ts::At(at(-90)), Ts::At(at(3_510))),
        ]);
        let screen = render(&a, 110, 12);
        let line = |id: u128| {
            let id = Uuid::from_u128(0x550e8400_e29b_41d4_a716_446655440000 + id).to_string();
            screen
                .lines()
                .find(|l| l.contains(&id))
                .unwrap_or_else(|| panic!("{id} listed:\n{screen}"))
                .to_string()
        };
        assert!(line(1).contains("never"), "{screen}");
        assert!(
            line(2).contains("21474…") && line(2).contains("-infinity"),
            "{screen}"
        );
        assert!(line(2).contains("never"), "{screen}");
        assert!(
            line(3).contains("-2147…") && line(3).contains("6m 40s ago"),
            "{screen}"
        );
        assert!(line(4).contains("in 58m 30s"), "{screen}");
        insta::assert_snapshot!(screen);
    }

    /// The detail of `row`, loaded.
    fn detail_of(row: RecordSummary, payload: &str) -> App {
        let mut a = with_page(vec![row.clone()]);
        let reqs = update(
            &mut a,
            Event::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
        );
        assert_eq!(reqs, vec![Request::LoadRecord(row.request_id)]);
        update(
            &mut a,
            Event::Db(DbEvent::Record {
                id: row.request_id,
                result: Ok(Some(Record {
                    summary: row,
                    payload: payload.into(),
                    payload_truncated_bytes: 0,
                })),
            }),
        );
        a
    }

    #[test]
    fn detail_with_null_status_and_infinite_timestamps() {
        let a = detail_of(special(7, None, Ts::NegInfinity, Ts::Infinity), "");
        let screen = render(&a, 100, 20);
        for needle in [
            "status_code    NULL",
            "created_at     -infinity (before any date)",
            "expires_at     infinity (TTL unbounded)",
            "live, never expires (expires_at = infinity)",
        ] {
            assert!(screen.contains(needle), "{needle}:\n{screen}");
        }
        insta::assert_snapshot!(screen);
    }

    #[test]
    fn detail_with_a_status_code_that_is_no_http_status() {
        let a = detail_of(
            special(8, Some(i32::MIN), Ts::NegInfinity, Ts::At(at(-5))),
            "{}",
        );
        let screen = render(&a, 100, 20);
        assert!(
            screen.contains("-2147483648 (not an HTTP status)"),
            "{screen}"
        );
        assert!(screen.contains("EXPIRED 5s ago"), "{screen}");
    }

    /// `d` on the selected row of the list: the dialog, and what `y` then asks for.
    fn delete_dialog(row: RecordSummary) -> (App, String) {
        let mut a = with_page(vec![row.clone()]);
        assert!(update(&mut a, key('d')).is_empty(), "d only asks");
        let screen = render(&a, 100, 30);
        (a, screen)
    }

    #[test]
    fn delete_dialog_of_a_live_key_warns_of_a_second_charge() {
        let row = summary(9, "payment", Some(201), 120, 86_400, 312);
        let (mut a, screen) = delete_dialog(row.clone());
        for needle in [
            "Confirm delete record",
            "key        550e8400-e29b-41d4-a716-446655440009",
            "operation  payment",
            "status     201",
            "(in 23h 58m)",
            "LIVE key: a client retry with it will run the operation again (a second charge).",
            "y confirm",
            "y confirm (Enter does not)",
        ] {
            assert!(screen.contains(needle), "{needle}:\n{screen}");
        }
        insta::assert_snapshot!(screen);
        // Enter does nothing; y asks to delete exactly the row version shown.
        assert!(update(
            &mut a,
            Event::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE))
        )
        .is_empty());
        assert_eq!(
            update(&mut a, key('y')),
            vec![Request::Run(Maintenance::DeleteRecord(row.version()))]
        );
    }

    #[test]
    fn delete_dialog_of_an_expired_key() {
        let (_, screen) = delete_dialog(summary(10, "payment", Some(502), 4_000, 3_600, 40));
        assert!(screen.contains("status     502"), "{screen}");
        assert!(screen.contains("(6m 40s ago)"), "{screen}");
        assert!(
            screen.contains("expired: a client retry already runs the operation again"),
            "{screen}"
        );
        assert!(!screen.contains("LIVE key"), "{screen}");
        insta::assert_snapshot!(screen);
    }

    #[test]
    fn delete_dialog_of_a_key_that_never_expires_and_a_hostile_operation() {
        let mut row = special(11, None, Ts::NegInfinity, Ts::Infinity);
        row.operation = "evil\u{1b}]0;pwned\u{7}".into();
        let (_, screen) = delete_dialog(row);
        assert!(screen.contains("never (infinity)"), "{screen}");
        assert!(screen.contains("status     NULL"), "{screen}");
        assert!(screen.contains("LIVE key"), "{screen}");
        assert!(screen.contains("evil␛]0;pwned␇"), "{screen}");
        assert!(!screen.contains('\u{1b}') && !screen.contains('\u{7}'));
    }

    #[test]
    fn a_changed_record_is_reported_and_r_reloads_the_page() {
        let row = summary(12, "payment", Some(502), 4_000, 3_600, 40);
        let (mut a, _) = delete_dialog(row.clone());
        let reqs = update(&mut a, key('y'));
        assert_eq!(
            reqs,
            vec![Request::Run(Maintenance::DeleteRecord(row.version()))]
        );
        let message = "the record changed since it was shown (key reused by the application?); \
                       nothing deleted; press r to reload";
        update(
            &mut a,
            Event::Db(DbEvent::Done {
                what: Maintenance::DeleteRecord(row.version()),
                elapsed: Duration::from_millis(3),
                result: Err(DbError {
                    message: message.into(),
                    connection_lost: false,
                }),
            }),
        );
        let screen = render(&a, 140, 20);
        assert!(
            screen.contains(&format!("delete record failed: {message}")),
            "{screen}"
        );
        let reqs = update(&mut a, key('r'));
        assert!(
            reqs.iter()
                .any(|r| matches!(r, Request::LoadPage(p) if p.after.is_none())),
            "r reads the page again: {reqs:?}"
        );
    }

    #[test]
    fn a_panicked_request_is_an_error_on_screen() {
        let (mut a, _) = app();
        let reqs = update(&mut a, key('2'));
        let Some(Request::LoadPage(req)) = reqs.first().cloned() else {
            panic!("{reqs:?}")
        };
        update(
            &mut a,
            Event::Db(DbEvent::Page {
                generation: req.generation,
                result: Err(DbError {
                    message: "internal error: reading a page of records panicked: boom \
                              (a bug in idemtop; the dashboard keeps running)"
                        .into(),
                    connection_lost: false,
                }),
            }),
        );
        let screen = render(&a, 120, 12);
        assert!(
            screen.contains("error: internal error: reading a page of records panicked: boom"),
            "{screen}"
        );
        assert!(a.records.loading.is_none() && !a.quit);
    }

    #[test]
    fn an_unindexed_sort_says_so() {
        let mut a = with_page(vec![summary(1, "refund", Some(200), 10, 60, 2)]);
        let reqs = update(&mut a, key('s'));
        let Some(Request::LoadPage(req)) = reqs.first().cloned() else {
            panic!("s reloads: {reqs:?}")
        };
        assert_eq!(req.sort, idemtop::db::records::Sort::Newest);
        update(
            &mut a,
            Event::Db(DbEvent::Page {
                generation: req.generation,
                result: Ok((
                    Page {
                        rows: vec![],
                        next: None,
                        server_now: at(0),
                    },
                    false,
                )),
            }),
        );
        let screen = render(&a, 110, 12);
        assert!(
            screen
                .contains("newest first · page 1 · as of 12:00:00 UTC · sort column has no index"),
            "{screen}"
        );
    }

    #[test]
    fn empty_list() {
        let a = with_page(vec![]);
        let screen = render(&a, 100, 12);
        assert!(screen.contains("No records match."));
        insta::assert_snapshot!(screen);
    }

    #[test]
    fn detail_with_json() {
        let a = with_detail(
            r#"{"transaction_id":"tx_9f2","amount":"100.50","currency":"EUR","items":[1,2]}"#,
            0,
        );
        let screen = render(&a, 100, 30);
        assert!(
            screen.contains("\"transaction_id\": \"tx_9f2\","),
            "pretty-printed, key order kept:\n{screen}"
        );
        assert!(screen.contains("JSON"));
        insta::assert_snapshot!(screen);
    }

    #[test]
    fn detail_with_invalid_json() {
        let a = with_detail("{\"amount\": 100.50, oops\nsecond line\tend", 0);
        let screen = render(&a, 100, 24);
        assert!(screen.contains("(not JSON: shown raw)"));
        assert!(screen.contains("second line    end"));
        insta::assert_snapshot!(screen);
    }

    #[test]
    fn detail_with_truncated_payload() {
        let a = with_detail(&"A".repeat(300), 1_048_276);
        let screen = render(&a, 100, 24);
        assert!(
            screen.contains("truncated: 1023.71 KiB of 1 MiB not shown"),
            "{screen}"
        );
        assert!(screen.contains("… 1023.71 KiB more not shown"));
        insta::assert_snapshot!(screen);
    }

    #[test]
    fn the_last_payload_line_is_reachable_when_lines_wrap() {
        // One line far wider than the pane (it wraps over several rows), then 60 short ones.
        let mut payload = format!("{}\n", "W".repeat(2_000));
        for i in 1..=60 {
            payload.push_str(&format!("line {i:02}\n"));
        }
        let mut a = with_detail(payload.trim_end(), 0);
        for _ in 0..100 {
            update(
                &mut a,
                Event::Key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE)),
            );
        }
        let screen = render(&a, 100, 24);
        assert!(screen.contains("line 60"), "{screen}");
        assert!(screen.contains("line 61/61"), "{screen}");
    }

    #[test]
    fn hostile_payload_and_operation_render_without_escape_bytes() {
        let hostile = "\u{1b}]0;pwned\u{7}\u{1b}[2Jgone";
        let mut a = with_detail(hostile, 0);
        if let Some(d) = a.records.detail.as_mut() {
            if let Some(r) = d.record.as_mut() {
                r.summary.operation = format!("op{hostile}");
            }
        }
        let screen = render(&a, 100, 24);
        assert!(!screen.contains('\u{1b}') && !screen.contains('\u{7}'));
        assert!(screen.contains("␛]0;pwned␇␛[2Jgone"));
    }

    #[test]
    fn lookup_by_key_validates_before_asking_the_server() {
        let (mut a, _) = app();
        update(&mut a, key('/'));
        for c in "nope".chars() {
            update(&mut a, key(c));
        }
        let reqs = update(
            &mut a,
            Event::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
        );
        assert!(reqs.is_empty(), "invalid input never reaches the server");
        let screen = render(&a, 100, 20);
        assert!(screen.contains("not a UUID"), "{screen}");
        update(
            &mut a,
            Event::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)),
        );
        for c in "550e8400-e29b-41d4-a716-446655440000".chars() {
            update(&mut a, key(c));
        }
        let reqs = update(
            &mut a,
            Event::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
        );
        assert_eq!(
            reqs,
            vec![Request::LoadRecord(Uuid::from_u128(
                0x550e8400_e29b_41d4_a716_446655440000
            ))]
        );
        update(
            &mut a,
            Event::Db(DbEvent::Record {
                id: Uuid::from_u128(0x550e8400_e29b_41d4_a716_446655440000),
                result: Ok(None),
            }),
        );
        let screen = render(&a, 100, 20);
        assert!(screen.contains("No record with request_id 550e8400-e29b-41d4-a716-446655440000"));
        // Esc goes back to the list, never quits.
        update(
            &mut a,
            Event::Key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)),
        );
        assert!(a.records.detail.is_none() && !a.quit);
    }
}

#[test]
fn read_only_footer_says_writes_are_disabled() {
    let (mut a, _) = app();
    a.session.read_only = true;
    update(&mut a, key('c'));
    let screen = render(&a, 100, 20);
    assert!(
        screen.contains("read-only mode: cleanup is disabled"),
        "{screen}"
    );
    a.flash = None;
    let screen = render(&a, 100, 20);
    assert!(
        screen.contains("read-only: c a v S U C T d disabled"),
        "{screen}"
    );
    assert!(screen.contains("? help"), "{screen}");
    assert!(
        !screen.contains("c cleanup"),
        "no write key offered: {screen}"
    );
    assert!(screen.contains("READ-ONLY"));
}

#[test]
fn activity_screen_shows_the_pg_cron_job_and_its_runs() {
    use idemtop::db::cron::{CronJob, CronRun, CronStatus};
    use idemtop::fixtures::at;
    let mut a = loaded(1);
    update(&mut a, key('5'));
    update(
        &mut a,
        Event::Db(DbEvent::Cron(Ok(CronStatus::Ready {
            job: Some(CronJob {
                jobid: 3,
                schedule: "0 * * * *".into(),
                command: "SELECT cleanup_expired_idempotency_records()".into(),
                database: "app".into(),
                active: true,
            }),
            runs: vec![
                CronRun {
                    runid: 9,
                    status: "failed".into(),
                    start_time: Some(at(-600)),
                    end_time: Some(at(-599)),
                    return_message: "ERROR: permission denied for table idempotency_records".into(),
                },
                CronRun {
                    runid: 8,
                    status: "succeeded".into(),
                    start_time: Some(at(-4_200)),
                    end_time: Some(at(-4_198)),
                    return_message: "1 row".into(),
                },
            ],
        }))),
    );
    let screen = render(&a, 110, 24);
    for needle in [
        "schedule 0 * * * *",
        "active yes",
        "failed",
        "permission denied",
        "succeeded",
        "2.00 s",
    ] {
        assert!(screen.contains(needle), "{needle}:\n{screen}");
    }
    insta::assert_snapshot!(screen);
    update(
        &mut a,
        Event::Db(DbEvent::Cron(Ok(CronStatus::NotPreloaded))),
    );
    let screen = render(&a, 110, 24);
    assert!(screen.contains("shared_preload_libraries"), "{screen}");
}

#[test]
fn a_failed_health_or_partitions_query_says_so_instead_of_loading_forever() {
    let mut a = loaded(2);
    update(&mut a, key('4'));
    update(
        &mut a,
        Event::Db(DbEvent::Checks(Err(DbError {
            message: "permission denied for table pg_authid\x1b[2J".into(),
            connection_lost: false,
        }))),
    );
    let screen = render(&a, 100, 20);
    assert!(
        screen.contains("the checks failed: permission denied for table pg_authid"),
        "{screen}"
    );
    assert!(!screen.contains("running the checks"), "{screen}");
    assert!(!screen.contains('\x1b'), "sanitized: {screen}");
}

mod issue13 {
    //! Show only what was measured: the header's connection states, a locked table, the help
    //! at 80x24, the live records list, the footer from the key table, bounded input.
    use super::*;
    use idemtop::app::keys;
    use idemtop::app::Overlay;
    use idemtop::checks::{CheckResult, Level};
    use idemtop::db::locks::TableLock;
    use idemtop::db::records::{Page, RecordSummary};
    use idemtop::db::ts::Ts;
    use idemtop::fixtures::at;
    use uuid::Uuid;

    fn check(id: &'static str, level: Level) -> CheckResult {
        CheckResult {
            id,
            name: id.into(),
            level,
            value: "v".into(),
            detail: String::new(),
            advice: String::new(),
            pending: false,
            not_applicable: false,
        }
    }

    /// Send a tick at `a.now + d`; the refresh it starts, if any.
    fn tick(a: &mut App, d: Duration) -> Option<u64> {
        let now = a.now + d;
        update(a, Event::Tick(now))
            .into_iter()
            .find_map(|r| match r {
                Request::Refresh { generation, .. } => Some(generation),
                _ => None,
            })
    }

    fn lost(a: &mut App, generation: u64) {
        update(
            a,
            Event::Db(DbEvent::Snapshot {
                generation,
                result: Err(DbError {
                    message: "cannot connect to app@db.internal:5432/app: connection refused"
                        .into(),
                    connection_lost: true,
                }),
            }),
        );
    }

    /// Loaded with one critical check, then the server stops: three failed attempts.
    fn disconnected() -> App {
        let mut a = loaded(3);
        update(
            &mut a,
            Event::Db(DbEvent::Checks(Ok(vec![
                check("cleanup_lag", Level::Critical),
                check("bloat", Level::Ok),
            ]))),
        );
        let g = tick(&mut a, Duration::from_secs(2)).expect("due");
        lost(&mut a, g); // backoff 0.5 s
        let g = tick(&mut a, Duration::from_millis(500)).expect("retry 1");
        lost(&mut a, g); // 1 s
        let g = tick(&mut a, Duration::from_secs(1)).expect("retry 2");
        lost(&mut a, g); // 2 s
        tick(&mut a, Duration::from_millis(400));
        a
    }

    #[test]
    fn disconnected_header_80x24() {
        let mut a = disconnected();
        let screen = render(&a, 80, 24);
        for needle in [
            "✖ disconnected — retrying in 2 s (attempt 3): cannot connect to",
            "connection refused",
            "data of 12:00:04 UTC (stale, 3 s old)",
            "[4] health unknown (was: 1",
            "STALE, 3 s old: measured at 12:00:04 UTC; nothing newer could be read",
            "live 26,210",
        ] {
            assert!(screen.contains(needle), "{needle}:\n{screen}");
        }
        assert!(!screen.contains("● connected"), "{screen}");
        assert!(!screen.contains("health ok"), "{screen}");
        insta::assert_snapshot!(screen);
        // The countdown and the age tick with the state's clock.
        tick(&mut a, Duration::from_secs(1));
        let screen = render(&a, 80, 24);
        assert!(screen.contains("retrying in 1 s (attempt 3)"), "{screen}");
        assert!(screen.contains("(stale, 4 s old)"), "{screen}");
    }

    #[test]
    fn disconnected_header_120x40() {
        let a = disconnected();
        let screen = render(&a, 120, 40);
        assert!(
            screen.contains(
                "✖ disconnected — retrying in 2 s (attempt 3): cannot connect to \
                 app@db.internal:5432/app: connection refused"
            ),
            "one line when it fits:\n{screen}"
        );
        assert!(screen.contains("(stale, 3 s old)"), "{screen}");
        insta::assert_snapshot!(screen);
    }

    #[test]
    fn disconnected_before_any_data_says_so() {
        let (mut a, t0) = app();
        let reqs = update(&mut a, Event::Tick(t0));
        let Some(Request::Refresh { generation, .. }) = reqs.first().cloned() else {
            panic!("{reqs:?}")
        };
        lost(&mut a, generation);
        let screen = render(&a, 80, 24);
        assert!(
            screen.contains("disconnected — retrying in 1 s (attempt 1)"),
            "{screen}"
        );
        assert!(screen.contains("no data yet"), "{screen}");
        assert!(screen.contains("[4] health unknown"), "{screen}");
        assert!(screen.contains("Could not read the table:"), "{screen}");
    }

    fn lock() -> TableLock {
        TableLock {
            relation: "public.idempotency_records".into(),
            mode: "AccessExclusiveLock".into(),
            granted: true,
            pid: 4242,
            user: Some("alice".into()),
            application: Some("psql".into()),
            client: Some("10.0.0.7".into()),
            state: Some("idle in transaction".into()),
            xact_secs: Some(180.0),
            // As the server cuts it: 200 characters.
            query: Some(
                format!(
                    "ALTER TABLE idempotency_records ADD COLUMN tenant_id\u{200b} bigint NOT NULL \
                 DEFAULT 0, ADD CONSTRAINT tenant_fk FOREIGN KEY (tenant_id) REFERENCES \
                 tenants (id) ON DELETE CASCADE; -- {}",
                    "x".repeat(200)
                )
                .chars()
                .take(200)
                .collect(),
            ),
            waiting: 5,
            seen_at: at(6),
        }
    }

    /// Loaded, the checks all ok, then a refresh finds the table locked; a second later.
    fn locked() -> App {
        let mut a = loaded(3);
        update(
            &mut a,
            Event::Db(DbEvent::Checks(Ok(vec![check("cleanup_lag", Level::Ok)]))),
        );
        let g = tick(&mut a, Duration::from_secs(2)).expect("due");
        update(
            &mut a,
            Event::Db(DbEvent::Locked {
                generation: g,
                lock: Box::new(lock()),
            }),
        );
        tick(&mut a, Duration::from_secs(1));
        a
    }

    #[test]
    fn lock_with_blocker_120x40() {
        let a = locked();
        let screen = render(&a, 120, 40);
        for needle in [
            "LOCKED — AccessExclusiveLock held by pid 4242 (alice, psql, idle in transaction \
             for 3m 01s); 5 sessions wait",
            "Blocker: the table is locked, nothing measured",
            "pid 4242  user alice  application psql  client 10.0.0.7",
            "state idle in transaction  transaction open for 3m 01s",
            "lock AccessExclusiveLock held on public.idempotency_records",
            "waiting 5 sessions  to end it: SELECT pg_terminate_backend(4242)",
            "ADD COLUMN tenant_id<U+200B> bigint",
            "SELECT pg_terminate_backend(4242)",
            "(stale, 3 s old)",
            "[4] health unknown (was: ok)",
            "live 26,210",
        ] {
            assert!(screen.contains(needle), "{needle}:\n{screen}");
        }
        assert!(!screen.contains("health ok"), "{screen}");
        let query_line = screen
            .lines()
            .find(|l| l.contains("query ALTER TABLE"))
            .expect("the query line");
        assert!(query_line.contains('…'), "cut visibly: {query_line}");
        insta::assert_snapshot!(screen);
    }

    #[test]
    fn lock_with_blocker_80x24() {
        let a = locked();
        let screen = render(&a, 80, 24);
        for needle in [
            "LOCKED — AccessExclusiveLock held by pid 4242",
            "5 sessions wait",
            "pid 4242",
            "alice",
            "idle in transaction",
            "3m 01s",
            "waiting 5 sessions",
            "query ALTER TABLE",
            "health unknown",
        ] {
            assert!(screen.contains(needle), "{needle}:\n{screen}");
        }
        assert!(!screen.contains("health ok"), "{screen}");
        for line in screen.lines().filter(|l| l.contains("query ")) {
            assert!(line.contains('…'), "cut visibly: {line}");
        }
        insta::assert_snapshot!(screen);
    }

    #[test]
    fn the_header_names_the_key_that_opens_health() {
        let mut a = loaded(2);
        update(
            &mut a,
            Event::Db(DbEvent::Checks(Ok(vec![
                check("cleanup_lag", Level::Critical),
                check("bloat", Level::Critical),
            ]))),
        );
        let screen = render(&a, 100, 30);
        assert!(screen.contains("[4] health: 2 critical"), "{screen}");
        update(
            &mut a,
            Event::Db(DbEvent::Checks(Ok(vec![check("bloat", Level::Ok)]))),
        );
        assert!(render(&a, 100, 30).contains("[4] health ok"));
    }

    fn help_at_end(w: u16, h: u16) -> (App, String) {
        let mut a = loaded(2);
        update(
            &mut a,
            Event::Resize {
                width: w,
                height: h,
            },
        );
        update(&mut a, key('?'));
        update(&mut a, key('G'));
        let screen = render(&a, w, h);
        (a, screen)
    }

    #[test]
    fn help_scrolled_to_the_end_80x24() {
        let (mut a, screen) = help_at_end(80, 24);
        assert!(
            screen.contains("close the help"),
            "the last key line:\n{screen}"
        );
        assert!(screen.contains("to the end"), "{screen}");
        assert!(
            !screen.contains("select previous operation"),
            "scrolled:\n{screen}"
        );
        assert!(screen.contains("Keys: lines"), "{screen}");
        // The footer says the help's keys, from the key table.
        assert!(
            screen.lines().last().unwrap().contains("j scroll"),
            "{screen}"
        );
        insta::assert_snapshot!(screen);
        // Every line of the help is reachable by scrolling from the top.
        update(&mut a, key('g'));
        let mut seen = String::new();
        for _ in 0..80 {
            seen.push_str(&render(&a, 80, 24));
            update(&mut a, key('j'));
        }
        for (_, _, rows) in keys::help_sections() {
            for (_, help, _) in rows {
                let relevant = keys::help_for(&a.screen_contexts())
                    .iter()
                    .flatten()
                    .any(|l| matches!(l, keys::HelpLine::Key { help: h, .. } if *h == help));
                if relevant {
                    assert!(seen.contains(help), "{help} never shown at 80x24");
                }
            }
        }
        for must in [
            "cleanup: delete expired rows",
            "schedule the hourly",
            "look a record up",
            "refresh less often",
        ] {
            assert!(seen.contains(must), "{must}");
        }
    }

    #[test]
    fn help_scrolled_to_the_end_120x40() {
        let (a, screen) = help_at_end(120, 40);
        assert!(screen.contains("close the help"), "{screen}");
        assert!(matches!(a.overlay, Some(Overlay::Help { .. })));
        insta::assert_snapshot!(screen);
    }

    fn summary(i: u128, op: &str, age_secs: i64, ttl_secs: i64) -> RecordSummary {
        RecordSummary {
            request_id: Uuid::from_u128(0x550e8400_e29b_41d4_a716_446655440000 + i),
            operation: op.into(),
            status_code: Some(201),
            created_at: Ts::At(at(-age_secs)),
            expires_at: Ts::At(at(-age_secs + ttl_secs)),
            payload_bytes: 231,
            xmin: 1,
        }
    }

    fn records_page() -> App {
        let (mut a, _) = app();
        let reqs = update(&mut a, key('2'));
        let Some(Request::LoadPage(req)) = reqs.first().cloned() else {
            panic!("{reqs:?}")
        };
        update(
            &mut a,
            Event::Db(DbEvent::Page {
                generation: req.generation,
                result: Ok((
                    Page {
                        rows: vec![
                            summary(1, "create_transaction_with_a_long_name", 0, 86_400),
                            summary(2, "pay\u{200b}ment", 4_000, 3_600),
                            summary(3, "東京_refund", 30, 86_400),
                        ],
                        next: None,
                        server_now: at(0),
                    },
                    true,
                )),
            }),
        );
        a
    }

    #[test]
    fn records_list_as_of_with_ellipsis_80x24() {
        let a = records_page();
        let screen = render(&a, 80, 24);
        assert!(screen.contains("as of 12:00:00 UTC"), "{screen}");
        assert!(
            screen.contains("550e8400-e29b-41d4-a716-446655440001"),
            "the whole key fits at 80 columns:\n{screen}"
        );
        assert!(screen.contains("create_tran…"), "cut visibly:\n{screen}");
        assert!(screen.contains("pay<U+200B>…"), "{screen}");
        assert!(screen.contains("0s ago"), "{screen}");
        insta::assert_snapshot!(screen);
    }

    #[test]
    fn records_list_as_of_with_ellipsis_120x40() {
        let mut a = records_page();
        let screen = render(&a, 120, 40);
        assert!(screen.contains("as of 12:00:00 UTC"), "{screen}");
        assert!(
            screen.contains("create_transaction_with_a_long_name"),
            "{screen}"
        );
        assert!(screen.contains("pay<U+200B>ment"), "{screen}");
        assert!(screen.contains("payload"), "room for the payload column");
        assert!(
            screen.contains("Y copy key"),
            "footer from the key table:\n{screen}"
        );
        insta::assert_snapshot!(screen);
        // Ages tick with the state's clock; the page's time stays what it was.
        let now = a.now;
        update(&mut a, Event::Tick(now + Duration::from_secs(65)));
        let later = render(&a, 120, 40);
        assert!(later.contains("1m ago"), "{later}");
        assert!(!later.contains("0s ago"), "{later}");
        assert!(later.contains("as of 12:00:00 UTC"), "{later}");
        assert!(later.contains("in 23h 58m"), "{later}");
    }

    #[test]
    fn a_narrow_list_cuts_the_key_visibly_and_y_shows_it_whole() {
        let mut a = records_page();
        let screen = render(&a, 64, 20);
        let row = screen
            .lines()
            .find(|l| l.contains("550e8400"))
            .expect("a row");
        assert!(row.contains('…'), "{screen}");
        assert!(!screen.contains("550e8400-e29b-41d4-a716-446655440001"));
        assert!(screen.contains("(Y: copy)"), "{screen}");
        update(&mut a, key('Y'));
        assert_eq!(
            a.clipboard.as_deref(),
            Some("550e8400-e29b-41d4-a716-446655440001")
        );
        let screen = render(&a, 64, 20);
        assert!(
            screen.contains("550e8400-e29b-41d4-a716-446655440001"),
            "whole in the footer, to select by hand:\n{screen}"
        );
    }

    #[test]
    fn a_pasted_kilobyte_is_bounded_and_its_error_is_on_screen() {
        let mut a = loaded(2);
        update(&mut a, key('/'));
        update(&mut a, Event::Paste("7".repeat(4_096)));
        let screen = render(&a, 80, 24);
        assert!(
            screen.contains("at most 256 characters: the rest of the paste was not taken"),
            "{screen}"
        );
        let prompt = screen
            .lines()
            .find(|l| l.contains("request_id: "))
            .expect("the prompt");
        assert!(prompt.contains("request_id: …777"), "{prompt}");
        assert!(prompt.contains("Enter ok"), "{prompt}");
    }

    #[test]
    fn old_messages_leave_the_footer() {
        let mut a = loaded(2);
        a.say("VACUUM (ANALYZE) done: 40 ms");
        assert!(render(&a, 100, 30).contains("VACUUM (ANALYZE) done"));
        tick(&mut a, Duration::from_secs(11));
        let screen = render(&a, 100, 30);
        assert!(!screen.contains("VACUUM (ANALYZE) done"), "{screen}");
        assert!(screen.contains("? help"), "{screen}");
    }

    #[test]
    fn a_long_flash_wraps_instead_of_being_cut() {
        let mut a = loaded(2);
        a.say(
            "delete record failed: canceling statement due to statement timeout; the record \
             is still there (held by pid 11234)",
        );
        let screen = render(&a, 80, 24);
        assert!(
            screen.contains("canceling statement due to statement"),
            "{screen}"
        );
        assert!(screen.contains("(held by pid 11234)"), "{screen}");
    }

    #[test]
    fn a_failed_action_s_error_wraps_in_the_activity_log() {
        use idemtop::app::action::Maintenance;
        let mut a = loaded(2);
        update(&mut a, key('v'));
        update(&mut a, key('y'));
        update(
            &mut a,
            Event::Db(DbEvent::Done {
                what: Maintenance::Vacuum,
                elapsed: Duration::from_millis(30_000),
                result: Err(DbError {
                    message: "canceling statement due to statement timeout while waiting for \
                              the lock held by pid 11234"
                        .into(),
                    connection_lost: false,
                }),
            }),
        );
        update(&mut a, key('5'));
        let screen = render(&a, 80, 24);
        for needle in [
            "canceling statement due",
            "statement timeout",
            "held by pid",
            "11234",
        ] {
            assert!(screen.contains(needle), "{needle}:\n{screen}");
        }
    }
}

mod after_cleanup {
    //! The refresh after a cleanup shows figures that include it: the Rows panel says how they
    //! were obtained (carried from the last exact counts by the counters), and the Operations
    //! panel agrees with it.
    use super::*;
    use idemtop::app::action::Maintenance;
    use idemtop::app::Finished;
    use idemtop::db::snapshot::RowsBasis;

    fn after_cleanup() -> App {
        let mut a = loaded(3);
        update(
            &mut a,
            Event::Db(DbEvent::Done {
                what: Maintenance::Cleanup,
                elapsed: Duration::from_secs(4),
                result: Ok(Finished {
                    rows: Some(298_394),
                    detail: "deleted 298,394 rows in 12 batches by heap sweep (caught up)".into(),
                }),
            }),
        );
        let generation = a
            .refresh
            .in_flight
            .expect("a refresh right after the action");
        let mut s = snapshot(8, 40_000);
        let (live, expired) = (201_606, 120);
        s.rows.total = live + expired;
        s.rows.live = live;
        s.rows.expired = expired;
        s.rows.exact = false;
        s.rows.expired_exact = true;
        s.rows.basis = RowsBasis::CountedSince;
        s.rows.basis_at = Some(s.taken_at - chrono::Duration::seconds(20));
        s.operations_exact = false;
        s.operations_as_of = s.rows.basis_at;
        let (sum_live, sum_expired): (i64, i64) = (
            s.operations.iter().filter_map(|o| o.live).sum(),
            s.operations.iter().filter_map(|o| o.expired).sum(),
        );
        for o in &mut s.operations {
            o.live = o.live.map(|v| v * live / sum_live.max(1));
            o.expired = o.expired.map(|v| v * expired / sum_expired.max(1));
            o.total = o.live.unwrap_or(0) + o.expired.unwrap_or(0);
            o.exact = false;
        }
        update(
            &mut a,
            Event::Db(DbEvent::Snapshot {
                generation,
                result: Ok(Box::new(s)),
            }),
        );
        a
    }

    #[test]
    fn after_cleanup_figures_80x24() {
        let a = after_cleanup();
        let screen = render(&a, 80, 24);
        assert!(screen.contains("Rows (~ carried)"), "{screen}");
        assert!(
            screen.contains("201,606"),
            "live after the cleanup: {screen}"
        );
        insta::assert_snapshot!(screen);
    }

    #[test]
    fn after_cleanup_figures_120x40() {
        let a = after_cleanup();
        let screen = render(&a, 120, 40);
        assert!(screen.contains("Rows (~ carried)"), "{screen}");
        assert!(screen.contains("201,606"), "{screen}");
        assert!(
            screen.contains("exact pass of 20s ago carried to now"),
            "the Operations panel says what it shows: {screen}"
        );
        assert!(
            screen.contains("cleanup done: deleted 298,394 rows"),
            "{screen}"
        );
        insta::assert_snapshot!(screen);
    }
}
