//! The audit log's hash chain: each row's hash is SHA-256 over the previous row's hash and
//! a canonical encoding of the row's content, so an edited, removed or reordered row breaks
//! the chain at that row.
//!
//! Owns the canonical encoding (version 1, below) and nothing else: pure functions, no I/O.
//! The writer computes hashes with it; `store::verify` recomputes them. It must never
//! change the encoding of an existing version: a new encoding is a new version.
//!
//! Encoding v1 of a row: for each field, in the table's documented column order, one tag
//! byte (0 null, 1 integer, 2 text, 3 blob) then, for integers, 8 bytes big-endian, and for
//! text and blobs, their length as 8 bytes big-endian followed by the bytes. The hash is
//! `SHA-256(previous hash ‖ 0x01 ‖ fields)`; the first row's previous hash is 32 zero bytes.

use sha2::{Digest, Sha256};

/// A row hash.
pub type Hash = [u8; 32];

/// The previous hash of the first row of a chain.
pub const GENESIS: Hash = [0; 32];

/// The encoding version mixed into every hash.
const VERSION: u8 = 1;

/// One field's value, as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<'a> {
    /// SQL NULL.
    Null,
    /// An integer (booleans are 0 or 1).
    Int(i64),
    /// Text, as its UTF-8 bytes.
    Text(&'a [u8]),
    /// Bytes.
    Blob(&'a [u8]),
}

impl<'a> From<Option<&'a str>> for Field<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Field::Null, |t| Field::Text(t.as_bytes()))
    }
}

impl<'a> From<&'a str> for Field<'a> {
    fn from(t: &'a str) -> Self {
        Field::Text(t.as_bytes())
    }
}

/// The hash of a row that follows `prev`.
pub fn row_hash(prev: &Hash, fields: &[Field<'_>]) -> Hash {
    let mut h = Sha256::new();
    h.update(prev);
    h.update([VERSION]);
    for field in fields {
        match field {
            Field::Null => h.update([0]),
            Field::Int(n) => {
                h.update([1]);
                h.update(n.to_be_bytes());
            }
            Field::Text(t) => {
                h.update([2]);
                h.update((t.len() as u64).to_be_bytes());
                h.update(t);
            }
            Field::Blob(b) => {
                h.update([3]);
                h.update((b.len() as u64).to_be_bytes());
                h.update(b);
            }
        }
    }
    h.finalize().into()
}

/// The columns of `events` that the chain covers, in encoding order. `forward_status` is
/// left out on purpose: it changes after the row is written, as deliveries happen.
pub const EVENT_COLUMNS: &str = "seq, received_at, account, status, reason, detail, event_id, \
     event_type, sender, source, params, method, path, query, remote_addr, headers, \
     content_type, body, body_size, body_sha256, body_truncated, handle_micros";

/// The columns of `changes` that the chain covers, in encoding order.
pub const CHANGE_COLUMNS: &str = "seq, at, actor, action, account, detail";

#[cfg(test)]
mod tests {
    use super::*;

    /// Encoding v1 is a stored format: every existing log verifies against it. This pins
    /// its bytes; a change here means a new version, not an edit.
    #[test]
    fn encoding_v1_is_pinned() {
        let mut expected = Sha256::new();
        expected.update([7u8; 32]);
        expected.update([1]);
        expected.update([1]);
        expected.update(42i64.to_be_bytes());
        expected.update([2]);
        expected.update(2u64.to_be_bytes());
        expected.update(b"ok");
        expected.update([3]);
        expected.update(1u64.to_be_bytes());
        expected.update([0xff]);
        expected.update([0]);
        let expected: Hash = expected.finalize().into();
        let fields = [
            Field::Int(42),
            Field::from("ok"),
            Field::Blob(&[0xff]),
            Field::Null,
        ];
        assert_eq!(row_hash(&[7; 32], &fields), expected);
    }

    #[test]
    fn every_field_and_its_position_matter() {
        let a = row_hash(&GENESIS, &[Field::Int(1), Field::from("x"), Field::Null]);
        assert_ne!(
            a,
            row_hash(&GENESIS, &[Field::Int(2), Field::from("x"), Field::Null])
        );
        assert_ne!(
            a,
            row_hash(&GENESIS, &[Field::Int(1), Field::from("y"), Field::Null])
        );
        assert_ne!(
            a,
            row_hash(&GENESIS, &[Field::Int(1), Field::Null, Field::from("x")])
        );
        assert_ne!(
            a,
            row_hash(&[1; 32], &[Field::Int(1), Field::from("x"), Field::Null])
        );
        // Text and blob of the same bytes, and split boundaries, encode differently.
        assert_ne!(
            row_hash(&GENESIS, &[Field::from("ab")]),
            row_hash(&GENESIS, &[Field::Blob(b"ab")])
        );
        assert_ne!(
            row_hash(&GENESIS, &[Field::from("a"), Field::from("b")]),
            row_hash(&GENESIS, &[Field::from("ab"), Field::Null])
        );
        assert_eq!(
            a,
            row_hash(&GENESIS, &[Field::Int(1), Field::from("x"), Field::Null])
        );
    }
}
