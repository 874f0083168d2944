//! JSON Schemas of every message body, generated from Rust types.
//!
//! The types here describe what [`Service::decode`](crate::Service::decode)
//! produces; they are used only to generate the schemas (the conversion
//! itself keeps payloads as raw JSON). [`all`] lists each schema with the
//! file name it has under `schemas/`; the server's `schemas` command writes
//! or checks them, and the core's `schemas_are_up_to_date` test fails when
//! the checked-in files are stale. Optional headers are left out rather
//! than written as null, and `agent` is always present.

use schemars::{JsonSchema, Schema, schema_for};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::service::Kind;

/// A JSON object whose members are whatever the sender wrote.
type Payload = Map<String, Value>;

/// The body of a GitHub, GitLab, Forgejo or Gitea message.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ForgeBody<H> {
    /// The webhook payload exactly as received.
    pub body: Payload,
    /// The service's own delivery headers, lower case, from an allowlist.
    pub headers: H,
    /// The Fedora username of whoever caused the event, when provably known.
    #[schemars(required, schema_with = "nullable_string")]
    pub agent: Option<String>,
}

/// Headers kept from a GitHub delivery.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct GithubHeaders {
    /// The event name, also the last topic word.
    #[serde(rename = "x-github-event")]
    pub event: String,
    /// GitHub's id of this delivery; redeliveries repeat it.
    #[serde(rename = "x-github-delivery")]
    pub delivery: String,
    /// The id of the hook.
    #[serde(
        rename = "x-github-hook-id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "String")]
    pub hook_id: Option<String>,
    /// The id of the repository, organisation or app the hook is on.
    #[serde(rename = "x-github-hook-installation-target-id")]
    pub target_id: String,
    /// `repository`, `organization` or `integration`.
    #[serde(rename = "x-github-hook-installation-target-type")]
    pub target_type: String,
    /// `sha1=<hex>` HMAC of the body (empty when not sent).
    #[serde(rename = "x-hub-signature")]
    pub signature: String,
    /// `sha256=<hex>` HMAC of the body.
    #[serde(rename = "x-hub-signature-256")]
    pub signature_256: String,
}

/// Headers kept from a GitLab delivery (never `X-Gitlab-Token`).
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct GitlabHeaders {
    /// The event, such as `Push Hook`.
    #[serde(rename = "x-gitlab-event")]
    pub event: String,
    /// The id of the hook.
    #[serde(rename = "x-gitlab-webhook-uuid")]
    pub webhook: String,
    /// The id of the event.
    #[serde(rename = "x-gitlab-event-uuid")]
    pub event_uuid: String,
    /// The URL of the GitLab instance.
    #[serde(
        rename = "x-gitlab-instance",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "String")]
    pub instance: Option<String>,
    /// Stays the same across GitLab's retries of one delivery.
    #[serde(
        rename = "idempotency-key",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "String")]
    pub idempotency_key: Option<String>,
}

/// Headers kept from a Forgejo delivery.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ForgejoHeaders {
    /// The event name (taken from `X-Gitea-Event` when only that is sent).
    #[serde(rename = "x-forgejo-event")]
    pub event: String,
    /// The event's finer type, such as `pull_request_comment`.
    #[serde(
        rename = "x-forgejo-event-type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "String")]
    pub event_type: Option<String>,
    /// Forgejo's id of this delivery.
    #[serde(rename = "x-forgejo-delivery")]
    pub delivery: String,
    /// Bare hex HMAC-SHA256 of the body.
    #[serde(
        rename = "x-forgejo-signature",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "String")]
    pub forgejo_signature: Option<String>,
    /// `sha1=<hex>` HMAC of the body (empty when not sent).
    #[serde(rename = "x-hub-signature")]
    pub signature: String,
    /// `sha256=<hex>` HMAC of the body (empty when not sent).
    #[serde(rename = "x-hub-signature-256")]
    pub signature_256: String,
}

/// Headers kept from a Gitea delivery.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct GiteaHeaders {
    /// The event name.
    #[serde(rename = "x-gitea-event")]
    pub event: String,
    /// The event's finer type.
    #[serde(
        rename = "x-gitea-event-type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "String")]
    pub event_type: Option<String>,
    /// Gitea's id of this delivery.
    #[serde(rename = "x-gitea-delivery")]
    pub delivery: String,
    /// Bare hex HMAC-SHA256 of the body.
    #[serde(
        rename = "x-gitea-signature",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "String")]
    pub gitea_signature: Option<String>,
    /// `sha1=<hex>` HMAC of the body (empty when not sent).
    #[serde(rename = "x-hub-signature")]
    pub signature: String,
    /// `sha256=<hex>` HMAC of the body (empty when not sent).
    #[serde(rename = "x-hub-signature-256")]
    pub signature_256: String,
}

/// The body of a Discourse message (`discourse.event.v1`).
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DiscourseBody {
    /// The payload, without `post.cooked` and `post.raw`.
    pub webhook_body: Payload,
    /// The five `X-Discourse-*` headers, with their capitals.
    pub webhook_headers: DiscourseHeaders,
}

/// Headers kept from a Discourse delivery.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DiscourseHeaders {
    /// The forum's base URL.
    #[serde(rename = "X-Discourse-Instance")]
    pub instance: String,
    /// The forum's id of this delivery.
    #[serde(rename = "X-Discourse-Event-Id")]
    pub event_id: String,
    /// The event's family: `post`, `topic`, `like`, `solved`...
    #[serde(rename = "X-Discourse-Event-Type")]
    pub event_type: String,
    /// The event, such as `post_created`.
    #[serde(rename = "X-Discourse-Event")]
    pub event: String,
    /// `sha256=<hex>` HMAC of the body.
    #[serde(rename = "X-Discourse-Event-Signature")]
    pub signature: String,
}

/// The payload of a Pretix message, with the fields the bridge adds.
#[derive(Serialize, JsonSchema)]
pub struct PretixPayload {
    /// Pretix's id of this notification.
    pub notification_id: i64,
    /// The organiser's slug.
    pub organizer: String,
    /// The event's slug.
    pub event: String,
    /// The order code, when the action concerns an order.
    #[schemars(required, schema_with = "nullable_string")]
    pub code: Option<String>,
    /// The action, such as `pretix.event.checkin`.
    pub action: String,
    /// The base URL of the Pretix instance, from the token's settings.
    pub instance_url: String,
    /// The attendee's name, when known.
    #[schemars(required, schema_with = "nullable_string")]
    pub attendee_name: Option<String>,
    /// Every other field pretix sent.
    #[serde(flatten)]
    pub rest: Payload,
}

/// The body of a Pretix message.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct PretixBody {
    /// The payload with `instance_url` and `attendee_name` added.
    pub body: PretixPayload,
    /// Pretix sends no headers of its own; always empty.
    pub headers: NoHeaders,
    /// The Fedora username of the attendee, when known.
    #[schemars(required, schema_with = "nullable_string")]
    pub agent: Option<String>,
}

/// A string or null, for members that are always present.
fn nullable_string(_: &mut schemars::SchemaGenerator) -> Schema {
    schemars::json_schema!({"type": ["string", "null"]})
}

/// An always empty header map.
#[derive(Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct NoHeaders {}

/// The schema of the messages of one service.
pub fn for_service(kind: Kind) -> Schema {
    let mut schema = match kind {
        Kind::Github => schema_for!(ForgeBody<GithubHeaders>),
        Kind::Gitlab => schema_for!(ForgeBody<GitlabHeaders>),
        Kind::Forgejo => schema_for!(ForgeBody<ForgejoHeaders>),
        Kind::Gitea => schema_for!(ForgeBody<GiteaHeaders>),
        Kind::Discourse => schema_for!(DiscourseBody),
        Kind::Pretix => schema_for!(PretixBody),
    };
    let name = kind.schema().name();
    schema.insert("$id".into(), Value::String(format!("{name}.json")));
    schema.insert("title".into(), Value::String(name.into()));
    schema
}

/// Every schema with its file name under `schemas/` and its pretty JSON
/// text, newline-terminated.
pub fn all() -> Vec<(String, String)> {
    Kind::ALL
        .into_iter()
        .map(|kind| {
            let schema = for_service(kind);
            let text = serde_json::to_string_pretty(&schema).expect("schemas serialise") + "\n";
            (format!("{}.json", kind.schema().name()), text)
        })
        .collect()
}
