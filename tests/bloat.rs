//! Exact bloat figures (issue 17): idemtop's pgstattuple figures equal what psql reads; without
//! the extension idemtop says how to install it; the rewrite advice names pg_repack and VACUUM
//! FULL's lock.

mod common;

use std::time::Duration;

use common::*;
use idemtop::db::bloat;
use idemtop::ident::TableRef;
use sqlx::Executor;

#[tokio::test]
async fn pgstattuple_figures_match_psql_and_advise_a_rewrite() {
    let pg = server();
    if !pg.binaries().has_extension("pgstattuple") {
        eprintln!("skipped: pgstattuple is not installed (PostgreSQL contrib)");
        return;
    }
    let url = migrated_db().await;
    let db = url.rsplit('/').next().unwrap().to_string();
    let mut conn = connect(&url).await;
    conn.execute(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), 'op', repeat('x', 200), 200, now() - interval '2 days', now() - interval '1 day'
           FROM generate_series(1, 5000)",
    )
    .await
    .unwrap();
    let t = TableRef::default();
    let e = bloat::measure(&mut conn, &t, false, Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("CREATE EXTENSION pgstattuple"), "{e}");

    conn.execute("CREATE EXTENSION pgstattuple").await.unwrap();
    conn.execute("DELETE FROM idempotency_records WHERE request_id IN (SELECT request_id FROM idempotency_records LIMIT 4000)")
        .await
        .unwrap();
    conn.execute("VACUUM idempotency_records").await.unwrap();
    let f = bloat::measure(&mut conn, &t, false, Duration::from_secs(5))
        .await
        .unwrap();
    let psql = pg
        .psql(
            &db,
            "SELECT table_len, tuple_count, dead_tuple_count, free_space FROM pgstattuple('public.idempotency_records')",
        )
        .unwrap();
    let want: Vec<i64> = psql.trim().split('|').map(|v| v.parse().unwrap()).collect();
    assert_eq!(
        vec![f.table_len, f.tuple_count, f.dead_tuple_count, f.free_space],
        want
    );
    assert_eq!(f.tuple_count, 1000);
    assert!(f.free_percent > 50.0, "{f:?}");
    let approx = bloat::measure(&mut conn, &t, true, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(approx.method, "pgstattuple_approx");
    assert_eq!(approx.table_len, f.table_len);

    let advice = bloat::rewrite_advice(&f, 20.0, &t, &db, pg.version()).unwrap();
    assert!(
        advice.contains(&format!(
            "pg_repack --table='public.idempotency_records' -d '{db}'"
        )),
        "{advice}"
    );
    assert!(advice.contains(&format!("postgresql-{}-repack", pg.version())));
    assert!(advice.contains("VACUUM FULL") && advice.contains("ACCESS EXCLUSIVE"));
    assert!(bloat::rewrite_advice(&f, 99.9, &t, &db, pg.version()).is_none());
}

/// `B` on the Health screen: the worker measures with pgstattuple and the report carries the
/// rewrite advice once the free space is above the threshold; the screen shows both.
#[tokio::test]
async fn b_measures_the_free_space_from_the_dashboard() {
    use idemtop::app::{update, App, DbEvent, Event, Request, SessionInfo, SpaceState};
    use idemtop::config::Config;
    use idemtop::db::connect::ConnectConfig;
    use idemtop::worker::Worker;
    let pg = server();
    if !pg.binaries().has_extension("pgstattuple") {
        eprintln!("skipped: pgstattuple is not installed (PostgreSQL contrib)");
        return;
    }
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    conn.execute(
        "CREATE EXTENSION pgstattuple;
         INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), 'op', repeat('x', 200), 200, now() - interval '2 days', now() - interval '1 day'
           FROM generate_series(1, 5000);
         DELETE FROM idempotency_records WHERE request_id IN (SELECT request_id FROM idempotency_records LIMIT 4500)",
    )
    .await
    .unwrap();
    conn.execute("VACUUM idempotency_records").await.unwrap();

    let mut app = App::new(
        SessionInfo {
            target: "t".into(),
            table: "public.idempotency_records".into(),
            read_only: false,
        },
        Duration::from_secs(2),
        std::time::Instant::now(),
    );
    update(&mut app, Event::Key(key('4')));
    let reqs = update(&mut app, Event::Key(key('B')));
    assert_eq!(reqs, vec![Request::MeasureSpace]);
    assert_eq!(app.health.space, Some(SpaceState::Measuring));
    // Asked again while it runs: no second measurement.
    assert!(update(&mut app, Event::Key(key('B'))).is_empty());

    let cfg = ConnectConfig::from_url(&url);
    let pool = cfg.pool(2).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let worker = Worker::new(cfg, pool, TableRef::default(), Config::default(), tx);
    worker.handle(Request::MeasureSpace);
    let ev = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let DbEvent::Space(Ok(report)) = &ev else {
        panic!("expected the measurement, got {ev:?}");
    };
    assert_eq!(report.figures.method, "pgstattuple");
    assert!(report.figures.free_percent > 30.0, "{report:?}");
    let advice = report
        .advice
        .as_deref()
        .expect("a rewrite is advised above 30%");
    assert!(
        advice.contains("pg_repack --table='public.idempotency_records'"),
        "{advice}"
    );
    update(&mut app, Event::Db(ev));
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 40)).unwrap();
    term.draw(|f| idemtop::ui::draw(f, &app, &idemtop::ui::Theme::new(false)))
        .unwrap();
    let screen = term.backend().to_string();
    assert!(screen.contains("Free space (B: measure again)"), "{screen}");
    assert!(screen.contains("by pgstattuple"), "{screen}");
    assert!(screen.contains("pg_repack"), "{screen}");
}

fn key(c: char) -> crossterm::event::KeyEvent {
    crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Char(c),
        crossterm::event::KeyModifiers::NONE,
    )
}
