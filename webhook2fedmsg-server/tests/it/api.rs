//! The JSON API under `/api/v1`: what it does with each credential, C-19
//! (another user's token) and C-21 (CORS, CSRF) on its routes, and the
//! OpenAPI document checked against the running server by schemathesis.

use std::path::PathBuf;
use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::server::{fixtures, post, signed_fixture};
use crate::site::{ADMIN_GROUP, Site, workspace};

struct Caller {
    client: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Caller {
    fn new(site: &Site, key: Option<String>) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: site.base.clone(),
            key,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        if status != StatusCode::NO_CONTENT {
            let kind = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_string();
            assert!(kind.starts_with("application/json"), "{path}: {kind}");
        }
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn tokens_are_made_read_changed_rotated_and_removed() {
    let site = Site::start().await;
    let alice = Caller::new(&site, Some(site.api_key("alice", &[]).await));

    let (status, made) = alice
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"service": "github", "name": "ci"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["token"]["id"].as_str().unwrap().to_string();
    let secret = made["secret"].as_str().unwrap().to_string();
    let url = made["token"]["hook_url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&site.url("/github/")));
    assert_eq!(made["token"]["owner"], "alice");
    assert_eq!(made["token"]["enabled"], true);

    let (status, got) = alice
        .call(Method::GET, &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["hook_url"], url.as_str());
    assert!(
        !got.to_string().contains(&secret),
        "no secret after creation"
    );
    let (_, list) = alice.call(Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    let path = format!("/api/v1/tokens/{id}");
    let (status, changed) = alice
        .call(
            Method::PATCH,
            &path,
            Some(json!({"name": "renamed", "enabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(changed["name"], "renamed");
    assert_eq!(changed["enabled"], false);
    alice
        .call(Method::PATCH, &path, Some(json!({"enabled": true})))
        .await;

    let recording = signed_fixture(&fixtures().join("github/push.organization.json"), &secret);
    assert_eq!(post(&url, &recording).await.0, StatusCode::ACCEPTED);
    let (status, deliveries) = alice
        .call(Method::GET, &format!("{path}/deliveries"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deliveries[0]["topic"], "github.push");
    assert!(deliveries[0]["message_id"].is_string());

    let (status, rotated) = alice
        .call(
            Method::POST,
            &format!("{path}/rotate"),
            Some(json!({"grace_seconds": 60})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_ne!(rotated["secret"], secret.as_str());
    let secrets = rotated["token"]["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 2, "the old secret is in its grace period");
    let (status, _) = alice
        .call(Method::POST, &format!("{path}/rotate"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "an empty body takes the defaults");

    let (status, _) = alice.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        alice.call(Method::GET, &path, None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn invalid_requests_get_json_errors() {
    let site = Site::start().await;
    let alice = Caller::new(&site, Some(site.api_key("alice", &[]).await));
    for body in [
        json!({"service": "bitbucket", "name": "x"}),
        json!({"service": "github", "name": ""}),
        json!({"service": "github", "name": "x", "secret": "short"}),
        json!({"service": "pretix", "name": "x", "secret": "0123456789abcdef"}),
        json!({"service": "pretix", "name": "x"}),
        json!({"service": "github", "name": "x", "owner": "bob"}),
        // serde would read a struct from its fields in order.
        json!(["github", "x"]),
    ] {
        let (status, error) = alice
            .call(Method::POST, "/api/v1/tokens", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error["error"], "bad_request", "{error}");
        assert!(error["message"].is_string());
    }
    let form = reqwest::Client::new()
        .post(site.url("/api/v1/tokens"))
        .bearer_auth(alice.key.as_ref().unwrap())
        .form(&[("service", "github"), ("name", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let error: Value = form.json().await.unwrap();
    assert_eq!(error["error"], "unsupported_media_type");

    // A header that is not text is the caller's mistake, never a 5xx.
    for path in [
        "/api/v1/me",
        "/api/v1/tokens",
        "/api/v1/tokens/x/deliveries",
    ] {
        let response = reqwest::Client::new()
            .get(site.url(path))
            .header(
                "authorization",
                reqwest::header::HeaderValue::from_bytes(b"Bearer \xc3\xa9").unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "invalid_credentials", "{path}");
    }

    let (status, error) = alice.call(Method::GET, "/api/v1/nothing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error"], "not_found");
}

/// C-19: bob and anonymous callers against alice's token.
#[tokio::test]
async fn another_users_token_is_not_found_and_anonymous_calls_are_refused() {
    let site = Site::start().await;
    let alice = Caller::new(&site, Some(site.api_key("alice", &[]).await));
    let bob = Caller::new(&site, Some(site.api_key("bob", &[]).await));
    let anonymous = Caller::new(&site, None);
    let (_, made) = alice
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"service": "github", "name": "a"})),
        )
        .await;
    let id = made["token"]["id"].as_str().unwrap().to_string();
    let secret = made["secret"].as_str().unwrap().to_string();
    let hook = made["token"]["hook_url"].as_str().unwrap().to_string();
    let before = site.app.store.token(&id).await.unwrap().unwrap();

    let path = format!("/api/v1/tokens/{id}");
    let calls = [
        (Method::GET, path.clone(), None),
        (Method::PATCH, path.clone(), Some(json!({"name": "mine"}))),
        (Method::PATCH, path.clone(), Some(json!({"enabled": false}))),
        (
            Method::POST,
            format!("{path}/rotate"),
            Some(json!({"grace_seconds": 0})),
        ),
        (Method::GET, format!("{path}/deliveries"), None),
        (Method::DELETE, path.clone(), None),
    ];
    for (method, path, body) in &calls {
        let (status, answer) = bob.call(method.clone(), path, body.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
        assert!(!answer.to_string().contains(&secret) && !answer.to_string().contains(&hook));
        let (status, answer) = anonymous.call(method.clone(), path, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "anonymous {method} {path}"
        );
        assert_eq!(answer["error"], "unauthenticated");
    }
    // Taking ownership through the update is not a field the API knows.
    for field in ["owner", "username"] {
        let (status, _) = bob
            .call(Method::PATCH, &path, Some(json!({field: "bob"})))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}");
        let (status, _) = alice
            .call(Method::PATCH, &path, Some(json!({field: "bob"})))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field} for the owner too");
    }
    let (_, list) = bob.call(Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(list, json!([]));
    let (status, _) = bob.call(Method::GET, "/api/v1/tokens?all=true", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for path in ["/api/v1/me", "/api/v1/tokens"] {
        assert_eq!(
            anonymous.call(Method::GET, path, None).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let bad_key = Caller::new(&site, Some("w2f_0000".into()));
    assert_eq!(
        bad_key.call(Method::GET, "/api/v1/me", None).await.0,
        StatusCode::UNAUTHORIZED
    );

    let after = site.app.store.token(&id).await.unwrap().unwrap();
    assert_eq!(before, after);
    assert_eq!(site.app.store.token_secrets(&id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn admins_list_and_disable_others_tokens_without_their_secrets() {
    let site = Site::start().await;
    let bob = Caller::new(&site, Some(site.api_key("bob", &[]).await));
    let admin = Caller::new(&site, Some(site.api_key("alice", &[ADMIN_GROUP]).await));
    let (_, made) = bob
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"service": "forgejo", "name": "b"})),
        )
        .await;
    let id = made["token"]["id"].as_str().unwrap();
    let (status, all) = admin
        .call(Method::GET, "/api/v1/tokens?all=true", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all[0]["owner"], "bob");
    assert!(all[0].get("hook_url").is_none() && all[0].get("secrets").is_none());
    let path = format!("/api/v1/tokens/{id}");
    let (status, seen) = admin
        .call(Method::PATCH, &path, Some(json!({"enabled": false})))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen["enabled"], false);
    let (status, _) = admin.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// C-21: no CORS for anyone, and cookie-authenticated writes need the CSRF
/// header and our own origin.
#[tokio::test]
async fn no_cors_and_csrf_on_cookie_writes() {
    let site = Site::start().await;
    let (cookie, csrf) = site.session("alice", &[]).await;
    let client = reqwest::Client::new();
    let evil = "https://evil.example.org";

    let preflight = client
        .request(Method::OPTIONS, site.url("/api/v1/tokens/some-id/rotate"))
        .header("origin", evil)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-csrf-token")
        .send()
        .await
        .unwrap();
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert!(
        preflight
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );

    let body = json!({"service": "github", "name": "x"});
    let write = |origin: Option<&'static str>, csrf: Option<&str>| {
        let mut request = client
            .post(site.url("/api/v1/tokens"))
            .header("cookie", &cookie)
            .json(&body);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf.to_string());
        }
        request.send()
    };
    let response = write(Some(evil), Some(&csrf)).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert_eq!(
        write(None, None).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        write(None, Some("wrong")).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert!(
        site.app
            .store
            .tokens(Some("alice"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        write(None, Some(&csrf)).await.unwrap().status(),
        StatusCode::CREATED
    );

    // Webhook endpoints answer without any CORS header either.
    let (_, secret, url) = site.token("alice", "github").await;
    let recording = signed_fixture(&fixtures().join("github/push.organization.json"), &secret);
    let mut request = client
        .post(&url)
        .header("origin", evil)
        .body(recording.body.clone());
    for (name, value) in &recording.headers {
        request = request.header(name, value);
    }
    let answer = request.send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    assert!(
        answer
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn services_and_the_openapi_document_are_public() {
    let site = Site::start().await;
    let anonymous = Caller::new(&site, None);
    let (status, services) = anonymous.call(Method::GET, "/api/v1/services", None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<_> = services
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(
        names,
        [
            "github",
            "gitlab",
            "forgejo",
            "gitea",
            "discourse",
            "pretix"
        ]
    );
    assert_eq!(services[1]["secret"], "shared_token");
    assert_eq!(services[5]["needs_instance_url"], true);

    let (status, document) = anonymous
        .call(Method::GET, "/api/v1/openapi.json", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["servers"][0]["url"], site.base.as_str());
    for path in [
        "/api/v1/me",
        "/api/v1/services",
        "/api/v1/tokens",
        "/api/v1/tokens/{id}",
        "/api/v1/tokens/{id}/rotate",
        "/api/v1/tokens/{id}/deliveries",
    ] {
        assert!(
            document["paths"].get(path).is_some(),
            "{path} is documented"
        );
    }
}

/// The schemathesis of `tests/python/requirements.txt`, in the virtualenv
/// that scripts/setup makes.
fn schemathesis() -> PathBuf {
    let python = std::env::var_os("W2F_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/python"));
    let program = python.with_file_name("schemathesis");
    assert!(
        program.exists(),
        "{} is missing: run scripts/setup (tests/python/requirements.txt)",
        program.display()
    );
    program
}

/// Every operation, fed generated valid and invalid input, answers as the
/// document says: documented status codes, bodies matching the schemas,
/// content types, no 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_does_what_its_openapi_document_says() {
    let program = schemathesis();
    let site = Site::start().await;
    let key = site.api_key("alice", &[]).await;
    let schema = site.url("/api/v1/openapi.json");
    // schemathesis keeps a cache of its findings in the working directory.
    let cache = tempfile::tempdir().unwrap();
    let run = tokio::task::spawn_blocking(move || {
        Command::new(program)
            .current_dir(cache.path())
            .args(["run", &schema, "--checks", "all", "--max-examples", "30"])
            .args(["--header", &format!("Authorization: Bearer {key}")])
            .arg("--no-color")
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let output = format!(
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        run.status.success(),
        "schemathesis found problems:\n{output}"
    );
    assert!(output.contains("passed"), "{output}");
}
