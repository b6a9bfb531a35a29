//! `idemtop` / `idemtop watch`: the full-screen dashboard.
//!
//! The loop owns the terminal and the state; database work goes to the worker, whose results
//! come back as events. The terminal is restored on every exit: normal quit, error, a panic of
//! the loop itself (which ends the process) and SIGTERM/SIGHUP. A panic in a worker task does
//! not end anything: the worker turns it into the request's error event, shown on screen, and
//! the terminal stays as it is while the dashboard keeps drawing.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use futures::StreamExt;
use tokio::signal::unix::{signal, SignalKind};

use crate::app::{self, App, Event, SessionInfo};
use crate::config::Config;
use crate::db::table;
use crate::options::Global;
use crate::ui::{self, Theme};
use crate::worker::Worker;

mod overview;

const TICK: Duration = Duration::from_millis(200);

/// Panics of other threads while the dashboard ran, reported on stderr once the terminal is
/// restored (they were already shown on screen as errors when they were a worker task's).
static BACKGROUND_PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Install the dashboard's panic hook over `previous` (ratatui's, which restores the terminal
/// and then prints the panic). Only a panic of the loop's own thread, which ends the process,
/// goes to it. A panic on another thread (a worker task: caught there and shown on screen as an
/// error) must neither restore the terminal under the dashboard, which keeps drawing, nor print
/// over the screen: it is kept, and printed after the dashboard ends.
/// A terminal event as the app's event (None: nothing the app needs).
fn term_event(ev: TermEvent) -> Option<Event> {
    match ev {
        TermEvent::Key(k) if k.kind != KeyEventKind::Release => Some(Event::Key(k)),
        TermEvent::Resize(width, height) => Some(Event::Resize { width, height }),
        TermEvent::Paste(text) => Some(Event::Paste(text)),
        _ => None,
    }
}

fn install_panic_hook() {
    // The loop runs in `Runtime::block_on` on the calling thread (main), never on a worker
    // thread, so its thread is stable for the whole run.
    let ui_thread = std::thread::current().id();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == ui_thread {
            let _ = crossterm::execute!(
                std::io::stdout(),
                crossterm::event::DisableBracketedPaste,
                crossterm::cursor::Show
            );
            previous(info);
        } else if let Ok(mut kept) = BACKGROUND_PANICS.lock() {
            if kept.len() < 20 {
                kept.push(info.to_string());
            }
        }
    }));
}

/// Back to the default hook, then report what panicked on other threads meanwhile.
fn uninstall_panic_hook() {
    drop(std::panic::take_hook());
    let kept = BACKGROUND_PANICS
        .lock()
        .map(|mut k| std::mem::take(&mut *k))
        .unwrap_or_default();
    for p in kept {
        eprintln!("idemtop: a background task panicked (the dashboard kept running): {p}");
    }
}

pub async fn run(global: &Global, config: &Config) -> Result<()> {
    // Several [[target]]s and no --target: the Overview of the fleet.
    if global.target.is_none() && config.targets.len() > 1 {
        let targets = crate::fleet::targets(config, global)?;
        return overview::run(targets, global, config).await;
    }
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
    let unused_after = config.thresholds.indexes.unused_after_inserts;
    let worker = Worker::new(cfg, pool, table_ref, config, tx);
    // For the end-to-end tests: a panic in the loop (`1`) or in every worker task (`worker`).
    let panic_for_test = std::env::var("IDEMTOP_TEST_PANIC").ok();
    if panic_for_test.as_deref() == Some("worker") {
        worker
            .panic_for_test
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let panic_in_loop = panic_for_test.is_some_and(|v| v != "worker");
    let mut app = App::new(session, interval, Instant::now());
    app.unused_index_after_inserts = unused_after;
    let mut terminal = enter_terminal();
    let result = async {
        let mut keys = EventStream::new();
        let mut tick = tokio::time::interval(TICK);
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        if let Ok(size) = terminal.size() {
            app::update(
                &mut app,
                Event::Resize {
                    width: size.width,
                    height: size.height,
                },
            );
        }
        loop {
            terminal.draw(|f| ui::draw(f, &app, &theme))?;
            if panic_in_loop && app.dash.current.is_some() {
                panic!("IDEMTOP_TEST_PANIC is set: panicking on purpose");
            }
            let event = tokio::select! {
                Some(ev) = keys.next() => term_event(ev?),
                Some(db) = rx.recv() => Some(Event::Db(db)),
                _ = tick.tick() => Some(Event::Tick(Instant::now())),
                _ = term.recv() => { app.quit = true; None }
                _ = hup.recv() => { app.quit = true; None }
            };
            // Everything already waiting is applied before the next frame: a burst of keys or
            // results costs one redraw, not one each.
            let mut events: Vec<Event> = event.into_iter().collect();
            while let Ok(db) = rx.try_recv() {
                events.push(Event::Db(db));
            }
            for event in events {
                for req in app::update(&mut app, event) {
                    worker.handle(req);
                }
            }
            if let Some(text) = app.clipboard.take() {
                write_clipboard(&text);
            }
            if app.quit {
                break;
            }
        }
        anyhow::Ok(())
    }
    .await;
    leave_terminal();
    result
}

/// Take the terminal: raw mode, the alternate screen, bracketed paste (a paste arrives as one
/// event, bounded and handled in one pass by a prompt, not as thousands of key presses), and
/// the panic hook. ratatui's hook leaves raw mode and the alternate screen; ours calls it for
/// the loop's own panics only, and shows the cursor too.
fn enter_terminal() -> ratatui::DefaultTerminal {
    let terminal = ratatui::init();
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::EnableBracketedPaste);
    install_panic_hook();
    terminal
}

/// Give the terminal back as it was, on every way out of the loop.
fn leave_terminal() {
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableBracketedPaste);
    ratatui::restore();
    let _ = crossterm::execute!(std::io::stdout(), crossterm::cursor::Show);
    uninstall_panic_hook();
}

/// Put `text` on the terminal's clipboard (OSC 52).
fn write_clipboard(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout();
    let _ = out.write_all(ui::clipboard::osc52(text).as_bytes());
    let _ = out.flush();
}
