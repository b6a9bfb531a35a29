//! Unit tests of the exposition format and of the HTTP routing; the server itself is tested
//! over real sockets in tests/checks.rs and tests/prometheus.rs.

use super::http::{route, Route};
use super::render::*;
use hyper::Method;

#[test]
fn escapes_labels() {
    assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    // No raw control character reaches a terminal running `curl /metrics`.
    let hostile = escape_label("op\u{1b}]52;c;aGk=\u{7}\r\u{9b}x");
    assert!(!hostile.chars().any(char::is_control), "{hostile:?}");
}

#[test]
fn down_is_up_zero() {
    let text = render(None, None, 0.5);
    assert!(text.contains("\nidemtop_up 0\n"), "{text}");
    assert!(text.contains("\nidemtop_table_locked 0\n"), "{text}");
    assert!(text.contains("idemtop_scrape_duration_seconds 0.5"));
}

#[test]
fn locked_is_up_but_serves_no_figure() {
    let lock = crate::db::locks::TableLock {
        relation: "idempotency_records".into(),
        mode: "AccessExclusiveLock".into(),
        granted: true,
        pid: 4242,
        user: Some("alice".into()),
        application: Some("psql".into()),
        client: None,
        state: Some("idle in transaction".into()),
        xact_secs: Some(30.0),
        query: Some("LOCK TABLE idempotency_records".into()),
        waiting: 3,
        seen_at: chrono::Utc::now(),
    };
    let text = render(None, Some(&lock), 0.1);
    assert!(text.contains("\nidemtop_up 1\n"), "{text}");
    assert!(text.contains("\nidemtop_table_locked 1\n"), "{text}");
    assert!(
        text.contains("\nidemtop_table_lock_waiting_sessions 3\n"),
        "{text}"
    );
    assert!(
        !text.contains("idemtop_rows{"),
        "no figure under a lock: {text}"
    );
    assert!(!text.contains("idemtop_size_bytes{"), "{text}");
}

#[test]
fn a_fleet_answer_has_each_family_once_and_every_sample_labelled() {
    let snap = crate::fixtures::snapshot(0, 1000);
    let a = render_target(Some("orders"), Some((&snap, &[])), None, 0.2);
    let b = render_target(Some("we\"ird\u{1b}"), None, None, 0.3);
    let text = merge([&a, &b]);
    for name in [
        "idemtop_up",
        "idemtop_rows",
        "idemtop_scrape_duration_seconds",
    ] {
        assert_eq!(
            text.matches(&format!("# TYPE {name} ")).count(),
            1,
            "{name} once in\n{text}"
        );
    }
    assert!(
        text.contains("\nidemtop_up{target=\"orders\"} 1\nidemtop_up{target=\"we\\\"ird"),
        "{text}"
    );
    assert!(
        text.contains("idemtop_rows{target=\"orders\",state=\"live\"} "),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text}");
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.starts_with("idemtop_"), "{line}");
        assert!(line.contains("{target=\""), "every sample labelled: {line}");
    }
    // The families of a scrape come in one block each: a sample never follows another
    // family's HELP.
    let mut seen = Vec::new();
    for line in text.lines() {
        let name = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
            .unwrap_or(line)
            .split(['{', ' '])
            .next()
            .unwrap();
        if seen.last() != Some(&name) {
            assert!(!seen.contains(&name), "{name} split in\n{text}");
            seen.push(name);
        }
    }
    // Unlabelled, as before fleets.
    assert!(render(None, None, 0.5).contains("\nidemtop_up 0\n"));
}

#[test]
fn routes() {
    let get = Method::GET;
    assert_eq!(route(&get, "/metrics", None), Route::Metrics);
    assert_eq!(route(&get, "/metrics", Some("x=1")), Route::Metrics);
    assert_eq!(route(&Method::HEAD, "/metrics", None), Route::Metrics);
    assert_eq!(
        route(&Method::POST, "/metrics", None),
        Route::MethodNotAllowed
    );
    assert_eq!(
        route(&Method::DELETE, "/probe", None),
        Route::MethodNotAllowed
    );
    assert_eq!(route(&Method::POST, "/", None), Route::NotFound);
    assert_eq!(route(&get, "/", None), Route::NotFound);
    assert_eq!(route(&get, "/metrics/", None), Route::NotFound);
    assert_eq!(
        route(&get, "/probe", Some("module=x&target=billing%2Deu")),
        Route::Probe("billing-eu".into())
    );
    assert_eq!(
        route(&get, "/probe", Some("target=a+b%1b")),
        Route::Probe("a b\u{1b}".into())
    );
    assert_eq!(route(&get, "/probe", None), Route::ProbeWithoutTarget);
    assert_eq!(
        route(&get, "/probe", Some("target=")),
        Route::ProbeWithoutTarget
    );
}
