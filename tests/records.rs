//! Record browser data layer against a real server: keyset paging in every order (also while
//! rows are being inserted), filters, look-up by key, payload truncation, delete and its
//! privilege error, byte-exact round trip of hostile text, the plan of the expiry orders, and a
//! partitioned table in an oddly named schema.

mod common;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use common::*;
use idemtop::db::connect::ConnectConfig;
use idemtop::db::records::{
    self, Cursor, DeleteOutcome, Liveness, PermissionDenied, RecordFilter, RecordSummary, Sort,
    StatusClass,
};
use idemtop::db::ts::Ts;
use idemtop::ident::TableRef;
use sqlx::{Executor, PgConnection};
use uuid::Uuid;

fn guide_table() -> TableRef {
    TableRef::default()
}

/// Insert one row with explicit values (all bound).
#[allow(clippy::too_many_arguments)]
async fn insert(
    conn: &mut PgConnection,
    table: &TableRef,
    id: Uuid,
    operation: &str,
    payload: &str,
    status: Option<i32>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) {
    sqlx::query(&format!(
        "INSERT INTO {} (request_id, operation, result_payload, status_code, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        table.qualified()
    ))
    .bind(id)
    .bind(operation)
    .bind(payload)
    .bind(status)
    .bind(created_at)
    .bind(expires_at)
    .execute(conn)
    .await
    .expect("insert a record");
}

/// Every page of `filter` in `sort` order, checking the page invariants on the way.
async fn all_pages(
    conn: &mut PgConnection,
    table: &TableRef,
    filter: &RecordFilter,
    sort: Sort,
    limit: u32,
) -> Vec<RecordSummary> {
    let mut out = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = records::page(conn, table, filter, sort, after.as_ref(), limit)
            .await
            .expect("read a page");
        assert!(page.rows.len() <= limit as usize);
        out.extend(page.rows.iter().cloned());
        match page.next {
            Some(c) => {
                assert_eq!(
                    page.rows.len(),
                    limit as usize,
                    "only a full page has a next"
                );
                assert_eq!(c, Cursor::after(sort, page.rows.last().unwrap()));
                after = Some(c);
            }
            None => return out,
        }
    }
}

/// (key, id) in the order's direction: `a` strictly before `b`.
fn strictly_before(sort: Sort, a: &RecordSummary, b: &RecordSummary) -> bool {
    let ka = (sort.key_of(a), a.request_id, a.expires_at);
    let kb = (sort.key_of(b), b.request_id, b.expires_at);
    if sort.descending() {
        ka > kb
    } else {
        ka < kb
    }
}

fn sorted(mut rows: Vec<RecordSummary>, sort: Sort) -> Vec<RecordSummary> {
    rows.sort_by_key(|r| (sort.key_of(r), r.request_id, r.expires_at));
    if sort.descending() {
        rows.reverse();
    }
    rows
}

async fn snapshot(conn: &mut PgConnection, table: &TableRef) -> Vec<RecordSummary> {
    type Row = (Uuid, String, Option<i32>, Ts, Ts, i64, i64);
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT request_id, operation::text, status_code, created_at, expires_at,
                    octet_length(result_payload)::int8, xmin::text::int8
               FROM {}",
        table.qualified()
    ))
    .fetch_all(conn)
    .await
    .unwrap();
    rows.into_iter()
        .map(|r| RecordSummary {
            request_id: r.0,
            operation: r.1,
            status_code: r.2,
            created_at: r.3,
            expires_at: r.4,
            payload_bytes: r.5,
            xmin: r.6,
        })
        .collect()
}

async fn get(conn: &mut PgConnection, id: Uuid, max: usize) -> records::Record {
    records::get(conn, &guide_table(), id, max)
        .await
        .unwrap()
        .expect("the record exists")
}

fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyset_paging_visits_every_row_once_in_every_order_while_rows_are_inserted() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    let table = guide_table();
    let base = whole_seconds(Utc::now());
    // 1000 rows in groups of 8 sharing created_at and groups sharing expires_at, plus 40 rows
    // identical in both, so the request_id tie-breaker decides page boundaries.
    sqlx::query(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), 'op' || (g % 5), repeat('x', g % 50), 200,
                $1 - (g / 8) * interval '1 second',
                $1 + ((g * 7) % 50) * interval '1 hour' + interval '1 minute'
           FROM generate_series(1, 1000) g;
         ",
    )
    .bind(base)
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), 'same', '{}', 201, $1 - interval '30 seconds', $1 + interval '7 hours 1 minute'
           FROM generate_series(1, 40) g",
    )
    .bind(base)
    .execute(&mut conn)
    .await
    .unwrap();
    let initial = snapshot(&mut conn, &table).await;
    assert_eq!(initial.len(), 1040);
    let initial_ids: HashSet<Uuid> = initial.iter().map(|r| r.request_id).collect();

    // The inserter runs on its own task and connection. For every page the pager asks it for
    // one batch of 3 rows and runs the page query while the batch is being inserted; the
    // batch is acknowledged before the next page. So inserts certainly overlap the paging,
    // and the table grows by less than a page per page (paging always terminates).
    let (go_tx, mut go_rx) = tokio::sync::mpsc::channel::<()>(1);
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::channel::<()>(1);
    let inserter = {
        let url = url.clone();
        let table = table.clone();
        tokio::spawn(async move {
            let mut conn = connect(&url).await;
            let mut ids = Vec::new();
            let mut n: i64 = 0;
            while go_rx.recv().await.is_some() {
                for _ in 0..3 {
                    n += 1;
                    let id = Uuid::new_v4();
                    // Keys equal to existing ones, spread over the whole range.
                    let created = base - Duration::seconds((n * 13) % 130);
                    let expires = base + Duration::hours((n * 11) % 50) + Duration::minutes(1);
                    insert(
                        &mut conn,
                        &table,
                        id,
                        "late",
                        "{}",
                        Some(200),
                        created,
                        expires,
                    )
                    .await;
                    ids.push(id);
                }
                if ack_tx.send(()).await.is_err() {
                    break;
                }
            }
            ids
        })
    };

    let mut visited: HashMap<Sort, Vec<RecordSummary>> = HashMap::new();
    let mut total_pages = 0;
    for sort in Sort::ALL {
        let mut rows = Vec::new();
        let mut after: Option<Cursor> = None;
        let mut pages = 0;
        loop {
            go_tx.send(()).await.unwrap();
            let page = records::page(
                &mut conn,
                &table,
                &RecordFilter::default(),
                sort,
                after.as_ref(),
                37,
            )
            .await
            .unwrap();
            ack_rx.recv().await.expect("the inserter inserted a batch");
            pages += 1;
            assert!(page.rows.len() <= 37);
            rows.extend(page.rows.iter().cloned());
            match page.next {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        assert!(pages >= 1040 / 37, "{sort:?}: {pages} pages");
        total_pages += pages;
        visited.insert(sort, rows);
    }
    drop(go_tx);
    let inserted: HashSet<Uuid> = inserter.await.unwrap().into_iter().collect();
    assert_eq!(
        inserted.len(),
        3 * total_pages,
        "rows were inserted during paging"
    );
    let late_seen = Sort::ALL
        .iter()
        .map(|s| {
            visited[s]
                .iter()
                .filter(|r| inserted.contains(&r.request_id))
                .count()
        })
        .sum::<usize>();
    assert!(
        late_seen > 0,
        "some rows inserted during paging were paged too"
    );

    for sort in Sort::ALL {
        let rows = &visited[&sort];
        let mut seen = HashSet::new();
        for r in rows {
            assert!(
                seen.insert(r.request_id),
                "{sort:?}: {} twice",
                r.request_id
            );
            assert!(
                initial_ids.contains(&r.request_id) || inserted.contains(&r.request_id),
                "{sort:?}: unknown row"
            );
        }
        assert!(
            initial_ids.is_subset(&seen),
            "{sort:?}: {} initial rows missed",
            initial_ids.difference(&seen).count()
        );
        for w in rows.windows(2) {
            assert!(
                strictly_before(sort, &w[0], &w[1]),
                "{sort:?}: out of order"
            );
        }
        // The initial rows come in exactly the expected order.
        let of_initial: Vec<&RecordSummary> = rows
            .iter()
            .filter(|r| initial_ids.contains(&r.request_id))
            .collect();
        let expected = sorted(initial.clone(), sort);
        assert_eq!(of_initial, expected.iter().collect::<Vec<_>>(), "{sort:?}");
    }
}

fn expected_class(code: Option<i32>) -> StatusClass {
    match code {
        Some(c) if (200..300).contains(&c) => StatusClass::Success,
        Some(c) if (300..400).contains(&c) => StatusClass::Redirect,
        Some(c) if (400..500).contains(&c) => StatusClass::ClientError,
        Some(c) if (500..600).contains(&c) => StatusClass::ServerError,
        _ => StatusClass::Other,
    }
}

#[tokio::test]
async fn filters_by_operation_status_class_and_liveness() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    let table = guide_table();
    let ops = [
        "charge",
        "refund",
        "op'; DROP TABLE idempotency_records; --",
    ];
    let statuses = [
        Some(200),
        Some(201),
        Some(302),
        Some(404),
        Some(503),
        None,
        Some(102),
        Some(600),
    ];
    // (id, operation, status, live)
    let mut rows: Vec<(Uuid, &str, Option<i32>, bool)> = Vec::new();
    for op in ops {
        for status in statuses {
            for live in [true, false] {
                let id = Uuid::new_v4();
                // Times from the server's clock, with a wide margin either side of now().
                let (created, expires) = if live {
                    ("now() - interval '1 hour'", "now() + interval '1 hour'")
                } else {
                    ("now() - interval '2 days'", "now() - interval '1 day'")
                };
                sqlx::query(&format!(
                    "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
                     VALUES ($1, $2, '{{}}', $3, {created}, {expires})"
                ))
                .bind(id)
                .bind(op)
                .bind(status)
                .execute(&mut conn)
                .await
                .unwrap();
                rows.push((id, op, status, live));
            }
        }
    }

    let op_choices = [None, Some("charge"), Some(ops[2]), Some("no such op")];
    let status_choices = [
        None,
        Some(StatusClass::Success),
        Some(StatusClass::Redirect),
        Some(StatusClass::ClientError),
        Some(StatusClass::ServerError),
        Some(StatusClass::Other),
    ];
    let mut combos = 0;
    for (i, op) in op_choices.iter().enumerate() {
        for (j, status) in status_choices.iter().enumerate() {
            for (k, liveness) in [Liveness::Any, Liveness::Live, Liveness::Expired]
                .into_iter()
                .enumerate()
            {
                let filter = RecordFilter {
                    operation: op.map(str::to_string),
                    status: *status,
                    liveness,
                };
                let sort = Sort::ALL[(i + j + k) % 4];
                let got = all_pages(&mut conn, &table, &filter, sort, 5).await;
                let got_ids: HashSet<Uuid> = got.iter().map(|r| r.request_id).collect();
                assert_eq!(got_ids.len(), got.len());
                let want: HashSet<Uuid> = rows
                    .iter()
                    .filter(|(_, o, s, live)| {
                        op.is_none_or(|want| want == *o)
                            && status.is_none_or(|c| expected_class(*s) == c)
                            && match liveness {
                                Liveness::Any => true,
                                Liveness::Live => *live,
                                Liveness::Expired => !*live,
                            }
                    })
                    .map(|r| r.0)
                    .collect();
                assert_eq!(got_ids, want, "{filter:?}");
                for r in &got {
                    assert_eq!(r.status_class(), expected_class(r.status_code));
                }
                combos += 1;
            }
        }
    }
    assert_eq!(combos, 72);

    // Liveness is judged by the server clock reported with the page.
    let live = records::page(
        &mut conn,
        &table,
        &RecordFilter {
            liveness: Liveness::Live,
            ..Default::default()
        },
        Sort::ExpiringSoonest,
        None,
        100,
    )
    .await
    .unwrap();
    assert_eq!(live.rows.len(), 24);
    assert!(live.rows.iter().all(|r| r.is_live(live.server_now)));
    let expired = records::page(
        &mut conn,
        &table,
        &RecordFilter {
            liveness: Liveness::Expired,
            status: Some(StatusClass::Other),
            operation: Some("refund".into()),
        },
        Sort::Newest,
        None,
        100,
    )
    .await
    .unwrap();
    // refund x {NULL, 102, 600} x expired
    assert_eq!(expired.rows.len(), 3);
    assert!(expired.rows.iter().all(|r| !r.is_live(expired.server_now)));
    assert!(expired.next.is_none());
    // An empty result still reports the server's clock.
    let none = records::page(
        &mut conn,
        &table,
        &RecordFilter {
            operation: Some("no such op".into()),
            ..Default::default()
        },
        Sort::Oldest,
        None,
        10,
    )
    .await
    .unwrap();
    assert!(none.rows.is_empty() && none.next.is_none());
    assert!(none.server_now >= live.server_now);
}

#[tokio::test]
async fn look_up_by_key_and_parse_request_ids() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    let table = guide_table();
    let id = Uuid::new_v4();
    let created = whole_seconds(Utc::now()) - Duration::minutes(5);
    let expires = created + Duration::hours(24);
    insert(
        &mut conn,
        &table,
        id,
        "create_order",
        r#"{"order":42}"#,
        None,
        created,
        expires,
    )
    .await;

    // What the operator types: upper case, surrounded by spaces.
    let typed = format!("  {}\n", id.to_string().to_uppercase());
    let parsed = records::parse_request_id(&typed).unwrap();
    assert_eq!(parsed, id);
    let rec = records::get(&mut conn, &table, parsed, 4096)
        .await
        .unwrap()
        .expect("the record exists");
    assert_eq!(rec.summary.request_id, id);
    assert_eq!(rec.summary.operation, "create_order");
    assert_eq!(rec.summary.status_code, None);
    assert_eq!(rec.summary.status_class(), StatusClass::Other);
    assert_eq!(rec.summary.created_at, Ts::At(created));
    assert_eq!(rec.summary.expires_at, Ts::At(expires));
    assert_eq!(rec.summary.payload_bytes, 12);
    assert_eq!(rec.payload, r#"{"order":42}"#);
    assert_eq!(rec.payload_truncated_bytes, 0);

    assert_eq!(
        records::get(&mut conn, &table, Uuid::new_v4(), 4096)
            .await
            .unwrap(),
        None
    );

    let hyphenated = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    let want = Uuid::parse_str(hyphenated).unwrap();
    for good in [
        hyphenated,
        "67e5504410b1426f9247bb680e5fe0c8",
        "67E55044-10B1-426F-9247-BB680E5FE0C8",
        "{67e55044-10b1-426f-9247-bb680e5fe0c8}",
        "urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
        "\t 67e55044-10b1-426f-9247-bb680e5fe0c8 \r\n",
    ] {
        assert_eq!(records::parse_request_id(good), Ok(want), "{good:?}");
    }
    for bad in [
        "",
        "   ",
        "abc",
        "67e55044-10b1-426f-9247-bb680e5fe0c",
        "67e55044-10b1-426f-9247-bb680e5fe0c8a",
        "g7e55044-10b1-426f-9247-bb680e5fe0c8",
        "67e55044_10b1_426f_9247_bb680e5fe0c8",
        "'; DROP TABLE idempotency_records; --",
        "\u{1b}[2J",
        "67e55044-10b1-426f-9247-bb680e5fe0c8 x",
    ] {
        let err = records::parse_request_id(bad).unwrap_err();
        assert!(
            err.contains("expected 8-4-4-4-12 hex digits"),
            "{bad:?}: {err}"
        );
        assert!(!err.contains('\u{1b}'));
    }
    assert!(records::parse_request_id("abc")
        .unwrap_err()
        .starts_with("not a UUID"));
}

#[tokio::test]
async fn long_payloads_are_cut_on_the_server_at_a_char_boundary() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    let table = guide_table();
    let now = whole_seconds(Utc::now());
    let mb = 1024 * 1024;
    let ascii = "a".repeat(mb);
    let euro = "€".repeat(mb / 3); // 3 bytes each
    let mixed = "ab😀".repeat(mb / 6); // 6 bytes per unit
    let small = r#"{"ok":true}"#.to_string();
    let exact = "z".repeat(4096);
    let mut ids = Vec::new();
    for payload in [&ascii, &euro, &mixed, &small, &exact] {
        let id = Uuid::new_v4();
        let expires = now + Duration::hours(1);
        insert(
            &mut conn,
            &table,
            id,
            "big",
            payload,
            Some(200),
            now,
            expires,
        )
        .await;
        ids.push(id);
    }
    let r = get(&mut conn, ids[0], 4096).await;
    assert_eq!(r.payload.len(), 4096);
    assert_eq!(r.payload, ascii[..4096]);
    assert_eq!(r.summary.payload_bytes, mb as i64);
    assert_eq!(r.payload_truncated_bytes, (mb - 4096) as i64);

    let r = get(&mut conn, ids[1], 4096).await;
    assert_eq!(r.payload.len(), 4095); // 1365 whole euro signs
    assert!(euro.starts_with(&r.payload));
    assert_eq!(r.summary.payload_bytes, euro.len() as i64);
    assert_eq!(r.payload_truncated_bytes, (euro.len() - 4095) as i64);

    let r = get(&mut conn, ids[2], 4096).await;
    assert_eq!(r.payload.len(), 4094); // 682 units + "ab"; the emoji would not fit
    assert!(mixed.starts_with(&r.payload));
    assert_eq!(r.payload_truncated_bytes, (mixed.len() - 4094) as i64);

    let r = get(&mut conn, ids[3], 4096).await;
    assert_eq!(r.payload, small);
    assert_eq!(r.payload_truncated_bytes, 0);
    assert_eq!(r.summary.payload_bytes, small.len() as i64);

    let r = get(&mut conn, ids[4], 4096).await;
    assert_eq!(r.payload, exact);
    assert_eq!(r.payload_truncated_bytes, 0);
    let r = get(&mut conn, ids[4], 4095).await;
    assert_eq!(r.payload.len(), 4095);
    assert_eq!(r.payload_truncated_bytes, 1);
    let r = get(&mut conn, ids[0], 0).await;
    assert_eq!(r.payload, "");
    assert_eq!(r.payload_truncated_bytes, mb as i64);

    // The page reports the full sizes without fetching payloads.
    let page = records::page(
        &mut conn,
        &table,
        &RecordFilter::default(),
        Sort::Oldest,
        None,
        10,
    )
    .await
    .unwrap();
    let sizes: HashMap<Uuid, i64> = page
        .rows
        .iter()
        .map(|r| (r.request_id, r.payload_bytes))
        .collect();
    assert_eq!(sizes[&ids[0]], mb as i64);
    assert_eq!(sizes[&ids[2]], mixed.len() as i64);
}

#[tokio::test]
async fn delete_once_then_gone_and_a_reader_gets_a_clear_permission_error() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    let table = guide_table();
    let now = whole_seconds(Utc::now());
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for id in [a, b] {
        insert(
            &mut conn,
            &table,
            id,
            "op",
            "{}",
            Some(200),
            now,
            now + Duration::hours(1),
        )
        .await;
    }
    let shown_a = get(&mut conn, a, 100).await.summary.version();
    let shown_b = get(&mut conn, b, 100).await.summary.version();
    assert_eq!(
        records::delete(&mut conn, &table, &shown_a).await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        records::delete(&mut conn, &table, &shown_a).await.unwrap(),
        DeleteOutcome::Gone
    );
    assert_eq!(records::get(&mut conn, &table, a, 100).await.unwrap(), None);
    assert!(records::get(&mut conn, &table, b, 100)
        .await
        .unwrap()
        .is_some());

    // A role that may only read.
    conn.execute(
        "DO $$ BEGIN
             IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reader') THEN
                 CREATE ROLE reader LOGIN;
             END IF;
         END $$;
         GRANT SELECT ON public.idempotency_records TO reader;",
    )
    .await
    .unwrap();
    let db = url.rsplit('/').next().unwrap();
    let reader_url = format!("postgres://reader@127.0.0.1:{}/{db}", server().port());
    let mut reader = connect(&reader_url).await;
    let err = records::delete(&mut reader, &table, &shown_b)
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert_eq!(
        msg,
        "permission denied: role reader lacks DELETE on public.idempotency_records"
    );
    let denied = err.downcast_ref::<PermissionDenied>().expect("typed error");
    assert_eq!(denied.privilege, "DELETE");
    // Reading still works for the reader, and the record is still there.
    let rec = records::get(&mut reader, &table, b, 100).await.unwrap();
    assert!(rec.is_some());
    let page = records::page(
        &mut reader,
        &table,
        &RecordFilter::default(),
        Sort::ExpiringSoonest,
        None,
        10,
    )
    .await
    .unwrap();
    assert_eq!(page.rows.len(), 1);

    // A role that may not even read gets the same kind of sentence for SELECT.
    conn.execute("REVOKE SELECT ON public.idempotency_records FROM reader")
        .await
        .unwrap();
    let err = records::get(&mut reader, &table, b, 100).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "permission denied: role reader lacks SELECT on public.idempotency_records"
    );

    // A read-only session says so instead of a raw error.
    let mut ro_cfg = ConnectConfig::from_url(url.clone());
    ro_cfg.read_only = true;
    let mut ro = ro_cfg.connect().await.unwrap();
    let err = records::delete(&mut ro, &table, &shown_b)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err:#}");
    assert!(records::get(&mut conn, &table, b, 100)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn escape_sequences_round_trip_byte_exact() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    let table = guide_table();
    let now = whole_seconds(Utc::now());
    let operation = "\u{1b}]0;pwned\u{7}op\u{1b}[2J\u{9b}31m\u{202e}";
    let payload = "{\"x\":\"\u{1b}]0;pwned\u{7}\"}\r\n\u{1b}[2J\u{1b}[H\ttab\u{7f}\u{202e}evil";
    let id = Uuid::new_v4();
    insert(
        &mut conn,
        &table,
        id,
        operation,
        payload,
        Some(500),
        now,
        now + Duration::hours(1),
    )
    .await;
    let page = records::page(
        &mut conn,
        &table,
        &RecordFilter {
            operation: Some(operation.to_string()),
            ..Default::default()
        },
        Sort::Newest,
        None,
        10,
    )
    .await
    .unwrap();
    assert_eq!(page.rows.len(), 1);
    assert_eq!(page.rows[0].operation.as_bytes(), operation.as_bytes());
    assert_eq!(page.rows[0].payload_bytes, payload.len() as i64);
    let rec = records::get(&mut conn, &table, id, 1 << 20)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.summary.operation.as_bytes(), operation.as_bytes());
    assert_eq!(rec.payload.as_bytes(), payload.as_bytes());
    assert_eq!(rec.payload_truncated_bytes, 0);
}

/// Every node of an EXPLAIN (FORMAT JSON) plan.
fn plan_nodes(v: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    if let Some(arr) = v.as_array() {
        for x in arr {
            plan_nodes(x, out);
        }
        return;
    }
    if let Some(plan) = v.get("Plan") {
        plan_nodes(plan, out);
        return;
    }
    if v.get("Node Type").is_some() {
        out.push(v.clone());
        if let Some(children) = v.get("Plans") {
            plan_nodes(children, out);
        }
    }
}

fn node_types(nodes: &[serde_json::Value]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| n["Node Type"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Asserts the plan walks `index` (on the table or, partitioned, on every partition) and has
/// no full Sort node; a sort of rows that tie on the index key is allowed only as an
/// Incremental Sort whose presorted key is the index column.
fn assert_walks_index(plan: &records::PagePlan, index_matches: impl Fn(&str) -> bool) {
    assert!(!plan.sql.to_uppercase().contains("OFFSET"), "{}", plan.sql);
    let mut nodes = Vec::new();
    plan_nodes(&plan.plan, &mut nodes);
    let types = node_types(&nodes);
    assert!(
        !types.iter().any(|t| t == "Sort"),
        "{types:?}\n{:#}",
        plan.plan
    );
    assert!(
        !types.iter().any(|t| t == "Seq Scan"),
        "{types:?}\n{:#}",
        plan.plan
    );
    let scans: Vec<&serde_json::Value> = nodes
        .iter()
        .filter(|n| n["Node Type"] == "Index Scan")
        .collect();
    assert!(!scans.is_empty(), "{types:?}\n{:#}", plan.plan);
    for s in &scans {
        let name = s["Index Name"].as_str().unwrap_or("");
        assert!(index_matches(name), "{name}\n{:#}", plan.plan);
    }
    for n in nodes
        .iter()
        .filter(|n| n["Node Type"] == "Incremental Sort")
    {
        let presorted: Vec<&str> = n["Presorted Key"]
            .as_array()
            .map(|a| a.iter().filter_map(|k| k.as_str()).collect())
            .unwrap_or_default();
        assert!(
            presorted.len() == 1 && presorted[0].ends_with("expires_at"),
            "{presorted:?}\n{:#}",
            plan.plan
        );
    }
    assert_eq!(types[0], "Limit", "{types:?}");
}

#[tokio::test]
async fn expiry_orders_walk_the_expiry_index_without_sorting_or_offset() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    let table = guide_table();
    conn.execute(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
         SELECT gen_random_uuid(), 'op' || (g % 20), repeat('p', 100 + g % 200), 200 + (g % 4) * 100,
                now() - interval '2 hours' - (g % 5000) * interval '1 second',
                now() + (g % 7000) * interval '1 second' - interval '1 hour'
           FROM generate_series(1, 50000) g;
         ANALYZE idempotency_records;",
    )
    .await
    .unwrap();

    assert!(
        records::sort_is_indexed(&mut conn, &table, Sort::ExpiringSoonest)
            .await
            .unwrap()
    );
    assert!(
        records::sort_is_indexed(&mut conn, &table, Sort::ExpiringLatest)
            .await
            .unwrap()
    );
    assert!(!records::sort_is_indexed(&mut conn, &table, Sort::Newest)
        .await
        .unwrap());
    assert!(!records::sort_is_indexed(&mut conn, &table, Sort::Oldest)
        .await
        .unwrap());
    let missing = TableRef::new("public", "nope").unwrap();
    assert!(records::sort_is_indexed(&mut conn, &missing, Sort::Oldest)
        .await
        .unwrap_err()
        .to_string()
        .contains("does not exist"));

    let is_expiry_index = |n: &str| n == "idx_idempotency_expires";
    for sort in [Sort::ExpiringSoonest, Sort::ExpiringLatest] {
        for filter in [
            RecordFilter::default(),
            RecordFilter {
                liveness: Liveness::Live,
                ..Default::default()
            },
            RecordFilter {
                status: Some(StatusClass::ClientError),
                ..Default::default()
            },
        ] {
            // First page, then from a cursor in the middle of the table.
            let first = records::page(&mut conn, &table, &filter, sort, None, 50)
                .await
                .unwrap();
            let plan = records::explain_page(&mut conn, &table, &filter, sort, None, 50)
                .await
                .unwrap();
            assert_walks_index(&plan, is_expiry_index);
            // A cursor ten pages further in.
            let mut mid = first.next.clone().unwrap();
            for _ in 0..10 {
                let p = records::page(&mut conn, &table, &filter, sort, Some(&mid), 50)
                    .await
                    .unwrap();
                mid = p.next.unwrap();
            }
            let plan = records::explain_page(&mut conn, &table, &filter, sort, Some(&mid), 50)
                .await
                .unwrap();
            assert_walks_index(&plan, is_expiry_index);
            assert!(plan.sql.contains("request_id) "), "{}", plan.sql);
        }
    }
    // The other orders are keyset too (no offset), just not index-backed here.
    for sort in [Sort::Newest, Sort::Oldest] {
        let first = records::page(&mut conn, &table, &RecordFilter::default(), sort, None, 50)
            .await
            .unwrap();
        let plan = records::explain_page(
            &mut conn,
            &table,
            &RecordFilter::default(),
            sort,
            first.next.as_ref(),
            50,
        )
        .await
        .unwrap();
        assert!(!plan.sql.to_uppercase().contains("OFFSET"));
        assert!(
            plan.sql
                .contains("WHERE (created_at, request_id, expires_at) "),
            "{}",
            plan.sql
        );
    }
    // A cursor of another order is refused instead of silently mis-paging.
    let c = records::page(
        &mut conn,
        &table,
        &RecordFilter::default(),
        Sort::Oldest,
        None,
        5,
    )
    .await
    .unwrap()
    .next
    .unwrap();
    assert!(records::page(
        &mut conn,
        &table,
        &RecordFilter::default(),
        Sort::ExpiringSoonest,
        Some(&c),
        5
    )
    .await
    .is_err());
}

#[test]
fn the_module_never_updates_and_never_uses_offset() {
    // SQL keywords are written in upper case in the module; prose never is.
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/idemtop-core/src/db/records");
    let mut src = String::new();
    for entry in std::fs::read_dir(&dir).expect("the records module's directory") {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "tests.rs" {
            src.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    assert!(!src.contains("UPDATE"), "records are immutable");
    assert!(!src.contains("OFFSET"), "keyset pagination only");
    assert!(
        src.contains("DELETE FROM"),
        "the check reads the right file"
    );
}

#[tokio::test]
async fn works_on_a_partitioned_table_in_an_oddly_named_schema() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    conn.execute(
        r#"CREATE SCHEMA "we""ird";
           CREATE TABLE "we""ird"."idem recs" (
               request_id UUID NOT NULL,
               operation VARCHAR(100) NOT NULL,
               result_payload TEXT NOT NULL,
               status_code INTEGER,
               created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
               expires_at TIMESTAMPTZ NOT NULL,
               CHECK (expires_at > created_at),
               PRIMARY KEY (request_id, expires_at)
           ) PARTITION BY RANGE (expires_at);
           CREATE INDEX ON "we""ird"."idem recs" (expires_at);
           CREATE INDEX ON "we""ird"."idem recs" (operation);
           CREATE TABLE "we""ird".p_past PARTITION OF "we""ird"."idem recs"
               FOR VALUES FROM (MINVALUE) TO (now());
           CREATE TABLE "we""ird".p_soon PARTITION OF "we""ird"."idem recs"
               FOR VALUES FROM (now()) TO (now() + interval '1 day');
           CREATE TABLE "we""ird".p_later PARTITION OF "we""ird"."idem recs" DEFAULT;"#,
    )
    .await
    .unwrap();
    let table = TableRef::new("we\"ird", "idem recs").unwrap();
    let base = whole_seconds(Utc::now());
    sqlx::query(
        r#"INSERT INTO "we""ird"."idem recs" (request_id, operation, result_payload, status_code, created_at, expires_at)
           SELECT gen_random_uuid(), 'op' || (g % 3), repeat('y', g), 200 + (g % 4) * 100,
                  $1 - interval '3 days' + (g / 10) * interval '1 minute',
                  $1 + ((g % 9) - 4) * interval '10 hours'
             FROM generate_series(1, 400) g"#,
    )
    .bind(base)
    .execute(&mut conn)
    .await
    .unwrap();
    // The same key twice, in two partitions: allowed here.
    let dup = Uuid::new_v4();
    for (hours, payload) in [(-5, "old copy"), (30, "new copy")] {
        insert(
            &mut conn,
            &table,
            dup,
            "dup",
            payload,
            Some(200),
            base - Duration::days(1),
            base + Duration::hours(hours),
        )
        .await;
    }
    conn.execute(r#"ANALYZE "we""ird"."idem recs""#)
        .await
        .unwrap();
    let all = snapshot(&mut conn, &table).await;
    assert_eq!(all.len(), 402);

    for sort in Sort::ALL {
        let got = all_pages(&mut conn, &table, &RecordFilter::default(), sort, 23).await;
        // Both copies of the duplicated key are listed (they are different rows).
        assert_eq!(got.len(), 402, "{sort:?}");
        let keyed = |rows: &[RecordSummary]| -> Vec<(Uuid, Ts)> {
            rows.iter().map(|r| (r.request_id, r.expires_at)).collect()
        };
        // The two copies of `dup` share created_at and request_id: expires_at breaks the tie.
        assert_eq!(keyed(&got), keyed(&sorted(all.clone(), sort)), "{sort:?}");
    }
    let live = all_pages(
        &mut conn,
        &table,
        &RecordFilter {
            liveness: Liveness::Live,
            status: Some(StatusClass::Success),
            operation: Some("op1".into()),
        },
        Sort::ExpiringSoonest,
        7,
    )
    .await;
    let want = all
        .iter()
        .filter(|r| r.is_live(base) && r.status_code == Some(200) && r.operation == "op1")
        .count();
    assert!(want > 0);
    assert_eq!(live.len(), want);

    assert!(
        records::sort_is_indexed(&mut conn, &table, Sort::ExpiringLatest)
            .await
            .unwrap()
    );
    assert!(!records::sort_is_indexed(&mut conn, &table, Sort::Newest)
        .await
        .unwrap());
    let plan = records::explain_page(
        &mut conn,
        &table,
        &RecordFilter::default(),
        Sort::ExpiringSoonest,
        None,
        20,
    )
    .await
    .unwrap();
    assert_walks_index(&plan, |n| n.ends_with("expires_at_idx"));

    let rec = records::get(&mut conn, &table, dup, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.payload, "new copy");
    // Delete acts on the row version shown: the new copy only, never the old one with the
    // same key in another partition.
    assert_eq!(
        records::delete(&mut conn, &table, &rec.summary.version())
            .await
            .unwrap(),
        DeleteOutcome::Deleted
    );
    let old = records::get(&mut conn, &table, dup, 100)
        .await
        .unwrap()
        .expect("the old copy is still there");
    assert_eq!(old.payload, "old copy");
    assert_eq!(
        records::delete(&mut conn, &table, &rec.summary.version())
            .await
            .unwrap(),
        DeleteOutcome::Changed,
        "the key is still held (by the old copy), but not the row that was shown"
    );
    assert_eq!(
        records::delete(&mut conn, &table, &old.summary.version())
            .await
            .unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        records::get(&mut conn, &table, dup, 100).await.unwrap(),
        None
    );
    assert_eq!(snapshot(&mut conn, &table).await.len(), 400);
}

/// Insert one row with literal timestamps (`'infinity'`, `'-infinity'`, or any expression).
async fn insert_raw(
    conn: &mut PgConnection,
    id: Uuid,
    status: Option<i32>,
    created: &str,
    expires: &str,
) {
    sqlx::query(&format!(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
         VALUES ($1, 'op', '{{}}', $2, {created}, {expires})"
    ))
    .bind(id)
    .bind(status)
    .execute(conn)
    .await
    .expect("insert a record");
}

#[tokio::test]
async fn infinite_timestamps_and_extreme_values_are_read_and_paged_without_panicking() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    let table = guide_table();
    // Values the guide's schema accepts: expires_at = 'infinity', created_at = '-infinity'
    // (both at once too), status codes at both ends of int4, NULL status, a 2 MiB payload.
    let never = Uuid::new_v4();
    let since_always = Uuid::new_v4();
    let both = Uuid::new_v4();
    let huge = Uuid::new_v4();
    insert_raw(&mut conn, never, Some(i32::MAX), "now()", "'infinity'").await;
    insert_raw(
        &mut conn,
        since_always,
        Some(i32::MIN),
        "'-infinity'",
        "now() - interval '1 hour'",
    )
    .await;
    insert_raw(&mut conn, both, None, "'-infinity'", "'infinity'").await;
    for i in 0..5 {
        let expires = if i % 2 == 0 {
            "'infinity'".to_string()
        } else {
            format!("now() + interval '{i} hours'")
        };
        insert_raw(
            &mut conn,
            Uuid::new_v4(),
            Some(200),
            "now() - interval '1 day'",
            &expires,
        )
        .await;
        insert_raw(
            &mut conn,
            Uuid::new_v4(),
            Some(500),
            "'-infinity'",
            &format!("now() - interval '{i} hours'"),
        )
        .await;
    }
    sqlx::query(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, expires_at)
         VALUES ($1, 'op', repeat('x', 2 * 1024 * 1024), 200, now() + interval '1 hour')",
    )
    .bind(huge)
    .execute(&mut conn)
    .await
    .unwrap();
    let all = snapshot(&mut conn, &table).await;
    assert_eq!(all.len(), 14);
    assert_eq!(
        all.iter().filter(|r| r.expires_at == Ts::Infinity).count(),
        5
    );

    // Every order pages through the infinite values (keyset cursors bound as ±infinity), each
    // row once, in PostgreSQL's order, with pages of 2 so cursors land on infinite keys.
    for sort in Sort::ALL {
        let got = all_pages(&mut conn, &table, &RecordFilter::default(), sort, 2).await;
        let ids = |rows: &[RecordSummary]| rows.iter().map(|r| r.request_id).collect::<Vec<_>>();
        assert_eq!(ids(&got), ids(&sorted(all.clone(), sort)), "{sort:?}");
        assert!(
            got.windows(2).all(|w| strictly_before(sort, &w[0], &w[1])),
            "{sort:?}"
        );
    }
    // infinity is live, and the server agrees with the client's reading of it.
    let live = all_pages(
        &mut conn,
        &table,
        &RecordFilter {
            liveness: Liveness::Live,
            ..RecordFilter::default()
        },
        Sort::ExpiringLatest,
        3,
    )
    .await;
    assert_eq!(live.len(), 8, "5 infinite + 2 finite live + the huge one");
    assert!(live[..5].iter().all(|r| r.expires_at == Ts::Infinity));
    let page = records::page(
        &mut conn,
        &table,
        &RecordFilter::default(),
        Sort::Newest,
        None,
        100,
    )
    .await
    .unwrap();
    for r in &page.rows {
        assert_eq!(
            r.is_live(page.server_now),
            live.iter().any(|l| l.request_id == r.request_id)
        );
    }

    let rec = get(&mut conn, both, 100).await;
    assert_eq!(rec.summary.created_at, Ts::NegInfinity);
    assert_eq!(rec.summary.expires_at, Ts::Infinity);
    assert_eq!(rec.summary.status_code, None);
    let rec = get(&mut conn, since_always, 100).await;
    assert_eq!(rec.summary.status_code, Some(i32::MIN));
    assert_eq!(rec.summary.status_class(), StatusClass::Other);
    assert_eq!(
        get(&mut conn, never, 100).await.summary.status_code,
        Some(i32::MAX)
    );
    let rec = get(&mut conn, huge, 64 * 1024).await;
    assert_eq!(rec.payload.len(), 64 * 1024);
    assert_eq!(rec.payload_truncated_bytes, 2 * 1024 * 1024 - 64 * 1024);

    // A row version with infinite timestamps is matched exactly (±infinity bound as values).
    let shown = get(&mut conn, both, 100).await.summary.version();
    assert_eq!(
        records::delete(&mut conn, &table, &shown).await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        records::get(&mut conn, &table, both, 100).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_key_reused_after_it_was_shown_is_not_deleted() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    let table = guide_table();
    let key = Uuid::new_v4();
    // The operator opens an expired 502 record...
    sqlx::query(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, created_at, expires_at)
         VALUES ($1, 'payment', '{\"error\":\"bad gateway\"}', 502, now() - interval '2 hours', now() - interval '1 hour')",
    )
    .bind(key)
    .execute(&mut conn)
    .await
    .unwrap();
    let shown = get(&mut conn, key, 100).await;
    assert_eq!(shown.summary.status_code, Some(502));
    // ...the application reuses the key as the store does: DELETE the expired row, INSERT a
    // new live one (another transaction each)...
    sqlx::query("DELETE FROM idempotency_records WHERE request_id = $1 AND expires_at <= now()")
        .bind(key)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, expires_at)
         VALUES ($1, 'payment', '{\"charged\":true}', 201, now() + interval '1 day')",
    )
    .bind(key)
    .execute(&mut conn)
    .await
    .unwrap();
    // ...and the operator presses d, y: nothing is deleted, and the outcome says why.
    assert_eq!(
        records::delete(&mut conn, &table, &shown.summary.version())
            .await
            .unwrap(),
        DeleteOutcome::Changed
    );
    let now_stored = get(&mut conn, key, 100).await;
    assert_eq!(now_stored.summary.status_code, Some(201));
    assert_eq!(now_stored.payload, "{\"charged\":true}");
    assert!(now_stored.summary.xmin != shown.summary.xmin);
}

#[tokio::test]
async fn an_unchanged_row_is_deleted_and_its_transaction_siblings_are_not() {
    let url = migrated_db().await;
    let mut conn = connect(&url).await;
    let table = guide_table();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    // One statement, one transaction: both rows have the same xmin and created_at.
    sqlx::query(
        "INSERT INTO idempotency_records (request_id, operation, result_payload, status_code, expires_at)
         VALUES ($1, 'op', '{}', 200, now() + interval '1 hour'),
                ($2, 'op', '{}', 200, now() + interval '1 hour')",
    )
    .bind(a)
    .bind(b)
    .execute(&mut conn)
    .await
    .unwrap();
    let page = records::page(
        &mut conn,
        &table,
        &RecordFilter::default(),
        Sort::Newest,
        None,
        10,
    )
    .await
    .unwrap();
    assert_eq!(page.rows.len(), 2);
    assert_eq!(page.rows[0].xmin, page.rows[1].xmin, "same transaction");
    let row_a = page.rows.iter().find(|r| r.request_id == a).unwrap();
    assert_eq!(
        records::delete(&mut conn, &table, &row_a.version())
            .await
            .unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(records::get(&mut conn, &table, a, 10).await.unwrap(), None);
    assert!(records::get(&mut conn, &table, b, 10)
        .await
        .unwrap()
        .is_some());
}
