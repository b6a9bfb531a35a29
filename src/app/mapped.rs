//! The records screen on a table of another shape than the guide's: pages in keyset order of
//! the mapped key (or newest first where an index serves it), and a record looked up by its key
//! as typed at `/` (any key type: see `db::records::mapped`). Deleting one record stays with
//! the guide's table (its row versions); here it is refused with the reason.

use crate::db::records::{MappedCursor, MappedPage, MappedRecord, MappedSort};

/// What the mapped records view asks the worker for: a page, or a key as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedRequest {
    pub generation: u64,
    pub sort: MappedSort,
    pub after: Option<MappedCursor>,
    /// A key as typed at `/`: the worker reads it as the mapped key and looks it up.
    pub lookup: Option<String>,
}

/// What comes back.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedResult {
    pub page: Option<MappedPage>,
    /// Each order, offered or not (with the reason).
    pub sorts: Vec<(MappedSort, Result<(), String>)>,
    /// The looked-up key's record (`None`: no row has it), when the request was a lookup.
    pub record: Option<Option<MappedRecord>>,
}

/// The records screen's state for a mapped table.
#[derive(Debug, Clone, Default)]
pub struct MappedRecords {
    pub sort: MappedSort,
    /// `cursors[i]` fetches page i (None for the first).
    pub cursors: Vec<Option<MappedCursor>>,
    pub page_index: usize,
    pub page: Option<MappedPage>,
    pub sorts: Vec<(MappedSort, Result<(), String>)>,
    pub selected: usize,
    pub loading: Option<u64>,
    pub generation: u64,
    pub error: Option<String>,
    /// The key looked up (as typed) and its record once read (`Some(None)`: not found).
    pub lookup: Option<(String, Option<Option<MappedRecord>>)>,
}

impl MappedRecords {
    fn request(&mut self, index: usize, lookup: Option<String>) -> MappedRequest {
        self.generation += 1;
        self.loading = Some(self.generation);
        if lookup.is_none() {
            self.page_index = index;
        }
        MappedRequest {
            generation: self.generation,
            sort: self.sort,
            after: self.cursors.get(index).cloned().flatten(),
            lookup,
        }
    }

    pub fn reload(&mut self) -> MappedRequest {
        self.cursors = vec![None];
        self.selected = 0;
        self.request(0, None)
    }

    pub fn reload_current(&mut self) -> MappedRequest {
        if self.cursors.is_empty() {
            return self.reload();
        }
        self.request(self.page_index, None)
    }

    pub fn next_page(&mut self) -> Option<MappedRequest> {
        let next = self.page.as_ref()?.next.clone()?;
        let index = self.page_index + 1;
        self.cursors.truncate(index);
        self.cursors.push(Some(next));
        self.selected = 0;
        Some(self.request(index, None))
    }

    pub fn prev_page(&mut self) -> Option<MappedRequest> {
        if self.page_index == 0 {
            return None;
        }
        self.selected = 0;
        Some(self.request(self.page_index - 1, None))
    }

    /// Look a key up, as typed.
    pub fn look_up(&mut self, typed: String) -> MappedRequest {
        self.lookup = Some((typed.clone(), None));
        let index = self.page_index;
        self.request(index, Some(typed))
    }

    /// The next order that is offered (an order no index serves is skipped); `Err` says why
    /// there is no other.
    pub fn next_sort(&mut self) -> Result<MappedRequest, String> {
        let all = MappedSort::ALL;
        let at = all.iter().position(|s| *s == self.sort).unwrap_or(0);
        for step in 1..all.len() {
            let s = all[(at + step) % all.len()];
            if self.sorts.iter().any(|(o, ok)| *o == s && ok.is_ok()) {
                self.sort = s;
                return Ok(self.reload());
            }
        }
        let why: Vec<String> = self
            .sorts
            .iter()
            .filter_map(|(s, ok)| ok.as_ref().err().map(|e| format!("{}: {e}", s.label())))
            .collect();
        Err(if why.is_empty() {
            "no other order".into()
        } else {
            crate::sanitize::line(&why.join("; "))
        })
    }

    pub fn on_result(&mut self, generation: u64, result: Result<MappedResult, String>) {
        if self.loading != Some(generation) {
            return;
        }
        self.loading = None;
        match result {
            Ok(r) => {
                self.sorts = r.sorts;
                if let Some(rec) = r.record {
                    if let Some(l) = self.lookup.as_mut() {
                        l.1 = Some(rec);
                    }
                }
                if let Some(page) = r.page {
                    self.selected = self.selected.min(page.rows.len().saturating_sub(1));
                    self.page = Some(page);
                }
                self.error = None;
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// The selected row's key, as `/` reads it back.
    pub fn selected_key(&self) -> Option<String> {
        let row = self.page.as_ref()?.rows.get(self.selected)?;
        Some(row.key.to_string())
    }
}
