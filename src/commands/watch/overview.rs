//! `idemtop` with several `[[target]]`s and no `--target`: the Overview of the fleet.
//!
//! The loop owns the terminal and the [`Overview`]; each target refreshes on its own task
//! ([`FleetRunner`]), whose results come back as events; the target opened from the Overview
//! has its own [`Worker`] (made when it is opened, dropped when it is closed: a result of a
//! closed target's worker is never read). The loop never awaits a query.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use crossterm::event::EventStream;
use futures::StreamExt;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::app::overview::{self, FleetEvent, FleetRequest, Overview};
use crate::app::{DbError, DbEvent, Event, Request};
use crate::config::Config;
use crate::fleet::Target;
use crate::options::Global;
use crate::ui;
use crate::worker::fleet::{info, FleetRunner, TARGET_DEADLINE};
use crate::worker::Worker;

/// The opened target's worker and where its results arrive.
struct Opened {
    worker: Arc<Worker>,
    results: UnboundedReceiver<DbEvent>,
}

/// A worker for `target`, on a pool that connects when first used (nothing is awaited).
fn open(target: &Target, config: &Config) -> Result<Opened> {
    let pool = target.connect.pool_lazy(4)?;
    let (tx, results) = unbounded_channel();
    let worker = Worker::new(
        target.connect.clone(),
        pool,
        target.table.clone(),
        config.clone(),
        tx,
    );
    Ok(Opened { worker, results })
}

/// The next result of the opened target's worker; never, while none is open.
async fn next_result(opened: &mut Option<Opened>) -> Option<DbEvent> {
    match opened {
        Some(o) => o.results.recv().await,
        None => std::future::pending().await,
    }
}

/// A request that no worker can serve (the target's connection settings are invalid): its
/// error, as the worker would have sent it.
fn refused(req: &Request, message: &str) -> Option<DbEvent> {
    let error = || DbError {
        message: message.to_string(),
        connection_lost: false,
    };
    match req {
        Request::Refresh { generation, .. } => Some(DbEvent::Snapshot {
            generation: *generation,
            result: Err(error()),
        }),
        Request::LoadPage(p) => Some(DbEvent::Page {
            generation: p.generation,
            result: Err(error()),
        }),
        Request::LoadRecord(id) => Some(DbEvent::Record {
            id: *id,
            result: Err(error()),
        }),
        Request::MeasureSpace => Some(DbEvent::Space(Err(error()))),
        Request::Run(what) => Some(DbEvent::Done {
            what: what.clone(),
            elapsed: std::time::Duration::ZERO,
            result: Err(error()),
        }),
        Request::StopCleanup => None,
    }
}

pub async fn run(targets: Vec<Target>, global: &Global, config: &Config) -> Result<()> {
    let theme = global.theme(config);
    let (tx, mut rx) = unbounded_channel::<FleetEvent>();
    let runner = FleetRunner::start(&targets, Arc::new(config.clone()), TARGET_DEADLINE, tx);
    let mut o = Overview::new(
        targets.iter().map(info).collect(),
        global.refresh_interval(config),
        global.read_only,
        Instant::now(),
    );
    o.unused_index_after_inserts = config.thresholds.indexes.unused_after_inserts;
    let mut opened: Option<Opened> = None;
    // Errors for requests no worker could take, applied with the next events.
    let mut refusals: Vec<FleetEvent> = Vec::new();
    // Why the opened target has no worker (its connection settings are invalid).
    let mut open_error: Option<String> = None;
    let mut terminal = super::enter_terminal();
    let result = async {
        let mut keys = EventStream::new();
        let mut tick = tokio::time::interval(super::TICK);
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        if let Ok(size) = terminal.size() {
            let resize = Event::Resize {
                width: size.width,
                height: size.height,
            };
            overview::update(&mut o, FleetEvent::Ui(resize));
        }
        loop {
            terminal.draw(|f| ui::overview::draw(f, &o, &theme))?;
            let event = tokio::select! {
                Some(ev) = keys.next() => super::term_event(ev?).map(FleetEvent::Ui),
                Some(t) = rx.recv() => Some(t),
                Some(db) = next_result(&mut opened) => Some(FleetEvent::Ui(Event::Db(db))),
                _ = tick.tick() => Some(FleetEvent::Ui(Event::Tick(Instant::now()))),
                _ = term.recv() => { o.quit = true; None }
                _ = hup.recv() => { o.quit = true; None }
            };
            // Everything already waiting is applied before the next frame.
            let mut events: Vec<FleetEvent> = std::mem::take(&mut refusals);
            events.extend(event);
            while let Ok(t) = rx.try_recv() {
                events.push(t);
            }
            if let Some(op) = opened.as_mut() {
                while let Ok(db) = op.results.try_recv() {
                    events.push(FleetEvent::Ui(Event::Db(db)));
                }
            }
            for event in events {
                for req in overview::update(&mut o, event) {
                    match req {
                        FleetRequest::Refresh { index, generation } => {
                            runner.refresh(index, generation)
                        }
                        FleetRequest::Open { index } => {
                            opened = None;
                            open_error = None;
                            match targets.get(index).map(|t| open(t, config)) {
                                Some(Ok(op)) => opened = Some(op),
                                Some(Err(e)) => {
                                    open_error = Some(crate::sanitize::line(&format!("{e:#}")))
                                }
                                None => open_error = Some("no such target".into()),
                            }
                        }
                        FleetRequest::Close => {
                            opened = None;
                            open_error = None;
                        }
                        FleetRequest::App(req) => match (&opened, &open_error) {
                            (Some(op), _) => op.worker.handle(req),
                            (None, Some(message)) => refusals.extend(
                                refused(&req, message).map(|db| FleetEvent::Ui(Event::Db(db))),
                            ),
                            (None, None) => {}
                        },
                    }
                }
            }
            if let Some(text) = o.opened.as_mut().and_then(|op| op.app.clipboard.take()) {
                super::write_clipboard(&text);
            }
            if o.quit {
                break;
            }
        }
        anyhow::Ok(())
    }
    .await;
    super::leave_terminal();
    result
}
