//! The dedupe decision every engine makes for an accepted record whose key it has looked
//! up: a first acceptance, a duplicate, or a single-use key that came back with other
//! content.
//!
//! Pure: the engine asks its `dedupe` table inside the transaction that records the key
//! (so two nodes receiving the same key at once are serialised by the database) and hands
//! what it found here. It must never do I/O; both engines decide with it, so a key means
//! the same on either.

/// The `dedupe` row an engine found for a record's key.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// The seq of the event first accepted with the key.
    pub seq: i64,
    /// The content hash stored with the key (`dedupe.content_sha256`): set for a
    /// single-use key, absent for any other (and for keys recorded without one).
    pub content: Option<&'a [u8]>,
}

/// What becomes of an accepted record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The key is new: accept, and record the key (with the record's content hash).
    First,
    /// An honest retry of the event at this seq: `duplicate`, nothing new.
    Duplicate(i64),
    /// A single-use key first accepted at this seq, now with other content: refused
    /// (`crate::event::Reason::ReplayedToken`), never accepted, the key left as it was.
    Replayed(i64),
}

/// The audit row's detail for a refused single-use key: the first event is the row with
/// the same `event_id` (the key), and its public id is in the answer.
pub const REPLAYED_DETAIL: &str = "a single-use dedupe key came back with other content than it was first accepted with; \
     its signature may have been captured and reused with forged data";

/// Decides an accepted record with key content `content` (its body's SHA-256 when its
/// account's key is single-use, else `None`) against the row `seen` for its key.
///
/// A single-use key is a duplicate only when the stored hash is the record's: a row
/// stored without one (before the account turned the option on) cannot prove the content
/// the same, so it is refused. Refusing there loses nothing: the key's event is already
/// in the log.
pub fn decide(seen: Option<Seen<'_>>, content: Option<&[u8; 32]>) -> Verdict {
    let Some(seen) = seen else {
        return Verdict::First;
    };
    match content {
        None => Verdict::Duplicate(seen.seq),
        Some(own) if seen.content == Some(&own[..]) => Verdict::Duplicate(seen.seq),
        Some(_) => Verdict::Replayed(seen.seq),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_first_and_a_plain_key_seen_before_is_a_duplicate() {
        assert_eq!(decide(None, None), Verdict::First);
        assert_eq!(decide(None, Some(&[1; 32])), Verdict::First);
        let seen = Seen {
            seq: 7,
            content: None,
        };
        assert_eq!(decide(Some(seen), None), Verdict::Duplicate(7));
        // A plain account ignores a stored hash (one written while the option was on).
        let stored = [1u8; 32];
        let seen = Seen {
            seq: 7,
            content: Some(&stored),
        };
        assert_eq!(decide(Some(seen), None), Verdict::Duplicate(7));
    }

    #[test]
    fn a_single_use_key_is_a_duplicate_only_with_the_same_content() {
        let stored = [1u8; 32];
        let seen = Seen {
            seq: 3,
            content: Some(&stored),
        };
        assert_eq!(decide(Some(seen), Some(&[1; 32])), Verdict::Duplicate(3));
        assert_eq!(decide(Some(seen), Some(&[2; 32])), Verdict::Replayed(3));
        // A key recorded without a hash cannot prove the content the same.
        let unknown = Seen {
            seq: 3,
            content: None,
        };
        assert_eq!(decide(Some(unknown), Some(&[1; 32])), Verdict::Replayed(3));
    }
}
