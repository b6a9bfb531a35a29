//! Numbers, sizes and times for people: screens, text output, dialogs.

use chrono::{DateTime, Utc};

pub fn bytes(n: i64) -> String {
    let s = humansize::format_size(n.unsigned_abs(), humansize::BINARY);
    if n < 0 {
        format!("-{s}")
    } else {
        s
    }
}

pub fn signed_bytes(n: i64) -> String {
    if n > 0 {
        format!("+{}", bytes(n))
    } else if n == 0 {
        "±0 B".into()
    } else {
        bytes(n)
    }
}

/// 1234567 -> "1,234,567".
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// 1234 -> "1.2k", 1234567 -> "1.2M": for narrow columns.
pub fn compact(n: i64) -> String {
    let a = n.unsigned_abs() as f64;
    let sign = if n < 0 { "-" } else { "" };
    let (v, unit) = if a >= 1e9 {
        (a / 1e9, "G")
    } else if a >= 1e6 {
        (a / 1e6, "M")
    } else if a >= 1e3 {
        (a / 1e3, "k")
    } else {
        return count(n);
    };
    if v >= 100.0 {
        format!("{sign}{v:.0}{unit}")
    } else {
        format!("{sign}{v:.1}{unit}")
    }
}

/// The largest unit only: "21m ago", "2h ago", "3d ago", "never".
pub fn ago_short(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(t) = t else {
        return "never".into();
    };
    let s = (now - t).num_seconds();
    let (future, s) = (s < 0, s.unsigned_abs());
    let v = match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    };
    if future {
        format!("in {v}")
    } else {
        format!("{v} ago")
    }
}

/// A count that may be an estimate: "~1,234".
pub fn approx(n: i64, exact: bool) -> String {
    if exact {
        count(n)
    } else {
        format!("~{}", count(n))
    }
}

/// Seconds as "45s", "12m", "3h 5m", "2d 4h".
pub fn duration_secs(secs: f64) -> String {
    let s = secs.max(0.0).round() as i64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// "3m 02s ago", or "never".
pub fn ago(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match t {
        None => "never".into(),
        Some(t) => {
            let secs = (now - t).num_milliseconds() as f64 / 1000.0;
            if secs < 0.0 {
                format!("in {}", duration_secs(-secs))
            } else {
                format!("{} ago", duration_secs(secs))
            }
        }
    }
}

pub fn rate(r: Option<f64>) -> String {
    match r {
        None => "—".into(),
        Some(r) if r >= 100.0 => format!("{r:.0}/s"),
        Some(r) => format!("{r:.1}/s"),
    }
}

pub fn percent(f: f64) -> String {
    format!("{:.1}%", f * 100.0)
}

/// Columns `s` takes on a terminal (wide characters count two, combining marks none).
pub fn width(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// `s` cut to at most `max` columns, never inside a character, and ending with `…` when cut,
/// so a cut is always visible. `s` is returned whole when it fits.
pub fn fit(s: &str, max: usize) -> String {
    use unicode_width::UnicodeWidthChar;
    if width(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > max - 1 {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// The end of `s` in at most `max` columns, starting with `…` when the start was cut (a text
/// prompt shows where the cursor is).
pub fn fit_tail(s: &str, max: usize) -> String {
    use unicode_width::UnicodeWidthChar;
    if width(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut kept = Vec::new();
    let mut used = 0;
    for c in s.chars().rev() {
        let w = c.width().unwrap_or(0);
        if used + w > max - 1 {
            break;
        }
        used += w;
        kept.push(c);
    }
    let mut out = String::from("…");
    out.extend(kept.into_iter().rev());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(-1000), "-1,000");
        assert_eq!(count(999), "999");
        assert_eq!(approx(5, false), "~5");
        assert_eq!(duration_secs(59.4), "59s");
        assert_eq!(duration_secs(3725.0), "1h 02m");
        assert_eq!(duration_secs(90_000.0), "1d 1h");
        assert_eq!(bytes(8192), "8 KiB");
        assert_eq!(signed_bytes(0), "±0 B");
        assert_eq!(rate(None), "—");
        assert_eq!(rate(Some(12.34)), "12.3/s");
        assert_eq!(compact(16_188), "16.2k");
        assert_eq!(compact(7_370), "7.4k");
        assert_eq!(compact(999), "999");
        assert_eq!(compact(2_500_000), "2.5M");
        let now = Utc::now();
        assert_eq!(
            ago_short(Some(now - chrono::Duration::seconds(1_290)), now),
            "21m ago"
        );
        assert_eq!(ago_short(None, now), "never");
    }

    #[test]
    fn text_is_cut_by_columns_with_a_visible_ellipsis() {
        assert_eq!(fit("payment", 10), "payment");
        assert_eq!(fit("payment", 7), "payment");
        assert_eq!(fit("payment", 6), "payme…");
        assert_eq!(fit("payment", 1), "…");
        assert_eq!(fit("payment", 0), "");
        // Wide characters take two columns and are never split.
        assert_eq!(fit("東京都庁", 5), "東京…");
        assert_eq!(width(&fit("東京都庁", 6)), 5);
        assert_eq!(fit("東京都庁", 8), "東京都庁");
        assert_eq!(fit("café ☕ ok", 6), "café …");
        let id = "550e8400-e29b-41d4-a716-446655440000";
        assert_eq!(fit(id, 36), id);
        assert_eq!(fit(id, 20), "550e8400-e29b-41d4-…");
        assert_eq!(width(&fit(id, 20)), 20);
        assert_eq!(fit_tail("0123456789", 5), "…6789");
        assert_eq!(fit_tail("0123456789", 10), "0123456789");
        assert_eq!(fit_tail("ab東京", 4), "…京");
    }
}
