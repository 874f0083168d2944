//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use uuid::Uuid;
use webhook2fedmsg_core::recording::Recording;
use webhook2fedmsg_core::{Context, Delivery, Kind, Message};

/// The secret every test signs recorded deliveries with.
pub const SECRET: &str = "fixture-secret";

/// A fixed clock, so that messages are reproducible.
pub const NOW: i64 = 1_750_000_000;

/// The workspace's `fixtures/` directory.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
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

/// Reads a recording and signs it with [`SECRET`].
pub fn signed(path: &Path) -> Delivery {
    let text = std::fs::read_to_string(path).expect("fixture is readable");
    let mut recording = Recording::from_json(&text).expect("fixture is a recording");
    recording.sign(SECRET);
    recording.to_delivery()
}

/// The context the fixture tests use (a Pretix instance URL).
pub fn context() -> Context {
    Context {
        instance_url: Some("https://pretix.example.org".into()),
    }
}

/// Verifies and converts a delivery with a fixed id and time.
pub fn convert(kind: Kind, delivery: &Delivery, agent: Option<&str>) -> Option<Message> {
    let service = kind.service();
    service
        .verify(delivery, &[webhook2fedmsg_core::Secret::new(SECRET)], NOW)
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
