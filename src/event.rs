//! One received request and everything decided about it, as the audit log records it.
//!
//! Owns the event vocabulary: [`Status`], the closed list of rejection [`Reason`]s with
//! their stable snake_case names, and [`EventRecord`], the row handed to the writer. It
//! must never do I/O; the names here are a contract with auditors and must never change.

use bytes::Bytes;

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Verified, extracted and committed; the first time its `event_id` was seen.
    Accepted,
    /// Verified, but its `event_id` was already accepted for this account.
    Duplicate,
    /// Refused; the [`Reason`] says why.
    Rejected,
    /// A provider's set-up handshake (a challenge, a ping), answered as the provider
    /// expects; never an event, never deduplicated or forwarded.
    Handshake,
}

impl Status {
    /// The stable name stored in the audit log and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Accepted => "accepted",
            Status::Duplicate => "duplicate",
            Status::Rejected => "rejected",
            Status::Handshake => "handshake",
        }
    }

    /// Parses a stored or queried name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "accepted" => Some(Status::Accepted),
            "duplicate" => Some(Status::Duplicate),
            "rejected" => Some(Status::Rejected),
            "handshake" => Some(Status::Handshake),
            _ => None,
        }
    }
}

/// Why a request was rejected: one variant per cause, each with a stable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No account of that name exists (or the name is not a valid account name).
    UnknownAccount,
    /// The account exists but is deactivated.
    InactiveAccount,
    /// The method is not accepted on a webhook URL.
    MethodNotAllowed,
    /// The authenticate key was missing or wrong.
    BadAuth,
    /// The signature was missing, malformed or did not match any secret.
    BadSignature,
    /// The signed timestamp was missing or outside the account's tolerance.
    StaleTimestamp,
    /// The body could not be decoded as the content type says.
    MalformedPayload,
    /// The content type is not one hookgate can extract from.
    UnsupportedMediaType,
    /// The body was larger than the configured limit.
    TooLarge,
    /// The client did not send its body within the read timeout.
    ReadTimeout,
    /// The connection broke before the whole body arrived.
    IncompleteBody,
    /// The account received more requests than its rate limit allows.
    RateLimited,
    /// The request head (request line and headers) was over the configured limit.
    HeadersTooLarge,
    /// The client, named by a trusted proxy, had as many requests in flight as one
    /// address may have.
    TooManyConnections,
    /// The provider's status API did not confirm the event (a forged callback).
    Unconfirmed,
    /// The provider's status API could not be asked (down, slow, refused the token): the
    /// sender is answered 503 and retries.
    ConfirmationUnavailable,
    /// A single-use key (Mailgun's signed token) came back with other content than it was
    /// first accepted with: a captured signature carrying forged data.
    ReplayedToken,
}

impl Reason {
    /// Every reason, for documentation and tests.
    pub const ALL: [Reason; 17] = [
        Reason::UnknownAccount,
        Reason::InactiveAccount,
        Reason::MethodNotAllowed,
        Reason::BadAuth,
        Reason::BadSignature,
        Reason::StaleTimestamp,
        Reason::MalformedPayload,
        Reason::UnsupportedMediaType,
        Reason::TooLarge,
        Reason::ReadTimeout,
        Reason::IncompleteBody,
        Reason::RateLimited,
        Reason::HeadersTooLarge,
        Reason::TooManyConnections,
        Reason::Unconfirmed,
        Reason::ConfirmationUnavailable,
        Reason::ReplayedToken,
    ];

    /// The stable snake_case name stored in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownAccount => "unknown_account",
            Reason::InactiveAccount => "inactive_account",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::BadAuth => "bad_auth",
            Reason::BadSignature => "bad_signature",
            Reason::StaleTimestamp => "stale_timestamp",
            Reason::MalformedPayload => "malformed_payload",
            Reason::UnsupportedMediaType => "unsupported_media_type",
            Reason::TooLarge => "too_large",
            Reason::ReadTimeout => "read_timeout",
            Reason::IncompleteBody => "incomplete_body",
            Reason::RateLimited => "rate_limited",
            Reason::HeadersTooLarge => "headers_too_large",
            Reason::TooManyConnections => "too_many_connections",
            Reason::Unconfirmed => "unconfirmed",
            Reason::ConfirmationUnavailable => "confirmation_unavailable",
            Reason::ReplayedToken => "replayed_token",
        }
    }

    /// Parses a stored or queried name.
    pub fn parse(s: &str) -> Option<Self> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The fields extracted from a verified payload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extracted {
    /// Who the event is about (a phone number, a chat id, an e-mail).
    pub sender: Option<String>,
    /// What object or system it comes from (an order id, a payment id).
    pub source: Option<String>,
    /// The sender's name for the kind of event.
    pub event_type: Option<String>,
    /// The sender's id for the event, used for dedupe.
    pub event_id: Option<String>,
    /// The free "other parameters", as a JSON object text; `None` when none are configured.
    pub params: Option<String>,
}

/// One audit row as handed to the writer. Built once per request on every path.
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// When the request line arrived, in microseconds since the epoch.
    pub received_at: i64,
    /// The account segment of the URL as received (lossy UTF-8, bounded in length).
    pub account: String,
    /// Accepted or rejected; the writer may turn `Accepted` into `Duplicate` (or, for a
    /// single-use key that came back with other content, into `Rejected`).
    pub status: Status,
    /// Set when `status` is `Rejected`.
    pub reason: Option<Reason>,
    /// A human sentence about the rejection, for the auditor; never sent to the sender.
    pub detail: Option<String>,
    /// Fields extracted from the payload (empty for rejected requests).
    pub extracted: Extracted,
    /// The HTTP method.
    pub method: String,
    /// The request path as received.
    pub path: String,
    /// The query string with credentials redacted.
    pub query: String,
    /// The peer address of the connection.
    pub remote_addr: String,
    /// The request headers as a JSON object, credentials and signatures redacted.
    pub headers: String,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The stored body: whole for accepted events, possibly truncated for rejected ones.
    pub body: Bytes,
    /// The size of the body as received (or as declared, when it was not read).
    pub body_size: u64,
    /// The SHA-256 of the whole body, when the whole body was read.
    pub body_sha256: Option<[u8; 32]>,
    /// True when `body` holds less than was received.
    pub body_truncated: bool,
    /// Time spent from the request line to the hand-off to the writer, in microseconds.
    pub handle_micros: i64,
    /// What a listening account does with this event if it is accepted.
    pub forward: Forward,
    /// The account's destinations this event is delivered to if it is a first acceptance.
    pub destinations: Vec<String>,
    /// For an account whose dedupe key is single-use (`dedupe_single_use`), the SHA-256
    /// of the body: the one content the key may come back with (an honest retry). The
    /// writer stores it with the key and refuses the key with any other.
    pub dedupe_content: Option<[u8; 32]>,
}

/// What happens to an accepted event on the way out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Forward {
    /// The account is not listening: nothing.
    #[default]
    None,
    /// Listening, but its type is filtered out: recorded as `skipped`, not streamed.
    Skipped,
    /// Listening: streamed; no chat message (`send_to_user` is off, or no sender to
    /// address): recorded as `skipped`.
    StreamOnly,
    /// Listening: streamed, and this message goes to the sender's chat (`pending`).
    Deliver {
        /// The sender to address.
        to: String,
        /// The rendered status message.
        text: String,
    },
}

/// What the writer decided and committed for one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The audit row's sequence number (its public id is `evt_{seq}`).
    pub seq: i64,
    /// The final status (the writer decides `Duplicate`).
    pub status: Status,
    /// For a duplicate (or a replayed single-use key), the sequence number of the event
    /// first accepted with that id.
    pub original_seq: Option<i64>,
    /// Set when the writer refused the record (`Reason::ReplayedToken`).
    pub reason: Option<Reason>,
}

/// Formats an audit row's public id.
pub fn public_id(seq: i64) -> String {
    format!("evt_{seq}")
}

/// Parses a public id back into a sequence number.
pub fn parse_public_id(id: &str) -> Option<i64> {
    id.strip_prefix("evt_")?.parse().ok().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_names_round_trip() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
        assert_eq!(Reason::parse("nope"), None);
    }

    #[test]
    fn public_ids_round_trip() {
        assert_eq!(parse_public_id(&public_id(42)), Some(42));
        assert_eq!(parse_public_id("evt_0"), None);
        assert_eq!(parse_public_id("42"), None);
        assert_eq!(parse_public_id("evt_x"), None);
    }
}
