//! Record browser state: filters, sort, a stack of keyset cursors (one per page visited, so
//! going back needs no OFFSET), the page on screen, and the detail view.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::payload::{self, PayloadView};
use crate::db::records::{
    Cursor, Liveness, Page, Record, RecordFilter, RecordSummary, Sort, StatusClass,
};
use crate::db::ts::Ts;
use crate::format;

/// Rows per page.
pub const PAGE_SIZE: u32 = 100;
/// Payload bytes fetched for the detail view; the rest is left on the server.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Default)]
pub struct RecordsState {
    pub filter: RecordFilter,
    pub sort: Sort,
    /// `cursors[i]` fetches page i (None for the first page).
    pub cursors: Vec<Option<Cursor>>,
    pub page_index: usize,
    pub page: Option<Page>,
    /// When the page on screen arrived (this machine's monotonic clock): its ages tick from
    /// the server's clock at that moment (`page.server_now`).
    pub loaded_at: Option<std::time::Instant>,
    /// Generation of the page request in flight.
    pub loading: Option<u64>,
    pub generation: u64,
    pub error: Option<String>,
    pub selected: usize,
    /// Whether an index leads with the sort column (created_at has none in the guide).
    pub sort_indexed: Option<bool>,
    pub detail: Option<Detail>,
    /// The list and lookups of a table of another shape (see [`super::mapped`]).
    pub mapped: super::mapped::MappedRecords,
}

#[derive(Debug, Clone, Default)]
pub struct Detail {
    pub id: Uuid,
    pub record: Option<Record>,
    pub view: PayloadView,
    pub loading: bool,
    pub not_found: bool,
    pub error: Option<String>,
    pub scroll: usize,
}

/// What the records view asks the worker for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub generation: u64,
    pub filter: RecordFilter,
    pub sort: Sort,
    pub after: Option<Cursor>,
}

impl RecordsState {
    /// Ask for page `index` (whose cursor is known).
    fn request(&mut self, index: usize) -> PageRequest {
        self.generation += 1;
        self.loading = Some(self.generation);
        self.page_index = index;
        PageRequest {
            generation: self.generation,
            filter: self.filter.clone(),
            sort: self.sort,
            after: self.cursors.get(index).cloned().flatten(),
        }
    }

    /// Back to the first page (after a filter or sort change, or on entering the view).
    pub fn reload(&mut self) -> PageRequest {
        self.cursors = vec![None];
        self.selected = 0;
        self.request(0)
    }

    /// The current page again (after a delete), keeping the position.
    pub fn reload_current(&mut self) -> PageRequest {
        if self.cursors.is_empty() {
            return self.reload();
        }
        self.request(self.page_index)
    }

    pub fn next_page(&mut self) -> Option<PageRequest> {
        let next = self.page.as_ref()?.next.clone()?;
        let index = self.page_index + 1;
        self.cursors.truncate(index);
        self.cursors.push(Some(next));
        self.selected = 0;
        Some(self.request(index))
    }

    pub fn prev_page(&mut self) -> Option<PageRequest> {
        if self.page_index == 0 {
            return None;
        }
        self.selected = 0;
        Some(self.request(self.page_index - 1))
    }

    pub fn on_page(
        &mut self,
        generation: u64,
        result: Result<(Page, bool), String>,
        now: std::time::Instant,
    ) {
        if self.loading != Some(generation) {
            return;
        }
        self.loading = None;
        match result {
            Ok((page, indexed)) => {
                self.selected = self.selected.min(page.rows.len().saturating_sub(1));
                self.page = Some(page);
                self.loaded_at = Some(now);
                self.sort_indexed = Some(indexed);
                self.error = None;
            }
            Err(e) => self.error = Some(e),
        }
    }

    pub fn selected_id(&self) -> Option<Uuid> {
        self.selected_row().map(|r| r.request_id)
    }

    pub fn selected_row(&self) -> Option<&RecordSummary> {
        self.page.as_ref()?.rows.get(self.selected)
    }

    /// The row a per-row action (delete) applies to: the detail's record when the detail is
    /// open (`None` while it loads or when it was not found), else the selected row of the list.
    /// Always the version as it was read and shown, never the key alone.
    pub fn action_target(&self) -> Option<&RecordSummary> {
        match &self.detail {
            Some(d) => d.record.as_ref().map(|r| &r.summary),
            None => self.selected_row(),
        }
    }

    pub fn cycle_status(&mut self) {
        self.filter.status = match self.filter.status {
            None => Some(StatusClass::Success),
            Some(StatusClass::Success) => Some(StatusClass::Redirect),
            Some(StatusClass::Redirect) => Some(StatusClass::ClientError),
            Some(StatusClass::ClientError) => Some(StatusClass::ServerError),
            Some(StatusClass::ServerError) => Some(StatusClass::Other),
            Some(StatusClass::Other) => None,
        }
    }

    pub fn cycle_liveness(&mut self) {
        self.filter.liveness = match self.filter.liveness {
            Liveness::Any => Liveness::Live,
            Liveness::Live => Liveness::Expired,
            Liveness::Expired => Liveness::Any,
        }
    }

    pub fn open(&mut self, id: Uuid) {
        self.detail = Some(Detail {
            id,
            loading: true,
            ..Detail::default()
        });
    }

    pub fn on_record(&mut self, id: Uuid, result: Result<Option<Record>, String>) {
        let Some(d) = self.detail.as_mut().filter(|d| d.id == id) else {
            return;
        };
        d.loading = false;
        match result {
            Ok(Some(r)) => {
                d.view = payload::view(&r.payload);
                d.record = Some(r);
                d.not_found = false;
                d.error = None;
            }
            Ok(None) => {
                d.record = None;
                d.not_found = true;
            }
            Err(e) => d.error = Some(e),
        }
    }

    /// One line describing the filters, for the view's title.
    pub fn describe_filter(&self) -> String {
        let mut parts = vec![self.sort.label().to_string()];
        if let Some(op) = &self.filter.operation {
            parts.push(format!("operation = {}", crate::sanitize::line(op)));
        }
        if let Some(s) = self.filter.status {
            parts.push(format!("status {}", s.label()));
        }
        if self.filter.liveness != Liveness::Any {
            parts.push(self.filter.liveness.label().to_string());
        }
        parts.join(" · ")
    }
}

/// A timestamp in full: "2026-01-02 03:04:05.000 UTC", or "infinity" / "-infinity".
pub fn ts_full(ts: Ts) -> String {
    match ts {
        Ts::At(t) => t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string(),
        other => other.to_string(),
    }
}

/// When a record expires, relative to the server's `now`: "in 3h 02m", "6m 40s ago", "never"
/// (`infinity`), "-infinity" (expired since always).
pub fn expires_relative(ts: Ts, now: DateTime<Utc>) -> String {
    match ts {
        Ts::At(t) => format::ago(Some(t), now),
        Ts::Infinity => "never".into(),
        Ts::NegInfinity => "-infinity".into(),
    }
}

/// When a record was created, briefly: "21m ago", or "-infinity" / "infinity".
pub fn created_relative(ts: Ts, now: DateTime<Utc>) -> String {
    match ts {
        Ts::At(t) => format::ago_short(Some(t), now),
        other => other.to_string(),
    }
}

/// A status code for a narrow column: the number, "—" for NULL, and a value wider than
/// `width` (nonsense such as -2147483648) cut with "…" so the cut shows.
pub fn status_short(code: Option<i32>, width: usize) -> String {
    match code {
        None => "—".into(),
        Some(c) => {
            let s = c.to_string();
            if s.chars().count() <= width {
                s
            } else {
                let keep: String = s.chars().take(width.saturating_sub(1)).collect();
                format!("{keep}…")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn special_timestamps_read_sensibly() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        assert_eq!(expires_relative(Ts::Infinity, now), "never");
        assert_eq!(expires_relative(Ts::NegInfinity, now), "-infinity");
        assert_eq!(
            expires_relative(Ts::At(now + chrono::Duration::seconds(90)), now),
            "in 1m 30s"
        );
        assert_eq!(created_relative(Ts::NegInfinity, now), "-infinity");
        assert_eq!(ts_full(Ts::Infinity), "infinity");
        assert_eq!(ts_full(Ts::At(now)), "2026-01-01 12:00:00.000 UTC");
    }

    #[test]
    fn extreme_status_codes_fit_their_column() {
        assert_eq!(status_short(Some(201), 6), "201");
        assert_eq!(status_short(None, 6), "—");
        assert_eq!(status_short(Some(i32::MIN), 6), "-2147…");
        assert_eq!(status_short(Some(i32::MAX), 6), "21474…");
        assert_eq!(status_short(Some(-1), 6), "-1");
    }
}
