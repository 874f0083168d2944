//! The fedora-messaging message and its wire form.
//!
//! A [`Message`] is what goes on the bus: a topic, a JSON body and the
//! headers fedora-messaging consumers read (schema, severity, sent-at and
//! the `fedora_messaging_user_*` filter headers). [`Message::dump_line`] is
//! fedora-messaging's dump format, one JSON object per line, as read by
//! `fedora-messaging publish` and `fedora_messaging.message.loads`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::macros::format_description;
use uuid::Uuid;

/// The Python package that holds the schema classes of our messages.
pub const SCHEMA_PACKAGE: &str = "webhook_to_fedora_messaging_messages";

/// The severity fedora-messaging calls INFO; every webhook message has it.
pub const SEVERITY_INFO: i64 = 20;

/// AMQP field-table keys are short strings: at most 255 bytes.
const MAX_HEADER_KEY_BYTES: usize = 255;

/// The fedora-messaging schema a message body follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Schema {
    /// `webhook_to_fedora_messaging.github.message_v1`
    Github,
    /// `webhook_to_fedora_messaging.gitlab.message_v1`
    Gitlab,
    /// `webhook_to_fedora_messaging.forgejo.message_v1`
    Forgejo,
    /// `webhook2fedmsg.gitea.message_v1`: ours, the schema package has none.
    Gitea,
    /// `discourse.event.v1`
    Discourse,
    /// `webhook_to_fedora_messaging.pretix.message_v1`
    Pretix,
}

impl Schema {
    /// The value of the `fedora_messaging_schema` header.
    pub fn name(self) -> &'static str {
        match self {
            Schema::Github => "webhook_to_fedora_messaging.github.message_v1",
            Schema::Gitlab => "webhook_to_fedora_messaging.gitlab.message_v1",
            Schema::Forgejo => "webhook_to_fedora_messaging.forgejo.message_v1",
            Schema::Gitea => "webhook2fedmsg.gitea.message_v1",
            Schema::Discourse => "discourse.event.v1",
            Schema::Pretix => "webhook_to_fedora_messaging.pretix.message_v1",
        }
    }
}

/// The value of one AMQP header, as fedora-messaging types it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum HeaderValue {
    /// A string; publishers must send it as an AMQP long string.
    Text(String),
    /// An integer (severity, priority).
    Int(i64),
    /// A flag (the user and group filter headers).
    Bool(bool),
}

/// A Fedora Messaging message, ready to publish.
#[derive(Debug, Clone)]
pub struct Message {
    id: Uuid,
    topic: String,
    schema: Schema,
    body: String,
    usernames: Vec<String>,
    sent_at: OffsetDateTime,
}

impl Message {
    /// Builds a message; `body` must be the JSON text of an object.
    pub(crate) fn new(
        id: Uuid,
        topic: String,
        schema: Schema,
        body: String,
        usernames: Vec<String>,
        sent_at: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            topic,
            schema,
            body,
            usernames,
            sent_at,
        }
    }

    /// The message id (the AMQP `message_id` property).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The topic without prefix, such as `github.push`.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The schema the body follows.
    pub fn schema(&self) -> Schema {
        self.schema
    }

    /// The body as JSON text: the exact bytes to publish.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The JSON body, taken out of the message.
    pub fn into_body(self) -> String {
        self.body
    }

    /// The Fedora usernames the schema class reports for this message.
    pub fn usernames(&self) -> &[String] {
        &self.usernames
    }

    /// When the message was first built; a retried publish reuses it.
    pub fn sent_at(&self) -> OffsetDateTime {
        self.sent_at
    }

    /// The routing key: `prefix.topic`, with the prefix applied once
    /// whether or not it ends with a dot; an empty prefix gives the topic.
    pub fn routing_key(&self, prefix: &str) -> String {
        routing_key(prefix, &self.topic)
    }

    /// The AMQP headers fedora-messaging consumers read, sorted by name.
    ///
    /// A user header whose name would exceed the 255-byte limit of AMQP
    /// field-table keys is left out rather than breaking the publish.
    pub fn headers(&self) -> BTreeMap<String, HeaderValue> {
        let mut headers = BTreeMap::new();
        let text = |s: &str| HeaderValue::Text(s.to_string());
        headers.insert("fedora_messaging_schema".into(), text(self.schema.name()));
        headers.insert(
            "fedora_messaging_schema_package".into(),
            text(SCHEMA_PACKAGE),
        );
        headers.insert(
            "fedora_messaging_severity".into(),
            HeaderValue::Int(SEVERITY_INFO),
        );
        headers.insert("priority".into(), HeaderValue::Int(0));
        headers.insert(
            "sent-at".into(),
            HeaderValue::Text(format_sent_at(self.sent_at)),
        );
        for user in &self.usernames {
            let key = format!("fedora_messaging_user_{user}");
            if key.len() <= MAX_HEADER_KEY_BYTES {
                headers.insert(key, HeaderValue::Bool(true));
            }
        }
        headers
    }

    /// The message as one line of fedora-messaging's dump format (no
    /// newline), with the topic under `prefix`.
    pub fn dump_line(&self, prefix: &str) -> String {
        #[derive(Serialize)]
        struct Dump<'a> {
            body: &'a RawValue,
            headers: BTreeMap<String, HeaderValue>,
            id: String,
            priority: i64,
            queue: Option<()>,
            topic: String,
        }
        let body: &RawValue =
            serde_json::from_str(&self.body).expect("message bodies are built as valid JSON");
        let dump = Dump {
            body,
            headers: self.headers(),
            id: self.id.to_string(),
            priority: 0,
            queue: None,
            topic: self.routing_key(prefix),
        };
        serde_json::to_string(&dump).expect("a dump line always serialises")
    }
}

/// Joins a topic prefix and a topic with exactly one dot between them.
pub fn routing_key(prefix: &str, topic: &str) -> String {
    let prefix = prefix.trim_end_matches('.');
    if prefix.is_empty() {
        topic.to_string()
    } else {
        format!("{prefix}.{topic}")
    }
}

/// `sent-at` as fedora-messaging writes it, in UTC without fractions:
/// `2024-05-01T12:00:00+00:00`.
pub fn format_sent_at(at: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+00:00");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .expect("a UTC date in range formats")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_applied_once_with_or_without_trailing_dot() {
        assert_eq!(
            routing_key("org.fedoraproject.prod", "github.push"),
            "org.fedoraproject.prod.github.push"
        );
        assert_eq!(
            routing_key("org.fedoraproject.prod.", "github.push"),
            "org.fedoraproject.prod.github.push"
        );
        assert_eq!(routing_key("", "github.push"), "github.push");
    }

    #[test]
    fn sent_at_is_utc_without_fraction() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789)
            .expect("a time in range");
        assert_eq!(format_sent_at(at), "2023-11-14T22:13:20+00:00");
    }

    #[test]
    fn overlong_user_header_is_left_out() {
        let long = "ü".repeat(70);
        let longer = "ü".repeat(120);
        let message = Message::new(
            Uuid::nil(),
            "github.push".into(),
            Schema::Github,
            "{}".into(),
            vec![long.clone(), longer.clone()],
            OffsetDateTime::UNIX_EPOCH,
        );
        let headers = message.headers();
        assert!(headers.contains_key(&format!("fedora_messaging_user_{long}")));
        assert!(!headers.contains_key(&format!("fedora_messaging_user_{longer}")));
    }
}
