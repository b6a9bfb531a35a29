//! Cleanup on every table shape (issue 15): refused where expiry cannot be read (a permanent
//! ledger, no expiry mapped, a config that does not fit), and where it runs, exactly the rows
//! expired by the cutoff and not in flight go: the set of rows before and after is compared
//! row for row, with the expiry and in-flight state of each computed here, independently of
//! idemtop's SQL. The referencing tables are named in the dry run.

mod common;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use common::shapes::*;
use common::*;
use idemtop::db::maintenance::{self, CleanupOptions, CleanupSummary};
use idemtop::db::shape::TableEntry;
use idemtop::ident::TableRef;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Every row of the table: its hash, when it expires (as this test reads the shape), and
/// whether it is in flight.
type Row = (String, Option<DateTime<Utc>>, bool);

async fn rows(url: &str, table: &str, expires: &str, inflight: &str) -> Vec<Row> {
    let mut conn = connect(url).await;
    sqlx::query_as(&format!(
        "SELECT md5(t::text), ({expires})::timestamptz, ({inflight}) FROM public.{table} t"
    ))
    .fetch_all(&mut conn)
    .await
    .expect("read the rows")
}

fn hashes(rows: &[Row]) -> BTreeSet<String> {
    rows.iter().map(|r| r.0.clone()).collect()
}

async fn pool(url: &str) -> PgPool {
    idemtop::db::connect::ConnectConfig::from_url(url)
        .pool(2)
        .await
        .expect("pool")
}

async fn cleanup(
    url: &str,
    table: &str,
    tables: &[TableEntry],
    dry_run: bool,
) -> anyhow::Result<CleanupSummary> {
    let pool = pool(url).await;
    let t = TableRef::new("public", table).unwrap();
    let opts = CleanupOptions {
        dry_run,
        tables: tables.to_vec(),
        ..CleanupOptions::default()
    };
    let out = maintenance::cleanup(&pool, &t, &opts, &CancellationToken::new(), |_| {}).await;
    pool.close().await;
    out
}

fn entries(text: &str) -> Vec<TableEntry> {
    #[derive(serde::Deserialize)]
    struct Doc {
        table: Vec<TableEntry>,
    }
    toml::from_str::<Doc>(text)
        .expect("a valid [[table]] section")
        .table
}

/// Dry run, then the run: the dry run deletes nothing and counts what the run then deletes;
/// after the run exactly the rows expired by the cutoff and not in flight are gone.
async fn cleans_exactly(
    shape: &str,
    tables: &[TableEntry],
    expires: &str,
    inflight: &str,
) -> CleanupSummary {
    let url = loaded_shape(shape).await;
    let table = table_of(shape);
    let before = rows(&url, table, expires, inflight).await;
    let dry = cleanup(&url, table, tables, true).await.expect("dry run");
    assert_eq!(
        hashes(&rows(&url, table, expires, inflight).await),
        hashes(&before)
    );
    let run = cleanup(&url, table, tables, false).await.expect("cleanup");
    let gone = |r: &Row| r.1.is_some_and(|e| e <= run.cutoff) && !r.2;
    let expected: BTreeSet<String> = before
        .iter()
        .filter(|r| !gone(r))
        .map(|r| r.0.clone())
        .collect();
    let deleted = before.iter().filter(|r| gone(r)).count() as u64;
    let after = hashes(&rows(&url, table, expires, inflight).await);
    assert_eq!(
        after, expected,
        "{shape}: the rows left are not the live and in-flight ones"
    );
    assert!(deleted > 0, "{shape}: the fixture has expired rows");
    assert_eq!(run.deleted, deleted, "{shape}");
    let counted = dry.expired_at_start.expect("the dry run counts");
    assert!(
        counted <= deleted && deleted - counted <= 2,
        "{shape}: dry run counted {counted}, the run deleted {deleted}"
    );
    // Nothing in flight went, whatever its age.
    let inflight_before = before.iter().filter(|r| r.2).count();
    let inflight_after = rows(&url, table, expires, inflight)
        .await
        .iter()
        .filter(|r| r.2)
        .count();
    assert_eq!(inflight_before, inflight_after, "{shape}");
    run
}

#[tokio::test]
async fn the_guides_table_is_cleaned_as_before_with_no_config() {
    let s = cleans_exactly("guide", &[], "expires_at", "false").await;
    assert_eq!(s.rule, "expires_at <= cutoff");
    assert!(s.references.is_empty());
}

#[tokio::test]
async fn stripe_keys_go_72_hours_after_creation_never_in_flight_and_rides_are_named() {
    let s = cleans_exactly(
        "stripe",
        &[],
        "created_at + interval '72 hours'",
        "recovery_point <> 'finished'",
    )
    .await;
    assert_eq!(s.rule, "created_at + 72h <= cutoff, never a row in flight");
    assert_eq!(s.references.len(), 1, "{:?}", s.references);
    let r = &s.references[0];
    assert_eq!(r.table, "public.rides");
    assert_eq!(r.on_delete.sql(), "SET NULL");
    assert!(
        r.describe()
            .contains("ON DELETE SET NULL): its reference is set to NULL"),
        "{}",
        r.describe()
    );
}

#[tokio::test]
async fn nestarc_records_go_by_expires_at_but_never_while_processing() {
    let s = cleans_exactly("nestarc", &[], "expires_at", "status <> 'COMPLETED'").await;
    assert_eq!(s.rule, "expires_at <= cutoff, never a row in flight");
}

#[tokio::test]
async fn idempotence4j_actions_go_30_days_after_creation_read_in_the_databases_zone() {
    // Berlin wall-clock times, as the service writes them.
    let s = cleans_exactly(
        "idempotence4j",
        &[],
        "(created_at AT TIME ZONE 'Europe/Berlin') + interval '30 days'",
        "completed_at IS NULL",
    )
    .await;
    assert_eq!(s.rule, "created_at + 30d <= cutoff, never a row in flight");
}

#[tokio::test]
async fn stale_in_flight_rows_go_only_when_the_mapping_says_so() {
    let config = entries(
        r#"
[[table]]
table = "idempotency_keys"
key = ["user_id", "idempotency_key"]
created = "created_at"
ttl = "72h"
inflight_column = "recovery_point"
done_values = ["finished"]
inflight_stale_after = "90h"
"#,
    );
    let url = loaded_shape("stripe").await;
    let expires = "created_at + interval '72 hours'";
    let inflight = "recovery_point <> 'finished'";
    let before = rows(&url, "idempotency_keys", expires, inflight).await;
    let created: Vec<(String, DateTime<Utc>)> = {
        let mut conn = connect(&url).await;
        sqlx::query_as("SELECT md5(t::text), created_at FROM public.idempotency_keys t")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    };
    let s = cleanup(&url, "idempotency_keys", &config, false)
        .await
        .expect("cleanup");
    assert_eq!(
        s.rule,
        "created_at + 72h <= cutoff, a row in flight only when created over 90h ago (inflight_stale_after)"
    );
    let stale_bound = s.cutoff - chrono::Duration::hours(90);
    let created_of = |h: &str| created.iter().find(|c| c.0 == h).map(|c| c.1).unwrap();
    let gone =
        |r: &Row| r.1.is_some_and(|e| e <= s.cutoff) && (!r.2 || created_of(&r.0) <= stale_bound);
    let expected: BTreeSet<String> = before
        .iter()
        .filter(|r| !gone(r))
        .map(|r| r.0.clone())
        .collect();
    assert_eq!(
        hashes(&rows(&url, "idempotency_keys", expires, inflight).await),
        expected
    );
    let stale_gone = before.iter().filter(|r| r.2 && gone(r)).count();
    assert!(
        stale_gone > 0,
        "the fixture has in-flight keys older than 90 h"
    );
    assert!(
        before
            .iter()
            .any(|r| r.2 && r.1.is_some_and(|e| e <= s.cutoff) && !gone(r)),
        "in-flight keys between 72 and 90 hours old stay"
    );
}

/// Refused before anything is read or deleted: the reason says why and how to fix it.
async fn refused(shape: &str, tables: &[TableEntry], want: &[&str]) {
    let url = loaded_shape(shape).await;
    let table = table_of(shape);
    let before = rows(&url, table, "NULL", "false").await;
    for dry_run in [true, false] {
        let err = cleanup(&url, table, tables, dry_run)
            .await
            .expect_err("cleanup must be refused");
        let text = format!("{err:#}");
        assert!(text.starts_with("cleanup refused: "), "{text}");
        for w in want {
            assert!(text.contains(w), "{shape}: {w:?} not in: {text}");
        }
        assert_no_raw_types(&text);
    }
    assert_eq!(
        hashes(&rows(&url, table, "NULL", "false").await),
        hashes(&before)
    );
}

#[tokio::test]
async fn a_permanent_ledger_is_never_cleaned() {
    refused("medusa", &[], &["permanent ledger", "ttl"]).await;
    refused(
        "zero2prod",
        &[],
        &["public.idempotency is mapped as a permanent ledger"],
    )
    .await;
}

#[tokio::test]
async fn no_expiry_mapped_or_a_config_that_does_not_fit_is_refused() {
    let no_expiry = entries(
        "[[table]]\ntable = \"idempotency_key\"\nkey = [\"idempotency_key\"]\ncreated = \"created_at\"",
    );
    refused(
        "medusa",
        &no_expiry,
        &["has no mapped expiry", "ttl = \"24h\""],
    )
    .await;
    let wrong = entries(
        "[[table]]\ntable = \"idempotency_key\"\nkey = [\"idempotency_key\"]\nexpires = \"expires_at\"",
    );
    refused(
        "medusa",
        &wrong,
        &["does not fit the table", "has no column expires_at"],
    )
    .await;
    let not_a_time = entries(
        "[[table]]\ntable = \"idempotency_keys\"\nkey = [\"id\"]\nexpires = \"request_path\"",
    );
    refused("stripe", &not_a_time, &["request_path", "not"]).await;
}

#[tokio::test]
async fn a_restricting_foreign_key_is_named_before_and_stops_the_run_readably() {
    use sqlx::Executor;
    let url = loaded_shape("stripe").await;
    {
        let mut conn = connect(&url).await;
        conn.execute(
            "ALTER TABLE rides DROP CONSTRAINT rides_idempotency_key_id_fkey;
             ALTER TABLE rides ADD CONSTRAINT rides_idempotency_key_id_fkey
                 FOREIGN KEY (idempotency_key_id) REFERENCES idempotency_keys ON DELETE RESTRICT",
        )
        .await
        .unwrap();
    }
    // The dry run, through the binary: the rule and the referencing table with its effect.
    let home = std::env::temp_dir().join(format!("idemtop-restrict-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let (code, out, err) = idemtop(
        &[
            "--database-url",
            &url,
            "--table",
            "idempotency_keys",
            "cleanup",
            "--dry-run",
        ],
        &[("XDG_CONFIG_HOME", home.to_str().unwrap())],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created_at + 72h <= "), "{out}");
    assert!(out.contains("never a row in flight"), "{out}");
    assert!(
        out.contains("referenced by public.rides (rides_idempotency_key_id_fkey, ON DELETE RESTRICT): a row it still references cannot be deleted"),
        "{out}"
    );
    let before = referenced(&url).await;
    let err = cleanup(&url, "idempotency_keys", &[], false)
        .await
        .expect_err("the restricting key stops the run");
    let text = format!("{err:#}");
    assert!(
        text.contains("still referenced by another table through rides_idempotency_key_id_fkey"),
        "{text}"
    );
    assert_no_raw_types(&text);
    assert_eq!(referenced(&url).await, before);
}

/// Keys that rides still reference.
async fn referenced(url: &str) -> i64 {
    let mut conn = connect(url).await;
    sqlx::query_scalar(
        "SELECT count(*) FROM idempotency_keys k
          WHERE EXISTS (SELECT 1 FROM rides r WHERE r.idempotency_key_id = k.id)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap()
}
