//! Publishing messages: to RabbitMQ ([`amqp`]) or to a file ([`file`]).
//!
//! The dispatcher hands a [`Publisher`] batches of [`Outgoing`] messages
//! taken from the outbox and learns, for each one, whether it is on the
//! broker (confirmed), should be retried later ([`PublishError::Transient`])
//! or can never be published ([`PublishError::Permanent`], such as a message
//! over the broker's size limit or an access refusal). A publisher never
//! changes a message: retries reuse its id and `sent-at`.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;

use async_trait::async_trait;
use uuid::Uuid;
use webhook2fedmsg_core::message::HeaderValue;

use crate::config::Config;

pub mod amqp;
pub mod file;

/// A message ready to go on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The AMQP `message_id`, the same on every attempt.
    pub id: Uuid,
    /// The full routing key, topic prefix included.
    pub routing_key: String,
    /// The JSON body.
    pub body: String,
    /// The fedora-messaging headers, `sent-at` included.
    pub headers: BTreeMap<String, HeaderValue>,
}

/// Why one message was not published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The broker is away or the connection broke: try again later.
    #[error("broker unavailable: {0}")]
    Transient(String),
    /// The broker refused the message in a way retrying cannot fix.
    #[error("broker refused the message: {0}")]
    Permanent(String),
}

/// Somewhere messages can be published.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes a batch, pipelined, and reports each message's fate in
    /// the same order. Returns only once every message is confirmed or
    /// failed.
    async fn publish(&self, batch: &[Outgoing]) -> Vec<Result<(), PublishError>>;

    /// Whether the destination is reachable right now (for `/readyz`).
    async fn is_ready(&self) -> bool;
}

/// The publisher the configuration asks for: RabbitMQ when `amqp.url` is
/// set, the file sink otherwise.
pub fn from_config(config: &Config) -> anyhow::Result<Arc<dyn Publisher>> {
    let Some(url) = &config.amqp.url else {
        let path = &config.sink.path;
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => std::path::Path::new("."),
        };
        if path.is_dir() {
            anyhow::bail!("sink.path {} is a directory, not a file", path.display());
        }
        if !directory.is_dir() {
            let problem = if directory.exists() {
                "is not a directory"
            } else {
                "does not exist"
            };
            anyhow::bail!(
                "sink.path {}: {} {problem}",
                path.display(),
                directory.display()
            );
        }
        tracing::info!(sink.path = %path.display(), "no amqp.url: writing messages to the file sink");
        return Ok(Arc::new(file::FilePublisher::new(config.sink.path.clone())));
    };
    let mut settings = amqp::AmqpSettings::new(url.expose());
    settings.exchange = config.amqp.exchange.clone();
    settings.ca_file = config.amqp.ca_file.clone();
    if let (Some(cert_file), Some(key_file)) = (&config.amqp.cert_file, &config.amqp.key_file) {
        settings.identity = Some(amqp::ClientIdentity::Pem {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
        });
    }
    let publisher = amqp::AmqpPublisher::new(settings).context("invalid [amqp] configuration")?;
    Ok(Arc::new(publisher))
}
