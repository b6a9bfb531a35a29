//! The table-shape fixtures of tests/fixtures/shapes, for the tests that use a mapping
//! (cleanup, panels, checks, records): load one into a fresh database.

use idemtop::ident::Ident;
use sqlx::Executor;

/// The fixtures: (shape, table).
pub const SHAPES: [(&str, &str); 6] = [
    ("guide", "idempotency_records"),
    ("stripe", "idempotency_keys"),
    ("medusa", "idempotency_key"),
    ("zero2prod", "idempotency"),
    ("idempotence4j", "idempotent_action"),
    ("nestarc", "idempotency_records"),
];

/// The fixture SQL of a shape (DDL and seed).
pub fn fixture(shape: &str) -> &'static str {
    match shape {
        "guide" => include_str!("../fixtures/shapes/guide.sql"),
        "stripe" => include_str!("../fixtures/shapes/stripe.sql"),
        "medusa" => include_str!("../fixtures/shapes/medusa.sql"),
        "zero2prod" => include_str!("../fixtures/shapes/zero2prod.sql"),
        "idempotence4j" => include_str!("../fixtures/shapes/idempotence4j.sql"),
        "nestarc" => include_str!("../fixtures/shapes/nestarc.sql"),
        other => panic!("no fixture {other}"),
    }
}

/// A fresh database holding one fixture (in `public`); its URL.
pub async fn loaded_shape(shape: &str) -> String {
    let url = super::fresh_db().await;
    let mut conn = super::connect(&url).await;
    let schema = Ident::new("public").unwrap().quoted();
    conn.execute(format!("SET search_path = {schema}").as_str())
        .await
        .expect("search_path");
    conn.execute(fixture(shape))
        .await
        .unwrap_or_else(|e| panic!("load fixture {shape}: {e}"));
    url
}

/// The table of a shape.
pub fn table_of(shape: &str) -> &'static str {
    SHAPES
        .iter()
        .find(|(s, _)| *s == shape)
        .map(|(_, t)| *t)
        .unwrap_or_else(|| panic!("no fixture {shape}"))
}

/// What a message must never show: a raw sqlx or Rust type name.
pub fn assert_no_raw_types(text: &str) {
    for raw in [
        "ColumnDecode",
        "ColumnNotFound",
        "sqlx::",
        "Database(PgDatabaseError",
        "PgDatabaseError",
        "mismatched types",
        "Rust type",
        "panicked",
    ] {
        assert!(!text.contains(raw), "raw type name {raw:?} in: {text}");
    }
}
