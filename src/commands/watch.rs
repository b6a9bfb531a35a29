//! `idemtop` / `idemtop watch`: the full-screen dashboard.
//!
//! The loop owns the terminal and the state; database work goes to the worker, whose results
//! come back as events. The terminal is restored on every exit: normal quit, error, panic
//! (ratatui's hook) and SIGTERM/SIGHUP.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use futures::StreamExt;
use tokio::signal::unix::{signal, SignalKind};

use crate::app::{self, App, Event, SessionInfo};
use crate::cli::Global;
use crate::config::Config;
use crate::db::table;
use crate::ui::{self, Theme};
use crate::worker::Worker;

const TICK: Duration = Duration::from_millis(200);

pub async fn run(global: &Global, config: &Config) -> Result<()> {
    let table_ref = global.table_ref()?;
    let cfg = global.connect_config();
    // Fail fast, before the screen switches, when the URL or the table is wrong.
    let pool = cfg.pool(4).await?;
    {
        let mut conn = pool.acquire().await.context("connecting")?;
        table::resolve(&mut conn, &table_ref).await?;
    }
    let session = SessionInfo {
        target: cfg.describe(),
        table: table_ref.to_string(),
        read_only: global.read_only,
    };
    run_with_pool(
        cfg,
        pool,
        table_ref,
        session,
        config.clone(),
        global.refresh_interval(config),
        global.theme(config),
    )
    .await
}

/// The dashboard on an existing pool (also used by `idemtop demo`).
pub async fn run_with_pool(
    cfg: crate::db::connect::ConnectConfig,
    pool: sqlx::PgPool,
    table_ref: crate::ident::TableRef,
    session: SessionInfo,
    config: Config,
    interval: Duration,
    theme: Theme,
) -> Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let worker = Worker::new(cfg, pool, table_ref, config, tx);
    let mut app = App::new(session, interval, Instant::now());
    let mut terminal = ratatui::init();
    // ratatui's hook leaves raw mode and the alternate screen; show the cursor too.
    let ratatui_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = crossterm::execute!(std::io::stdout(), crossterm::cursor::Show);
        ratatui_hook(info);
    }));
    let result = async {
        let mut keys = EventStream::new();
        let mut tick = tokio::time::interval(TICK);
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        // For the end-to-end test that the terminal is restored after a panic.
        let panic_for_test = std::env::var_os("IDEMTOP_TEST_PANIC").is_some();
        loop {
            terminal.draw(|f| ui::draw(f, &app, &theme))?;
            if panic_for_test && app.dash.current.is_some() {
                panic!("IDEMTOP_TEST_PANIC is set: panicking on purpose");
            }
            let event = tokio::select! {
                Some(ev) = keys.next() => match ev? {
                    TermEvent::Key(k) if k.kind != KeyEventKind::Release => Some(Event::Key(k)),
                    _ => None, // resize and others: just redraw
                },
                Some(db) = rx.recv() => Some(Event::Db(db)),
                _ = tick.tick() => Some(Event::Tick(Instant::now())),
                _ = term.recv() => { app.quit = true; None }
                _ = hup.recv() => { app.quit = true; None }
            };
            if let Some(event) = event {
                for req in app::update(&mut app, event) {
                    worker.handle(req);
                }
            }
            if app.quit {
                break;
            }
        }
        anyhow::Ok(())
    }
    .await;
    ratatui::restore();
    let _ = crossterm::execute!(std::io::stdout(), crossterm::cursor::Show);
    result
}
