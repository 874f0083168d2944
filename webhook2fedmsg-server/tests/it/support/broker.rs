//! The shared RabbitMQ of the test run, and reading back what went on it.
//!
//! `W2F_TEST_AMQP` names the broker (default the local guest
//! account). A broker that cannot be reached fails the test: publishing is
//! the point of these tests and they are never skipped. Each test binds its
//! own exclusive, server-named queue under its own topic prefix, so tests
//! can share the broker and run at the same time.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties, Consumer};
use uuid::Uuid;
use webhook2fedmsg_core::message::HeaderValue;
use webhook2fedmsg_server::publish::Outgoing;

/// The broker the tests publish to.
pub fn amqp_url() -> String {
    std::env::var("W2F_TEST_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// The broker's socket address, for a proxy in front of it.
pub fn amqp_addr() -> SocketAddr {
    let uri: AMQPUri = amqp_url().parse().expect("W2F_TEST_AMQP parses");
    (uri.authority.host.as_str(), uri.authority.port)
        .to_socket_addrs()
        .expect("the broker's host resolves")
        .next()
        .expect("the broker's host has an address")
}

/// The test URL with its host and port replaced by `addr`.
pub fn amqp_url_via(addr: SocketAddr) -> String {
    let mut uri: AMQPUri = amqp_url().parse().expect("W2F_TEST_AMQP parses");
    uri.authority.host = addr.ip().to_string();
    uri.authority.port = addr.port();
    uri.to_string()
}

/// A topic prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("w2f-test.{}", Uuid::new_v4().simple())
}

/// A message like the server publishes, under `routing_key`.
pub fn outgoing(routing_key: &str) -> Outgoing {
    let id = Uuid::new_v4();
    let text = |s: &str| HeaderValue::Text(s.into());
    Outgoing {
        id,
        routing_key: routing_key.into(),
        body: format!(r#"{{"body":{{"id":"{id}"}},"headers":{{}},"agent":null}}"#),
        headers: BTreeMap::from([
            (
                "fedora_messaging_schema".into(),
                text("webhook_to_fedora_messaging.github.message_v1"),
            ),
            (
                "fedora_messaging_schema_package".into(),
                text("webhook_to_fedora_messaging_messages"),
            ),
            ("fedora_messaging_severity".into(), HeaderValue::Int(20)),
            (
                "fedora_messaging_user_alice".into(),
                HeaderValue::Bool(true),
            ),
            ("priority".into(), HeaderValue::Int(0)),
            ("sent-at".into(), text("2024-05-01T12:00:00+00:00")),
        ]),
    }
}

/// `count` messages under `prefix`.
pub fn batch(prefix: &str, count: usize) -> Vec<Outgoing> {
    (0..count)
        .map(|n| outgoing(&format!("{prefix}.github.push{}", n % 3)))
        .collect()
}

/// An exclusive, server-named queue bound to `<prefix>.#` on `amq.topic`,
/// with its own connection.
pub struct Listener {
    // Kept open for as long as the listener lives.
    _connection: Connection,
    _channel: Channel,
    consumer: Consumer,
}

impl Listener {
    /// Binds a queue for `prefix`; panics if the broker is unreachable.
    pub async fn bind(prefix: &str) -> Self {
        Self::bind_with(prefix, FieldTable::default()).await
    }

    /// Binds a queue declared with `arguments` (`x-max-length`...).
    pub async fn bind_with(prefix: &str, arguments: FieldTable) -> Self {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .unwrap_or_else(|error| panic!("the test broker is unreachable: {error}"));
        let channel = connection.create_channel().await.expect("channel");
        let options = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        let queue = channel
            .queue_declare("".into(), options, arguments)
            .await
            .expect("queue.declare");

        let key = format!("{prefix}.#");
        channel
            .queue_bind(
                queue.name().clone(),
                "amq.topic".into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("queue.bind");
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("basic.consume");
        Self {
            _connection: connection,
            _channel: channel,
            consumer,
        }
    }

    /// The next `count` deliveries; panics if they take over 30 s.
    pub async fn take(&mut self, count: usize) -> Vec<Delivery> {
        let mut deliveries = Vec::with_capacity(count);
        while deliveries.len() < count {
            let next = tokio::time::timeout(Duration::from_secs(30), self.consumer.next()).await;
            match next {
                Ok(Some(Ok(delivery))) => deliveries.push(delivery),
                Ok(other) => panic!("consumer ended: {other:?}"),
                Err(_) => panic!("{} of {count} messages arrived", deliveries.len()),
            }
        }
        deliveries
    }
}
