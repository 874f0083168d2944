//! The whole path to the real RabbitMQ: every fixture read by the Python
//! fedora-messaging consumer, the topic prefix, and outages of the broker.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use lapin::types::AMQPValue;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use webhook2fedmsg_core::recording::Recording;

use crate::server::{
    Options, TestServer, all_fixtures, fixtures, post, set_header, signed_fixture,
};
use crate::support::broker::{Listener, amqp_addr, amqp_url, amqp_url_via, unique_prefix};
use crate::support::proxy::Proxy;

fn python() -> PathBuf {
    match std::env::var_os("W2F_TEST_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"),
    }
}

fn broker_options(prefix: &str) -> Options {
    Options {
        amqp_url: Some(amqp_url()),
        topic_prefix: prefix.to_string(),
        ..Options::default()
    }
}

/// Starts `consume.py` and waits until its queue is bound; returns the
/// process and a task that collects the report it prints.
async fn python_consumer(
    prefix: &str,
    count: usize,
) -> (tokio::process::Child, tokio::task::JoinHandle<String>) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/python/consume.py");
    let python = python();
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup to create the virtualenv",
        python.display()
    );
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .arg(amqp_url())
        .arg(prefix)
        .arg(count.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the Python consumer starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the consumer binds within 30 s")
        .expect("read stdout");
    assert_eq!(first.as_deref(), Some("ready"));
    // Keep reading its report in the background.
    let report = tokio::spawn(async move {
        let mut text = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    (child, report)
}

#[tokio::test]
async fn every_fixture_is_published_and_read_by_the_python_consumer() {
    let prefix = unique_prefix();
    let server = TestServer::start(broker_options(&prefix)).await;
    let mut listener = Listener::bind(&prefix).await;

    // One token per service; send every fixture and keep the published ids.
    let mut urls = std::collections::HashMap::new();
    for service in [
        "github",
        "gitlab",
        "forgejo",
        "gitea",
        "discourse",
        "pretix",
    ] {
        urls.insert(
            service,
            server
                .token("user-a", service, Some("fixture-secret"))
                .await,
        );
    }
    let mut expected = Vec::new();
    let mut skipped = 0;
    let mut to_send = Vec::new();
    for path in all_fixtures() {
        let service = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        to_send.push((service, path));
    }
    let published_count = {
        // Count first, so that the consumer knows how many to wait for.
        let mut count = 0;
        for (service, path) in &to_send {
            let delivery = signed_fixture(path, "fixture-secret").to_delivery();
            let kind: webhook2fedmsg_core::Kind = service.parse().unwrap();
            let context = webhook2fedmsg_core::Context {
                instance_url: Some("https://pretix.example.org".into()),
            };
            if kind
                .service()
                .decode(&delivery, &context)
                .unwrap()
                .skip()
                .is_none()
            {
                count += 1;
            }
        }
        count
    };
    let (mut consumer, report) = python_consumer(&prefix, published_count).await;

    for (service, path) in &to_send {
        let (_, secret, url) = &urls[service.as_str()];
        let (status, body) = post(url, &signed_fixture(path, secret)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{}: {body}", path.display());
        match body["message_id"].as_str() {
            Some(id) => expected.push((id.to_string(), service.clone())),
            None => skipped += 1,
        }
    }
    assert_eq!(expected.len(), published_count);
    assert!(
        skipped >= 3,
        "the pings and the private push are not published"
    );

    let deliveries = listener.take(expected.len()).await;
    let mut seen: Vec<String> = deliveries
        .iter()
        .map(|d| d.properties.message_id().as_ref().unwrap().to_string())
        .collect();
    seen.sort();
    let mut ids: Vec<String> = expected.iter().map(|(id, _)| id.clone()).collect();
    ids.sort();
    assert_eq!(seen, ids, "every accepted message arrives once");
    for delivery in &deliveries {
        let properties = &delivery.properties;
        assert_eq!(
            properties.content_type().as_ref().unwrap().as_str(),
            "application/json"
        );
        assert_eq!(
            properties.content_encoding().as_ref().unwrap().as_str(),
            "utf-8"
        );
        assert_eq!(*properties.delivery_mode(), Some(2));
        let headers = properties.headers().as_ref().unwrap();
        let schema = headers.inner().get("fedora_messaging_schema").unwrap();
        assert!(matches!(schema, AMQPValue::LongString(_)), "{schema:?}");
        let key = delivery.routing_key.as_str();
        assert!(
            key.starts_with(&format!("{prefix}.")) && !key.contains(".."),
            "{key}"
        );
        let body: Value = serde_json::from_slice(&delivery.data).unwrap();
        assert!(body.is_object());
    }

    let status = tokio::time::timeout(Duration::from_secs(90), consumer.wait())
        .await
        .expect("the consumer finishes")
        .expect("the consumer ran");
    let report = report.await.unwrap();
    assert!(
        status.success(),
        "the Python consumer found problems:\n{report}"
    );
    server.stop().await;
}

#[tokio::test]
async fn topic_prefix_is_applied_exactly_once() {
    let base = unique_prefix();
    let mut listener = Listener::bind(&base).await;
    for (prefix, expected) in [
        (base.clone(), format!("{base}.github.push")),
        (format!("{base}."), format!("{base}.github.push")),
    ] {
        let server = TestServer::start(broker_options(&prefix)).await;
        let (_, secret, url) = server.token("user-a", "github", None).await;
        let push = signed_fixture(&fixtures().join("github/push.new-branch.json"), &secret);
        assert_eq!(post(&url, &push).await.0, StatusCode::ACCEPTED);
        let delivery = listener.take(1).await.remove(0);
        assert_eq!(delivery.routing_key.as_str(), expected);
        server.stop().await;
    }
}

#[tokio::test]
async fn empty_prefix_gives_the_bare_topic() {
    // A queue bound to the bare topic sees everybody's github.push, so look
    // for our own message id among them.
    let listener_prefix = "github";
    let mut listener = Listener::bind(listener_prefix).await;
    let server = TestServer::start(broker_options("")).await;
    let (_, secret, url) = server.token("user-a", "github", None).await;
    let push = signed_fixture(&fixtures().join("github/push.new-branch.json"), &secret);
    let (_, body) = post(&url, &push).await;
    let id = body["message_id"].as_str().unwrap().to_string();
    loop {
        let delivery = listener.take(1).await.remove(0);
        if delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.to_string())
            == Some(id.clone())
        {
            assert_eq!(delivery.routing_key.as_str(), "github.push");
            break;
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn broker_outage_is_answered_202_and_published_once_it_returns() {
    let prefix = unique_prefix();
    let proxy = Proxy::start(amqp_addr()).await;
    let mut listener = Listener::bind(&prefix).await;
    let options = Options {
        amqp_url: Some(amqp_url_via(proxy.addr())),
        topic_prefix: prefix.clone(),
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let (_, secret, url) = server.token("user-a", "github", None).await;

    // A first message goes through the proxy, opening the connection.
    let first = public_push(&secret);
    assert_eq!(post(&url, &first).await.0, StatusCode::ACCEPTED);
    listener.take(1).await;
    server.drained().await;

    proxy.go_down();
    let push = signed_fixture(&fixtures().join("github/push.new-branch.json"), &secret);
    let (status, body) = post(&url, &push).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "stored while the broker is away"
    );
    let id = body["message_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(server.app.store.outbox_depth().await.unwrap(), 1);
    let ready = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["broker"], false);
    assert_quiet(&mut listener, Duration::from_millis(500)).await;

    proxy.come_back().await;
    let delivery = listener.take(1).await.remove(0);
    assert_eq!(
        delivery.properties.message_id().as_ref().unwrap().as_str(),
        id
    );
    server.drained().await;
    assert_quiet(&mut listener, Duration::from_secs(1)).await;
    let ready = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn message_accepted_while_broker_is_away_survives_a_server_restart() {
    let prefix = unique_prefix();
    let proxy = Proxy::start(amqp_addr()).await;
    proxy.go_down();
    let mut listener = Listener::bind(&prefix).await;
    let options = Options {
        amqp_url: Some(amqp_url_via(proxy.addr())),
        topic_prefix: prefix.clone(),
        ..Options::default()
    };
    let server = TestServer::start(options.clone()).await;
    let (_, secret, url) = server.token("user-a", "github", None).await;
    let push = signed_fixture(&fixtures().join("github/push.new-branch.json"), &secret);
    let (status, body) = post(&url, &push).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = body["message_id"].as_str().unwrap().to_string();
    let dir = server.dir.clone();
    server.stop().await;

    proxy.come_back().await;
    let restarted = TestServer::start_in(dir, options).await;
    let delivery = listener.take(1).await.remove(0);
    assert_eq!(
        delivery.properties.message_id().as_ref().unwrap().as_str(),
        id
    );
    let sent_at = delivery
        .properties
        .headers()
        .as_ref()
        .unwrap()
        .inner()
        .get("sent-at")
        .cloned();
    assert!(sent_at.is_some());
    restarted.drained().await;
    restarted.stop().await;
}

#[tokio::test]
async fn publishing_recovers_after_the_connection_is_cut_without_a_restart() {
    let prefix = unique_prefix();
    let proxy = Proxy::start(amqp_addr()).await;
    let mut listener = Listener::bind(&prefix).await;
    let options = Options {
        amqp_url: Some(amqp_url_via(proxy.addr())),
        topic_prefix: prefix.clone(),
        ..Options::default()
    };
    let server = TestServer::start(options).await;
    let (_, secret, url) = server.token("user-a", "github", None).await;
    let first = public_push(&secret);
    assert_eq!(post(&url, &first).await.0, StatusCode::ACCEPTED);
    listener.take(1).await;
    server.drained().await;

    // Cut every connection and let the broker come straight back.
    proxy.go_down();
    proxy.come_back().await;
    let push = signed_fixture(&fixtures().join("github/push.new-branch.json"), &secret);
    let (_, body) = post(&url, &push).await;
    let id = body["message_id"].as_str().unwrap().to_string();
    let delivery = listener.take(1).await.remove(0);
    assert_eq!(
        delivery.properties.message_id().as_ref().unwrap().as_str(),
        id
    );
    server.stop().await;
}

/// `push.tag.json` is a private repository's push: made public, so that it
/// is published, with its own delivery id, and signed with `secret`.
fn public_push(secret: &str) -> Recording {
    let text = std::fs::read_to_string(fixtures().join("github/push.tag.json")).unwrap();
    let mut recording = Recording::from_json(&text).unwrap();
    let mut body: Value = serde_json::from_slice(&recording.body).unwrap();
    body["repository"]["private"] = Value::Bool(false);
    recording.body = serde_json::to_vec(&body).unwrap();
    set_header(
        &mut recording,
        "X-GitHub-Delivery",
        &uuid::Uuid::new_v4().to_string(),
    );
    recording.sign(secret);
    recording
}

/// Fails if a message arrives within `wait`.
async fn assert_quiet(listener: &mut Listener, wait: Duration) {
    if let Ok(unexpected) = tokio::time::timeout(wait, listener.take(1)).await {
        panic!("unexpected message: {:?}", unexpected[0].routing_key);
    }
}
