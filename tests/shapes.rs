//! Table shapes (issue 15): the fixtures of tests/fixtures/shapes loaded on a throwaway server,
//! each detected with its exact mapping; the mapping used as later features will use it (rows in
//! flight, rows past their expiry); `idemtop schema` printed by the real binary, pasted into a
//! config file and read back to the same mapping; the candidate listing; the errors.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use common::*;
use idemtop::config::Config;
use idemtop::db::shape::{self, Detection, Expiry, InFlight, KnownShape, Mapping, MappingSource};
use idemtop::db::table::{self, TableInfo};
use idemtop::ident::{Ident, TableRef};
use sqlx::{Executor, PgConnection};

/// The fixture SQL of a shape (DDL and seed).
fn fixture(shape: &str) -> &'static str {
    match shape {
        "guide" => include_str!("fixtures/shapes/guide.sql"),
        "stripe" => include_str!("fixtures/shapes/stripe.sql"),
        "medusa" => include_str!("fixtures/shapes/medusa.sql"),
        "zero2prod" => include_str!("fixtures/shapes/zero2prod.sql"),
        "idempotence4j" => include_str!("fixtures/shapes/idempotence4j.sql"),
        "nestarc" => include_str!("fixtures/shapes/nestarc.sql"),
        other => panic!("no fixture {other}"),
    }
}

/// Run fixture files in the database at `url`, each `(shape, schema)` in its schema (created if
/// need be): two fixtures may both have a `users` table.
async fn load_into(url: &str, shapes: &[(&str, &str)]) {
    let mut conn = connect(url).await;
    for (s, schema) in shapes {
        let schema = Ident::new(schema).unwrap().quoted();
        conn.execute(
            format!("CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path = {schema}").as_str(),
        )
        .await
        .expect("create the fixture's schema");
        conn.execute(fixture(s))
            .await
            .unwrap_or_else(|e| panic!("load fixture {s}: {e}"));
    }
}

/// A fresh database holding one fixture; its URL.
async fn loaded(shape: &str) -> String {
    let url = fresh_db().await;
    load_into(&url, &[(shape, "public")]).await;
    url
}

fn public(table: &str) -> TableRef {
    TableRef::new("public", table).unwrap()
}

/// The table model and detection, on a new session (so it sees the database's TimeZone).
async fn detect(url: &str, table: &TableRef) -> (TableInfo, Detection) {
    let mut conn = connect(url).await;
    let info = table::resolve(&mut conn, table).await.expect("resolve");
    let d = shape::detect(table.schema.as_str(), table.table.as_str(), &info);
    (info, d)
}

fn mapping(toml_text: &str) -> Mapping {
    toml::from_str(toml_text).expect("a valid mapping")
}

fn q(name: &str) -> String {
    Ident::new(name).unwrap().quoted()
}

async fn count(
    conn: &mut PgConnection,
    table: &TableRef,
    predicate: &str,
    binds: &[String],
) -> i64 {
    let sql = format!(
        "SELECT count(*) FROM {} WHERE {predicate}",
        table.qualified()
    );
    let mut query = sqlx::query_scalar(&sql);
    if !binds.is_empty() {
        query = query.bind(binds.to_vec());
    }
    query.fetch_one(conn).await.expect(&sql)
}

/// Rows in all, in flight, and past their expiry (`None` for a permanent ledger), counted with
/// the mapping as the later features will read it: identifiers quoted, values bound.
async fn figures(url: &str, table: &TableRef, m: &Mapping) -> (i64, i64, Option<i64>) {
    let mut conn = connect(url).await;
    let total = count(&mut conn, table, "true", &[]).await;
    let inflight = match m.inflight().expect("an in-flight rule") {
        InFlight::State { column, done } => {
            count(
                &mut conn,
                table,
                &format!("{}::text <> ALL($1)", q(column)),
                done,
            )
            .await
        }
        InFlight::NullPayload { column } | InFlight::CompletedAt { column } => {
            count(&mut conn, table, &format!("{} IS NULL", q(column)), &[]).await
        }
    };
    let expired = match m.expiry().expect("an expiry") {
        Expiry::Column(c) => {
            Some(count(&mut conn, table, &format!("{} <= now()", q(c)), &[]).await)
        }
        Expiry::Ttl { created, ttl } => Some(
            count(
                &mut conn,
                table,
                &format!(
                    "{} < now() - make_interval(secs => {})",
                    q(created),
                    ttl.as_secs()
                ),
                &[],
            )
            .await,
        ),
        Expiry::Permanent => None,
    };
    (total, inflight, expired)
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A new empty directory under the temp dir (removed by [`TempDir`]'s drop).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let p = std::env::temp_dir().join(format!(
            "idemtop-shapes-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &std::path::Path {
        &self.0
    }
    fn s(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary, with no configuration file of the machine's in the way.
fn run(args: &[&str], config_home: &TempDir) -> (i32, String, String) {
    idemtop(args, &[("XDG_CONFIG_HOME", config_home.s())])
}

/// `idemtop schema --table T` printed by the real binary, pasted into a config file and loaded
/// back: the same mapping, effective from the config, and the binary says the config fits.
/// The JSON form carries the same shape and mapping.
async fn round_trip(url: &str, table: &TableRef, d: &Detection, info: &TableInfo) {
    let home = TempDir::new();
    let name = table.table.as_str();
    let (code, out, err) = run(&["--database-url", url, "schema", "--table", name], &home);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[[table]]\nschema = \"public\"\n"), "{out}");
    let file = home.path().join("pasted.toml");
    std::fs::write(&file, &out).unwrap();
    let config = Config::load_file(&file).unwrap_or_else(|e| panic!("{e:#}\n{out}"));
    assert_eq!(config.tables.len(), 1);
    assert_eq!(config.tables[0].table, name);
    assert_eq!(config.tables[0].mapping, d.mapping, "{out}");
    let eff = shape::effective(&config.tables, table, info).expect("the pasted mapping fits");
    assert_eq!(eff.source, MappingSource::Config);
    assert_eq!(eff.mapping, d.mapping);

    let file_arg = file.to_str().unwrap();
    let (code, out, err) = run(
        &[
            "--database-url",
            url,
            "--config",
            file_arg,
            "schema",
            "--table",
            name,
        ],
        &home,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "# Note: the config file already maps public.{name} (the same mapping as detected); \
             it fits the table, and idemtop uses it."
        )),
        "{out}"
    );

    let (code, out, err) = run(
        &[
            "--database-url",
            url,
            "schema",
            "--table",
            name,
            "--format",
            "json",
        ],
        &home,
    );
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["shape"].as_str(), d.shape.map(KnownShape::id), "{out}");
    let back: Mapping = serde_json::from_value(doc["mapping"].clone()).unwrap();
    assert_eq!(back, d.mapping);
    assert_eq!(
        doc["toml"].as_str().map(|t| t.contains("[[table]]")),
        Some(true)
    );
}

#[tokio::test]
async fn guide_fixture() {
    let url = loaded("guide").await;
    let t = public("idempotency_records");
    let (info, d) = detect(&url, &t).await;
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
    assert_eq!(d.missing, vec![shape::Role::InFlight]);
    let (total, expired) = {
        let mut conn = connect(&url).await;
        (
            count(&mut conn, &t, "true", &[]).await,
            count(&mut conn, &t, "expires_at <= now()", &[]).await,
        )
    };
    assert_eq!(total, 3000);
    assert!(expired > 1000 && expired < 2000, "{expired}");
    round_trip(&url, &t, &d, &info).await;
}

#[tokio::test]
async fn stripe_fixture() {
    let url = loaded("stripe").await;
    let t = public("idempotency_keys");
    let (info, d) = detect(&url, &t).await;
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
    assert!(
        d.notes.iter().any(|n| n
            == "referenced by public.rides (rides_idempotency_key_id_fkey, \
             ON DELETE SET NULL): deleting a row resets that reference"),
        "{:?}",
        d.notes
    );
    let (total, inflight, stale) = figures(&url, &t, &d.mapping).await;
    assert_eq!((total, inflight), (3000, 300));
    // 100 hours of keys, the reaper's 72 h: 28 % stale, give or take the test's own seconds.
    assert!((830..=842).contains(&stale.unwrap()), "{stale:?}");
    round_trip(&url, &t, &d, &info).await;
}

#[tokio::test]
async fn medusa_fixture() {
    let url = loaded("medusa").await;
    let t = public("idempotency_key");
    let (info, d) = detect(&url, &t).await;
    assert_eq!(d.shape, Some(KnownShape::Medusa));
    assert_eq!(
        d.mapping,
        mapping(
            r#"key = ["idempotency_key"]
               created = "created_at"
               permanent = true
               status = "response_code"
               payload = "response_body"
               operation = ["request_method", "request_path"]
               inflight_column = "recovery_point"
               done_values = ["finished"]
               locked_at = "locked_at""#
        )
    );
    assert!(d.missing.is_empty(), "{:?}", d.missing);
    let (total, inflight, expired) = figures(&url, &t, &d.mapping).await;
    assert_eq!((total, inflight, expired), (2500, 208, None));
    round_trip(&url, &t, &d, &info).await;
}

#[tokio::test]
async fn zero2prod_fixture() {
    let url = loaded("zero2prod").await;
    let t = public("idempotency");
    let (info, d) = detect(&url, &t).await;
    assert_eq!(d.shape, Some(KnownShape::Zero2prod));
    assert_eq!(
        d.mapping,
        mapping(
            r#"key = ["user_id", "idempotency_key"]
               created = "created_at"
               permanent = true
               status = "response_status_code"
               payload = "response_body"
               inflight_when_payload_null = true"#
        )
    );
    assert_eq!(d.missing, vec![shape::Role::Operation]);
    let (total, inflight, expired) = figures(&url, &t, &d.mapping).await;
    assert_eq!((total, inflight, expired), (3000, 200, None));
    round_trip(&url, &t, &d, &info).await;
}

#[tokio::test]
async fn idempotence4j_fixture() {
    let url = loaded("idempotence4j").await;
    let t = public("idempotent_action");
    let (info, d) = detect(&url, &t).await;
    assert_eq!(d.shape, Some(KnownShape::Idempotence4j));
    // The fixture set the database's TimeZone: the zone of the timestamp columns is known.
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
    assert_eq!(d.missing, vec![shape::Role::Status]);
    let (total, inflight, stale) = figures(&url, &t, &d.mapping).await;
    assert_eq!((total, inflight), (3000, 100));
    // 1,000 hours of actions, 720 h retention: 28 % past it. Read in Berlin time, as written:
    // a zone mix-up would move the count by 3 per hour of offset.
    assert!((838..=841).contains(&stale.unwrap()), "{stale:?}");
    round_trip(&url, &t, &d, &info).await;
}

#[tokio::test]
async fn nestarc_fixture() {
    let url = loaded("nestarc").await;
    let t = public("idempotency_records");
    let (info, d) = detect(&url, &t).await;
    assert_eq!(d.shape, Some(KnownShape::Nestarc));
    assert_eq!(
        d.mapping,
        mapping(
            r#"key = ["key"]
               expires = "expires_at"
               created = "created_at"
               status = "response_code"
               payload = "response_body"
               inflight_column = "status"
               done_values = ["COMPLETED"]"#
        )
    );
    assert_eq!(d.missing, vec![shape::Role::Operation]);
    let (total, inflight, expired) = figures(&url, &t, &d.mapping).await;
    assert_eq!((total, inflight), (3000, 75));
    assert!((1498..=1502).contains(&expired.unwrap()), "{expired:?}");
    round_trip(&url, &t, &d, &info).await;
}

/// The guide's table made by the embedded migrations, with no configuration at all: detected,
/// and `idemtop schema` with no --table prints its section.
#[tokio::test]
async fn the_migrated_guide_table_needs_no_config() {
    let url = migrated_db().await;
    let t = TableRef::default();
    let (info, d) = detect(&url, &t).await;
    let eff = shape::effective(&[], &t, &info).unwrap();
    assert_eq!(eff.source, MappingSource::Detected);
    assert_eq!(
        eff.detection.as_ref().map(|d| d.shape),
        Some(Some(KnownShape::Guide))
    );
    assert_eq!(eff.mapping, d.mapping);
    assert_eq!(d.mapping.expiry_column(), Some("expires_at"));

    let home = TempDir::new();
    let (code, out, err) = run(&["--database-url", &url, "schema"], &home);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(
        "# public.idempotency_records: recognised as the guide's idempotency_records (migration 045).\n"
    ), "{out}");
    assert!(
        out.contains(
            "table = \"idempotency_records\"\nkey = [\"request_id\"]\nexpires = \"expires_at\"\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("# missing in-flight state: inflight_column = "),
        "{out}"
    );
}

/// No guide-shaped table: `idemtop schema` lists the tables that look like idempotency tables,
/// each with its shape, and leaves the others out (a table referencing the keys, an events
/// table with a payload, the users).
#[tokio::test]
async fn without_a_guide_table_schema_lists_the_candidates() {
    let url = fresh_db().await;
    load_into(
        &url,
        &[
            ("stripe", "public"),
            ("zero2prod", "newsletter"),
            ("idempotence4j", "public"),
        ],
    )
    .await;
    let mut conn = connect(&url).await;
    conn.execute(
        "CREATE SCHEMA billing;
         CREATE TABLE billing.api_requests (request_id uuid PRIMARY KEY, created_at timestamptz NOT NULL,
                                            response_body jsonb, status_code int);
         CREATE TABLE webhook_events (id bigserial PRIMARY KEY, created_at timestamptz, payload jsonb);",
    )
    .await
    .unwrap();
    let home = TempDir::new();
    let (code, out, err) = run(&["--database-url", &url, "schema"], &home);
    assert_eq!(code, 0, "{err}");
    let db = url.rsplit('/').next().unwrap();
    let expected = format!(
        "public.idempotency_records does not exist in database {db}. Tables that look like idempotency tables:

  billing.api_requests      unknown shape  missing expiry, operation, in-flight state (has a key, a creation time and a stored response)
  newsletter.idempotency    zero2prod      missing operation (named like an idempotency table)
  public.idempotency_keys   stripe         nothing missing (named like an idempotency table)
  public.idempotent_action  idempotence4j  missing status (named like an idempotency table)

Print the [[table]] section of one with: idemtop schema --schema SCHEMA --table TABLE
"
    );
    assert_eq!(out, expected);

    let (code, out, err) = run(
        &["--database-url", &url, "schema", "--format", "json"],
        &home,
    );
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let shapes: Vec<(String, Option<String>)> = doc["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                format!(
                    "{}.{}",
                    c["schema"].as_str().unwrap(),
                    c["table"].as_str().unwrap()
                ),
                c["shape"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        shapes,
        [
            ("billing.api_requests".to_owned(), None),
            (
                "newsletter.idempotency".to_owned(),
                Some("zero2prod".to_owned())
            ),
            (
                "public.idempotency_keys".to_owned(),
                Some("stripe".to_owned())
            ),
            (
                "public.idempotent_action".to_owned(),
                Some("idempotence4j".to_owned())
            ),
        ]
    );
    assert_eq!(doc["more"], serde_json::Value::Bool(false));

    // The dashboard says the same before it takes the screen, and exits 1.
    let (code, out, err) = run(&["--database-url", &url], &home);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("public.idempotency_records does not exist in database")
            && err.contains("public.idempotency_keys   stripe         nothing missing")
            && err.contains("Open one with `idemtop --schema S --table T`"),
        "{err}"
    );
}

/// A table named idempotency_records that is not the guide's (nestarc's has the same name) is
/// listed among the candidates rather than taken for the guide's.
#[tokio::test]
async fn a_same_named_table_of_another_shape_is_not_taken_for_the_guides() {
    let url = loaded("nestarc").await;
    let home = TempDir::new();
    let (code, out, err) = run(&["--database-url", &url, "schema"], &home);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(
        "public.idempotency_records is not of the guide's shape (it is @nestarc/idempotency's idempotency_records) in database"
    ), "{out}");
    assert!(out.contains("  public.idempotency_records  nestarc        missing operation (named like an idempotency table)\n"), "{out}");
    // Named explicitly, its section is printed.
    let (code, out, err) = run(
        &[
            "--database-url",
            &url,
            "schema",
            "--table",
            "idempotency_records",
        ],
        &home,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("inflight_column = \"status\"\ndone_values = [\"COMPLETED\"]\n"),
        "{out}"
    );
}

#[tokio::test]
async fn a_missing_table_is_an_error() {
    let url = fresh_db().await;
    let db = url.rsplit('/').next().unwrap().to_owned();
    let home = TempDir::new();
    let (code, out, err) = run(
        &["--database-url", &url, "schema", "--table", "nope"],
        &home,
    );
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.contains(&format!(
            "table public.nope does not exist in database {db}"
        )),
        "{err}"
    );
    // Nothing named, nothing found: an error too, that says how to name the table.
    let (code, _, err) = run(&["--database-url", &url, "schema"], &home);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim_end(),
        format!(
            "idemtop: public.idempotency_records does not exist, and no table in database {db} looks \
             like an idempotency table (none is named like one, none has a key, a creation time and \
             a stored response): name yours with --table (and --schema)"
        )
    );
}

/// A bad `[[table]]` section stops the binary with one readable sentence that names the file,
/// the line, the table and the problem; a section that names a column the table does not have,
/// or one of the wrong type, is refused when it is checked against the table.
#[tokio::test]
async fn a_bad_mapping_config_is_a_readable_error() {
    let url = loaded("stripe").await;
    let home = TempDir::new();
    let file = home.path().join("bad.toml");
    let file_arg = file.to_str().unwrap().to_owned();
    for (text, want) in [
        (
            "refresh_interval_secs = 2\n\n[[table]]\ntable = \"idempotency_keys\"\nkey = [\"id\"]\n\
             expires = \"created_at\"\nttl = \"72h\"\ncreated = \"created_at\"\n",
            "[[table]] public.idempotency_keys: contradictory expiry: expires and ttl are both given",
        ),
        (
            "[[table]]\ntable = \"idempotency_keys\"\nkey = [\"id\"]\nexpirse = \"x\"\n",
            "[[table]] public.idempotency_keys: unknown field `expirse`, expected one of",
        ),
        (
            "[[table]]\ntable = \"t\"\nkey = [\"id\"]\n\n[[table]]\ntable = \"t\"\nkey = [\"id\"]\n",
            "[[table]] public.t is mapped twice: keep one section per table",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let (code, out, err) = run(
            &["--database-url", &url, "--config", &file_arg, "schema"],
            &home,
        );
        assert_eq!((code, out.as_str()), (1, ""), "{text}");
        assert!(err.starts_with(&format!("idemtop: config file {file_arg}")), "{err}");
        assert!(err.contains(want), "{text}\n=> {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // The first error also says where: the line of the [[table]] section.
    std::fs::write(
        &file,
        "refresh_interval_secs = 2\n\n[[table]]\ntable = \"t\"\nkey = [\"k\"]\npermanent = true\nexpires = \"e\"\n",
    )
    .unwrap();
    let err = format!("{:#}", Config::load_file(&file).unwrap_err());
    assert!(
        err.starts_with(&format!("config file {file_arg}, line 3, column 1: ")),
        "{err}"
    );

    // Parses, but does not fit the table.
    std::fs::write(
        &file,
        "[[table]]\ntable = \"idempotency_keys\"\nkey = [\"user_id\", \"idem_key\"]\n\
         expires = \"request_path\"\nstatus = \"response_body\"\ncompleted_at = \"locked_at\"\n",
    )
    .unwrap();
    let config = Config::load_file(&file).unwrap();
    let t = public("idempotency_keys");
    let (info, _) = detect(&url, &t).await;
    assert_eq!(
        shape::effective(&config.tables, &t, &info).unwrap_err(),
        "the [[table]] section for public.idempotency_keys does not fit the table: \
         key: public.idempotency_keys has no column idem_key; \
         expires: public.idempotency_keys.request_path is of type text, not a timestamp; \
         status: public.idempotency_keys.response_body is of type jsonb, not an integer"
    );
    let (code, out, err) = run(
        &[
            "--database-url",
            &url,
            "--config",
            &file_arg,
            "schema",
            "--table",
            "idempotency_keys",
        ],
        &home,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(
        "# Note: the config file already maps public.idempotency_keys (a mapping other than the detected one); \
         it does not fit the table: key: public.idempotency_keys has no column idem_key;"
    ), "{out}");
}

/// The mapping flags are a `[[table]]` section on the command line: the table is read by them
/// (source `config`), and a contradiction is refused in one sentence naming the flags.
#[tokio::test]
async fn the_mapping_flags_map_a_table_without_a_config_file() {
    let url = loaded("stripe").await;
    let home = TempDir::new();
    let flags = [
        "--database-url",
        url.as_str(),
        "--table",
        "idempotency_keys",
        "--key",
        "user_id,idempotency_key",
        "--created",
        "created_at",
        "--ttl",
        "48h",
        "--status",
        "response_code",
        "--payload",
        "response_body",
    ];
    let mut args = flags.to_vec();
    args.extend(["snapshot", "--format", "json"]);
    let (code, out, err) = run(&args, &home);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let m = &doc["mapping"];
    assert_eq!(m["source"], "config", "{m}");
    assert_eq!(m["columns"]["ttl"], "48h", "{m}");
    assert_eq!(
        m["columns"]["key"],
        serde_json::json!(["user_id", "idempotency_key"])
    );
    // No operation flag: the operation role is missing (the section is the whole mapping).
    assert!(
        m["missing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "operation"),
        "{m}"
    );
    // 100 hours of keys, 48 h to live: about 52 % expired, measured on the table itself.
    let mut conn = connect(&url).await;
    let expected: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM idempotency_keys WHERE created_at <= now() - interval '48 hours'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let shown = doc["rows"]["expired"].as_i64().unwrap();
    assert!((shown - expected).abs() <= 5, "{shown} vs {expected}");

    let mut args = flags.to_vec();
    args.extend(["--permanent", "snapshot"]);
    let (code, _, err) = run(&args, &home);
    assert_eq!(code, 1);
    assert!(
        err.contains("the table mapping flags (--key, --expires, --ttl, --permanent"),
        "{err}"
    );
}
