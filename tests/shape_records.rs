//! Records of every table shape by its mapped key (issue 15): every row listed exactly once in
//! keyset order of the key (whatever its types: uuid, text, bigint, composite), each looked up
//! again by the key as the operator would type it at `/`, newest first only where an index
//! serves it (and the reason where none does).

mod common;

use std::collections::BTreeSet;

use common::shapes::*;
use common::*;
use idemtop::db::records::{self, MappedSort};
use idemtop::db::snapshot::TableMapping;
use idemtop::db::table;
use idemtop::ident::TableRef;

async fn all_rows(shape: &str, sort: MappedSort) -> (Vec<records::MappedRow>, i64) {
    let url = loaded_shape(shape).await;
    let t = TableRef::new("public", table_of(shape)).unwrap();
    let mut conn = connect(&url).await;
    let info = table::resolve(&mut conn, &t).await.unwrap();
    let tm = TableMapping::resolve(&[], &t, &info);
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", t.qualified()))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let mut rows = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = records::mapped_page(&mut conn, &t, &info, &tm, sort, after.as_ref(), 700)
            .await
            .unwrap_or_else(|e| panic!("{shape}: {e:#}"));
        pages += 1;
        rows.extend(page.rows);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
        assert!(pages < 100, "{shape}: the pages never end");
    }
    // Every row, once.
    let keys: BTreeSet<String> = rows.iter().map(|r| r.key.to_string()).collect();
    assert_eq!(keys.len(), rows.len(), "{shape}: a row listed twice");
    assert_eq!(
        rows.len() as i64,
        total,
        "{shape}: rows missing from the pages"
    );
    // Each looked up again by its key as typed.
    let cols = records::key_columns(&tm, &info).unwrap();
    for r in rows.iter().step_by(97) {
        let typed = r.key.to_string();
        let key = records::parse_key(&typed, &cols).unwrap_or_else(|e| panic!("{typed}: {e}"));
        let rec = records::mapped_get(&mut conn, &t, &info, &tm, &key, 64)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{shape}: {typed} not found"));
        assert_eq!(rec.row, *r, "{shape}");
        if let (Some(p), Some(bytes)) = (&rec.payload, rec.row.payload_bytes) {
            assert!(p.len() as i64 <= 64 && p.len() as i64 + rec.payload_truncated_bytes == bytes);
        }
    }
    (rows, total)
}

#[tokio::test]
async fn every_shape_pages_by_its_key_and_looks_each_key_up() {
    for (shape, _) in SHAPES {
        let (rows, total) = all_rows(shape, MappedSort::Key).await;
        assert!(total >= 2500, "{shape}");
        // In flight where the shape has a state, never where it has none.
        let inflight = rows.iter().filter(|r| r.in_flight == Some(true)).count();
        match shape {
            "guide" => assert!(rows.iter().all(|r| r.in_flight.is_none())),
            _ => assert!(inflight > 0, "{shape}: the fixture has keys in flight"),
        }
        if shape == "zero2prod" || shape == "stripe" {
            // Composite keys in the key's order (the first column's type decides, not text).
            assert!(rows.iter().all(|r| r.key.0.len() == 2), "{shape}");
        }
    }
}

#[tokio::test]
async fn lookups_refuse_what_is_not_the_key_with_the_reason() {
    let url = loaded_shape("stripe").await;
    let t = TableRef::new("public", "idempotency_keys").unwrap();
    let mut conn = connect(&url).await;
    let info = table::resolve(&mut conn, &t).await.unwrap();
    let tm = TableMapping::resolve(&[], &t, &info);
    let cols = records::key_columns(&tm, &info).unwrap();
    let err = records::parse_key("not-a-user,abc", &cols).unwrap_err();
    assert!(err.contains("user_id is an integer"), "{err}");
    let err = records::parse_key("17", &cols).unwrap_err();
    assert!(err.contains("(user_id, idempotency_key)"), "{err}");
    let missing = records::parse_key("17,no-such-key", &cols).unwrap();
    assert!(records::mapped_get(&mut conn, &t, &info, &tm, &missing, 64)
        .await
        .unwrap()
        .is_none());
    // No index on created_at: newest first is not offered, and says why.
    let sorts = records::sorts(&tm, &info);
    let newest = sorts
        .iter()
        .find(|(s, _)| *s == MappedSort::Newest)
        .unwrap();
    let why = newest.1.clone().unwrap_err();
    assert!(why.contains("no index leads with created_at"), "{why}");
    let err = records::mapped_page(&mut conn, &t, &info, &tm, MappedSort::Newest, None, 10)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("not offered"), "{err:#}");
}

#[tokio::test]
async fn newest_first_where_an_index_leads_with_the_creation_column() {
    // idempotence4j indexes created_at.
    let (rows, _) = all_rows("idempotence4j", MappedSort::Newest).await;
    assert!(rows.windows(2).all(|w| w[0].created_at >= w[1].created_at));
}
