//! What the user can ask for. Keys map to these through the one key table in `keys.rs`.

/// The screens, in Tab order; number keys 1..=5 jump to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Screen {
    #[default]
    Dashboard,
    Records,
    Partitions,
    Health,
    Activity,
}

impl Screen {
    pub const ALL: [Screen; 5] = [
        Screen::Dashboard,
        Screen::Records,
        Screen::Partitions,
        Screen::Health,
        Screen::Activity,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Screen::Dashboard => "Dashboard",
            Screen::Records => "Records",
            Screen::Partitions => "Partitions",
            Screen::Health => "Health",
            Screen::Activity => "Activity",
        }
    }

    pub fn index(self) -> usize {
        Self::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    pub fn next(self) -> Self {
        Self::ALL[(self.index() + 1) % Self::ALL.len()]
    }

    pub fn prev(self) -> Self {
        Self::ALL[(self.index() + Self::ALL.len() - 1) % Self::ALL.len()]
    }
}

/// A maintenance action that changes the database: always confirmed first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Maintenance {
    Cleanup,
    Analyze,
    Vacuum,
    ScheduleCron,
    UnscheduleCron,
    /// Delete exactly this row version (the one the operator was shown), never "whatever row
    /// holds the key now".
    DeleteRecord(crate::db::records::RowVersion),
    /// Cancel the query of the backend holding the xmin horizon, only if it is still the
    /// backend, in the transaction, the operator saw.
    CancelBackend(crate::db::horizon::SignalTarget),
    /// Terminate the backend holding the xmin horizon (same check first).
    TerminateBackend(crate::db::horizon::SignalTarget),
}

impl Maintenance {
    pub fn verb(&self) -> &'static str {
        match self {
            Maintenance::Cleanup => "cleanup",
            Maintenance::Analyze => "ANALYZE",
            Maintenance::Vacuum => "VACUUM (ANALYZE)",
            Maintenance::ScheduleCron => "schedule pg_cron job",
            Maintenance::UnscheduleCron => "unschedule pg_cron job",
            Maintenance::DeleteRecord(_) => "delete record",
            Maintenance::CancelBackend(_) => "cancel query",
            Maintenance::TerminateBackend(_) => "terminate backend",
        }
    }
}

/// Everything a key can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Quit,
    ToggleHelp,
    /// Esc: close whatever is on top; never quits.
    Back,
    RefreshNow,
    /// Count every operation exactly now (one serial scan of the table, bounded by a timeout).
    CountExactly,
    TogglePause,
    FasterRefresh,
    SlowerRefresh,
    NextScreen,
    PrevScreen,
    GoTo(Screen),
    Cleanup,
    Analyze,
    Vacuum,
    ScheduleCron,
    UnscheduleCron,
    Confirm,
    Cancel,
    /// `/`: look a record up by its request_id.
    Lookup,
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    Open,
    Delete,
    CycleSort,
    CycleStatus,
    CycleLiveness,
    FilterOperation,
    ClearFilters,
    /// `G`/End: to the end (the help).
    End,
    /// `Y`: copy the selected record's request_id (OSC 52) and show it whole.
    CopyKey,
    /// `C`: cancel the query of the backend holding the xmin horizon (confirmed).
    CancelHolder,
    /// `T`: terminate the backend holding the xmin horizon (confirmed).
    TerminateHolder,
    /// `B` (Health): measure the table's free space exactly with pgstattuple.
    MeasureSpace,
    /// In the text prompt: Enter, Ctrl-U, Backspace.
    Submit,
    ClearInput,
    DeleteChar,
    /// `/` on the Overview: filter the targets by name.
    FilterTargets,
    /// Esc/Backspace at the top level of a target opened from the Overview: back to it.
    ToOverview,
}
