//! The idempotency store: what a service uses to look up and record results by key.
//!
//! The repository the migration guide refers to. A service calls [`IdempotencyStore::lookup`]
//! before doing the work of a request and [`IdempotencyStore::record`] after it; the store
//! guarantees that exactly one result is ever stored per live key, even when many copies of a
//! request race. It only ever needs the privileges the guide grants the API role: SELECT,
//! INSERT and DELETE (records are immutable; the store never UPDATEs). Expiry is always judged
//! by the server's clock (`now()`), never by the application's.

use idemtop_core::db::ts::Ts;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use idemtop_core::ident::TableRef;

pub use idemtop_core::guide::{
    cleanup_function, TtlPolicy, CLEANUP_FUNCTION, DEFAULT_CLEANUP_INTERVAL,
};

/// The table name migration 046's function deletes from (unqualified).
const GUIDE_TABLE: &str = "idempotency_records";

/// How often [`IdempotencyStore::record`] re-examines a key whose row keeps changing under it
/// (deleted by cleanup, replaced by a concurrent request) before giving up.
const MAX_RECORD_ATTEMPTS: usize = 8;

/// A result stored for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResult {
    pub status_code: Option<i32>,
    pub payload: String,
    /// Either may be `'infinity'`/`'-infinity'` in a table written by others: decoded, never a
    /// panic.
    pub created_at: Ts,
    pub expires_at: Ts,
}

/// What [`IdempotencyStore::record`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// This call won: its result is the one stored for the key.
    Stored,
    /// A concurrent or earlier request already stored a live result for this key; return that
    /// one to the client (ours was not stored).
    AlreadyStored(StoredResult),
    /// An expired (but not yet cleaned up) record for this key was removed and ours stored.
    ReplacedExpired,
}

/// Counters of [`IdempotencyStore::spawn_cleanup_task`], readable while it runs.
#[derive(Debug, Default)]
pub struct CleanupTaskStats {
    /// Cleanup runs attempted (successful or not).
    pub runs: AtomicU64,
    /// Runs that failed (logged with `tracing::error!`).
    pub failures: AtomicU64,
    /// Records deleted, over all runs.
    pub deleted: AtomicU64,
}

impl CleanupTaskStats {
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub fn deleted(&self) -> u64 {
        self.deleted.load(Ordering::Relaxed)
    }
}

type LiveRow = (Option<i32>, String, Ts, Ts);
type ExistingRow = (Option<i32>, String, Ts, Ts, bool);

/// The idempotency repository over one table (`--schema`/`--table`).
#[derive(Debug)]
pub struct IdempotencyStore {
    pool: PgPool,
    table: TableRef,
    ttl: TtlPolicy,
    cleanup_stats: Arc<CleanupTaskStats>,
    /// Whether the database enforces one row per `request_id` (a unique index on it alone).
    /// A table partitioned on `expires_at` cannot: its key is (request_id, expires_at).
    key_unique: tokio::sync::OnceCell<bool>,
}

impl IdempotencyStore {
    pub fn new(pool: PgPool, table: TableRef, ttl: TtlPolicy) -> Self {
        Self {
            pool,
            table,
            ttl,
            cleanup_stats: Arc::default(),
            key_unique: tokio::sync::OnceCell::new(),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn table(&self) -> &TableRef {
        &self.table
    }

    pub fn ttl_policy(&self) -> &TtlPolicy {
        &self.ttl
    }

    /// The counters of the cleanup task (zero until [`Self::spawn_cleanup_task`] runs).
    pub fn cleanup_stats(&self) -> Arc<CleanupTaskStats> {
        Arc::clone(&self.cleanup_stats)
    }

    /// The result stored for `key`, if it is still live (`expires_at > now()` on the server).
    /// An expired record is absent here even before cleanup removes it.
    pub async fn lookup(&self, key: Uuid) -> Result<Option<StoredResult>> {
        let sql = format!(
            "SELECT status_code, result_payload, created_at, expires_at
               FROM {} WHERE request_id = $1 AND expires_at > now()",
            self.table.qualified()
        );
        let row: Option<LiveRow> = sqlx::query_as(&sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .with_context(|| format!("look up key {key} in {}", self.table))?;
        Ok(row.map(
            |(status_code, payload, created_at, expires_at)| StoredResult {
                status_code,
                payload,
                created_at,
                expires_at,
            },
        ))
    }

    /// Store the result of a request under `key`, unless a live result is already stored.
    ///
    /// `expires_at` is `now() + ttl_for(operation)` on the server. Exactly one result is ever
    /// stored per live key: the first INSERT wins (`ON CONFLICT DO NOTHING`); a loser gets the
    /// winner's result back. An expired record still in the table is deleted and replaced in
    /// one transaction. Never UPDATEs.
    pub async fn record(
        &self,
        key: Uuid,
        operation: &str,
        status_code: Option<i32>,
        payload: &str,
    ) -> Result<RecordOutcome> {
        let ttl = self.ttl.ttl_for(operation);
        if ttl < Duration::from_micros(1) {
            bail!(
                "the TTL for operation {:?} is {ttl:?}; it must be at least 1 µs (expires_at > created_at)",
                idemtop_core::sanitize::line(operation)
            );
        }
        let ttl_secs = ttl.as_secs_f64();
        if !self.key_is_unique().await? {
            return self
                .record_under_key_lock(key, operation, status_code, payload, ttl_secs)
                .await;
        }
        let t = self.table.qualified();
        let insert = format!(
            "INSERT INTO {t} (request_id, operation, result_payload, status_code, expires_at)
             VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
             ON CONFLICT (request_id) DO NOTHING"
        );
        let select = format!(
            "SELECT status_code, result_payload, created_at, expires_at, expires_at > now()
               FROM {t} WHERE request_id = $1"
        );
        let delete_expired =
            format!("DELETE FROM {t} WHERE request_id = $1 AND expires_at <= now()");
        let ctx = || format!("record key {key} in {}", self.table);

        for _ in 0..MAX_RECORD_ATTEMPTS {
            let inserted = sqlx::query(&insert)
                .bind(key)
                .bind(operation)
                .bind(payload)
                .bind(status_code)
                .bind(ttl_secs)
                .execute(&self.pool)
                .await
                .with_context(ctx)?
                .rows_affected();
            if inserted == 1 {
                return Ok(RecordOutcome::Stored);
            }

            let existing: Option<ExistingRow> = sqlx::query_as(&select)
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .with_context(ctx)?;
            let Some((status_code_, payload_, created_at, expires_at, live)) = existing else {
                // Deleted between our INSERT and SELECT (cleanup): try again.
                continue;
            };
            if live {
                return Ok(RecordOutcome::AlreadyStored(StoredResult {
                    status_code: status_code_,
                    payload: payload_,
                    created_at,
                    expires_at,
                }));
            }

            // Expired but not cleaned up yet: replace it, atomically.
            let mut tx = self.pool.begin().await.with_context(ctx)?;
            let deleted = sqlx::query(&delete_expired)
                .bind(key)
                .execute(&mut *tx)
                .await
                .with_context(ctx)?
                .rows_affected();
            let inserted = sqlx::query(&insert)
                .bind(key)
                .bind(operation)
                .bind(payload)
                .bind(status_code)
                .bind(ttl_secs)
                .execute(&mut *tx)
                .await
                .with_context(ctx)?
                .rows_affected();
            tx.commit().await.with_context(ctx)?;
            match (inserted, deleted) {
                (1, 1) => return Ok(RecordOutcome::ReplacedExpired),
                // Cleanup removed the expired row before we could: a plain store.
                (1, _) => return Ok(RecordOutcome::Stored),
                // A concurrent request replaced it first: the next round returns its result.
                _ => continue,
            }
        }
        bail!(
            "record key {key} in {}: the key's row kept changing; gave up after {MAX_RECORD_ATTEMPTS} attempts",
            self.table
        )
    }

    async fn key_is_unique(&self) -> Result<bool> {
        self.key_unique
            .get_or_try_init(|| async {
                let unique: bool = sqlx::query_scalar(
                    "SELECT EXISTS (
                         SELECT 1 FROM pg_index i
                           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                          WHERE i.indrelid = to_regclass($1) AND i.indisunique
                            AND i.indnkeyatts = 1 AND a.attname = 'request_id')",
                )
                .bind(self.table.qualified())
                .fetch_one(&self.pool)
                .await
                .with_context(|| format!("inspect the keys of {}", self.table))?;
                anyhow::Ok(unique)
            })
            .await
            .copied()
    }

    /// [`Self::record`] where the database cannot enforce one row per key (a table partitioned
    /// on `expires_at`, whose key is `(request_id, expires_at)`): requests for the same key are
    /// serialized by a transaction-scoped advisory lock on the key, then the usual rules apply
    /// (a live row wins; an expired one is replaced). Still no UPDATE.
    async fn record_under_key_lock(
        &self,
        key: Uuid,
        operation: &str,
        status_code: Option<i32>,
        payload: &str,
        ttl_secs: f64,
    ) -> Result<RecordOutcome> {
        let t = self.table.qualified();
        let ctx = || format!("record key {key} in {}", self.table);
        let mut tx = self.pool.begin().await.with_context(ctx)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 4512))")
            .bind(key.to_string())
            .execute(&mut *tx)
            .await
            .with_context(ctx)?;
        let live: Option<LiveRow> = sqlx::query_as(&format!(
            "SELECT status_code, result_payload, created_at, expires_at FROM {t}
              WHERE request_id = $1 AND expires_at > now() ORDER BY expires_at DESC LIMIT 1"
        ))
        .bind(key)
        .fetch_optional(&mut *tx)
        .await
        .with_context(ctx)?;
        if let Some((status_code, payload, created_at, expires_at)) = live {
            tx.commit().await.with_context(ctx)?;
            return Ok(RecordOutcome::AlreadyStored(StoredResult {
                status_code,
                payload,
                created_at,
                expires_at,
            }));
        }
        let deleted = sqlx::query(&format!(
            "DELETE FROM {t} WHERE request_id = $1 AND expires_at <= now()"
        ))
        .bind(key)
        .execute(&mut *tx)
        .await
        .with_context(ctx)?
        .rows_affected();
        sqlx::query(&format!(
            "INSERT INTO {t} (request_id, operation, result_payload, status_code, expires_at)
             VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))"
        ))
        .bind(key)
        .bind(operation)
        .bind(payload)
        .bind(status_code)
        .bind(ttl_secs)
        .execute(&mut *tx)
        .await
        .with_context(ctx)?;
        tx.commit().await.with_context(ctx)?;
        Ok(if deleted > 0 {
            RecordOutcome::ReplacedExpired
        } else {
            RecordOutcome::Stored
        })
    }

    /// Delete every expired record (`expires_at <= now()`); returns how many were deleted.
    ///
    /// Uses migration 046's `cleanup_expired_idempotency_records()` when it exists in the
    /// table's schema, the table has the guide's name and this role may execute it; otherwise
    /// a plain DELETE.
    pub async fn cleanup_expired(&self) -> Result<u64> {
        let ctx = || format!("clean up expired records of {}", self.table);
        if self.table.table.as_str() == GUIDE_TABLE {
            let func = format!("{}()", self.table.sibling(&cleanup_function()));
            let usable: bool = sqlx::query_scalar(
                "SELECT coalesce(
                        (SELECT has_function_privilege(p, 'EXECUTE')
                           FROM to_regprocedure($1) AS p WHERE p IS NOT NULL),
                        false)",
            )
            .bind(&func)
            .fetch_one(&self.pool)
            .await
            .with_context(ctx)?;
            if usable {
                // The function names the table unqualified: resolve it in the table's schema.
                let mut tx = self.pool.begin().await.with_context(ctx)?;
                sqlx::query("SELECT set_config('search_path', $1, true)")
                    .bind(self.table.schema.quoted())
                    .execute(&mut *tx)
                    .await
                    .with_context(ctx)?;
                let n: i64 = sqlx::query_scalar(&format!("SELECT deleted_count FROM {func}"))
                    .fetch_one(&mut *tx)
                    .await
                    .with_context(ctx)?;
                tx.commit().await.with_context(ctx)?;
                return Ok(u64::try_from(n).unwrap_or(0));
            }
        }
        let sql = format!(
            "DELETE FROM {} WHERE expires_at <= now()",
            self.table.qualified()
        );
        Ok(sqlx::query(&sql)
            .execute(&self.pool)
            .await
            .with_context(ctx)?
            .rows_affected())
    }

    /// The guide's application-level cleanup: runs [`Self::cleanup_expired`] every `every`
    /// ([`DEFAULT_CLEANUP_INTERVAL`] in production), the first time one interval after the
    /// start, until `cancel` fires. Counts into [`Self::cleanup_stats`].
    pub fn spawn_cleanup_task(
        self: Arc<Self>,
        every: Duration,
        cancel: CancellationToken,
    ) -> JoinHandle<()> {
        let every = every.max(Duration::from_millis(1));
        let stats = self.cleanup_stats();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => break,
                    _ = interval.tick() => {}
                }
                let result = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => break,
                    r = self.cleanup_expired() => r,
                };
                stats.runs.fetch_add(1, Ordering::Relaxed);
                match result {
                    Ok(n) => {
                        stats.deleted.fetch_add(n, Ordering::Relaxed);
                        tracing::info!("cleaned up {} expired records", n);
                    }
                    Err(e) => {
                        stats.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::error!("cleanup of expired idempotency records failed: {e:#}");
                    }
                }
            }
        })
    }
}
