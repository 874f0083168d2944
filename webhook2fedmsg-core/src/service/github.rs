//! GitHub: `X-GitHub-Event` names the event, `X-Hub-Signature-256` signs it.
//!
//! The agent is `sender.login` unless the sender is a bot. Events of
//! private or internal repositories and pings are not published.

use std::borrow::Cow;

use serde::Deserialize;

use super::{Context, ForgeEvent, HeaderAllowlist, Kind, Service, identity, read_fields};
use crate::signature::{self, Check, Policy};
use crate::{Delivery, DeliveryError, Event, Secret, SignatureError, SkipReason, topic};

/// The GitHub service.
#[derive(Debug, Clone, Copy)]
pub struct Github;

const POLICY: Policy = Policy {
    checks: &[
        Check::PrefixedSha256("x-hub-signature-256"),
        Check::PrefixedSha1("x-hub-signature"),
    ],
    required: "X-Hub-Signature-256",
    is_required: |check| matches!(check, Check::PrefixedSha256(_)),
};

const HEADERS: HeaderAllowlist = HeaderAllowlist {
    optional: &["x-github-hook-id"],
    required: &[
        "x-github-event",
        "x-github-delivery",
        "x-github-hook-installation-target-id",
        "x-github-hook-installation-target-type",
        "x-hub-signature",
        "x-hub-signature-256",
    ],
};

/// Event headers of forges that also send GitHub's, by lower-case name,
/// with their display name and the service they belong to.
const OTHER_SENDERS: [(&str, &str, &str); 3] = [
    ("x-forgejo-event", "X-Forgejo-Event", "forgejo"),
    ("x-gitea-event", "X-Gitea-Event", "gitea"),
    ("x-gogs-event", "X-Gogs-Event", "gitea"),
];

/// The few payload fields GitHub's conversion reads.
#[derive(Deserialize)]
pub(crate) struct Fields<'a> {
    #[serde(borrow)]
    pub sender: Option<Account<'a>>,
    #[serde(borrow)]
    pub repository: Option<Repository<'a>>,
}

/// A user or organisation account in a GitHub-style payload.
#[derive(Deserialize)]
pub(crate) struct Account<'a> {
    #[serde(borrow)]
    pub login: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow)]
    pub account_type: Option<Cow<'a, str>>,
}

/// A repository in a GitHub-style payload.
#[derive(Deserialize)]
pub(crate) struct Repository<'a> {
    pub private: Option<bool>,
    /// `internal` on Forgejo and Gitea.
    pub internal: Option<bool>,
    #[serde(borrow)]
    pub visibility: Option<Cow<'a, str>>,
}

impl Repository<'_> {
    /// Whether the repository is anything but public.
    pub(crate) fn is_hidden(&self) -> bool {
        self.private == Some(true)
            || self.internal == Some(true)
            || self.visibility.as_deref().is_some_and(|v| v != "public")
    }
}

impl Service for Github {
    fn kind(&self) -> Kind {
        Kind::Github
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
        // Forgejo and Gitea send GitHub's headers too, beside their own;
        // their deliveries are not GitHub's news.
        for (name, header, service) in OTHER_SENDERS {
            if delivery.first_header(name).is_some() {
                return Err(DeliveryError::OtherService { header, service });
            }
        }
        let event = delivery.required_header("x-github-event")?;
        topic::check_word("X-GitHub-Event", event)?;
        let payload = delivery.object_text()?;
        let fields: Fields = read_fields(&payload)?;

        let skip = if event == "ping" {
            Some(SkipReason::Ping)
        } else if fields
            .repository
            .as_ref()
            .is_some_and(Repository::is_hidden)
        {
            Some(SkipReason::PrivateRepository)
        } else {
            None
        };
        let identity = fields
            .sender
            .as_ref()
            .and_then(|s| identity("github", s.login.as_deref(), s.account_type.as_deref()));
        let forge = ForgeEvent {
            kind: Kind::Github,
            topic: format!("github.{event}"),
            delivery_id: delivery.header("x-github-delivery")?.map(str::to_string),
            identity,
            skip,
            headers: HEADERS.select(delivery, &[]),
        };
        Ok(forge.into_event(&payload))
    }
}
