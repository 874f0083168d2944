//! What each service needs on its side: where its webhook settings are,
//! what to paste where, which content type and events to choose.
//!
//! The token pages show this next to every token and once more with a new
//! secret; `GET /api/v1/services` serves the same facts to scripts.

use serde::Serialize;
use webhook2fedmsg_core::Kind;

/// How a service proves a delivery is genuine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretUse {
    /// The service signs each body with the secret (HMAC-SHA256).
    Signature,
    /// The service sends the secret itself in a header (GitLab).
    SharedToken,
    /// The service proves nothing: the webhook URL is the only secret.
    None,
}

/// The setup instructions of one service.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Guide {
    /// The service's name in URLs and topics (`github`).
    pub name: &'static str,
    /// Its name for people (`GitHub`).
    pub title: &'static str,
    /// How the secret is used.
    pub secret: SecretUse,
    /// The header that carries the signature or the secret, if any.
    pub secret_header: Option<&'static str>,
    /// The content type to choose on the service's side.
    pub content_type: &'static str,
    /// Where the webhook settings are.
    pub settings: &'static str,
    /// The service's name for the field that takes the webhook URL.
    pub url_field: &'static str,
    /// The service's name for the field that takes the secret, if any.
    pub secret_field: Option<&'static str>,
    /// Which events to choose.
    pub events: &'static str,
    /// Whether a token of this service names the instance it serves
    /// (Pretix: `instance_url`).
    pub needs_instance_url: bool,
}

impl Guide {
    /// The guide for a service.
    pub fn of(kind: Kind) -> &'static Guide {
        &GUIDES[Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)]
    }

    /// The guide for a service name, if it names one.
    pub fn named(name: &str) -> Option<&'static Guide> {
        GUIDES.iter().find(|guide| guide.name == name)
    }

    /// Every service's guide, in [`Kind::ALL`] order.
    pub fn all() -> &'static [Guide] {
        &GUIDES
    }

    /// Whether the service uses a secret at all.
    pub fn has_secret(&self) -> bool {
        self.secret != SecretUse::None
    }
}

const GUIDES: [Guide; 6] = [
    Guide {
        name: "github",
        title: "GitHub",
        secret: SecretUse::Signature,
        secret_header: Some("X-Hub-Signature-256"),
        content_type: "application/json",
        settings: "the repository's (or organization's) Settings → Webhooks → Add webhook",
        url_field: "Payload URL",
        secret_field: Some("Secret"),
        events: "“Send me everything”, or “Let me select individual events” and tick the \
                 ones to publish. Keep SSL verification enabled.",
        needs_instance_url: false,
    },
    Guide {
        name: "gitlab",
        title: "GitLab",
        secret: SecretUse::SharedToken,
        secret_header: Some("X-Gitlab-Token"),
        content_type: "application/json (GitLab always sends JSON)",
        settings: "the project's (or group's) Settings → Webhooks → Add new webhook",
        url_field: "URL",
        secret_field: Some("Secret token"),
        events: "the triggers to publish: push, tag push, issues, comments, merge requests, \
                 releases… Keep SSL verification enabled.",
        needs_instance_url: false,
    },
    Guide {
        name: "forgejo",
        title: "Forgejo",
        secret: SecretUse::Signature,
        secret_header: Some("X-Forgejo-Signature"),
        content_type: "application/json",
        settings: "the repository's Settings → Webhooks → Add webhook → Forgejo",
        url_field: "Target URL",
        secret_field: Some("Secret"),
        events: "HTTP method POST; “All events”, or “Custom events” and tick the ones to \
                 publish.",
        needs_instance_url: false,
    },
    Guide {
        name: "gitea",
        title: "Gitea",
        secret: SecretUse::Signature,
        secret_header: Some("X-Gitea-Signature"),
        content_type: "application/json",
        settings: "the repository's Settings → Webhooks → Add webhook → Gitea",
        url_field: "Target URL",
        secret_field: Some("Secret"),
        events: "HTTP method POST; “All events”, or “Custom events” and tick the ones to \
                 publish.",
        needs_instance_url: false,
    },
    Guide {
        name: "discourse",
        title: "Discourse",
        secret: SecretUse::Signature,
        secret_header: Some("X-Discourse-Event-Signature"),
        content_type: "application/json",
        settings: "Admin → Advanced → API → Webhooks → New webhook",
        url_field: "Payload URL",
        secret_field: Some("Secret"),
        events: "“Select individual events” and tick the topic, post and other events to \
                 publish; keep “Check TLS certificate” on.",
        needs_instance_url: false,
    },
    Guide {
        name: "pretix",
        title: "Pretix",
        secret: SecretUse::None,
        secret_header: None,
        content_type: "application/json (Pretix always sends JSON)",
        settings: "the organizer's Settings → Webhooks → Create a new webhook",
        url_field: "Target URL",
        secret_field: None,
        events: "the event types to publish (check-ins, orders…). Pretix signs nothing, so \
                 the URL itself is the secret: share it with nobody.",
        needs_instance_url: true,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_has_its_own_guide() {
        for kind in Kind::ALL {
            assert_eq!(Guide::of(kind).name, kind.name());
            assert_eq!(Guide::named(kind.name()).map(|g| g.name), Some(kind.name()));
        }
        assert!(Guide::named("bitbucket").is_none());
    }
}
