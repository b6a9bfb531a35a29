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
            _ => false,
        }
    }
}

pub struct Binding {
    pub keys: &'static [Key],
    pub context: Context,
    pub action: Action,
    pub help: &'static str,
    /// Changes the database: disabled (and shown so) in read-only mode.
    pub writes: bool,
}

const fn b(keys: &'static [Key], context: Context, action: Action, help: &'static str) -> Binding {
    Binding {
        keys,
        context,
        action,
        help,
        writes: false,
    }
}

const fn w(keys: &'static [Key], context: Context, action: Action, help: &'static str) -> Binding {
    Binding {
        keys,
        context,
        action,
        help,
        writes: true,
    }
}

use Context as C;
use Key as K;

pub static BINDINGS: &[Binding] = &[
    b(
        &[K::Char('?')],
        C::Global,
        Action::ToggleHelp,
        "show or hide this help",
    ),
    b(
        &[K::Char('q'), K::Ctrl('c')],
        C::Global,
        Action::Quit,
        "quit",
    ),
    b(
        &[K::Esc],
        C::Global,
        Action::Back,
        "close what is on top (never quits)",
    ),
    b(&[K::Tab], C::Global, Action::NextScreen, "next screen"),
    b(
        &[K::BackTab],
        C::Global,
        Action::PrevScreen,
        "previous screen",
    ),
    b(
        &[K::Char('1')],
        C::Global,
        Action::GoTo(Screen::Dashboard),
        "dashboard",
    ),
    b(
        &[K::Char('2')],
        C::Global,
        Action::GoTo(Screen::Records),
        "records",
    ),
    b(
        &[K::Char('3')],
        C::Global,
        Action::GoTo(Screen::Partitions),
        "partitions",
    ),
    b(
        &[K::Char('4')],
        C::Global,
        Action::GoTo(Screen::Health),
        "health checks",
    ),
    b(
        &[K::Char('5')],
        C::Global,
        Action::GoTo(Screen::Activity),
        "activity log",
    ),
    b(
        &[K::Char('r')],
        C::Global,
        Action::RefreshNow,
        "refresh now",
    ),
    b(
        &[K::Char(' ')],
        C::Global,
        Action::TogglePause,
        "pause / resume refreshing",
    ),
    b(
        &[K::Char('+'), K::Char('=')],
        C::Global,
        Action::SlowerRefresh,
        "refresh less often (+1 s)",
    ),
    b(
        &[K::Char('-')],
        C::Global,
        Action::FasterRefresh,
        "refresh more often (-1 s)",
    ),
    b(
        &[K::Char('/')],
        C::Global,
        Action::Lookup,
        "look a record up by request_id",
    ),
    w(
        &[K::Char('c')],
        C::Global,
        Action::Cleanup,
        "cleanup: delete expired rows in batches",
    ),
    w(
        &[K::Char('a')],
        C::Global,
        Action::Analyze,
        "ANALYZE the table",
    ),
    w(
        &[K::Char('v')],
        C::Global,
        Action::Vacuum,
        "VACUUM (ANALYZE) the table",
    ),
    w(
        &[K::Char('S')],
        C::Global,
        Action::ScheduleCron,
        "schedule the hourly pg_cron cleanup job",
    ),
    w(
        &[K::Char('U')],
        C::Global,
        Action::UnscheduleCron,
        "unschedule the pg_cron cleanup job",
    ),
    b(
        &[K::Up, K::Char('k')],
        C::Dashboard,
        Action::Up,
        "select previous operation",
    ),
    b(
        &[K::Down, K::Char('j')],
        C::Dashboard,
        Action::Down,
        "select next operation",
    ),
    b(
        &[K::Enter],
        C::Dashboard,
        Action::Open,
        "open records of the selected operation",
    ),
    b(
        &[K::Up, K::Char('k')],
        C::Records,
        Action::Up,
        "previous record",
    ),
    b(
        &[K::Down, K::Char('j')],
        C::Records,
        Action::Down,
        "next record",
    ),
    b(
        &[K::PageDown, K::Char('n')],
        C::Records,
        Action::PageDown,
        "next page",
    ),
    b(
        &[K::PageUp, K::Char('p')],
        C::Records,
        Action::PageUp,
        "previous page",
    ),
    b(
        &[K::Home, K::Char('g')],
        C::Records,
        Action::Home,
        "first page",
    ),
    b(
        &[K::Enter],
        C::Records,
        Action::Open,
        "open the record's detail",
    ),
    b(
        &[K::Char('s')],
        C::Records,
        Action::CycleSort,
        "sort: newest, oldest, expiring soonest, expiring latest",
    ),
    b(
        &[K::Char('f')],
        C::Records,
        Action::CycleStatus,
        "status filter: all, 2xx, 3xx, 4xx, 5xx, other",
    ),
    b(
        &[K::Char('l')],
        C::Records,
        Action::CycleLiveness,
        "live filter: all, live, expired",
    ),
    b(
        &[K::Char('o')],
        C::Records,
        Action::FilterOperation,
        "filter by operation (type a name)",
    ),
    b(
        &[K::Char('x')],
        C::Records,
        Action::ClearFilters,
        "clear all filters",
    ),
    w(
        &[K::Char('d')],
        C::Records,
        Action::Delete,
        "delete the selected record",
    ),
    b(&[K::Up, K::Char('k')], C::Detail, Action::Up, "scroll up"),
    b(
        &[K::Down, K::Char('j')],
        C::Detail,
        Action::Down,
        "scroll down",
    ),
    b(&[K::PageUp], C::Detail, Action::PageUp, "page up"),
    b(
        &[K::PageDown, K::Char(' ')],
        C::Detail,
        Action::PageDown,
        "page down",
    ),
    w(
        &[K::Char('d')],
        C::Detail,
        Action::Delete,
        "delete this record",
    ),
    b(
        &[K::Up, K::Char('k')],
        C::Health,
        Action::Up,
        "previous check",
    ),
    b(
        &[K::Down, K::Char('j')],
        C::Health,
        Action::Down,
        "next check",
    ),
    b(
        &[K::Enter],
        C::Health,
        Action::Open,
        "explain the check and what to do",
    ),
    b(
        &[K::Up, K::Char('k')],
        C::Partitions,
        Action::Up,
        "previous partition",
    ),
    b(
        &[K::Down, K::Char('j')],
        C::Partitions,
        Action::Down,
        "next partition",
    ),
    // `y` only: Enter, pressed out of habit (it opens things everywhere else), must never
    // delete a record or drop anything.
    b(
        &[K::Char('y')],
        C::Confirm,
        Action::Confirm,
        "confirm (Enter does not)",
    ),
    b(
        &[K::Char('n'), K::Esc],
        C::Confirm,
        Action::Cancel,
        "cancel",
    ),
    b(
        &[K::Esc],
        C::Running,
        Action::Cancel,
        "stop the cleanup after the current batch",
    ),
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
        .map(|b| {
            let keys: Vec<String> = b.keys.iter().map(|k| k.label()).collect();
            (keys.join("/"), b.help)
        })
        .collect()
}

/// Help lines, grouped by context: (context, title, [(keys, help, writes)]).
pub type HelpSection = (Context, &'static str, Vec<(String, &'static str, bool)>);

const GOTO_HELP: &str = "screens: dashboard, records, partitions, health, activity";

pub fn help_sections() -> Vec<HelpSection> {
    let order = [
        Context::Global,
        Context::Dashboard,
        Context::Records,
        Context::Detail,
        Context::Health,
        Context::Partitions,
        Context::Confirm,
        Context::Running,
    ];
    order
        .iter()
        .map(|ctx| {
            let mut rows: Vec<(String, &'static str, bool)> = Vec::new();
            for b in BINDINGS.iter().filter(|b| b.context == *ctx) {
                if let Action::GoTo(_) = b.action {
                    // The number keys share one line: "1…5  screens: ...".
                    if !rows.iter().any(|(_, h, _)| *h == GOTO_HELP) {
                        rows.push(("1…5".into(), GOTO_HELP, false));
                    }
                    continue;
                }
                let keys: Vec<String> = b.keys.iter().map(|k| k.label()).collect();
                rows.push((keys.join("/"), b.help, b.writes));
            }
            (*ctx, ctx.title(), rows)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn contract_keys_dispatch() {
        let g = |c| action_for(&[Context::Dashboard], false, &key(c));
        assert_eq!(g(KeyCode::Char('?')), Some(Action::ToggleHelp));
        assert_eq!(g(KeyCode::Char('q')), Some(Action::Quit));
        assert_eq!(g(KeyCode::Char('/')), Some(Action::Lookup));
        assert_eq!(g(KeyCode::Char('c')), Some(Action::Cleanup));
        assert_eq!(g(KeyCode::Char('a')), Some(Action::Analyze));
        assert_eq!(g(KeyCode::Char('v')), Some(Action::Vacuum));
        assert_eq!(g(KeyCode::Char('r')), Some(Action::RefreshNow));
        assert_eq!(g(KeyCode::Char(' ')), Some(Action::TogglePause));
        assert_eq!(g(KeyCode::Char('+')), Some(Action::SlowerRefresh));
        assert_eq!(g(KeyCode::Char('-')), Some(Action::FasterRefresh));
        assert_eq!(g(KeyCode::Tab), Some(Action::NextScreen));
        assert_eq!(g(KeyCode::BackTab), Some(Action::PrevScreen));
        assert_eq!(g(KeyCode::Esc), Some(Action::Back));
        assert_eq!(g(KeyCode::Char('2')), Some(Action::GoTo(Screen::Records)));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(
            action_for(&[Context::Confirm], true, &ctrl_c),
            Some(Action::Quit)
        );
    }

    #[test]
    fn dialog_is_modal() {
        let c = |code| action_for(&[Context::Confirm], true, &key(code));
        assert_eq!(c(KeyCode::Char('y')), Some(Action::Confirm));
        assert_eq!(c(KeyCode::Enter), None, "Enter never confirms");
        assert_eq!(c(KeyCode::Char('Y')), None, "only a lower-case y confirms");
        assert_eq!(c(KeyCode::Char('n')), Some(Action::Cancel));
        assert_eq!(c(KeyCode::Esc), Some(Action::Cancel));
        assert_eq!(
            c(KeyCode::Char('q')),
            None,
            "q does not quit behind a dialog"
        );
        assert_eq!(c(KeyCode::Char('c')), None);
    }

    #[test]
    fn only_y_confirms_anywhere_in_the_table() {
        for b in BINDINGS.iter().filter(|b| b.action == Action::Confirm) {
            assert_eq!(b.keys, &[Key::Char('y')], "{:?}", b.context);
        }
        assert_eq!(
            hint(Context::Confirm),
            vec![
                ("y".to_string(), "confirm (Enter does not)"),
                ("n/Esc".to_string(), "cancel")
            ]
        );
    }

    #[test]
    fn records_keys_shadow_global_ones() {
        let r = |code| action_for(&[Context::Records], false, &key(code));
        assert_eq!(r(KeyCode::Char('d')), Some(Action::Delete));
        assert_eq!(r(KeyCode::Enter), Some(Action::Open));
        assert_eq!(r(KeyCode::Char('c')), Some(Action::Cleanup));
    }

    #[test]
    fn help_lists_every_binding_once() {
        let n: usize = help_sections().iter().map(|(_, _, rows)| rows.len()).sum();
        let goto = BINDINGS
            .iter()
            .filter(|b| matches!(b.action, Action::GoTo(_)))
            .count();
        assert_eq!(n, BINDINGS.len() - goto + 1, "number keys share one line");
        assert!(writes(Action::Cleanup) && writes(Action::Delete) && !writes(Action::Quit));
    }
}
