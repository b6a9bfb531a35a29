//! Unit tests of the key table.

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
