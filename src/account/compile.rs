//! The hot-path form of an account: everything parsed and compiled once, when the account
//! is created, updated or loaded at start.
//!
//! Owns [`CompiledAccount`] and [`compile`]. It must never be rebuilt per request.

use crate::account::dedupe::DedupeKey;
use crate::account::{AccountSpec, SpecError, validate_name};
use crate::extract::Extractor;
use crate::handshake::Handshake;
use crate::verify::Verifier;

/// An account ready for requests.
#[derive(Debug)]
pub struct CompiledAccount {
    /// The spec it was compiled from (secrets inside; shown only through its public JSON).
    pub spec: AccountSpec,
    /// Whether the studio switched its event listener on.
    pub listening: bool,
    /// When it was created, in microseconds since the epoch.
    pub created_at: i64,
    /// When it was last changed, in microseconds since the epoch.
    pub updated_at: i64,
    /// Its verification.
    pub verifier: Verifier,
    /// Its extraction paths.
    pub extractor: Extractor,
    /// Its status-message templates: by event type and a default.
    pub templates: crate::status_templates::StatusTemplates,
    /// The approved WhatsApp templates its messages are sent as: by event type, a default.
    pub whatsapp_templates: crate::forward::channel::whatsapp::ApprovedTemplates,
    /// Its provider's set-up handshake, when it has one.
    pub handshake: Option<Handshake>,
    /// Its dedupe key, when it is more than `paths.event_id`.
    pub dedupe: Option<DedupeKey>,
    /// Its confirmation with the provider's status API, when it has one.
    pub confirm: Option<crate::confirm::Confirmer>,
    /// The answer its provider expects to a delivered event, when it is not hookgate's.
    pub answer: Option<crate::account::answer::ProviderAnswer>,
    /// Where its token's keys are fetched from, when the provider publishes them.
    pub remote_keys: Option<crate::confirm::KeyFetcher>,
    /// The signing certificates its SNS messages name, fetched and cached.
    pub sns_certs: Option<crate::confirm::CertFetcher>,
    /// AWS SNS: the visit to a verified subscription's `SubscribeURL`, unless the account
    /// leaves it to the operator.
    pub sns_subscriber: Option<crate::confirm::Subscriber>,
}

impl CompiledAccount {
    /// The account's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Whether the URL accepts traffic.
    pub fn active(&self) -> bool {
        self.spec.active
    }

    /// The largest body this account accepts, given the gateway's default.
    pub fn max_body_bytes(&self, default: usize) -> usize {
        self.spec.max_body_bytes.unwrap_or(default)
    }

    /// Query parameters that carry credentials (the authenticate key, a handshake's verify
    /// token), to redact in the audit row.
    pub fn sensitive_query_params(&self) -> Vec<&str> {
        let mut params: Vec<&str> = self.verifier.sensitive_query_param().into_iter().collect();
        if let Some(p) = self.handshake.as_ref().and_then(Handshake::token_param) {
            params.push(p);
        }
        params
    }

    /// Headers that carry credentials (the verifier's, a handshake's secret), to redact in
    /// the audit row.
    pub fn sensitive_headers(&self) -> Vec<&str> {
        let mut names = self.verifier.sensitive_headers();
        if let Some(h) = self.handshake.as_ref().and_then(Handshake::secret_header) {
            names.push(h.as_str());
        }
        names
    }
}

/// Validates and compiles a spec. Every refusal names its field.
pub fn compile(
    spec: AccountSpec,
    listening: bool,
    created_at: i64,
    updated_at: i64,
) -> Result<CompiledAccount, SpecError> {
    validate_name(&spec.name)?;
    if let Some(url) = &spec.public_url
        && (!(url.starts_with("https://") || url.starts_with("http://"))
            || url.contains(['?', '#']))
    {
        return Err(SpecError::new(
            "public_url",
            "must be an http:// or https:// URL without a query or fragment (the request's \
             query is appended)",
        ));
    }
    if spec.secret.is_some() {
        return Err(SpecError::new(
            "secret",
            "\"secret\" must be merged into signature.secrets before compiling",
        ));
    }
    let verifier = Verifier::compile(&spec)?;
    let has_mac_key = verifier
        .signature()
        .and_then(|s| s.first_mac_key())
        .is_some();
    let handshake = spec
        .handshake
        .as_ref()
        .map(|h| Handshake::compile(h, has_mac_key))
        .transpose()?;
    let extractor = Extractor::compile(&spec.paths)?;
    let dedupe = DedupeKey::compile(&spec)?;
    if spec.dedupe_single_use && spec.dedupe_key.is_empty() && spec.paths.event_id.is_none() {
        return Err(SpecError::new(
            "dedupe_single_use",
            "a single-use key needs a key: set dedupe_key or paths.event_id",
        ));
    }
    let confirm = spec
        .confirm
        .as_ref()
        .map(crate::confirm::Confirmer::compile)
        .transpose()?;
    let remote_keys = spec
        .jwt
        .as_ref()
        .and_then(|j| j.remote_keys.as_ref())
        .map(crate::confirm::KeyFetcher::compile)
        .transpose()?;
    let sns_certs = spec.sns.as_ref().map(crate::confirm::CertFetcher::compile);
    let sns_subscriber = spec
        .sns
        .as_ref()
        .and_then(crate::confirm::Subscriber::compile);
    let answer = spec
        .answer
        .as_ref()
        .map(crate::account::answer::ProviderAnswer::compile)
        .transpose()?;
    if let Some(xml) = &spec.xml
        && xml.base64_fields.iter().any(|f| f.trim().is_empty())
    {
        return Err(SpecError::new(
            "xml.base64_fields",
            "name each field (a top-level name of the body)",
        ));
    }
    if spec.max_body_bytes == Some(0) {
        return Err(SpecError::new("max_body_bytes", "must be positive"));
    }
    let templates = crate::status_templates::StatusTemplates::compile(&spec.forward)?;
    if spec.forward.send_to_user && templates.is_empty() {
        return Err(SpecError::new(
            "forward.template",
            "send_to_user needs a template for the status message (forward.template, or \
             forward.templates by event type)",
        ));
    }
    let whatsapp_templates = crate::forward::channel::whatsapp::ApprovedTemplates::compile(
        spec.forward.whatsapp_template.as_ref(),
        &spec.forward.whatsapp_templates,
    )?;
    Ok(CompiledAccount {
        spec,
        listening,
        created_at,
        updated_at,
        verifier,
        extractor,
        templates,
        whatsapp_templates,
        handshake,
        dedupe,
        confirm,
        answer,
        remote_keys,
        sns_certs,
        sns_subscriber,
    })
}
