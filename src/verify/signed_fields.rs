//! Signatures over chosen fields of the payload rather than over its bytes (Adyen's
//! notification HMAC): each item of a batch carries its own signature, over the values of
//! named fields joined by a separator.
//!
//! Owns [`SignedFields`]: which items a payload holds and the exact text signed for one
//! item. Pure; the keys and the comparison stay in `keys` and `signature`. It must never
//! sign a value it did not read from the item (a missing field is the empty text, as the
//! providers' libraries write it), and never let one genuine item vouch for another.

use serde_json::Value;

use sha2::Digest;

use crate::account::{FieldsDigest, SignedFieldsSpec, SpecError};
use crate::extract::JsonPath;
use crate::secret::ct_eq;

/// A compiled field-signature layout.
#[derive(Debug)]
pub struct SignedFields {
    items: Option<JsonPath>,
    fields: Vec<JsonPath>,
    separator: String,
    digest: Option<FieldsDigest>,
}

impl SignedFields {
    /// Compiles a spec, naming the field at fault.
    pub fn compile(spec: &SignedFieldsSpec) -> Result<Self, SpecError> {
        if spec.fields.is_empty() {
            return Err(SpecError::new(
                "signature.signed_fields.fields",
                "name the fields the provider signs, in its order",
            ));
        }
        let items = spec
            .items
            .as_deref()
            .map(|p| JsonPath::compile("signature.signed_fields.items", p))
            .transpose()?;
        let fields = spec
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| JsonPath::compile(&format!("signature.signed_fields.fields[{i}]"), f))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SignedFields {
            items,
            fields,
            separator: spec.separator.clone(),
            digest: spec.digest,
        })
    }

    /// Whether the signature is a plain digest with the secret appended, not an HMAC.
    pub fn is_digest(&self) -> bool {
        self.digest.is_some()
    }

    /// The digest of one item's content under one secret (for a `digest` scheme).
    pub fn digest(&self, content: &[u8], secret: &[u8]) -> Vec<u8> {
        match self.digest {
            Some(FieldsDigest::Sha512Lowercase) => {
                let mut text = content.to_vec();
                text.extend_from_slice(secret);
                sha2::Sha512::digest(text.to_ascii_lowercase()).to_vec()
            }
            None => Vec::new(),
        }
    }

    /// Whether any presented signature is the digest of the content under the secret,
    /// compared in constant time, every one looked at.
    pub fn digest_matches(&self, content: &[u8], secret: &[u8], presented: &[Vec<u8>]) -> bool {
        let expected = self.digest(content, secret);
        let mut matched = false;
        for sig in presented {
            matched |= !expected.is_empty() && ct_eq(&expected, sig);
        }
        matched
    }

    /// The items of a payload, each signed on its own: the elements of the array at
    /// `items`, or the payload itself. `None` when there is nothing to verify (no array,
    /// or an empty one), which never verifies.
    pub fn items<'v>(&self, payload: &'v Value) -> Option<Vec<&'v Value>> {
        match &self.items {
            None => Some(vec![payload]),
            Some(path) => match path.value(payload) {
                Some(Value::Array(list)) if !list.is_empty() => Some(list.iter().collect()),
                _ => None,
            },
        }
    }

    /// The text signed for one item: each field's value as text (a number as its JSON
    /// text, a missing field empty), joined by the separator.
    pub fn content(&self, item: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(self.separator.as_bytes());
            }
            if let Some(text) = field.text(item) {
                out.extend_from_slice(text.as_bytes());
            }
        }
        out
    }

    /// What every item of a payload signs, one item per line: the same batch always gives
    /// the same bytes, and anything no signature covers does not change them.
    pub fn all_content(&self, payload: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, item) in self
            .items(payload)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                out.push(b'\n');
            }
            out.extend(self.content(item));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn adyen() -> SignedFields {
        SignedFields::compile(&SignedFieldsSpec {
            items: Some("$.notificationItems".into()),
            fields: [
                "$.NotificationRequestItem.pspReference",
                "$.NotificationRequestItem.originalReference",
                "$.NotificationRequestItem.merchantAccountCode",
                "$.NotificationRequestItem.merchantReference",
                "$.NotificationRequestItem.amount.value",
                "$.NotificationRequestItem.amount.currency",
                "$.NotificationRequestItem.eventCode",
                "$.NotificationRequestItem.success",
            ]
            .map(String::from)
            .to_vec(),
            separator: ":".into(),
            digest: None,
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn adyens_published_data_to_sign_is_laid_out_exactly() {
        // Adyen/adyen-ruby-api-library spec/utils/hmac_validator_spec.rb: "should get
        // correct data" (originalReference absent, the amount's value a number).
        let item = json!({"NotificationRequestItem": {
            "additionalData": {"hmacSignature": "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="},
            "amount": {"value": 1130, "currency": "EUR"},
            "pspReference": "7914073381342284", "eventCode": "AUTHORISATION",
            "merchantAccountCode": "TestMerchant",
            "merchantReference": "TestPayment-1407325143704",
            "paymentMethod": "visa", "success": "true"}});
        let f = adyen();
        assert_eq!(
            String::from_utf8_lossy(&f.content(&item)),
            "7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true"
        );
        let batch = json!({"live": "false", "notificationItems": [item.clone(), item]});
        assert_eq!(f.items(&batch).map(|v| v.len()), Some(2));
        assert_eq!(
            f.all_content(&batch)
                .iter()
                .filter(|b| **b == b'\n')
                .count(),
            1
        );
    }

    #[test]
    fn a_body_without_items_has_nothing_to_verify() {
        let f = adyen();
        assert!(f.items(&json!({"notificationItems": []})).is_none());
        assert!(f.items(&json!({"notificationItems": {"a": 1}})).is_none());
        assert!(f.items(&json!({"other": 1})).is_none());
        assert!(
            SignedFields::compile(&SignedFieldsSpec {
                items: None,
                fields: vec![],
                separator: ":".into(),
                digest: None,
            })
            .is_err()
        );
    }
}
