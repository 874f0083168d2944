//! The sending services, one module each, behind the [`Service`] trait.
//!
//! A service knows its signature headers ([`Service::verify`]) and how to
//! read its deliveries ([`Service::decode`]): the event name, the topic, the
//! account that caused the event, whether it may be published, and the body
//! of the message. Adding a service means adding a module here and a
//! [`Kind`] variant.
//!
//! Payloads are read in one pass that borrows the few fields a service needs
//! and keeps the rest of the payload as the raw JSON text received, so the
//! published body is the payload as the sender wrote it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;

use crate::event::AGENT_PLACEHOLDER;
use crate::message::Schema;
use crate::strict;
use crate::{Delivery, DeliveryError, Event, Identity, Secret, SignatureError, SkipReason};

pub mod discourse;
pub mod forgejo;
pub mod gitea;
pub mod github;
pub mod gitlab;
pub mod pretix;

/// What a service needs to know about the token a delivery arrived on.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The base URL of the Pretix instance the token belongs to; Pretix
    /// messages carry it as `instance_url` (empty when unknown).
    pub instance_url: Option<String>,
}

/// One sending service: its signature scheme and how its deliveries read.
pub trait Service: Send + Sync + 'static {
    /// Which service this is.
    fn kind(&self) -> Kind;

    /// Checks the delivery's signature or token against the token's secrets.
    ///
    /// `now` is the current time in Unix seconds, for timestamped schemes.
    fn verify(
        &self,
        delivery: &Delivery,
        secrets: &[Secret],
        now: i64,
    ) -> Result<(), SignatureError>;

    /// Checks the signature headers alone, without the body or the
    /// secrets: a delivery this refuses, [`Service::verify`] refuses with
    /// the same error whatever its body, so a receiver may call this before
    /// reading the body.
    ///
    /// `now` is the current time in Unix seconds, for timestamped schemes.
    fn check_signature_headers(&self, delivery: &Delivery, now: i64) -> Result<(), SignatureError>;

    /// Decodes a verified delivery into an [`Event`].
    fn decode(&self, delivery: &Delivery, context: &Context) -> Result<Event, DeliveryError>;
}

/// The services webhook2fedmsg knows, by their name in URLs and topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// github.com
    Github,
    /// GitLab, gitlab.com or self-hosted.
    Gitlab,
    /// Forgejo, such as Codeberg.
    Forgejo,
    /// Gitea.
    Gitea,
    /// Discourse forums.
    Discourse,
    /// Pretix ticketing.
    Pretix,
}

impl Kind {
    /// Every service, in a stable order.
    pub const ALL: [Kind; 6] = [
        Kind::Github,
        Kind::Gitlab,
        Kind::Forgejo,
        Kind::Gitea,
        Kind::Discourse,
        Kind::Pretix,
    ];

    /// The service's name, as in URLs and topics (`github`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Github => "github",
            Kind::Gitlab => "gitlab",
            Kind::Forgejo => "forgejo",
            Kind::Gitea => "gitea",
            Kind::Discourse => "discourse",
            Kind::Pretix => "pretix",
        }
    }

    /// The implementation of this service.
    pub fn service(self) -> &'static dyn Service {
        match self {
            Kind::Github => &github::Github,
            Kind::Gitlab => &gitlab::Gitlab,
            Kind::Forgejo => &forgejo::Forgejo,
            Kind::Gitea => &gitea::Gitea,
            Kind::Discourse => &discourse::Discourse,
            Kind::Pretix => &pretix::Pretix,
        }
    }

    /// The schema of the messages this service produces.
    pub fn schema(self) -> Schema {
        match self {
            Kind::Github => Schema::Github,
            Kind::Gitlab => Schema::Gitlab,
            Kind::Forgejo => Schema::Forgejo,
            Kind::Gitea => Schema::Gitea,
            Kind::Discourse => Schema::Discourse,
            Kind::Pretix => Schema::Pretix,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing an unknown service name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown service {0:?}: expected github, gitlab, forgejo, gitea, discourse or pretix")]
pub struct UnknownService(pub String);

impl FromStr for Kind {
    type Err = UnknownService;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownService(s.to_string()))
    }
}

/// Reads the fields a service needs from a payload of
/// [`Delivery::object_text`](crate::Delivery), in one pass that checks
/// every other value strictly too (see [`strict`]). It reads text, not
/// bytes: the payload was checked to be UTF-8 once, and parsing bytes would
/// check every string again.
pub(crate) fn read_fields<'a, T: serde::Deserialize<'a>>(
    payload: &'a str,
) -> Result<T, DeliveryError> {
    strict::read(payload)
}

/// Parses the whole payload of [`Delivery::object_text`](crate::Delivery)
/// as a JSON value, for services that edit it; strictly, as
/// [`read_fields`] does.
pub(crate) fn read_value<T: DeserializeOwned>(payload: &str) -> Result<T, DeliveryError> {
    strict::read(payload)
}

/// Which delivery headers a message body keeps, by lower-case name.
pub(crate) struct HeaderAllowlist {
    /// Copied when present.
    pub optional: &'static [&'static str],
    /// Always present in the body: the schema package requires them, so an
    /// absent one is written as an empty string.
    pub required: &'static [&'static str],
}

impl HeaderAllowlist {
    /// The allowed headers of a delivery, with overrides for headers whose
    /// value the service derives (such as Forgejo's event name when only
    /// the Gitea header family was sent).
    pub(crate) fn select<'a>(
        &self,
        delivery: &'a Delivery,
        overrides: &[(&'static str, &'a str)],
    ) -> BTreeMap<&'static str, &'a str> {
        let mut kept = BTreeMap::new();
        for &name in self.required {
            kept.insert(name, "");
        }
        for &name in self.optional.iter().chain(self.required) {
            if let Some(value) = delivery.first_header(name) {
                kept.insert(name, value);
            }
        }
        for &(name, value) in overrides {
            kept.insert(name, value);
        }
        kept
    }
}

/// The parts of an event that every forge shares.
pub(crate) struct ForgeEvent<'a> {
    pub kind: Kind,
    pub topic: String,
    pub delivery_id: Option<String>,
    pub identity: Option<Identity>,
    pub skip: Option<SkipReason>,
    pub headers: BTreeMap<&'static str, &'a str>,
}

impl ForgeEvent<'_> {
    /// Builds the `{"body", "headers", "agent"}` message body around the
    /// payload's raw text, leaving a slot for the agent.
    pub(crate) fn into_event(self, payload: &str) -> Event {
        let raw = payload.trim();
        let headers = serde_json::to_string(&self.headers).expect("string maps serialise");
        let mut body = String::with_capacity(raw.len() + headers.len() + 40);
        body.push_str("{\"body\":");
        body.push_str(raw);
        body.push_str(",\"headers\":");
        body.push_str(&headers);
        body.push_str(",\"agent\":");
        let agent_slot = body.len();
        body.push_str(AGENT_PLACEHOLDER);
        body.push('}');
        Event {
            topic: self.topic,
            delivery_id: self.delivery_id,
            identity: self.identity,
            skip: self.skip,
            schema: self.kind.schema(),
            body,
            payload_usernames: Vec::new(),
            agent_slot: Some(agent_slot),
        }
    }
}

/// Whether an account name or type is a bot's, whose actions are never
/// attributed to a person.
pub(crate) fn is_bot(login: &str, account_type: Option<&str>) -> bool {
    login.ends_with("[bot]") || account_type.is_some_and(|t| t.eq_ignore_ascii_case("bot"))
}

/// An identity for a login, unless it is empty or a bot's.
pub(crate) fn identity(
    service: &'static str,
    login: Option<&str>,
    account_type: Option<&str>,
) -> Option<Identity> {
    let login = login?.trim();
    if login.is_empty() || is_bot(login, account_type) {
        return None;
    }
    Some(Identity {
        service,
        login: login.to_string(),
    })
}
