//! Text from the database (payloads, operation names, error messages) is user input: before it
//! reaches the terminal every control character becomes a visible placeholder, so an ESC
//! sequence stored in a payload can never retitle, clear or reprogram the operator's terminal.
//!
//! Invisible characters get the same treatment: zero-width spaces and joiners, the BOM, and the
//! bidirectional controls are shown as `<U+200B>`, so `pay\u{200b}ment` can never pass for
//! `payment`, nor a right-to-left override make a key read backwards ("Trojan Source").

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
    c.is_control() || is_bidi_control(c) || is_invisible(c)
}

/// Bidirectional controls can make text read differently from what it is ("Trojan Source"):
/// the embeddings and overrides, the isolates, the LRM/RLM marks and the Arabic letter mark.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

/// Characters that take no room on screen, so two different strings look the same: zero-width
/// space, non-joiner and joiner, the word joiner and the invisible operators, the BOM (zero-width
/// no-break space), the soft hyphen, the Mongolian vowel separator, the deprecated format
/// controls, the interlinear annotation marks and the tag characters.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'..='\u{2064}'
            | '\u{206A}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

fn push_visible(out: &mut String, c: char, multiline: bool) {
    match c {
        '\n' if multiline => out.push('\n'),
        '\t' if multiline => out.push_str("    "),
        // C0 controls map onto the Unicode "control pictures" block: ESC -> ␛, NUL -> ␀, LF -> ␊.
        '\u{0}'..='\u{1f}' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('\u{FFFD}')),
        '\u{7f}' => out.push('\u{2421}'), // ␡
        c if needs_placeholder(c) => {
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
    fn zero_width_characters_and_the_bom_are_named() {
        assert_eq!(line("pay\u{200b}ment"), "pay<U+200B>ment");
        assert_ne!(line("pay\u{200b}ment"), line("payment"));
        assert_eq!(line("a\u{200c}b\u{200d}c"), "a<U+200C>b<U+200D>c");
        assert_eq!(line("\u{feff}key"), "<U+FEFF>key");
        assert_eq!(line("x\u{2060}y"), "x<U+2060>y");
        assert_eq!(text("soft\u{ad}hyphen\n"), "soft<U+00AD>hyphen\n");
        for c in ['\u{200b}', '\u{200c}', '\u{200d}', '\u{2060}', '\u{feff}'] {
            assert!(!is_clean(&format!("a{c}b")), "{:04X}", c as u32);
        }
    }

    #[test]
    fn every_bidi_control_is_named() {
        let bidi = ('\u{202A}'..='\u{202E}')
            .chain('\u{2066}'..='\u{2069}')
            .chain(['\u{200E}', '\u{200F}', '\u{061C}']);
        for c in bidi {
            let shown = line(&format!("a{c}b"));
            assert_eq!(shown, format!("a<U+{:04X}>b", c as u32));
            assert!(!shown.contains(c));
        }
        // A right-to-left override cannot make "txt.exe" read as "exe.txt".
        assert_eq!(line("invoice\u{202E}txt.exe"), "invoice<U+202E>txt.exe");
    }

    #[test]
    fn visible_non_ascii_text_is_left_alone() {
        for s in ["Zürich", "東京", "café ☕", "emoji 🎉", "العربية", "עברית"] {
            assert_eq!(line(s), s);
            assert!(is_clean(s), "{s}");
        }
    }

    #[test]
    fn text_keeps_newlines_line_does_not() {
        assert_eq!(text("a\n\tb\r"), "a\n    b␍");
        assert_eq!(line("a\nb"), "a␊b");
    }
}
