//! FAS login against a real OpenID Connect provider (tests/oidc): the
//! code flow with PKCE, state and nonce, sessions and their cookie, the
//! open-redirect cases of C-20, replays, logout, and access tokens.

use reqwest::StatusCode;
use serde_json::Value;

use crate::site::{self, Site, browser, get, login, provider_login};

async fn me(client: &reqwest::Client, site: &Site) -> (StatusCode, Value) {
    let response = client.get(site.url("/api/v1/me")).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn session_cookie(step: &site::Step) -> Option<String> {
    step.cookies()
        .into_iter()
        .find(|c| c.starts_with("w2f_session=") && !c.starts_with("w2f_session=;"))
}

#[tokio::test]
async fn logs_in_and_returns_to_the_page_asked_for() {
    let site = Site::start().await;
    let client = browser();
    let done = login(&client, &site, "alice", "/tokens").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), Some("/tokens"));

    let cookie = session_cookie(&done).expect("a session cookie is set");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http public URL: {cookie}"
    );

    let (status, me) = me(&client, &site).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "alice");
    assert_eq!(me["email"], "alice@example.org");
    assert_eq!(me["is_admin"], true);
    assert_eq!(me["authenticated_by"], "session");
    let groups = me["groups"].as_array().unwrap();
    assert!(groups.iter().any(|g| g == site::ADMIN_GROUP), "{me}");

    let page = get(&client, &site.url("/tokens")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Your tokens"));
}

#[tokio::test]
async fn users_outside_the_admin_group_are_not_admins() {
    let site = Site::start().await;
    let client = browser();
    login(&client, &site, "bob", "/").await;
    let (status, me) = me(&client, &site).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "bob");
    assert_eq!(me["is_admin"], false);
}

#[tokio::test]
async fn the_authorization_request_uses_pkce_state_and_nonce() {
    let site = Site::start().await;
    let client = browser();
    let start = get(&client, &site.url("/login?next=/tokens")).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER);
    let to = reqwest::Url::parse(start.location().unwrap()).unwrap();
    assert!(to.as_str().starts_with(site::provider()), "{to}");
    let query: std::collections::HashMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(query["code_challenge"].len() >= 43);
    assert!(query["state"].len() >= 16);
    assert!(query["nonce"].len() >= 16);
    assert_eq!(query["redirect_uri"], site.url("/login/callback"));
    assert!(query["scope"].contains("openid"));
    assert!(query["scope"].contains("https://id.fedoraproject.org/scope/groups"));
    let bind = start
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("w2f_login="))
        .expect("the login is bound to this browser");
    assert!(
        bind.contains("HttpOnly") && bind.contains("SameSite=Lax"),
        "{bind}"
    );
}

#[tokio::test]
async fn cookies_are_secure_when_the_public_url_is_https() {
    let site = Site::start_with(|config| {
        config.public_url = Some("https://webhooks.example.org".into());
    })
    .await;
    let start = get(&browser(), &site.url("/login")).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER);
    let bind = start.cookies().join("\n");
    assert!(
        bind.contains("w2f_login=") && bind.contains("Secure"),
        "{bind}"
    );
}

/// C-20: whatever `next` says, the login ends on our own site.
#[tokio::test]
async fn next_never_leaves_the_site() {
    let site = Site::start().await;
    for next in [
        "https://attacker.example.org/x",
        "//attacker.example.org",
        "/\\attacker.example.org",
        "https:attacker.example.org",
        "javascript:alert(1)",
    ] {
        let client = browser();
        let done = login(&client, &site, "bob", next).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{next}: {}", done.body);
        assert_eq!(done.location(), Some("/"), "next={next}");
    }
}

/// C-20: a wrong or missing state gives an error page, no session and no
/// redirect.
#[tokio::test]
async fn a_bad_state_gives_an_error_page_and_no_session() {
    let site = Site::start().await;
    let client = browser();
    let callback = provider_login(&client, &site, "alice", "/tokens").await;
    let mut url = reqwest::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();

    for tamper in ["wrong", "missing"] {
        let mut query = url.query_pairs_mut();
        query.clear();
        for (name, value) in &pairs {
            match (name.as_str(), tamper) {
                ("state", "wrong") => query.append_pair("state", "not-the-state"),
                ("state", "missing") => continue,
                _ => query.append_pair(name, value),
            };
        }
        drop(query);
        let answer = get(&client, url.as_str()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{tamper}");
        assert!(answer.location().is_none(), "{tamper}: no redirect");
        assert!(session_cookie(&answer).is_none(), "{tamper}: no session");
        let kind = answer.headers["content-type"].to_str().unwrap();
        assert!(kind.starts_with("text/html"), "{kind}");
        assert!(answer.body.contains("log in again") || answer.body.contains("no state"));
    }
    assert_eq!(me(&client, &site).await.0, StatusCode::UNAUTHORIZED);
}

/// C-20: a callback used twice, or a code used again with a new state,
/// opens no second session.
#[tokio::test]
async fn replayed_callbacks_and_codes_are_refused() {
    let site = Site::start().await;
    let client = browser();
    let callback = provider_login(&client, &site, "alice", "/tokens").await;
    let first = get(&client, &callback).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);

    // The same callback again: its state is spent.
    let again = get(&client, &callback).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(session_cookie(&again).is_none());

    // The spent code with a fresh, genuine state of this browser.
    let fresh = browser();
    let fresh_callback = provider_login(&fresh, &site, "bob", "/").await;
    let code = query_value(&callback, "code");
    let state = query_value(&fresh_callback, "state");
    let reused = get(
        &fresh,
        &site.url(&format!("/login/callback?code={code}&state={state}")),
    )
    .await;
    assert_eq!(reused.status, StatusCode::BAD_REQUEST, "{}", reused.body);
    assert!(session_cookie(&reused).is_none());
    assert!(reused.location().is_none());
    assert_eq!(me(&fresh, &site).await.0, StatusCode::UNAUTHORIZED);
}

/// A callback link made in one browser logs nobody in in another (login
/// CSRF).
#[tokio::test]
async fn a_callback_from_another_browser_is_refused() {
    let site = Site::start().await;
    let attacker = browser();
    let callback = provider_login(&attacker, &site, "bob", "/tokens").await;
    let victim = browser();
    let answer = get(&victim, &callback).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.contains("another browser"), "{}", answer.body);
    assert!(session_cookie(&answer).is_none());
}

#[tokio::test]
async fn a_refusal_by_the_provider_is_an_error_page() {
    let site = Site::start().await;
    let client = browser();
    let callback = provider_login(&client, &site, "alice", "/tokens").await;
    let state = query_value(&callback, "state");
    let answer = get(
        &client,
        &site.url(&format!(
            "/login/callback?error=access_denied&state={state}"
        )),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.contains("access_denied"), "{}", answer.body);
    assert!(session_cookie(&answer).is_none());
}

#[tokio::test]
async fn logout_ends_the_session() {
    let site = Site::start().await;
    let client = browser();
    let done = login(&client, &site, "alice", "/").await;
    let cookie = session_cookie(&done).unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let csrf = me(&client, &site).await.1["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();

    // Without the CSRF token, nothing happens.
    let refused = client
        .post(site.url("/logout"))
        .form(&[("csrf", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(me(&client, &site).await.0, StatusCode::OK);

    let out = client
        .post(site.url("/logout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(out.headers()["location"], "/");
    let cleared = out.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("w2f_session=;") && cleared.contains("Max-Age=0"));

    // The old cookie, replayed by hand, is dead on the server.
    let replay = reqwest::Client::new()
        .get(site.url("/api/v1/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn access_tokens_from_the_provider_authenticate_api_calls() {
    let site = Site::start().await;
    let minted: Value = reqwest::Client::new()
        .post(format!("{}/test/access-token", site::provider()))
        .form(&[("account", "bob")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = minted["access_token"].as_str().unwrap();
    let client = reqwest::Client::new();
    for _ in 0..2 {
        // The second call is answered from the cache.
        let me: Value = client
            .get(site.url("/api/v1/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["username"], "bob", "{me}");
        assert_eq!(me["authenticated_by"], "access_token");
        assert!(me.get("csrf_token").is_none());
    }
    let bogus = client
        .get(site.url("/api/v1/me"))
        .bearer_auth("not-a-real-token")
        .send()
        .await
        .unwrap();
    assert_eq!(bogus.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(bogus.headers()["www-authenticate"], "Bearer");
}

#[test]
fn a_login_logs_no_secret_cookie_or_email() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (captured, _guard) = crate::support::logs::Captured::start();
    let (callback, done) = runtime.block_on(async {
        let site = Site::start().await;
        let client = browser();
        let callback = provider_login(&client, &site, "alice", "/tokens").await;
        let done = get(&client, &callback).await;
        let _ = get(&client, &callback).await; // a refused replay logs too
        (callback, done)
    });
    let text = captured.text();
    assert!(text.contains("logged in"), "{text}");
    assert!(!text.contains("alice@example.org"), "{text}");
    let key = session_cookie(&done).unwrap();
    let key = &key["w2f_session=".len()..key.find(';').unwrap()];
    assert!(!text.contains(key), "the session key is logged");
    assert!(
        !text.contains(&query_value(&callback, "code")),
        "the code is logged"
    );
    assert!(
        !text.contains(site::CLIENT_SECRET),
        "the client secret is logged"
    );
}

fn query_value(url: &str, name: &str) -> String {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("{url} has no {name}"))
}
