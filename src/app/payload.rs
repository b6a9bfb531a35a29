//! A record's payload made ready to draw: pretty-printed and tokenized when it is JSON, raw
//! otherwise, always sanitized. Done once when the record arrives, never while drawing.

use crate::sanitize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    Key,
    String,
    Number,
    Keyword,
    Punct,
    Plain,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PayloadView {
    pub lines: Vec<Vec<(Token, String)>>,
    pub is_json: bool,
}

/// Most lines shown for one payload (the fetch is already bounded in bytes).
const MAX_LINES: usize = 20_000;

pub fn view(payload: &str) -> PayloadView {
    match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(value) if value.is_object() || value.is_array() => {
            let pretty = serde_json::to_string_pretty(&value).unwrap_or_default();
            PayloadView {
                lines: pretty.lines().take(MAX_LINES).map(tokenize).collect(),
                is_json: true,
            }
        }
        _ => PayloadView {
            lines: sanitize::text(payload)
                .lines()
                .take(MAX_LINES)
                .map(|l| vec![(Token::Plain, l.to_string())])
                .collect(),
            is_json: false,
        },
    }
}

/// One line of `to_string_pretty` output: indentation, optional `"key": `, then a value or
/// punctuation. serde_json escapes control characters inside strings; sanitize anyway.
fn tokenize(line: &str) -> Vec<(Token, String)> {
    let mut out = Vec::new();
    let trimmed = line.trim_start();
    let indent = &line[..line.len() - trimmed.len()];
    if !indent.is_empty() {
        out.push((Token::Plain, indent.to_string()));
    }
    let mut rest = trimmed;
    if rest.starts_with('"') {
        if let Some(end) = key_end(rest) {
            out.push((Token::Key, sanitize::line(&rest[..end])));
            out.push((Token::Punct, ": ".into()));
            rest = &rest[end + 2..];
        }
    }
    let (value, tail) = match rest.strip_suffix(',') {
        Some(v) => (v, ","),
        None => (rest, ""),
    };
    let kind = match value.chars().next() {
        Some('"') => Token::String,
        Some(c) if c == '-' || c.is_ascii_digit() => Token::Number,
        Some('t') | Some('f') | Some('n') => Token::Keyword,
        _ => Token::Punct,
    };
    if !value.is_empty() {
        out.push((kind, sanitize::line(value)));
    }
    if !tail.is_empty() {
        out.push((Token::Punct, tail.into()));
    }
    out
}

/// Where a leading JSON string followed by `": "` ends (index of the closing quote + 1).
fn key_end(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => {
                return s[i + 1..].starts_with(": ").then_some(i + 1);
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_pretty_printed_with_keys_marked() {
        let v = view(r#"{"amount":"100.50","ok":true,"n":3,"tags":["a"]}"#);
        assert!(v.is_json);
        assert_eq!(v.lines[0], vec![(Token::Punct, "{".into())]);
        assert!(v
            .lines
            .iter()
            .any(|l| l.contains(&(Token::Key, "\"amount\"".into()))));
        assert!(v
            .lines
            .iter()
            .any(|l| l.contains(&(Token::String, "\"100.50\"".into()))));
        assert!(v
            .lines
            .iter()
            .any(|l| l.contains(&(Token::Keyword, "true".into()))));
        assert!(v
            .lines
            .iter()
            .any(|l| l.contains(&(Token::Number, "3".into()))));
    }

    #[test]
    fn invalid_json_is_shown_raw_and_sanitized() {
        let v = view("{\"cut\": \"abc\u{1b}[2J");
        assert!(!v.is_json);
        let text: String = v.lines.iter().flatten().map(|(_, s)| s.as_str()).collect();
        assert!(!text.contains('\u{1b}'));
        assert!(text.contains("␛[2J"));
    }

    #[test]
    fn escapes_inside_json_strings_stay_escaped() {
        let v = view("{\"t\":\"\\u001b]0;pwned\\u0007\"}");
        let text: String = v.lines.iter().flatten().map(|(_, s)| s.as_str()).collect();
        assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'));
    }
}
