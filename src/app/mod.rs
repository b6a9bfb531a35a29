//! Application state and the pure `update(state, event) -> requests`.
//!
//! Nothing here does I/O: the event loop feeds events in (keys, ticks, database results) and
//! sends the returned [`Request`]s to the worker. Tests drive `update` directly.

pub mod action;
pub mod dashboard;
pub mod keys;
pub mod mapped;
pub mod overview;
pub mod payload;
pub mod records;
pub mod sort_offer;
pub mod top_operations;

mod actions;
mod confirm;
mod db_events;
mod events;
mod input;
mod state;

pub use events::*;
pub use state::*;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crossterm::event::KeyEvent;

use crate::db::snapshot::Snapshot;
use action::{Action, Maintenance, Screen};
use dashboard::DashboardState;
use keys::Context;
use records::{PageRequest, RecordsState};
use uuid::Uuid;

pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// How often the exact per-operation pass runs on a large table.
pub const EXACT_PASS_EVERY: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const LOG_LEN: usize = 200;
/// How long a footer message (an action's result, a refused key) stays: long enough to read,
/// never so long that an old "VACUUM (ANALYZE) done" reads as news.
pub const FLASH_TTL: Duration = Duration::from_secs(10);

pub struct App {
    pub session: SessionInfo,
    /// Inserts after which a never-scanned index counts as unused
    /// ([`crate::checks::index_unused`]; config `thresholds.indexes.unused_after_inserts`).
    pub unused_index_after_inserts: i64,

    pub screen: Screen,
    pub overlay: Option<Overlay>,
    pub conn: ConnState,
    pub refresh: Refresh,
    pub dash: DashboardState,
    pub records: RecordsState,
    pub input: Option<Input>,
    pub running: Option<Running>,
    /// pg_cron as last read (None before the first read).
    pub cron: Option<Result<crate::db::cron::CronStatus, String>>,
    pub health: HealthState,
    pub partitions: PartitionsState,
    pub log: Vec<LogEntry>,
    /// A one-line message for the footer (key refused, action result); it expires.
    pub flash: Option<Flash>,
    /// Text to put on the terminal's clipboard (OSC 52): the loop writes it and clears it.
    pub clipboard: Option<String>,
    /// The terminal's size (columns, rows) as last reported, for scrolling the help.
    pub viewport: Option<(u16, u16)>,
    pub now: Instant,
    pub quit: bool,
    /// Opened from the fleet's Overview: Esc/Backspace at the top level go back to it.
    pub in_fleet: bool,
    /// Asked to go back to the Overview (the Overview closes this view and clears it).
    pub leave: bool,
}

impl App {
    /// The table is not the guide's (its mapping says so): the records screen pages and looks
    /// up by the mapped key ([`mapped`]).
    pub fn mapped_mode(&self) -> bool {
        self.dash
            .current
            .as_ref()
            .is_some_and(|s| !s.mapping.is_guide())
    }

    pub fn new(session: SessionInfo, interval: Duration, now: Instant) -> Self {
        Self {
            session,
            screen: Screen::Dashboard,
            overlay: None,
            conn: ConnState::Connecting,
            refresh: Refresh {
                interval: interval.clamp(MIN_INTERVAL, MAX_INTERVAL),
                paused: false,
                in_flight: None,
                generation: 0,
                due: now,
                last_exact_pass: None,
                exact_requested: false,
            },
            dash: DashboardState::default(),
            records: RecordsState::default(),
            input: None,
            running: None,
            unused_index_after_inserts: crate::config::Config::default()
                .thresholds
                .indexes
                .unused_after_inserts,
            cron: None,
            health: HealthState::default(),
            partitions: PartitionsState::default(),
            log: Vec::new(),
            flash: None,
            clipboard: None,
            viewport: None,
            now,
            quit: false,
            in_fleet: false,
            leave: false,
        }
    }

    /// The key contexts in force, innermost first, and whether they are modal.
    pub fn contexts(&self) -> (Vec<Context>, bool) {
        if self.input.is_some() {
            return (vec![Context::Input], true);
        }
        match &self.overlay {
            Some(Overlay::Confirm(_)) => (vec![Context::Confirm], true),
            Some(Overlay::Help { .. }) => (vec![Context::Help], false),
            None => (self.screen_contexts(), false),
        }
    }

    /// Say `text` in the footer, for [`FLASH_TTL`].
    pub fn say(&mut self, text: impl Into<String>) {
        self.flash = Some(Flash {
            text: text.into(),
            at: self.now,
        });
    }

    /// The footer message, while it lasts.
    pub fn flash_text(&self) -> Option<&str> {
        self.flash.as_ref().map(|f| f.text.as_str())
    }

    /// The figures on screen are not current: the last refresh measured nothing (the server is
    /// unreachable, the table is locked, or the refresh failed).
    pub fn data_stale(&self) -> bool {
        self.dash.current.is_some()
            && (self.dash.error.is_some()
                || self.dash.lock.is_some()
                || matches!(self.conn, ConnState::Disconnected { .. }))
    }

    /// How old the figures on screen are (since the last good refresh arrived).
    pub fn data_age(&self) -> Option<Duration> {
        self.dash
            .updated_at
            .map(|at| self.now.saturating_duration_since(at))
    }

    /// How long until the next refresh (or reconnection attempt), rounded up to a second;
    /// `None` while one is in flight or refreshing is paused.
    pub fn next_refresh_in(&self) -> Option<Duration> {
        if self.refresh.in_flight.is_some() || self.refresh.paused {
            return None;
        }
        let left = self.refresh.due.saturating_duration_since(self.now);
        Some(Duration::from_secs(left.as_millis().div_ceil(1000) as u64))
    }

    /// What the header says about health: from the checks when they are current, "unknown"
    /// when there are none yet, they failed, or the data they judged is stale.
    pub fn health_summary(&self) -> HealthSummary {
        use crate::checks::Level;
        let counts = self.health.checks.as_ref().map(|checks| {
            // A pending check (no data yet) is shown on Health but judged nowhere.
            let n = |l: Level| {
                checks
                    .iter()
                    .filter(|c| c.level == l && c.counted())
                    .count()
            };
            (n(Level::Critical), n(Level::Warning), n(Level::Unknown))
        });
        let last = counts.map(|(c, w, _)| (c, w));
        let why = if counts.is_none() {
            Some(UnknownWhy::NotYet)
        } else if self.health.error.is_some() {
            Some(UnknownWhy::Failed)
        } else if self.data_stale() || self.dash.current.is_none() {
            Some(UnknownWhy::Stale)
        } else {
            None
        };
        match (why, counts) {
            (Some(why), _) => HealthSummary::Unknown { why, last },
            (None, Some((c, _, _))) if c > 0 => HealthSummary::Critical(c),
            (None, Some((_, w, _))) if w > 0 => HealthSummary::Warning(w),
            (None, Some((_, _, u))) if u > 0 => HealthSummary::SomeUnknown(u),
            (None, _) => HealthSummary::Ok,
        }
    }

    /// The contexts of the current screen, ignoring overlays (for the help).
    pub fn screen_contexts(&self) -> Vec<Context> {
        let mut ctx = Vec::new();
        if self.running.is_some() {
            ctx.push(Context::Running);
        }
        ctx.push(match self.screen {
            Screen::Dashboard => Context::Dashboard,
            Screen::Records if self.records.detail.is_some() => Context::Detail,
            Screen::Records => Context::Records,
            Screen::Health => Context::Health,
            Screen::Partitions => Context::Partitions,
            Screen::Activity => Context::Global,
        });
        if self.in_fleet && self.at_top_level() {
            ctx.push(Context::Fleet);
        }
        ctx
    }

    /// Nothing of the screen's own is open on top of it (a record's detail, an expanded
    /// check) and no action runs: Esc has nothing of its own to close. Overlays and prompts
    /// are outside the screen's contexts and are checked by [`App::contexts`] first.
    pub fn at_top_level(&self) -> bool {
        self.running.is_none()
            && !(self.screen == Screen::Records && self.records.detail.is_some())
            && !(self.screen == Screen::Health && self.health.expanded)
    }

    fn backoff(attempt: u32) -> Duration {
        backoff(attempt)
    }

    fn log(&mut self, entry: LogEntry) {
        self.log.push(entry);
        if self.log.len() > LOG_LEN {
            self.log.remove(0);
        }
    }

    /// Start a refresh if one is due and none is in flight.
    fn maybe_refresh(&mut self, force: bool) -> Option<Request> {
        if self.refresh.in_flight.is_some() {
            return None;
        }
        if !force && (self.refresh.paused || self.now < self.refresh.due) {
            return None;
        }
        self.refresh.generation += 1;
        self.refresh.in_flight = Some(self.refresh.generation);
        let exact_pass = self
            .refresh
            .last_exact_pass
            .is_none_or(|t| self.now.duration_since(t) >= EXACT_PASS_EVERY);
        let exact_now = std::mem::take(&mut self.refresh.exact_requested);
        let exact_pass = exact_pass || exact_now;
        if exact_pass {
            self.refresh.last_exact_pass = Some(self.now);
        }
        Some(Request::Refresh {
            generation: self.refresh.generation,
            exact_pass,
            also: Also {
                cron: self.screen == Screen::Activity || self.cron.is_none(),
                // After an action (and on `r`) the checks run too: the header must not keep
                // judging the table as it was before the action.
                checks: self.screen == Screen::Health || exact_pass || force,
                partitions: self.screen == Screen::Partitions,
                model: force,
                exact_now,
            },
        })
    }
}

/// The pure state transition: state and event in, requests for the worker out.
pub fn update(app: &mut App, event: Event) -> Vec<Request> {
    match event {
        Event::Tick(now) => {
            app.now = now;
            if app
                .flash
                .as_ref()
                .is_some_and(|f| now.saturating_duration_since(f.at) >= FLASH_TTL)
            {
                app.flash = None;
            }
            app.maybe_refresh(false).into_iter().collect()
        }
        Event::Resize { width, height } => {
            app.viewport = Some((width, height));
            app.clamp_help_scroll();
            Vec::new()
        }
        Event::Paste(text) if app.input.is_some() => {
            app.paste(&text);
            Vec::new()
        }
        Event::Paste(_) => Vec::new(),
        Event::Key(key) if app.input.is_some() => app.on_input(key),
        Event::Key(key) => {
            let (contexts, modal) = app.contexts();
            match keys::action_for(&contexts, modal, &key) {
                Some(action) => {
                    if matches!(app.overlay, Some(Overlay::Help { .. })) {
                        return app.on_help_action(action);
                    }
                    let mut out = app.on_action(action);
                    out.extend(app.records_need_loading());
                    out
                }
                None => Vec::new(),
            }
        }
        Event::Db(ev) => app.on_db(ev),
    }
}

/// The wait before reconnection attempt `attempt` (0 first): 0.5 s doubling to 30 s at most.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1u64 << attempt.min(6))).min(MAX_BACKOFF)
}

/// Up/Down move a selection within `n` items, stopping at either end; other actions do not.
fn step(selected: &mut usize, n: usize, action: Action) {
    match action {
        Action::Up => *selected = selected.saturating_sub(1),
        Action::Down if *selected + 1 < n => *selected += 1,
        _ => {}
    }
}

#[cfg(test)]
mod tests;
