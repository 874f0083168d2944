//! A decoded delivery: what happened, under which topic, caused by whom.
//!
//! [`Event`] is what a [`Service`](crate::Service) makes of a verified
//! delivery. It knows the topic and the account that caused the event, but
//! not yet the Fedora username behind that account: the host resolves the
//! [`Identity`] (see [`agent`](crate::agent)) and then calls
//! [`Event::into_message`].

use std::fmt;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::Message;
use crate::message::Schema;

/// An account on a sending service that caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The service the account lives on: `github`, `gitlab`, `forgejo`,
    /// `gitea`.
    pub service: &'static str,
    /// The account's login on that service.
    pub login: String,
}

/// Why an event is deliberately not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// A ping acknowledges a hook; it is not news.
    Ping,
    /// The repository is private or internal.
    PrivateRepository,
    /// A GitLab confidential issue, or a note on one.
    Confidential,
}

impl SkipReason {
    /// A short code for logs, metrics and API responses.
    pub fn code(self) -> &'static str {
        match self {
            SkipReason::Ping => "ping",
            SkipReason::PrivateRepository => "private_repository",
            SkipReason::Confidential => "confidential",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::Ping => "ping received: the hook works; pings are not published",
            SkipReason::PrivateRepository => {
                "event of a private or internal repository: not published on the public bus"
            }
            SkipReason::Confidential => {
                "confidential issue or note: not published on the public bus"
            }
        })
    }
}

/// A verified, decoded delivery, ready to become a [`Message`].
#[derive(Debug, Clone)]
pub struct Event {
    pub(crate) topic: String,
    pub(crate) delivery_id: Option<String>,
    pub(crate) identity: Option<Identity>,
    pub(crate) skip: Option<SkipReason>,
    pub(crate) schema: Schema,
    pub(crate) body: String,
    /// Usernames the schema class reads from the payload itself, beside the
    /// agent (Discourse reports post authors this way).
    pub(crate) payload_usernames: Vec<String>,
    /// Where the agent goes in the body, if anywhere: the JSON text of the
    /// body is built with a placeholder that [`Event::into_message`] fills.
    pub(crate) agent_slot: Option<usize>,
}

impl Event {
    /// The topic, without any environment prefix (`github.push`).
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The sender's id for this delivery, if it sends one; redeliveries of
    /// the same event carry the same id.
    pub fn delivery_id(&self) -> Option<&str> {
        self.delivery_id.as_deref()
    }

    /// The account that caused the event; `None` for bots and when the
    /// payload names nobody.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// Set when the event must not be published.
    pub fn skip(&self) -> Option<SkipReason> {
        self.skip
    }

    /// The fedora-messaging schema name of the message.
    pub fn schema(&self) -> &'static str {
        self.schema.name()
    }

    /// Builds the message, with the resolved Fedora username of the agent.
    ///
    /// The host chooses the id and time, so that a retried publish can reuse
    /// them.
    pub fn into_message(self, agent: Option<&str>, id: Uuid, sent_at: OffsetDateTime) -> Message {
        let mut body = self.body;
        if let Some(at) = self.agent_slot {
            let agent = serde_json::to_string(&agent).expect("an optional string serialises");
            body.replace_range(at..at + AGENT_PLACEHOLDER.len(), &agent);
        }
        let mut usernames: Vec<String> = self.payload_usernames;
        if let Some(agent) = agent {
            usernames.push(agent.to_string());
        }
        usernames.sort();
        usernames.dedup();
        Message::new(id, self.topic, self.schema, body, usernames, sent_at)
    }
}

/// Stands for the agent in the JSON text of a body until it is known.
pub(crate) const AGENT_PLACEHOLDER: &str = "null";
