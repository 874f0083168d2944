//! Pretix: the action in the payload names the event; nothing is signed.
//!
//! Pretix cannot sign its webhooks, so the hook URL (with its 128-bit
//! random id) is the only secret, and [`Service::verify`] accepts every
//! delivery. The topic is the action without its `pretix.` prefix
//! (`pretix.event.checkin`). The body gains `instance_url`, from the token,
//! and `attendee_name`.

use serde_json::{Map, Value};

use super::{Context, ForgeEvent, HeaderAllowlist, Kind, Service, read_value};
use crate::{Delivery, DeliveryError, Event, Secret, SignatureError, topic};

/// The Pretix service.
#[derive(Debug, Clone, Copy)]
pub struct Pretix;

/// Pretix sends no headers of its own worth keeping.
const HEADERS: HeaderAllowlist = HeaderAllowlist {
    optional: &[],
    required: &[],
};

/// The most dot-separated words an action may have after `pretix.`.
const MAX_ACTION_WORDS: usize = 6;

impl Service for Pretix {
    fn kind(&self) -> Kind {
        Kind::Pretix
    }

    fn verify(&self, _: &Delivery, _: &[Secret], _: i64) -> Result<(), SignatureError> {
        Ok(())
    }

    fn check_signature_headers(&self, _: &Delivery, _: i64) -> Result<(), SignatureError> {
        Ok(())
    }

    fn decode(&self, delivery: &Delivery, context: &Context) -> Result<Event, DeliveryError> {
        let payload = delivery.object_text()?;
        let mut body: Map<String, Value> = read_value(&payload)?;
        let action = body
            .get("action")
            .and_then(Value::as_str)
            .ok_or(DeliveryError::MissingField("action"))?;
        let action = action
            .strip_prefix("pretix.")
            .ok_or(DeliveryError::InvalidEvent {
                header: "action",
                reason: "must start with pretix.",
            })?;
        topic::check_words("action", action, MAX_ACTION_WORDS)?;
        let topic = format!("pretix.{action}");
        let notification = check_required(&body)?;

        body.insert(
            "instance_url".into(),
            Value::String(context.instance_url.clone().unwrap_or_default()),
        );
        // TODO: pretix sends only the order code; the attendee's name (and
        // the e-mail that would give a Fedora account as agent) needs a call
        // to the pretix API with an API token, which the server does not make
        // yet. Until then `attendee_name` is null and so is the agent.
        body.insert("attendee_name".into(), Value::Null);
        let payload = Value::Object(body).to_string();
        let forge = ForgeEvent {
            kind: Kind::Pretix,
            topic,
            delivery_id: Some(notification),
            identity: None,
            skip: None,
            headers: HEADERS.select(delivery, &[]),
        };
        Ok(forge.into_event(&payload))
    }
}

/// Checks the fields the schema requires; returns the notification id.
fn check_required(body: &Map<String, Value>) -> Result<String, DeliveryError> {
    let notification = body
        .get("notification_id")
        .and_then(Value::as_i64)
        .ok_or(DeliveryError::MissingField("notification_id"))?;
    for field in ["organizer", "event"] {
        body.get(field)
            .and_then(Value::as_str)
            .ok_or(DeliveryError::MissingField(field))?;
    }
    match body.get("code") {
        Some(Value::String(_) | Value::Null) => Ok(notification.to_string()),
        _ => Err(DeliveryError::MissingField("code")),
    }
}
