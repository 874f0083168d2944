//! GitLab: `X-Gitlab-Event` names the event, `X-Gitlab-Token` carries the
//! secret itself, and signing tokens add a Standard Webhooks signature
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
//!
//! The topic is the event header without ` Hook`, spaces turned to `_`,
//! lower case (`Merge Request Hook` is `gitlab.merge_request`). The agent
//! is `user_username` (push events) or `user.username`. Confidential issues
//! and notes, and internal notes, are not published.

use std::borrow::Cow;

use serde::Deserialize;

use super::{Context, ForgeEvent, HeaderAllowlist, Kind, Service, identity, read_fields};
use crate::signature::{self, Check, Policy};
use crate::{Delivery, DeliveryError, Event, Secret, SignatureError, SkipReason, topic};

/// The GitLab service.
#[derive(Debug, Clone, Copy)]
pub struct Gitlab;

const POLICY: Policy = Policy {
    checks: &[Check::Token("x-gitlab-token"), Check::StandardWebhooks],
    required: "X-Gitlab-Token or webhook-signature",
    is_required: |_| true,
};

const HEADERS: HeaderAllowlist = HeaderAllowlist {
    optional: &["x-gitlab-instance", "idempotency-key"],
    required: &[
        "x-gitlab-event",
        "x-gitlab-webhook-uuid",
        "x-gitlab-event-uuid",
    ],
};

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow)]
    user_username: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user: Option<User<'a>>,
    #[serde(borrow)]
    event_type: Option<Cow<'a, str>>,
    object_attributes: Option<Attributes>,
    issue: Option<Attributes>,
}

#[derive(Deserialize)]
struct User<'a> {
    #[serde(borrow)]
    username: Option<Cow<'a, str>>,
}

/// The confidentiality flags of an issue or note.
#[derive(Deserialize)]
struct Attributes {
    confidential: Option<bool>,
    internal: Option<bool>,
}

impl Attributes {
    fn is_hidden(&self) -> bool {
        self.confidential == Some(true) || self.internal == Some(true)
    }
}

impl Service for Gitlab {
    fn kind(&self) -> Kind {
        Kind::Gitlab
    }

    fn verify(
        &self,
        delivery: &Delivery,
        secrets: &[Secret],
        now: i64,
    ) -> Result<(), SignatureError> {
        signature::verify(&POLICY, delivery, secrets, now)
    }

    fn check_signature_headers(&self, delivery: &Delivery, now: i64) -> Result<(), SignatureError> {
        signature::check_headers(&POLICY, delivery, now)
    }

    fn decode(&self, delivery: &Delivery, _context: &Context) -> Result<Event, DeliveryError> {
        let header = delivery.required_header("x-gitlab-event")?;
        let event = event_word(header);
        topic::check_word("X-Gitlab-Event", &event)?;
        let payload = delivery.object_text()?;
        let fields: Fields = read_fields(&payload)?;

        let confidential = event.starts_with("confidential_")
            || fields
                .event_type
                .as_deref()
                .is_some_and(|t| t.starts_with("confidential"))
            || fields
                .object_attributes
                .as_ref()
                .is_some_and(Attributes::is_hidden)
            || fields.issue.as_ref().is_some_and(Attributes::is_hidden);
        let login = fields
            .user_username
            .as_deref()
            .or(fields.user.as_ref().and_then(|u| u.username.as_deref()));
        let delivery_id = ["idempotency-key", "x-gitlab-event-uuid", "webhook-id"]
            .into_iter()
            .find_map(|name| delivery.first_header(name))
            .map(str::to_string);
        let forge = ForgeEvent {
            kind: Kind::Gitlab,
            topic: format!("gitlab.{event}"),
            delivery_id,
            identity: login.and_then(|l| {
                identity("gitlab", Some(l), None).filter(|i| !is_gitlab_bot(&i.login))
            }),
            skip: confidential.then_some(SkipReason::Confidential),
            headers: HEADERS.select(delivery, &[]),
        };
        Ok(forge.into_event(&payload))
    }
}

/// `Merge Request Hook` becomes `merge_request`.
fn event_word(header: &str) -> String {
    header.replace(" Hook", "").replace(' ', "_").to_lowercase()
}

/// GitLab's project and group access tokens act as bot users named
/// `project_<id>_bot_<hash>` or `group_<id>_bot_<hash>`.
fn is_gitlab_bot(login: &str) -> bool {
    let rest = login
        .strip_prefix("project_")
        .or_else(|| login.strip_prefix("group_"));
    rest.and_then(|r| r.split_once('_'))
        .is_some_and(|(id, tail)| id.bytes().all(|b| b.is_ascii_digit()) && tail.starts_with("bot"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_header_becomes_one_word() {
        assert_eq!(event_word("Push Hook"), "push");
        assert_eq!(event_word("Merge Request Hook"), "merge_request");
        assert_eq!(event_word("Future Thing Hook"), "future_thing");
    }

    #[test]
    fn access_token_bots_are_recognised() {
        assert!(is_gitlab_bot("project_278964_bot_5a1e6b"));
        assert!(is_gitlab_bot("group_12_bot"));
        assert!(!is_gitlab_bot("project_manager"));
        assert!(!is_gitlab_bot("jsmith"));
    }
}
