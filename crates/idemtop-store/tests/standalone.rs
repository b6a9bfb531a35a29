//! The store as a service uses it: only `idemtop-store` (and the core's migrations), no
//! dashboard crate. A throwaway server from the test kit; twenty racing requests for one key
//! store exactly one result, and every loser gets the winner's back.

use std::sync::Arc;

use idemtop_core::db::connect::ConnectConfig;
use idemtop_core::db::migrate;
use idemtop_core::ident::{Ident, TableRef};
use idemtop_store::{IdempotencyStore, RecordOutcome, TtlPolicy};
use idemtop_testkit::pgtemp::TempPostgres;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_requests_store_one_result_without_the_dashboard() {
    let pg = TempPostgres::start().expect("a throwaway PostgreSQL");
    let mut conn = ConnectConfig::from_url(pg.url())
        .connect()
        .await
        .expect("connect");
    migrate::run(&mut conn, &Ident::new("public").unwrap())
        .await
        .expect("migrations 045 and 046");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(&pg.url())
        .await
        .expect("a pool");
    let store = Arc::new(IdempotencyStore::new(
        pool.clone(),
        TableRef::new("public", "idempotency_records").unwrap(),
        TtlPolicy::default(),
    ));

    let key = Uuid::new_v4();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .record(key, "payment", Some(200), &format!("{{\"attempt\":{i}}}"))
                .await
        }));
    }
    let mut stored = 0;
    let mut losers = Vec::new();
    for t in tasks {
        match t.await.unwrap().expect("record") {
            RecordOutcome::Stored => stored += 1,
            RecordOutcome::AlreadyStored(r) => losers.push(r.payload),
            RecordOutcome::ReplacedExpired => panic!("nothing was expired"),
        }
    }
    assert_eq!(stored, 1, "exactly one request stores its result");
    let kept = store.lookup(key).await.unwrap().expect("the stored result");
    assert_eq!(losers.len(), 19);
    assert!(losers.iter().all(|p| *p == kept.payload), "{losers:?}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_records")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}
