//! Every table shape through the real binary (issue 15): `snapshot` (text and JSON) and `check`
//! (exit code and JSON) read each fixture by its mapping. What needs no mapped column (sizes,
//! vacuum, indexes, grants) is always there; what needs a role the table lacks says
//! "n/a: no <role> column (map one in config)" and is not counted; the mapping's message names
//! the table and what is missing; no raw type names, no query errors.

mod common;

use common::shapes::*;
use common::*;
use serde_json::Value;

fn run(url: &str, table: &str, args: &[&str]) -> (i32, String, String) {
    let home = std::env::temp_dir().join(format!("idemtop-shape-panels-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&home);
    let mut all = vec!["--database-url", url, "--table", table];
    all.extend_from_slice(args);
    idemtop(&all, &[("XDG_CONFIG_HOME", home.to_str().unwrap())])
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// What every shape's snapshot and check must show.
async fn panels(shape: &str) -> (Value, Value, i32, String) {
    let url = loaded_shape(shape).await;
    let table = table_of(shape);

    let (code, out, err) = run(&url, table, &["snapshot"]);
    if std::env::var_os("SHOW_OUTPUT").is_some() {
        let (_, check, _) = run(&url, table, &["check"]);
        eprintln!("{shape} snapshot:\n{err}{out}\n{shape} check:\n{check}");
    }
    assert_eq!(code, 0, "{shape}: {err}");
    assert!(out.contains("size     total"), "{shape}: {out}");
    assert!(out.contains("vacuum   live tuples"), "{shape}: {out}");
    assert!(out.contains("indexes"), "{shape}: {out}");
    assert!(!out.contains("column \""), "{shape}: {out}");
    assert_no_raw_types(&out);
    assert_no_raw_types(&err);
    if shape == "guide" {
        assert!(err.is_empty(), "the guide's table needs no words: {err}");
    } else {
        assert!(err.contains(&format!("public.{table}")), "{shape}: {err}");
    }

    let (code, out, err) = run(&url, table, &["snapshot", "--format", "json"]);
    assert_eq!(code, 0, "{shape}: {err}");
    let snap = json(&out);
    assert!(
        snap["sizes"]["total_bytes"].as_i64().unwrap() > 0,
        "{shape}"
    );
    assert!(snap["mapping"]["message"].as_str().unwrap().contains(table));
    assert!(snap["mapping"]["missing"].is_array());

    let (check_code, out, err) = run(&url, table, &["check", "--format", "json"]);
    assert_no_raw_types(&out);
    assert_no_raw_types(&err);
    let check = json(&out);
    assert!(check["mapping"]["message"].is_string(), "{shape}: {out}");
    // The exit code is the worst counted level; n/a checks never count.
    let worst = check["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["pending"] == false && c["not_applicable"] == false)
        .map(|c| match c["level"].as_str().unwrap() {
            "critical" => 2,
            "warning" => 1,
            "unknown" => 3,
            _ => 0,
        })
        .max_by_key(|l| match l {
            3 => 1,
            1 => 2,
            2 => 3,
            _ => 0,
        })
        .unwrap_or(0);
    assert_eq!(check_code, worst, "{shape}: {out}");
    for c in check["checks"].as_array().unwrap() {
        if c["not_applicable"] == true {
            assert_eq!(c["value"], "n/a", "{shape}: {c}");
            assert!(c["detail"].as_str().unwrap().starts_with("n/a: "), "{c}");
        }
        // No check fails on a column the table lacks.
        let detail = c["detail"].as_str().unwrap();
        assert!(!detail.contains("column \""), "{shape}: {c}");
    }
    let (code, text, _) = run(&url, table, &["check"]);
    assert_eq!(code, check_code, "{shape}: {text}");
    assert!(!text.is_empty(), "{shape}: check prints its status");
    (snap, check, check_code, text)
}

fn check<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}: {doc}"))
}

#[tokio::test]
async fn the_guides_table_reads_as_before() {
    let (snap, doc, _, _) = panels("guide").await;
    assert_eq!(snap["mapping"]["shape"], "guide");
    assert!(snap["rows"]["expired"].as_i64().unwrap() > 1000);
    assert_eq!(snap["operations"].as_array().unwrap().len(), 4);
    for id in [
        "cleanup_lag",
        "expired_backlog",
        "cached_failures",
        "retention",
    ] {
        assert_eq!(check(&doc, id)["not_applicable"], false, "{id}");
    }
}

#[tokio::test]
async fn stripe_keys_expire_by_their_ttl_and_update_is_expected() {
    let (snap, doc, _, _) = panels("stripe").await;
    assert_eq!(snap["mapping"]["shape"], "stripe");
    // 72 h of 100 hours of keys: about 28 % expired.
    let expired = snap["rows"]["expired"].as_i64().unwrap();
    assert!((700..1000).contains(&expired), "{expired}");
    assert_eq!(snap["operations"][0]["operation"], "POST /rides");
    assert_eq!(check(&doc, "grants")["level"], "ok");
    assert_eq!(check(&doc, "cleanup_function")["not_applicable"], true);
    // One TTL for every row (the mapping's): nothing per row to hold against a policy.
    let r = check(&doc, "retention");
    assert_eq!(r["not_applicable"], true, "{r}");
    assert!(r["detail"].as_str().unwrap().contains("ttl = 72h"), "{r}");
    assert!(snap["mapping"]["cleanup_rule"]
        .as_str()
        .unwrap()
        .contains("never a row in flight"));
    assert_eq!(snap["mapping"]["referenced_by"][0]["table"], "public.rides");
}

#[tokio::test]
async fn grants_are_judged_by_shape_update_expected_on_a_state_machine() {
    use sqlx::Executor;
    let role = format!("api_{}", std::process::id());
    for (shape, level, value) in [
        ("stripe", "ok", "UPDATE expected"),
        ("guide", "critical", ""),
    ] {
        let url = loaded_shape(shape).await;
        let table = table_of(shape);
        let mut conn = connect(&url).await;
        conn.execute(
            format!(
                "DO $$ BEGIN CREATE ROLE {role}; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
                 GRANT SELECT, INSERT, UPDATE, DELETE ON public.{table} TO {role}"
            )
            .as_str(),
        )
        .await
        .unwrap();
        let (_, out, _) = run(&url, table, &["check", "--format", "json"]);
        let doc = json(&out);
        let g = check(&doc, "grants");
        assert_eq!(g["level"], level, "{shape}: {g}");
        if shape == "stripe" {
            assert_eq!(g["value"], value);
            assert!(
                g["detail"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("UPDATE: {role}")),
                "{g}"
            );
        } else {
            assert!(
                g["advice"].as_str().unwrap().contains("REVOKE UPDATE"),
                "{g}"
            );
        }
    }
}

#[tokio::test]
async fn keys_in_flight_by_state_with_the_oldest_and_the_stuck() {
    let url = loaded_shape("stripe").await;
    let (code, out, err) = run(&url, "idempotency_keys", &["snapshot", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let f = &json(&out)["inflight"];
    // One key in ten is in flight (locked, no response), spread over 100 hours.
    assert_eq!(f["in_flight"], 300, "{f}");
    assert_eq!(f["stuck_by"], "locked_at");
    assert!(f["stuck"].as_i64().unwrap() >= 295, "{f}");
    assert!(
        f["oldest_age_secs"].as_f64().unwrap() > 99.0 * 3600.0,
        "{f}"
    );
    let states: Vec<&str> = f["by_state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert!(
        states.contains(&"finished") && states.contains(&"started"),
        "{states:?}"
    );
    let (_, out, _) = run(&url, "idempotency_keys", &["snapshot"]);
    assert!(out.contains("inflight 300 in flight"), "{out}");
    let (code, out, _) = run(&url, "idempotency_keys", &["check", "--format", "json"]);
    let doc = json(&out);
    let c = check(&doc, "inflight");
    assert_eq!(c["level"], "critical", "{c}");
    assert_eq!(code, 2);
    // A higher threshold: nothing is stuck that long.
    let home = std::env::temp_dir().join(format!("idemtop-inflight-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let cfg = home.join("c.toml");
    std::fs::write(
        &cfg,
        "[thresholds.inflight]\nstuck_after_secs = 1000000.0\n",
    )
    .unwrap();
    let (_, out, err) = run(
        &url,
        "idempotency_keys",
        &[
            "--config",
            cfg.to_str().unwrap(),
            "check",
            "--format",
            "json",
        ],
    );
    let doc = json(&out);
    assert_eq!(check(&doc, "inflight")["level"], "ok", "{err}");
    // zero2prod: in flight while the response is NULL, aged from its creation.
    let url = loaded_shape("zero2prod").await;
    let (_, out, _) = run(&url, "idempotency", &["snapshot", "--format", "json"]);
    let f = &json(&out)["inflight"];
    assert_eq!(f["in_flight"], 200, "{f}");
    assert_eq!(f["stuck_by"], "created");
    // The guide's table stores finished requests only: nothing is ever in flight.
    let url = loaded_shape("guide").await;
    let (_, out, _) = run(&url, "idempotency_records", &["check", "--format", "json"]);
    let guide = json(&out);
    let c = check(&guide, "inflight");
    assert_eq!(
        (c["level"].as_str(), c["value"].as_str()),
        (Some("ok"), Some("none"))
    );
    // A table with no in-flight state mapped: n/a, not counted.
    let url = loaded_shape("medusa").await;
    let home = std::env::temp_dir().join(format!("idemtop-inflight-na-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let cfg = home.join("c.toml");
    std::fs::write(
        &cfg,
        "[[table]]\ntable = \"idempotency_key\"\nkey = [\"idempotency_key\"]\npermanent = true\n",
    )
    .unwrap();
    let (_, out, _) = run(
        &url,
        "idempotency_key",
        &[
            "--config",
            cfg.to_str().unwrap(),
            "check",
            "--format",
            "json",
        ],
    );
    let doc = json(&out);
    let c = check(&doc, "inflight");
    assert_eq!(c["not_applicable"], true, "{c}");
    assert_eq!(
        c["detail"],
        "n/a: no in-flight state column (map one in config)"
    );
    assert_eq!(doc["mapping"]["source"], "config");
}

#[tokio::test]
async fn a_permanent_ledger_has_nothing_expired_and_refuses_cleanup() {
    let (snap, doc, _, text) = panels("zero2prod").await;
    assert_eq!(snap["rows"]["expired"], 0);
    assert!(snap["mapping"]["cleanup_refused"]
        .as_str()
        .unwrap()
        .contains("permanent ledger"));
    // zero2prod has no operation column: the breakdown is n/a, the figures stand.
    assert!(snap["mapping"]["missing"]
        .as_array()
        .unwrap()
        .contains(&Value::from("operation")));
    assert_eq!(snap["operations"].as_array().unwrap().len(), 0);
    assert_eq!(check(&doc, "retention")["not_applicable"], true);
    assert!(text.contains("n/a"), "{text}");
    let (_, medusa, _, _) = panels("medusa").await;
    assert_eq!(check(&medusa, "grants")["level"], "ok");
}

#[tokio::test]
async fn idempotence4j_has_no_status_and_that_is_not_counted() {
    let (snap, doc, code, _) = panels("idempotence4j").await;
    assert_eq!(snap["mapping"]["shape"], "idempotence4j");
    let c = check(&doc, "cached_failures");
    assert_eq!(c["not_applicable"], true);
    assert_eq!(c["detail"], "n/a: no status column (map one in config)");
    assert_ne!(
        code, 3,
        "an n/a check is not UNKNOWN for the exit code: {doc}"
    );
    // 30 days of 41 days of actions: about 27 % expired.
    let expired = snap["rows"]["expired"].as_i64().unwrap();
    assert!((700..900).contains(&expired), "{expired}");
}

#[tokio::test]
async fn nestarc_reads_its_expiry_column_and_its_status() {
    let (snap, doc, _, _) = panels("nestarc").await;
    assert_eq!(snap["mapping"]["shape"], "nestarc");
    let expired = snap["rows"]["expired"].as_i64().unwrap();
    assert!((1400..1600).contains(&expired), "{expired}");
    assert_eq!(check(&doc, "cleanup_lag")["not_applicable"], false);
    assert_eq!(check(&doc, "grants")["level"], "ok");
}

#[tokio::test]
async fn a_table_with_nothing_recognisable_still_shows_what_needs_no_column() {
    let url = fresh_db().await;
    {
        use sqlx::Executor;
        let mut conn = connect(&url).await;
        conn.execute(
            "CREATE TABLE things (id bigserial PRIMARY KEY, body text);
             INSERT INTO things (body) SELECT 'x' || i FROM generate_series(1, 500) i;",
        )
        .await
        .unwrap();
    }
    let (code, out, err) = run(&url, "things", &["snapshot"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("size     total"), "{out}");
    assert!(
        out.contains("n/a: no expiry column (map one in config)"),
        "{out}"
    );
    assert!(err.contains("Missing:"), "{err}");
    assert_no_raw_types(&out);
    let (code, out, _) = run(&url, "things", &["check", "--format", "json"]);
    let doc = json(&out);
    assert_ne!(code, 3, "{out}");
    assert_eq!(check(&doc, "expired_backlog")["not_applicable"], true);
    assert_eq!(check(&doc, "bloat")["not_applicable"], false);
    let (code, _, err) = run(&url, "things", &["cleanup", "--dry-run"]);
    assert_eq!(code, 1);
    assert!(err.contains("cleanup refused"), "{err}");
}

#[tokio::test]
async fn a_config_section_that_does_not_fit_maps_nothing_and_says_why() {
    let url = loaded_shape("medusa").await;
    let home = std::env::temp_dir().join(format!("idemtop-misfit-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let cfg = home.join("c.toml");
    std::fs::write(
        &cfg,
        "[[table]]\ntable = \"idempotency_key\"\nkey = [\"idempotency_key\"]\nexpires = \"expires_at\"\nstatus = \"response_code\"\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let (code, out, err) = run(
        &url,
        "idempotency_key",
        &["--config", cfg, "snapshot", "--format", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let m = &json(&out)["mapping"];
    assert_eq!(m["source"], Value::Null, "{m}");
    let error = m["error"].as_str().unwrap();
    assert!(error.contains("has no column expires_at"), "{error}");
    assert!(m["cleanup_refused"]
        .as_str()
        .unwrap()
        .contains("does not fit"));
    let (code, text, err) = run(&url, "idempotency_key", &["--config", cfg, "snapshot"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("does not fit the table"), "{err}");
    assert!(text.contains("size     total"), "{text}");
    assert_no_raw_types(&err);
    let (code, _, err) = run(
        &url,
        "idempotency_key",
        &["--config", cfg, "cleanup", "--dry-run"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("cleanup refused"), "{err}");
}
