//! Key actions: what each one does to the state, and the requests it sends.

use super::*;

impl App {
    pub(super) fn on_action(&mut self, action: Action) -> Vec<Request> {
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
                } else if self.screen == Screen::Records && self.records.mapped.lookup.is_some() {
                    self.records.mapped.lookup = None;
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
            Action::CountExactly => {
                self.refresh.exact_requested = true;
                out.extend(self.maybe_refresh(true));
                if out.is_empty() {
                    self.say("counting exactly with the next refresh");
                } else {
                    self.say("counting exactly (one scan of the table)");
                }
            }
            Action::RefreshNow => {
                out.extend(self.maybe_refresh(true));
                if self.refresh.in_flight.is_some() && out.is_empty() {
                    self.say("a refresh is already in flight");
                }
                // On the records screen, `r` also reads what is shown again (after a delete that
                // found the record changed, the operator is told to press r).
                if self.screen == Screen::Records && self.mapped_mode() {
                    let m = &mut self.records.mapped;
                    let req = match m.lookup.as_ref().map(|l| l.0.clone()) {
                        Some(typed) => m.look_up(typed),
                        None => m.reload_current(),
                    };
                    out.push(Request::LoadMapped(req));
                } else if self.screen == Screen::Records {
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
            Action::FilterOperation
            | Action::CycleStatus
            | Action::CycleLiveness
            | Action::ClearFilters
                if self.mapped_mode() =>
            {
                self.say("the record filters read the guide's columns: n/a on this table's shape (page by key, / looks a key up)")
            }
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
                // Another shape: the records by key (the operation filter reads the guide's
                // column).
                Screen::Dashboard if self.mapped_mode() => {
                    self.screen = Screen::Records;
                    if self.records.mapped.page.is_none() && self.records.mapped.loading.is_none() {
                        out.push(Request::LoadMapped(self.records.mapped.reload()));
                    }
                }
                Screen::Dashboard => {
                    if let Some(op) = self.dash.selected_operation().map(str::to_owned) {
                        self.records.filter.operation = Some(op);
                        self.records.detail = None;
                        self.screen = Screen::Records;
                        out.push(Request::LoadPage(self.records.reload()));
                    }
                }
                Screen::Records if self.mapped_mode() => {
                    if let Some(key) = self.records.mapped.selected_key() {
                        out.push(Request::LoadMapped(self.records.mapped.look_up(key)));
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
            Action::Delete if self.mapped_mode() => self.say(
                "deleting one record acts on the guide's table only (by its row version); here: idemtop cleanup",
            ),
            Action::Delete => match self.records.action_target().map(|r| r.version()) {
                // The version shown, never the key alone: see `db::records::RowVersion`.
                Some(version) => self.ask(Maintenance::DeleteRecord(version)),
                None if self.records.detail.is_some() => {
                    self.say("no record loaded here: nothing to delete")
                }
                None => {}
            },
            Action::CycleSort if self.mapped_mode() => match self.records.mapped.next_sort() {
                Ok(req) => out.push(Request::LoadMapped(req)),
                Err(why) => self.say(format!("no other order is offered: {why}")),
            },
            Action::CycleSort => {
                let indexes = self.dash.current.as_ref().map(|s| s.indexes.as_slice());
                let (next, skipped) = sort_offer::next_served(self.records.sort, indexes);
                if let Some(why) = sort_offer::why_skipped(&skipped) {
                    self.say(why);
                }
                self.records.sort = next;
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
            Action::CopyKey if self.mapped_mode() => {
                let m = &self.records.mapped;
                let key = match &m.lookup {
                    Some((typed, _)) => Some(typed.clone()),
                    None => m.selected_key(),
                };
                if let Some(key) = key {
                    let shown = crate::sanitize::line(&key);
                    self.clipboard = Some(key);
                    self.say(format!("key {shown} copied (OSC 52)"));
                }
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
            // The Overview's own key: not bound on a target's screens.
            Action::FilterTargets => {}
            Action::ToOverview => self.leave = true,
        }
        out
    }

    /// Arrow and page keys: the operations list, the records list, or the detail's scroll.
    pub(super) fn on_move(&mut self, action: Action) -> Vec<Request> {
        let mut out = Vec::new();
        match self.screen {
            Screen::Dashboard => {
                let n = self.dash.current.as_ref().map_or(0, |s| s.operations.len());
                step(&mut self.dash.selected_op, n, action);
            }
            Screen::Records if self.mapped_mode() => {
                let m = &mut self.records.mapped;
                let n = m.page.as_ref().map_or(0, |p| p.rows.len());
                match action {
                    Action::Up | Action::Down => step(&mut m.selected, n, action),
                    Action::PageDown => match m.next_page() {
                        Some(r) => out.push(Request::LoadMapped(r)),
                        None => self.say("last page"),
                    },
                    Action::PageUp => out.extend(m.prev_page().map(Request::LoadMapped)),
                    Action::Home => out.push(Request::LoadMapped(m.reload())),
                    _ => {}
                }
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
}
