//! The publishers against the real RabbitMQ and a real file.
//!
//! Broker tests read back with plain lapin from their own queue and check
//! what went on the wire; outages are played by a proxy in front of the
//! shared broker, which is never stopped.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use lapin::types::{AMQPValue, FieldTable, ShortString};
use serde_json::Value;
use webhook2fedmsg_core::message::HeaderValue;
use webhook2fedmsg_server::publish::amqp::{AmqpPublisher, AmqpSettings};
use webhook2fedmsg_server::publish::file::FilePublisher;
use webhook2fedmsg_server::publish::{Outgoing, PublishError, Publisher};

use crate::support::broker::{
    Listener, amqp_addr, amqp_url, amqp_url_via, batch, outgoing, unique_prefix,
};
use crate::support::logs::Captured;
use crate::support::proxy::Proxy;

/// The largest default `max_message_size` of any RabbitMQ (3.8 to 3.13;
/// 4.x has 16 MiB). A broker configured above it fails this test.
const OVER_BROKER_LIMIT: usize = 128 * 1024 * 1024 + 1;

fn publisher(url: String) -> AmqpPublisher {
    let mut settings = AmqpSettings::new(url);
    settings.connect_timeout = Duration::from_secs(3);
    settings.confirm_timeout = Duration::from_secs(10);
    AmqpPublisher::new(settings).expect("valid settings")
}

fn assert_all_ok(results: &[Result<(), PublishError>]) {
    for (n, result) in results.iter().enumerate() {
        assert_eq!(result, &Ok(()), "message {n}");
    }
}

fn assert_all_transient(results: &[Result<(), PublishError>]) {
    for (n, result) in results.iter().enumerate() {
        assert!(
            matches!(result, Err(PublishError::Transient(_))),
            "message {n}: {result:?}"
        );
    }
}

/// Deliveries by message id; a redelivered duplicate counts once.
fn by_id(deliveries: Vec<lapin::message::Delivery>) -> HashMap<String, lapin::message::Delivery> {
    deliveries
        .into_iter()
        .map(|delivery| {
            let id = delivery
                .properties
                .message_id()
                .clone()
                .expect("message_id");
            (id.to_string(), delivery)
        })
        .collect()
}

fn header<'a>(delivery: &'a lapin::message::Delivery, name: &str) -> &'a AMQPValue {
    let headers = delivery.properties.headers().as_ref().expect("headers");
    headers
        .inner()
        .get(name)
        .unwrap_or_else(|| panic!("header {name} missing"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_with_fedora_messaging_properties_and_header_types() {
    let prefix = unique_prefix();
    let mut listener = Listener::bind(&prefix).await;
    let mut messages = batch(&prefix, 3);
    messages[1]
        .headers
        .insert("large".into(), HeaderValue::Int(1 << 40));

    let results = publisher(amqp_url()).publish(&messages).await;
    assert_all_ok(&results);

    let received = by_id(listener.take(3).await);
    for message in &messages {
        let delivery = &received[&message.id.to_string()];
        let properties = &delivery.properties;
        assert_eq!(delivery.exchange.as_str(), "amq.topic");
        assert_eq!(delivery.routing_key.as_str(), message.routing_key);
        assert_eq!(delivery.data, message.body.as_bytes());
        assert_eq!(properties.content_type(), &Some("application/json".into()));
        assert_eq!(properties.content_encoding(), &Some("utf-8".into()));
        assert_eq!(properties.delivery_mode(), &Some(2));
        assert_eq!(properties.priority(), &Some(0));

        let headers = properties.headers().as_ref().expect("headers");
        assert_eq!(headers.inner().len(), message.headers.len());
        for (name, value) in &message.headers {
            let expected = match value {
                HeaderValue::Text(text) => AMQPValue::LongString(text.as_str().into()),
                HeaderValue::Int(int) => match i32::try_from(*int) {
                    Ok(small) => AMQPValue::LongInt(small),
                    Err(_) => AMQPValue::LongLongInt(*int),
                },
                HeaderValue::Bool(flag) => AMQPValue::Boolean(*flag),
            };
            assert_eq!(header(delivery, name), &expected, "header {name}");
        }
    }
    // Spelled out once, as fedora-messaging consumers read them.
    let first = &received[&messages[0].id.to_string()];
    assert_eq!(
        header(first, "fedora_messaging_severity"),
        &AMQPValue::LongInt(20)
    );
    assert_eq!(
        header(first, "sent-at"),
        &AMQPValue::LongString("2024-05-01T12:00:00+00:00".into())
    );
    assert_eq!(
        header(first, "fedora_messaging_user_alice"),
        &AMQPValue::Boolean(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_survives_batch_after_batch_of_string_headers() {
    let prefix = unique_prefix();
    let mut listener = Listener::bind(&prefix).await;
    let proxy = Proxy::start(amqp_addr()).await;
    let publisher = publisher(amqp_url_via(proxy.addr()));

    // A short-string header would make the broker close the connection
    // after the first batch, and the next one would need a new connection.
    let mut sent = BTreeSet::new();
    for _ in 0..5 {
        let messages = batch(&prefix, 20);
        assert_all_ok(&publisher.publish(&messages).await);
        sent.extend(messages.iter().map(|m| m.id.to_string()));
    }
    let received: BTreeSet<String> = by_id(listener.take(100).await).into_keys().collect();
    assert_eq!(received, sent);
    assert_eq!(proxy.accepted(), 1, "the publisher had to reconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_a_batch_of_2000_and_confirms_every_message() {
    let prefix = unique_prefix();
    let mut listener = Listener::bind(&prefix).await;
    // Awaiting each confirm before the next publish would take 2000 round
    // trips, 200 s at this latency.
    let proxy = Proxy::with_latency(amqp_addr(), Duration::from_millis(50)).await;
    let publisher = publisher(amqp_url_via(proxy.addr()));
    assert!(publisher.is_ready().await);

    let messages = batch(&prefix, 2000);
    let started = Instant::now();
    let results = publisher.publish(&messages).await;
    let took = started.elapsed();
    assert_all_ok(&results);
    assert!(took < Duration::from_secs(10), "batch took {took:?}");

    let received = by_id(listener.take(2000).await);
    for message in &messages {
        assert!(received.contains_key(&message.id.to_string()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_over_the_broker_size_limit_is_permanent_and_the_rest_publish() {
    let prefix = unique_prefix();
    let mut listener = Listener::bind(&prefix).await;
    let proxy = Proxy::start(amqp_addr()).await;
    let publisher = publisher(amqp_url_via(proxy.addr()));

    let mut messages = batch(&prefix, 3);
    messages[1].body = format!(r#"{{"pad":"{}"}}"#, "x".repeat(OVER_BROKER_LIMIT));
    let results = publisher.publish(&messages).await;
    assert_eq!(results[0], Ok(()));
    assert!(
        matches!(&results[1], Err(PublishError::Permanent(reason)) if reason.contains("PRECONDITION")),
        "{:?}",
        results[1]
    );
    assert_eq!(results[2], Ok(()));

    // The closed channel must not poison the next batch.
    let next = batch(&prefix, 2);
    assert_all_ok(&publisher.publish(&next).await);

    // The messages before the big one may arrive twice: they are sent
    // again while looking for the message at fault.
    let mut expected: BTreeSet<String> = [&messages[0], &messages[2], &next[0], &next[1]]
        .iter()
        .map(|m| m.id.to_string())
        .collect();
    while !expected.is_empty() {
        for delivery in listener.take(1).await {
            let id = delivery.properties.message_id().clone().expect("id");
            assert_ne!(id.as_str(), messages[1].id.to_string(), "big one delivered");
            expected.remove(id.as_str());
        }
    }
    assert_eq!(
        proxy.accepted(),
        1,
        "a channel error must not cost the connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacked_message_is_permanent_and_its_batch_is_confirmed() {
    let prefix = unique_prefix();
    let mut listener = Listener::bind(&format!("{prefix}.open")).await;
    // A queue that takes nothing and rejects what it cannot take: the
    // broker nacks every message routed to it.
    let mut full = FieldTable::default();
    full.insert(ShortString::from("x-max-length"), AMQPValue::LongInt(0));
    full.insert(
        ShortString::from("x-overflow"),
        AMQPValue::LongString("reject-publish".into()),
    );
    let _full = Listener::bind_with(&format!("{prefix}.full"), full).await;

    let messages = vec![
        outgoing(&format!("{prefix}.open.github.push")),
        outgoing(&format!("{prefix}.full.github.push")),
        outgoing(&format!("{prefix}.open.github.push")),
    ];
    let results = publisher(amqp_url()).publish(&messages).await;
    assert_eq!(results[0], Ok(()));
    assert!(
        matches!(&results[1], Err(PublishError::Permanent(reason)) if reason.contains("nack")),
        "{:?}",
        results[1]
    );
    assert_eq!(results[2], Ok(()));
    let received = by_id(listener.take(2).await);
    assert!(received.contains_key(&messages[0].id.to_string()));
    assert!(received.contains_key(&messages[2].id.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unroutable_message_is_confirmed() {
    // Nobody listens under this prefix, as on a quiet amq.topic.
    let messages = batch(&unique_prefix(), 2);
    assert_all_ok(&publisher(amqp_url()).publish(&messages).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_is_transient_and_the_same_publisher_recovers() {
    let prefix = unique_prefix();
    let mut listener = Listener::bind(&prefix).await;
    let proxy = Proxy::start(amqp_addr()).await;
    let publisher = publisher(amqp_url_via(proxy.addr()));
    let before = batch(&prefix, 5);
    assert_all_ok(&publisher.publish(&before).await);

    // The broker goes away under an open connection.
    proxy.go_down();
    let started = Instant::now();
    let during = batch(&prefix, 5);
    assert_all_transient(&publisher.publish(&during).await);
    assert_all_transient(&publisher.publish(&during).await);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(!publisher.is_ready().await);

    // Back again: the next call reconnects by itself.
    proxy.come_back().await;
    assert!(publisher.is_ready().await);
    let after = batch(&prefix, 5);
    assert_all_ok(&publisher.publish(&after).await);
    assert_all_ok(&publisher.publish(&during).await);

    let received = by_id(listener.take(15).await);
    for message in before.iter().chain(&during).chain(&after) {
        assert!(received.contains_key(&message.id.to_string()));
    }
    assert_eq!(proxy.accepted(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_that_never_answers_times_out_as_transient() {
    let proxy = Proxy::start(amqp_addr()).await;
    proxy.stall(true);
    let publisher = publisher(amqp_url_via(proxy.addr()));

    // The connection opens but the handshake never ends.
    let started = Instant::now();
    assert!(!publisher.is_ready().await);
    assert_all_transient(&publisher.publish(&batch(&unique_prefix(), 2)).await);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "connect timeout not applied: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_confirms_time_out_as_transient_and_the_next_batch_reconnects() {
    let prefix = unique_prefix();
    let mut listener = Listener::bind(&prefix).await;
    let proxy = Proxy::start(amqp_addr()).await;
    let mut settings = AmqpSettings::new(amqp_url_via(proxy.addr()));
    settings.confirm_timeout = Duration::from_secs(1);
    let publisher = AmqpPublisher::new(settings).expect("valid settings");
    assert!(publisher.is_ready().await);

    proxy.stall(true);
    let started = Instant::now();
    let stalled = batch(&prefix, 3);
    let results = publisher.publish(&stalled).await;
    assert_all_transient(&results);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    proxy.stall(false);
    let next = batch(&prefix, 3);
    assert_all_ok(&publisher.publish(&next).await);
    assert_eq!(
        proxy.accepted(),
        2,
        "a timed-out connection must be replaced"
    );
    // The stalled bytes flow once the proxy resumes, so those may arrive too.
    let mut expected: BTreeSet<String> = next.iter().map(|m| m.id.to_string()).collect();
    while !expected.is_empty() {
        for delivery in listener.take(1).await {
            let id = delivery.properties.message_id().clone().expect("id");
            expected.remove(id.as_str());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_exchange_is_reported_clearly() {
    let mut settings = AmqpSettings::new(amqp_url());
    settings.exchange = format!("w2f-test-missing-{}", uuid::Uuid::new_v4().simple());
    let publisher = AmqpPublisher::new(settings).expect("valid settings");

    assert!(!publisher.is_ready().await);
    let results = publisher.publish(&batch(&unique_prefix(), 1)).await;
    assert!(
        matches!(&results[0], Err(PublishError::Transient(reason)) if reason.contains("does not exist")),
        "{:?}",
        results[0]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn logs_never_show_the_url_password() {
    let (logs, _guard) = Captured::start();
    let proxy = Proxy::start(amqp_addr()).await;
    let url = amqp_url_via(proxy.addr()).replacen("guest:guest@", "guest:pa55-w0rd@", 1);
    assert!(url.contains("pa55-w0rd"), "test url has no password: {url}");
    let publisher = publisher(url);
    proxy.go_down();

    assert_all_transient(&publisher.publish(&batch(&unique_prefix(), 1)).await);
    assert!(!publisher.is_ready().await);
    let shown = format!("{publisher:?}");
    proxy.come_back().await;
    // Now the broker refuses the password.
    assert_all_transient(&publisher.publish(&batch(&unique_prefix(), 1)).await);

    let text = logs.text();
    assert!(text.contains("cannot reach the broker"), "{text}");
    assert!(!text.contains("pa55-w0rd"), "{text}");
    assert!(!shown.contains("pa55-w0rd"), "{shown}");
}

#[tokio::test]
async fn file_sink_appends_one_dump_line_per_message() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("messages.jsonl");
    let sink = FilePublisher::new(&path);
    assert!(sink.is_ready().await);

    let first = batch("org.example", 2);
    let second = batch("org.example", 3);
    assert_all_ok(&sink.publish(&first).await);
    assert_all_ok(&sink.publish(&second).await);

    let text = std::fs::read_to_string(&path).expect("sink file");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(text.ends_with('\n'));
    for (line, message) in lines.iter().zip(first.iter().chain(&second)) {
        assert_dump_line(line, message);
    }
}

fn assert_dump_line(line: &str, message: &Outgoing) {
    let dumped: Value = serde_json::from_str(line).expect("each line is JSON");
    let keys: Vec<&str> = dumped
        .as_object()
        .expect("a line is an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["body", "headers", "id", "priority", "queue", "topic"]
    );
    assert_eq!(dumped["id"], message.id.to_string());
    assert_eq!(dumped["topic"], message.routing_key);
    assert_eq!(dumped["queue"], Value::Null);
    assert_eq!(dumped["priority"], 0);
    let body: Value = serde_json::from_str(&message.body).expect("test bodies are JSON");
    assert_eq!(dumped["body"], body);
    assert_eq!(dumped["headers"]["fedora_messaging_severity"], 20);
    assert_eq!(dumped["headers"]["fedora_messaging_user_alice"], true);
    assert_eq!(dumped["headers"]["sent-at"], "2024-05-01T12:00:00+00:00");
    assert_eq!(
        dumped["headers"].as_object().expect("headers object").len(),
        message.headers.len()
    );
}

#[tokio::test]
async fn file_sink_that_cannot_open_its_file_is_not_ready_and_transient() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let sink = FilePublisher::new(dir.path().join("missing-dir").join("messages.jsonl"));
    assert!(!sink.is_ready().await);
    assert_all_transient(&sink.publish(&batch("org.example", 2)).await);
}

#[tokio::test]
async fn file_sink_refuses_a_body_that_is_not_json_and_writes_the_rest() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("messages.jsonl");
    let mut messages = batch("org.example", 3);
    messages[1].body = "not json".into();

    let results = FilePublisher::new(&path).publish(&messages).await;
    assert_eq!(results[0], Ok(()));
    assert!(matches!(results[1], Err(PublishError::Permanent(_))));
    assert_eq!(results[2], Ok(()));
    let text = std::fs::read_to_string(&path).expect("sink file");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_dump_line(lines[0], &messages[0]);
    assert_dump_line(lines[1], &messages[2]);
}
