//! The webhook endpoints over real HTTP, on SQLite with the file sink:
//! statuses, token lifecycle, dedupe, limits, and what never leaks.

use std::time::Duration;

use futures_util::StreamExt as _;

use reqwest::StatusCode;
use serde_json::{Value, json};
use webhook2fedmsg_core::recording::Recording;

use crate::server::{Options, TestServer, fixtures, post, set_header, signed_fixture};
use crate::support::logs::Captured;

fn push() -> std::path::PathBuf {
    fixtures().join("github/push.new-branch.json")
}

#[tokio::test]
async fn accepted_push_is_published_once_with_the_returned_id() {
    let server = TestServer::start(Options::default()).await;
    let (_, secret, url) = server.token("user-a", "github", None).await;

    let (status, body) = post(&url, &signed_fixture(&push(), &secret)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["message_id"]
        .as_str()
        .expect("a message id")
        .to_string();
    server.drained().await;

    let lines = server.sink_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["id"], json!(id));
    assert_eq!(lines[0]["topic"], "github.push");
    assert_eq!(lines[0]["body"]["body"]["ref"], "refs/heads/master");
    server.stop().await;
}

#[tokio::test]
async fn redelivery_and_replay_get_the_first_message_id_and_publish_nothing() {
    let server = TestServer::start(Options::default()).await;
    let (_, secret, url) = server.token("user-a", "github", None).await;
    let recording = signed_fixture(&push(), &secret);

    let (_, first) = post(&url, &recording).await;
    let (status, again) = post(&url, &recording).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["message_id"], first["message_id"]);

    // The same body under a new delivery id is a replay.
    let mut replay = recording.clone();
    set_header(
        &mut replay,
        "X-GitHub-Delivery",
        "00000000-0000-4000-8000-000000000001",
    );
    let (status, replayed) = post(&url, &replay).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(replayed["message_id"], first["message_id"]);

    server.drained().await;
    assert_eq!(server.sink_lines().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn the_same_delivery_on_two_tokens_is_published_for_each() {
    let server = TestServer::start(Options::default()).await;
    let (_, secret, url_a) = server
        .token("user-a", "github", Some("shared-secret"))
        .await;
    let (_, _, url_b) = server
        .token("user-b", "github", Some("shared-secret"))
        .await;
    let recording = signed_fixture(&push(), &secret);
    assert_eq!(post(&url_a, &recording).await.0, StatusCode::ACCEPTED);
    assert_eq!(post(&url_b, &recording).await.0, StatusCode::ACCEPTED);
    server.drained().await;
    assert_eq!(server.sink_lines().len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn ping_is_acknowledged_with_a_reason_and_not_published() {
    let server = TestServer::start(Options::default()).await;
    let (token, secret, url) = server.token("user-a", "github", None).await;
    let ping = signed_fixture(&fixtures().join("github/ping.organization.json"), &secret);

    let (status, body) = post(&url, &ping).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["message_id"], Value::Null);
    assert!(body["reason"].as_str().unwrap().contains("ping"), "{body}");

    let stored = server.app.store.token(&token.id).await.unwrap().unwrap();
    assert!(
        stored.last_used_at.is_some(),
        "the token records that its hook was reached"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.sink_lines().is_empty());
    server.stop().await;
}

/// Another push than [`push`], signed with `secret`, with the delivery
/// id `delivery`.
fn tag_push(secret: &str, delivery: &str) -> Recording {
    let mut recording = signed_fixture(&fixtures().join("github/push.tag.json"), secret);
    set_header(&mut recording, "X-GitHub-Delivery", delivery);
    recording
}

#[tokio::test]
async fn disabled_token_is_refused_with_403_and_enabled_again_works() {
    let server = TestServer::start(Options::default()).await;
    let (token, secret, url) = server.token("user-a", "github", None).await;
    // Used first, so that the server has read (and may hold) the token as
    // enabled.
    let tag = tag_push(&secret, "00000000-0000-4000-8000-000000000003");
    assert_eq!(post(&url, &tag).await.0, StatusCode::ACCEPTED);
    server
        .app
        .store
        .set_token_enabled(&token.id, false)
        .await
        .unwrap();

    let (status, body) = post(&url, &signed_fixture(&push(), &secret)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "token_disabled");

    server
        .app
        .store
        .set_token_enabled(&token.id, true)
        .await
        .unwrap();
    assert_eq!(
        post(&url, &signed_fixture(&push(), &secret)).await.0,
        StatusCode::ACCEPTED
    );
    server.stop().await;
}

#[tokio::test]
async fn removed_token_is_unknown_but_its_accepted_message_is_still_published() {
    let server = TestServer::start(Options::default()).await;
    let (token, secret, url) = server.token("user-a", "github", None).await;
    let (status, _) = post(&url, &signed_fixture(&push(), &secret)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    server.app.store.remove_token(&token.id).await.unwrap();

    let (status, body) = post(&url, &signed_fixture(&push(), &secret)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    server.drained().await;
    assert_eq!(server.sink_lines().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn rotated_secret_stops_verifying_at_once_without_grace() {
    let server = TestServer::start(Options::default()).await;
    let (token, old, url) = server.token("user-a", "github", None).await;
    // Used first, so that the server has read (and may hold) the secret.
    let tag = tag_push(&old, "00000000-0000-4000-8000-000000000003");
    assert_eq!(post(&url, &tag).await.0, StatusCode::ACCEPTED);
    let new = server
        .app
        .store
        .rotate_secret(&server.app.secrets, &token.id, None, 0)
        .await
        .unwrap();

    let (status, body) = post(&url, &signed_fixture(&push(), &old)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        post(&url, &signed_fixture(&push(), &new)).await.0,
        StatusCode::ACCEPTED
    );
    server.stop().await;
}

#[tokio::test]
async fn rotated_secret_keeps_verifying_during_the_grace_period() {
    let server = TestServer::start(Options::default()).await;
    let (token, old, url) = server.token("user-a", "github", None).await;
    let new = server
        .app
        .store
        .rotate_secret(&server.app.secrets, &token.id, None, 60_000)
        .await
        .unwrap();
    assert_ne!(old, new);
    let recording = signed_fixture(&push(), &old);
    assert_eq!(post(&url, &recording).await.0, StatusCode::ACCEPTED);
    let other = tag_push(&new, "00000000-0000-4000-8000-000000000002");
    assert_eq!(post(&url, &other).await.0, StatusCode::ACCEPTED);
    server.stop().await;
}

#[tokio::test]
async fn unknown_service_and_hook_and_extra_segments_are_404_json() {
    let server = TestServer::start(Options::default()).await;
    let (_, secret, url) = server.token("user-a", "github", None).await;
    let recording = signed_fixture(&push(), &secret);
    for path in [
        "/bitbucket/abc",
        "/github/0123456789abcdef0123456789abcdef",
        "/github/a/b",
    ] {
        let (status, body) = post(&format!("{}{path}", server.base), &recording).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"], "not_found", "{path}");
    }
    // One changed character is another, unknown hook.
    let mut altered = url.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == '0' { '1' } else { '0' });
    assert_eq!(post(&altered, &recording).await.0, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn trailing_slash_is_answered_not_redirected() {
    let server = TestServer::start(Options::default()).await;
    let (_, secret, url) = server.token("user-a", "github", None).await;
    let (status, _) = post(&format!("{url}/"), &signed_fixture(&push(), &secret)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    server.stop().await;
}

#[tokio::test]
async fn service_endpoint_finds_the_token_whose_secret_verifies() {
    let server = TestServer::start(Options::default()).await;
    server.token("user-a", "github", Some("first-secret")).await;
    server
        .token("user-b", "github", Some("second-secret"))
        .await;
    let endpoint = format!("{}/github", server.base);

    let (status, body) = post(&endpoint, &signed_fixture(&push(), "second-secret")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = post(&endpoint, &signed_fixture(&push(), "third-secret")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_signature");
    server.stop().await;
}

#[tokio::test]
async fn pretix_needs_its_full_hook_url() {
    let server = TestServer::start(Options::default()).await;
    let (_, _, url) = server.token("user-a", "pretix", None).await;
    let checkin = signed_fixture(&fixtures().join("pretix/checkin.entry.json"), "unused");

    let (status, body) = post(&url, &checkin).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = post(&format!("{}/pretix", server.base), &checkin).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "hook_url_required");

    server.drained().await;
    let line = &server.sink_lines()[0];
    assert_eq!(
        line["body"]["body"]["instance_url"],
        "https://pretix.example.org"
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_signatures_and_bodies_get_4xx_json_and_nothing_is_published() {
    let server = TestServer::start(Options::default()).await;
    let (_, secret, url) = server.token("user-a", "github", None).await;
    let good = signed_fixture(&push(), &secret);

    let mut wrong = good.clone();
    set_header(&mut wrong, "X-Hub-Signature-256", "sha256=abc");
    let mut missing = good.clone();
    missing
        .headers
        .retain(|(n, _)| !n.to_ascii_lowercase().starts_with("x-hub-signature"));
    let mut text = good.clone();
    set_header(&mut text, "Content-Type", "text/plain");
    let mut array_signed = Recording {
        headers: std::fs::read_to_string(push())
            .map(|t| Recording::from_json(&t).unwrap().headers)
            .unwrap(),
        body: b"[1,2]".to_vec(),
    };
    array_signed.sign(&secret);

    let cases = [
        (wrong, StatusCode::UNAUTHORIZED, "invalid_signature"),
        (missing, StatusCode::UNAUTHORIZED, "invalid_signature"),
        (
            text,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_type",
        ),
        (array_signed, StatusCode::BAD_REQUEST, "invalid_payload"),
    ];
    for (recording, expected, code) in cases {
        let (status, body) = post(&url, &recording).await;
        assert_eq!(status, expected, "{body}");
        assert_eq!(body["error"], code, "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.sink_lines().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn announced_oversized_body_gets_413_before_it_is_read() {
    let server = TestServer::start(Options {
        max_body_bytes: Some(64 * 1024),
        ..Options::default()
    })
    .await;
    let (_, _, url) = server.token("user-a", "github", None).await;
    // 30 MB, announced honestly; the server must answer without reading it.
    let body = vec![b' '; 30 * 1024 * 1024];
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-hub-signature-256", UNCHECKED_SIGNATURE)
        .body(body)
        .send()
        .await;
    match response {
        Ok(response) => {
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "payload_too_large");
        }
        // The server may close the connection while the client still
        // writes; what matters is that it did not take the body.
        Err(error) => assert!(error.is_request() || error.is_body(), "{error}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn chunked_body_growing_past_the_limit_gets_413() {
    let server = TestServer::start(Options {
        max_body_bytes: Some(64 * 1024),
        ..Options::default()
    })
    .await;
    let (_, _, url) = server.token("user-a", "github", None).await;
    let chunks = (0..100).map(|_| Ok::<_, std::io::Error>(vec![b' '; 4096]));
    let stream = futures_util::stream::iter(chunks);
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", UNCHECKED_SIGNATURE)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    server.stop().await;
}

/// A well-formed `X-Hub-Signature-256` that matches no secret: it passes
/// the checks made before the body is read, and fails once it is.
const UNCHECKED_SIGNATURE: &str =
    "sha256=0000000000000000000000000000000000000000000000000000000000000000";

/// Sends the head of a POST announcing `length` bytes, with a well-formed
/// signature header, and `sent` of them, then returns the status line of
/// the answer (empty if none came within ten seconds).
async fn answer_to_a_partial_post(base: &str, path: &str, length: usize, sent: usize) -> String {
    let (answer, _stream) = partial_post(base, path, length, sent, Some(UNCHECKED_SIGNATURE)).await;
    answer.lines().next().unwrap_or_default().to_string()
}

/// Like [`answer_to_a_partial_post`], with the signature header given
/// (or none); returns the whole answer as far as it came, and the
/// connection, still open.
async fn partial_post(
    base: &str,
    path: &str,
    length: usize,
    sent: usize,
    signature: Option<&str>,
) -> (String, tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         x-github-event: push\r\ncontent-length: {length}\r\n"
    );
    if let Some(signature) = signature {
        head.push_str(&format!("x-hub-signature-256: {signature}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b' '; sent]).await.unwrap();
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer)).await;
    let n = read.map_or(0, |n| n.unwrap_or(0));
    (String::from_utf8_lossy(&answer[..n]).into_owned(), stream)
}

/// Starts a POST that announces `length` bytes and sends none of them,
/// without waiting for an answer: it holds room in the server's budget for
/// bodies until the connection is closed.
async fn stalled_post(base: &str, path: &str, length: usize) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt as _;

    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         x-github-event: push\r\nx-hub-signature-256: {UNCHECKED_SIGNATURE}\r\n\
         content-length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// A delivery without a signature header, or with a malformed one, or on
/// a disabled token, is refused before its body arrives: without a secret,
/// a sender cannot make the server read its uploads.
#[tokio::test]
async fn unsigned_deliveries_are_refused_before_their_body_arrives() {
    let server = TestServer::start(Options::default()).await;
    let (token, _, url) = server.token("user-a", "github", None).await;
    let path = url.trim_start_matches(&server.base).to_string();
    for (signature, status, code) in [
        (None, "401 Unauthorized", "invalid_signature"),
        (Some("sha256=abc"), "401 Unauthorized", "invalid_signature"),
        (Some("sha1=abc"), "401 Unauthorized", "invalid_signature"),
    ] {
        for path in [path.as_str(), "/github"] {
            let (answer, _) = partial_post(&server.base, path, 1 << 20, 0, signature).await;
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status}")),
                "{signature:?} {path}: {answer}"
            );
            assert!(answer.contains(code), "{signature:?} {path}: {answer}");
        }
    }
    let (answer, _) = partial_post(&server.base, "/pretix", 1 << 20, 0, None).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("hook_url_required"), "{answer}");

    server
        .app
        .store
        .set_token_enabled(&token.id, false)
        .await
        .unwrap();
    let (answer, _) =
        partial_post(&server.base, &path, 1 << 20, 0, Some(UNCHECKED_SIGNATURE)).await;
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden"), "{answer}");
    assert!(answer.contains("token_disabled"), "{answer}");
    server.stop().await;
}

/// Bodies in flight together are capped by `limits.max_inflight_body_bytes`:
/// past it, a delivery waits a little for room, then gets 503 with
/// `Retry-After` without its body being read; once room is given back,
/// deliveries are accepted again.
#[tokio::test]
async fn bodies_in_flight_past_the_budget_get_503_until_room_is_given_back() {
    let server = TestServer::start(Options {
        max_body_bytes: Some(1 << 20),
        max_inflight_body_bytes: Some(1 << 20),
        ..Options::default()
    })
    .await;
    let (_, secret, url) = server.token("user-a", "github", None).await;
    let path = url.trim_start_matches(&server.base).to_string();

    // A stalled upload that announced 700 KiB holds that much room.
    let stalled = stalled_post(&server.base, &path, 700 * 1024).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // (None of its body is sent: the server does not read it.)
    let (answer, _) = partial_post(
        &server.base,
        &path,
        400 * 1024,
        0,
        Some(UNCHECKED_SIGNATURE),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 5"),
        "{answer}"
    );
    assert!(answer.contains("\"busy\""), "{answer}");
    // A small delivery still fits beside the stalled one.
    let (status, _) = post(&url, &signed_fixture(&push(), &secret)).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // Closing the stalled upload gives its room back.
    drop(stalled);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (answer, _) = partial_post(
        &server.base,
        &path,
        900 * 1024,
        900 * 1024,
        Some(UNCHECKED_SIGNATURE),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 401"),
        "read and checked: {answer}"
    );
    assert_eq!(
        server.app.body_budget.available(),
        1 << 20,
        "all room is given back"
    );
    server.stop().await;
}

/// An unknown hook URL is refused before its body is read: a stranger's
/// upload costs the server nothing.
#[tokio::test]
async fn unknown_hook_is_refused_before_its_body_arrives() {
    let server = TestServer::start(Options::default()).await;
    let status =
        answer_to_a_partial_post(&server.base, "/github/0123456789abcdef", 1 << 20, 0).await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    server.stop().await;
}

/// Sends `recording` to `path` in two parts, running `between` after
/// the first half of the body; returns the status line and the body.
async fn post_in_two_parts<F: std::future::Future<Output = ()>>(
    base: &str,
    path: &str,
    recording: &Recording,
    between: F,
) -> (String, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut head = format!("POST {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n");
    for (name, value) in &recording.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", recording.body.len()));
    let (first, rest) = recording.body.split_at(recording.body.len() / 2);
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    // Long enough for the server to have looked the token up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    between.await;
    stream.write_all(rest).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.lines().next().unwrap_or_default().to_string();
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

/// A token disabled, rotated or removed while a delivery's body is still
/// arriving refuses that delivery too, and nothing is published.
#[tokio::test]
async fn token_changes_reach_deliveries_already_under_way() {
    let server = TestServer::start(Options::default()).await;
    let store = server.app.store.clone();
    let path_of = |url: &str| url.trim_start_matches(&server.base).to_string();

    let (token, secret, url) = server.token("user-a", "github", None).await;
    let (status, body) = post_in_two_parts(
        &server.base,
        &path_of(&url),
        &signed_fixture(&push(), &secret),
        async {
            store.set_token_enabled(&token.id, false).await.unwrap();
        },
    )
    .await;
    assert_eq!(status, "HTTP/1.1 403 Forbidden", "{body}");

    let (token, secret, url) = server.token("user-b", "github", None).await;
    let (status, body) = post_in_two_parts(
        &server.base,
        &path_of(&url),
        &signed_fixture(&push(), &secret),
        async {
            store
                .rotate_secret(&server.app.secrets, &token.id, None, 0)
                .await
                .unwrap();
        },
    )
    .await;
    assert_eq!(status, "HTTP/1.1 401 Unauthorized", "{body}");

    let (token, secret, url) = server.token("user-c", "github", None).await;
    let (status, body) = post_in_two_parts(
        &server.base,
        &path_of(&url),
        &signed_fixture(&push(), &secret),
        async {
            store.remove_token(&token.id).await.unwrap();
        },
    )
    .await;
    assert_eq!(status, "HTTP/1.1 404 Not Found", "{body}");
    assert!(body.contains("\"not_found\""), "{body}");

    server.drained().await;
    let published =
        std::fs::read_to_string(server.dir.path().join("messages.jsonl")).unwrap_or_default();
    assert_eq!(published, "", "nothing is published");
    server.stop().await;
}

/// A body that trickles in slower than the configured time gets 408.
#[tokio::test]
async fn body_that_does_not_arrive_in_time_gets_408() {
    let server = TestServer::start(Options {
        body_timeout_seconds: Some(1),
        ..Options::default()
    })
    .await;
    let (_, _, url) = server.token("user-a", "github", None).await;
    let path = url.trim_start_matches(&server.base).to_string();
    let status = answer_to_a_partial_post(&server.base, &path, 1 << 20, 100).await;
    assert_eq!(status, "HTTP/1.1 408 Request Timeout");
    server.stop().await;
}

/// A client that starts a request and never finishes its headers, or
/// keeps a connection open and silent, is disconnected after the header
/// deadline instead of holding the socket.
#[tokio::test]
async fn headers_that_do_not_arrive_in_time_close_the_connection() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let server = TestServer::start(Options {
        header_timeout_seconds: Some(1),
        ..Options::default()
    })
    .await;
    let address = server.base.trim_start_matches("http://").to_string();
    let mut partial = tokio::net::TcpStream::connect(&address).await.unwrap();
    partial
        .write_all(b"POST /github HTTP/1.1\r\nHost: localhost\r\nX-GitHub-Event: pu")
        .await
        .unwrap();
    let mut silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    for stream in [&mut partial, &mut silent] {
        let mut buffer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut buffer))
            .await
            .expect("the server closes the connection");
        // Closed, with nothing or an error status; never a request served.
        assert!(
            read.is_err() || !String::from_utf8_lossy(&buffer).contains(" 2"),
            "{read:?} {}",
            String::from_utf8_lossy(&buffer)
        );
    }
    // The server still answers.
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    server.stop().await;
}

/// The pages' forms are read before the session is checked: a stranger
/// trickling one gets 408 instead of holding the connection.
#[tokio::test]
async fn form_bodies_that_do_not_arrive_in_time_get_408() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let server = TestServer::start(Options::default()).await;
    let address = server.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /logout HTTP/1.1\r\nhost: {address}\r\n\
         content-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\nc"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 1024];
    let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut answer))
        .await
        .expect("an answer before the client gives up")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    server.stop().await;
}

/// Past `limits.max_connections` open connections, a new one is served
/// only once another closes.
#[tokio::test]
async fn connections_past_the_cap_wait_for_one_to_close() {
    let server = TestServer::start(Options {
        max_connections: Some(2),
        ..Options::default()
    })
    .await;
    let address = server.base.trim_start_matches("http://").to_string();
    let first = tokio::net::TcpStream::connect(&address).await.unwrap();
    let _second = tokio::net::TcpStream::connect(&address).await.unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = format!("{}/healthz", server.base);
    let waiting = tokio::time::timeout(Duration::from_secs(2), client.get(&url).send()).await;
    assert!(
        waiting.is_err(),
        "a third connection was served: {waiting:?}"
    );
    drop(first);
    let served = tokio::time::timeout(Duration::from_secs(20), client.get(&url).send())
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn body_just_under_the_limit_is_accepted() {
    let limit = 64 * 1024;
    let server = TestServer::start(Options {
        max_body_bytes: Some(limit),
        ..Options::default()
    })
    .await;
    let (_, secret, url) = server.token("user-a", "github", None).await;
    let text = std::fs::read_to_string(push()).unwrap();
    let mut recording = Recording::from_json(&text).unwrap();
    // Pad the JSON with whitespace up to one byte under the limit.
    let padding = limit as usize - 1 - recording.body.len();
    recording
        .body
        .splice(1..1, std::iter::repeat_n(b' ', padding));
    recording.sign(&secret);
    let (status, body) = post(&url, &recording).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn webhook_endpoints_send_no_cors_headers_and_get_is_405() {
    let server = TestServer::start(Options::default()).await;
    let (_, _, url) = server.token("user-a", "github", None).await;
    let client = reqwest::Client::new();
    let preflight = client
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://evil.example.org")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let get = client.get(&url).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.headers()["allow"], "POST");
    let body: Value = get.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");
    server.stop().await;
}

/// Every 405 says in `Allow` what the path answers (RFC 9110), on pages,
/// the API and the probes alike.
#[tokio::test]
async fn method_not_allowed_lists_the_allowed_methods() {
    let server = TestServer::start(Options::default()).await;
    let client = reqwest::Client::new();
    for (method, path, allow) in [
        ("TRACE", "/api/v1/me", "GET"),
        ("PUT", "/api/v1/tokens", "GET, POST"),
        ("POST", "/api/v1/tokens/x", "GET, PATCH, DELETE"),
        ("PUT", "/", "GET"),
        ("DELETE", "/tokens", "GET, POST"),
        ("POST", "/healthz", "GET"),
        ("PUT", "/gitlab", "POST"),
        ("GET", "/github/0123abcd/", "POST"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let url = format!("{}{path}", server.base);
        let response = client.request(method.clone(), &url).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
    }
    // A path the server does not have is 404, whatever the method.
    for path in [
        "/favicon.ico",
        "/robots.txt",
        "/a/b/c",
        "/tokens/x",
        "/github/a/b",
    ] {
        let response = client
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "GET {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "not_found", "GET {path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn responses_and_logs_never_show_secrets_or_hook_ids() {
    let (logs, _guard) = Captured::start();
    let server = TestServer::start(Options::default()).await;
    let (token, secret, url) = server.token("user-a", "github", None).await;
    let (gitlab, gitlab_secret, gitlab_url) = server.token("user-a", "gitlab", None).await;

    let mut bodies = Vec::new();
    bodies.push(post(&url, &signed_fixture(&push(), &secret)).await.1);
    bodies.push(post(&url, &signed_fixture(&push(), "wrong-secret")).await.1);
    let gitlab_push = signed_fixture(&fixtures().join("gitlab/push.json"), &gitlab_secret);
    bodies.push(post(&gitlab_url, &gitlab_push).await.1);
    server.drained().await;

    let published = std::fs::read_to_string(server.dir.path().join("messages.jsonl")).unwrap();
    let logged = logs.text();
    assert!(
        logged.contains("webhook accepted") && logged.contains("webhook rejected"),
        "{logged}"
    );
    assert!(logged.contains(&token.id), "log lines name the token id");
    for text in bodies
        .iter()
        .map(Value::to_string)
        .chain([published, logged])
    {
        for secret in [&secret, &gitlab_secret, &token.hook_id, &gitlab.hook_id] {
            assert!(!text.contains(secret.as_str()), "leaked {secret} in {text}");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn thousand_hook_ids_are_unique_and_carry_128_bits() {
    let server = TestServer::start(Options::default()).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let (token, _, _) = server.token("user-a", "pretix", None).await;
        assert_eq!(token.hook_id.len(), 32);
        assert!(token.hook_id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(seen.insert(token.hook_id));
    }
    server.stop().await;
}

#[tokio::test]
async fn health_ready_and_metrics_answer() {
    let server = TestServer::start(Options::default()).await;
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready: Value = client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready, json!({"database": true, "broker": true}));

    let (_, secret, url) = server.token("user-a", "github", None).await;
    post(&url, &signed_fixture(&push(), &secret)).await;
    post(&url, &signed_fixture(&push(), "wrong")).await;
    // Refused before the body is read: counted all the same.
    let unknown = format!("{}/github/{}", server.base, "0".repeat(32));
    post(&unknown, &signed_fixture(&push(), &secret)).await;
    let path = url.trim_start_matches(&server.base).to_string();
    let status = answer_to_a_partial_post(&server.base, &path, 30 << 20, 0).await;
    assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
    server.drained().await;
    let response = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let metrics = response.text().await.unwrap();
    for expected in [
        "webhook2fedmsg_webhooks_received_total{service=\"github\"} 4",
        "webhook2fedmsg_webhooks_rejected_total{service=\"github\",outcome=\"invalid_signature\"} 1",
        "webhook2fedmsg_webhooks_rejected_total{service=\"github\",outcome=\"not_found\"} 1",
        "webhook2fedmsg_webhooks_rejected_total{service=\"github\",outcome=\"payload_too_large\"} 1",
        "webhook2fedmsg_messages_published_total 1",
        "webhook2fedmsg_outbox_depth",
        "webhook2fedmsg_publish_latency_seconds_count 1",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in\n{metrics}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_the_request_in_flight() {
    let server = TestServer::start(Options::default()).await;
    let (_, secret, url) = server.token("user-a", "github", None).await;
    let recording = signed_fixture(&push(), &secret);

    // The body arrives in two halves, the second after shutdown began.
    let (first, second) = recording.body.split_at(recording.body.len() / 2);
    let (first, second) = (first.to_vec(), second.to_vec());
    let (send_rest, rest) = tokio::sync::oneshot::channel::<()>();
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(
        futures_util::stream::once(async move {
            let _ = rest.await;
            Ok(second)
        }),
    );
    let mut request = reqwest::Client::new()
        .post(&url)
        .body(reqwest::Body::wrap_stream(body));
    for (name, value) in &recording.headers {
        request = request.header(name, value);
    }
    let in_flight = tokio::spawn(request.send());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = send_rest.send(());
    let response = in_flight
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    stopping.await.unwrap();
}
