//! The xmin horizon (issue 17), against real servers: a session idle in transaction, a
//! prepared transaction and a logical replication slot, each named; the dead rows the session
//! keeps counted on the panel, the check and the JSON; terminating it from the dashboard (with
//! `y`, never Enter) lets the next VACUUM remove them.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use idemtop::app::action::Maintenance;
use idemtop::app::{self, App, DbEvent, Event, Overlay, Request, SessionInfo};
use idemtop::config::Config;
use idemtop::db::connect::ConnectConfig;
use idemtop::db::horizon::{HolderKind, UnremovableBasis};
use idemtop::db::migrate;
use idemtop::db::snapshot::{Snapshot, SnapshotOptions};
use idemtop::ident::{Ident, TableRef};
use idemtop::pgtemp::{TempPgOptions, TempPostgres};
use idemtop::worker::Worker;
use sqlx::{Executor, PgConnection};

static SERVER: OnceLock<TempPostgres> = OnceLock::new();
static DB_SEQ: AtomicU32 = AtomicU32::new(0);

/// This binary's server: prepared transactions allowed, logical decoding on.
fn server() -> &'static TempPostgres {
    SERVER.get_or_init(|| {
        TempPostgres::start_with(
            TempPgOptions::default()
                .setting("max_prepared_transactions", "10")
                .setting("wal_level", "logical"),
        )
        .expect("start a throwaway PostgreSQL")
    })
}

async fn connect(url: &str) -> PgConnection {
    ConnectConfig::from_url(url).connect().await.unwrap()
}

/// A fresh database with the migrations and `n` expired rows; returns its name and URL.
async fn seeded_db(n: i64) -> (String, String) {
    let pg = server();
    let name = format!(
        "h{}_{}",
        std::process::id(),
        DB_SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = connect(&pg.url()).await;
    admin
        .execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .unwrap();
    let url = pg.url_for(&name);
    let mut conn = connect(&url).await;
    migrate::run(&mut conn, &Ident::new("public").unwrap())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), 'op', repeat('x', 100), 200, now() - interval '2 days',
                now() - interval '1 day'
           FROM generate_series(1, $1) g",
    )
    .bind(n)
    .execute(&mut conn)
    .await
    .unwrap();
    (name, url)
}

async fn snapshot(url: &str) -> Snapshot {
    let mut conn = connect(url).await;
    idemtop::worker::refresh(&mut conn, &TableRef::default(), SnapshotOptions::default())
        .await
        .unwrap()
}

/// Delete `n` rows and VACUUM (n_dead_tup after it is its result: the rows it had to leave).
/// The deleting session ends first: a backend flushes its counters when it exits, and a
/// flush after the VACUUM would add its deletes to the VACUUM's count.
async fn delete_and_vacuum(url: &str, n: i64) {
    let mut conn = connect(url).await;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let deleted = sqlx::query(
        "DELETE FROM idempotency_records WHERE request_id IN
           (SELECT request_id FROM idempotency_records LIMIT $1)",
    )
    .bind(n)
    .execute(&mut conn)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(deleted, n as u64);
    sqlx::Connection::close(conn).await.unwrap();
    let mut conn = connect(url).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)",
    )
    .bind(pid)
    .fetch_one(&mut conn)
    .await
    .unwrap()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // This session's pending counters first (a rolled-back insert counts a dead tuple), so
    // that VACUUM's count is the last word; then VACUUM's own report, which reaches other
    // sessions at once on 15+ and through the statistics collector on 13 and 14.
    common::flush_stats(&mut conn).await;
    conn.execute("VACUUM idempotency_records").await.unwrap();
    common::flush_stats(&mut conn).await;
}

fn key(c: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

#[tokio::test]
async fn an_idle_transaction_is_named_counted_and_terminated_from_the_dashboard() {
    let (_, url) = seeded_db(1000).await;
    // The holder: a repeatable-read snapshot, then idle in transaction.
    let mut holder = connect(&url).await;
    holder
        .execute("SET application_name = 'the-holder'")
        .await
        .unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut holder)
        .await
        .unwrap();
    holder
        .execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM idempotency_records")
        .await
        .unwrap();
    delete_and_vacuum(&url, 400).await;

    let snap = snapshot(&url).await;
    let h = snap.vacuum.xmin_horizon.as_ref().expect("horizon read");
    let who = h.holder.as_ref().expect("a holder");
    assert_eq!(who.kind, HolderKind::Backend);
    assert_eq!(who.pid, Some(pid));
    assert_eq!(who.application.as_deref(), Some("the-holder"));
    assert_eq!(who.state.as_deref(), Some("idle in transaction"));
    assert!(who.age_xids >= 1, "{who:?}");
    assert_eq!(snap.vacuum.n_dead_tup, 400, "VACUUM left the 400 rows");
    assert_eq!(h.unremovable, Some(400));
    assert_eq!(h.basis, UnremovableBasis::AllDeadRows);
    assert!(
        h.describe().contains(&format!("~400, held by pid {pid}")),
        "{}",
        h.describe()
    );

    // The check names the pid; past its (lowered) threshold it warns, with the advice.
    let mut cfg = Config::default();
    cfg.thresholds.xmin_horizon.warning_secs = 0.0;
    let c = idemtop::checks::xmin_horizon(&snap, &cfg);
    assert_eq!(c.level, idemtop::checks::Level::Warning, "{c:?}");
    assert!(c.value.contains(&format!("pid {pid}")), "{c:?}");
    assert!(c.detail.contains("~400"), "{c:?}");
    assert!(
        c.advice.contains(&format!("pg_terminate_backend({pid})")),
        "{c:?}"
    );
    // With the defaults (an hour) a fresh holder is ok, and still named.
    let c = idemtop::checks::xmin_horizon(&snap, &Config::default());
    assert_eq!(c.level, idemtop::checks::Level::Ok, "{c:?}");
    assert!(c.detail.contains(&format!("pid {pid}")), "{c:?}");

    // The JSON of `idemtop snapshot`: vacuum.xmin_horizon, the existing fields unchanged.
    let (code, out, err) = common::idemtop(
        &["--database-url", &url, "snapshot", "--format", "json"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["vacuum"]["n_dead_tup"], 400);
    let x = &v["vacuum"]["xmin_horizon"];
    assert_eq!(x["holder"]["pid"], pid);
    assert_eq!(x["holder"]["kind"], "backend");
    assert_eq!(x["unremovable"], 400);
    assert_eq!(x["basis"], "all_dead_rows");

    // The metrics: the holder's age by kind, and the rows it keeps.
    let text = idemtop::commands::metrics::render(Some((&snap, &[])), None, 0.1);
    assert!(
        text.contains("idemtop_xmin_horizon_age_xids{holder=\"backend\"}"),
        "{text}"
    );
    assert!(text.contains("idemtop_xmin_horizon_age_seconds{holder=\"backend\"}"));
    assert!(text.contains("idemtop_xmin_horizon_unremovable_dead_tuples 400"));
    assert!(text.contains("idemtop_standby 0"));

    // The dashboard: the panel names it; T asks, Enter does not confirm, y does.
    let cfgc = ConnectConfig::from_url(&url);
    let pool = cfgc.pool(2).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let worker = Worker::new(cfgc, pool, TableRef::default(), Config::default(), tx);
    let now = Instant::now();
    let mut app = App::new(
        SessionInfo {
            target: "test".into(),
            table: "public.idempotency_records".into(),
            read_only: false,
        },
        Duration::from_secs(60),
        now,
    );
    let reqs = app::update(&mut app, Event::Tick(now));
    let Some(Request::Refresh { generation, .. }) = reqs.first().cloned() else {
        panic!("{reqs:?}")
    };
    app::update(
        &mut app,
        Event::Db(DbEvent::Snapshot {
            generation,
            result: Ok(Box::new(snap.clone())),
        }),
    );
    let backend = ratatui::backend::TestBackend::new(120, 40);
    let mut term = ratatui::Terminal::new(backend).unwrap();
    term.draw(|f| idemtop::ui::draw(f, &app, &idemtop::ui::Theme::new(false)))
        .unwrap();
    let screen = format!("{:?}", term.backend().buffer());
    assert!(
        screen.contains("dead rows not yet removable: ~400"),
        "{screen}"
    );
    assert!(screen.contains(&format!("held by pid {pid}")), "{screen}");

    assert!(app::update(&mut app, key('T')).is_empty());
    assert!(matches!(app.overlay, Some(Overlay::Confirm(_))));
    let enter = Event::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    assert!(
        app::update(&mut app, enter).is_empty(),
        "Enter never confirms"
    );
    assert!(matches!(app.overlay, Some(Overlay::Confirm(_))));
    let reqs = app::update(&mut app, key('y'));
    let [Request::Run(what @ Maintenance::TerminateBackend(t))] = reqs.as_slice() else {
        panic!("{reqs:?}")
    };
    assert_eq!(t.pid, pid);
    worker.handle(Request::Run(what.clone()));
    let done = loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap()
        {
            ev @ DbEvent::Done { .. } => break ev,
            _ => continue,
        }
    };
    let DbEvent::Done { result, .. } = &done else {
        unreachable!()
    };
    assert!(
        result
            .as_ref()
            .is_ok_and(|f| f.detail.contains("terminated")),
        "{done:?}"
    );
    app::update(&mut app, Event::Db(done.clone()));
    assert!(app.flash_text().unwrap_or("").contains("terminated"));

    // The session is gone; the next VACUUM removes the rows it kept.
    assert!(holder.execute("SELECT 1").await.is_err());
    let mut conn = connect(&url).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alive: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                .bind(pid)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        if !alive || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // This session's pending counters first (a rolled-back insert counts a dead tuple), so
    // that VACUUM's count is the last word; then VACUUM's own report, which reaches other
    // sessions at once on 15+ and through the statistics collector on 13 and 14.
    common::flush_stats(&mut conn).await;
    conn.execute("VACUUM idempotency_records").await.unwrap();
    common::flush_stats(&mut conn).await;
    let snap = snapshot(&url).await;
    assert_eq!(snap.vacuum.n_dead_tup, 0);
    let h = snap.vacuum.xmin_horizon.unwrap();
    assert!(h.holder.is_none(), "{h:?}");
    assert_eq!(h.unremovable, Some(0));

    // Signalling again the pid that was shown does nothing: it is gone.
    let again = idemtop::db::horizon::signal(&mut conn, t, true)
        .await
        .unwrap();
    assert_eq!(again, idemtop::db::horizon::SignalOutcome::Gone);
}

#[tokio::test]
async fn a_changed_backend_is_not_signalled() {
    let (_, url) = seeded_db(10).await;
    let mut holder = connect(&url).await;
    holder
        .execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM idempotency_records")
        .await
        .unwrap();
    let snap = snapshot(&url).await;
    let target = snap
        .vacuum
        .xmin_horizon
        .and_then(|h| h.holder)
        .and_then(|h| h.signal_target())
        .expect("a backend holder");
    // A new transaction in the same session: not what the operator saw.
    holder.execute("COMMIT").await.unwrap();
    holder
        .execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM idempotency_records")
        .await
        .unwrap();
    let mut conn = connect(&url).await;
    let out = idemtop::db::horizon::signal(&mut conn, &target, true)
        .await
        .unwrap();
    assert_eq!(out, idemtop::db::horizon::SignalOutcome::Changed);
    assert!(holder.execute("SELECT 1").await.is_ok(), "still alive");
}

#[tokio::test]
async fn a_role_without_the_privilege_is_told_what_it_needs() {
    let (name, url) = seeded_db(10).await;
    let role = format!("watcher_{name}");
    let mut admin = connect(&url).await;
    admin
        .execute(format!("CREATE ROLE \"{role}\" LOGIN").as_str())
        .await
        .unwrap();
    let mut holder = connect(&url).await;
    holder
        .execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM idempotency_records")
        .await
        .unwrap();
    let target = snapshot(&url)
        .await
        .vacuum
        .xmin_horizon
        .and_then(|h| h.holder)
        .and_then(|h| h.signal_target())
        .expect("a backend holder");
    let watcher_url = format!("postgres://{role}@127.0.0.1:{}/{name}", server().port());
    let mut watcher = connect(&watcher_url).await;
    // Without pg_read_all_stats the superuser's session is hidden, and the horizon says so.
    let (holders, hidden) = idemtop::db::horizon::read(&mut watcher).await.unwrap();
    assert!(
        holders.iter().all(|h| h.kind != HolderKind::Backend),
        "{holders:?}"
    );
    assert!(
        hidden
            .iter()
            .any(|s| s.contains(&role) && s.contains("pg_read_all_stats")),
        "{hidden:?}"
    );
    // Its start times are hidden too: not provably the backend shown, so nothing is sent.
    let out = idemtop::db::horizon::signal(&mut watcher, &target, true)
        .await
        .unwrap();
    assert_eq!(out, idemtop::db::horizon::SignalOutcome::Changed);
    // With pg_read_all_stats it sees the holder, but may not signal a superuser's backend.
    admin
        .execute(format!("GRANT pg_read_all_stats TO \"{role}\"").as_str())
        .await
        .unwrap();
    let mut watcher = connect(&watcher_url).await;
    let (holders, hidden) = idemtop::db::horizon::read(&mut watcher).await.unwrap();
    assert!(hidden.is_empty(), "{hidden:?}");
    assert!(holders.iter().any(|h| h.pid == Some(target.pid)));
    let e = idemtop::db::horizon::signal(&mut watcher, &target, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&role) && e.contains("pg_signal_backend") && e.contains("superuser"),
        "{e}"
    );
    assert!(holder.execute("SELECT 1").await.is_ok(), "still alive");
}

#[tokio::test]
async fn a_prepared_transaction_is_named_with_the_sql_to_end_it() {
    let (_, url) = seeded_db(200).await;
    let mut conn = connect(&url).await;
    conn.execute(
        "BEGIN; INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
                VALUES (gen_random_uuid(), 'op', 'x', 200, now(), now() + interval '1 day');
         PREPARE TRANSACTION 'it''s-stuck'",
    )
    .await
    .unwrap();
    delete_and_vacuum(&url, 100).await;
    let snap = snapshot(&url).await;
    let h = snap.vacuum.xmin_horizon.as_ref().unwrap();
    let who = h
        .holder
        .as_ref()
        .expect("the prepared transaction holds it");
    assert_eq!(who.kind, HolderKind::PreparedXact);
    assert_eq!(who.name.as_deref(), Some("it's-stuck"));
    assert_eq!(who.user.as_deref(), Some("postgres"));
    assert_eq!(
        who.operator_sql().as_deref(),
        Some("ROLLBACK PREPARED 'it''s-stuck';")
    );
    assert!(who.signal_target().is_none());
    assert_eq!(h.unremovable, Some(100));
    let c = idemtop::checks::xmin_horizon(&snap, &Config::default());
    assert!(
        c.detail.contains("prepared transaction 'it's-stuck'"),
        "{c:?}"
    );
    assert!(
        c.advice.contains("ROLLBACK PREPARED 'it''s-stuck';"),
        "{c:?}"
    );

    // The dashboard never rolls it back: T shows the SQL instead of a dialog.
    let mut app = App::new(
        SessionInfo::default(),
        Duration::from_secs(60),
        Instant::now(),
    );
    let reqs = app::update(&mut app, Event::Tick(Instant::now()));
    let Some(Request::Refresh { generation, .. }) = reqs.first().cloned() else {
        panic!()
    };
    app::update(
        &mut app,
        Event::Db(DbEvent::Snapshot {
            generation,
            result: Ok(Box::new(snap.clone())),
        }),
    );
    assert!(app::update(&mut app, key('T')).is_empty());
    assert!(app.overlay.is_none());
    assert!(
        app.flash_text()
            .unwrap_or("")
            .contains("ROLLBACK PREPARED 'it''s-stuck';"),
        "{:?}",
        app.flash_text()
    );

    conn.execute("ROLLBACK PREPARED 'it''s-stuck'")
        .await
        .unwrap();
    // This session's pending counters first (a rolled-back insert counts a dead tuple), so
    // that VACUUM's count is the last word; then VACUUM's own report, which reaches other
    // sessions at once on 15+ and through the statistics collector on 13 and 14.
    common::flush_stats(&mut conn).await;
    conn.execute("VACUUM idempotency_records").await.unwrap();
    common::flush_stats(&mut conn).await;
    let snap = snapshot(&url).await;
    assert_eq!(snap.vacuum.n_dead_tup, 0);
}

#[tokio::test]
async fn a_logical_slot_is_named_and_holds_only_the_catalogs() {
    let (name, url) = seeded_db(200).await;
    let slot = format!("s_{name}");
    let mut conn = connect(&url).await;
    let made = sqlx::query("SELECT pg_create_logical_replication_slot($1, 'test_decoding')")
        .bind(&slot)
        .execute(&mut conn)
        .await;
    if let Err(e) = &made {
        if e.to_string().contains("test_decoding") {
            eprintln!("skipped: the test_decoding plugin is not installed: {e}");
            return;
        }
    }
    made.unwrap();
    delete_and_vacuum(&url, 100).await;
    let snap = snapshot(&url).await;
    let h = snap.vacuum.xmin_horizon.as_ref().unwrap();
    let s = h
        .holders
        .iter()
        .find(|x| x.name.as_deref() == Some(slot.as_str()))
        .unwrap_or_else(|| panic!("slot listed: {h:?}"));
    assert_eq!(s.kind, HolderKind::ReplicationSlot);
    assert_eq!(s.slot_type.as_deref(), Some("logical"));
    assert!(s.catalog_only, "a logical slot holds catalog_xmin only");
    assert_eq!(
        s.operator_sql(),
        Some(format!("SELECT pg_drop_replication_slot('{slot}');"))
    );
    assert!(
        s.describe().contains("catalog_xmin only"),
        "{}",
        s.describe()
    );
    // PostgreSQL: catalog_xmin holds back the catalogs, not this table: VACUUM removed the rows.
    assert_eq!(snap.vacuum.n_dead_tup, 0);
    assert!(h
        .holder
        .as_ref()
        .is_none_or(|x| x.kind != HolderKind::ReplicationSlot || !x.catalog_only));
    let c = idemtop::checks::xmin_horizon(&snap, &Config::default());
    assert!(c.detail.contains(&slot), "{c:?}");
    sqlx::query("SELECT pg_drop_replication_slot($1)")
        .bind(&slot)
        .execute(&mut conn)
        .await
        .unwrap();
}
