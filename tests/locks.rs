//! Under an ACCESS EXCLUSIVE lock on the table nothing is measured, and every surface says so
//! and names the blocker: the dashboard's refresh (a `Locked` event, the last figures kept),
//! `idemtop snapshot` (exit 4, JSON `locked`), `idemtop check` (UNKNOWN, JSON `locked`),
//! `idemtop cleanup --dry-run` (refused at once, naming the pid, instead of counting zero after
//! 30 s), and `/metrics` (`idemtop_table_locked 1`, no row or size figure). Plus: `check
//! --format json` prints JSON when the server cannot be reached.

mod common;

use std::time::{Duration, Instant};

use common::*;
use idemtop::app::{Also, DbEvent, Request};
use idemtop::config::Config;
use idemtop::db::connect::ConnectConfig;
use idemtop::ident::TableRef;
use idemtop::worker::Worker;
use sqlx::{Executor, PgConnection};

/// A session that holds an ACCESS EXCLUSIVE lock on the table (in an open transaction), and
/// its pid.
async fn hold_lock(url: &str) -> (PgConnection, i32) {
    let mut holder = connect(url).await;
    holder
        .execute("SET application_name = 'the-blocker'")
        .await
        .unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut holder)
        .await
        .unwrap();
    holder
        .execute("BEGIN; LOCK TABLE idempotency_records IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    (holder, pid)
}

async fn seed(url: &str) {
    let mut conn = connect(url).await;
    conn.execute(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), 'op', repeat('x', 100), 200, now() - interval '2 days',
                now() - interval '1 day' + g * interval '1 second'
           FROM generate_series(1, 3000) g",
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_locked_table_is_reported_with_its_blocker_everywhere() {
    let url = migrated_db().await;
    seed(&url).await;

    // The dashboard first measures, then finds the lock: a Locked event naming the holder.
    let cfg = ConnectConfig::from_url(&url);
    let pool = cfg.pool(2).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let worker = Worker::new(cfg, pool, TableRef::default(), Config::default(), tx);
    let refresh = |generation| Request::Refresh {
        generation,
        exact_pass: false,
        also: Also::default(),
    };
    worker.handle(refresh(1));
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&first, DbEvent::Snapshot { result: Ok(s), .. } if s.rows.total == 3000 && s.sizes.total_bytes > 0),
        "{first:?}"
    );

    let (mut holder, pid) = hold_lock(&url).await;
    // A second session queues behind it, as the application would.
    let mut waiter = connect(&url).await;
    let queued = tokio::spawn(async move {
        let _ = waiter
            .execute("SELECT count(*) FROM idempotency_records")
            .await;
        waiter
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    worker.handle(refresh(2));
    match tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap()
    {
        DbEvent::Locked {
            generation: 2,
            lock,
        } => {
            assert_eq!(lock.pid, pid);
            assert!(lock.granted);
            assert_eq!(lock.mode, "AccessExclusiveLock");
            assert_eq!(lock.application.as_deref(), Some("the-blocker"));
            assert_eq!(lock.state.as_deref(), Some("idle in transaction"));
            assert!(lock.waiting >= 1, "{lock:?}");
            let said = lock.describe();
            assert!(said.contains(&format!("held by pid {pid}")), "{said}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }

    // Headless: snapshot exits 4 with the lock and no figure.
    let started = Instant::now();
    let (code, out, err) = idemtop(
        &["--database-url", &url, "snapshot", "--format", "json"],
        &[],
    );
    assert_eq!(code, 4, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["locked"]["pid"], pid);
    assert!(v.get("sizes").is_none() && v.get("rows").is_none(), "{v}");

    // check: UNKNOWN with the lock, in JSON.
    let (code, out, _) = idemtop(&["--database-url", &url, "check", "--format", "json"], &[]);
    assert_eq!(code, 3, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "unknown");
    assert_eq!(v["locked"]["pid"], pid);

    // cleanup --dry-run: refused at once, naming the blocker (not "0 expired" after 30 s).
    let (code, out, err) = idemtop(
        &[
            "--database-url",
            &url,
            "cleanup",
            "--dry-run",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(err.contains(&format!("held by pid {pid}")), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "three commands under the lock took {:?}",
        started.elapsed()
    );

    // /metrics: up, locked, no figures.
    let exporter = idemtop::commands::metrics::Exporter::new(
        ConnectConfig::from_url(&url),
        TableRef::default(),
        Config::default(),
    );
    let text = exporter.scrape().await;
    assert!(text.contains("\nidemtop_up 1\n"), "{text}");
    assert!(text.contains("\nidemtop_table_locked 1\n"), "{text}");
    assert!(!text.contains("idemtop_rows{"), "{text}");

    holder.execute("COMMIT").await.unwrap();
    queued.await.unwrap();
    worker.handle(refresh(3));
    match tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap()
    {
        DbEvent::Snapshot {
            generation: 3,
            result: Ok(s),
        } => assert_eq!(s.rows.total, 3000),
        other => panic!("expected a snapshot after the lock, got {other:?}"),
    }
}

#[tokio::test]
async fn check_prints_json_with_unknown_when_the_server_is_unreachable() {
    let (code, out, err) = idemtop(
        &[
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
            "check",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 3, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON on stdout");
    assert_eq!(v["status"], "unknown");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot connect to nobody@127.0.0.1:1/none"),
        "{v}"
    );
    assert_eq!(v["checks"], serde_json::json!([]));
    let (code, out, _) = idemtop(
        &[
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
            "check",
        ],
        &[],
    );
    assert_eq!(code, 3);
    assert!(
        out.starts_with("UNKNOWN: public.idempotency_records: cannot connect"),
        "{out}"
    );
}
