//! Render snapshots of the xmin horizon's states (issue 17) at 80x24 and 120x40: a backend
//! idle in transaction, the confirm dialog of `T`, a prepared transaction (its SQL shown), a
//! replication slot, and a hot standby (header, n/a counters, write keys disabled).

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use idemtop::app::{update, App, DbEvent, Event, Request, SessionInfo};
use idemtop::db::horizon::{Holder, HolderKind, Standby, XminHorizon};
use idemtop::db::snapshot::Snapshot;
use idemtop::fixtures::snapshot;
use idemtop::ui::{self, Theme};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

/// `s` seconds from the fixture snapshot's server time.
fn t(s: i64) -> chrono::DateTime<chrono::Utc> {
    snapshot(0, 0).taken_at + chrono::Duration::seconds(s)
}

fn holder(kind: HolderKind) -> Holder {
    Holder {
        kind,
        pid: Some(4242),
        user: Some("app".into()),
        application: Some("billing-worker".into()),
        client: Some("10.0.3.7".into()),
        state: Some("idle in transaction".into()),
        backend_start: Some(t(-20_000)),
        xact_start: Some(t(-11_000)),
        query_start: Some(t(-10_990)),
        query: Some("SELECT * FROM idempotency_records WHERE request_id = $1 FOR UPDATE".into()),
        name: None,
        slot_type: None,
        active: None,
        xmin: Some("73112".into()),
        catalog_only: false,
        age_xids: 48_210,
        age_secs: Some(11_000.0),
        lag_bytes: None,
    }
}

fn with_horizon(h: Holder, standby: bool) -> Snapshot {
    let mut s = snapshot(0, 100_000);
    let dead = (!standby).then_some(s.vacuum.n_dead_tup);
    s.vacuum.xmin_horizon = Some(XminHorizon::judge(
        vec![h],
        Vec::new(),
        dead,
        s.vacuum.last_any_vacuum(),
        s.taken_at,
    ));
    if standby {
        s.standby = Some(Standby {
            replay_lag_secs: Some(3.4),
            receive_lsn: Some("0/3000148".into()),
            replay_lsn: Some("0/3000110".into()),
            receive_replay_gap_bytes: Some(56),
        });
    }
    s
}

fn app_with(s: Snapshot) -> App {
    let t0 = Instant::now();
    let mut a = App::new(
        SessionInfo {
            target: "app@db.internal:5432/app".into(),
            table: "public.idempotency_records".into(),
            read_only: false,
        },
        Duration::from_secs(2),
        t0,
    );
    let reqs = update(&mut a, Event::Tick(t0));
    let Some(Request::Refresh { generation, .. }) = reqs.first().cloned() else {
        panic!("{reqs:?}")
    };
    update(
        &mut a,
        Event::Db(DbEvent::Snapshot {
            generation,
            result: Ok(Box::new(s)),
        }),
    );
    a
}

fn render(a: &App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| ui::draw(f, a, &Theme::new(false))).unwrap();
    term.backend().to_string()
}

fn both(name: &str, a: &App) {
    insta::assert_snapshot!(format!("{name}_80x24"), render(a, 80, 24));
    insta::assert_snapshot!(format!("{name}_120x40"), render(a, 120, 40));
}

#[test]
fn a_backend_idle_in_transaction() {
    let a = app_with(with_horizon(holder(HolderKind::Backend), false));
    let wide = render(&a, 120, 40);
    assert!(
        wide.contains("dead rows not yet removable: ~3,120"),
        "{wide}"
    );
    assert!(wide.contains("pid 4242"), "{wide}");
    assert!(wide.contains("C cancel query"), "{wide}");
    both("horizon_backend", &a);
}

#[test]
fn terminate_asks_for_y() {
    let mut a = app_with(with_horizon(holder(HolderKind::Backend), false));
    update(
        &mut a,
        Event::Key(KeyEvent::new(KeyCode::Char('T'), KeyModifiers::NONE)),
    );
    let wide = render(&a, 120, 40);
    assert!(wide.contains("Terminate pid 4242?"), "{wide}");
    both("horizon_terminate_dialog", &a);
}

#[test]
fn a_prepared_transaction_shows_its_sql() {
    let h = Holder {
        pid: None,
        name: Some("tx-'42'".into()),
        state: None,
        client: None,
        application: None,
        query: None,
        ..holder(HolderKind::PreparedXact)
    };
    let a = app_with(with_horizon(h, false));
    let wide = render(&a, 120, 40);
    assert!(wide.contains("ROLLBACK PREPARED 'tx-''42''';"), "{wide}");
    both("horizon_prepared", &a);
}

#[test]
fn a_replication_slot_shows_its_sql() {
    let h = Holder {
        pid: None,
        user: None,
        name: Some("analytics".into()),
        slot_type: Some("physical".into()),
        active: Some(false),
        xact_start: None,
        age_secs: None,
        lag_bytes: Some(3_221_225_472),
        ..holder(HolderKind::ReplicationSlot)
    };
    let a = app_with(with_horizon(h, false));
    let wide = render(&a, 120, 40);
    assert!(
        wide.contains("SELECT pg_drop_replication_slot('analytics');"),
        "{wide}"
    );
    both("horizon_slot", &a);
}

#[test]
fn a_standby() {
    let h = Holder {
        application: Some("walreceiver".into()),
        ..holder(HolderKind::Backend)
    };
    let a = app_with(with_horizon(h, true));
    let wide = render(&a, 120, 40);
    assert!(wide.contains("STANDBY"), "{wide}");
    assert!(wide.contains("n/a on a standby"), "{wide}");
    both("standby", &a);
}
