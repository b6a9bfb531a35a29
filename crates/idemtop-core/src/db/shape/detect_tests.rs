//! Detection on hand-built table models.

use super::*;
use crate::db::session::{SessionZone, ZoneSource};
use crate::db::table::{Reference, TableInfo};

/// A column from a short type name: the kind follows from it.
fn col(name: &str, ty: &str, not_null: bool) -> Column {
    let kind = match ty {
        "timestamptz" => ColumnKind::Timestamptz,
        "timestamp" => ColumnKind::Timestamp,
        "uuid" => ColumnKind::Uuid,
        "text" | "varchar" => ColumnKind::Text,
        "int" | "bigint" | "smallint" => ColumnKind::Integer,
        "bytea" => ColumnKind::Bytea,
        "jsonb" => ColumnKind::Json,
        _ => ColumnKind::Other,
    };
    Column {
        name: name.into(),
        type_name: ty.into(),
        kind,
        not_null,
    }
}

fn table(columns: Vec<Column>, pk: &[&str], unique: &[&[&str]]) -> TableInfo {
    TableInfo {
        oid: 1,
        partitioned: false,
        owner: "app".into(),
        database: "app".into(),
        server_version: "16.4".into(),
        server_version_num: 160004,
        in_recovery: false,
        zone: SessionZone {
            zone: "UTC".into(),
            source: ZoneSource::BuiltIn,
        },
        columns,
        primary_key: v(pk),
        unique_keys: unique.iter().map(|k| v(k)).collect(),
        partitioning: None,
        indexes: Vec::new(),
        referenced_by: Vec::new(),
    }
}

fn guide() -> TableInfo {
    table(
        vec![
            col("request_id", "uuid", true),
            col("operation", "varchar", true),
            col("result_payload", "text", true),
            col("status_code", "int", false),
            col("created_at", "timestamptz", true),
            col("expires_at", "timestamptz", true),
        ],
        &["request_id"],
        &[],
    )
}

fn mapping(toml_text: &str) -> Mapping {
    toml::from_str(toml_text).expect("a valid mapping")
}

#[test]
fn the_guide_table_is_recognised_with_its_expiry_column() {
    let d = detect("public", "idempotency_records", &guide());
    assert_eq!(d.shape, Some(KnownShape::Guide));
    assert_eq!(
        d.mapping,
        mapping(
            r#"key = ["request_id"]
               expires = "expires_at"
               created = "created_at"
               status = "status_code"
               payload = "result_payload"
               operation = ["operation"]"#
        )
    );
    assert_eq!(d.missing, vec![Role::InFlight]);
}

#[test]
fn a_key_unique_only_with_the_partition_key_is_noted() {
    let mut info = guide();
    info.primary_key = v(&["request_id", "expires_at"]);
    info.partitioned = true;
    let d = detect("public", "idempotency_records", &info);
    assert_eq!(d.shape, Some(KnownShape::Guide));
    assert_eq!(d.mapping.key_columns(), ["request_id"]);
    assert!(d.notes.iter().any(|n| n
        == "(request_id) is unique only together with the other columns of (request_id, expires_at): \
            two rows may share a key"), "{:?}", d.notes);
}

#[test]
fn stripe_style_gets_a_ttl_its_unique_key_and_the_reference_noted() {
    let mut info = table(
        vec![
            col("id", "bigint", true),
            col("created_at", "timestamptz", true),
            col("idempotency_key", "text", true),
            col("last_run_at", "timestamptz", true),
            col("locked_at", "timestamptz", false),
            col("request_method", "text", true),
            col("request_params", "jsonb", true),
            col("request_path", "text", true),
            col("response_code", "int", false),
            col("response_body", "jsonb", false),
            col("recovery_point", "text", true),
            col("user_id", "bigint", true),
        ],
        &["id"],
        &[&["user_id", "idempotency_key"]],
    );
    info.referenced_by.push(Reference {
        table: "public.rides".into(),
        constraint: "rides_idempotency_key_id_fkey".into(),
        on_delete: OnDelete::SetNull,
    });
    let d = detect("public", "idempotency_keys", &info);
    assert_eq!(d.shape, Some(KnownShape::Stripe));
    assert_eq!(
        d.mapping,
        mapping(
            r#"key = ["user_id", "idempotency_key"]
               created = "created_at"
               ttl = "72h"
               status = "response_code"
               payload = "response_body"
               operation = ["request_method", "request_path"]
               inflight_column = "recovery_point"
               done_values = ["finished"]
               locked_at = "locked_at""#
        )
    );
    assert!(d.missing.is_empty(), "{:?}", d.missing);
    assert!(d.notes.iter().any(|n| n.contains(
        "referenced by public.rides (rides_idempotency_key_id_fkey, ON DELETE SET NULL)"
    )));
    assert!(!d
        .notes
        .iter()
        .any(|n| n.contains("two rows may share a key")));
}

#[test]
fn timestamps_without_zone_take_a_known_zone_or_miss_it() {
    let cols = vec![
        col("key", "text", true),
        col("type", "text", true),
        col("client", "text", true),
        col("created_at", "timestamp", true),
        col("last_run_at", "timestamp", false),
        col("completed_at", "timestamp", false),
        col("result", "bytea", false),
        col("result_type", "varchar", false),
    ];
    let mut info = table(cols, &["key", "type", "client"], &[]);
    info.zone = SessionZone {
        zone: "Europe/Berlin".into(),
        source: ZoneSource::Database,
    };
    let d = detect("public", "idempotent_action", &info);
    assert_eq!(d.shape, Some(KnownShape::Idempotence4j));
    assert_eq!(
        d.mapping,
        mapping(
            r#"key = ["key", "type", "client"]
               created = "created_at"
               ttl = "30d"
               payload = "result"
               operation = ["type", "client"]
               completed_at = "completed_at"
               timestamp_zone = "Europe/Berlin""#
        )
    );
    assert_eq!(d.missing, vec![Role::Status]);

    info.zone.source = ZoneSource::Guessed;
    let d = detect("public", "idempotent_action", &info);
    assert_eq!(d.mapping.timestamp_zone(), None);
    assert_eq!(d.missing, vec![Role::Status, Role::Zone]);
}

#[test]
fn zero2prod_before_its_in_flight_migration_has_no_in_flight_state() {
    let info = table(
        vec![
            col("user_id", "uuid", true),
            col("idempotency_key", "text", true),
            col("response_status_code", "smallint", true),
            col("response_headers", "header_pair[]", true),
            col("response_body", "bytea", true),
            col("created_at", "timestamptz", true),
        ],
        &["user_id", "idempotency_key"],
        &[],
    );
    let d = detect("public", "idempotency", &info);
    assert_eq!(d.shape, Some(KnownShape::Zero2prod));
    assert_eq!(d.mapping.inflight(), None);
    assert_eq!(d.missing, vec![Role::Operation, Role::InFlight]);
    assert_eq!(d.mapping.expiry(), Some(&Expiry::Permanent));
}

#[test]
fn a_role_is_filled_only_by_a_column_of_a_fitting_type() {
    let info = table(
        vec![
            col("idem_key", "text", true),
            col("createdAt", "timestamptz", true),
            col("expires_at", "bigint", true),
            col("status_code", "text", false),
            col("response", "jsonb", false),
            col("state", "text", true),
        ],
        &["idem_key"],
        &[],
    );
    let d = detect("public", "api_idem", &info);
    assert_eq!(d.shape, None);
    assert_eq!(
        d.mapping,
        mapping(
            r#"key = ["idem_key"]
               created = "createdAt"
               payload = "response""#
        )
    );
    assert_eq!(
        d.missing,
        vec![Role::Expiry, Role::Status, Role::Operation, Role::InFlight]
    );
    let notes = d.notes.join("\n");
    assert!(
        notes.contains("expires_at looks like the expiry but is of type bigint, not a timestamp"),
        "{notes}"
    );
    assert!(
        notes.contains("status_code looks like the status code but is of type text"),
        "{notes}"
    );
    assert!(notes.contains("state may be an in-flight state"), "{notes}");
}

#[test]
fn a_near_miss_of_a_known_shape_says_what_differs() {
    let mut info = guide();
    info.columns[0] = col("request_id", "text", true);
    let d = detect("public", "idempotency_records", &info);
    assert_eq!(d.shape, None);
    assert!(d.notes.iter().any(|n| n.contains(
        "resembles the guide's idempotency_records (migration 045) but its request_id is of type text, not a uuid"
    )), "{:?}", d.notes);
    // Still mapped, by names: request_id is named like a key and is the primary key.
    assert_eq!(d.mapping.key_columns(), ["request_id"]);
    assert_eq!(d.mapping.expiry_column(), Some("expires_at"));
}

#[test]
fn a_table_without_any_key_misses_it_and_says_which_column_looks_like_one() {
    let info = table(
        vec![
            col("idempotency_key", "text", true),
            col("created_at", "timestamptz", true),
        ],
        &[],
        &[],
    );
    let d = detect("s", "t", &info);
    assert_eq!(d.missing.first(), Some(&Role::Key));
    assert!(d.notes.iter().any(|n| n.contains(
        "idempotency_key looks like the key, but no primary key or unique constraint covers it"
    )));
}

#[test]
fn names_are_normalised_for_the_heuristics() {
    assert_eq!(norm("createdAt"), "createdat");
    assert_eq!(norm("CREATED_AT"), "createdat");
    assert_eq!(norm("response-body"), "responsebody");
}
