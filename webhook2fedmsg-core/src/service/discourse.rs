//! Discourse: `X-Discourse-Event-Type` and `X-Discourse-Event` name the
//! event, `X-Discourse-Event-Signature: sha256=<hex>` signs it.
//!
//! Discourse messages have their own layout (`discourse.event.v1`):
//! `{"webhook_body", "webhook_headers"}` with the five `X-Discourse-*`
//! headers in their capitals, and no `agent`. The post's rendered and raw
//! text (`post.cooked`, `post.raw`) are dropped: they can be megabytes and
//! consumers link to the post instead. Usernames come from the payload, as
//! the schema class reads them; Fedora's forums log people in with their
//! Fedora account, so no lookup is needed.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{Context, Kind, Service, read_value};
use crate::message::Schema;
use crate::signature::{self, Check, Policy};
use crate::{Delivery, DeliveryError, Event, Secret, SignatureError, SkipReason, topic};

/// The Discourse service.
#[derive(Debug, Clone, Copy)]
pub struct Discourse;

const POLICY: Policy = Policy {
    checks: &[Check::PrefixedSha256("x-discourse-event-signature")],
    required: "X-Discourse-Event-Signature",
    is_required: |_| true,
};

/// The headers kept, with the capitals the schema requires.
const HEADERS: [&str; 5] = [
    "X-Discourse-Instance",
    "X-Discourse-Event-Id",
    "X-Discourse-Event-Type",
    "X-Discourse-Event",
    "X-Discourse-Event-Signature",
];

impl Service for Discourse {
    fn kind(&self) -> Kind {
        Kind::Discourse
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
        let event_type = delivery.required_header("x-discourse-event-type")?;
        let event = delivery.required_header("x-discourse-event")?;
        topic::check_word("X-Discourse-Event-Type", event_type)?;
        topic::check_word("X-Discourse-Event", event)?;
        let payload = delivery.object_text()?;
        let mut webhook_body: Map<String, Value> = read_value(&payload)?;

        if let Some(Value::Object(post)) = webhook_body.get_mut("post") {
            post.remove("cooked");
            post.remove("raw");
        }
        let usernames = usernames(&webhook_body, event_type);
        let webhook_headers: BTreeMap<&str, &str> = HEADERS
            .iter()
            .map(|&name| {
                let lower = name.to_ascii_lowercase();
                (name, delivery.first_header(&lower).unwrap_or(""))
            })
            .collect();
        let body = serde_json::json!({
            "webhook_body": webhook_body,
            "webhook_headers": webhook_headers,
        });
        Ok(Event {
            topic: format!("discourse.{event_type}.{event}"),
            delivery_id: delivery.header("x-discourse-event-id")?.map(str::to_string),
            identity: None,
            skip: (event_type == "ping").then_some(SkipReason::Ping),
            schema: Schema::Discourse,
            body: body.to_string(),
            payload_usernames: usernames,
            agent_slot: None,
        })
    }
}

/// The usernames `discourse.event.v1` reports, which become the
/// `fedora_messaging_user_*` headers: the author of a liked post and the
/// author of an accepted solution. The schema class derives the event's
/// agent from the payload too, but does not count it among its usernames,
/// so neither do we.
fn usernames(body: &Map<String, Value>, event_type: &str) -> Vec<String> {
    let contents = body.get(event_type);
    let at = |path: &[&str]| {
        path.iter()
            .try_fold(contents?, |value, key| value.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let affected = match event_type {
        "solved" => at(&["username"]),
        "like" => at(&["post", "username"]),
        _ => None,
    };
    affected.into_iter().collect()
}
