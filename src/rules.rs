//! Provider presets: rule files that fill in an account's verification, handshake and
//! default paths, so that a user picks "stripe" and pastes one secret.
//!
//! Owns the rule-file format (`rules/README.md`), the shipped files (compiled in from
//! `rules/*.toml`), loading an operator's directory of extra or overriding files, the
//! validation that names the file and field at fault, and [`Rules::prepare`], which merges
//! a preset under the fields a user gave and puts the pasted `secret` where the preset
//! says. A preset is data: this module must never hold a provider's logic in code.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::account::{AccountSpec, Algorithm, SecretEncoding, SpecError, merge_patch};

/// One rule file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The preset name users type, snake_case; equal to the file stem.
    pub name: String,
    /// The provider's display name.
    pub title: String,
    /// The provider's documentation of its scheme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<String>,
    /// What the user pastes, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_help: Option<String>,
    /// Where the pasted secret goes: `signature.secrets` (the default) or `auth.value`.
    #[serde(default)]
    pub secret_target: SecretTarget,
    /// Further fields the user gives (a verify token), with what they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<Setting>,
    /// Pasted values that are a different credential of the same provider (Paystack's
    /// public key `pk_...` where the secret key `sk_...` belongs), refused with a message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refuse_secret: Vec<SecretRefusal>,
    /// The account fields the preset fills in (`signature`, `auth`, `handshake`, `paths`),
    /// as they would be written in a create request, without secrets.
    pub account: toml::Table,
    /// Where the rule came from: `shipped` or the operator's file.
    #[serde(skip_deserializing, default)]
    pub origin: String,
}

impl Rule {
    /// Puts `placeholder` into every required setting the request lacks, so an account can
    /// be built from the rule without the user's values (checking, signing, examples).
    pub fn fill_required_settings(&self, request: &mut Value, placeholder: &str) {
        for setting in self.settings.iter().filter(|s| s.required) {
            let mut patch = Value::String(placeholder.to_owned());
            for part in setting.field.rsplit('.') {
                patch = json!({ part: patch });
            }
            let mut filled = patch;
            merge_patch(&mut filled, request);
            *request = filled;
        }
    }

    /// The preset's fields with `request` merged over them, and the pasted `secret` put
    /// where the preset says.
    fn apply(&self, request: &Value) -> Result<Value, SpecError> {
        if let Some(secret) = request.get("secret").and_then(Value::as_str)
            && let Some(refusal) = self
                .refuse_secret
                .iter()
                .find(|r| secret.trim().starts_with(&r.prefix))
        {
            return Err(SpecError::new("secret", refusal.message.clone()));
        }
        let mut merged = serde_json::to_value(&self.account).unwrap_or(Value::Null);
        merge_patch(&mut merged, request);
        // A user who names the event id names the dedupe key: the preset's own key yields.
        if request.pointer("/paths/event_id").is_some()
            && request.get("dedupe_key").is_none()
            && let Some(obj) = merged.as_object_mut()
        {
            obj.remove("dedupe_key");
        }
        place_secret(&mut merged, self.secret_target)?;
        Ok(merged)
    }
}

/// Where a preset puts the pasted `secret`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
pub enum SecretTarget {
    /// The first of `signature.secrets`.
    #[default]
    #[serde(rename = "signature.secrets")]
    SignatureSecrets,
    /// The authenticate key's `auth.value` (a shared token in a header).
    #[serde(rename = "auth.value")]
    AuthValue,
    /// The first of `jwt.secrets` (a signed token: Vonage, MessageBird, Netlify).
    #[serde(rename = "jwt.secrets")]
    JwtSecrets,
    /// The authenticate key's `auth.token` (a secret token in the URL's path: M-Pesa
    /// Daraja, MTN MoMo, Pesapal).
    #[serde(rename = "auth.token")]
    AuthToken,
    /// The authenticate key's `auth.password` (HTTP Basic: Postmark, SendGrid Inbound
    /// Parse; the user name is a setting).
    #[serde(rename = "auth.password")]
    AuthPassword,
    /// The status API's `confirm.oauth.client_secret` (PayPal, which confirms every
    /// webhook with its verify-webhook-signature API).
    #[serde(rename = "confirm.oauth.client_secret")]
    ConfirmClientSecret,
    /// The API secret that fetches the token keys (Plaid's verification-key API).
    #[serde(rename = "jwt.remote_keys.secret")]
    RemoteKeysSecret,
    /// The audience the token must carry (Google Pub/Sub push: the subscription's
    /// audience, not a secret, but the one value the user must give).
    #[serde(rename = "jwt.audience")]
    JwtAudience,
    /// The first of `sns.topic_arns` (AWS SNS: the topic, not a secret, but the one value
    /// that says whose messages these are).
    #[serde(rename = "sns.topic_arns")]
    SnsTopicArns,
}

/// A form of pasted secret a preset refuses.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRefusal {
    /// The prefix that marks the wrong credential, e.g. `pk_`.
    pub prefix: String,
    /// What the user pasted and what to paste instead, as a sentence.
    pub message: String,
}

/// A field a preset needs besides the secret.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    /// The dotted field of the create request, e.g. `handshake.verify_token`.
    pub field: String,
    /// What it is, in words.
    pub help: String,
    /// Whether the account cannot be created without it.
    #[serde(default)]
    pub required: bool,
}

/// A rule file that cannot be used: the file, the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct RuleError {
    /// The file, as found.
    pub file: String,
    /// The field at fault, dotted (`account.signature.algorithm`), or `file`.
    pub field: String,
    /// What is wrong, as a sentence.
    pub message: String,
}

const SHIPPED: &[(&str, &str)] = &[
    (
        "africas_talking",
        include_str!("../rules/africas_talking.toml"),
    ),
    ("adyen", include_str!("../rules/adyen.toml")),
    ("asana", include_str!("../rules/asana.toml")),
    ("airtable", include_str!("../rules/airtable.toml")),
    ("airtel_money", include_str!("../rules/airtel_money.toml")),
    ("alchemy", include_str!("../rules/alchemy.toml")),
    ("aws_sns", include_str!("../rules/aws_sns.toml")),
    ("bitbucket", include_str!("../rules/bitbucket.toml")),
    ("box", include_str!("../rules/box.toml")),
    ("braintree", include_str!("../rules/braintree.toml")),
    ("brex", include_str!("../rules/brex.toml")),
    ("buildkite", include_str!("../rules/buildkite.toml")),
    ("cal_com", include_str!("../rules/cal_com.toml")),
    ("calendly", include_str!("../rules/calendly.toml")),
    ("chapa", include_str!("../rules/chapa.toml")),
    ("checkout_com", include_str!("../rules/checkout_com.toml")),
    ("circleci", include_str!("../rules/circleci.toml")),
    ("clerk", include_str!("../rules/clerk.toml")),
    ("clickup", include_str!("../rules/clickup.toml")),
    (
        "coinbase_commerce",
        include_str!("../rules/coinbase_commerce.toml"),
    ),
    ("discord", include_str!("../rules/discord.toml")),
    ("discourse", include_str!("../rules/discourse.toml")),
    ("docusign", include_str!("../rules/docusign.toml")),
    ("dpo", include_str!("../rules/dpo.toml")),
    ("dropbox", include_str!("../rules/dropbox.toml")),
    ("flutterwave", include_str!("../rules/flutterwave.toml")),
    (
        "flutterwave_v4",
        include_str!("../rules/flutterwave_v4.toml"),
    ),
    ("frameio", include_str!("../rules/frameio.toml")),
    ("gitea", include_str!("../rules/gitea.toml")),
    ("github", include_str!("../rules/github.toml")),
    ("gitlab", include_str!("../rules/gitlab.toml")),
    ("gocardless", include_str!("../rules/gocardless.toml")),
    ("gogs", include_str!("../rules/gogs.toml")),
    ("helpscout", include_str!("../rules/helpscout.toml")),
    ("google_pubsub", include_str!("../rules/google_pubsub.toml")),
    ("heroku", include_str!("../rules/heroku.toml")),
    ("hubspot", include_str!("../rules/hubspot.toml")),
    ("intercom", include_str!("../rules/intercom.toml")),
    ("jira", include_str!("../rules/jira.toml")),
    ("launchdarkly", include_str!("../rules/launchdarkly.toml")),
    ("lemon_squeezy", include_str!("../rules/lemon_squeezy.toml")),
    ("linear", include_str!("../rules/linear.toml")),
    ("mailgun", include_str!("../rules/mailgun.toml")),
    (
        "mailgun_legacy",
        include_str!("../rules/mailgun_legacy.toml"),
    ),
    ("mandrill", include_str!("../rules/mandrill.toml")),
    ("messagebird", include_str!("../rules/messagebird.toml")),
    ("meta", include_str!("../rules/meta.toml")),
    (
        "modern_treasury",
        include_str!("../rules/modern_treasury.toml"),
    ),
    ("mollie", include_str!("../rules/mollie.toml")),
    ("monnify", include_str!("../rules/monnify.toml")),
    ("mpesa_daraja", include_str!("../rules/mpesa_daraja.toml")),
    ("mtn_momo", include_str!("../rules/mtn_momo.toml")),
    ("mux", include_str!("../rules/mux.toml")),
    ("netlify", include_str!("../rules/netlify.toml")),
    ("notion", include_str!("../rules/notion.toml")),
    ("okta", include_str!("../rules/okta.toml")),
    ("orb", include_str!("../rules/orb.toml")),
    ("ozow", include_str!("../rules/ozow.toml")),
    ("paddle", include_str!("../rules/paddle.toml")),
    ("pagerduty", include_str!("../rules/pagerduty.toml")),
    ("paypal", include_str!("../rules/paypal.toml")),
    ("paystack", include_str!("../rules/paystack.toml")),
    ("persona", include_str!("../rules/persona.toml")),
    ("pesapal", include_str!("../rules/pesapal.toml")),
    ("plaid", include_str!("../rules/plaid.toml")),
    ("postmark", include_str!("../rules/postmark.toml")),
    ("pusher", include_str!("../rules/pusher.toml")),
    ("razorpay", include_str!("../rules/razorpay.toml")),
    ("resend", include_str!("../rules/resend.toml")),
    ("sanity", include_str!("../rules/sanity.toml")),
    ("segment", include_str!("../rules/segment.toml")),
    ("selcom", include_str!("../rules/selcom.toml")),
    ("sendgrid", include_str!("../rules/sendgrid.toml")),
    (
        "sendgrid_inbound_parse",
        include_str!("../rules/sendgrid_inbound_parse.toml"),
    ),
    ("sentry", include_str!("../rules/sentry.toml")),
    ("shopify", include_str!("../rules/shopify.toml")),
    ("slack", include_str!("../rules/slack.toml")),
    ("square", include_str!("../rules/square.toml")),
    (
        "standard_webhooks",
        include_str!("../rules/standard_webhooks.toml"),
    ),
    ("stripe", include_str!("../rules/stripe.toml")),
    ("svix", include_str!("../rules/svix.toml")),
    ("telegram", include_str!("../rules/telegram.toml")),
    (
        "terraform_cloud",
        include_str!("../rules/terraform_cloud.toml"),
    ),
    ("tingg", include_str!("../rules/tingg.toml")),
    ("trello", include_str!("../rules/trello.toml")),
    ("twilio", include_str!("../rules/twilio.toml")),
    (
        "twilio_shared_key",
        include_str!("../rules/twilio_shared_key.toml"),
    ),
    ("twitch", include_str!("../rules/twitch.toml")),
    ("typeform", include_str!("../rules/typeform.toml")),
    ("vercel", include_str!("../rules/vercel.toml")),
    ("vonage", include_str!("../rules/vonage.toml")),
    ("websub", include_str!("../rules/websub.toml")),
    ("woocommerce", include_str!("../rules/woocommerce.toml")),
    ("workos", include_str!("../rules/workos.toml")),
    ("x", include_str!("../rules/x.toml")),
    ("xendit", include_str!("../rules/xendit.toml")),
    ("xero", include_str!("../rules/xero.toml")),
    ("yoco", include_str!("../rules/yoco.toml")),
    ("zendesk", include_str!("../rules/zendesk.toml")),
    ("zoom", include_str!("../rules/zoom.toml")),
];

/// The presets in force: the shipped ones, with an operator's files added or overriding.
#[derive(Debug, Clone)]
pub struct Rules {
    list: Vec<Rule>,
}

impl Rules {
    /// The shipped presets alone. A shipped file that does not parse is a build defect,
    /// caught by the unit tests below; at run time it is skipped rather than crash.
    pub fn shipped() -> Rules {
        let list = SHIPPED
            .iter()
            .filter_map(|(file, text)| parse(&format!("rules/{file}.toml"), file, text).ok())
            .collect();
        Rules { list }
    }

    /// The shipped presets plus every `*.toml` in `dir`, each checked as a shipped file is.
    pub fn load(dir: Option<&Path>) -> Result<Rules, RuleError> {
        let mut rules = Rules::shipped();
        let Some(dir) = dir else {
            return Ok(rules);
        };
        let dir_error = |message: String| RuleError {
            file: dir.display().to_string(),
            field: "rules_dir".into(),
            message,
        };
        let entries =
            std::fs::read_dir(dir).map_err(|e| dir_error(format!("cannot be read: {e}")))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for path in files {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| RuleError {
                file: file.clone(),
                field: "file".into(),
                message: format!("cannot be read: {e}"),
            })?;
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let rule = parse(&file, &stem, &text)?;
            match rules.list.iter_mut().find(|r| r.name == rule.name) {
                Some(existing) => *existing = rule,
                None => rules.list.push(rule),
            }
        }
        rules.list.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(rules)
    }

    /// Every preset, by name.
    pub fn all(&self) -> &[Rule] {
        &self.list
    }

    /// One preset; the name is matched without regard to case (`Stripe` is `stripe`).
    pub fn get(&self, name: &str) -> Option<&Rule> {
        let name = name.trim();
        self.list.iter().find(|r| r.name.eq_ignore_ascii_case(name))
    }

    /// The preset name closest to a mistyped one (`strpe` → `stripe`), if any is close.
    pub fn suggest(&self, name: &str) -> Option<&str> {
        let name = name.trim().to_ascii_lowercase();
        self.list
            .iter()
            .map(|r| (strsim::damerau_levenshtein(&name, &r.name), r.name.as_str()))
            .filter(|(d, n)| *d <= 2.max(n.len() / 4))
            .min_by_key(|(d, _)| *d)
            .map(|(_, n)| n)
    }

    /// Why `name` is not a preset, with the closest one suggested.
    pub fn unknown(&self, name: &str) -> SpecError {
        let hint = self
            .suggest(name)
            .map(|s| format!(" (did you mean {s:?}?)"))
            .unwrap_or_default();
        SpecError::new(
            "provider",
            format!(
                "{name:?} is not a known provider{hint}; see GET /v1/providers or `hookgate providers list`"
            ),
        )
    }

    /// Turns a create request into a full account spec: for a preset, its defaults with
    /// the request's fields merged over them; the pasted `secret` goes where the preset
    /// says (for a custom account, into `signature.secrets`).
    pub fn prepare(&self, mut request: Value) -> Result<Value, SpecError> {
        let provider = provider_of(&request);
        if !provider.eq_ignore_ascii_case("custom") {
            let rule = self.get(&provider).ok_or_else(|| self.unknown(&provider))?;
            // The account keeps the preset's own spelling of its name.
            request["provider"] = rule.name.clone().into();
            return rule.apply(&request);
        }
        if request.get("provider").is_some() {
            request["provider"] = "custom".into();
        }
        place_secret(&mut request, SecretTarget::SignatureSecrets)?;
        Ok(request)
    }

    /// Prepares an update of the stored spec `stored` by a merge patch. The preset is not
    /// merged again, so a default the user removed stays removed. A patch that changes the
    /// provider starts over from the new preset, keeping only what is not about checking or
    /// extracting (name, forwarding, active, store_body, public_url); it must bring the new
    /// provider's secret.
    pub fn prepare_update(&self, stored: Value, patch: &Value) -> Result<Value, SpecError> {
        let old = provider_of(&stored);
        if let Some(new) = patch.get("provider").and_then(Value::as_str)
            && new != old
        {
            let mut base = json!({});
            for key in ["name", "forward", "active", "store_body", "public_url"] {
                if let Some(v) = stored.get(key) {
                    base[key] = v.clone();
                }
            }
            merge_patch(&mut base, patch);
            return self.prepare(base);
        }
        let mut merged = stored;
        merge_patch(&mut merged, patch);
        let target = self
            .get(&provider_of(&merged))
            .map_or(SecretTarget::SignatureSecrets, |r| r.secret_target);
        place_secret(&mut merged, target)?;
        Ok(merged)
    }
}

/// What a preset needs and checks, for `GET /v1/providers` and `hookgate providers`.
pub fn describe(rule: &Rule) -> Value {
    // A provider whose handshake brings the secret (Asana) needs none pasted.
    let from_handshake = rule
        .account
        .get("handshake")
        .and_then(|h| h.get("type"))
        .and_then(|t| t.as_str())
        == Some("secret_header");
    let mut settings = vec![json!({
        "field": "secret",
        "help": rule.secret_help,
        "required": !from_handshake,
        "goes_to": match rule.secret_target {
            SecretTarget::SignatureSecrets => "signature.secrets",
            SecretTarget::AuthValue => "auth.value",
            SecretTarget::JwtSecrets => "jwt.secrets",
            SecretTarget::AuthToken => "auth.token",
            SecretTarget::AuthPassword => "auth.password",
            SecretTarget::ConfirmClientSecret => "confirm.oauth.client_secret",
            SecretTarget::RemoteKeysSecret => "jwt.remote_keys.secret",
            SecretTarget::JwtAudience => "jwt.audience",
            SecretTarget::SnsTopicArns => "sns.topic_arns",
        },
    })];
    settings.extend(rule.settings.iter().map(|s| json!(s)));
    json!({
        "name": rule.name,
        "title": rule.title,
        "docs": rule.docs,
        "origin": rule.origin,
        "needs": rule.secret_help,
        "settings": settings,
        "checks": checks(rule),
        "defaults": rule.account,
    })
}

/// The request parts a preset checks: headers by name, body fields by path.
pub fn checks(rule: &Rule) -> Vec<String> {
    let table = |key: &str| rule.account.get(key).and_then(|v| v.as_table());
    let mut out = Vec::new();
    if let Some(auth) = table("auth") {
        match auth.get("type").and_then(|v| v.as_str()) {
            Some("api_key") => {
                if let Some(h) = auth.get("header").and_then(|v| v.as_str()) {
                    out.push(h.to_owned());
                }
            }
            Some("bearer" | "basic") => out.push("Authorization".into()),
            Some("query") => {
                if let Some(p) = auth.get("param").and_then(|v| v.as_str()) {
                    out.push(format!("?{p}="));
                }
            }
            Some("path_token") => out.push("/hooks/{account}/{token}".into()),
            _ => {}
        }
    }
    if table("ip_allowlist").is_some() {
        out.push("the sender's address".into());
    }
    if let Some(url) = table("confirm")
        .and_then(|c| c.get("url"))
        .and_then(|v| v.as_str())
    {
        out.push(format!("confirmed at {url}"));
    }
    if let Some(jwt) = table("jwt") {
        let header = jwt.get("header").and_then(|v| v.as_str());
        out.push(header.unwrap_or("Authorization").to_owned());
    }
    if let Some(sig) = table("signature") {
        for (key, body) in [
            ("header", false),
            ("signature_path", true),
            ("timestamp_header", false),
            ("timestamp_path", true),
            ("id_header", false),
            ("id_path", true),
        ] {
            if let Some(v) = sig.get(key).and_then(|v| v.as_str()) {
                out.push(if body {
                    format!("body {v}")
                } else {
                    v.to_owned()
                });
            }
        }
        if let Some(p) = sig.get("body_digest_param").and_then(|v| v.as_str()) {
            out.push(format!("?{p}="));
        }
    }
    out
}

fn provider_of(request: &Value) -> String {
    request
        .get("provider")
        .and_then(Value::as_str)
        .unwrap_or("custom")
        .to_owned()
}

fn place_secret(request: &mut Value, target: SecretTarget) -> Result<(), SpecError> {
    let Some(obj) = request.as_object_mut() else {
        return Ok(());
    };
    let Some(secret) = obj.remove("secret") else {
        return Ok(());
    };
    match target {
        SecretTarget::AuthValue | SecretTarget::AuthToken | SecretTarget::AuthPassword => {
            let key = match target {
                SecretTarget::AuthValue => "value",
                SecretTarget::AuthToken => "token",
                _ => "password",
            };
            let Some(auth) = obj.get_mut("auth").and_then(Value::as_object_mut) else {
                return Err(SpecError::new(
                    "secret",
                    format!(
                        "the preset puts the secret in auth.{key}, but the account has no auth"
                    ),
                ));
            };
            auth.insert(key.into(), secret);
        }
        SecretTarget::ConfirmClientSecret => {
            let Some(oauth) = obj
                .get_mut("confirm")
                .and_then(|c| c.get_mut("oauth"))
                .and_then(Value::as_object_mut)
            else {
                return Err(SpecError::new(
                    "secret",
                    "the preset puts the secret in confirm.oauth.client_secret, but the account has no confirm.oauth",
                ));
            };
            oauth.insert("client_secret".into(), secret);
        }
        SecretTarget::RemoteKeysSecret => {
            let Some(keys) = obj
                .get_mut("jwt")
                .and_then(|j| j.get_mut("remote_keys"))
                .and_then(Value::as_object_mut)
            else {
                return Err(SpecError::new(
                    "secret",
                    "the preset puts the secret in jwt.remote_keys.secret, but the account has no jwt.remote_keys",
                ));
            };
            keys.insert("secret".into(), secret);
        }
        SecretTarget::SnsTopicArns => {
            let Some(sns) = obj.get_mut("sns").and_then(Value::as_object_mut) else {
                return Err(SpecError::new(
                    "secret",
                    "the preset puts the secret in sns.topic_arns, but the account has no sns",
                ));
            };
            match sns
                .entry("topic_arns")
                .or_insert_with(|| Value::Array(Vec::new()))
                .as_array_mut()
            {
                Some(list) => list.insert(0, secret),
                None => {
                    return Err(SpecError::new(
                        "sns.topic_arns",
                        "must be a list of strings",
                    ));
                }
            }
        }
        SecretTarget::JwtAudience => {
            let Some(jwt) = obj.get_mut("jwt").and_then(Value::as_object_mut) else {
                return Err(SpecError::new(
                    "secret",
                    "the preset puts the secret in jwt.audience, but the account has no jwt",
                ));
            };
            jwt.insert("audience".into(), secret);
        }
        SecretTarget::JwtSecrets => {
            let Some(jwt) = obj.get_mut("jwt").and_then(Value::as_object_mut) else {
                return Err(SpecError::new(
                    "secret",
                    "the preset puts the secret in jwt.secrets, but the account has no jwt",
                ));
            };
            match jwt
                .entry("secrets")
                .or_insert_with(|| Value::Array(Vec::new()))
                .as_array_mut()
            {
                Some(list) => list.insert(0, secret),
                None => return Err(SpecError::new("jwt.secrets", "must be a list of strings")),
            }
        }
        SecretTarget::SignatureSecrets => {
            let Some(sig) = obj.get_mut("signature").and_then(Value::as_object_mut) else {
                return Err(SpecError::new(
                    "secret",
                    "a secret needs a signature scheme: choose a provider preset or give \"signature\"",
                ));
            };
            let secrets = sig
                .entry("secrets")
                .or_insert_with(|| Value::Array(Vec::new()));
            match secrets.as_array_mut() {
                Some(list) => list.insert(0, secret),
                None => {
                    return Err(SpecError::new(
                        "signature.secrets",
                        "must be a list of strings",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Parses and checks one rule file's text (`file` names it in errors, `stem` is the name
/// it must have): its fields, its name, and that an account built from the name, a secret
/// of the right form and its required settings compiles.
pub fn parse(file: &str, stem: &str, text: &str) -> Result<Rule, RuleError> {
    let err = |field: &str, message: String| RuleError {
        file: file.to_owned(),
        field: field.to_owned(),
        message,
    };
    let mut rule: Rule = toml::from_str(text).map_err(|e| {
        let message = e.message().to_owned();
        let field = match unknown_field(&message) {
            // An empty key (`"" = 1`), named the way TOML spells it.
            Some("") => "\"\"",
            Some(name) => name,
            None => "file",
        };
        let at = e
            .span()
            .map(|s| {
                // Counted in bytes: a span need not fall on a character boundary.
                let before = text.as_bytes().get(..s.start).unwrap_or(text.as_bytes());
                let line = before.iter().filter(|b| **b == b'\n').count() + 1;
                format!(" (line {line})")
            })
            .unwrap_or_default();
        err(field, format!("{message}{at}"))
    })?;
    if rule.name != stem {
        return Err(err(
            "name",
            format!("is {:?}, but must equal the file name {stem:?}", rule.name),
        ));
    }
    if crate::account::validate_name(&rule.name).is_err() || rule.name == "custom" {
        return Err(err(
            "name",
            "must be snake_case (a-z, 0-9, _), at most 64 characters, and not \"custom\"".into(),
        ));
    }
    let mut request = json!({"name": "rule_check", "provider": rule.name});
    rule.fill_required_settings(&mut request, "rule-check-value");
    request["secret"] = Value::String(example_secret(&rule));
    let merged = rule.apply(&request).map_err(|e| {
        let field = match rule.secret_target {
            SecretTarget::SignatureSecrets => "account.signature",
            SecretTarget::AuthValue => "account.auth",
            SecretTarget::JwtSecrets => "account.jwt",
            SecretTarget::AuthToken | SecretTarget::AuthPassword => "account.auth",
            SecretTarget::ConfirmClientSecret => "account.confirm.oauth",
            SecretTarget::RemoteKeysSecret | SecretTarget::JwtAudience => "account.jwt",
            SecretTarget::SnsTopicArns => "account.sns",
        };
        err(field, e.message)
    })?;
    let spec = AccountSpec::from_json(merged).map_err(|e| err("account", e.message))?;
    crate::account::compile(spec, false, 0, 0)
        .map_err(|e| err(&format!("account.{}", e.field), e.message))?;
    rule.origin = if file.starts_with("rules/") {
        "shipped".into()
    } else {
        file.to_owned()
    };
    Ok(rule)
}

/// The field an "unknown field" message names, if any.
fn unknown_field(message: &str) -> Option<&str> {
    let start = message.find("unknown field `")? + "unknown field `".len();
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// A secret of the form the rule's scheme expects, for checking that it compiles.
fn example_secret(rule: &Rule) -> String {
    let sig = rule.account.get("signature").and_then(|v| v.as_table());
    let text = |key: &str| {
        sig.and_then(|t| t.get(key))
            .and_then(|v| v.as_str())
            .unwrap_or("")
    };
    let algorithm: Algorithm = toml::Value::String(text("algorithm").to_owned())
        .try_into()
        .unwrap_or_default();
    let encoding: SecretEncoding = toml::Value::String(text("secret_encoding").to_owned())
        .try_into()
        .unwrap_or_default();
    // RFC 8032 section 7.1 TEST 1's public key; SendGrid's published verification key.
    let bytes = match algorithm {
        Algorithm::Ed25519 => {
            hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
                .unwrap_or_default()
        }
        Algorithm::EcdsaP256Sha256 => base64::engine::general_purpose::STANDARD
            .decode(SENDGRID_EXAMPLE_KEY)
            .unwrap_or_default(),
        _ => b"hookgate-rule-check-key-material".to_vec(),
    };
    let encoded = match encoding {
        SecretEncoding::Text | SecretEncoding::Sha1Digest => {
            String::from_utf8_lossy(&bytes).into_owned()
        }
        SecretEncoding::Base64 => base64::engine::general_purpose::STANDARD.encode(&bytes),
        SecretEncoding::Hex => hex::encode(&bytes),
    };
    format!("{}{encoded}", text("secret_prefix"))
}

const SENDGRID_EXAMPLE_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
