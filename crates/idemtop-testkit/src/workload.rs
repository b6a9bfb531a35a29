//! Synthetic API workload and history backfill for the demo and the benchmark.
//!
//! [`run`] plays an API that goes through [`IdempotencyStore`] the way a real service does:
//! look the key up, do the work, record the result; some clients retry earlier keys (live:
//! a replay hit; expired: the record is replaced), a few double-submit the same request at
//! once (one of the two loses). [`backfill`] inserts history fast, set-based, in SQL.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use idemtop_core::ident::TableRef;
use idemtop_store::{IdempotencyStore, RecordOutcome, TtlPolicy};

/// The operation mix: name and relative weight, Zipf-like (most common first).
static OPERATIONS: [(&str, f64); 12] = [
    ("get_balance", 0.26),
    ("create_transaction", 0.16),
    ("payment", 0.12),
    ("send_notification", 0.09),
    ("transfer", 0.08),
    ("update_profile", 0.065),
    ("create_invoice", 0.055),
    ("refund", 0.045),
    ("add_payment_method", 0.04),
    ("export_statement", 0.035),
    ("create_webhook", 0.03),
    ("close_account", 0.02),
];

/// Share of results that are 5xx (500/502/503) and 4xx (400/404/409/422); the rest are 2xx.
const SHARE_5XX: f64 = 0.015;
const SHARE_4XX: f64 = 0.07;
const CODES_5XX: [i32; 3] = [500, 502, 503];
const CODES_4XX: [i32; 4] = [400, 404, 409, 422];
/// Payload sizes: mostly 100-400 bytes, a long tail up to 8 KB (skewed to its short end: about
/// 1 KB on average), rarely 64 KB; about 380 bytes on average.
const SHARE_SMALL_PAYLOAD: f64 = 0.9;
const SHARE_HUGE_PAYLOAD: f64 = 0.0005;
const HUGE_PAYLOAD: usize = 64 * 1024;
const CURRENCIES: [&str; 4] = ["EUR", "USD", "GBP", "CHF"];
/// Share of new requests a client submits twice at once (double click, proxy retry).
const SHARE_DOUBLE_SUBMIT: f64 = 0.01;

/// Recent keys a retry can pick from.
const RING_CAPACITY: usize = 4096;
/// Requests in flight at once.
const MAX_IN_FLIGHT: usize = 8;
/// Pause after a database error (the demo's server may be restarting).
const ERROR_BACKOFF: Duration = Duration::from_millis(250);
/// Rows per backfill statement.
const BACKFILL_CHUNK: u64 = 100_000;

/// The operation mix: `(name, relative weight)`, most common first.
pub fn operations() -> &'static [(&'static str, f64)] {
    &OPERATIONS
}

/// The status code of a successful call of `operation`.
fn success_code(operation: &str) -> i32 {
    if operation.starts_with("create_") || operation == "add_payment_method" {
        201
    } else if operation == "send_notification" || operation == "export_statement" {
        202
    } else {
        200
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadConfig {
    /// Requests per second.
    pub rate: f64,
    /// Share of requests that retry an earlier key.
    pub replay_share: f64,
    /// Seed of the request mix (keys are always random).
    pub seed: u64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            rate: 50.0,
            replay_share: 0.08,
            seed: 0x1de7_0b5e,
        }
    }
}

/// Counters of [`run`], readable while it runs.
#[derive(Debug, Default)]
pub struct WorkloadStats {
    /// API requests made (a double submit counts twice).
    pub requests: AtomicU64,
    /// Results stored by `record` (outcome `Stored`).
    pub stored: AtomicU64,
    /// Retries answered from the store (live key found by `lookup`).
    pub replays_hit: AtomicU64,
    /// Retries of expired keys whose stale record was replaced (`ReplacedExpired`).
    pub replaced_expired: AtomicU64,
    /// Records that lost to a concurrent request for the same key (`AlreadyStored`).
    pub conflicts: AtomicU64,
    /// Database errors (logged at debug level; the workload backs off and continues).
    pub errors: AtomicU64,
}

/// A plain copy of [`WorkloadStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkloadSnapshot {
    pub requests: u64,
    pub stored: u64,
    pub replays_hit: u64,
    pub replaced_expired: u64,
    pub conflicts: u64,
    pub errors: u64,
}

impl WorkloadStats {
    pub fn snapshot(&self) -> WorkloadSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WorkloadSnapshot {
            requests: get(&self.requests),
            stored: get(&self.stored),
            replays_hit: get(&self.replays_hit),
            replaced_expired: get(&self.replaced_expired),
            conflicts: get(&self.conflicts),
            errors: get(&self.errors),
        }
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A first request: look up (miss), work, record.
    New,
    /// A first request sent twice at once: both look up, both record, one loses.
    DoubleSubmit,
    /// A retry of an earlier key: a live hit is answered from the store, else record again.
    Retry,
}

#[derive(Debug)]
struct Request {
    kind: Kind,
    key: Uuid,
    operation: &'static str,
    status_code: i32,
    payload: String,
}

fn pick_weighted<R: Rng>(rng: &mut R, weights: &[(&'static str, f64)]) -> &'static str {
    let total: f64 = weights.iter().map(|w| w.1).sum();
    let mut r = rng.gen::<f64>() * total;
    for (name, w) in weights {
        if r < *w {
            return name;
        }
        r -= w;
    }
    weights[weights.len() - 1].0
}

fn status_for<R: Rng>(rng: &mut R, operation: &str) -> i32 {
    let r: f64 = rng.gen();
    if r < SHARE_5XX {
        CODES_5XX[rng.gen_range(0..CODES_5XX.len())]
    } else if r < SHARE_5XX + SHARE_4XX {
        CODES_4XX[rng.gen_range(0..CODES_4XX.len())]
    } else {
        success_code(operation)
    }
}

fn payload_size<R: Rng>(rng: &mut R) -> usize {
    let r: f64 = rng.gen();
    if r < SHARE_SMALL_PAYLOAD {
        rng.gen_range(100..=400)
    } else if r < 1.0 - SHARE_HUGE_PAYLOAD {
        // Between 400 bytes and 8 KB, skewed to the short end (as in `backfill`).
        let u: f64 = rng.gen();
        (400.0 * (8192.0f64 / 400.0).powf(u * u)) as usize
    } else {
        HUGE_PAYLOAD
    }
}

/// A JSON result of about `size` bytes, like an API would store.
fn payload<R: Rng>(rng: &mut R, key: Uuid, operation: &str, status: i32) -> String {
    let size = payload_size(rng);
    let mut body = if status < 400 {
        serde_json::json!({
            "id": Uuid::from_u128(rng.gen()).to_string(),
            "request_id": key.to_string(),
            "operation": operation,
            "status": "ok",
            "amount": format!("{}.{:02}", rng.gen_range(1..5000), rng.gen_range(0..100)),
            "currency": CURRENCIES[rng.gen_range(0..CURRENCIES.len())],
        })
    } else {
        serde_json::json!({
            "request_id": key.to_string(),
            "operation": operation,
            "error": {
                "code": status,
                "message": match status {
                    400 => "invalid request",
                    404 => "not found",
                    409 => "conflicting state",
                    422 => "validation failed",
                    502 => "upstream unavailable",
                    503 => "service overloaded",
                    _ => "internal error",
                },
            },
        })
    };
    let base = body.to_string().len() + r#","data":"""#.len();
    if size > base {
        let filler: String = (&mut *rng)
            .sample_iter(rand::distributions::Alphanumeric)
            .take(size - base)
            .map(char::from)
            .collect();
        body["data"] = serde_json::Value::String(filler);
    }
    body.to_string()
}

fn count_outcome(stats: &WorkloadStats, outcome: &RecordOutcome) {
    WorkloadStats::bump(match outcome {
        RecordOutcome::Stored => &stats.stored,
        RecordOutcome::AlreadyStored(_) => &stats.conflicts,
        RecordOutcome::ReplacedExpired => &stats.replaced_expired,
    });
}

async fn one_request(store: &IdempotencyStore, req: &Request, stats: &WorkloadStats) -> Result<()> {
    WorkloadStats::bump(&stats.requests);
    if store.lookup(req.key).await?.is_some() {
        WorkloadStats::bump(&stats.replays_hit);
        return Ok(());
    }
    let outcome = store
        .record(req.key, req.operation, Some(req.status_code), &req.payload)
        .await?;
    count_outcome(stats, &outcome);
    Ok(())
}

async fn execute(store: &IdempotencyStore, req: Request, stats: &WorkloadStats) {
    let results = match req.kind {
        Kind::New | Kind::Retry => vec![one_request(store, &req, stats).await],
        Kind::DoubleSubmit => {
            let (a, b) = tokio::join!(
                one_request(store, &req, stats),
                one_request(store, &req, stats)
            );
            vec![a, b]
        }
    };
    for r in results {
        if let Err(e) = r {
            WorkloadStats::bump(&stats.errors);
            tracing::debug!("workload request failed: {e:#}");
        }
    }
}

/// Generates requests: owns the random source and the ring of recent keys.
struct Generator {
    rng: SmallRng,
    replay_share: f64,
    recent: VecDeque<(Uuid, &'static str)>,
}

impl Generator {
    fn next(&mut self) -> Request {
        let rng = &mut self.rng;
        let (kind, key, operation) =
            if !self.recent.is_empty() && rng.gen::<f64>() < self.replay_share {
                let (key, op) = self.recent[rng.gen_range(0..self.recent.len())];
                (Kind::Retry, key, op)
            } else {
                let op = pick_weighted(rng, operations());
                let kind = if rng.gen::<f64>() < SHARE_DOUBLE_SUBMIT {
                    Kind::DoubleSubmit
                } else {
                    Kind::New
                };
                (kind, Uuid::new_v4(), op)
            };
        if kind != Kind::Retry {
            if self.recent.len() == RING_CAPACITY {
                self.recent.pop_front();
            }
            self.recent.push_back((key, operation));
        }
        let status_code = status_for(rng, operation);
        let payload = payload(rng, key, operation, status_code);
        Request {
            kind,
            key,
            operation,
            status_code,
            payload,
        }
    }
}

/// Plays API traffic through `store` at `cfg.rate` requests per second until `cancel` fires.
/// A database error is counted, logged at debug level and followed by a short pause; it never
/// stops the workload. Requests still in flight at cancel get a moment to finish, then are
/// dropped.
pub async fn run(
    store: Arc<IdempotencyStore>,
    cfg: WorkloadConfig,
    stats: Arc<WorkloadStats>,
    cancel: CancellationToken,
) {
    if !(cfg.rate.is_finite() && cfg.rate > 0.0) {
        cancel.cancelled().await;
        return;
    }
    let rate = cfg.rate.min(1_000_000.0);
    let mut gen = Generator {
        rng: SmallRng::seed_from_u64(cfg.seed),
        replay_share: cfg.replay_share.clamp(0.0, 1.0),
        recent: VecDeque::with_capacity(RING_CAPACITY),
    };
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    let period = Duration::from_secs_f64(1.0 / rate)
        .clamp(Duration::from_millis(1), Duration::from_millis(100));
    let burst = (rate * 0.25).ceil() as u64 + MAX_IN_FLIGHT as u64;
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut start = Instant::now();
    let mut issued: u64 = 0;
    let mut seen_errors = stats.errors.load(Ordering::Relaxed);

    'outer: loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        while let Some(done) = tasks.try_join_next() {
            if done.is_err() {
                WorkloadStats::bump(&stats.errors);
            }
        }
        let errors = stats.errors.load(Ordering::Relaxed);
        if errors > seen_errors {
            seen_errors = errors;
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(ERROR_BACKOFF) => {}
            }
            start = Instant::now();
            issued = 0;
            continue;
        }
        let mut due = ((start.elapsed().as_secs_f64() * rate) as u64).saturating_sub(issued);
        if due > burst {
            // Far behind (slow server): don't catch up in one burst, restart the schedule.
            start = Instant::now();
            issued = 0;
            due = burst;
        }
        for _ in 0..due {
            let permit = tokio::select! {
                biased;
                _ = cancel.cancelled() => break 'outer,
                p = Arc::clone(&permits).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break 'outer,
                },
            };
            let req = gen.next();
            let store = Arc::clone(&store);
            let stats = Arc::clone(&stats);
            tasks.spawn(async move {
                let _permit = permit;
                execute(&store, req, &stats).await;
            });
            issued += 1;
        }
    }
    let drain = async { while tasks.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    tasks.abort_all();
}

/// Seed for PostgreSQL's `setseed()` (in [-1, 1]) of backfill chunk `chunk`.
fn chunk_seed(seed: u64, chunk: u64) -> f64 {
    let mut rng = SmallRng::seed_from_u64(seed ^ chunk.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    rng.gen_range(-1.0..1.0)
}

/// Inserts `rows` records of history, fast and set-based: one `INSERT ... SELECT FROM
/// generate_series` per chunk of 100k rows, each in its own transaction (so progress is
/// visible), with `created_at` uniform over the last `spread`, the [`operations`] mix, the
/// default [`TtlPolicy`] (so with a 48 h spread a good part is already expired), payloads of
/// varied size and a mix of status codes. Returns the number of rows inserted.
pub async fn backfill(
    pool: &PgPool,
    table: &TableRef,
    rows: u64,
    spread: Duration,
    seed: u64,
) -> Result<u64> {
    let policy = TtlPolicy::default();
    let names: Vec<String> = OPERATIONS.iter().map(|o| o.0.to_string()).collect();
    let total: f64 = OPERATIONS.iter().map(|o| o.1).sum();
    // Upper bounds of the buckets of all but the last operation, for width_bucket().
    let thresholds: Vec<f64> = OPERATIONS[..OPERATIONS.len() - 1]
        .iter()
        .scan(0.0, |acc, o| {
            *acc += o.1 / total;
            Some(*acc)
        })
        .collect();
    let ttls: Vec<f64> = OPERATIONS
        .iter()
        .map(|o| policy.ttl_for(o.0).as_secs_f64())
        .collect();
    let success: Vec<i32> = OPERATIONS.iter().map(|o| success_code(o.0)).collect();

    // Innermost: the random draws (volatile, so the planner evaluates each once per row).
    let sql = format!(
        r#"INSERT INTO {t} (request_id, operation, result_payload, status_code, created_at, expires_at)
SELECT gen_random_uuid(), op, payload, status, created_at, created_at + make_interval(secs => ttl)
  FROM (
    SELECT op, ttl, created_at, status,
           '{{"id":"' || substr(h, 1, 8) || '-' || substr(h, 9, 4) || '","operation":"' || op
             || '","status":' || status
             || CASE WHEN status < 400
                     THEN ',"amount":"' || (1 + floor(r_x * 500000) / 100)::text || '","currency":"EUR"'
                     ELSE ',"error":{{"code":' || status || ',"message":"request failed"}}'
                END
             || ',"data":"' || left(repeat(h, size / 32 + 1), greatest(size - 120, 0)) || '"}}' AS payload
      FROM (
        SELECT ($1::text[])[b + 1] AS op,
               ($2::float8[])[b + 1] AS ttl,
               now() - make_interval(secs => r_t * $3::float8) AS created_at,
               CASE WHEN r_st < $4::float8 THEN ($7::int4[])[1 + floor(r_x * cardinality($7::int4[]))::int]
                    WHEN r_st < $4::float8 + $5::float8 THEN ($8::int4[])[1 + floor(r_x * cardinality($8::int4[]))::int]
                    ELSE ($6::int4[])[b + 1]
               END AS status,
               CASE WHEN r_sz < $9::float8 THEN 100 + floor(r_s2 * 301)::int
                    WHEN r_sz < 1 - $10::float8 THEN floor(400 * power(20.48::float8, r_s2 * r_s2))::int
                    ELSE $11::int
               END AS size,
               h, r_x
          FROM (
            SELECT width_bucket(random(), $12::float8[]) AS b,
                   random() AS r_t, random() AS r_st, random() AS r_x,
                   random() AS r_sz, random() AS r_s2, md5(random()::text) AS h
              FROM generate_series(1, $13::bigint)
          ) AS draws
      ) AS picked
  ) AS shaped"#,
        t = table.qualified()
    );

    let mut conn = pool
        .acquire()
        .await
        .with_context(|| format!("backfill {table}: connect"))?;
    let mut inserted = 0u64;
    let mut chunk = 0u64;
    while inserted < rows {
        let n = (rows - inserted).min(BACKFILL_CHUNK);
        let ctx = || format!("backfill {table}: chunk {} ({n} rows)", chunk + 1);
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .with_context(ctx)?;
        sqlx::query(
            "SELECT set_config('statement_timeout', '900000', true),
                    set_config('synchronous_commit', 'off', true),
                    setseed($1)",
        )
        .bind(chunk_seed(seed, chunk))
        .execute(&mut *tx)
        .await
        .with_context(ctx)?;
        let done = sqlx::query(&sql)
            .bind(&names)
            .bind(&ttls)
            .bind(spread.as_secs_f64())
            .bind(SHARE_5XX)
            .bind(SHARE_4XX)
            .bind(&success)
            .bind(&CODES_5XX[..])
            .bind(&CODES_4XX[..])
            .bind(SHARE_SMALL_PAYLOAD)
            .bind(SHARE_HUGE_PAYLOAD)
            .bind(HUGE_PAYLOAD as i32)
            .bind(&thresholds)
            .bind(n as i64)
            .execute(&mut *tx)
            .await
            .with_context(ctx)?
            .rows_affected();
        tx.commit().await.with_context(ctx)?;
        inserted += done;
        chunk += 1;
        if done == 0 {
            break;
        }
    }
    Ok(inserted)
}
