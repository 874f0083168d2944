//! The wire types of the JSON API, in and out.
//!
//! Their JSON Schemas (schemars) are the component schemas of the OpenAPI
//! document, so the document describes exactly what serde reads and
//! writes. Requests refuse unknown fields: a field this version does not
//! know (an `owner`, say) is an error, never silently dropped. Times are
//! RFC 3339 strings in UTC.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::store::deliveries::DeliveryRecord;
use crate::store::{Token, TokenSecret};

/// `GET /api/v1/me`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Me {
    /// The FAS username.
    pub username: String,
    /// The e-mail address from the login, if any.
    pub email: Option<String>,
    /// The FAS groups from the last login.
    pub groups: Vec<String>,
    /// Whether this user administers every token.
    pub is_admin: bool,
    /// How this request authenticated: `session`, `api_key` or
    /// `access_token`.
    pub authenticated_by: String,
    /// With the session cookie: the CSRF token that writes must send in
    /// `X-CSRF-Token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

/// A token as the API shows it. `hook_url` and `secrets` are shown to the
/// owner only; an admin looking at someone else's token sees neither.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TokenView {
    /// The token's id.
    pub id: String,
    /// The service (`github`).
    pub service: String,
    /// The owner's label.
    pub name: String,
    /// The owner's FAS username.
    pub owner: String,
    /// Whether deliveries are accepted.
    pub enabled: bool,
    /// Pretix: the instance's base URL.
    pub instance_url: Option<String>,
    /// When the token was made.
    pub created_at: String,
    /// When a delivery last arrived on it.
    pub last_used_at: Option<String>,
    /// The URL to paste into the service's webhook settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_url: Option<String>,
    /// The secrets that verify deliveries (never their values): the
    /// current one, and old ones in their grace period after a rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<SecretView>>,
}

/// One secret of a token, without its value.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SecretView {
    /// When it was made.
    pub created_at: String,
    /// When it stops verifying; null for the current secret.
    pub expires_at: Option<String>,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("allOf" = [{
    "if": {"properties": {"service": {"const": "pretix"}}, "required": ["service"]},
    "then": {
        "properties": {"secret": {"type": "null"}, "instance_url": {"type": "string"}},
        "required": ["instance_url"]
    },
    "else": {"properties": {"instance_url": {"type": "null"}}}
}]))]
pub struct NewToken {
    /// The service.
    #[schemars(extend("enum" = ["github", "gitlab", "forgejo", "gitea", "discourse", "pretix"]))]
    pub service: String,
    /// A label: 1 to 100 characters, not all blank, no control characters.
    /// Leading and trailing blanks are dropped.
    #[schemars(length(min = 1, max = 100), regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// The secret to use, 16 to 255 printable ASCII characters without
    /// spaces; generated when absent. Pretix signs nothing, so its tokens
    /// take none.
    #[serde(default)]
    #[schemars(length(min = 16, max = 255), regex(pattern = r"^[!-~]*$"))]
    pub secret: Option<String>,
    /// Pretix only, and required there: the instance's base URL
    /// (`https://pretix.eu`).
    #[serde(default)]
    #[schemars(length(max = 200), regex(pattern = INSTANCE_URL_PATTERN))]
    pub instance_url: Option<String>,
}

/// What an instance URL must match: http or https, a host name (or IPv4
/// address), maybe a port, maybe a path.
pub const INSTANCE_URL_PATTERN: &str =
    "^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?$";

/// What a label must match: no control characters, and something that is
/// not blank.
pub const NAME_PATTERN: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]*\
    [^\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]\
    [^\\x00-\\x1f\\x7f-\\x9f]*$";

/// The answer to a creation or a rotation: the token and its new secret,
/// shown this once.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WithSecret {
    /// The token.
    pub token: TokenView,
    /// The new secret; null for services that sign nothing.
    pub secret: Option<String>,
}

/// `PATCH /api/v1/tokens/{id}`: the fields to change.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenChange {
    /// A new label, as for a new token.
    #[serde(default)]
    #[schemars(length(min = 1, max = 100), regex(pattern = NAME_PATTERN))]
    pub name: Option<String>,
    /// Accept (`true`) or refuse (`false`) deliveries.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Pretix only: a new instance URL (409 for other services' tokens).
    #[serde(default)]
    #[schemars(length(max = 200), regex(pattern = INSTANCE_URL_PATTERN))]
    pub instance_url: Option<String>,
}

/// `POST /api/v1/tokens/{id}/rotate`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// How long the old secrets keep verifying, in seconds, 0 to 2592000
    /// (30 days). Default 86400 (a day).
    #[serde(default, deserialize_with = "whole_number")]
    #[schemars(range(min = 0, max = 2592000))]
    pub grace_seconds: Option<u32>,
    /// The new secret, as for a new token; generated when absent.
    #[serde(default)]
    #[schemars(length(min = 16, max = 255), regex(pattern = r"^[!-~]*$"))]
    pub secret: Option<String>,
}

/// One recent delivery of a token.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeliveryView {
    /// When it arrived.
    pub received_at: String,
    /// The sender's delivery id, if it sends one.
    pub delivery_id: Option<String>,
    /// The event, as the message topic names it (`github.push`).
    pub topic: String,
    /// `queued`, `published`, `failed` or `skipped`.
    pub outcome: String,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
    /// The Fedora message id, unless the event was skipped.
    pub message_id: Option<String>,
    /// The message in datagrepper, when one is configured.
    pub message_url: Option<String>,
}

/// `GET /api/v1/tokens` query.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Admins only: everybody's tokens instead of their own.
    #[serde(default)]
    pub all: Option<bool>,
}

/// `GET /api/v1/tokens/{id}/deliveries` query.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// How many, newest first, 1 to 100. Default 20.
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
}

/// Every error: a stable code and a sentence for people.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// A stable machine-readable code (`not_found`).
    pub error: String,
    /// What went wrong.
    pub message: String,
}

impl TokenView {
    /// The view of `token`; `hook_url` and `secrets` only when given (for
    /// the owner).
    pub fn new(token: &Token, hook_url: Option<String>, secrets: Option<&[TokenSecret]>) -> Self {
        Self {
            id: token.id.clone(),
            service: token.service.clone(),
            name: token.name.clone(),
            owner: token.owner.clone(),
            enabled: token.is_enabled(),
            instance_url: token.instance_url.clone(),
            created_at: rfc3339(token.created_at),
            last_used_at: token.last_used_at.map(rfc3339),
            hook_url,
            secrets: secrets.map(|secrets| {
                secrets
                    .iter()
                    .map(|s| SecretView {
                        created_at: rfc3339(s.created_at),
                        expires_at: s.expires_at.map(rfc3339),
                    })
                    .collect()
            }),
        }
    }
}

impl DeliveryView {
    /// The view of a stored delivery, linking to `datagrepper` if given.
    pub fn new(record: &DeliveryRecord, datagrepper: Option<&str>) -> Self {
        Self {
            received_at: rfc3339(record.received_at),
            delivery_id: record.delivery_id.clone(),
            topic: record.topic.clone(),
            outcome: record.outcome.clone(),
            reason: record.reason.clone(),
            message_id: record.message_id.clone(),
            message_url: message_url(datagrepper, record.message_id.as_deref()),
        }
    }
}

/// The datagrepper page of a message.
pub fn message_url(datagrepper: Option<&str>, message_id: Option<&str>) -> Option<String> {
    let base = datagrepper?.trim_end_matches('/');
    let id = message_id?;
    Some(format!("{base}/v2/id?id={id}&is_raw=true&size=extra-large"))
}

/// Unix milliseconds as RFC 3339, UTC.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Reads a whole number written either way JSON allows (`86400` or
/// `86400.0`): JSON Schema counts both as integers, and some clients only
/// have floating-point numbers.
fn whole_number<'de, D>(deserializer: D) -> Result<Option<u32>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = match number.as_u64() {
        Some(n) => Some(n),
        None => number
            .as_f64()
            .filter(|n| n.fract() == 0.0 && *n >= 0.0 && *n <= f64::from(u32::MAX))
            .map(|n| n as u64),
    };
    whole
        .and_then(|n| u32::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("expected a whole number from 0 to 4294967295"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotation(json: &str) -> Result<Rotation, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn grace_seconds_may_be_written_as_a_float() {
        assert_eq!(
            rotation(r#"{"grace_seconds": 3837.0}"#)
                .unwrap()
                .grace_seconds,
            Some(3837)
        );
        assert_eq!(
            rotation(r#"{"grace_seconds": 60}"#).unwrap().grace_seconds,
            Some(60)
        );
        assert_eq!(
            rotation(r#"{"grace_seconds": null}"#)
                .unwrap()
                .grace_seconds,
            None
        );
        assert_eq!(rotation("{}").unwrap().grace_seconds, None);
    }

    #[test]
    fn grace_seconds_must_be_a_whole_non_negative_number() {
        for bad in ["1.5", "-1", "-1.0", "4294967296", "1e300", "\"60\""] {
            let json = format!(r#"{{"grace_seconds": {bad}}}"#);
            assert!(rotation(&json).is_err(), "{bad}");
        }
    }
}
