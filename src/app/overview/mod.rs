//! The fleet's Overview: one row per target, worst first, and a target's own screens (an [`App`]
//! of that target) opened from it.
//!
//! Pure, like [`super::update`]: [`update`] takes the state and an event (a key, a tick, a
//! target's refresh result, a result of the opened target's worker) and returns what the loop
//! must do ([`FleetRequest`]): refresh a target on that target's own task, open or close the
//! opened target's worker, or pass a request on to it. Each target has its own schedule: the
//! next refresh one interval after a result, or after a backoff (0.5 s doubling to 30 s, as the
//! dashboard reconnects) while it cannot be reached; never a second refresh of a target while
//! one is in flight. A slow or dead target delays nobody: its results come when they come.
//!
//! The Overview keeps refreshing every target while a target's screens are open (the opened
//! target is then read twice per interval: by the Overview and by its own dashboard).

use std::time::{Duration, Instant};

use crossterm::event::KeyEvent;

use super::action::Action;
use super::keys::{self, Context, HelpLine};
use super::{App, Event, Flash, Input, InputKind, Request, SessionInfo, FLASH_TTL};

mod row;
#[cfg(test)]
mod tests;

pub use row::*;

/// A target's screens, opened from the Overview.
pub struct Opened {
    /// The target's index in [`Overview::rows`].
    pub index: usize,
    pub app: Box<App>,
}

pub struct Overview {
    /// In the configuration's order; a target's index never changes.
    pub rows: Vec<Row>,
    /// The rows shown, worst first then by name, filtered by [`Overview::filter`].
    pub order: Vec<usize>,
    /// The selected target's index in `rows` (it stays selected as the rows move).
    pub selected: usize,
    pub interval: Duration,
    /// The filter by name (a part of the name, any case).
    pub filter: Option<String>,
    /// The filter's prompt, while it is open (typing filters at once).
    pub input: Option<Input>,
    /// The help overlay's first line shown, while it is open.
    pub help: Option<usize>,
    pub opened: Option<Opened>,
    pub flash: Option<Flash>,
    pub viewport: Option<(u16, u16)>,
    pub read_only: bool,
    /// Passed on to an opened target's dashboard (config `thresholds.indexes`).
    pub unused_index_after_inserts: i64,
    pub now: Instant,
    pub quit: bool,
}

/// What comes into the Overview.
#[derive(Debug, Clone, PartialEq)]
pub enum FleetEvent {
    /// A key, paste, resize, tick, or a result of the opened target's worker.
    Ui(Event),
    /// A target's refresh came back (from that target's own task).
    Target(TargetResult),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TargetResult {
    pub index: usize,
    pub generation: u64,
    /// How long the refresh took (connecting included).
    pub took: Duration,
    pub result: Result<Figures, TargetError>,
}

/// What the loop must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetRequest {
    /// Refresh target `index` on its own task.
    Refresh { index: usize, generation: u64 },
    /// Start a worker for target `index`, whose screens are now open.
    Open { index: usize },
    /// The opened target's screens were closed: stop listening to its worker.
    Close,
    /// For the opened target's worker.
    App(Request),
}

impl Overview {
    pub fn new(
        targets: Vec<TargetInfo>,
        interval: Duration,
        read_only: bool,
        now: Instant,
    ) -> Self {
        let mut o = Self {
            rows: targets.into_iter().map(|t| Row::new(t, now)).collect(),
            order: Vec::new(),
            selected: 0,
            interval: interval.clamp(super::MIN_INTERVAL, super::MAX_INTERVAL),
            filter: None,
            input: None,
            help: None,
            opened: None,
            flash: None,
            viewport: None,
            read_only,
            unused_index_after_inserts: crate::config::Config::default()
                .thresholds
                .indexes
                .unused_after_inserts,
            now,
            quit: false,
        };
        o.resort();
        o.selected = o.order.first().copied().unwrap_or(0);
        o
    }

    /// The key contexts in force on the Overview (none of them while a target is open).
    pub fn contexts(&self) -> Vec<Context> {
        if self.input.is_some() {
            vec![Context::Input]
        } else if self.help.is_some() {
            vec![Context::Help]
        } else {
            vec![Context::Overview]
        }
    }

    /// The Overview's help: its own keys, and the help's.
    pub fn help_lines() -> Vec<Vec<HelpLine>> {
        keys::help_of(&[Context::Overview, Context::Help])
    }

    pub fn say(&mut self, text: impl Into<String>) {
        self.flash = Some(Flash {
            text: text.into(),
            at: self.now,
        });
    }

    pub fn flash_text(&self) -> Option<&str> {
        self.flash.as_ref().map(|f| f.text.as_str())
    }

    /// How many rows stand where, worst first (only the standings that some row has).
    pub fn counts(&self) -> Vec<(Standing, usize)> {
        Standing::ALL
            .iter()
            .map(|s| (*s, self.rows.iter().filter(|r| r.standing() == *s).count()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// The position of the selected row in [`Overview::order`].
    pub fn selected_position(&self) -> Option<usize> {
        self.order.iter().position(|i| *i == self.selected)
    }

    /// Sort worst first, then by name; apply the filter; keep the selection on its target (or
    /// on the first row shown when the filter hides it).
    fn resort(&mut self) {
        let wanted = self.filter.as_deref().map(str::to_lowercase);
        let mut order: Vec<usize> = (0..self.rows.len())
            .filter(|i| {
                wanted
                    .as_deref()
                    .is_none_or(|w| self.rows[*i].info.name.to_lowercase().contains(w))
            })
            .collect();
        order.sort_by(|a, b| {
            let (ra, rb) = (&self.rows[*a], &self.rows[*b]);
            (ra.standing(), &ra.info.name).cmp(&(rb.standing(), &rb.info.name))
        });
        self.order = order;
        if !self.order.contains(&self.selected) {
            if let Some(first) = self.order.first() {
                self.selected = *first;
            }
        }
    }

    /// Refresh every target that is due (every one not in flight when `force`).
    fn refreshes(&mut self, force: bool) -> Vec<FleetRequest> {
        let now = self.now;
        let mut out = Vec::new();
        for (index, r) in self.rows.iter_mut().enumerate() {
            if r.in_flight.is_some() || (!force && now < r.due) {
                continue;
            }
            r.generation += 1;
            r.in_flight = Some(r.generation);
            out.push(FleetRequest::Refresh {
                index,
                generation: r.generation,
            });
        }
        out
    }

    fn on_result(&mut self, res: TargetResult) {
        let now = self.now;
        let interval = self.interval;
        let Some(r) = self.rows.get_mut(res.index) else {
            return;
        };
        if r.in_flight != Some(res.generation) {
            return; // stale: a newer refresh superseded it
        }
        r.in_flight = None;
        r.took = Some(res.took);
        // "cannot connect to <the target's connection>: why": the row says whose it is, and
        // "down" says that it could not connect.
        let res_result = res.result.map_err(|mut e| {
            let prefix = format!("cannot connect to {}: ", r.info.connection);
            if let Some(why) = e.message.strip_prefix(&prefix) {
                e.message = why.to_string();
            }
            e
        });
        match res_result {
            Ok(f) => {
                r.figures = Some(f);
                r.updated_at = Some(now);
                r.state = RowState::Ok;
                r.due = now + interval;
            }
            Err(e) if e.connection_lost => {
                let failures = match &r.state {
                    RowState::Down { failures, .. } => failures + 1,
                    _ => 1,
                };
                r.due = now + super::backoff(failures - 1);
                r.state = RowState::Down {
                    reason: e.message,
                    failures,
                };
            }
            Err(e) => {
                r.state = RowState::Stale { reason: e.message };
                r.due = now + interval;
            }
        }
        self.resort();
    }

    /// Open the selected target's screens: its own dashboard state, then its first refresh.
    fn open_selected(&mut self) -> Vec<FleetRequest> {
        let index = self.selected;
        let Some(row) = self.rows.get(index).filter(|_| self.order.contains(&index)) else {
            return Vec::new();
        };
        let session = SessionInfo {
            target: format!("target {}, {}", row.info.name, row.info.connection),
            table: row.info.table.clone(),
            read_only: self.read_only,
        };
        let mut app = App::new(session, self.interval, self.now);
        app.in_fleet = true;
        app.viewport = self.viewport;
        app.unused_index_after_inserts = self.unused_index_after_inserts;
        let first = super::update(&mut app, Event::Tick(self.now));
        self.opened = Some(Opened {
            index,
            app: Box::new(app),
        });
        self.flash = None;
        let mut out = vec![FleetRequest::Open { index }];
        out.extend(first.into_iter().map(FleetRequest::App));
        out
    }

    /// An event for the opened target's screens; closes them when they ask to leave.
    fn pass_to_opened(&mut self, ev: Event) -> Vec<FleetRequest> {
        let Some(opened) = self.opened.as_mut() else {
            return Vec::new();
        };
        let mut out: Vec<FleetRequest> = super::update(&mut opened.app, ev)
            .into_iter()
            .map(FleetRequest::App)
            .collect();
        if opened.app.quit {
            self.quit = true;
        }
        if opened.app.leave {
            self.opened = None;
            out.push(FleetRequest::Close);
        }
        out
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<FleetRequest> {
        if self.input.is_some() {
            self.on_filter_key(key);
            return Vec::new();
        }
        let Some(action) = keys::action_for(&self.contexts(), true, &key) else {
            return Vec::new();
        };
        if let Some(scroll) = self.help {
            match action {
                Action::Quit => self.quit = true,
                Action::ToggleHelp | Action::Back => self.help = None,
                _ => {
                    let max = keys::max_scroll(Self::help_lines(), self.viewport);
                    self.help = Some(keys::scroll_to(scroll, max, self.viewport, action));
                }
            }
            return Vec::new();
        }
        match action {
            Action::Quit => self.quit = true,
            Action::ToggleHelp => self.help = Some(0),
            Action::Up | Action::Down => {
                if let Some(pos) = self.selected_position() {
                    let mut pos = pos;
                    super::step(&mut pos, self.order.len(), action);
                    self.selected = self.order[pos];
                }
            }
            Action::Open => return self.open_selected(),
            Action::RefreshNow => {
                let out = self.refreshes(true);
                let busy = self.rows.len() - out.len();
                let n = match out.len() {
                    1 => "1 target".to_string(),
                    n => format!("{n} targets"),
                };
                self.say(match busy {
                    0 => format!("refreshing {n} now"),
                    _ => format!("refreshing {n} now ({busy} still in flight)"),
                });
                return out;
            }
            Action::FilterTargets => {
                let text = self.filter.clone().unwrap_or_default();
                self.input = Some(Input::new(InputKind::TargetFilter, text));
            }
            Action::Back => {
                if self.flash.is_some() {
                    self.flash = None;
                } else if self.filter.is_some() {
                    self.filter = None;
                    self.resort();
                }
            }
            _ => {}
        }
        Vec::new()
    }

    /// The filter's prompt: typing filters at once; Enter keeps the filter, Esc drops it.
    fn on_filter_key(&mut self, key: KeyEvent) {
        use crossterm::event::{KeyCode, KeyModifiers};
        let Some(input) = self.input.as_mut() else {
            return;
        };
        match keys::action_for(&[Context::Input], true, &key) {
            Some(Action::Quit) => self.quit = true,
            Some(Action::Cancel) => {
                self.input = None;
                self.filter = None;
            }
            Some(Action::Submit) => self.input = None,
            Some(Action::ClearInput) => input.text.clear(),
            Some(Action::DeleteChar) => {
                input.text.pop();
            }
            _ => match key.code {
                KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                    input.type_char(c)
                }
                _ => {}
            },
        }
        if let Some(input) = &self.input {
            let text = input.text.trim();
            self.filter = (!text.is_empty()).then(|| text.to_string());
        }
        self.resort();
    }
}

/// The pure state transition of the Overview: state and event in, work for the loop out.
pub fn update(o: &mut Overview, event: FleetEvent) -> Vec<FleetRequest> {
    match event {
        FleetEvent::Target(res) => {
            o.on_result(res);
            Vec::new()
        }
        FleetEvent::Ui(Event::Tick(now)) => {
            o.now = now;
            if o.flash
                .as_ref()
                .is_some_and(|f| now.saturating_duration_since(f.at) >= FLASH_TTL)
            {
                o.flash = None;
            }
            let mut out = o.refreshes(false);
            out.extend(o.pass_to_opened(Event::Tick(now)));
            out
        }
        FleetEvent::Ui(Event::Resize { width, height }) => {
            o.viewport = Some((width, height));
            if let Some(scroll) = o.help {
                let max = keys::max_scroll(Overview::help_lines(), o.viewport);
                o.help = Some(scroll.min(max));
            }
            o.pass_to_opened(Event::Resize { width, height })
        }
        FleetEvent::Ui(ev) if o.opened.is_some() => o.pass_to_opened(ev),
        // A result of a worker whose screens were closed: nobody shows it.
        FleetEvent::Ui(Event::Db(_)) => Vec::new(),
        FleetEvent::Ui(Event::Paste(text)) => {
            if let Some(input) = o.input.as_mut() {
                input.type_str(&text);
                let text = input.text.trim();
                o.filter = (!text.is_empty()).then(|| text.to_string());
                o.resort();
            }
            Vec::new()
        }
        FleetEvent::Ui(Event::Key(key)) => o.on_key(key),
    }
}
