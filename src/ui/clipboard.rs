//! OSC 52: the escape sequence that asks the terminal to put text on the system clipboard
//! (xterm, kitty, WezTerm, iTerm2, foot, tmux with `set-clipboard on`, most terminals over SSH).
//! Pure: the event loop writes the sequence to the terminal; terminals that ignore it show
//! nothing, which is why the copied text is also shown whole in the footer.

/// The OSC 52 sequence that sets the clipboard (`c`) to `text`, ended by BEL. Only text the
/// program chose (a request_id) is passed here; it is base64-encoded, so no byte of it can be
/// read by the terminal as a control.
pub fn osc52(text: &str) -> String {
    format!("\u{1b}]52;c;{}\u{7}", base64(text.as_bytes()))
}

/// Standard base64 with padding (RFC 4648).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
    }

    #[test]
    fn a_request_id_becomes_one_osc_52_sequence() {
        let s = osc52("550e8400-e29b-41d4-a716-446655440000");
        assert_eq!(
            s,
            "\u{1b}]52;c;NTUwZTg0MDAtZTI5Yi00MWQ0LWE3MTYtNDQ2NjU1NDQwMDAw\u{7}"
        );
        // Nothing of the payload can end the sequence early or start another one.
        let hostile = osc52("\u{7}\u{1b}]0;pwned\u{7}");
        assert_eq!(hostile.matches('\u{7}').count(), 1);
        assert_eq!(hostile.matches('\u{1b}').count(), 1);
    }
}
