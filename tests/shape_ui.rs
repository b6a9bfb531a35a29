//! The dashboard on every table shape (issue 15): a real snapshot of each fixture, applied to
//! the App and drawn to a TestBackend as tests/ui.rs does. Sizes, vacuum and indexes always
//! show; what needs a missing role says "n/a: no <role> column (map one in config)"; a table
//! that is not the guide's gets the mapping banner; the cleanup dialog names the rule and the
//! referencing tables, and cleanup is refused before it is asked where it must be.

mod common;

use std::time::{Duration, Instant};

use common::shapes::*;
use common::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use idemtop::app::{update, App, DbEvent, Event, Overlay, Request, SessionInfo};
use idemtop::db::snapshot::{Snapshot, SnapshotOptions};
use idemtop::ident::TableRef;
use idemtop::ui::{self, Theme};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

async fn snapshot_of(shape: &str) -> Snapshot {
    let url = loaded_shape(shape).await;
    let mut conn = connect(&url).await;
    let t = TableRef::new("public", table_of(shape)).unwrap();
    idemtop::refresh::refresh_with(&mut conn, &t, &[], SnapshotOptions::default())
        .await
        .expect("a snapshot of every shape")
}

fn app_with(snap: Snapshot) -> App {
    let t0 = Instant::now();
    let mut a = App::new(
        SessionInfo {
            target: "app@db.internal:5432/app".into(),
            table: snap.table.clone(),
            read_only: false,
        },
        Duration::from_secs(2),
        t0,
    );
    let reqs = update(&mut a, Event::Tick(t0));
    let Some(Request::Refresh { generation, .. }) = reqs.first().cloned() else {
        panic!("expected a refresh: {reqs:?}")
    };
    update(
        &mut a,
        Event::Db(DbEvent::Snapshot {
            generation,
            result: Ok(Box::new(snap)),
        }),
    );
    a
}

fn render(a: &App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| ui::draw(f, a, &Theme::new(false))).unwrap();
    term.backend().to_string()
}

fn key(c: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

/// Drawn at a wide and a narrow size without a panic; the panels that need no column show.
async fn dashboard(shape: &str) -> (App, String) {
    let a = app_with(snapshot_of(shape).await);
    let screen = render(&a, 140, 40);
    if std::env::var_os("SHOW_SCREENS").is_some() {
        eprintln!("{shape}:\n{screen}");
    }
    for panel in ["Size", "Vacuum", "Indexes"] {
        assert!(
            screen.contains(panel),
            "{shape}: no {panel} panel:\n{screen}"
        );
    }
    assert!(!screen.contains("Could not read the table"), "{screen}");
    assert!(!screen.contains("column \""), "{screen}");
    assert_no_raw_types(&screen);
    for (w, h) in [(80, 24), (60, 16), (200, 60)] {
        render(&a, w, h);
    }
    (a, screen)
}

#[tokio::test]
async fn the_guides_dashboard_has_no_banner() {
    let (_, screen) = dashboard("guide").await;
    assert!(!screen.contains("MAPPING"), "{screen}");
    assert!(screen.contains("expired"), "{screen}");
}

#[tokio::test]
async fn stripe_dashboard_and_its_cleanup_dialog() {
    let (mut a, screen) = dashboard("stripe").await;
    assert!(screen.contains("MAPPING"), "{screen}");
    assert!(screen.contains("Stripe-style"), "{screen}");
    assert!(screen.contains("POST /rides"), "{screen}");
    assert!(screen.contains("In flight"), "{screen}");
    assert!(
        screen.contains("recovery") || screen.contains("started"),
        "{screen}"
    );
    update(&mut a, key('c'));
    let Some(Overlay::Confirm(d)) = &a.overlay else {
        panic!("cleanup is asked: {:?}", a.flash)
    };
    assert!(
        d.question
            .contains("created_at + 72h <= the server's now(), never a row in flight"),
        "{}",
        d.question
    );
    assert!(
        d.question.contains("Referenced by public.rides"),
        "{}",
        d.question
    );
    assert!(d.question.contains("ON DELETE SET NULL"), "{}", d.question);
    let dialog = render(&a, 140, 40);
    assert!(dialog.contains("public.rides"), "{dialog}");
}

#[tokio::test]
async fn zero2prod_dashboard_degrades_and_refuses_cleanup() {
    let (mut a, screen) = dashboard("zero2prod").await;
    assert!(
        screen.contains("n/a: no operation column (map one in config)"),
        "{screen}"
    );
    assert!(screen.contains("permanent ledger"), "{screen}");
    // Enter on the dashboard opens the records by key (no operation to filter by).
    let reqs = update(
        &mut a,
        Event::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
    );
    assert!(
        matches!(reqs.as_slice(), [Request::LoadMapped(r)] if r.lookup.is_none()),
        "{reqs:?}"
    );
    update(&mut a, key('1'));
    update(&mut a, key('c'));
    assert!(a.overlay.is_none(), "cleanup must not be asked");
    let said = format!("{:?}", a.flash);
    assert!(said.contains("cleanup refused"), "{said}");
}

#[tokio::test]
async fn medusa_idempotence4j_and_nestarc_dashboards_draw() {
    let (_, screen) = dashboard("medusa").await;
    assert!(screen.contains("MAPPING"), "{screen}");
    let (_, screen) = dashboard("idempotence4j").await;
    assert!(screen.contains("idempotence4j"), "{screen}");
    let (_, screen) = dashboard("nestarc").await;
    assert!(screen.contains("nestarc"), "{screen}");
}

/// The Records screen of a Stripe-style table: the worker's requests answered with real pages
/// of the fixture (as the worker reads them), drawn; `/` with a composite key looks it up.
#[tokio::test]
async fn records_page_and_lookup_by_the_mapped_key() {
    use idemtop::app::mapped::{MappedRequest, MappedResult};
    use idemtop::db::records;
    use idemtop::db::snapshot::TableMapping;
    let url = loaded_shape("stripe").await;
    let mut conn = connect(&url).await;
    let t = TableRef::new("public", "idempotency_keys").unwrap();
    let snap = idemtop::refresh::refresh_with(&mut conn, &t, &[], SnapshotOptions::default())
        .await
        .unwrap();
    let info = idemtop::db::table::resolve(&mut conn, &t).await.unwrap();
    let tm = TableMapping::resolve(&[], &t, &info);
    let mut a = app_with(snap);
    let answer = |a: &mut App, reqs: Vec<Request>| {
        let req: MappedRequest = match reqs.into_iter().next() {
            Some(Request::LoadMapped(r)) => r,
            other => panic!("expected a mapped request: {other:?}"),
        };
        (req, a.records.mapped.generation)
    };
    let reqs = update(&mut a, key('2'));
    let (req, generation) = answer(&mut a, reqs);
    assert!(req.lookup.is_none());
    let page = records::mapped_page(&mut conn, &t, &info, &tm, req.sort, None, 100)
        .await
        .unwrap();
    let first_key = page.rows[0].key.to_string();
    update(
        &mut a,
        Event::Db(DbEvent::Mapped {
            generation,
            result: Ok(Box::new(MappedResult {
                page: Some(page),
                sorts: records::sorts(&tm, &info),
                record: None,
            })),
        }),
    );
    let screen = render(&a, 140, 40);
    assert!(screen.contains(&first_key[..20]), "{screen}");
    assert!(screen.contains("by key"), "{screen}");
    assert!(
        screen.contains("no index leads with created_at"),
        "{screen}"
    );
    assert_no_raw_types(&screen);
    // Newest first is not offered: s says why and asks nothing.
    let reqs = update(&mut a, key('s'));
    assert!(reqs.is_empty(), "{reqs:?}");
    // Deleting one record is the guide's table's only.
    update(&mut a, key('d'));
    assert!(a.overlay.is_none());
    // `/` with the composite key as typed.
    update(&mut a, key('/'));
    for c in first_key.chars() {
        update(&mut a, key(c));
    }
    let reqs = update(
        &mut a,
        Event::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
    );
    let (req, generation) = answer(&mut a, reqs);
    assert_eq!(req.lookup.as_deref(), Some(first_key.as_str()));
    let cols = records::key_columns(&tm, &info).unwrap();
    let k = records::parse_key(&first_key, &cols).unwrap();
    let rec = records::mapped_get(&mut conn, &t, &info, &tm, &k, 1024)
        .await
        .unwrap();
    assert!(rec.is_some());
    update(
        &mut a,
        Event::Db(DbEvent::Mapped {
            generation,
            result: Ok(Box::new(MappedResult {
                page: None,
                sorts: records::sorts(&tm, &info),
                record: Some(rec),
            })),
        }),
    );
    let screen = render(&a, 140, 40);
    assert!(screen.contains("Record "), "{screen}");
    assert!(screen.contains("POST /rides"), "{screen}");
    assert_no_raw_types(&screen);
}
