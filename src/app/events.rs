//! The messages between the UI and the database tasks: requests out, events in.

use super::*;

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
    /// A page or a lookup of a table of another shape, by its mapped key.
    LoadMapped(super::mapped::MappedRequest),
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
    /// Run the exact per-operation pass now, outside its CPU budget (`E`: on demand).
    pub exact_now: bool,
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
    Mapped {
        generation: u64,
        result: Result<Box<super::mapped::MappedResult>, DbError>,
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
