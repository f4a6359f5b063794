//! The XML reader: an XML document as a JSON value, so that the same JSONPaths reach into
//! XML payloads (Braintree's `bt_payload`, DPO's push) and XML answers (DPO's
//! `verifyToken`) as into JSON.
//!
//! Owns [`to_json`] and its mapping: the root element becomes `{"Root": ...}`; an element
//! with child elements becomes an object of its children by name (a repeated name becomes
//! an array, in document order); an element without children becomes its text, trimmed of
//! the whitespace around it (pretty-printed documents indent it); an element
//! with `nil="true"` becomes null; other attributes, comments and processing instructions
//! are not kept. Pure. It must never expand an entity other than XML's five predefined ones
//! and character references, never accept a document type declaration (no DTD, no
//! external entity, no entity expansion), and never read more than the cap it is given.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use serde_json::{Map, Value};

/// The deepest nesting read; deeper documents are refused rather than walked.
pub const MAX_DEPTH: usize = 64;

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct XmlError(pub String);

/// One open element.
struct Open {
    name: String,
    children: Map<String, Value>,
    text: String,
    nil: bool,
}

/// Reads an XML document of at most `cap` bytes (UTF-8) into a JSON value.
pub fn to_json(bytes: &[u8], cap: usize) -> Result<Value, XmlError> {
    if bytes.len() > cap {
        return Err(XmlError(format!(
            "the XML is {} bytes, over the {cap} bytes read",
            bytes.len()
        )));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text =
        std::str::from_utf8(bytes).map_err(|_| XmlError("the XML is not valid UTF-8".into()))?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Value> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| XmlError(format!("the XML is malformed: {e}")))?;
        match event {
            Event::Eof => break,
            Event::DocType(_) => {
                return Err(XmlError(
                    "the XML declares a document type (DTD), which is refused".into(),
                ));
            }
            Event::Start(start) => {
                if root.is_some() {
                    return Err(XmlError("the XML has more than one root element".into()));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError(format!(
                        "the XML nests deeper than {MAX_DEPTH} elements"
                    )));
                }
                stack.push(open(&start)?);
            }
            Event::Empty(start) => {
                if root.is_some() {
                    return Err(XmlError("the XML has more than one root element".into()));
                }
                let element = open(&start)?;
                let value = if element.nil {
                    Value::Null
                } else {
                    Value::String(String::new())
                };
                place(&mut stack, &mut root, element.name, value);
            }
            Event::End(_) => {
                let Some(element) = stack.pop() else {
                    return Err(XmlError("the XML closes an element it never opened".into()));
                };
                let value = close(element.children, element.text, element.nil);
                place(&mut stack, &mut root, element.name, value);
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&content),
                    None if content.trim().is_empty() => {}
                    None => return Err(XmlError("the XML has text outside its root".into())),
                }
            }
            Event::CData(c) => {
                let content = c.into_inner().into_owned();
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&content),
                    None => return Err(XmlError("the XML has text outside its root".into())),
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    Ok(None) => match r.xml10_content().as_ref() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        other => {
                            return Err(XmlError(format!(
                                "the XML uses the entity &{other};, which is refused (only \
                                 XML's predefined entities and character references are read)"
                            )));
                        }
                    },
                    Err(e) => {
                        return Err(XmlError(format!(
                            "the XML has a bad character reference: {e}"
                        )));
                    }
                };
                match stack.last_mut() {
                    Some(top) => top.text.push(resolved),
                    None => return Err(XmlError("the XML has text outside its root".into())),
                }
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError("the XML ends before its elements close".into()));
    }
    root.ok_or_else(|| XmlError("the XML holds no element".into()))
}

fn open(start: &BytesStart<'_>) -> Result<Open, XmlError> {
    let name = start.name().as_ref().to_owned();
    let mut nil = false;
    for attr in start.attributes() {
        let attr = attr.map_err(|e| XmlError(format!("the XML has a bad attribute: {e}")))?;
        let key = attr.key.local_name();
        if key.as_ref() == "nil" {
            let value = attr
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| XmlError(format!("the XML has a bad attribute: {e}")))?;
            nil = value.trim() == "true";
        }
    }
    Ok(Open {
        name,
        children: Map::new(),
        text: String::new(),
        nil,
    })
}

/// An element's value: its children, or its text when it has none.
fn close(children: Map<String, Value>, text: String, nil: bool) -> Value {
    if children.is_empty() {
        return if nil && text.trim().is_empty() {
            Value::Null
        } else {
            Value::String(text.trim().to_owned())
        };
    }
    let mut children = children;
    if !text.trim().is_empty() {
        children.insert("#text".into(), Value::String(text.trim().to_owned()));
    }
    Value::Object(children)
}

/// Puts a closed element into its parent, or makes it the root.
fn place(stack: &mut [Open], root: &mut Option<Value>, name: String, value: Value) {
    let Some(parent) = stack.last_mut() else {
        let mut doc = Map::new();
        doc.insert(name, value);
        *root = Some(Value::Object(doc));
        return;
    };
    match parent.children.get_mut(&name) {
        // Element values are never arrays, so an array here is a repeated name.
        Some(Value::Array(list)) => list.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            parent.children.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(text: &str) -> Result<Value, XmlError> {
        to_json(text.as_bytes(), 1 << 20)
    }

    #[test]
    fn a_dpo_answer_reads_as_json() {
        let doc = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<API3G>\n  <Result>000</Result>\n  \
                   <ResultExplanation>Transaction Paid &amp; settled</ResultExplanation>\n  \
                   <TransactionAmount>10.00</TransactionAmount>\n  <Empty/>\n</API3G>";
        assert_eq!(
            read(doc),
            Ok(json!({"API3G": {"Result": "000",
                "ResultExplanation": "Transaction Paid & settled",
                "TransactionAmount": "10.00", "Empty": ""}}))
        );
    }

    #[test]
    fn repeated_elements_become_arrays_and_nil_is_null() {
        let doc = "<n><kind>check</kind><subject><a type=\"array\"><x>1</x><x>2</x><x>3</x></a>\
                   <gone nil=\"true\"/><none nil=\"true\"></none></subject></n>";
        assert_eq!(
            read(doc),
            Ok(json!({"n": {"kind": "check", "subject": {
                "a": {"x": ["1", "2", "3"]}, "gone": null, "none": null}}}))
        );
        assert_eq!(
            read("<a>x&#65;&#x42;<![CDATA[<c>]]></a>"),
            Ok(json!({"a": "xAB<c>"}))
        );
        assert_eq!(
            read("<s><check type=\"boolean\">\n  true\n </check></s>"),
            Ok(json!({"s": {"check": "true"}}))
        );
    }

    #[test]
    fn dtds_entities_and_oversized_documents_are_refused() {
        let xxe = "<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><a>&x;</a>";
        assert!(read(xxe).is_err_and(|e| e.0.contains("DTD")));
        let bomb = "<!DOCTYPE a [<!ENTITY l \"lol\"><!ENTITY l2 \"&l;&l;\">]><a>&l2;</a>";
        assert!(read(bomb).is_err());
        assert!(read("<a>&x;</a>").is_err_and(|e| e.0.contains("&x;")));
        assert!(to_json(b"<a>0123456789</a>", 8).is_err_and(|e| e.0.contains("over")));
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert!(read(&deep).is_err());
    }

    #[test]
    fn malformed_documents_are_refused() {
        for bad in [
            "",
            "text",
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "<a></a><b></b>",
            "</a>",
            "<a>x</a>tail",
        ] {
            assert!(read(bad).is_err(), "{bad:?}");
        }
        assert!(to_json(b"<a>\xff</a>", 100).is_err());
    }
}
