//! Excerpts of what another party answered (a destination, a chat platform, a provider's
//! status API), kept with a delivery attempt or an audit row and shown as text.
//!
//! Owns the cut and the one character no engine can keep: PostgreSQL's `text` holds no
//! NUL, so a NUL is kept as U+FFFD, the character a lossy decoding already puts where
//! bytes are not UTF-8. It must never keep more than the characters it is asked for, and
//! never fail on any answer.

/// At most `max_chars` characters of `bytes`, decoded lossily, with no NUL.
pub fn of_bytes(bytes: &[u8], max_chars: usize) -> String {
    of_text(&String::from_utf8_lossy(bytes), max_chars)
}

/// At most `max_chars` characters of `text`, with no NUL.
pub fn of_text(text: &str, max_chars: usize) -> String {
    text.chars()
        .take(max_chars)
        .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
        .collect()
}

/// `text` whole, with no NUL.
pub fn storable(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_becomes_the_replacement_character_and_nothing_else_changes() {
        assert_eq!(of_bytes(b"ok\0done\xff", 100), "ok\u{FFFD}done\u{FFFD}");
        assert_eq!(storable("a\0b"), "a\u{FFFD}b");
        assert_eq!(storable("tab\tand\nline"), "tab\tand\nline");
    }

    #[test]
    fn the_cut_counts_characters_not_bytes() {
        assert_eq!(of_text("héllo", 2), "hé");
        assert_eq!(of_bytes("ñññ".as_bytes(), 2), "ññ");
        assert_eq!(of_text("", 5), "");
    }
}
