//! A server that stops answering: the refresh gives up at its client-side deadline and reports
//! the connection lost ("did not answer"), instead of showing "connected" with a frozen clock.
//! The server is real; a small TCP relay in front of it stops relaying on demand (as a frozen
//! server or a dead network would look to idemtop).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use idemtop::app::{Also, DbEvent, Request};
use idemtop::config::Config;
use idemtop::db::connect::ConnectConfig;
use idemtop::ident::TableRef;
use idemtop::worker::{Worker, REFRESH_DEADLINE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Relay loopback connections to `target` until `frozen` is set; then relay nothing more.
async fn relay(target: u16, frozen: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pipe(cr, sw, frozen.clone()));
            tokio::spawn(pipe(sr, cw, frozen.clone()));
        }
    });
    port
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn next_snapshot(rx: &mut tokio::sync::mpsc::UnboundedReceiver<DbEvent>) -> DbEvent {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("an event")
            .expect("the channel is open");
        if matches!(ev, DbEvent::Snapshot { .. }) {
            return ev;
        }
    }
}

#[tokio::test]
async fn a_frozen_server_is_reported_not_responding_within_the_deadline() {
    let url = migrated_db().await;
    let db = url.rsplit('/').next().unwrap().to_owned();
    let frozen = Arc::new(AtomicBool::new(false));
    let port = relay(server().port(), frozen.clone()).await;
    let relayed = format!("postgres://postgres@127.0.0.1:{port}/{db}");
    let cfg = ConnectConfig::from_url(&relayed);
    let pool = cfg.pool(2).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let worker = Worker::new(cfg, pool, TableRef::default(), Config::default(), tx);

    let refresh = |generation| Request::Refresh {
        generation,
        exact_pass: false,
        also: Also::default(),
    };
    worker.handle(refresh(1));
    match next_snapshot(&mut rx).await {
        DbEvent::Snapshot {
            generation: 1,
            result: Ok(s),
        } => assert_eq!(s.table, "public.idempotency_records"),
        other => panic!("expected a snapshot, got {other:?}"),
    }

    frozen.store(true, Ordering::SeqCst);
    let asked = Instant::now();
    worker.handle(refresh(2));
    match next_snapshot(&mut rx).await {
        DbEvent::Snapshot {
            generation: 2,
            result: Err(e),
        } => {
            let took = asked.elapsed();
            assert!(e.connection_lost, "{e:?}");
            assert!(
                e.message.contains("did not answer within 3.5 s"),
                "{}",
                e.message
            );
            assert!(
                took >= REFRESH_DEADLINE && took < REFRESH_DEADLINE + Duration::from_secs(2),
                "{took:?}"
            );
        }
        other => panic!("expected the refresh to fail, got {other:?}"),
    }

    // Thawed: the next refresh connects afresh and measures again.
    frozen.store(false, Ordering::SeqCst);
    worker.handle(refresh(3));
    match next_snapshot(&mut rx).await {
        DbEvent::Snapshot {
            generation: 3,
            result: Ok(_),
        } => {}
        other => panic!("expected a snapshot after the thaw, got {other:?}"),
    }
}
