//! The one key table: it drives both dispatch and the help overlay, so they cannot drift apart.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::{Action, Screen};

/// Where a binding applies. Lookups try the innermost context first, then `Global`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Global,
    Dashboard,
    Records,
    Detail,
    Health,
    Partitions,
    Confirm,
    /// A long-running action in progress (cleanup): Esc stops it.
    Running,
    /// The text prompt (`/` look-up, `o` operation filter): modal, other keys are typed.
    Input,
    /// The help overlay: it scrolls.
    Help,
    /// The fleet's Overview: one row per target. Modal: only its own keys work there.
    Overview,
    /// A target's screens opened from the Overview, at their top level (no dialog, prompt,
    /// detail or running action): Esc and Backspace go back to the Overview.
    Fleet,
}

impl Context {
    pub fn title(self) -> &'static str {
        match self {
            Context::Global => "Everywhere",
            Context::Dashboard => "Dashboard",
            Context::Records => "Records",
            Context::Detail => "Record detail",
            Context::Health => "Health",
            Context::Partitions => "Partitions",
            Context::Confirm => "Confirmation dialog",
            Context::Running => "While a cleanup runs",
            Context::Input => "Text prompt (/ and o)",
            Context::Help => "This help",
            Context::Overview => "Overview (the fleet)",
            Context::Fleet => "A target opened from the Overview",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Ctrl(char),
    Esc,
    Enter,
    Tab,
    BackTab,
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    Backspace,
}

impl Key {
    pub fn label(self) -> String {
        match self {
            Key::Char(' ') => "space".into(),
            Key::Char(c) => c.to_string(),
            Key::Ctrl(c) => format!("Ctrl-{}", c.to_ascii_uppercase()),
            Key::Esc => "Esc".into(),
            Key::Enter => "Enter".into(),
            Key::Tab => "Tab".into(),
            Key::BackTab => "Shift-Tab".into(),
            Key::Up => "↑".into(),
            Key::Down => "↓".into(),
            Key::PageUp => "PgUp".into(),
            Key::PageDown => "PgDn".into(),
            Key::Home => "Home".into(),
            Key::End => "End".into(),
            Key::Backspace => "Backspace".into(),
        }
    }

    fn matches(self, ev: &KeyEvent) -> bool {
        let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
        match (self, ev.code) {
            (Key::Ctrl(c), KeyCode::Char(k)) => ctrl && k.eq_ignore_ascii_case(&c),
            (Key::Char(c), KeyCode::Char(k)) => !ctrl && k == c,
            (Key::Esc, KeyCode::Esc) => true,
            (Key::Enter, KeyCode::Enter) => true,
            (Key::Tab, KeyCode::Tab) => !ev.modifiers.contains(KeyModifiers::SHIFT),
            (Key::BackTab, KeyCode::BackTab) => true,
            (Key::BackTab, KeyCode::Tab) => ev.modifiers.contains(KeyModifiers::SHIFT),
            (Key::Up, KeyCode::Up) => true,
            (Key::Down, KeyCode::Down) => true,
            (Key::PageUp, KeyCode::PageUp) => true,
            (Key::PageDown, KeyCode::PageDown) => true,
            (Key::Home, KeyCode::Home) => true,
            (Key::End, KeyCode::End) => true,
            (Key::Backspace, KeyCode::Backspace) => true,
            _ => false,
        }
    }
}

pub struct Binding {
    pub keys: &'static [Key],
    pub context: Context,
    pub action: Action,
    /// A word or two for the footer's hint line ("" keeps it out of the footer: arrows and
    /// other keys everybody tries first).
    pub short: &'static str,
    /// The help overlay's line.
    pub help: &'static str,
    /// Changes the database: disabled (and shown so) in read-only mode.
    pub writes: bool,
}

const fn b(
    keys: &'static [Key],
    context: Context,
    action: Action,
    short: &'static str,
    help: &'static str,
) -> Binding {
    Binding {
        keys,
        context,
        action,
        short,
        help,
        writes: false,
    }
}

const fn w(
    keys: &'static [Key],
    context: Context,
    action: Action,
    short: &'static str,
    help: &'static str,
) -> Binding {
    Binding {
        keys,
        context,
        action,
        short,
        help,
        writes: true,
    }
}

use Context as C;
use Key as K;

mod help;
#[cfg(test)]
mod tests;

pub use help::*;

#[rustfmt::skip]
pub static BINDINGS: &[Binding] = &[
    b(&[K::Char('?')], C::Global, Action::ToggleHelp, "help", "show or hide this help"),
    b(&[K::Char('q'), K::Ctrl('c')], C::Global, Action::Quit, "quit", "quit"),
    b(&[K::Esc], C::Global, Action::Back, "", "close what is on top (never quits)"),
    b(&[K::Tab], C::Global, Action::NextScreen, "screens", "next screen"),
    b(&[K::BackTab], C::Global, Action::PrevScreen, "", "previous screen"),
    b(&[K::Char('1')], C::Global, Action::GoTo(Screen::Dashboard), "", "dashboard"),
    b(&[K::Char('2')], C::Global, Action::GoTo(Screen::Records), "", "records"),
    b(&[K::Char('3')], C::Global, Action::GoTo(Screen::Partitions), "", "partitions"),
    b(&[K::Char('4')], C::Global, Action::GoTo(Screen::Health), "", "health checks"),
    b(&[K::Char('5')], C::Global, Action::GoTo(Screen::Activity), "", "activity log"),
    b(&[K::Char('r')], C::Global, Action::RefreshNow, "refresh", "refresh now"),
    b(&[K::Char(' ')], C::Global, Action::TogglePause, "pause", "pause / resume refreshing"),
    b(&[K::Char('+'), K::Char('=')], C::Global, Action::SlowerRefresh, "", "refresh less often (+1 s)"),
    b(&[K::Char('-')], C::Global, Action::FasterRefresh, "", "refresh more often (-1 s)"),
    b(&[K::Char('/')], C::Global, Action::Lookup, "lookup", "look a record up by request_id"),
    w(&[K::Char('c')], C::Global, Action::Cleanup, "cleanup", "cleanup: delete expired rows in batches"),
    w(&[K::Char('a')], C::Global, Action::Analyze, "analyze", "ANALYZE the table"),
    w(&[K::Char('v')], C::Global, Action::Vacuum, "vacuum", "VACUUM (ANALYZE) the table"),
    w(&[K::Char('S')], C::Global, Action::ScheduleCron, "", "schedule the hourly pg_cron cleanup job"),
    w(&[K::Char('U')], C::Global, Action::UnscheduleCron, "", "unschedule the pg_cron cleanup job"),
    b(&[K::Up, K::Char('k')], C::Dashboard, Action::Up, "", "select previous operation"),
    b(&[K::Down, K::Char('j')], C::Dashboard, Action::Down, "", "select next operation"),
    b(&[K::Enter], C::Dashboard, Action::Open, "records", "open records of the selected operation"),
    b(&[K::Char('E')], C::Dashboard, Action::CountExactly, "", "count exactly now (one scan of the table)"),
    w(&[K::Char('C')], C::Dashboard, Action::CancelHolder, "", "cancel the xmin holder's query"),
    w(&[K::Char('T')], C::Dashboard, Action::TerminateHolder, "", "terminate the xmin holder"),
    b(&[K::Up, K::Char('k')], C::Records, Action::Up, "", "previous record"),
    b(&[K::Down, K::Char('j')], C::Records, Action::Down, "", "next record"),
    b(&[K::Char('n'), K::PageDown], C::Records, Action::PageDown, "next page", "next page"),
    b(&[K::Char('p'), K::PageUp], C::Records, Action::PageUp, "", "previous page"),
    b(&[K::Char('g'), K::Home], C::Records, Action::Home, "", "first page"),
    b(&[K::Enter], C::Records, Action::Open, "open", "open the record's detail"),
    b(&[K::Char('Y')], C::Records, Action::CopyKey, "copy key", "copy the request_id (OSC 52; also shown in full below)"),
    b(&[K::Char('s')], C::Records, Action::CycleSort, "sort", "sort: newest, oldest, expiring soonest, expiring latest"),
    b(&[K::Char('f')], C::Records, Action::CycleStatus, "status", "status filter: all, 2xx, 3xx, 4xx, 5xx, other"),
    b(&[K::Char('l')], C::Records, Action::CycleLiveness, "live", "live filter: all, live, expired"),
    b(&[K::Char('o')], C::Records, Action::FilterOperation, "operation", "filter by operation (type a name)"),
    b(&[K::Char('x')], C::Records, Action::ClearFilters, "clear", "clear all filters"),
    w(&[K::Char('d')], C::Records, Action::Delete, "delete", "delete the selected record"),
    b(&[K::Up, K::Char('k')], C::Detail, Action::Up, "", "scroll up"),
    b(&[K::Down, K::Char('j')], C::Detail, Action::Down, "", "scroll down"),
    b(&[K::PageUp], C::Detail, Action::PageUp, "", "page up"),
    b(&[K::PageDown, K::Char(' ')], C::Detail, Action::PageDown, "", "page down"),
    b(&[K::Char('Y')], C::Detail, Action::CopyKey, "copy key", "copy the request_id (OSC 52; also shown in full below)"),
    w(&[K::Char('d')], C::Detail, Action::Delete, "delete", "delete this record"),
    b(&[K::Esc], C::Detail, Action::Back, "back", "back to the list"),
    b(&[K::Up, K::Char('k')], C::Health, Action::Up, "", "previous check"),
    b(&[K::Down, K::Char('j')], C::Health, Action::Down, "", "next check"),
    b(&[K::Enter], C::Health, Action::Open, "explain", "explain the check and what to do"),
    b(
        &[K::Char('B')],
        C::Health,
        Action::MeasureSpace,
        "space",
        "measure free space exactly (pgstattuple; reads the whole table, bounded by a timeout)",
    ),
    b(&[K::Up, K::Char('k')], C::Partitions, Action::Up, "", "previous partition"),
    b(&[K::Down, K::Char('j')], C::Partitions, Action::Down, "", "next partition"),
    // `y` only: Enter, pressed out of habit (it opens things everywhere else), must never
    // delete a record or drop anything.
    b(&[K::Char('y')], C::Confirm, Action::Confirm, "confirm", "confirm (Enter does not)"),
    b(&[K::Char('n'), K::Esc], C::Confirm, Action::Cancel, "cancel", "cancel"),
    b(&[K::Esc], C::Running, Action::Cancel, "stop cleanup", "stop the cleanup after the current batch"),
    b(&[K::Enter], C::Input, Action::Submit, "ok", "look up / apply what was typed"),
    b(&[K::Esc], C::Input, Action::Cancel, "cancel", "cancel the prompt"),
    b(&[K::Ctrl('u')], C::Input, Action::ClearInput, "clear", "clear the line"),
    b(&[K::Backspace], C::Input, Action::DeleteChar, "", "delete the last character"),
    b(&[K::Char('j'), K::Down], C::Help, Action::Down, "scroll", "scroll down"),
    b(&[K::Char('k'), K::Up], C::Help, Action::Up, "", "scroll up"),
    b(&[K::PageDown, K::Char(' ')], C::Help, Action::PageDown, "page", "page down"),
    b(&[K::PageUp], C::Help, Action::PageUp, "", "page up"),
    b(&[K::Char('g'), K::Home], C::Help, Action::Home, "top", "to the top"),
    b(&[K::Char('G'), K::End], C::Help, Action::End, "end", "to the end"),
    b(&[K::Esc, K::Char('?')], C::Help, Action::Back, "close", "close the help"),
    b(&[K::Up, K::Char('k')], C::Overview, Action::Up, "", "previous target"),
    b(&[K::Down, K::Char('j')], C::Overview, Action::Down, "", "next target"),
    b(&[K::Enter], C::Overview, Action::Open, "open", "open the target's screens (Esc/Backspace come back)"),
    b(&[K::Char('r')], C::Overview, Action::RefreshNow, "refresh", "refresh every target now"),
    b(&[K::Char('/')], C::Overview, Action::FilterTargets, "filter", "filter the targets by name (empty: all)"),
    b(&[K::Char('?')], C::Overview, Action::ToggleHelp, "help", "show or hide this help"),
    b(&[K::Char('q')], C::Overview, Action::Quit, "quit", "quit"),
    b(&[K::Esc], C::Overview, Action::Back, "", "close the message or the filter (never quits)"),
    b(&[K::Esc, K::Backspace], C::Fleet, Action::ToOverview, "overview", "back to the Overview (when no dialog, prompt or detail is open)"),
];

/// The action for a key event, trying `contexts` innermost first. A modal context (a dialog)
/// lists only itself and `Global` is not consulted, except for Ctrl-C.
pub fn action_for(contexts: &[Context], modal: bool, ev: &KeyEvent) -> Option<Action> {
    if Key::Ctrl('c').matches(ev) {
        return Some(Action::Quit);
    }
    let search = |ctx: Context| {
        BINDINGS
            .iter()
            .filter(move |b| b.context == ctx)
            .find(|b| b.keys.iter().any(|k| k.matches(ev)))
            .map(|b| b.action)
    };
    for ctx in contexts {
        if let Some(a) = search(*ctx) {
            return Some(a);
        }
    }
    if modal {
        None
    } else {
        search(Context::Global)
    }
}

/// True when the action changes the database (for read-only mode).
pub fn writes(action: Action) -> bool {
    BINDINGS.iter().any(|b| b.action == action && b.writes)
}

/// The keys of `context` as a one-line hint, from the key table: "y confirm · n/Esc cancel".
pub fn hint(context: Context) -> Vec<(String, &'static str)> {
    BINDINGS
        .iter()
        .filter(|b| b.context == context)
        .map(|b| (keys_label(b), b.help))
        .collect()
}

fn keys_label(b: &Binding) -> String {
    let keys: Vec<String> = b.keys.iter().map(|k| k.label()).collect();
    keys.join("/")
}

/// The key that does `action` (its first one, as written in the key table), for text that
/// names a key: "[4] health", "S schedule".
pub fn key_for(action: Action) -> Option<String> {
    BINDINGS
        .iter()
        .find(|b| b.action == action)
        .and_then(|b| b.keys.first())
        .map(|k| k.label())
}

/// One entry of the footer's hint line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FooterHint {
    pub key: String,
    pub what: &'static str,
    /// A write, shown disabled in read-only mode.
    pub writes: bool,
}

/// The footer's hints for `contexts` (innermost first): `?` help first, then the keys of the
/// contexts that have a short label, then the global ones; a key shadowed by an inner context
/// is listed once, as the inner context uses it. A modal context lists only itself.
pub fn footer(contexts: &[Context], modal: bool) -> Vec<FooterHint> {
    let mut out: Vec<FooterHint> = Vec::new();
    let mut taken: Vec<Key> = Vec::new();
    let mut order: Vec<Context> = contexts.to_vec();
    if !modal && !order.contains(&Context::Global) {
        order.push(Context::Global);
    }
    let help = BINDINGS.iter().find(|b| b.action == Action::ToggleHelp);
    if let (false, Some(h)) = (modal, help) {
        out.push(FooterHint {
            key: h.keys[0].label(),
            what: h.short,
            writes: false,
        });
        taken.extend(h.keys);
    }
    for ctx in order {
        for b in BINDINGS.iter().filter(|b| b.context == ctx) {
            if b.keys.iter().all(|k| taken.contains(k)) {
                continue;
            }
            taken.extend(b.keys);
            if !b.short.is_empty() {
                out.push(FooterHint {
                    key: b.keys[0].label(),
                    what: b.short,
                    writes: b.writes,
                });
            }
        }
    }
    out
}

/// Every key that writes, once each, in the key table's order: "c a v S U d".
pub fn write_keys() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for b in BINDINGS.iter().filter(|b| b.writes) {
        for k in b.keys {
            let l = k.label();
            if !out.contains(&l) {
                out.push(l);
            }
        }
    }
    out
}

/// Help lines, grouped by context: (context, title, [(keys, help, writes)]).
pub type HelpSection = (Context, &'static str, Vec<(String, &'static str, bool)>);
