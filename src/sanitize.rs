//! Text from the database (payloads, operation names, error messages) is user input: before it
//! reaches the terminal every control character becomes a visible placeholder, so an ESC
//! sequence stored in a payload can never retitle, clear or reprogram the operator's terminal.

/// One line of text: every control character, newlines included, becomes a placeholder.
pub fn line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_visible(&mut out, c, false);
    }
    out
}

/// Multi-line text: newlines are kept, tabs become spaces, every other control character
/// becomes a placeholder.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_visible(&mut out, c, true);
    }
    out
}

/// True when `s` would be shown unchanged.
pub fn is_clean(s: &str) -> bool {
    !s.chars().any(needs_placeholder)
}

fn needs_placeholder(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// Bidirectional overrides can make text read differently from what it is ("Trojan Source").
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

fn push_visible(out: &mut String, c: char, multiline: bool) {
    match c {
        '\n' if multiline => out.push('\n'),
        '\t' if multiline => out.push_str("    "),
        // C0 controls map onto the Unicode "control pictures" block: ESC -> ␛, NUL -> ␀, LF -> ␊.
        '\u{0}'..='\u{1f}' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('\u{FFFD}')),
        '\u{7f}' => out.push('\u{2421}'), // ␡
        c if c.is_control() || is_bidi_control(c) => {
            out.push_str(&format!("<U+{:04X}>", c as u32));
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_become_visible() {
        let hostile = "\u{1b}]0;pwned\u{7}\u{1b}[2Jok";
        let shown = line(hostile);
        assert!(!shown.contains('\u{1b}'));
        assert!(!shown.contains('\u{7}'));
        assert_eq!(shown, "␛]0;pwned␇␛[2Jok");
    }

    #[test]
    fn c1_and_bidi_controls_are_named() {
        assert_eq!(line("a\u{9b}b"), "a<U+009B>b");
        assert_eq!(line("x\u{202E}y"), "x<U+202E>y");
        assert!(!is_clean("\u{2066}"));
        assert!(is_clean("plain ünïcödé ✓"));
    }

    #[test]
    fn text_keeps_newlines_line_does_not() {
        assert_eq!(text("a\n\tb\r"), "a\n    b␍");
        assert_eq!(line("a\nb"), "a␊b");
    }
}
