//! Publishing to a file, for running without a broker.
//!
//! [`FilePublisher`] appends each message as one line of fedora-messaging's
//! dump format, which `fedora-messaging publish FILE` and
//! `fedora_messaging.message.loads` read: an object with `body`, `headers`,
//! `id`, `priority`, `queue` (null) and `topic` (the routing key), keys
//! sorted at every level as `fedora_messaging.message.dumps` sorts them.
//!
//! The file is opened for every batch, so it may be rotated by moving it
//! away, and a batch counts as published once its lines are on disk (fsync).
//! A batch that cannot be written leaves the file as it was, as far as the
//! file system allows, and every message in it is reported transient.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::{Outgoing, PublishError, Publisher};

/// Appends messages to a file in fedora-messaging's dump format.
#[derive(Debug)]
pub struct FilePublisher {
    path: PathBuf,
    /// Keeps the batches of this process from interleaving.
    writing: Mutex<()>,
}

impl FilePublisher {
    /// A publisher appending to `path`, which is created when missing.
    /// Nothing is opened until the first batch or readiness check.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            writing: Mutex::new(()),
        }
    }

    /// The file messages are appended to.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl Publisher for FilePublisher {
    async fn publish(&self, batch: &[Outgoing]) -> Vec<Result<(), PublishError>> {
        let mut lines = String::new();
        let mut results = Vec::with_capacity(batch.len());
        for message in batch {
            results.push(dump_line(message).map(|line| {
                lines.push_str(&line);
                lines.push('\n');
            }));
        }
        if lines.is_empty() {
            return results;
        }

        let _writing = self.writing.lock().await;
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || append(&path, lines.as_bytes()))
            .await
            .unwrap_or_else(|join| Err(io::Error::other(join)));
        if let Err(error) = written {
            let reason = format!("cannot write {}: {error}", self.path.display());
            for result in results.iter_mut().filter(|result| result.is_ok()) {
                *result = Err(PublishError::Transient(reason.clone()));
            }
        }
        results
    }

    async fn is_ready(&self) -> bool {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || open_for_append(&path).is_ok())
            .await
            .unwrap_or(false)
    }
}

/// One line of the dump format, without the newline.
fn dump_line(message: &Outgoing) -> Result<String, PublishError> {
    let mut body: Value = serde_json::from_str(&message.body)
        .map_err(|error| PublishError::Permanent(format!("body is not JSON: {error}")))?;
    if !body.is_object() {
        return Err(PublishError::Permanent("body is not a JSON object".into()));
    }
    sort_keys(&mut body);

    // Built in sorted order; the map keeps insertion order.
    let headers: Map<String, Value> = message
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), serde_json::json!(value)))
        .collect();
    let line = serde_json::json!({
        "body": body,
        "headers": headers,
        "id": message.id.to_string(),
        "priority": 0,
        "queue": null,
        "topic": message.routing_key,
    });
    Ok(line.to_string())
}

/// Sorts the keys of every object in `value`, as Python's
/// `json.dumps(sort_keys=True)` does.
fn sort_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.sort_keys();
            map.values_mut().for_each(sort_keys);
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

/// Appends `bytes` and syncs them to disk, or puts the length back.
fn append(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = open_for_append(path)?;
    let start = file.metadata()?.len();
    let written = file.write_all(bytes).and_then(|()| file.sync_data());
    if written.is_err() {
        // Best effort: a half-written line would break every reader.
        let _ = file.set_len(start);
    }
    written
}

fn open_for_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;
    use webhook2fedmsg_core::message::HeaderValue;

    use super::*;

    fn message(body: &str) -> Outgoing {
        Outgoing {
            id: Uuid::nil(),
            routing_key: "org.example.github.push".into(),
            body: body.into(),
            headers: BTreeMap::from([
                ("fedora_messaging_severity".into(), HeaderValue::Int(20)),
                ("a-text".into(), HeaderValue::Text("ü".into())),
                ("fedora_messaging_user_me".into(), HeaderValue::Bool(true)),
            ]),
        }
    }

    #[test]
    fn dump_line_sorts_keys_at_every_level() {
        let line = dump_line(&message(
            r#"{"z": 1, "a": {"y": [{"c": 1, "b": 2}], "x": "ü"}}"#,
        ))
        .expect("an object body");
        assert_eq!(
            line,
            concat!(
                r#"{"body":{"a":{"x":"ü","y":[{"b":2,"c":1}]},"z":1},"#,
                r#""headers":{"a-text":"ü","fedora_messaging_severity":20,"#,
                r#""fedora_messaging_user_me":true},"#,
                r#""id":"00000000-0000-0000-0000-000000000000","priority":0,"#,
                r#""queue":null,"topic":"org.example.github.push"}"#
            )
        );
    }

    #[test]
    fn body_that_is_not_an_object_is_permanent() {
        for body in ["[1]", "not json"] {
            assert!(matches!(
                dump_line(&message(body)),
                Err(PublishError::Permanent(_))
            ));
        }
    }
}
