//! A hot standby (issue 17): a throwaway primary and a standby made from it with
//! `pg_basebackup -R`, `hot_standby_feedback=on`, and a repeatable-read transaction on the
//! standby that holds a snapshot. The primary names the standby as the xmin holder; idemtop
//! pointed at the standby says "standby", refuses every write (dashboard and headless cleanup)
//! and shows the counters it does not maintain as n/a.

mod common;

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use idemtop::app::{self, App, DbEvent, Event, Request, SessionInfo};
use idemtop::db::connect::ConnectConfig;
use idemtop::db::horizon::HolderKind;
use idemtop::db::migrate;
use idemtop::db::snapshot::{Snapshot, SnapshotOptions};
use idemtop::ident::{Ident, TableRef};
use idemtop::pgtemp::{TempPgOptions, TempPostgres};
use sqlx::{Executor, PgConnection};

async fn connect(url: &str) -> PgConnection {
    ConnectConfig::from_url(url).connect().await.unwrap()
}

async fn snapshot(url: &str) -> Snapshot {
    let mut conn = connect(url).await;
    idemtop::worker::refresh(&mut conn, &TableRef::default(), SnapshotOptions::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_standby_is_named_by_its_primary_and_refuses_writes() {
    let primary = TempPostgres::start().expect("start the primary");
    let major: u32 = primary.version().parse().unwrap();
    if primary
        .binaries()
        .client_for("pg_basebackup", major)
        .is_none()
    {
        // The server-only builds CI uses for other majors ship no pg_basebackup, and an older
        // one (Debian's) refuses a newer server.
        eprintln!(
            "skipped on PostgreSQL {major}: no pg_basebackup at least as new as the server \
             (none in {})",
            primary.binaries().bin.display()
        );
        return;
    }
    let mut admin = connect(&primary.url()).await;
    admin.execute("CREATE DATABASE app").await.unwrap();
    let url = primary.url_for("app");
    let mut conn = connect(&url).await;
    migrate::run(&mut conn, &Ident::new("public").unwrap())
        .await
        .unwrap();
    conn.execute(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), 'op', 'x', 200, now() - interval '2 days', now() - interval '1 day'
           FROM generate_series(1, 500)",
    )
    .await
    .unwrap();

    let standby = TempPostgres::start_standby(
        &primary,
        TempPgOptions::default()
            .setting("hot_standby_feedback", "on")
            .setting("wal_receiver_status_interval", "1"),
    )
    .expect("start a standby from a base backup");
    assert_ne!(standby.port(), primary.port());
    let standby_url = standby.url_for("app");

    // A long query on the standby: a repeatable-read snapshot held open, then pg_sleep.
    let mut reader = connect(&standby_url).await;
    reader
        .execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM idempotency_records")
        .await
        .unwrap();
    let sleeper = tokio::spawn(async move {
        let _ = reader.execute("SELECT pg_sleep(60)").await;
        reader
    });

    // The primary: its feedback arrives within a second or two; the standby is the holder.
    let deadline = Instant::now() + Duration::from_secs(20);
    let snap = loop {
        let snap = snapshot(&url).await;
        let kind = snap
            .vacuum
            .xmin_horizon
            .as_ref()
            .and_then(|h| h.holder.as_ref())
            .map(|h| h.kind);
        if kind == Some(HolderKind::StandbyFeedback) || Instant::now() > deadline {
            break snap;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let h = snap.vacuum.xmin_horizon.as_ref().unwrap();
    let who = h
        .holder
        .as_ref()
        .unwrap_or_else(|| panic!("a holder: {h:?}"));
    assert_eq!(who.kind, HolderKind::StandbyFeedback, "{h:?}");
    assert!(who.pid.is_some());
    assert_eq!(who.client.as_deref(), Some("127.0.0.1"));
    assert!(who.describe().contains("hot_standby_feedback"));
    assert!(snap.standby.is_none(), "the primary is no standby");
    let c = idemtop::checks::xmin_horizon(&snap, &idemtop::config::Config::default());
    assert!(c.detail.contains("standby"), "{c:?}");

    // Rows deleted on the primary now stay after VACUUM: the standby's snapshot needs them.
    conn.execute("DELETE FROM idempotency_records WHERE status_code = 200")
        .await
        .unwrap();
    drop(conn);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut v = connect(&url).await;
    v.execute("VACUUM idempotency_records").await.unwrap();
    // Before PostgreSQL 15 the statistics travel through the stats collector: VACUUM's count
    // reaches pg_stat_user_tables a moment later (under load, later still), so wait for it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let snap = loop {
        let snap = snapshot(&url).await;
        if snap.vacuum.n_dead_tup == 500 || Instant::now() > deadline {
            break snap;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let h = snap.vacuum.xmin_horizon.as_ref().unwrap();
    assert_eq!(
        h.holder.as_ref().map(|x| x.kind),
        Some(HolderKind::StandbyFeedback)
    );
    assert_eq!(snap.vacuum.n_dead_tup, 500, "kept for the standby");
    assert_eq!(h.unremovable, Some(500));

    // On the standby: "standby" with its replay lag, counters n/a.
    let ssnap = snapshot(&standby_url).await;
    let sb = ssnap.standby.as_ref().expect("a standby");
    assert!(sb.replay_lsn.is_some(), "{sb:?}");
    assert!(!ssnap.counters_maintained());
    let json = ssnap.to_json();
    assert_eq!(json["vacuum"]["n_dead_tup"], serde_json::Value::Null);
    assert_eq!(json["vacuum"]["counters"], "n/a on a standby");
    assert!(json["standby"]["replay_lsn"].is_string());
    let text = idemtop::commands::metrics::render(Some((&ssnap, &[])), None, 0.1);
    assert!(text.contains("idemtop_standby 1"), "{text}");
    assert!(
        !text.lines().any(|l| l.starts_with("idemtop_dead_tuples")),
        "{text}"
    );

    // The dashboard on the standby: STANDBY in the header, n/a in the Vacuum panel, every
    // write key refused with the reason.
    let now = Instant::now();
    let mut a = App::new(
        SessionInfo {
            target: "standby".into(),
            table: "public.idempotency_records".into(),
            read_only: false,
        },
        Duration::from_secs(60),
        now,
    );
    let reqs = app::update(&mut a, Event::Tick(now));
    let Some(Request::Refresh { generation, .. }) = reqs.first().cloned() else {
        panic!("{reqs:?}")
    };
    app::update(
        &mut a,
        Event::Db(DbEvent::Snapshot {
            generation,
            result: Ok(Box::new(ssnap.clone())),
        }),
    );
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 40)).unwrap();
    term.draw(|f| idemtop::ui::draw(f, &a, &idemtop::ui::Theme::new(false)))
        .unwrap();
    let screen = format!("{:?}", term.backend().buffer());
    assert!(screen.contains("STANDBY"), "{screen}");
    assert!(screen.contains("n/a on a standby"), "{screen}");
    assert!(
        screen.contains("standby: c a v S U C T d disabled"),
        "{screen}"
    );
    for k in ['c', 'a', 'v', 'S', 'U'] {
        let out = app::update(
            &mut a,
            Event::Key(KeyEvent::new(KeyCode::Char(k), KeyModifiers::NONE)),
        );
        assert!(out.is_empty(), "{k}: {out:?}");
        assert!(a.overlay.is_none(), "{k}");
        assert!(
            a.flash_text().unwrap_or("").contains("hot standby"),
            "{k}: {:?}",
            a.flash_text()
        );
    }

    // Headless cleanup refuses, naming the reason; exit non-zero.
    let (code, out, err) = common::idemtop(&["--database-url", &standby_url, "cleanup"], &[]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("hot standby"), "{err}");

    sleeper.abort();
}
