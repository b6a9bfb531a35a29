//! Application state and the pure `update(state, event) -> requests`.
//!
//! Nothing here does I/O: the event loop feeds events in (keys, ticks, database results) and
//! sends the returned [`Request`]s to the worker. Tests drive `update` directly.

pub mod action;
pub mod dashboard;
pub mod keys;
pub mod payload;
pub mod records;

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

/// What the worker should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Refresh {
        generation: u64,
        exact_pass: bool,
        also: Also,
    },
    Run(Maintenance),
    /// Stop the running cleanup between batches.
    StopCleanup,
    /// Measure the table's heap with pgstattuple (`B` on Health).
    MeasureSpace,
    LoadPage(PageRequest),
    LoadRecord(Uuid),
}

/// What a refresh reads besides the snapshot, for the screens that show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Also {
    /// The pg_cron job and its runs (Activity screen).
    pub cron: bool,
    /// The health checks (Health screen, and with every exact pass for the header).
    pub checks: bool,
    /// The partitions (Partitions screen).
    pub partitions: bool,
    /// Read the table model again (`r`, after an action, on a screen change); otherwise the
    /// model read on this connection is reused while the table keeps its oid.
    pub model: bool,
}

/// A failed database request, already readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    pub message: String,
    /// The connection itself is gone (server restart, network): reconnect with backoff.
    pub connection_lost: bool,
}

/// Progress of a running maintenance action.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Progress {
    pub deleted: u64,
    /// `None`: the backlog was not counted.
    pub remaining: Option<u64>,
    pub batches: u64,
    pub rows_per_sec: f64,
    pub elapsed: Duration,
    pub batch_size: u32,
    /// A sweep's heap pages (done, total); `None` while walking the index.
    pub pages: Option<(u64, u64)>,
}

/// How a maintenance action ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub rows: Option<u64>,
    pub detail: String,
}

/// What comes back from the worker.
#[derive(Debug, Clone, PartialEq)]
pub enum DbEvent {
    Snapshot {
        generation: u64,
        result: Result<Box<Snapshot>, DbError>,
    },
    /// The refresh measured nothing: the table holds or awaits an ACCESS EXCLUSIVE lock (every
    /// query on it would queue behind). The last figures stay on screen, stale.
    Locked {
        generation: u64,
        lock: Box<crate::db::locks::TableLock>,
    },
    Progress(Progress),
    /// What `B` measured: the heap's free space (pgstattuple).
    Space(Result<crate::db::bloat::SpaceReport, DbError>),
    Cron(Result<crate::db::cron::CronStatus, DbError>),
    Checks(Result<Vec<crate::checks::CheckResult>, DbError>),
    Partitions(Result<Vec<crate::db::partitions::PartitionInfo>, DbError>),
    /// A page of records, and whether the sort walks an index.
    Page {
        generation: u64,
        result: Result<(crate::db::records::Page, bool), DbError>,
    },
    Record {
        id: Uuid,
        result: Result<Option<crate::db::records::Record>, DbError>,
    },
    Done {
        what: Maintenance,
        elapsed: Duration,
        result: Result<Finished, DbError>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Key(KeyEvent),
    /// Text pasted into the terminal (bracketed paste): one event, however long.
    Paste(String),
    /// The terminal's size, at start and on every change.
    Resize {
        width: u16,
        height: u16,
    },
    /// Time passes (the loop ticks a few times a second).
    Tick(Instant),
    Db(DbEvent),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    Connecting,
    Connected,
    /// The server went away (or cannot be reached, or does not answer in time); retrying with
    /// backoff, forever. The next retry is at `refresh.due`.
    Disconnected {
        /// Failed attempts in a row (1 after the first failure); the next retry is attempt
        /// `failures` of the reconnection.
        failures: u32,
        error: String,
        /// When the first of these failures came back.
        since: Instant,
    },
}

/// A one-line message for the footer, and when it was said (it expires after [`FLASH_TTL`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub text: String,
    pub at: Instant,
}

/// What the header says about the table's health, from the checks, and only when they are
/// current: data that is missing or stale (disconnected, locked, failed) is "unknown", never ok.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthSummary {
    Ok,
    Warning(usize),
    Critical(usize),
    /// Every check that ran is ok or unknown, and `n` are unknown (they had no data).
    SomeUnknown(usize),
    Unknown {
        why: UnknownWhy,
        /// What the checks said when they last had data: (critical, warning).
        last: Option<(usize, usize)>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownWhy {
    /// No checks evaluated yet.
    NotYet,
    /// The last refresh measured nothing (disconnected, locked, failed): the checks are old.
    Stale,
    /// The checks themselves failed.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    /// The keys; `scroll` is the first line shown.
    Help {
        scroll: usize,
    },
    Confirm(ConfirmDialog),
}

/// A destructive action waiting for `y`: what it is, and what the operator is told about it.
/// The strings may hold text from the database (operation names): the dialog sanitizes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmDialog {
    pub what: Maintenance,
    pub question: String,
    /// Facts about the target, as (label, value) lines: the record's key, operation, status...
    pub details: Vec<(String, String)>,
    /// Said plainly, in the critical colour: what could go wrong (a live key).
    pub warning: Option<String>,
}

/// A one-line text prompt at the bottom (`/` look-up, `o` operation filter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub kind: InputKind,
    pub text: String,
    pub error: Option<String>,
}

/// Most characters a prompt takes (a request_id is 36): a paste of kilobytes stops here, and
/// the prompt says so.
pub const MAX_INPUT_CHARS: usize = 256;

impl Input {
    pub fn new(kind: InputKind, text: String) -> Self {
        let mut input = Self {
            kind,
            text: String::new(),
            error: None,
        };
        input.type_str(&text);
        input.error = None;
        input
    }

    /// One typed character: control characters are refused, and so is a character past
    /// [`MAX_INPUT_CHARS`] (the prompt says why).
    pub fn type_char(&mut self, c: char) {
        if c.is_control() {
            return;
        }
        if self.text.chars().count() >= MAX_INPUT_CHARS {
            self.error = Some(format!(
                "at most {MAX_INPUT_CHARS} characters: the rest was not taken"
            ));
            return;
        }
        self.text.push(c);
        self.error = None;
    }

    /// Text pasted or typed at once, in one pass: line breaks and other control characters
    /// are dropped, and whatever is past [`MAX_INPUT_CHARS`] is not taken (the prompt says so).
    pub fn type_str(&mut self, s: &str) {
        let room = MAX_INPUT_CHARS.saturating_sub(self.text.chars().count());
        let mut typed = s.chars().filter(|c| !c.is_control());
        self.text.extend(typed.by_ref().take(room));
        let refused = typed.next().is_some();
        self.error = refused.then(|| {
            format!("at most {MAX_INPUT_CHARS} characters: the rest of the paste was not taken")
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Lookup,
    Operation,
}

impl InputKind {
    pub fn prompt(self) -> &'static str {
        match self {
            InputKind::Lookup => "request_id: ",
            InputKind::Operation => "operation (empty: all): ",
        }
    }
}

/// The Health screen: the checks as last evaluated.
#[derive(Debug, Clone, Default)]
pub struct HealthState {
    pub checks: Option<Vec<crate::checks::CheckResult>>,
    pub error: Option<String>,
    pub selected: usize,
    /// Enter: explain the selected check.
    pub expanded: bool,
    /// `B`: the free space measured on demand (None: not asked).
    pub space: Option<SpaceState>,
}

/// The on-demand measurement of the table's free space.
#[derive(Debug, Clone, PartialEq)]
pub enum SpaceState {
    Measuring,
    Measured(crate::db::bloat::SpaceReport),
    Failed(String),
}

#[derive(Debug, Clone, Default)]
pub struct PartitionsState {
    pub parts: Option<Vec<crate::db::partitions::PartitionInfo>>,
    pub error: Option<String>,
    pub selected: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub what: Maintenance,
    pub started: Instant,
    pub progress: Option<Progress>,
    pub stopping: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub at: DateTime<Utc>,
    pub what: String,
    pub elapsed: Option<Duration>,
    pub rows: Option<u64>,
    pub ok: bool,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Refresh {
    pub interval: Duration,
    pub paused: bool,
    /// Generation of the refresh in flight; a result with another generation is dropped.
    pub in_flight: Option<u64>,
    pub generation: u64,
    pub due: Instant,
    pub last_exact_pass: Option<Instant>,
}

/// Static facts about the session, shown in the header.
#[derive(Debug, Clone, Default)]
pub struct SessionInfo {
    pub target: String,
    pub table: String,
    pub read_only: bool,
}

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
}

impl App {
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
            let n = |l: Level| checks.iter().filter(|c| c.level == l && !c.pending).count();
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
        ctx
    }

    fn backoff(attempt: u32) -> Duration {
        Duration::from_millis(500u64.saturating_mul(1u64 << attempt.min(6))).min(MAX_BACKOFF)
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
            },
        })
    }

    fn confirm_question(&self, what: &Maintenance) -> String {
        let table = &self.session.table;
        match what {
            Maintenance::Cleanup => {
                let expired = self.dash.current.as_ref().map(|s| {
                    let approx = if s.rows.expired_exact { "" } else { "~" };
                    format!(
                        "{approx}{} expired rows",
                        crate::format::count(s.rows.expired)
                    )
                });
                format!(
                    "Delete {} from {table} in short batches (expires_at <= the server's now())?",
                    expired.unwrap_or_else(|| "all expired rows".into())
                )
            }
            Maintenance::Analyze => format!("Run ANALYZE on {table}?"),
            Maintenance::Vacuum => {
                format!("Run VACUUM (ANALYZE) on {table}? It reads the whole table.")
            }
            Maintenance::ScheduleCron => {
                "Schedule pg_cron job 'cleanup-idempotency' hourly (0 * * * *)?".into()
            }
            Maintenance::UnscheduleCron => "Unschedule pg_cron job 'cleanup-idempotency'?".into(),
            Maintenance::DeleteRecord(_) => format!("Delete this record from {table}?"),
            Maintenance::CancelBackend(t) => format!(
                "Cancel the current query of pid {}? Its transaction stays open if it is idle in one.",
                t.pid
            ),
            Maintenance::TerminateBackend(t) => format!(
                "Terminate pid {}? Its session ends and its open transaction is rolled back.",
                t.pid
            ),
        }
    }

    /// The backend holding the xmin horizon as last shown.
    pub fn horizon_holder(&self) -> Option<&crate::db::horizon::Holder> {
        self.dash
            .current
            .as_ref()?
            .vacuum
            .xmin_horizon
            .as_ref()?
            .holder
            .as_ref()
    }

    /// `C` / `T`: ask to signal the holder when it is a backend; for a slot, a prepared
    /// transaction or a standby, say what the operator can run instead (never run here).
    fn ask_signal(&mut self, terminate: bool) {
        let Some(h) = self.horizon_holder().cloned() else {
            self.say("nothing holds the xmin horizon back: no backend to signal");
            return;
        };
        let Some(target) = h.signal_target() else {
            let what = crate::sanitize::line(&h.describe());
            let text = match h.operator_sql() {
                Some(sql) => format!(
                    "{what} holds the horizon; idemtop never does this itself, run it if you are sure: {sql}"
                ),
                None => format!(
                    "{what} holds the horizon: end the query on that standby (or turn its hot_standby_feedback off)"
                ),
            };
            self.say(text);
            return;
        };
        let what = if terminate {
            Maintenance::TerminateBackend(target)
        } else {
            Maintenance::CancelBackend(target)
        };
        if !self.refusal(&what) {
            return;
        }
        let question = self.confirm_question(&what);
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        let mut details = vec![
            ("pid".to_string(), target.pid.to_string()),
            ("user".to_string(), opt(&h.user)),
            ("app".to_string(), opt(&h.application)),
            ("client".to_string(), opt(&h.client)),
            ("state".to_string(), opt(&h.state)),
        ];
        if let Some(x) = h.xact_start {
            let age = h
                .age_secs
                .map(|a| format!(" ({} ago)", crate::format::duration_secs(a.max(0.0))))
                .unwrap_or_default();
            details.push((
                "began".to_string(),
                format!("{}{age}", x.format("%Y-%m-%d %H:%M:%S UTC")),
            ));
        }
        details.push(("query".to_string(), opt(&h.query)));
        if let Some(n) = self
            .dash
            .current
            .as_ref()
            .and_then(|s| s.vacuum.xmin_horizon.as_ref())
            .and_then(|x| x.unremovable)
        {
            details.push((
                "keeps".to_string(),
                format!("~{} dead rows from VACUUM", crate::format::count(n)),
            ));
        }
        self.overlay = Some(Overlay::Confirm(ConfirmDialog {
            what,
            question,
            details,
            warning: Some(
                "Only if it is still this backend in this transaction (checked before the signal); \
                 the application sees an error."
                    .to_string(),
            ),
        }));
    }

    /// Whether a write may be asked for now; if not, says why in the footer and returns false.
    fn refusal(&mut self, what: &Maintenance) -> bool {
        if self.session.read_only {
            self.say(format!("read-only mode: {} is disabled", what.verb()));
            return false;
        }
        if self
            .dash
            .current
            .as_ref()
            .is_some_and(|s| s.standby.is_some())
        {
            self.say(format!(
                "{} is disabled: {}",
                what.verb(),
                crate::db::horizon::STANDBY_REFUSAL
            ));
            return false;
        }
        if let Some(r) = &self.running {
            self.say(format!(
                "{} is still running: one maintenance action at a time",
                r.what.verb()
            ));
            return false;
        }
        true
    }

    /// The server's clock now: its newest reading (the records page's or the last refresh's)
    /// plus the time elapsed since on this machine's monotonic clock. Ages drawn from it tick.
    pub fn server_now(&self) -> Option<DateTime<Utc>> {
        let since = |at: Instant| {
            chrono::Duration::from_std(self.now.saturating_duration_since(at)).unwrap_or_default()
        };
        [
            self.records
                .page
                .as_ref()
                .zip(self.records.loaded_at)
                .map(|(p, at)| p.server_now + since(at)),
            self.dash
                .current
                .as_ref()
                .zip(self.dash.updated_at)
                .map(|(s, at)| s.taken_at + since(at)),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    /// The delete dialog's facts about the row as shown, and the warning when the key is live.
    fn delete_details(
        &self,
        row: &crate::db::records::RecordSummary,
    ) -> (Vec<(String, String)>, Option<String>) {
        use records::{expires_relative, ts_full};
        let mut details = vec![
            ("key".to_string(), row.request_id.to_string()),
            ("operation".to_string(), row.operation.clone()),
            (
                "status".to_string(),
                row.status_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "NULL".into()),
            ),
        ];
        let now = self.server_now();
        let expires = match (row.expires_at, now) {
            (crate::db::ts::Ts::Infinity, _) => "never (infinity)".to_string(),
            (ts, Some(now)) => format!("{} ({})", ts_full(ts), expires_relative(ts, now)),
            (ts, None) => ts_full(ts),
        };
        details.push(("expires".to_string(), expires));
        let live = match (row.expires_at, now) {
            (crate::db::ts::Ts::Infinity, _) => Some(true),
            (crate::db::ts::Ts::NegInfinity, _) => Some(false),
            (_, Some(now)) => Some(row.is_live(now)),
            (_, None) => None,
        };
        let warning = match live {
            Some(true) => Some(
                "LIVE key: a client retry with it will run the operation again (a second charge)."
                    .to_string(),
            ),
            Some(false) => {
                details.push((
                    "state".to_string(),
                    "expired: a client retry already runs the operation again".to_string(),
                ));
                None
            }
            None => Some(
                "The server's clock was not read yet: if the key is live, a client retry with it \
                 will run the operation again (a second charge)."
                    .to_string(),
            ),
        };
        (details, warning)
    }

    fn ask(&mut self, what: Maintenance) {
        if !self.refusal(&what) {
            return;
        }
        let question = self.confirm_question(&what);
        let (details, warning) = match (&what, self.records.action_target()) {
            (Maintenance::DeleteRecord(v), Some(row)) if row.version() == *v => {
                self.delete_details(row)
            }
            _ => (Vec::new(), None),
        };
        self.overlay = Some(Overlay::Confirm(ConfirmDialog {
            what,
            question,
            details,
            warning,
        }));
    }

    fn on_action(&mut self, action: Action) -> Vec<Request> {
        let mut out = Vec::new();
        match action {
            Action::Quit => self.quit = true,
            Action::ToggleHelp => {
                self.overlay = match self.overlay {
                    Some(Overlay::Help { .. }) => None,
                    _ => Some(Overlay::Help { scroll: 0 }),
                }
            }
            Action::Back => {
                if self.overlay.is_some() {
                    self.overlay = None;
                } else if self.screen == Screen::Records && self.records.detail.is_some() {
                    self.records.detail = None;
                } else if self.screen == Screen::Health && self.health.expanded {
                    self.health.expanded = false;
                } else if self.flash.is_some() {
                    self.flash = None;
                }
            }
            Action::Cancel => {
                if matches!(self.overlay, Some(Overlay::Confirm(_))) {
                    self.overlay = None;
                    self.say("cancelled");
                } else if let Some(r) = &mut self.running {
                    if !r.stopping {
                        r.stopping = true;
                        out.push(Request::StopCleanup);
                    }
                }
            }
            Action::Confirm => {
                if let Some(Overlay::Confirm(ConfirmDialog { what, .. })) = self.overlay.take() {
                    self.running = Some(Running {
                        what: what.clone(),
                        started: self.now,
                        progress: None,
                        stopping: false,
                    });
                    out.push(Request::Run(what));
                }
            }
            Action::RefreshNow => {
                out.extend(self.maybe_refresh(true));
                if self.refresh.in_flight.is_some() && out.is_empty() {
                    self.say("a refresh is already in flight");
                }
                // On the records screen, `r` also reads what is shown again (after a delete that
                // found the record changed, the operator is told to press r).
                if self.screen == Screen::Records {
                    match &self.records.detail {
                        Some(d) => {
                            let id = d.id;
                            // What is on screen stays there until the new read arrives.
                            if let Some(d) = self.records.detail.as_mut() {
                                d.loading = true;
                            }
                            out.push(Request::LoadRecord(id));
                        }
                        None if self.records.page.is_some() || self.records.error.is_some() => {
                            out.push(Request::LoadPage(self.records.reload_current()))
                        }
                        None => {}
                    }
                }
            }
            Action::TogglePause => {
                self.refresh.paused = !self.refresh.paused;
                if !self.refresh.paused {
                    self.refresh.due = self.now;
                    out.extend(self.maybe_refresh(false));
                }
            }
            Action::SlowerRefresh => {
                self.refresh.interval =
                    (self.refresh.interval + Duration::from_secs(1)).min(MAX_INTERVAL)
            }
            Action::FasterRefresh => {
                self.refresh.interval = self
                    .refresh
                    .interval
                    .saturating_sub(Duration::from_secs(1))
                    .max(MIN_INTERVAL)
            }
            Action::NextScreen | Action::PrevScreen | Action::GoTo(_) => {
                let before = self.screen;
                self.screen = match action {
                    Action::NextScreen => self.screen.next(),
                    Action::PrevScreen => self.screen.prev(),
                    Action::GoTo(s) => s,
                    _ => self.screen,
                };
                // A screen with its own data gets it now, not at the next interval.
                let needs = match self.screen {
                    Screen::Health => self.health.checks.is_none(),
                    // Only a partitioned table has partitions to list.
                    Screen::Partitions => {
                        self.partitions.parts.is_none()
                            && self.dash.current.as_ref().is_some_and(|s| s.partitioned)
                    }
                    Screen::Activity => true,
                    _ => false,
                };
                if before != self.screen && needs {
                    out.extend(self.maybe_refresh(true));
                }
            }
            Action::Cleanup => self.ask(Maintenance::Cleanup),
            Action::Analyze => self.ask(Maintenance::Analyze),
            Action::Vacuum => self.ask(Maintenance::Vacuum),
            Action::ScheduleCron => self.ask(Maintenance::ScheduleCron),
            Action::UnscheduleCron => self.ask(Maintenance::UnscheduleCron),
            Action::CancelHolder => self.ask_signal(false),
            Action::TerminateHolder => self.ask_signal(true),
            Action::Lookup => self.input = Some(Input::new(InputKind::Lookup, String::new())),
            Action::FilterOperation => {
                self.input = Some(Input::new(
                    InputKind::Operation,
                    self.records.filter.operation.clone().unwrap_or_default(),
                ))
            }
            Action::Up | Action::Down | Action::PageUp | Action::PageDown | Action::Home => {
                out.extend(self.on_move(action))
            }
            Action::MeasureSpace => {
                if self.health.space == Some(SpaceState::Measuring) {
                    self.say("the free space is being measured");
                } else {
                    self.health.space = Some(SpaceState::Measuring);
                    out.push(Request::MeasureSpace);
                }
            }
            Action::Open => match self.screen {
                Screen::Dashboard => {
                    if let Some(op) = self.dash.selected_operation().map(str::to_owned) {
                        self.records.filter.operation = Some(op);
                        self.records.detail = None;
                        self.screen = Screen::Records;
                        out.push(Request::LoadPage(self.records.reload()));
                    }
                }
                Screen::Records if self.records.detail.is_none() => {
                    if let Some(id) = self.records.selected_id() {
                        self.records.open(id);
                        out.push(Request::LoadRecord(id));
                    }
                }
                Screen::Health => self.health.expanded = !self.health.expanded,
                _ => {}
            },
            Action::Delete => match self.records.action_target().map(|r| r.version()) {
                // The version shown, never the key alone: see `db::records::RowVersion`.
                Some(version) => self.ask(Maintenance::DeleteRecord(version)),
                None if self.records.detail.is_some() => {
                    self.say("no record loaded here: nothing to delete")
                }
                None => {}
            },
            Action::CycleSort => {
                self.records.sort = self.records.sort.next();
                out.push(Request::LoadPage(self.records.reload()));
            }
            Action::CycleStatus => {
                self.records.cycle_status();
                out.push(Request::LoadPage(self.records.reload()));
            }
            Action::CycleLiveness => {
                self.records.cycle_liveness();
                out.push(Request::LoadPage(self.records.reload()));
            }
            Action::ClearFilters => {
                self.records.filter = Default::default();
                out.push(Request::LoadPage(self.records.reload()));
            }
            Action::CopyKey => {
                let id = match &self.records.detail {
                    Some(d) => Some(d.id),
                    None => self.records.selected_id(),
                };
                if let Some(id) = id {
                    // Whole in the footer too: a terminal that ignores OSC 52 still lets the
                    // operator select it there.
                    self.clipboard = Some(id.to_string());
                    self.say(format!("request_id {id} copied (OSC 52)"));
                }
            }
            // The help's and the prompt's own keys: handled there, nothing to do elsewhere.
            Action::End | Action::Submit | Action::ClearInput | Action::DeleteChar => {}
        }
        out
    }

    /// Arrow and page keys: the operations list, the records list, or the detail's scroll.
    fn on_move(&mut self, action: Action) -> Vec<Request> {
        let mut out = Vec::new();
        match self.screen {
            Screen::Dashboard => {
                let n = self.dash.current.as_ref().map_or(0, |s| s.operations.len());
                step(&mut self.dash.selected_op, n, action);
            }
            Screen::Records => {
                if let Some(d) = &mut self.records.detail {
                    d.scroll = match action {
                        Action::Up => d.scroll.saturating_sub(1),
                        Action::Down => d.scroll + 1,
                        Action::PageUp => d.scroll.saturating_sub(20),
                        Action::PageDown => d.scroll + 20,
                        _ => 0,
                    }
                    .min(d.view.lines.len().saturating_sub(1));
                } else {
                    let n = self.records.page.as_ref().map_or(0, |p| p.rows.len());
                    match action {
                        Action::Up | Action::Down => step(&mut self.records.selected, n, action),
                        Action::PageDown => match self.records.next_page() {
                            Some(r) => out.push(Request::LoadPage(r)),
                            None => self.say("last page"),
                        },
                        Action::PageUp => {
                            out.extend(self.records.prev_page().map(Request::LoadPage))
                        }
                        Action::Home => out.push(Request::LoadPage(self.records.reload())),
                        _ => {}
                    }
                }
            }
            Screen::Health => {
                let n = self.health.checks.as_ref().map_or(0, Vec::len);
                step(&mut self.health.selected, n, action);
            }
            Screen::Partitions => {
                let n = self.partitions.parts.as_ref().map_or(0, Vec::len);
                step(&mut self.partitions.selected, n, action);
            }
            Screen::Activity => {}
        }
        out
    }

    /// Keys while the text prompt is open: the prompt's keys from the key table (Enter submits,
    /// Esc cancels, Ctrl-U clears, Backspace deletes); any other character is typed.
    fn on_input(&mut self, key: KeyEvent) -> Vec<Request> {
        use crossterm::event::{KeyCode, KeyModifiers};
        let Some(input) = self.input.as_mut() else {
            return Vec::new();
        };
        match keys::action_for(&[Context::Input], true, &key) {
            Some(Action::Quit) => self.quit = true,
            Some(Action::Cancel) => self.input = None,
            Some(Action::ClearInput) => {
                input.text.clear();
                input.error = None;
            }
            Some(Action::DeleteChar) => {
                input.text.pop();
                input.error = None;
            }
            Some(Action::Submit) => return self.submit_input(),
            _ => match key.code {
                KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                    input.type_char(c)
                }
                _ => {}
            },
        }
        Vec::new()
    }

    /// Pasted text goes into the prompt as typed, in one pass, up to the prompt's limit.
    fn paste(&mut self, text: &str) {
        if let Some(input) = self.input.as_mut() {
            input.type_str(text);
        }
    }

    fn submit_input(&mut self) -> Vec<Request> {
        let Some(input) = self.input.as_mut() else {
            return Vec::new();
        };
        let text = input.text.trim().to_string();
        match input.kind {
            InputKind::Lookup => match crate::db::records::parse_request_id(&text) {
                Ok(id) => {
                    self.input = None;
                    self.overlay = None;
                    self.screen = Screen::Records;
                    self.records.open(id);
                    vec![Request::LoadRecord(id)]
                }
                Err(msg) => {
                    input.error = Some(msg);
                    Vec::new()
                }
            },
            InputKind::Operation => {
                self.input = None;
                self.records.filter.operation = (!text.is_empty()).then_some(text);
                vec![Request::LoadPage(self.records.reload())]
            }
        }
    }

    /// Lines of the help for the current screen, per column, at the terminal's size (one
    /// column when the size is not known).
    fn help_max_scroll(&self) -> usize {
        let sections = keys::help_for(&self.screen_contexts());
        match self.viewport {
            Some((w, h)) => {
                let columns = keys::help_columns(sections, w, h);
                let len = columns.iter().map(Vec::len).max().unwrap_or(0);
                len.saturating_sub(keys::help_rows(h))
            }
            // Not known: every line can reach the top, the drawing keeps the page full.
            None => sections
                .iter()
                .map(Vec::len)
                .sum::<usize>()
                .saturating_sub(1),
        }
    }

    fn clamp_help_scroll(&mut self) {
        let max = self.help_max_scroll();
        if let Some(Overlay::Help { scroll }) = &mut self.overlay {
            *scroll = (*scroll).min(max);
        }
    }

    /// Keys while the help is open: scroll it, close it, or quit; nothing else acts behind it.
    fn on_help_action(&mut self, action: Action) -> Vec<Request> {
        let max = self.help_max_scroll();
        let page = self
            .viewport
            .map_or(10, |(_, h)| keys::help_rows(h).saturating_sub(1).max(1));
        let Some(Overlay::Help { scroll }) = &mut self.overlay else {
            return Vec::new();
        };
        let s = (*scroll).min(max);
        *scroll = match action {
            Action::Quit => {
                self.quit = true;
                return Vec::new();
            }
            Action::ToggleHelp | Action::Back => {
                self.overlay = None;
                return Vec::new();
            }
            Action::Up => s.saturating_sub(1),
            Action::Down => (s + 1).min(max),
            Action::PageUp => s.saturating_sub(page),
            Action::PageDown => (s + page).min(max),
            Action::Home => 0,
            Action::End => max,
            _ => s,
        };
        Vec::new()
    }

    /// The records view loads its first page when it is first shown.
    fn records_need_loading(&mut self) -> Option<Request> {
        let r = &self.records;
        (self.screen == Screen::Records
            && r.page.is_none()
            && r.loading.is_none()
            && r.error.is_none()
            && r.detail.is_none())
        .then(|| Request::LoadPage(self.records.reload()))
    }

    fn on_db(&mut self, ev: DbEvent) -> Vec<Request> {
        match ev {
            DbEvent::Cron(result) => {
                self.cron = Some(result.map_err(|e| e.message));
                Vec::new()
            }
            DbEvent::Checks(result) => {
                match result {
                    Ok(checks) => {
                        self.health.selected =
                            self.health.selected.min(checks.len().saturating_sub(1));
                        self.health.checks = Some(checks);
                        self.health.error = None;
                    }
                    Err(e) => self.health.error = Some(e.message),
                }
                Vec::new()
            }
            DbEvent::Partitions(result) => {
                match result {
                    Ok(parts) => {
                        self.partitions.selected =
                            self.partitions.selected.min(parts.len().saturating_sub(1));
                        self.partitions.parts = Some(parts);
                        self.partitions.error = None;
                    }
                    Err(e) => self.partitions.error = Some(e.message),
                }
                Vec::new()
            }
            DbEvent::Page { generation, result } => {
                self.records
                    .on_page(generation, result.map_err(|e| e.message), self.now);
                Vec::new()
            }
            DbEvent::Record { id, result } => {
                self.records.on_record(id, result.map_err(|e| e.message));
                Vec::new()
            }
            DbEvent::Snapshot { generation, result } => {
                if self.refresh.in_flight != Some(generation) {
                    return Vec::new(); // stale: a newer request superseded it
                }
                self.refresh.in_flight = None;
                match result {
                    Ok(snap) => {
                        self.dash.apply(*snap);
                        self.dash.updated_at = Some(self.now);
                        self.conn = ConnState::Connected;
                        self.refresh.due = self.now + self.refresh.interval;
                    }
                    Err(e) => {
                        self.dash.fail(e.message.clone());
                        self.dash.lock = None;
                        if e.connection_lost {
                            let (failures, since) = match &self.conn {
                                ConnState::Disconnected {
                                    failures, since, ..
                                } => (failures + 1, *since),
                                _ => (1, self.now),
                            };
                            self.refresh.due = self.now + Self::backoff(failures - 1);
                            self.conn = ConnState::Disconnected {
                                failures,
                                error: e.message,
                                since,
                            };
                        } else {
                            // The server answered: connected, but this refresh measured
                            // nothing (the header says "last refresh failed").
                            self.conn = ConnState::Connected;
                            self.refresh.due = self.now + self.refresh.interval;
                        }
                    }
                }
                Vec::new()
            }
            DbEvent::Locked { generation, lock } => {
                if self.refresh.in_flight != Some(generation) {
                    return Vec::new(); // stale: a newer request superseded it
                }
                self.refresh.in_flight = None;
                self.conn = ConnState::Connected;
                // The lock is said by itself (header, blocker panel), not as an error.
                self.dash.error = None;
                if self.dash.lock.is_none() {
                    self.dash.lock_since = Some(self.now);
                }
                self.dash.lock_at = Some(self.now);
                self.dash.lock = Some(*lock);
                self.refresh.due = self.now + self.refresh.interval;
                Vec::new()
            }
            DbEvent::Space(result) => {
                self.health.space = Some(match result {
                    Ok(f) => SpaceState::Measured(f),
                    Err(e) => SpaceState::Failed(e.message),
                });
                Vec::new()
            }
            DbEvent::Progress(p) => {
                if let Some(r) = &mut self.running {
                    r.progress = Some(p);
                }
                Vec::new()
            }
            DbEvent::Done {
                what,
                elapsed,
                result,
            } => {
                self.running = None;
                let ok = result.is_ok();
                let entry = match result {
                    Ok(f) => {
                        self.say(format!("{} done: {}", what.verb(), f.detail));
                        LogEntry {
                            at: Utc::now(),
                            what: what.verb().into(),
                            elapsed: Some(elapsed),
                            rows: f.rows,
                            ok: true,
                            message: f.detail,
                        }
                    }
                    Err(e) => {
                        self.say(format!("{} failed: {}", what.verb(), e.message));
                        LogEntry {
                            at: Utc::now(),
                            what: what.verb().into(),
                            elapsed: Some(elapsed),
                            rows: None,
                            ok: false,
                            message: e.message,
                        }
                    }
                };
                self.log(entry);
                let mut out: Vec<Request> = self.maybe_refresh(true).into_iter().collect();
                if let (Maintenance::DeleteRecord(v), true) = (&what, ok) {
                    if self
                        .records
                        .detail
                        .as_ref()
                        .is_some_and(|d| d.id == v.request_id)
                    {
                        self.records.detail = None;
                    }
                    if self.records.page.is_some() {
                        out.push(Request::LoadPage(self.records.reload_current()));
                    }
                }
                out
            }
        }
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
