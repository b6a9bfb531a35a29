//! The parts of the application state: connection, overlays, input, screens' data, the log.

use super::*;

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
    /// The Overview's filter by target name.
    TargetFilter,
}

impl InputKind {
    pub fn prompt(self) -> &'static str {
        match self {
            InputKind::Lookup => "request_id: ",
            InputKind::Operation => "operation (empty: all): ",
            InputKind::TargetFilter => "target name contains (empty: all): ",
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
    /// `E` was pressed: the next refresh counts exactly now, whatever the pass's budget says.
    pub exact_requested: bool,
}

/// Static facts about the session, shown in the header.
#[derive(Debug, Clone, Default)]
pub struct SessionInfo {
    pub target: String,
    pub table: String,
    pub read_only: bool,
}
