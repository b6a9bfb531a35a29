//! The `[[table]]` keys of a mapping: reading, writing back, refusing contradictions.

use super::*;
use crate::db::shape::Role;

fn fields(toml_text: &str) -> Result<Mapping, String> {
    toml::from_str::<Mapping>(toml_text).map_err(|e| e.message().to_string())
}

#[test]
fn ttl_reads_units_and_writes_them_back() {
    assert_eq!(parse_ttl("72h"), Ok(Duration::from_secs(72 * 3600)));
    assert_eq!(parse_ttl("30d"), Ok(Duration::from_secs(30 * 86_400)));
    assert_eq!(parse_ttl(" 1h30m "), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_ttl("45s"), Ok(Duration::from_secs(45)));
    for bad in [
        "",
        "72",
        "h",
        "0h",
        "1x",
        "-1h",
        "99999999999999999999d",
        "40000d",
    ] {
        assert!(parse_ttl(bad).is_err(), "{bad}");
    }
    for secs in [45, 5400, 72 * 3600, 86_400, 30 * 86_400, 90 * 60 + 1] {
        let d = Duration::from_secs(secs);
        assert_eq!(parse_ttl(&format_ttl(d)), Ok(d), "{secs}");
    }
    assert_eq!(format_ttl(Duration::from_secs(72 * 3600)), "72h");
    assert_eq!(format_ttl(Duration::from_secs(30 * 86_400)), "30d");
}

#[test]
fn a_full_mapping_round_trips_through_toml() {
    let m = fields(
        r#"key = ["user_id", "idempotency_key"]
           created = "created_at"
           ttl = "72h"
           status = "response_code"
           payload = "response_body"
           operation = ["request_method", "request_path"]
           inflight_column = "recovery_point"
           done_values = ["finished"]
           locked_at = "locked_at""#,
    )
    .unwrap();
    assert_eq!(m.key_columns(), ["user_id", "idempotency_key"]);
    assert_eq!(
        m.expiry(),
        Some(&Expiry::Ttl {
            created: "created_at".into(),
            ttl: Duration::from_secs(72 * 3600)
        })
    );
    assert_eq!(
        m.inflight(),
        Some(&InFlight::State {
            column: "recovery_point".into(),
            done: vec!["finished".into()]
        })
    );
    let text = toml::to_string(&m).unwrap();
    assert_eq!(toml::from_str::<Mapping>(&text).unwrap(), m);
}

#[test]
fn contradictions_are_refused_with_the_keys_named() {
    let cases = [
        (
            r#"key = ["k"]
               expires = "e"
               ttl = "1h"
               created = "c""#,
            "contradictory expiry: expires and ttl are both given",
        ),
        (
            r#"key = ["k"]
            permanent = true
            expires = "e""#,
            "contradictory expiry: expires and permanent",
        ),
        (
            r#"key = ["k"]
            ttl = "1h""#,
            "ttl counts from the creation time",
        ),
        (r#"key = []"#, "key: name the column(s)"),
        (r#"created = "c""#, "key: name the column(s)"),
        (r#"key = ["k", "k"]"#, "key: column \"k\" is named twice"),
        (
            r#"key = ["k"]
            done_values = ["x"]"#,
            "done_values needs the column",
        ),
        (
            r#"key = ["k"]
            inflight_column = "s""#,
            "also say which of its values mean finished",
        ),
        (
            r#"key = ["k"]
            inflight_when_payload_null = true"#,
            "needs the payload column",
        ),
        (
            r#"key = ["k"]
            completed_at = "c"
            inflight_column = "s"
            done_values = ["x"]"#,
            "contradictory in-flight state",
        ),
        (
            r#"key = ["k"]
            expirse = "e""#,
            "unknown field `expirse`",
        ),
        (r#"key = ["k\u001b[2J"]"#, "key: identifier"),
        (
            r#"key = ["k"]
            timestamp_zone = """#,
            "timestamp_zone \"\" is not a time zone name",
        ),
        (
            r#"key = ["k"]
            created = "c"
            ttl = "72""#,
            "ttl: \"72\" needs a unit",
        ),
    ];
    for (text, want) in cases {
        let err = fields(text).unwrap_err();
        assert!(err.contains(want), "{text}\n=> {err}\nwanted {want}");
    }
}

#[test]
fn payload_null_in_flight_names_the_payload() {
    let m = fields(
        r#"key = ["k"]
           payload = "response_body"
           inflight_when_payload_null = true
           permanent = true"#,
    )
    .unwrap();
    assert_eq!(
        m.inflight(),
        Some(&InFlight::NullPayload {
            column: "response_body".into()
        })
    );
    assert_eq!(m.expiry(), Some(&Expiry::Permanent));
    assert!(m.has(Role::Expiry) && !m.has(Role::Status));
}

#[test]
fn inflight_stale_after_needs_a_state_and_a_creation_time_and_round_trips() {
    let m = fields(
        r#"key = ["k"]
           created = "created_at"
           ttl = "72h"
           inflight_column = "recovery_point"
           done_values = ["finished"]
           inflight_stale_after = "24h""#,
    )
    .unwrap();
    assert_eq!(
        m.inflight_stale_after(),
        Some(Duration::from_secs(24 * 3600))
    );
    let back: MappingFields = m.clone().into();
    assert_eq!(back.inflight_stale_after.as_deref(), Some("24h"));
    assert_eq!(Mapping::try_from(back), Ok(m));
    for (text, want) in [
        (
            "key = [\"k\"]\ncreated = \"c\"\ninflight_stale_after = \"24h\"",
            "inflight_stale_after needs an in-flight state",
        ),
        (
            "key = [\"k\"]\ncompleted_at = \"d\"\ninflight_stale_after = \"24h\"",
            "inflight_stale_after counts from the creation time",
        ),
        (
            "key = [\"k\"]\ncreated = \"c\"\ncompleted_at = \"d\"\ninflight_stale_after = \"soon\"",
            "inflight_stale_after: \"soon\"",
        ),
    ] {
        let err = fields(text).unwrap_err();
        assert!(err.contains(want), "{text}\n=> {err}");
    }
}
