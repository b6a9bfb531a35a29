use super::*;

fn global(args: &[&str]) -> Global {
    use clap::Parser;
    let mut all = vec!["idemtop"];
    all.extend_from_slice(args);
    crate::cli::Cli::try_parse_from(all)
        .expect("parse the global flags")
        .global
}

fn config(toml: &str) -> Config {
    Config::from_toml_str(toml, "test.toml").expect("a valid configuration")
}

fn names(t: &[Target]) -> Vec<&str> {
    t.iter().map(|t| t.name.as_str()).collect()
}

#[test]
fn without_targets_the_global_flags_are_the_one_target() {
    let g = global(&[
        "--database-url",
        "postgres://monitor@db1:5433/app",
        "--schema",
        "billing",
        "--table",
        "idem_keys",
        "--statement-timeout",
        "900",
    ]);
    let t = targets(&Config::default(), &g).unwrap();
    assert_eq!(names(&t), ["app/billing.idem_keys"]);
    assert_eq!(t[0].table.to_string(), "billing.idem_keys");
    assert_eq!(t[0].describe(), "monitor@db1:5433/app");
    assert_eq!(t[0].connect.statement_timeout, Duration::from_millis(900));
    // --target may name it; another name is a clear error.
    let g2 = global(&[
        "--database-url",
        "postgres://monitor@db1/app",
        "--target",
        "app/public.idempotency_records",
    ]);
    assert_eq!(targets(&Config::default(), &g2).unwrap().len(), 1);
    let err = targets(&Config::default(), &global(&["--target", "orders"]))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("unknown target \"orders\": the configuration has no [[target]]"),
        "{err}"
    );
    // Database names are not always name-safe.
    let t = TableRef::default();
    assert_eq!(
        implicit_name(Some("postgres://u@h/my%20db%1b"), &t),
        "my_db_/public.idempotency_records"
    );
    assert_eq!(
        implicit_name(Some("postgres://u@h/-x"), &t),
        "tx/public.idempotency_records"
    );
}

const FLEET: &str = r#"
[[target]]
name = "orders"
url = "postgres://monitor@db1.internal/orders"

[[target]]
name = "billing-eu"
url = "postgres://monitor@db2.internal:5433/billing"
schema = "billing"
table = "idem_keys"

[[target]]
name = "local"
"#;

#[test]
fn targets_come_from_the_configuration_in_order() {
    let g = global(&["--read-only", "--statement-timeout", "1234"]);
    let t = targets(&config(FLEET), &g).unwrap();
    assert_eq!(names(&t), ["orders", "billing-eu", "local"]);
    assert_eq!(t[0].describe(), "monitor@db1.internal:5432/orders");
    assert_eq!(t[0].table, TableRef::default());
    assert_eq!(t[1].describe(), "monitor@db2.internal:5433/billing");
    assert_eq!(t[1].table.to_string(), "billing.idem_keys");
    assert_eq!(t[2].connect.url, None, "neither url nor service: PG*");
    for t in &t {
        assert!(t.connect.read_only);
        assert_eq!(t.connect.statement_timeout, Duration::from_millis(1234));
    }
    // The global URL does not replace the configured targets' own.
    let g = global(&["--database-url", "postgres://x@elsewhere/y"]);
    let t = targets(&config(FLEET), &g).unwrap();
    assert_eq!(t[0].describe(), "monitor@db1.internal:5432/orders");
    assert_eq!(t[2].connect.url, None);

    let one = targets(&config(FLEET), &global(&["--target", "billing-eu"])).unwrap();
    assert_eq!(names(&one), ["billing-eu"]);
    let err = targets(&config(FLEET), &global(&["--target", "bill\u{1b}[2J"]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "unknown target \"bill<ESC>[2J\": the configuration's targets are \"orders\", \"billing-eu\", \"local\""
            .replace("<ESC>", &crate::sanitize::line("\u{1b}"))
    );
    assert!(!err.contains('\u{1b}'));
}

#[test]
fn target_gives_one_table_commands_its_connection_and_table() {
    let g = global(&[
        "--database-url",
        "postgres://x@elsewhere/y",
        "--target",
        "billing-eu",
    ]);
    let one = global_for_target(&config(FLEET), &g).unwrap();
    assert_eq!(
        one.database_url.as_deref(),
        Some("postgres://monitor@db2.internal:5433/billing")
    );
    assert_eq!(
        (one.schema.as_str(), one.table.as_str()),
        ("billing", "idem_keys")
    );
    let g = global(&[
        "--database-url",
        "postgres://x@elsewhere/y",
        "--target",
        "local",
    ]);
    assert_eq!(
        global_for_target(&config(FLEET), &g).unwrap().database_url,
        None
    );
    // Without --target: the flags as given.
    let g = global(&["--database-url", "postgres://x@elsewhere/y"]);
    let same = global_for_target(&config(FLEET), &g).unwrap();
    assert_eq!(
        same.database_url.as_deref(),
        Some("postgres://x@elsewhere/y")
    );
    assert!(global_for_target(&config(FLEET), &global(&["--target", "nope"])).is_err());
}

fn config_error(toml: &str) -> String {
    match Config::from_toml_str(toml, "test.toml") {
        Err(e) => e.to_string(),
        Ok(c) => targets(&c, &global(&[]))
            .map(|t| format!("unexpectedly fine: {:?}", names(&t)))
            .unwrap_or_else(|e| e.to_string()),
    }
}

#[test]
fn bad_targets_are_one_readable_error() {
    assert_eq!(
        config_error("[[target]]\nurl = \"postgres://h/db\"\n"),
        "[[target]] number 1: a target needs a name (name = \"...\")"
    );
    assert_eq!(
        config_error("[[target]]\nname = \"a\"\n[[target]]\nname = \"a b\"\n"),
        "[[target]] number 2: target name \"a b\" has the character U+0020: use letters, digits and . _ - : /"
    );
    assert_eq!(
        config_error("[[target]]\nname = \"-a\"\n"),
        "[[target]] number 1: target name \"-a\" must begin with a letter or a digit"
    );
    assert!(
        config_error(&format!("[[target]]\nname = \"{}\"\n", "x".repeat(65)))
            .ends_with("is longer than 64 characters")
    );
    assert_eq!(
        config_error("[[target]]\nname = \"Orders\"\n[[target]]\nname = \"orders\"\n"),
        "target \"orders\": the name is used twice (also by \"Orders\"); target names must be unique"
    );
    assert_eq!(
        config_error("[[target]]\nname = \"a\"\nurl = \"postgres://h/d\"\nservice = \"s\"\n"),
        "target \"a\": give either url or service, not both"
    );
    assert!(
        config_error("[[target]]\nname = \"a\"\ntable = \"\"\n")
            .starts_with("target \"a\": invalid schema or table:"),
        "{}",
        config_error("[[target]]\nname = \"a\"\ntable = \"\"\n")
    );
    let err = config_error("[[target]]\nname = \"a\"\nurl = \"mysql:// secret@x\"\n");
    assert_eq!(
        err,
        "target \"a\": invalid url: expected postgres://user@host[:port]/database"
    );
    // A typo in a key is the configuration's usual error, with its line.
    let err = config_error("[[target]]\nname = \"a\"\nurl = \"postgres://h/d\"\nshema = \"x\"\n");
    assert!(err.starts_with("config file test.toml, line 4"), "{err}");
    assert!(err.contains("unknown field `shema`"), "{err}");
}

#[test]
fn an_undefined_service_names_the_files_searched() {
    let err = config_error("[[target]]\nname = \"a\"\nservice = \"idemtop-no-such-service\"\n");
    assert!(
        err.starts_with(
            "target \"a\": definition of service \"idemtop-no-such-service\" not found (searched "
        ),
        "{err}"
    );
}

#[test]
fn a_service_url_leaves_the_rest_to_the_environment() {
    let o: PgConnectOptions = "postgres:?dbname=x".parse().unwrap();
    let env = PgConnectOptions::new_without_pgpass();
    assert_eq!(o.get_host(), env.get_host());
    assert_eq!(o.get_port(), env.get_port());
    assert_eq!(o.get_username(), env.get_username());
    assert_eq!(o.get_database(), Some("x"));
}

#[tokio::test]
async fn each_runs_at_once_and_a_slow_target_only_times_itself_out() {
    let t = targets(&config(FLEET), &global(&[])).unwrap();
    let started = std::time::Instant::now();
    let out = each(&t, Duration::from_millis(300), |t| async move {
        if t.name == "billing-eu" {
            tokio::time::sleep(Duration::from_secs(30)).await;
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(t.name.len())
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out[0].as_ref().unwrap(), &6);
    let err = out[1].as_ref().unwrap_err();
    assert_eq!(
        err.to_string(),
        "monitor@db2.internal:5433/billing: no answer within 0.3 s"
    );
    assert!(err.downcast_ref::<NotResponding>().is_some());
    assert_eq!(out[2].as_ref().unwrap(), &5);
}
