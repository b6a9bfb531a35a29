//! Records paging by keyset against OFFSET, at several depths.

use super::*;

// ---------------------------------------------------------------------------------------------
// 2. Records paging

pub(super) type PageRow = (
    Uuid,
    String,
    Option<i32>,
    DateTime<Utc>,
    DateTime<Utc>,
    i64,
    DateTime<Utc>,
);

pub(super) async fn measure_paging(env: &Env, data: &DataSet) -> Result<PagingReport> {
    let mut clock = env.clock().await?;
    let mut conn = env
        .probe_cfg("bench records paging", Duration::ZERO)
        .connect()
        .await?;
    let t = env.table.qualified();
    let filter = RecordFilter::default();
    let offset_sql = format!(
        "SELECT request_id, operation::text AS operation, status_code, created_at, expires_at,
                octet_length(result_payload)::int8 AS payload_bytes, now() AS server_now
           FROM {t} ORDER BY expires_at ASC, request_id ASC LIMIT $1 OFFSET $2"
    );
    let big = data.rows > 3_000_000;
    let keyset_reps = 11;
    let offset_reps = if big { 3 } else { 5 };
    let mut pages = Vec::new();
    let mut matches = true;
    for depth in [0.0, 0.5, 0.9] {
        let k = ((data.rows as f64) * depth) as i64;
        let label = format!("{:.0}% depth", depth * 100.0);
        // The cursor: the row just before the page, found once, outside the timing.
        let cursor = if k > 0 {
            let (expires_at, request_id): (DateTime<Utc>, Uuid) = sqlx::query_as(&format!(
                "SELECT expires_at, request_id FROM {t}
                  ORDER BY expires_at, request_id OFFSET $1 LIMIT 1"
            ))
            .bind(k - 1)
            .fetch_one(&mut conn)
            .await?;
            Some(Cursor {
                sort: Sort::ExpiringSoonest,
                key: expires_at.into(),
                request_id,
                expires_at: expires_at.into(),
            })
        } else {
            None
        };
        let mut server = Vec::new();
        let mut client = Vec::new();
        let mut keyset_ids = Vec::new();
        for i in 0..keyset_reps + 1 {
            let c = cursor.clone();
            let f = filter.clone();
            let table = env.table.clone();
            let conn_ref = &mut conn;
            let (page, s, w) = clock
                .time(async move {
                    records::page(
                        conn_ref,
                        &table,
                        &f,
                        Sort::ExpiringSoonest,
                        c.as_ref(),
                        PAGE_ROWS,
                    )
                    .await
                })
                .await?;
            if i > 0 {
                server.push(s);
                client.push(w);
            } else {
                keyset_ids = page.rows.iter().map(|r| r.request_id).collect();
            }
        }
        pages.push(PageMeasure {
            label: label.clone(),
            sort: Sort::ExpiringSoonest.label().into(),
            method: "keyset".into(),
            depth_rows: k,
            server: Stats::of(&server),
            client: Stats::of(&client),
        });
        if k == 0 {
            continue;
        }
        let mut server = Vec::new();
        let mut client = Vec::new();
        for i in 0..offset_reps + 1 {
            let sql = offset_sql.clone();
            let conn_ref = &mut conn;
            let (rows, s, w) = clock
                .time(async move {
                    let rows: Vec<PageRow> = sqlx::query_as(&sql)
                        .bind(i64::from(PAGE_ROWS) + 1)
                        .bind(k)
                        .fetch_all(conn_ref)
                        .await?;
                    Ok(rows)
                })
                .await?;
            if i > 0 {
                server.push(s);
                client.push(w);
            } else {
                let ids: Vec<Uuid> = rows.iter().take(PAGE_ROWS as usize).map(|r| r.0).collect();
                matches &= ids == keyset_ids;
            }
        }
        pages.push(PageMeasure {
            label,
            sort: Sort::ExpiringSoonest.label().into(),
            method: "OFFSET".into(),
            depth_rows: k,
            server: Stats::of(&server),
            client: Stats::of(&client),
        });
    }
    // Expiring latest (the default order): the same index, walked backwards.
    for depth in [0.0, 0.5, 0.9] {
        let k = ((data.rows as f64) * depth) as i64;
        let cursor = if k > 0 {
            let (expires_at, request_id): (DateTime<Utc>, Uuid) = sqlx::query_as(&format!(
                "SELECT expires_at, request_id FROM {t}
                  ORDER BY expires_at DESC, request_id DESC OFFSET $1 LIMIT 1"
            ))
            .bind(k - 1)
            .fetch_one(&mut conn)
            .await?;
            Some(Cursor {
                sort: Sort::ExpiringLatest,
                key: expires_at.into(),
                request_id,
                expires_at: expires_at.into(),
            })
        } else {
            None
        };
        let mut server = Vec::new();
        let mut client = Vec::new();
        for i in 0..keyset_reps + 1 {
            let c = cursor.clone();
            let f = filter.clone();
            let table = env.table.clone();
            let conn_ref = &mut conn;
            let (_, s, w) = clock
                .time(async move {
                    records::page(
                        conn_ref,
                        &table,
                        &f,
                        Sort::ExpiringLatest,
                        c.as_ref(),
                        PAGE_ROWS,
                    )
                    .await
                })
                .await?;
            if i > 0 {
                server.push(s);
                client.push(w);
            }
        }
        pages.push(PageMeasure {
            label: format!("{:.0}% depth", depth * 100.0),
            sort: Sort::ExpiringLatest.label().into(),
            method: "keyset".into(),
            depth_rows: k,
            server: Stats::of(&server),
            client: Stats::of(&client),
        });
    }
    // Newest first: created_at has no index in the guide's schema, so the dashboard does not
    // offer it (app::sort_offer); measured to show why.
    let offered = {
        let info = idemtop_core::db::table::resolve(&mut conn, &env.table).await?;
        info.index_leading_with("created_at").is_some()
    };
    let mut server = Vec::new();
    let mut client = Vec::new();
    for i in 0..(if big { 3 } else { 5 }) + 1 {
        let f = filter.clone();
        let table = env.table.clone();
        let conn_ref = &mut conn;
        let (_, s, w) = clock
            .time(async move {
                records::page(conn_ref, &table, &f, Sort::Newest, None, PAGE_ROWS).await
            })
            .await?;
        if i > 0 {
            server.push(s);
            client.push(w);
        }
    }
    pages.push(PageMeasure {
        label: "first page".into(),
        sort: Sort::Newest.label().into(),
        method: if offered {
            "keyset".into()
        } else {
            "not offered (no index on created_at)".into()
        },
        depth_rows: 0,
        server: Stats::of(&server),
        client: Stats::of(&client),
    });
    Ok(PagingReport {
        page_rows: PAGE_ROWS,
        pages,
        keyset_matches_offset: matches,
    })
}
