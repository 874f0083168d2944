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
//! A plain parse skips the values nothing reads without decoding them, so
//! none of these would be noticed there. Services read their few fields
//! with [`crate::strict::read`], which decodes every skipped value in the
//! same pass; [`Delivery::payload`] parses the whole payload strictly.

use std::borrow::Cow;

use serde::de;
use thiserror::Error;

use crate::strict;

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
    /// The delivery names its event in another service's header: it was
    /// sent to a hook of the wrong service.
    #[error("this delivery comes from {service} (it sends {header}): send it to a {service} hook")]
    OtherService {
        /// The header that gives the sender away.
        header: &'static str,
        /// The service whose hook it belongs to.
        service: &'static str,
    },
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
    /// takes the decoded `payload` field, as GitHub sends it. Fails with
    /// [`DeliveryError::InvalidJson`] on a lone surrogate escape, a number
    /// out of range or nesting deeper than [`MAX_DEPTH`] anywhere in the
    /// payload (see the module documentation).
    pub fn payload(&self) -> Result<Cow<'_, [u8]>, DeliveryError> {
        Ok(match self.payload_text()? {
            Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
            Cow::Owned(text) => Cow::Owned(text.into_bytes()),
        })
    }

    /// Like [`Delivery::payload`], as the text it was checked to be.
    pub fn payload_text(&self) -> Result<Cow<'_, str>, DeliveryError> {
        let text = self.object_text()?;
        strict::check(&text)?;
        Ok(text)
    }

    /// Like [`Delivery::payload_text`], but only checked to be UTF-8 that
    /// starts as a JSON object: the caller must read it with
    /// [`strict::read`], which checks the rest in the same pass.
    pub(crate) fn object_text(&self) -> Result<Cow<'_, str>, DeliveryError> {
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

/// Checks UTF-8 and that the bytes start as a JSON object; a payload that
/// is some other JSON value is named by what it is.
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
    Ok(text)
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
