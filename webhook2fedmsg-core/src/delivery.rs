//! A webhook delivery as received: its headers and the exact body bytes.
//!
//! [`Delivery`] keeps the raw bytes untouched, because signatures are
//! computed over them; [`Delivery::payload`] then finds the JSON payload
//! inside (the body itself, or the `payload` field of a form) and checks that
//! it is a UTF-8 JSON object.
//!
//! Three kinds of payload are rejected as [`DeliveryError::InvalidJson`],
//! wherever in the payload they are, because consumers could not read the
//! published message:
//! - a lone UTF-16 surrogate escape (`"\ud800"` without its pair): such a
//!   string has no UTF-8 form, and strict decoders (serde's) refuse it;
//! - a number beyond the range of a double (`1e400`): serde refuses it and
//!   Python reads it as infinity;
//! - nesting deeper than [`MAX_DEPTH`] arrays and objects: serde_json gives
//!   up after 127 levels, and the message wraps the payload in two more
//!   (the body, and the dump line).
//!
//! Services skip the values they do not read without decoding them, so
//! none of these would be noticed there. The checks cost a few fast scans
//! (for `\u` escapes, exponents, long runs of digits, and a count of `[`
//! and `{`); only a payload where one of them finds something is parsed a
//! second time, strictly.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use thiserror::Error;

/// The deepest nesting of arrays and objects a payload may have, so that
/// its message body (one level deeper) and that message's dump line (two
/// levels deeper) stay within the 127 levels serde_json parses. Real
/// payloads nest less than ten deep.
pub const MAX_DEPTH: usize = 125;

/// Why the body of a delivery cannot be read as a JSON object.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DeliveryError {
    /// The `Content-Type` is neither JSON nor a form.
    #[error(
        "unsupported content type {0:?}: send application/json \
         (or application/x-www-form-urlencoded with a payload field)"
    )]
    UnsupportedContentType(String),
    /// A form body without a `payload` field.
    #[error("form body has no payload field")]
    MissingFormPayload,
    /// The body is empty.
    #[error("body is empty")]
    EmptyBody,
    /// The body (or the form payload) is not UTF-8.
    #[error("body is not valid UTF-8 (at byte {0})")]
    NotUtf8(usize),
    /// The body is not JSON, or JSON that consumers cannot read (a lone
    /// UTF-16 surrogate escape, a number out of range, nesting deeper than
    /// [`MAX_DEPTH`]), or a
    /// field the service reads has the wrong type. The text says what and
    /// where, never quoting the body.
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    /// The body is JSON but not an object.
    #[error("body must be a JSON object, not {0}")]
    NotAnObject(&'static str),
    /// A header the service always sends is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header that must appear once appears several times.
    #[error("header {0} is sent more than once")]
    DuplicateHeader(&'static str),
    /// The event named by a header cannot become a topic word.
    #[error("invalid event name in {header}: {reason}")]
    InvalidEvent {
        /// The header (or body field) that named the event.
        header: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A payload field the service always sends is missing or of the wrong
    /// type.
    #[error("payload field {0} is missing or not a string")]
    MissingField(&'static str),
}

/// The headers and raw body bytes of one webhook delivery.
///
/// Header names are compared without regard to case; a header sent several
/// times keeps every value, so that a duplicated signature header can be
/// refused instead of silently taking one of them.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Delivery {
    /// Builds a delivery from header pairs (any name case) and body bytes.
    pub fn new<N, V>(headers: impl IntoIterator<Item = (N, V)>, body: impl Into<Vec<u8>>) -> Self
    where
        N: AsRef<str>,
        V: Into<String>,
    {
        let headers = headers
            .into_iter()
            .map(|(name, value)| (name.as_ref().to_ascii_lowercase(), value.into()))
            .collect();
        Self {
            headers,
            body: body.into(),
        }
    }

    /// The same headers with this body: a receiver can check the headers
    /// (see [`crate::Service::check_signature_headers`]) before it reads
    /// the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The exact body bytes, as signed by the sender.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Every header as `(lower-case name, value)`, in the order received.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// All values of a header; `name` must be lower case.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a header, if any; `name` must be lower case.
    pub fn first_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a header sent at most once; `name` must be lower case.
    ///
    /// Fails with [`DeliveryError::DuplicateHeader`] when it is sent twice.
    pub fn header(&self, name: &'static str) -> Result<Option<&str>, DeliveryError> {
        let mut values = self.header_values(name);
        let first = values.next();
        match values.next() {
            Some(_) => Err(DeliveryError::DuplicateHeader(name)),
            None => Ok(first),
        }
    }

    /// Like [`Delivery::header`], but the header must be present.
    pub fn required_header(&self, name: &'static str) -> Result<&str, DeliveryError> {
        self.header(name)?.ok_or(DeliveryError::MissingHeader(name))
    }

    /// Finds the JSON payload and checks that it is a UTF-8 JSON object.
    ///
    /// `application/json` (and any `+json` type, or no `Content-Type` at
    /// all) takes the body as it is; `application/x-www-form-urlencoded`
    /// takes the decoded `payload` field, as GitHub sends it. The check is
    /// cheap; services parse the payload themselves. Fails with
    /// [`DeliveryError::InvalidJson`] on a lone surrogate escape or nesting
    /// deeper than [`MAX_DEPTH`] anywhere in the payload (see the module
    /// documentation).
    pub fn payload(&self) -> Result<Cow<'_, [u8]>, DeliveryError> {
        Ok(match self.payload_text()? {
            Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
            Cow::Owned(text) => Cow::Owned(text.into_bytes()),
        })
    }

    /// Like [`Delivery::payload`], as the text it was checked to be.
    pub fn payload_text(&self) -> Result<Cow<'_, str>, DeliveryError> {
        match self.content_type()? {
            ContentType::Json => check_object(&self.body).map(Cow::Borrowed),
            ContentType::Form => {
                let decoded = form_payload(&self.body)?;
                check_object(&decoded)?;
                // `check_object` has just checked that this is UTF-8.
                let text = String::from_utf8(decoded)
                    .map_err(|e| DeliveryError::NotUtf8(e.utf8_error().valid_up_to()))?;
                Ok(Cow::Owned(text))
            }
        }
    }

    fn content_type(&self) -> Result<ContentType, DeliveryError> {
        let Some(value) = self.header("content-type")? else {
            return Ok(ContentType::Json);
        };
        let essence = value.split(';').next().unwrap_or("").trim();
        let essence = essence.to_ascii_lowercase();
        if essence == "application/json" || essence.ends_with("+json") {
            Ok(ContentType::Json)
        } else if essence == "application/x-www-form-urlencoded" {
            Ok(ContentType::Form)
        } else {
            Err(DeliveryError::UnsupportedContentType(value.to_string()))
        }
    }
}

enum ContentType {
    Json,
    Form,
}

/// Takes the `payload` field of a form body, percent-decoded.
fn form_payload(body: &[u8]) -> Result<Vec<u8>, DeliveryError> {
    // Decoding to `Cow<str>` would hide invalid UTF-8 behind replacement
    // characters, so the percent-decoding is done on bytes here.
    for pair in body.split(|&b| b == b'&') {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        if name == b"payload" {
            return Ok(percent_decode(value));
        }
    }
    Err(DeliveryError::MissingFormPayload)
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let escaped = match input.get(i..i + 3) {
            Some([b'%', h, l]) => hex_val(*h).zip(hex_val(*l)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match (escaped, input[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, byte) => out.push(byte),
        }
        i += 1;
    }
    out
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Checks UTF-8 and that the bytes hold exactly one JSON object.
fn check_object(payload: &[u8]) -> Result<&str, DeliveryError> {
    let text = std::str::from_utf8(payload).map_err(|e| DeliveryError::NotUtf8(e.valid_up_to()))?;
    let kind = match text.trim_start().as_bytes().first() {
        None => return Err(DeliveryError::EmptyBody),
        Some(b'{') => None,
        Some(b'[') => Some("an array"),
        Some(b'"') => Some("a string"),
        Some(b'n') => Some("null"),
        Some(b't' | b'f') => Some("a boolean"),
        Some(b'-' | b'0'..=b'9') => Some("a number"),
        Some(_) => return Err(DeliveryError::InvalidJson("expected a JSON object".into())),
    };
    if let Some(kind) = kind {
        // Named by what it is only when it is that: `nope` is not null.
        return Err(match serde_json::from_str::<de::IgnoredAny>(text) {
            Ok(_) => DeliveryError::NotAnObject(kind),
            Err(error) => invalid_json(&error),
        });
    }
    if has_surrogate_escape(payload)
        || may_have_huge_number(payload)
        || brackets(payload) > MAX_DEPTH
    {
        // Skipping a value, as services do with the fields they do not
        // read, neither decodes its strings and numbers nor limits its
        // depth; this parse does all three.
        let mut parser = serde_json::Deserializer::from_str(text);
        Strict { room: MAX_DEPTH }
            .deserialize(&mut parser)
            .and_then(|()| parser.end())
            .map_err(|e| {
                if e.to_string().starts_with(TOO_DEEP) {
                    DeliveryError::InvalidJson(format!(
                        "nesting deeper than {MAX_DEPTH} arrays and objects at line {} column {}",
                        e.line(),
                        e.column()
                    ))
                } else {
                    invalid_json(&e)
                }
            })?;
    }
    Ok(text)
}

/// Whether the payload may hold a `\uD800`-`\uDFFF` escape. A backslash
/// that is itself escaped gives a false positive, which only costs the
/// strict parse.
fn has_surrogate_escape(payload: &[u8]) -> bool {
    memchr::memmem::find_iter(payload, b"\\u").any(|at| {
        matches!(payload.get(at + 2), Some(b'd' | b'D'))
            && matches!(
                payload.get(at + 3),
                Some(b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
            )
    })
}

/// Whether the payload may hold a number beyond the range of a double: one
/// with an exponent, or one of more than 300 digits. Letters and digits
/// inside strings (commit hashes) are told apart from numbers by what
/// precedes them; a string such as `"x 1e5"` gives a false positive, which
/// only costs the strict parse.
fn may_have_huge_number(payload: &[u8]) -> bool {
    // Each window of 64 bytes is looked at in one loop the compiler
    // vectorises: whether a digit is followed by `e` or `E`, and how many
    // digits it has. Commit hashes make the first common, so only a window
    // that has one is looked at closely; values with an exponent are rare.
    // The windows tile the payload, so a run of 309 or more digits fills
    // at least one of them.
    const WINDOW: usize = 64;
    let mut start = 0;
    while start + 1 < payload.len() {
        let end = (start + WINDOW).min(payload.len() - 1);
        let (before, at) = (&payload[start..end], &payload[start + 1..end + 1]);
        let (pairs, digits) =
            before
                .iter()
                .zip(at)
                .fold((0u8, 0u8), |(pairs, digits), (&before, &at)| {
                    let digit = u8::from(before.is_ascii_digit());
                    (
                        pairs | (digit & u8::from(at | 0x20 == b'e')),
                        digits + digit,
                    )
                });
        if usize::from(digits) == WINDOW {
            return true;
        }
        if pairs != 0 && (start + 1..end + 1).any(|at| is_exponent_of_a_value(payload, at)) {
            return true;
        }
        start = end;
    }
    false
}

/// Whether `payload[at]` is the `e` or `E` of a number that starts where a
/// JSON value can start (after `:`, `,`, `[` or white space).
fn is_exponent_of_a_value(payload: &[u8], at: usize) -> bool {
    if payload[at] | 0x20 != b'e' {
        return false;
    }
    let mantissa = &payload[..at];
    let start = mantissa
        .iter()
        .rposition(|b| !matches!(b, b'0'..=b'9' | b'.' | b'-'))
        .map_or(0, |i| i + 1);
    let starts_a_value = start == 0
        || matches!(
            payload[start - 1],
            b':' | b',' | b'[' | b' ' | b'\t' | b'\n' | b'\r'
        );
    starts_a_value && mantissa[start..].iter().any(u8::is_ascii_digit)
}

/// How many `[` and `{` the payload has, in strings or not: more than the
/// deepest nesting it can have.
fn brackets(payload: &[u8]) -> usize {
    // Counted in bytes, 255 at most per run so that a byte cannot
    // overflow: the compiler then compares and adds 16 or 32 bytes at a
    // time, where a `usize` count would take 2 or 4. `[` (0x5b) and `{`
    // (0x7b) are the only bytes that become `{` when bit 0x20 is set.
    payload
        .chunks(255)
        .map(|run| {
            let count = run
                .iter()
                .fold(0u8, |count, &b| count + u8::from(b | 0x20 == b'{'));
            usize::from(count)
        })
        .sum()
}

/// Describes a serde_json error without quoting the payload.
///
/// Syntax errors name a fixed cause and a position; errors about the data
/// (a field of the wrong type) would quote the value, so only their
/// position is kept.
pub(crate) fn invalid_json(error: &serde_json::Error) -> DeliveryError {
    let (line, column) = (error.line(), error.column());
    DeliveryError::InvalidJson(match error.classify() {
        serde_json::error::Category::Data => {
            format!("a field has an unexpected type or value at line {line} column {column}")
        }
        _ => error.to_string(),
    })
}

/// What the strict parse says of a payload nested too deep.
const TOO_DEEP: &str = "nesting deeper than the limit";

/// Any JSON value nested at most `room` arrays and objects deep, parsed
/// with every string, key and number decoded.
#[derive(Clone, Copy)]
struct Strict {
    room: usize,
}

impl Strict {
    /// The seed for the values inside an array or object.
    fn inner<E: de::Error>(self) -> Result<Strict, E> {
        match self.room.checked_sub(1) {
            Some(room) => Ok(Strict { room }),
            None => Err(E::custom(TOO_DEEP)),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.inner()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.inner()?;
        while map.next_key_seed(inner)?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{brackets, has_surrogate_escape, may_have_huge_number};

    #[test]
    fn long_runs_of_digits_are_found_wherever_they_start() {
        for offset in 0..130 {
            let pad = " ".repeat(offset);
            let huge = format!("{{\"a\":{pad}{}}}", "7".repeat(309));
            assert!(may_have_huge_number(huge.as_bytes()), "offset {offset}");
            let fine = format!("{{\"a\":{pad}{}}}", "7".repeat(60));
            assert!(!may_have_huge_number(fine.as_bytes()), "offset {offset}");
        }
    }

    #[test]
    fn exponents_are_found_at_every_position() {
        for offset in 0..130 {
            let pad = " ".repeat(offset);
            let text = format!("{{\"a\":{pad}1e5}}");
            assert!(may_have_huge_number(text.as_bytes()), "offset {offset}");
            let hash = format!("{{\"a\":{pad}\"1e5\"}}");
            assert!(!may_have_huge_number(hash.as_bytes()), "offset {offset}");
        }
    }

    #[test]
    fn surrogate_escapes_are_found_at_every_position() {
        for offset in 0..130 {
            let pad = " ".repeat(offset);
            for escape in [r"\ud800", r"\uDBFF", r"\uDc00", r"\udfff"] {
                let text = format!("{{\"a\":\"{pad}{escape}\"}}");
                assert!(
                    has_surrogate_escape(text.as_bytes()),
                    "{escape} at {offset}"
                );
            }
            for escape in [r"\u00e9", r"\ud7ff", r"\ue000", r"\n", r"\\"] {
                let text = format!("{{\"a\":\"{pad}{escape}\"}}");
                assert!(
                    !has_surrogate_escape(text.as_bytes()),
                    "{escape} at {offset}"
                );
            }
        }
    }

    #[test]
    fn brackets_counts_every_open_bracket_and_nothing_else() {
        assert_eq!(brackets(b"[{}] ;:{{ []"), 5);
        // Runs longer than a byte can count.
        let many = "[{".repeat(1000) + &"x".repeat(300) + &"]}".repeat(1000);
        assert_eq!(brackets(many.as_bytes()), 2000);
        let none: Vec<u8> = (0..=255u8).filter(|&b| b != b'[' && b != b'{').collect();
        assert_eq!(brackets(&none.repeat(3)), 0);
    }
}
