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
        Context::Input,
        Context::Help,
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
                rows.push((keys_label(b), b.help, b.writes));
            }
            (*ctx, ctx.title(), rows)
        })
        .collect()
}

/// One line of the help overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelpLine {
    Title(&'static str),
    Key {
        keys: String,
        help: &'static str,
        writes: bool,
    },
}

/// The help for a screen whose contexts are `screen_contexts`: its own keys first, then those
/// that work everywhere, then the dialogs', the prompt's and the help's own; one section each.
pub fn help_for(screen_contexts: &[Context]) -> Vec<Vec<HelpLine>> {
    let mut contexts: Vec<Context> = screen_contexts
        .iter()
        .copied()
        .filter(|c| *c != Context::Global)
        .collect();
    contexts.extend([
        Context::Global,
        Context::Confirm,
        Context::Input,
        Context::Help,
    ]);
    let mut sections = help_sections();
    sections.retain(|(ctx, _, rows)| !rows.is_empty() && contexts.contains(ctx));
    sections.sort_by_key(|(ctx, _, _)| contexts.iter().position(|c| c == ctx));
    sections
        .into_iter()
        .map(|(_, title, rows)| {
            let mut lines = vec![HelpLine::Title(title)];
            lines.extend(rows.into_iter().map(|(keys, help, writes)| HelpLine::Key {
                keys,
                help,
                writes,
            }));
            lines
        })
        .collect()
}

/// Rows of help text visible in a terminal `height` rows high: the popup leaves the footer
/// (which shows the help's keys) in view, and has borders.
pub fn help_rows(height: u16) -> usize {
    usize::from(height.saturating_sub(3))
}

/// The help's sections laid out in columns for a `width` x `height` terminal: two columns when
/// the terminal is wide (120 or more) and one would not fit, split between sections as evenly
/// as possible; otherwise one column, which scrolls.
pub fn help_columns(sections: Vec<Vec<HelpLine>>, width: u16, height: u16) -> Vec<Vec<HelpLine>> {
    let total: usize = sections.iter().map(Vec::len).sum();
    if width < 120 || total <= help_rows(height) {
        return vec![sections.into_iter().flatten().collect()];
    }
    let half = total.div_ceil(2);
    let mut left = Vec::new();
    let mut right = Vec::new();
    for s in sections {
        if right.is_empty() && (left.is_empty() || left.len() + s.len() <= half) {
            left.extend(s);
        } else {
            right.extend(s);
        }
    }
    vec![left, right]
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

    #[test]
    fn the_footer_comes_from_the_key_table() {
        let f = footer(&[Context::Records], false);
        let keys: Vec<(&str, &str)> = f.iter().map(|h| (h.key.as_str(), h.what)).collect();
        assert_eq!(keys[0], ("?", "help"), "help first, always");
        for pair in [
            ("Enter", "open"),
            ("Y", "copy key"),
            ("s", "sort"),
            ("d", "delete"),
            ("q", "quit"),
            ("c", "cleanup"),
        ] {
            assert!(keys.contains(&pair), "{pair:?} in {keys:?}");
        }
        // The screen's own keys come before the global ones.
        let pos = |k: &str| keys.iter().position(|(key, _)| *key == k).unwrap();
        assert!(pos("s") < pos("q") && pos("d") < pos("c"));
        // Every hint is a binding of the table, in one of the contexts in force.
        for h in &f {
            assert!(
                BINDINGS.iter().any(|b| b.short == h.what
                    && b.keys[0].label() == h.key
                    && [Context::Records, Context::Global].contains(&b.context)),
                "{h:?}"
            );
        }
        // A dialog lists its own keys only.
        let d = footer(&[Context::Confirm], true);
        assert_eq!(
            d.iter()
                .map(|h| (h.key.as_str(), h.what))
                .collect::<Vec<_>>(),
            vec![("y", "confirm"), ("n", "cancel")]
        );
        // An inner context's key shadows the global one: Esc stops a running cleanup.
        let r = footer(&[Context::Running, Context::Dashboard], false);
        assert!(r.iter().any(|h| h.key == "Esc" && h.what == "stop cleanup"));
        assert_eq!(r.iter().filter(|h| h.key == "Esc").count(), 1);
    }

    #[test]
    fn key_names_come_from_the_table() {
        assert_eq!(key_for(Action::GoTo(Screen::Health)).as_deref(), Some("4"));
        assert_eq!(key_for(Action::ScheduleCron).as_deref(), Some("S"));
        assert_eq!(key_for(Action::CopyKey).as_deref(), Some("Y"));
        assert_eq!(write_keys(), vec!["c", "a", "v", "S", "U", "C", "T", "d"]);
    }

    #[test]
    fn the_help_and_the_prompt_have_their_keys() {
        let h = |code| action_for(&[Context::Help], false, &key(code));
        assert_eq!(h(KeyCode::Char('j')), Some(Action::Down));
        assert_eq!(h(KeyCode::Char('k')), Some(Action::Up));
        assert_eq!(h(KeyCode::PageDown), Some(Action::PageDown));
        assert_eq!(h(KeyCode::PageUp), Some(Action::PageUp));
        assert_eq!(h(KeyCode::Char('g')), Some(Action::Home));
        assert_eq!(h(KeyCode::Char('G')), Some(Action::End));
        assert_eq!(h(KeyCode::End), Some(Action::End));
        assert_eq!(h(KeyCode::Esc), Some(Action::Back));
        assert_eq!(h(KeyCode::Char('?')), Some(Action::Back));
        assert_eq!(h(KeyCode::Char('q')), Some(Action::Quit), "q still quits");
        let i = |code| action_for(&[Context::Input], true, &key(code));
        assert_eq!(i(KeyCode::Enter), Some(Action::Submit));
        assert_eq!(i(KeyCode::Esc), Some(Action::Cancel));
        assert_eq!(i(KeyCode::Backspace), Some(Action::DeleteChar));
        assert_eq!(i(KeyCode::Char('q')), None, "q is typed, never quits");
        let ctrl_u = KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL);
        assert_eq!(
            action_for(&[Context::Input], true, &ctrl_u),
            Some(Action::ClearInput)
        );
        // Y copies in the list and the detail; it never confirms a dialog.
        assert_eq!(
            action_for(&[Context::Records], false, &key(KeyCode::Char('Y'))),
            Some(Action::CopyKey)
        );
        assert_eq!(
            action_for(&[Context::Confirm], true, &key(KeyCode::Char('Y'))),
            None
        );
    }

    #[test]
    fn one_key_one_action_per_context() {
        for (i, a) in BINDINGS.iter().enumerate() {
            for b in &BINDINGS[i + 1..] {
                if a.context == b.context {
                    assert!(
                        !a.keys.iter().any(|k| b.keys.contains(k)),
                        "{:?} {:?} bound twice in {:?}",
                        a.action,
                        b.action,
                        a.context
                    );
                }
            }
        }
    }
}
