//! The audit log's hash chain: each row's hash is SHA-256 over the previous row's hash and
//! a canonical encoding of the row's content, so an edited, removed or reordered row breaks
//! the chain at that row.
//!
//! Owns the canonical encodings (versions 1 and 2, below) and nothing else: pure functions,
//! no I/O. The writer computes hashes with it; `store::audit` recomputes them. It must never
//! change the encoding of an existing version: a new encoding is a new version.
//!
//! Encoding v1 of a row: for each field, in the table's documented column order, one tag
//! byte (0 null, 1 integer, 2 text, 3 blob) then, for integers, 8 bytes big-endian, and for
//! text and blobs, their length as 8 bytes big-endian followed by the bytes. The hash is
//! `SHA-256(previous hash ‖ 0x01 ‖ fields)`; the first row's previous hash is 32 zero bytes.
//!
//! Encoding v2, for the events log: as v1, with the version byte 0x02, except that the
//! `body` column, when it holds a blob (the writer always stores one, empty or not), enters
//! as the blob of that blob's SHA-256 ([`body_digest`]); any other value there enters as in
//! v1. The body is then hashed once, by the front, which computes `body_sha256` anyway,
//! instead of a second time in the writer, the log's one serial stage: a large body cost
//! the writer as much again as all the rest of its row (BENCHMARKS.md). SHA-256 binds the
//! body as firmly as its bytes did.
//!
//! The events log is written in v2 since it was introduced; the changes log stays on v1. A
//! log written before holds v1 rows, then v2 rows: a verifier starts at v1 and moves to v2
//! at the first row that matches it, never back. A version of hookgate from before v2
//! reports the first v2 row as edited.

use sha2::{Digest, Sha256};

/// A row hash.
pub type Hash = [u8; 32];

/// The previous hash of the first row of a chain.
pub const GENESIS: Hash = [0; 32];

/// An encoding version; its number is mixed into every hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Every column as stored.
    V1 = 1,
    /// The events `body` as its SHA-256.
    V2 = 2,
}

/// The position of `body` in [`EVENT_COLUMNS`], the column v2 enters as its digest.
pub const EVENT_BODY: usize = 17;

/// What v2 hashes in place of a stored body: its SHA-256.
pub fn body_digest(body: &[u8]) -> Hash {
    Sha256::digest(body).into()
}

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

/// The hash of a row that follows `prev`, its fields encoded as `version` says. For v2 the
/// caller passes the events body as its [`body_digest`] already (the writer has it from the
/// front; see [`events_v2`] for a row read back).
pub fn row_hash(version: Version, prev: &Hash, fields: &[Field<'_>]) -> Hash {
    let mut h = Sha256::new();
    h.update(prev);
    h.update([version as u8]);
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

/// The v2 hash of an events row read back as stored (`fields` in [`EVENT_COLUMNS`] order):
/// a blob body is replaced by its digest first.
pub fn events_v2(prev: &Hash, fields: &[Field<'_>]) -> Hash {
    match fields.get(EVENT_BODY) {
        Some(Field::Blob(body)) => {
            let digest = body_digest(body);
            let mut fields = fields.to_vec();
            fields[EVENT_BODY] = Field::Blob(&digest);
            row_hash(Version::V2, prev, &fields)
        }
        _ => row_hash(Version::V2, prev, fields),
    }
}

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
        assert_eq!(row_hash(Version::V1, &[7; 32], &fields), expected);
    }

    /// Encoding v2 is a stored format too: pinned the same way, on a whole events row.
    #[test]
    fn encoding_v2_is_pinned() {
        let body = b"{\"id\":\"evt_1\"}";
        let mut stored: Vec<Field<'_>> = vec![Field::Int(3); EVENT_COLUMNS.split(", ").count()];
        stored[EVENT_BODY] = Field::Blob(body);
        let mut expected = Sha256::new();
        expected.update([9u8; 32]);
        expected.update([2]);
        for i in 0..stored.len() {
            if i == EVENT_BODY {
                expected.update([3]);
                expected.update(32u64.to_be_bytes());
                expected.update(Sha256::digest(body));
            } else {
                expected.update([1]);
                expected.update(3i64.to_be_bytes());
            }
        }
        let expected: Hash = expected.finalize().into();
        assert_eq!(events_v2(&[9; 32], &stored), expected);
        // The writer's way: the digest passed in directly.
        let digest = body_digest(body);
        let mut passed = stored.clone();
        passed[EVENT_BODY] = Field::Blob(&digest);
        assert_eq!(row_hash(Version::V2, &[9; 32], &passed), expected);
        // The version byte separates v1 from v2 even on the same fields.
        assert_ne!(row_hash(Version::V1, &[9; 32], &passed), expected);
        // A body that is not a blob enters as it is: text of the same bytes differs.
        let mut text = stored.clone();
        text[EVENT_BODY] = Field::Text(body);
        assert_ne!(events_v2(&[9; 32], &text), expected);
        assert_eq!(
            events_v2(&[9; 32], &text),
            row_hash(Version::V2, &[9; 32], &text)
        );
    }

    #[test]
    fn body_is_the_column_v2_replaces() {
        let columns: Vec<&str> = EVENT_COLUMNS.split(", ").map(str::trim).collect();
        assert_eq!(columns[EVENT_BODY], "body");
    }

    #[test]
    fn every_field_and_its_position_matter() {
        let a = row_hash(
            Version::V1,
            &GENESIS,
            &[Field::Int(1), Field::from("x"), Field::Null],
        );
        assert_ne!(
            a,
            row_hash(
                Version::V1,
                &GENESIS,
                &[Field::Int(2), Field::from("x"), Field::Null]
            )
        );
        assert_ne!(
            a,
            row_hash(
                Version::V1,
                &GENESIS,
                &[Field::Int(1), Field::from("y"), Field::Null]
            )
        );
        assert_ne!(
            a,
            row_hash(
                Version::V1,
                &GENESIS,
                &[Field::Int(1), Field::Null, Field::from("x")]
            )
        );
        assert_ne!(
            a,
            row_hash(
                Version::V1,
                &[1; 32],
                &[Field::Int(1), Field::from("x"), Field::Null]
            )
        );
        // Text and blob of the same bytes, and split boundaries, encode differently.
        assert_ne!(
            row_hash(Version::V1, &GENESIS, &[Field::from("ab")]),
            row_hash(Version::V1, &GENESIS, &[Field::Blob(b"ab")])
        );
        assert_ne!(
            row_hash(Version::V1, &GENESIS, &[Field::from("a"), Field::from("b")]),
            row_hash(Version::V1, &GENESIS, &[Field::from("ab"), Field::Null])
        );
        assert_eq!(
            a,
            row_hash(
                Version::V1,
                &GENESIS,
                &[Field::Int(1), Field::from("x"), Field::Null]
            )
        );
    }
}
