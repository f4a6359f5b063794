//! Strict JSON parsing for webhook bodies: like `serde_json::from_slice`, but an object
//! that names the same key twice is an error.
//!
//! Owns only that rule. Duplicate keys are refused because parsers disagree on them (first
//! wins, last wins, both): a sender could show the signature check, the audit reader and a
//! downstream service different `id`s in one signed body. Depth stays bounded by
//! serde_json's recursion limit. It must never accept what `serde_json` refuses.
//!
//! [`from_slice_keeping`] parses the same way and refuses the same documents with the
//! same errors, but builds only the parts that a set of plain paths (`$.a.b[0]`) reach
//! ([`Keep`]): the rest is checked and dropped as it is read, never built. For an account
//! whose paths are all plain, that is all extraction looks at.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses `bytes` as one JSON value, refusing duplicate object keys.
pub fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Parses `bytes` as [`from_slice`] does (the same documents refused, with the same
/// errors), keeping only what `keep` names: every other member is dropped, and every other
/// array item before the last one kept becomes `null`, so that indexes still hold.
pub fn from_slice_keeping(bytes: &[u8], keep: &Keep) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Pruned(keep).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// One step of a plain path: a member name or an array index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// `.name`: an object's member.
    Key(&'a str),
    /// `[n]`: an array's item.
    Index(usize),
}

/// The parts of a document that a set of plain paths reach.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Keep {
    /// A path ends here: the whole value is kept.
    whole: bool,
    members: Vec<(String, Keep)>,
    items: Vec<(usize, Keep)>,
}

impl Keep {
    /// Adds the path made of `steps` (none: the whole document).
    pub fn add<'a>(&mut self, steps: impl IntoIterator<Item = Step<'a>>) {
        let mut node = self;
        for step in steps {
            node = match step {
                Step::Key(k) => {
                    let at = node.members.iter().position(|(m, _)| m == k);
                    let i = at.unwrap_or(node.members.len());
                    if at.is_none() {
                        node.members.push((k.to_owned(), Keep::default()));
                    }
                    &mut node.members[i].1
                }
                Step::Index(n) => {
                    let at = node.items.iter().position(|(m, _)| *m == n);
                    let i = at.unwrap_or(node.items.len());
                    if at.is_none() {
                        node.items.push((n, Keep::default()));
                    }
                    &mut node.items[i].1
                }
            };
        }
        node.whole = true;
    }

    fn member(&self, key: &str) -> Option<&Keep> {
        self.members.iter().find(|(m, _)| m == key).map(|(_, k)| k)
    }

    fn item(&self, n: usize) -> Option<&Keep> {
        self.items.iter().find(|(m, _)| *m == n).map(|(_, k)| k)
    }
}

/// The error for a key that one object names twice.
fn repeated<E: de::Error>(key: &str) -> E {
    E::custom(format!("the key {key:?} appears twice in one object"))
}

/// The keys one object has named so far: a list while it is short, a set beyond that,
/// so that a hostile object with many keys stays linear.
#[derive(Default)]
struct Seen<'de> {
    few: Vec<Cow<'de, str>>,
    many: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> Seen<'de> {
    const FEW: usize = 16;

    /// Records `key`; false if the object already named it.
    fn first(&mut self, key: Cow<'de, str>) -> bool {
        if let Some(set) = &mut self.many {
            return set.insert(key);
        }
        if self.few.contains(&key) {
            return false;
        }
        self.few.push(key);
        if self.few.len() > Self::FEW {
            self.many = Some(self.few.drain(..).collect());
        }
        true
    }
}

/// A map key, borrowed from the input when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

/// A seed that builds what its [`Keep`] names and checks the rest.
struct Pruned<'k>(&'k Keep);

impl<'de> DeserializeSeed<'de> for Pruned<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.0.whole {
            StrictValue.deserialize(d)
        } else {
            d.deserialize_any(PrunedVisitor(self.0))
        }
    }
}

struct PrunedVisitor<'k>(&'k Keep);

impl<'de> Visitor<'de> for PrunedVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        StrictVisitor.visit_bool(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        StrictVisitor.visit_i64(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        StrictVisitor.visit_u64(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        StrictVisitor.visit_f64(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        StrictVisitor.visit_str(v)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        StrictVisitor.visit_string(v)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        StrictVisitor.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let last = self.0.items.iter().map(|(n, _)| *n).max();
        let mut items = Vec::new();
        for n in 0.. {
            match self.0.item(n) {
                Some(keep) => match seq.next_element_seed(Pruned(keep))? {
                    Some(v) => items.push(v),
                    None => break,
                },
                None => match seq.next_element_seed(Skip)? {
                    // A placeholder, so that a kept item further on keeps its index.
                    Some(()) if last.is_some_and(|l| n < l) => items.push(Value::Null),
                    Some(()) => {}
                    None => break,
                },
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut seen = Seen::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let keep = self.0.member(&key);
            let name = keep.map(|_| key.to_string());
            if let Some(named) = seen_twice(&mut seen, key) {
                return Err(repeated(&named));
            }
            match (keep, name) {
                (Some(keep), Some(name)) => {
                    let value = map.next_value_seed(Pruned(keep))?;
                    out.insert(name, value);
                }
                _ => map.next_value_seed(Skip)?,
            }
        }
        Ok(Value::Object(out))
    }
}

/// A seed that checks a value as [`StrictValue`] would, and builds nothing.
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        StrictVisitor.visit_f64(v).map(drop)
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = Seen::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if let Some(named) = seen_twice(&mut seen, key) {
                return Err(repeated(&named));
            }
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }
}

/// Records `key`, returning it back when the object already named it.
fn seen_twice<'de>(seen: &mut Seen<'de>, key: Cow<'de, str>) -> Option<String> {
    let copy = key.clone();
    (!seen.first(key)).then(|| copy.into_owned())
}

/// A seed that builds a [`Value`] and fails on a repeated key.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(repeated(&key));
            }
            let value = map.next_value_seed(StrictValue)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_values_as_serde_json_for_valid_input() {
        for text in [
            r#"{"a":1,"b":[true,null,"x",{"c":-2.5}],"d":{}}"#,
            "[]",
            "\"s\"",
            "12345678901234567890",
            "-9223372036854775808",
            "1e300",
        ] {
            let want: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
            let got = from_slice(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn duplicate_keys_at_any_depth_are_refused() {
        for text in [
            r#"{"id":"a","id":"b"}"#,
            r#"{"x":{"id":1,"id":1}}"#,
            r#"[{"k":1},{"k":2,"k":3}]"#,
        ] {
            let err = from_slice(text.as_bytes()).err().map(|e| e.to_string());
            assert!(err.unwrap_or_default().contains("appears twice"), "{text}");
        }
        assert_eq!(
            from_slice(br#"[{"k":1},{"k":2}]"#).ok(),
            Some(json!([{"k":1},{"k":2}]))
        );
    }

    #[test]
    fn what_serde_json_refuses_stays_refused() {
        for text in ["1e400", "{\"a\":", "[1,]", "{} x", &"[".repeat(5000)] {
            assert!(from_slice(text.as_bytes()).is_err(), "{text}");
        }
    }

    /// A small deterministic generator, so that the documents are the same every run.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
    }

    const NAMES: [&str; 5] = ["a", "b", "id", "x_1", "deep"];

    fn document(rng: &mut Lcg, depth: u32) -> Value {
        match (depth, rng.below(8)) {
            (0, _) | (_, 0) => Value::from(rng.below(1000)),
            (_, 1) => Value::from(format!("s\"\\\u{e9}{}", rng.below(50))),
            (_, 2) => Value::Null,
            (_, 3) => Value::from(-0.5 * rng.below(9) as f64),
            (_, 4 | 5) => {
                let n = rng.below(5);
                Value::Array((0..n).map(|_| document(rng, depth - 1)).collect())
            }
            _ => {
                let mut m = Map::new();
                for name in NAMES {
                    if rng.below(3) > 0 {
                        m.insert(name.to_owned(), document(rng, depth - 1));
                    }
                }
                Value::Object(m)
            }
        }
    }

    fn path(rng: &mut Lcg) -> Vec<Step<'static>> {
        (0..rng.below(5))
            .map(|_| match rng.below(3) {
                0 => Step::Index(rng.below(4) as usize),
                _ => Step::Key(NAMES[rng.below(NAMES.len() as u64) as usize]),
            })
            .collect()
    }

    fn walk<'v>(mut v: &'v Value, steps: &[Step<'_>]) -> Option<&'v Value> {
        for step in steps {
            v = match step {
                Step::Key(k) => v.as_object()?.get(*k)?,
                Step::Index(n) => v.as_array()?.get(*n)?,
            };
        }
        Some(v)
    }

    #[test]
    fn a_kept_parse_finds_at_every_plain_path_what_the_whole_document_holds() {
        let mut rng = Lcg(7);
        let mut found = 0;
        for _ in 0..2000 {
            let doc = document(&mut rng, 5);
            let text = doc.to_string();
            let paths: Vec<_> = (0..1 + rng.below(4)).map(|_| path(&mut rng)).collect();
            let mut keep = Keep::default();
            for p in &paths {
                keep.add(p.iter().copied());
            }
            let kept = from_slice_keeping(text.as_bytes(), &keep)
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            for p in &paths {
                assert_eq!(walk(&kept, p), walk(&doc, p), "{text} at {p:?}");
                found += usize::from(walk(&doc, p).is_some());
            }
        }
        // The paths reached real values often enough for the comparison to mean something.
        assert!(found > 1000, "only {found} paths matched");
    }

    #[test]
    fn a_kept_parse_drops_what_no_path_reaches() {
        let mut keep = Keep::default();
        keep.add([Step::Key("order"), Step::Key("id")]);
        keep.add([Step::Key("items"), Step::Index(2)]);
        let text = r#"{"order":{"id":7,"note":"x"},"items":[1,{"a":2},3,4],"pad":{"big":[1,2]}}"#;
        assert_eq!(
            from_slice_keeping(text.as_bytes(), &keep).ok(),
            Some(json!({"order": {"id": 7}, "items": [null, null, 3]}))
        );
        let mut whole = Keep::default();
        whole.add([]);
        assert_eq!(
            from_slice_keeping(text.as_bytes(), &whole).ok(),
            from_slice(text.as_bytes()).ok()
        );
    }

    #[test]
    fn a_kept_parse_refuses_what_from_slice_refuses_with_the_same_error() {
        let many: String = (0..40).map(|i| format!(r#""k{i}":{i},"#)).collect();
        let bad = [
            r#"{"id":"a","id":"b"}"#.to_owned(),
            r#"{"x":{"k":1,"k":2}}"#.to_owned(),
            r#"{"\u0069d":"a","id":"b"}"#.to_owned(),
            r#"[{"k":1},{"k":2,"k":3}]"#.to_owned(),
            format!(r#"{{"id":1,"pad":{{{many}"k7":0}}}}"#),
            format!(r#"{{{many}"k39":0}}"#),
            "1e400".to_owned(),
            r#"{"pad":[1,-1e400]}"#.to_owned(),
            "{\"a\":".to_owned(),
            "[1,]".to_owned(),
            "{} x".to_owned(),
            "[".repeat(5000),
            r#"{"pad":"#.to_owned() + &"[".repeat(5000),
        ];
        let mut keeps = vec![Keep::default()];
        for steps in [
            vec![Step::Key("id")],
            vec![Step::Key("x"), Step::Key("k")],
            vec![Step::Index(1), Step::Key("k")],
        ] {
            let mut k = Keep::default();
            k.add(steps);
            keeps.push(k);
        }
        for text in &bad {
            let want = from_slice(text.as_bytes())
                .map(drop)
                .map_err(|e| e.to_string());
            assert!(want.is_err(), "{text}");
            for keep in &keeps {
                let got = from_slice_keeping(text.as_bytes(), keep)
                    .map(drop)
                    .map_err(|e| e.to_string());
                assert_eq!(got, want, "{text} keeping {keep:?}");
            }
        }
    }
}
