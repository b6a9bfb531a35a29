//! Unit tests of the records module.

use super::*;

#[test]
fn status_classes() {
    assert_eq!(StatusClass::of(Some(200)), StatusClass::Success);
    assert_eq!(StatusClass::of(Some(299)), StatusClass::Success);
    assert_eq!(StatusClass::of(Some(301)), StatusClass::Redirect);
    assert_eq!(StatusClass::of(Some(404)), StatusClass::ClientError);
    assert_eq!(StatusClass::of(Some(599)), StatusClass::ServerError);
    for other in [None, Some(0), Some(102), Some(199), Some(600), Some(-1)] {
        assert_eq!(StatusClass::of(other), StatusClass::Other, "{other:?}");
    }
    assert_eq!(StatusClass::Success.label(), "2xx");
    assert_eq!(StatusClass::Other.label(), "other");
}

#[test]
fn utf8_head_cuts_on_a_char_boundary() {
    let euro = "€€".as_bytes().to_vec(); // 6 bytes
    assert_eq!(utf8_head(euro[..5].to_vec()), ("€".to_string(), 3));
    assert_eq!(utf8_head(euro.clone()), ("€€".to_string(), 6));
    assert_eq!(utf8_head(Vec::new()), (String::new(), 0));
    // Invalid inside, incomplete at the end.
    let mut bad = vec![b'a', 0xff, b'b'];
    bad.extend_from_slice(&"€".as_bytes()[..2]);
    let (s, n) = utf8_head(bad);
    assert_eq!(s, "a\u{FFFD}b");
    assert_eq!(n, 3);
}

#[test]
fn page_sql_is_keyset_with_bound_values() {
    let t = TableRef::new("s", "t\"; DROP TABLE x; --").unwrap();
    let c = Cursor {
        sort: Sort::ExpiringLatest,
        key: Ts::Infinity,
        request_id: Uuid::nil(),
        expires_at: Ts::Infinity,
    };
    let f = RecordFilter {
        operation: Some("o'; DROP TABLE x; --".into()),
        status: Some(StatusClass::Other),
        liveness: Liveness::Live,
    };
    let q = page_query(&t, &f, Sort::ExpiringLatest, Some(&c), 51);
    assert!(q
        .sql
        .contains("(expires_at, request_id) < ($1::timestamptz, $2::uuid)"));
    assert!(q
        .sql
        .ends_with("ORDER BY expires_at DESC, request_id DESC LIMIT $4"));
    assert!(!q.sql.contains("o'"));
    assert!(q.sql.contains(r#"FROM "s"."t""; DROP TABLE x; --""#));
    assert_eq!(q.binds.len(), 4);
}

#[test]
fn sorts_cycle() {
    let mut s = Sort::Newest;
    for _ in 0..4 {
        s = s.next();
    }
    assert_eq!(s, Sort::Newest);
}
