//! Agents from FASJSON, stood in for by a real HTTP server on loopback
//! that answers FASJSON's user search.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use warp::Filter as _;

use crate::server::{Options, TestServer, fixtures, post, signed_fixture};

/// A FASJSON stand-in: `/v1/search/users/?github_username=X` (or
/// `gitlab_username`) answers from `accounts`; it records every query.
struct Fasjson {
    url: String,
    queries: Arc<Mutex<Vec<String>>>,
}

impl Fasjson {
    async fn start(accounts: &[(&str, &[&str])], delay: Duration) -> Self {
        let accounts: HashMap<String, Vec<String>> = accounts
            .iter()
            .map(|(login, users)| {
                (
                    login.to_string(),
                    users.iter().map(|u| u.to_string()).collect(),
                )
            })
            .collect();
        let queries = Arc::new(Mutex::new(Vec::new()));
        let seen = queries.clone();
        let route = warp::path!("v1" / "search" / "users")
            .and(warp::query::<HashMap<String, String>>())
            .and_then(move |query: HashMap<String, String>| {
                let accounts = accounts.clone();
                let seen = seen.clone();
                async move {
                    tokio::time::sleep(delay).await;
                    let (field, login) = query.into_iter().next().unwrap_or_default();
                    seen.lock().unwrap().push(format!("{field}={login}"));
                    let users = accounts.get(&login).cloned().unwrap_or_default();
                    let result: Vec<Value> = users.iter().map(|u| json!({"username": u})).collect();
                    Ok::<_, Infallible>(warp::reply::json(&json!({"result": result, "page": {}})))
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(warp::serve(route).incoming(listener).run());
        Self { url, queries }
    }

    fn queries(&self) -> Vec<String> {
        self.queries.lock().unwrap().clone()
    }
}

async fn server_with(fasjson: Option<String>) -> TestServer {
    TestServer::start(Options {
        fasjson_url: fasjson,
        ..Options::default()
    })
    .await
}

/// Sends a fixture on a fresh token of its service; returns the message
/// as written to the file sink.
async fn publish(server: &TestServer, service: &str, fixture: &str) -> Value {
    let (_, secret, url) = server.token("user-a", service, None).await;
    let (status, body) = post(&url, &signed_fixture(&fixtures().join(fixture), &secret)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    server.drained().await;
    let id = body["message_id"].as_str().unwrap().to_string();
    server
        .sink_lines()
        .into_iter()
        .find(|line| line["id"] == json!(id))
        .expect("the message is published")
}

#[tokio::test]
async fn github_sender_linked_in_fas_becomes_the_agent_and_is_cached() {
    let fasjson = Fasjson::start(&[("Codertocat", &["coder"])], Duration::ZERO).await;
    let server = server_with(Some(fasjson.url.clone())).await;

    let message = publish(&server, "github", "github/push.new-branch.json").await;
    assert_eq!(message["body"]["agent"], "coder");
    assert_eq!(message["headers"]["fedora_messaging_user_coder"], true);
    let again = publish(&server, "github", "github/issues.opened.json").await;
    assert_eq!(again["body"]["agent"], "coder");
    assert_eq!(
        fasjson.queries(),
        ["github_username=Codertocat"],
        "the answer is cached"
    );
    server.stop().await;
}

#[tokio::test]
async fn gitlab_user_is_looked_up_by_gitlab_username() {
    let fasjson = Fasjson::start(&[("jsmith", &["fas-jsmith"])], Duration::ZERO).await;
    let server = server_with(Some(fasjson.url.clone())).await;
    let message = publish(&server, "gitlab", "gitlab/push.json").await;
    assert_eq!(fasjson.queries(), ["gitlab_username=jsmith"]);
    assert_eq!(message["body"]["agent"], "fas-jsmith");
    server.stop().await;
}

#[tokio::test]
async fn bots_and_forgejo_logins_are_never_looked_up() {
    let fasjson = Fasjson::start(
        &[("user-a", &["user-b"]), ("renovate[bot]", &["x"])],
        Duration::ZERO,
    )
    .await;
    let server = server_with(Some(fasjson.url.clone())).await;

    let bot = publish(
        &server,
        "github",
        "github/workflow_job.in_progress.bot-sender.json",
    )
    .await;
    assert_eq!(bot["body"]["agent"], Value::Null);
    // On an open forge anyone can register any name (CASES C-12).
    let forgejo = publish(&server, "forgejo", "forgejo/push.json").await;
    assert_eq!(forgejo["body"]["agent"], Value::Null);
    let users: Vec<&String> = forgejo["headers"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("fedora_messaging_user_"))
        .collect();
    assert!(users.is_empty(), "{users:?}");
    assert!(fasjson.queries().is_empty(), "{:?}", fasjson.queries());
    server.stop().await;
}

#[tokio::test]
async fn ambiguous_answer_leaves_the_agent_unknown() {
    let fasjson = Fasjson::start(&[("Codertocat", &["one", "two"])], Duration::ZERO).await;
    let server = server_with(Some(fasjson.url.clone())).await;
    let message = publish(&server, "github", "github/push.new-branch.json").await;
    assert_eq!(message["body"]["agent"], Value::Null);
    server.stop().await;
}

#[tokio::test]
async fn unreachable_or_slow_fasjson_never_fails_the_webhook() {
    // Nothing listens on a port just released.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let server = server_with(Some(closed)).await;
    let message = publish(&server, "github", "github/push.new-branch.json").await;
    assert_eq!(message["body"]["agent"], Value::Null);
    server.stop().await;

    let slow = Fasjson::start(&[("Codertocat", &["coder"])], Duration::from_secs(5)).await;
    let server = server_with(Some(slow.url.clone())).await;
    let started = Instant::now();
    let message = publish(&server, "github", "github/push.new-branch.json").await;
    assert_eq!(message["body"]["agent"], Value::Null);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the lookup timed out"
    );
    server.stop().await;
}
