//! The signed-content template: what bytes a sender's MAC covers.
//!
//! Owns parsing `{timestamp}.{body}`-style templates into [`Part`]s once, at account load,
//! and listing the parts of one request in order. It must never copy the body: the parts
//! are fed to the MAC one after the other.

use crate::account::SpecError;

/// One piece of a signed-content template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Literal bytes between placeholders.
    Literal(Vec<u8>),
    /// The raw body.
    Body,
    /// The timestamp header's value, as sent.
    Timestamp,
    /// The id header's value, as sent.
    Id,
    /// The public URL with its query string.
    Url,
    /// The request method, e.g. `POST`.
    Method,
    /// Every form parameter's name followed by its value, sorted by name then value, with
    /// nothing between (Twilio); empty for a body that is not a form.
    FormParams,
    /// The fields a header names, `&name=value` each, in its order (Selcom).
    NamedFields,
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedContent {
    parts: Vec<Part>,
}

impl SignedContent {
    /// Parses a template. `{{` and `}}` stand for literal braces; any other `{name}` must be
    /// one of `body`, `timestamp`, `id`, `url`, `method`, `form_params`,
    /// `named_fields`.
    pub fn parse(template: &str) -> Result<Self, SpecError> {
        let err = |msg: String| SpecError::new("signature.signed_content", msg);
        let mut parts = Vec::new();
        let mut literal = Vec::new();
        let mut rest = template;
        while let Some(c) = rest.chars().next() {
            if rest.starts_with("{{") || rest.starts_with("}}") {
                literal.push(rest.as_bytes()[0]);
                rest = &rest[2..];
                continue;
            }
            if c == '}' {
                return Err(err(
                    "has a '}' without its '{' (write '}}' for a literal brace)".into(),
                ));
            }
            if c != '{' {
                let mut buf = [0u8; 4];
                literal.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                rest = &rest[c.len_utf8()..];
                continue;
            }
            let Some(end) = rest.find('}') else {
                return Err(err("has a '{' that is never closed".into()));
            };
            let part = match &rest[1..end] {
                "body" => Part::Body,
                "timestamp" => Part::Timestamp,
                "id" => Part::Id,
                "url" => Part::Url,
                "method" => Part::Method,
                "form_params" => Part::FormParams,
                "named_fields" => Part::NamedFields,
                other => {
                    return Err(err(format!(
                        "names an unknown placeholder {{{other}}}; known: {{body}} {{timestamp}} \
                         {{id}} {{url}} {{method}} {{form_params}} {{named_fields}}"
                    )));
                }
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(part);
            rest = &rest[end + 1..];
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        if parts.is_empty() {
            return Err(err("is empty; use {body} to sign the body".into()));
        }
        Ok(SignedContent { parts })
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// True when the template uses `part`.
    pub fn uses(&self, part: &Part) -> bool {
        self.parts.contains(part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_common_templates() {
        let t = SignedContent::parse("v0:{timestamp}:{body}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.parts(),
            &[
                Part::Literal(b"v0:".to_vec()),
                Part::Timestamp,
                Part::Literal(b":".to_vec()),
                Part::Body
            ]
        );
        let t = SignedContent::parse("{id}.{timestamp}.{body}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.parts().len(), 5);
        assert!(t.uses(&Part::Id));
    }

    #[test]
    fn escapes_and_errors() {
        let t = SignedContent::parse("{{x}}{body}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.parts()[0], Part::Literal(b"{x}".to_vec()));
        for bad in ["", "{nope}", "{body", "body}", "{}"] {
            assert!(SignedContent::parse(bad).is_err(), "{bad:?}");
        }
    }
}
