//! Properties the fuzz targets share: what must hold of every event a
//! service decodes and of the message it becomes.
//!
//! A target builds deliveries its own way and hands them to [`decode_all`],
//! which tries every service. Whatever a service accepts must give a topic
//! that is safe as an AMQP routing key and a body that consumers can parse;
//! a property that fails panics, which libFuzzer reports as a crash.

use std::collections::BTreeSet;

use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;
use webhook2fedmsg_core::{Context, Delivery, Event, Kind};

/// The secret targets verify with. An input cannot know it, so nothing
/// signed by the fuzzer may verify under it.
pub const SECRET: &str = "fuzz-secret";

/// A fixed clock, so that a crash replays the same way.
pub const NOW: i64 = 1_700_000_000;

/// A topic prefix like the ones deployments use.
pub const PREFIX: &str = "org.fedoraproject.test";

/// AMQP field-table keys are short strings: at most 255 bytes.
const MAX_HEADER_KEY_BYTES: usize = 255;

/// Decodes `delivery` as every service and checks each event that results.
pub fn decode_all(delivery: &Delivery) {
    let context = Context {
        instance_url: Some("https://pretix.example.org".into()),
    };
    for kind in Kind::ALL {
        if let Ok(event) = kind.service().decode(delivery, &context) {
            check_event(kind, delivery, event);
        }
    }
}

/// Checks one decoded event and the message it becomes.
///
/// Skipped events are turned into messages too: the host never publishes
/// them, but building one must not panic either.
pub fn check_event(kind: Kind, delivery: &Delivery, event: Event) {
    // Services read their fields in one pass that checks every other value
    // strictly; what they accept must pass the whole-payload check too.
    let payload = match delivery.payload() {
        Ok(payload) => payload,
        Err(e) => panic!("{kind} decoded a delivery whose payload() fails: {e}"),
    };
    assert_json_object(&payload, "payload");
    check_topic(kind, event.topic());

    // The agent is spliced into the body's JSON text, so give it the login,
    // which comes from the payload and may hold anything.
    let agent = event.identity().map(|i| i.login.clone());
    let message = event.into_message(agent.as_deref(), Uuid::nil(), OffsetDateTime::UNIX_EPOCH);
    assert_json_object(message.body().as_bytes(), "message body");
    let key = message.routing_key(PREFIX);
    assert_eq!(key, format!("{PREFIX}.{}", message.topic()));
    check_words(&key);

    let dump: Value = match serde_json::from_str(&message.dump_line(PREFIX)) {
        Ok(dump) => dump,
        Err(e) => panic!("{kind} dump line is not JSON: {e}"),
    };
    assert_eq!(dump["topic"].as_str(), Some(key.as_str()));
    let headers: BTreeSet<String> = message.headers().into_keys().collect();
    for name in &headers {
        assert!(name.len() <= MAX_HEADER_KEY_BYTES, "header key too long");
    }
}

/// Checks that `bytes` parse, strictly, as one JSON object.
pub fn assert_json_object(bytes: &[u8], what: &str) {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(_)) => {}
        Ok(other) => panic!("{what} is JSON but not an object: {other}"),
        Err(e) => panic!("{what} is not JSON that serde_json reads: {e}"),
    }
}

/// Checks that a topic starts with the service's name and that every word
/// is one the routing key can carry.
fn check_topic(kind: Kind, topic: &str) {
    let first = topic.split('.').next();
    assert_eq!(first, Some(kind.name()), "topic {topic:?}");
    assert!(
        topic.split('.').count() >= 2,
        "topic {topic:?} has no event"
    );
    check_words(topic);
}

/// Checks each dot-separated word: not empty, so no `..`, and `[a-z0-9_]`
/// only, so no wildcard (`*`, `#`) and nothing but ASCII.
fn check_words(key: &str) {
    for word in key.split('.') {
        let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
        assert!(!word.is_empty(), "empty word in {key:?}");
        assert!(word.bytes().all(allowed), "word {word:?} in {key:?}");
    }
}
