//! Gitea: the GitHub-style payloads with `X-Gitea-*` headers.
//!
//! Signed with `X-Gitea-Signature` (bare hex) and `X-Hub-Signature-256`.
//! Gitea logins are not linked to Fedora accounts, so the identity is
//! reported but a host should not resolve it unless it trusts the instance.

use super::{Context, Kind, Service, forgejo};
use crate::signature::{self, Check, Policy};
use crate::{Delivery, DeliveryError, Event, Secret, SignatureError};

/// The Gitea service.
#[derive(Debug, Clone, Copy)]
pub struct Gitea;

const POLICY: Policy = Policy {
    checks: &[
        Check::BareSha256("x-gitea-signature"),
        Check::BareSha256("x-gogs-signature"),
        Check::PrefixedSha256("x-hub-signature-256"),
        Check::PrefixedSha1("x-hub-signature"),
    ],
    required: "X-Gitea-Signature or X-Hub-Signature-256",
    is_required: |check| !matches!(check, Check::PrefixedSha1(_)),
};

const NAMES: forgejo::HeaderNames = forgejo::HeaderNames {
    event: &["x-gitea-event"],
    delivery: &["x-gitea-delivery"],
    event_header: "X-Gitea-Event",
    kept_event: "x-gitea-event",
    kept_delivery: "x-gitea-delivery",
    optional: &["x-gitea-event-type", "x-gitea-signature"],
    required: &["x-hub-signature", "x-hub-signature-256"],
};

impl Service for Gitea {
    fn kind(&self) -> Kind {
        Kind::Gitea
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
        forgejo::decode_gitea_style(Kind::Gitea, &NAMES, delivery)
    }
}
