//! Text input (filter, look-up) and the help overlay's scrolling.

use super::*;

impl App {
    /// Keys while the text prompt is open: the prompt's keys from the key table (Enter submits,
    /// Esc cancels, Ctrl-U clears, Backspace deletes); any other character is typed.
    pub(super) fn on_input(&mut self, key: KeyEvent) -> Vec<Request> {
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
    pub(super) fn paste(&mut self, text: &str) {
        if let Some(input) = self.input.as_mut() {
            input.type_str(text);
        }
    }

    pub(super) fn submit_input(&mut self) -> Vec<Request> {
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
            InputKind::TargetFilter => {
                self.input = None;
                Vec::new()
            }
            InputKind::Operation => {
                self.input = None;
                self.records.filter.operation = (!text.is_empty()).then_some(text);
                vec![Request::LoadPage(self.records.reload())]
            }
        }
    }

    /// Lines of the help for the current screen, per column, at the terminal's size (one
    /// column when the size is not known).
    pub(super) fn help_max_scroll(&self) -> usize {
        keys::max_scroll(keys::help_for(&self.screen_contexts()), self.viewport)
    }

    pub(super) fn clamp_help_scroll(&mut self) {
        let max = self.help_max_scroll();
        if let Some(Overlay::Help { scroll }) = &mut self.overlay {
            *scroll = (*scroll).min(max);
        }
    }

    /// Keys while the help is open: scroll it, close it, or quit; nothing else acts behind it.
    pub(super) fn on_help_action(&mut self, action: Action) -> Vec<Request> {
        let max = self.help_max_scroll();
        let Some(Overlay::Help { scroll }) = &mut self.overlay else {
            return Vec::new();
        };
        match action {
            Action::Quit => self.quit = true,
            Action::ToggleHelp | Action::Back => self.overlay = None,
            _ => *scroll = keys::scroll_to(*scroll, max, self.viewport, action),
        }
        Vec::new()
    }
}
