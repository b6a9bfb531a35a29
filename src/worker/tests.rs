//! Unit tests of the worker.

use super::*;
use crate::app::action::Maintenance;
use crate::db::records::{RecordFilter, RowVersion, Sort};
use crate::db::ts::Ts;
use std::time::Duration;
use uuid::Uuid;

/// A worker whose every task panics on purpose (no server needed: it never connects).
fn panicking_worker() -> (Arc<Worker>, tokio::sync::mpsc::UnboundedReceiver<DbEvent>) {
    let url = "postgres://nobody@127.0.0.1:1/none";
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy(url)
        .expect("a lazy pool");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let w = Worker::new(
        ConnectConfig::from_url(url),
        pool,
        TableRef::new("public", "idempotency_records").unwrap(),
        Config::default(),
        tx,
    );
    w.panic_for_test.store(true, Ordering::Relaxed);
    (w, rx)
}

async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<DbEvent>) -> DbEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event within 5 s")
        .expect("the channel is open")
}

fn assert_panic_error(e: &DbError) {
    assert!(
        e.message.starts_with("internal error: ")
            && e.message
                .contains("IDEMTOP_TEST_PANIC is set: panicking in a worker task on purpose"),
        "{}",
        e.message
    );
    assert!(!e.connection_lost);
}

#[tokio::test]
async fn a_panicking_request_becomes_its_error_event() {
    let (w, mut rx) = panicking_worker();

    w.handle(Request::Refresh {
        generation: 7,
        exact_pass: false,
        also: Also::default(),
    });
    match next(&mut rx).await {
        DbEvent::Snapshot {
            generation: 7,
            result: Err(e),
        } => {
            assert_panic_error(&e);
            assert!(e.message.contains("the refresh panicked"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }

    w.handle(Request::LoadPage(PageRequest {
        generation: 3,
        filter: RecordFilter::default(),
        sort: Sort::Newest,
        after: None,
    }));
    match next(&mut rx).await {
        DbEvent::Page {
            generation: 3,
            result: Err(e),
        } => assert_panic_error(&e),
        other => panic!("{other:?}"),
    }

    let id = Uuid::from_u128(42);
    w.handle(Request::LoadRecord(id));
    match next(&mut rx).await {
        DbEvent::Record {
            id: got,
            result: Err(e),
        } => {
            assert_eq!(got, id);
            assert_panic_error(&e);
        }
        other => panic!("{other:?}"),
    }

    let what = Maintenance::DeleteRecord(RowVersion {
        request_id: id,
        xmin: 1,
        created_at: Ts::NegInfinity,
        expires_at: Ts::Infinity,
    });
    w.handle(Request::Run(what.clone()));
    match next(&mut rx).await {
        DbEvent::Done {
            what: got,
            result: Err(e),
            ..
        } => {
            assert_eq!(got, what);
            assert_panic_error(&e);
            assert!(
                e.message.contains("delete record panicked"),
                "{}",
                e.message
            );
        }
        other => panic!("{other:?}"),
    }
    // The worker still serves requests after four panics.
    w.panic_for_test.store(false, Ordering::Relaxed);
    w.handle(Request::LoadRecord(id));
    match next(&mut rx).await {
        DbEvent::Record { result: Err(e), .. } => {
            assert!(!e.message.contains("panicked"), "{}", e.message)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn panic_messages_are_read_from_either_payload() {
    let s: Box<dyn Any + Send> = Box::new("static text");
    assert_eq!(panic_message(&*s), "static text");
    let s: Box<dyn Any + Send> = Box::new(format!("formatted {}", 1));
    assert_eq!(panic_message(&*s), "formatted 1");
    let s: Box<dyn Any + Send> = Box::new(17u8);
    assert_eq!(panic_message(&*s), "(no message)");
}
