//! The Overview's targets: one task per target, each with its own session, refreshing when the
//! Overview asks ([`crate::app::overview::FleetRequest::Refresh`]) and sending the result back
//! on a channel. A target's task does one refresh at a time and the Overview never asks a busy
//! one, so a slow or dead target holds up no other target and never the screen.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::app::overview::{Figures, FleetEvent, TargetError, TargetInfo, TargetResult};
use crate::config::Config;
use crate::fleet::collect::collect_within;
use crate::fleet::Target;
use crate::refresh::RefreshSession;
use crate::sanitize;

/// How long one refresh of a target may take, connecting included (as a scrape of
/// `idemtop metrics` by default): past it the target is down for that refresh.
pub const TARGET_DEADLINE: Duration = Duration::from_secs(8);

/// The targets' tasks. Dropping this ends them (each after the refresh it is doing).
pub struct FleetRunner {
    asks: Vec<UnboundedSender<u64>>,
}

/// What the Overview shows of a target.
pub fn info(t: &Target) -> TargetInfo {
    TargetInfo {
        name: t.name.clone(),
        connection: t.describe(),
        table: t.table.to_string(),
    }
}

impl FleetRunner {
    /// One task per target; results go to `events` as [`FleetEvent::Target`].
    pub fn start(
        targets: &[Target],
        cfg: Arc<Config>,
        deadline: Duration,
        events: UnboundedSender<FleetEvent>,
    ) -> Self {
        let asks = targets
            .iter()
            .enumerate()
            .map(|(index, t)| {
                let (ask, mut asked) = unbounded_channel::<u64>();
                let target = t.clone();
                let cfg = Arc::clone(&cfg);
                let events = events.clone();
                tokio::spawn(async move {
                    let mut session = RefreshSession::default();
                    while let Some(generation) = asked.recv().await {
                        let started = Instant::now();
                        let result = refresh(&mut session, &target, &cfg, deadline).await;
                        let result = match result {
                            Ok(r) => r,
                            Err(()) => {
                                // A panic: whatever the session held may be half-done.
                                session = RefreshSession::default();
                                Err(TargetError {
                                    message: "internal error: the refresh panicked (a bug in \
                                              idemtop; the Overview keeps running)"
                                        .into(),
                                    connection_lost: false,
                                })
                            }
                        };
                        let sent = events.send(FleetEvent::Target(TargetResult {
                            index,
                            generation,
                            took: started.elapsed(),
                            result,
                        }));
                        if sent.is_err() {
                            break; // the Overview is gone
                        }
                    }
                });
                ask
            })
            .collect();
        Self { asks }
    }

    /// Ask target `index`'s task for a refresh.
    pub fn refresh(&self, index: usize, generation: u64) {
        if let Some(ask) = self.asks.get(index) {
            let _ = ask.send(generation);
        }
    }
}

/// One refresh of `target`; `Err(())` when it panicked.
async fn refresh(
    session: &mut RefreshSession,
    target: &Target,
    cfg: &Config,
    deadline: Duration,
) -> Result<Result<Figures, TargetError>, ()> {
    let work = async {
        match collect_within(session, &target.connect, &target.table, cfg, deadline).await {
            Ok((snap, checks)) => Ok(Figures::new(&snap, &checks)),
            Err(e) => Err(target_error(&e)),
        }
    };
    AssertUnwindSafe(work).catch_unwind().await.map_err(|_| ())
}

/// An error as the Overview shows it: one sanitized line; a locked table said as such.
fn target_error(e: &anyhow::Error) -> TargetError {
    if let Some(lock) = crate::db::locks::locked_in(e) {
        return TargetError {
            message: sanitize::line(&format!(
                "locked: {} {} by pid {}",
                lock.mode,
                if lock.granted { "held" } else { "requested" },
                lock.pid
            )),
            connection_lost: false,
        };
    }
    let e = super::db_error(e);
    TargetError {
        message: e.message,
        connection_lost: e.connection_lost,
    }
}
