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
    assert!(screen.contains("unused"), "never scanned index flagged");
    insta::assert_snapshot!(screen);
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
    assert!(screen.contains("stale: canceling statement due to statement timeout"));
    assert!(screen.contains("48,210"), "last good data stays");
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
    assert!(screen.contains("server unreachable, reconnecting (attempt 1)"));
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
            remaining: 10_000,
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
            remaining: 20_000,
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
            screen.contains("newest first · page 1 · sort column has no index"),
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
        screen.contains("read-only: c a v d S U disabled"),
        "{screen}"
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
