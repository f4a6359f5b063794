//! Signatures over fields the request itself names in a header (Selcom: `Signed-Fields:
//! transid,order_id,...`, and the digest covers `timestamp=...&transid=...&order_id=...`).
//!
//! Owns [`NamedFields`]: reading the header's list, refusing a list that leaves out a field
//! the account requires (so a sender cannot sign nothing, or leave the fields that matter
//! unsigned), and writing the signed text `{separator}name=value` for each named field, in
//! the header's order. Pure. It must never sign a field the header does not name, never
//! accept a list without every required field, and never let a name carry the separator
//! or `=` (which would let one field's text pass for another's).

use hyper::HeaderMap;
use hyper::header::HeaderName;
use serde_json::Value;

use super::auth::parse_header_name;
use crate::account::{NamedFieldsSpec, SpecError};

/// A compiled field-list scheme.
#[derive(Debug)]
pub struct NamedFields {
    header: HeaderName,
    required: Vec<String>,
    separator: String,
}

/// Whether a field name can be named: letters, digits, `_` and `-`.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl NamedFields {
    /// Compiles a spec, naming the field at fault.
    pub fn compile(spec: &NamedFieldsSpec) -> Result<Self, SpecError> {
        let header = parse_header_name("signature.named_fields.header", &spec.header)?;
        if spec.required.is_empty() {
            return Err(SpecError::new(
                "signature.named_fields.required",
                "name the fields every request must sign (at least the ones extracted); \
                 without them a request could sign none",
            ));
        }
        if let Some(bad) = spec.required.iter().find(|n| !plain_name(n)) {
            return Err(SpecError::new(
                "signature.named_fields.required",
                format!("{bad:?} is not a plain field name (letters, digits, _ and -)"),
            ));
        }
        Ok(NamedFields {
            header,
            required: spec.required.clone(),
            separator: spec.separator.clone(),
        })
    }

    /// The fields the request names, in its order; an error says why the list is refused.
    pub fn names(&self, headers: &HeaderMap) -> Result<Vec<String>, String> {
        let Some(raw) = headers.get(&self.header) else {
            return Err(format!(
                "the list of signed fields ({}) is missing",
                self.header
            ));
        };
        let text = std::str::from_utf8(raw.as_bytes())
            .map_err(|_| format!("the list of signed fields ({}) is not text", self.header))?;
        let names: Vec<String> = text.split(',').map(|n| n.trim().to_owned()).collect();
        if let Some(bad) = names.iter().find(|n| !plain_name(n)) {
            return Err(format!(
                "the list of signed fields names {bad:?}, which is not a plain field name"
            ));
        }
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(format!("the list of signed fields names {n:?} twice"));
            }
        }
        if let Some(missing) = self.required.iter().find(|r| !names.contains(r)) {
            return Err(format!(
                "the list of signed fields leaves out {missing:?}, which must be signed"
            ));
        }
        Ok(names)
    }

    /// The signed text of the named fields: `{separator}name=value` for each, in the list's
    /// order; a value is its text (a number as its JSON text), a missing one empty.
    pub fn content(&self, headers: &HeaderMap, payload: Option<&Value>) -> Result<Vec<u8>, String> {
        let names = self.names(headers)?;
        let mut out = Vec::new();
        for name in &names {
            out.extend_from_slice(self.separator.as_bytes());
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            match payload.and_then(|p| p.get(name)) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => out.extend_from_slice(s.as_bytes()),
                Some(other) => out.extend_from_slice(other.to_string().as_bytes()),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;
    use serde_json::json;

    fn selcom() -> NamedFields {
        NamedFields::compile(&NamedFieldsSpec {
            header: "Signed-Fields".into(),
            required: vec!["transid".into(), "order_id".into()],
            separator: "&".into(),
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn headers(list: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "signed-fields",
            HeaderValue::from_str(list).unwrap_or_else(|e| panic!("{e}")),
        );
        h
    }

    #[test]
    fn the_named_fields_are_written_in_the_headers_order() {
        let body = json!({"transid": "T1", "order_id": "o-7", "amount": 1000, "result": "SUCCESS"});
        let text = selcom().content(&headers("order_id, transid,amount,absent"), Some(&body));
        assert_eq!(
            text.map(|t| String::from_utf8_lossy(&t).into_owned()),
            Ok("&order_id=o-7&transid=T1&amount=1000&absent=".to_owned())
        );
    }

    #[test]
    fn a_list_that_leaves_out_a_required_field_or_is_odd_is_refused() {
        let f = selcom();
        let body = json!({"transid": "T1", "order_id": "o-7"});
        for list in [
            "transid",
            "",
            "transid,order_id,transid",
            "transid,order_id=x&a",
        ] {
            assert!(f.content(&headers(list), Some(&body)).is_err(), "{list:?}");
        }
        assert!(f.content(&HeaderMap::new(), Some(&body)).is_err());
        let none = NamedFieldsSpec {
            header: "Signed-Fields".into(),
            required: vec![],
            separator: "&".into(),
        };
        assert!(NamedFields::compile(&none).is_err());
    }
}
