//! Forgejo (Codeberg and others): GitHub-style payloads.
//!
//! Forgejo sends its own `X-Forgejo-*` headers beside the `X-Gitea-*` ones;
//! a delivery with only the Gitea family is accepted too, and the message
//! headers are then written under the Forgejo names the schema package
//! requires. Signed with `X-Forgejo-Signature` or `X-Gitea-Signature` (bare
//! hex) and `X-Hub-Signature-256`.
//!
//! On an open forge anyone can register any login, so the identity
//! (`run.trigger_user` for action runs, `sender` otherwise) is reported but
//! must only be resolved to a Fedora account on an instance the host trusts.

use serde::Deserialize;

use super::github::{Account, Repository};
use super::{Context, ForgeEvent, HeaderAllowlist, Kind, Service, identity, read_fields};
use crate::signature::{self, Check, Policy};
use crate::{Delivery, DeliveryError, Event, Secret, SignatureError, SkipReason, topic};

/// The Forgejo service.
#[derive(Debug, Clone, Copy)]
pub struct Forgejo;

const POLICY: Policy = Policy {
    checks: &[
        Check::BareSha256("x-forgejo-signature"),
        Check::BareSha256("x-gitea-signature"),
        Check::BareSha256("x-gogs-signature"),
        Check::PrefixedSha256("x-hub-signature-256"),
        Check::PrefixedSha1("x-hub-signature"),
    ],
    required: "X-Forgejo-Signature, X-Gitea-Signature or X-Hub-Signature-256",
    is_required: |check| !matches!(check, Check::PrefixedSha1(_)),
};

const NAMES: HeaderNames = HeaderNames {
    event: &["x-forgejo-event", "x-gitea-event"],
    delivery: &["x-forgejo-delivery", "x-gitea-delivery"],
    event_header: "X-Forgejo-Event",
    kept_event: "x-forgejo-event",
    kept_delivery: "x-forgejo-delivery",
    optional: &["x-forgejo-event-type", "x-forgejo-signature"],
    required: &["x-hub-signature", "x-hub-signature-256"],
};

/// Where a Gitea-style service names its event and delivery.
pub(crate) struct HeaderNames {
    /// Headers naming the event, in order of preference.
    pub event: &'static [&'static str],
    /// Headers carrying the delivery id, in order of preference.
    pub delivery: &'static [&'static str],
    /// The event header's name in error messages.
    pub event_header: &'static str,
    /// The message header that holds the event name.
    pub kept_event: &'static str,
    /// The message header that holds the delivery id.
    pub kept_delivery: &'static str,
    /// Further headers copied when present.
    pub optional: &'static [&'static str],
    /// Further headers always present (empty when not sent).
    pub required: &'static [&'static str],
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow)]
    sender: Option<Account<'a>>,
    #[serde(borrow)]
    repository: Option<Repository<'a>>,
    #[serde(borrow)]
    run: Option<Run<'a>>,
}

/// An Actions run, in `action_run_*` events.
#[derive(Deserialize)]
struct Run<'a> {
    #[serde(borrow)]
    trigger_user: Option<Account<'a>>,
    #[serde(borrow)]
    repository: Option<Repository<'a>>,
}

impl Service for Forgejo {
    fn kind(&self) -> Kind {
        Kind::Forgejo
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
        decode_gitea_style(Kind::Forgejo, &NAMES, delivery)
    }
}

fn first_header<'a>(
    delivery: &'a Delivery,
    names: &'static [&'static str],
) -> Result<Option<&'a str>, DeliveryError> {
    for &name in names {
        if let Some(value) = delivery.header(name)? {
            return Ok(Some(value));
        }
    }
    Ok(None)
}

/// Decodes a Forgejo or Gitea delivery; they differ only in header names.
pub(crate) fn decode_gitea_style(
    kind: Kind,
    names: &HeaderNames,
    delivery: &Delivery,
) -> Result<Event, DeliveryError> {
    let event = first_header(delivery, names.event)?
        .ok_or(DeliveryError::MissingHeader(names.event_header))?;
    topic::check_word(names.event_header, event)?;
    let delivery_id = first_header(delivery, names.delivery)?;
    let payload = delivery.object_text()?;
    let fields: Fields = read_fields(&payload)?;

    let run = fields.run.as_ref();
    let repository = run
        .and_then(|r| r.repository.as_ref())
        .or(fields.repository.as_ref());
    let skip = repository
        .is_some_and(Repository::is_hidden)
        .then_some(SkipReason::PrivateRepository);
    let agent = run
        .and_then(|r| r.trigger_user.as_ref())
        .or(fields.sender.as_ref());
    let identity =
        agent.and_then(|a| identity(kind.name(), a.login.as_deref(), a.account_type.as_deref()));

    let allowlist = HeaderAllowlist {
        optional: names.optional,
        required: names.required,
    };
    let mut overrides = vec![(names.kept_event, event)];
    if let Some(id) = delivery_id {
        overrides.push((names.kept_delivery, id));
    } else {
        overrides.push((names.kept_delivery, ""));
    }
    let forge = ForgeEvent {
        kind,
        topic: format!("{}.{event}", kind.name()),
        delivery_id: delivery_id.map(str::to_string),
        identity,
        skip,
        headers: allowlist.select(delivery, &overrides),
    };
    Ok(forge.into_event(&payload))
}
