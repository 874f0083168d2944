//! Recorded deliveries: the fixture file format, and replaying one.
//!
//! A recording is one JSON object, `{"headers": {...}, "body": <payload>}`,
//! or with `"body_raw": "<exact bytes>"` for bodies that are not JSON (form
//! bodies, broken payloads). A `body` is sent as serde_json's compact
//! serialisation, keys in the recorded order. A signature header whose value
//! is `COMPUTE` is filled in by [`Recording::sign`] with a given secret, over
//! the exact bytes sent.

use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;

use crate::Delivery;
use crate::signature::{sign_hex, sign_sha1_hex};

/// The placeholder for a value that depends on the secret.
pub const COMPUTE: &str = "COMPUTE";

/// Why a recording cannot be read.
#[derive(Debug, Error)]
pub enum RecordingError {
    /// The file is not a recording. The parser's error is in the text
    /// rather than a source, so that it is told once.
    #[error("not a recorded delivery: {0}")]
    Invalid(serde_json::Error),
    /// Both or neither of `body` and `body_raw` are given.
    #[error("a recorded delivery needs exactly one of body and body_raw")]
    BodyAmbiguous,
}

/// A recorded delivery: header pairs as recorded and the body bytes.
#[derive(Debug, Clone)]
pub struct Recording {
    /// Header names with the capitals the service uses, and their values.
    pub headers: Vec<(String, String)>,
    /// The exact bytes to send.
    pub body: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File<'a> {
    #[serde(default)]
    headers: serde_json::Map<String, serde_json::Value>,
    #[serde(borrow)]
    body: Option<&'a RawValue>,
    body_raw: Option<String>,
}

impl Recording {
    /// Reads a recording from the text of its file.
    pub fn from_json(text: &str) -> Result<Self, RecordingError> {
        let file: File = serde_json::from_str(text).map_err(RecordingError::Invalid)?;
        let body = match (file.body, file.body_raw) {
            (Some(json), None) => {
                let value: serde_json::Value =
                    serde_json::from_str(json.get()).map_err(RecordingError::Invalid)?;
                serde_json::to_vec(&value).map_err(RecordingError::Invalid)?
            }
            (None, Some(raw)) => raw.into_bytes(),
            _ => return Err(RecordingError::BodyAmbiguous),
        };
        let headers = file
            .headers
            .into_iter()
            .map(|(name, value)| {
                let value = match value {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (name, value)
            })
            .collect();
        Ok(Self { headers, body })
    }

    /// Fills every `COMPUTE` header with a signature made with `secret`.
    pub fn sign(&mut self, secret: &str) {
        let key = secret.as_bytes();
        for (name, value) in &mut self.headers {
            if value != COMPUTE {
                continue;
            }
            *value = match name.to_ascii_lowercase().as_str() {
                "x-hub-signature" => format!("sha1={}", sign_sha1_hex(key, &self.body)),
                "x-gitlab-token" => secret.to_string(),
                "x-forgejo-signature" | "x-gitea-signature" | "x-gogs-signature" => {
                    sign_hex(key, &self.body)
                }
                _ => format!("sha256={}", sign_hex(key, &self.body)),
            };
        }
    }

    /// The delivery this recording stands for.
    pub fn to_delivery(&self) -> Delivery {
        Delivery::new(
            self.headers.iter().map(|(n, v)| (n, v.clone())),
            self.body.clone(),
        )
    }
}
