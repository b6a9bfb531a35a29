//! One target's collection: a snapshot of its table and the health checks on it, on the
//! target's own session, under a deadline. `idemtop metrics` (one per scrape) and the
//! dashboard's Overview (one per refresh of a target) both collect this way. No UI.

use std::time::Duration;

use anyhow::Result;

use crate::checks::{self, CheckResult};
use crate::config::Config;
use crate::db::connect::{is_connection_lost, ConnectConfig, NotResponding};
use crate::db::snapshot::{Snapshot, SnapshotOptions};
use crate::ident::TableRef;
use crate::refresh::RefreshSession;

/// A snapshot and the checks evaluated on it (against the session's previous snapshot, for
/// rates), on the session's connection (made when there is none).
pub async fn collect(
    session: &mut RefreshSession,
    connect: &ConnectConfig,
    table: &TableRef,
    cfg: &Config,
) -> Result<(Snapshot, Vec<CheckResult>)> {
    let conn = session.connection(connect).await?;
    let snap = crate::refresh::refresh(conn, table, SnapshotOptions::default()).await?;
    let extras = checks::gather(conn, table, &snap, cfg).await?;
    let results = checks::evaluate(&snap, session.previous.as_ref(), &extras, cfg);
    Ok((snap, results))
}

/// [`collect`] within `deadline`. The snapshot is kept in the session as the previous one; a
/// lost connection is dropped, and so is one that did not answer in time (it may be
/// mid-query): the next collection connects afresh. Not answering in time is a
/// [`NotResponding`] error (a connection-level failure, as a refused connection is).
pub async fn collect_within(
    session: &mut RefreshSession,
    connect: &ConnectConfig,
    table: &TableRef,
    cfg: &Config,
    deadline: Duration,
) -> Result<(Snapshot, Vec<CheckResult>)> {
    match tokio::time::timeout(deadline, collect(session, connect, table, cfg)).await {
        Ok(Ok((snap, results))) => {
            session.previous = Some(snap.clone());
            Ok((snap, results))
        }
        Ok(Err(e)) => {
            session.forget_model_on(&e);
            if is_connection_lost(&e) {
                session.disconnect();
            }
            Err(e)
        }
        Err(_) => {
            session.disconnect();
            Err(anyhow::Error::new(NotResponding(format!(
                "{}: no answer within {} s",
                connect.describe(),
                super::secs(deadline)
            ))))
        }
    }
}
