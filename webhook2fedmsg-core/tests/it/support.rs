//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;
use webhook2fedmsg_core::recording::Recording;
use webhook2fedmsg_core::signature::sign_hex;
use webhook2fedmsg_core::{Context, Delivery, Kind, Message, Secret};

/// The secret every test signs recorded deliveries with.
pub const SECRET: &str = "fixture-secret";

/// A fixed clock, so that messages are reproducible.
pub const NOW: i64 = 1_750_000_000;

/// The workspace's `fixtures/` directory.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// Every fixture file, sorted by path.
pub fn fixture_paths() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for dir in std::fs::read_dir(fixtures_dir()).expect("fixtures/ is readable") {
        let dir = dir.expect("fixtures/ entry").path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).expect("service dir is readable") {
            let file = file.expect("fixture entry").path();
            if file.extension().is_some_and(|e| e == "json") {
                paths.push(file);
            }
        }
    }
    paths.sort();
    paths
}

/// The service a fixture belongs to, from its directory name.
pub fn kind_of(path: &Path) -> Kind {
    let dir = path
        .parent()
        .and_then(Path::file_name)
        .and_then(|d| d.to_str());
    dir.and_then(|d| d.parse().ok())
        .expect("fixtures live in fixtures/<service>/")
}

/// Reads a recording as it is, `COMPUTE` headers unsigned.
pub fn recording(relative: &str) -> Recording {
    let path = fixtures_dir().join(relative);
    let text = std::fs::read_to_string(&path).expect("fixture is readable");
    Recording::from_json(&text).expect("fixture is a recording")
}

/// Reads a recording and signs it with [`SECRET`].
pub fn signed(path: &Path) -> Delivery {
    let text = std::fs::read_to_string(path).expect("fixture is readable");
    let mut recording = Recording::from_json(&text).expect("fixture is a recording");
    recording.sign(SECRET);
    recording.to_delivery()
}

/// A fixture's body as a JSON value, to edit before sending it again.
pub fn fixture_body(relative: &str) -> Value {
    serde_json::from_slice(&recording(relative).body).expect("fixture body is JSON")
}

/// A fixture's headers with `body` in place of its body, every `COMPUTE`
/// header signed with `secret` over the new bytes.
pub fn resigned(relative: &str, body: Vec<u8>, secret: &str) -> Delivery {
    let mut recording = recording(relative);
    recording.body = body;
    recording.sign(secret);
    recording.to_delivery()
}

/// A delivery from header pairs and body bytes.
pub fn delivery(headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Delivery {
    Delivery::new(headers.iter().map(|&(n, v)| (n, v.to_string())), body)
}

/// `sha256=<hex>` over `body` with `key`, as GitHub and Discourse sign.
pub fn hub_sha256(key: &str, body: &[u8]) -> String {
    format!("sha256={}", sign_hex(key.as_bytes(), body))
}

/// The headers that name an event for each service, enough to decode a
/// body (pretix names its event in the body).
pub fn event_headers(kind: Kind) -> Vec<(&'static str, &'static str)> {
    match kind {
        Kind::Github => vec![("X-GitHub-Event", "push")],
        Kind::Gitlab => vec![("X-Gitlab-Event", "Push Hook")],
        Kind::Forgejo => vec![("X-Forgejo-Event", "push")],
        Kind::Gitea => vec![("X-Gitea-Event", "push")],
        Kind::Discourse => vec![
            ("X-Discourse-Event-Type", "post"),
            ("X-Discourse-Event", "post_created"),
        ],
        Kind::Pretix => vec![],
    }
}

/// The context the fixture tests use (a Pretix instance URL).
pub fn context() -> Context {
    Context {
        instance_url: Some("https://pretix.example.org".into()),
    }
}

/// The message of a decoded delivery with a fixed id and time.
pub fn message_of(kind: Kind, delivery: &Delivery, agent: Option<&str>) -> Message {
    let event = kind
        .service()
        .decode(delivery, &context())
        .expect("delivery decodes");
    let at = OffsetDateTime::from_unix_timestamp(NOW).expect("valid time");
    event.into_message(agent, Uuid::nil(), at)
}

/// A message body as a JSON value.
pub fn body_of(message: &Message) -> Value {
    serde_json::from_str(message.body()).expect("message bodies are JSON")
}

/// Verifies and converts a delivery with a fixed id and time.
pub fn convert(kind: Kind, delivery: &Delivery, agent: Option<&str>) -> Option<Message> {
    let service = kind.service();
    service
        .verify(delivery, &[Secret::new(SECRET)], NOW)
        .expect("signed with the fixture secret");
    let event = service
        .decode(delivery, &context())
        .expect("fixture decodes");
    if event.skip().is_some() {
        return None;
    }
    let at = OffsetDateTime::from_unix_timestamp(NOW).expect("valid time");
    Some(event.into_message(agent, Uuid::nil(), at))
}

/// `payload=<percent-encoded JSON>`, as GitHub sends form deliveries.
pub fn form_body(json: &[u8]) -> Vec<u8> {
    let mut form = b"payload=".to_vec();
    for &byte in json {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => form.push(byte),
            b' ' => form.push(b'+'),
            _ => form.extend_from_slice(format!("%{byte:02X}").as_bytes()),
        }
    }
    form
}

/// A GitHub push sent as a form.
pub fn form_push(signature: &str, body: Vec<u8>) -> Delivery {
    delivery(
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", signature),
        ],
        body,
    )
}
