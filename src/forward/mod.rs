//! Onward delivery: what an accepted event does on the way out, and the one mechanism
//! that carries it there, the durable outbox.
//!
//! Owns [`plan`] (pure: account + extracted fields → [`Forward`], whether the event's
//! sender gets a chat status message). The rest lives beside it: `worker` (the one
//! delivery worker: takes due deliveries of both kinds, keeps the per-destination lanes
//! and records every attempt), `webhook` (the HTTP kind: a Standard Webhook to an
//! account's destination), `chat` (the chat kind: a status message through the
//! connector or a channel, [`channel`]) and `retry` (the schedule). Every delivery row is
//! written in the same transaction as its event, so nothing accepted is lost on the way
//! out.

pub mod channel;
pub mod chat;
pub mod retry;
pub mod webhook;
pub mod worker;

use crate::account::CompiledAccount;
use crate::event::{Extracted, Forward};
use crate::render::Values;

/// Decides what an accepted event of `account` does: nothing (not listening), skipped
/// (type filtered out), streamed only, or streamed and delivered to the sender's chat.
pub fn plan(account: &CompiledAccount, e: &Extracted) -> Forward {
    if !account.listening {
        return Forward::None;
    }
    let types = &account.spec.forward.event_types;
    if !types.is_empty() && !e.event_type.as_ref().is_some_and(|t| types.contains(t)) {
        return Forward::Skipped;
    }
    let template = account.templates.select(e.event_type.as_deref());
    let (Some(template), Some(to)) = (template, &e.sender) else {
        return Forward::StreamOnly;
    };
    if !account.spec.forward.send_to_user {
        return Forward::StreamOnly;
    }
    let params = e
        .params
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or(serde_json::Value::Null);
    let text = template.render(&Values {
        account: account.name(),
        sender: e.sender.as_deref(),
        source: e.source.as_deref(),
        event_type: e.event_type.as_deref(),
        event_id: e.event_id.as_deref(),
        params: &params,
    });
    Forward::Deliver {
        to: to.clone(),
        text,
    }
}
