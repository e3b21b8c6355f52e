//! Lenient JSON access shared by the providers: numbers that arrive as strings
//! and vice versa, empty strings treated as absent, and typed parse errors.

use serde_json::{Map, Value};

use super::{Parsed, Unparsed};
use crate::event::EmailEvent;

/// Why a body could not be turned into events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body is empty.
    #[error("empty body")]
    EmptyBody,
    /// The body is not UTF-8 text.
    #[error("body is not valid UTF-8")]
    NotUtf8,
    /// The body is not JSON.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// The JSON does not have the provider's shape.
    #[error("unexpected shape: {0}")]
    WrongShape(String),
    /// The body holds no event.
    #[error("no events in body")]
    NoEvents,
    /// An event lacks a field every event must have.
    #[error("event {index}: missing or invalid {field}")]
    MissingField {
        /// Position of the event in the body.
        index: usize,
        /// The missing field.
        field: &'static str,
    },
    /// One callback would expand into more per-recipient data than a request may hold.
    #[error("event {index}: {recipients} recipients are more than one request may expand into")]
    FanOutTooLarge {
        /// Position of the event in the body.
        index: usize,
        /// How many recipients it lists.
        recipients: usize,
    },
}

impl ParseError {
    /// A stable machine-readable name for the error class.
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::EmptyBody => "empty_body",
            ParseError::NotUtf8 => "not_utf8",
            ParseError::InvalidJson(_) => "invalid_json",
            ParseError::WrongShape(_) => "wrong_shape",
            ParseError::NoEvents => "no_events",
            ParseError::MissingField { .. } => "missing_field",
            ParseError::FanOutTooLarge { .. } => "fan_out_too_large",
        }
    }
}

/// Parses a body into JSON, distinguishing empty, non-UTF-8 and malformed input.
pub fn parse_body(body: &[u8]) -> Result<Value, ParseError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::EmptyBody);
    }
    let text = std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
    serde_json::from_str(text).map_err(|e| ParseError::InvalidJson(e.to_string()))
}

/// Checks that a body held at least one event. Whether the events fit the
/// table's keys is the store's concern (`store::codec::check_keys`).
pub fn validate(events: Vec<EmailEvent>) -> Result<Vec<EmailEvent>, ParseError> {
    if events.is_empty() {
        return Err(ParseError::NoEvents);
    }
    Ok(events)
}

/// Parses a batch item by item: what `parse_item` adds for an item that
/// parses is kept, and an item that fails becomes one [`Unparsed`] whose body
/// is `alone(item)` (that item as a body the provider's `parse` takes), so one
/// bad event does not take the batch's valid events with it. `parse_item` gets
/// the item's position (for its errors) and pushes its events; what it pushed
/// before failing is dropped. A batch that yields nothing is `body` unparsed
/// as [`ParseError::NoEvents`], as `parse` answers it.
pub fn each_item<'v>(
    body: &[u8],
    items: impl IntoIterator<Item = &'v Value>,
    mut parse_item: impl FnMut(usize, &Value, &mut Vec<EmailEvent>) -> Result<(), ParseError>,
    alone: impl Fn(&Value) -> Vec<u8>,
) -> Parsed {
    let items = items.into_iter();
    let mut parsed = Parsed {
        events: Vec::with_capacity(items.size_hint().0),
        unparsed: Vec::new(),
    };
    for (index, item) in items.enumerate() {
        let before = parsed.events.len();
        if let Err(error) = parse_item(index, item, &mut parsed.events) {
            parsed.events.truncate(before);
            parsed.unparsed.push(Unparsed::event(alone(item), &error));
        }
    }
    not_empty(body, parsed)
}

/// A body that is a JSON array of events or one event, parsed event by event
/// ([`each_item`], items alone as [`item_alone`]); a body that is not JSON, or
/// one event that fails, is unparsed whole.
pub fn each_event(
    body: &[u8],
    parse_item: impl FnMut(usize, &Value, &mut Vec<EmailEvent>) -> Result<(), ParseError>,
) -> Parsed {
    match parse_body(body) {
        Ok(Value::Array(items)) => each_item(body, &items, parse_item, item_alone),
        Ok(one) => each_item(body, [&one], parse_item, |_| body.to_vec()),
        Err(error) => Parsed::whole(body, Err(error)),
    }
}

/// `parsed`, unless it holds nothing: then `body` unparsed as
/// [`ParseError::NoEvents`] (an empty batch that is not a control).
pub fn not_empty(body: &[u8], parsed: Parsed) -> Parsed {
    if parsed.events.is_empty() && parsed.unparsed.is_empty() {
        Parsed::whole(body, Err(ParseError::NoEvents))
    } else {
        parsed
    }
}

/// A batch item alone, as a body of a provider whose `parse` takes one event
/// object or an array of them: the object as its event keeps it in `raw`; any
/// other value inside a one-item array, so that `parse` meets it as an item
/// again and fails the same way (a bare nested array would be read as a batch).
pub fn item_alone(item: &Value) -> Vec<u8> {
    if item.is_object() {
        canonical(item).into_bytes()
    } else {
        canonical(&Value::Array(vec![item.clone()])).into_bytes()
    }
}

/// The value as an object, or a shape error naming what was expected.
pub fn as_object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, ParseError> {
    value
        .as_object()
        .ok_or_else(|| ParseError::WrongShape(format!("{what} must be a JSON object")))
}

/// Looks a key up exactly, then case-insensitively (Tencent documents `bulkid`, sends `bulkId`).
pub fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// A field as text: strings as-is, numbers and booleans formatted; empty or null is `None`.
pub fn text(obj: &Map<String, Value>, key: &str) -> Option<String> {
    value_text(get(obj, key)?)
}

/// A value as text: strings as-is, numbers and booleans formatted; empty or null is `None`.
pub fn value_text(value: &Value) -> Option<String> {
    let s = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// A field as an integer: JSON integers, integral floats, or numeric strings.
pub fn int(obj: &Map<String, Value>, key: &str) -> Option<i64> {
    match get(obj, key)? {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A field as an object, when it is one.
pub fn object<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    get(obj, key)?.as_object()
}

/// Canonical JSON text of a value: sorted keys, no whitespace.
pub fn canonical(value: &Value) -> String {
    // serde_json's map is a BTreeMap here (no `preserve_order`), so keys come out sorted.
    // `to_writer` writes straight into a byte buffer; `Value`'s `Display` goes
    // through `fmt::Write` a piece at a time and took twice as long (benches/cpu.rs).
    // The text is written into a per-thread scratch buffer and copied out at its exact
    // size: one allocation instead of a buffer grown 128 → 256 → 512 → 1024 bytes.
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        let text = match serde_json::to_writer(&mut *scratch, value) {
            // serde_json writes valid UTF-8 from a `Value`.
            Ok(()) => String::from_utf8(scratch.clone()).unwrap_or_default(),
            Err(_) => String::new(),
        };
        if scratch.capacity() > MAX_SCRATCH_BYTES {
            *scratch = Vec::new();
        }
        text
    })
}

/// Largest scratch buffer kept between calls (a 1 MB inbound mail is not kept).
const MAX_SCRATCH_BYTES: usize = 64 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The SMTP reply code at the start of a failure text, e.g. `551 5.1.1` from
/// `551 5.1.1 recipient is not exist`.
pub fn smtp_code(reason: &str) -> Option<String> {
    let mut words = reason.split_whitespace();
    let basic = words
        .next()
        .filter(|w| w.len() == 3 && w.bytes().all(|b| b.is_ascii_digit()))?;
    match words.next() {
        Some(enhanced) if is_enhanced_code(enhanced) => Some(format!("{basic} {enhanced}")),
        _ => Some(basic.to_owned()),
    }
}

fn is_enhanced_code(word: &str) -> bool {
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Joins browser and OS descriptions into one user-agent-like string.
pub fn client_description(
    browser: Option<String>,
    browser_ver: Option<String>,
    os: Option<String>,
    os_ver: Option<String>,
) -> Option<String> {
    let join = |name: Option<String>, ver: Option<String>| match (name, ver) {
        (Some(n), Some(v)) => Some(format!("{n} {v}")),
        (n, _) => n,
    };
    match (join(browser, browser_ver), join(os, os_ver)) {
        (Some(b), Some(o)) => Some(format!("{b} / {o}")),
        (b, o) => b.or(o),
    }
}

/// The check every batching provider's unit test makes of its
/// [`Provider::parse_each`](super::Provider::parse_each).
#[cfg(test)]
pub(crate) mod batch_check {
    use serde_json::Value;

    use crate::providers::{Inbound, Provider};

    /// A fixture-derived batch with one event broken.
    pub struct OneBroken {
        /// The provider under test.
        pub provider: &'static dyn Provider,
        /// The valid batch's items, from fixtures.
        pub items: Vec<Value>,
        /// The request body holding `items` as the ESP posts them.
        pub body: fn(&[Value]) -> Vec<u8>,
        /// Which item is broken.
        pub broken: usize,
        /// What breaks it (e.g. a field removed).
        pub damage: fn(&mut Value),
        /// The error class it then fails with.
        pub code: &'static str,
        /// What repairs the quarantined body, given the item before it was
        /// broken (the field put back).
        pub repair: fn(&mut Value, &Value),
    }

    /// The items of fixtures `tests/fixtures/<provider>/<name>.json`, in
    /// order: an array's items, or the one object.
    pub fn fixture_items(provider: &str, names: &[&str]) -> Vec<Value> {
        let mut items = Vec::new();
        for name in names {
            let path = format!(
                "{}/tests/fixtures/{provider}/{name}.json",
                env!("CARGO_MANIFEST_DIR")
            );
            match serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap() {
                Value::Array(all) => items.extend(all),
                one => items.push(one),
            }
        }
        items
    }

    /// Removes `field` from an object item.
    pub fn remove(item: &mut Value, field: &str) {
        item.as_object_mut().unwrap().remove(field).unwrap();
    }

    /// A batch posted as a JSON array of its items.
    pub fn array(items: &[Value]) -> Vec<u8> {
        serde_json::to_vec(items).unwrap()
    }

    impl OneBroken {
        /// Asserts that the other items parse exactly as in the valid batch,
        /// and that the broken one is one `Unparsed` with `code` whose body
        /// `parse` fails with the same class and, repaired, parses into the
        /// valid batch's events of that item.
        pub fn check(self) {
            let p = self.provider;
            let all = p.parse(&(self.body)(&self.items)).unwrap();
            let own = p.parse(&(self.body)(&self.items[self.broken..=self.broken]));
            let own = own.unwrap();
            let others: Vec<_> = all.iter().filter(|e| !own.contains(e)).cloned().collect();
            assert_eq!(others.len() + own.len(), all.len(), "items overlap");

            let mut items = self.items.clone();
            (self.damage)(&mut items[self.broken]);
            let body = (self.body)(&items);
            let request = Inbound {
                headers: &[],
                query: &[],
                body: &body,
            };
            let parsed = p.parse_each(&request);
            assert_eq!(parsed.events, others);
            let [unparsed] = parsed.unparsed.as_slice() else {
                panic!("one unparsed expected: {:?}", parsed.unparsed);
            };
            assert_eq!(unparsed.code, self.code, "{}", unparsed.message);
            let error = p.parse(&unparsed.body).unwrap_err();
            assert_eq!(error.code(), self.code, "{error}");
            assert_eq!(p.parse(&body).unwrap_err().code(), self.code);

            let mut repaired: Value = serde_json::from_slice(&unparsed.body).unwrap();
            (self.repair)(&mut repaired, &self.items[self.broken]);
            let repaired = p.parse(repaired.to_string().as_bytes()).unwrap();
            assert_eq!(repaired, own);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;
    use serde_json::json;

    #[test]
    fn body_errors_are_classified() {
        assert_eq!(parse_body(b""), Err(ParseError::EmptyBody));
        assert_eq!(parse_body(b"  \n"), Err(ParseError::EmptyBody));
        assert_eq!(parse_body(&[0x7b, 0xff, 0x7d]), Err(ParseError::NotUtf8));
        assert!(matches!(parse_body(b"{"), Err(ParseError::InvalidJson(_))));
        assert_eq!(parse_body(b"[]"), Ok(json!([])));
    }

    #[test]
    fn lenient_numbers_and_strings() {
        let v = json!({"a": "42", "b": 7, "c": "", "d": 1.0e3, "e": "x", "bulkId": "B"});
        let o = v.as_object().unwrap();
        assert_eq!(int(o, "a"), Some(42));
        assert_eq!(int(o, "d"), Some(1000));
        assert_eq!(int(o, "e"), None);
        assert_eq!(text(o, "b"), Some("7".into()));
        assert_eq!(text(o, "c"), None);
        assert_eq!(text(o, "bulkid"), Some("B".into()));
    }

    #[test]
    fn smtp_codes_are_extracted() {
        assert_eq!(
            smtp_code("551 5.1.1 recipient is not exist"),
            Some("551 5.1.1".into())
        );
        assert_eq!(smtp_code("550 mailbox unavailable"), Some("550".into()));
        assert_eq!(smtp_code("mailbox full"), None);
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let v: Value = serde_json::from_str(r#"{ "b": 1, "a": {"d": 2, "c": 3} }"#).unwrap();
        assert_eq!(canonical(&v), r#"{"a":{"c":3,"d":2},"b":1}"#);
    }

    /// A toy per-item parser: an object `{"n": k}` gives `k` events, and fails
    /// after pushing them when it also has `"fail"`; anything else fails.
    fn toy(index: usize, item: &Value, out: &mut Vec<EmailEvent>) -> Result<(), ParseError> {
        let missing = ParseError::MissingField { index, field: "n" };
        let obj = as_object(item, "a toy event")?;
        for _ in 0..int(obj, "n").ok_or(missing.clone())? {
            let raw = canonical(item);
            out.push(EmailEvent::new("toy", EventType::Sent, "sent", "m", 0, raw));
        }
        match obj.get("fail") {
            Some(_) => Err(missing),
            None => Ok(()),
        }
    }

    #[test]
    fn each_event_keeps_good_items_and_quarantines_bad_ones_alone() {
        let body = br#"[{"n":1},{"n":2,"fail":true},5,[{"n":1}],{"n":2}]"#;
        let parsed = each_event(body, toy);
        assert_eq!(
            parsed.events.len(),
            3,
            "partial pushes of a failed item are dropped"
        );
        assert_eq!(parsed.events[0].raw, r#"{"n":1}"#);
        assert_eq!(parsed.events[2].raw, r#"{"n":2}"#);
        let alone: Vec<_> = parsed.unparsed.iter().map(|u| u.body.as_slice()).collect();
        assert_eq!(
            alone,
            [&br#"{"fail":true,"n":2}"#[..], b"[5]", br#"[[{"n":1}]]"#]
        );
        let codes: Vec<_> = parsed.unparsed.iter().map(|u| u.code).collect();
        assert_eq!(codes, ["missing_field", "wrong_shape", "wrong_shape"]);
        assert_eq!(parsed.unparsed[0].message, "event 1: missing or invalid n");
    }

    #[test]
    fn each_event_keeps_a_failing_whole_body_whole() {
        for (body, code) in [
            (&b"not json"[..], "invalid_json"),
            (b"  ", "empty_body"),
            (b"[1,\xff]", "not_utf8"),
            (b"[]", "no_events"),
            (b"[{\"n\":0}]", "no_events"),
            (b" {\"fail\": 1, \"n\": 1} ", "missing_field"),
        ] {
            let parsed = each_event(body, toy);
            assert!(parsed.events.is_empty(), "{body:?}");
            let [unparsed] = parsed.unparsed.as_slice() else {
                panic!("{body:?}: {:?}", parsed.unparsed);
            };
            assert_eq!(unparsed.body, body, "the body as sent");
            assert_eq!(unparsed.code, code);
        }
    }
}
