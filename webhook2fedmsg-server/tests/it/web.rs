//! The token pages, over HTTP with a session: adding, listing, changing,
//! rotating and removing tokens, API keys, the admin's view, and CASES
//! C-19 (another user's tokens), C-21 (CSRF and CORS) and C-22 (script in
//! labels).

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use webhook2fedmsg_server::web::CONTENT_SECURITY_POLICY;

use crate::server::{fixtures, post, signed_fixture};
use crate::site::{ADMIN_GROUP, Site, input_value};

/// A logged-in user of one site.
struct User {
    cookie: String,
    csrf: String,
    base: String,
    client: reqwest::Client,
}

impl User {
    async fn new(site: &Site, name: &str, groups: &[&str]) -> Self {
        let (cookie, csrf) = site.session(name, groups).await;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            cookie,
            csrf,
            base: site.base.clone(),
            client,
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, HeaderMap, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.text().await.unwrap())
    }

    /// POSTs a form with the session's CSRF token, from our own origin.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, HeaderMap, String) {
        let mut form: Vec<(&str, &str)> = vec![("csrf", &self.csrf)];
        form.extend_from_slice(fields);
        self.post_raw(path, &form, Some(&self.base)).await
    }

    async fn post_raw(
        &self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.text().await.unwrap())
    }

    /// Adds a token by the form; returns its id, URL and secret.
    async fn add(&self, service: &str, name: &str) -> (String, String, Option<String>) {
        let (status, _, page) = self
            .post("/tokens", &[("service", service), ("name", name)])
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let url = input_value(&page, "hook-url").unwrap().to_string();
        let id = page.split("#token-").nth(1).unwrap();
        let id = id[..id.find('"').unwrap()].to_string();
        let secret = input_value(&page, "secret").map(str::to_string);
        (id, url, secret)
    }
}

fn has_inline_script(html: &str) -> bool {
    html.match_indices("<script").any(|(at, _)| {
        let tag = &html[at..at + html[at..].find('>').unwrap_or(0)];
        !tag.contains(" src=")
    })
}

#[tokio::test]
async fn the_home_page_explains_and_offers_login() {
    let site = Site::start().await;
    let anonymous = reqwest::get(site.url("/")).await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::OK);
    assert_eq!(
        anonymous.headers()["content-security-policy"],
        CONTENT_SECURITY_POLICY
    );
    let page = anonymous.text().await.unwrap();
    assert!(page.contains("Fedora Messaging"));
    assert!(page.contains("href=\"/login?next=/tokens\""));
    assert!(!has_inline_script(&page));

    let alice = User::new(&site, "alice", &[]).await;
    let (_, _, page) = alice.get("/").await;
    assert!(page.contains("href=\"/tokens\""));
    assert!(page.contains("Log out"));
}

#[tokio::test]
async fn the_tokens_page_sends_visitors_to_login() {
    let site = Site::start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client.get(site.url("/tokens")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/login?next=/tokens");
}

#[tokio::test]
async fn a_new_token_shows_url_secret_and_instructions_once() {
    let site = Site::start().await;
    let alice = User::new(&site, "alice", &[]).await;
    let (status, headers, page) = alice
        .post(
            "/tokens",
            &[("service", "github"), ("name", "infra/ansible")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "no-store");
    let url = input_value(&page, "hook-url").unwrap();
    assert!(url.starts_with(&site.url("/github/")), "{url}");
    let secret = input_value(&page, "secret").unwrap().to_string();
    assert_eq!(secret.len(), 64);
    for needle in [
        "Payload URL",
        "application/json",
        "Settings → Webhooks",
        "shown only",
    ] {
        assert!(page.contains(needle), "{needle} missing");
    }

    let (status, _, list) = alice.get("/tokens").await;
    assert_eq!(status, StatusCode::OK);
    assert!(list.contains(url), "the URL is listed");
    assert!(list.contains("infra/ansible"));
    assert!(!list.contains(&secret), "the secret is shown once only");
    assert!(list.contains("data-copy=\"url-"), "a copy button");
    assert!(!has_inline_script(&list));
}

#[tokio::test]
async fn a_supplied_secret_is_used_and_checked() {
    let site = Site::start().await;
    let alice = User::new(&site, "alice", &[]).await;
    let secret = "a-secret-of-my-own-choosing";
    let (status, _, page) = alice
        .post(
            "/tokens",
            &[("service", "gitlab"), ("name", "p"), ("secret", secret)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(input_value(&page, "secret"), Some(secret));
    assert!(page.contains("Secret token"), "GitLab's name for the field");

    let (status, _, page) = alice
        .post(
            "/tokens",
            &[("service", "github"), ("name", "p"), ("secret", "short")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("16 to 255"), "{page}");
}

#[tokio::test]
async fn deliveries_are_listed_with_their_message() {
    let site = Site::start_with(|config| {
        config.web.datagrepper_url = Some("https://apps.example.org/datagrepper".into());
    })
    .await;
    let alice = User::new(&site, "alice", &[]).await;
    let (id, url, secret) = alice.add("github", "ci").await;
    let (_, _, before) = alice.get("/tokens").await;
    assert!(before.contains("None yet"));

    let recording = signed_fixture(
        &fixtures().join("github/push.organization.json"),
        &secret.unwrap(),
    );
    let (status, body) = post(&url, &recording).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let message_id = body["message_id"].as_str().unwrap();

    let (_, _, page) = alice.get("/tokens").await;
    let card = &page[page.find(&format!("id=\"token-{id}\"")).unwrap()..];
    assert!(card.contains("github.push"), "the event");
    assert!(card.contains(message_id), "the message id");
    assert!(
        card.contains(&format!(
            "https://apps.example.org/datagrepper/v2/id?id={message_id}&#38;is_raw=true"
        )),
        "the datagrepper link"
    );
    assert!(!card.contains("class=\"last-delivery\">never"));
}

#[tokio::test]
async fn tokens_are_renamed_disabled_rotated_and_removed() {
    let site = Site::start().await;
    let alice = User::new(&site, "alice", &[]).await;
    let (id, url, secret) = alice.add("github", "old name").await;
    let old_secret = secret.unwrap();

    let (status, headers, _) = alice
        .post(&format!("/tokens/{id}/name"), &[("name", "new name")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers["location"],
        format!("/tokens?notice=renamed#token-{id}")
    );
    assert_eq!(
        site.app.store.token(&id).await.unwrap().unwrap().name,
        "new name"
    );

    alice
        .post(&format!("/tokens/{id}/enabled"), &[("enabled", "false")])
        .await;
    let (_, _, page) = alice.get("/tokens?notice=disabled").await;
    assert!(page.contains("The token is disabled"));
    let fixture = fixtures().join("github/push.organization.json");
    let (status, _) = post(&url, &signed_fixture(&fixture, &old_secret)).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a disabled token refuses deliveries"
    );
    alice
        .post(&format!("/tokens/{id}/enabled"), &[("enabled", "true")])
        .await;

    // Rotation with an hour's grace: both secrets verify.
    let (status, _, page) = alice
        .post(
            &format!("/tokens/{id}/rotate"),
            &[("grace_seconds", "3600")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let new_secret = input_value(&page, "secret").unwrap().to_string();
    assert_ne!(new_secret, old_secret);
    assert!(
        page.contains("previous secret keeps working until"),
        "{page}"
    );
    let fixture = fixtures().join("github/issues.opened.json");
    assert_eq!(
        post(&url, &signed_fixture(&fixture, &old_secret)).await.0,
        StatusCode::ACCEPTED
    );
    let fixture = fixtures().join("github/fork.json");
    assert_eq!(
        post(&url, &signed_fixture(&fixture, &new_secret)).await.0,
        StatusCode::ACCEPTED
    );

    // Rotation without grace: the previous secret stops at once.
    let (_, _, page) = alice
        .post(&format!("/tokens/{id}/rotate"), &[("grace_seconds", "0")])
        .await;
    let newest = input_value(&page, "secret").unwrap().to_string();
    let fixture = fixtures().join("github/create.json");
    assert_eq!(
        post(&url, &signed_fixture(&fixture, &new_secret)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(&url, &signed_fixture(&fixture, &newest)).await.0,
        StatusCode::ACCEPTED
    );

    // Removal asks first, then the URL is gone.
    let (status, _, confirm) = alice.get(&format!("/tokens/{id}/remove")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(confirm.contains("Remove “new name”?"));
    let (status, headers, _) = alice.post(&format!("/tokens/{id}/remove"), &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/tokens?notice=removed");
    assert!(site.app.store.token(&id).await.unwrap().is_none());
    let fixture = fixtures().join("github/delete.json");
    assert_eq!(
        post(&url, &signed_fixture(&fixture, &newest)).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn pretix_tokens_have_an_instance_and_no_secret() {
    let site = Site::start().await;
    let alice = User::new(&site, "alice", &[]).await;
    let (status, _, page) = alice
        .post(
            "/tokens",
            &[
                ("service", "pretix"),
                ("name", "flock"),
                ("instance_url", "https://pretix.eu/"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(input_value(&page, "secret").is_none());
    assert!(page.contains("the URL itself is the secret"));
    let (_, _, list) = alice.get("/tokens").await;
    assert!(list.contains("https://pretix.eu"));
    assert!(!list.contains("Rotate secret"), "nothing to rotate");
}

/// C-19: bob neither sees nor changes alice's token.
#[tokio::test]
async fn another_users_tokens_are_out_of_reach() {
    let site = Site::start().await;
    let alice = User::new(&site, "alice", &[]).await;
    let bob = User::new(&site, "bob", &[]).await;
    let (id, url, _) = alice.add("github", "alice's").await;
    let before = site.app.store.token(&id).await.unwrap().unwrap();

    let (_, _, page) = bob.get("/tokens").await;
    assert!(!page.contains(&id) && !page.contains(&url) && !page.contains("alice's"));
    assert_eq!(
        bob.get(&format!("/tokens/{id}/remove")).await.0,
        StatusCode::NOT_FOUND
    );
    for (action, fields) in [
        ("name", vec![("name", "mine now")]),
        ("enabled", vec![("enabled", "false")]),
        ("rotate", vec![("grace_seconds", "0")]),
        ("remove", vec![]),
    ] {
        let (status, _, page) = bob.post(&format!("/tokens/{id}/{action}"), &fields).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}");
        assert!(page.contains("no such token"), "{action}: {page}");
    }
    let after = site.app.store.token(&id).await.unwrap().unwrap();
    assert_eq!(before, after, "alice's token is unchanged");
    assert_eq!(site.app.store.token_secrets(&id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn admins_see_and_disable_any_token_but_not_its_url() {
    let site = Site::start().await;
    let bob = User::new(&site, "bob", &[]).await;
    let admin = User::new(&site, "alice", &[ADMIN_GROUP]).await;
    let (id, url, _) = bob.add("gitlab", "bob-project").await;

    let (_, _, page) = admin.get("/tokens").await;
    let section = &page[page.find("Everybody's tokens").expect("the admin section")..];
    assert!(section.contains("bob-project") && section.contains("<td>bob</td>"));
    assert!(!page.contains(&url), "admins do not see others' URLs");

    let (status, _, _) = admin
        .post(&format!("/tokens/{id}/enabled"), &[("enabled", "false")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        !site
            .app
            .store
            .token(&id)
            .await
            .unwrap()
            .unwrap()
            .is_enabled()
    );
    let (status, _, _) = admin
        .post(&format!("/tokens/{id}/name"), &[("name", "x")])
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "admins may only enable or disable"
    );
}

/// C-21: forms need the session's CSRF token and our own origin.
#[tokio::test]
async fn forms_refuse_cross_site_requests() {
    let site = Site::start().await;
    let alice = User::new(&site, "alice", &[]).await;
    let form = [("service", "github"), ("name", "x")];

    let (status, _, _) = alice.post_raw("/tokens", &form, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF token");
    let wrong = [("csrf", "0000"), ("service", "github"), ("name", "x")];
    assert_eq!(
        alice.post_raw("/tokens", &wrong, None).await.0,
        StatusCode::FORBIDDEN
    );
    let right = [
        ("csrf", alice.csrf.as_str()),
        ("service", "github"),
        ("name", "x"),
    ];
    let evil = Some("https://evil.example.org");
    assert_eq!(
        alice.post_raw("/tokens", &right, evil).await.0,
        StatusCode::FORBIDDEN
    );
    let cross = alice
        .client
        .post(site.url("/tokens"))
        .header("cookie", &alice.cookie)
        .header("sec-fetch-site", "cross-site")
        .form(&right)
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert!(
        site.app
            .store
            .tokens(Some("alice"))
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        alice.post_raw("/tokens", &right, None).await.0,
        StatusCode::OK
    );
}

/// C-22: what users type is text on every page, and no page runs inline
/// script.
#[tokio::test]
async fn script_in_labels_is_shown_as_text() {
    let site = Site::start().await;
    let alice = User::new(&site, "alice", &[]).await;
    let labels = [
        "<img src=x onerror=alert(1)>",
        "</script><script>alert(2)</script>",
        "\"><svg onload=alert(3)>",
    ];
    let mut ids = Vec::new();
    for label in labels {
        let (status, _, page) = alice
            .post("/tokens", &[("service", "github"), ("name", label)])
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(!page.contains(label), "created page: {label}");
        let id = page.split("#token-").nth(1).unwrap();
        ids.push(id[..id.find('"').unwrap()].to_string());
    }
    let (_, headers, list) = alice.get("/tokens").await;
    assert_eq!(headers["content-security-policy"], CONTENT_SECURITY_POLICY);
    for label in labels {
        assert!(!list.contains(label), "list: {label}");
    }
    // askama writes numeric character references.
    assert!(list.contains("&#60;img src=x onerror=alert(1)&#62;"));
    assert!(!has_inline_script(&list));
    let (_, _, confirm) = alice.get(&format!("/tokens/{}/remove", ids[1])).await;
    assert!(!confirm.contains(labels[1]));
    assert!(!has_inline_script(&confirm));

    // An error page that quotes the input quotes it as text.
    let (status, headers, page) = alice
        .post(
            "/tokens",
            &[("service", "<script>alert(4)</script>"), ("name", "x")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(headers.contains_key("content-security-policy"));
    assert!(!page.contains("<script>alert(4)"), "{page}");
    assert!(page.contains("&#60;script&#62;alert(4)"), "{page}");
}

#[tokio::test]
async fn api_keys_are_shown_once_and_revocable() {
    let site = Site::start().await;
    let alice = User::new(&site, "alice", &[]).await;
    let (status, _, page) = alice.post("/keys", &[("name", "release script")]).await;
    assert_eq!(status, StatusCode::OK);
    let key = input_value(&page, "api-key").unwrap().to_string();
    assert!(key.starts_with("w2f_"));
    let api = reqwest::Client::new();
    let me = api
        .get(site.url("/api/v1/me"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);

    let (_, _, list) = alice.get("/tokens").await;
    assert!(list.contains("release script") && !list.contains(&key));
    let id = site.app.store.api_keys("alice").await.unwrap()[0]
        .id
        .clone();
    let (status, _, _) = alice.post(&format!("/keys/{id}/revoke"), &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let me = api
        .get(site.url("/api/v1/me"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn static_assets_are_served() {
    let site = Site::start().await;
    let css = reqwest::get(site.url("/static/style.css")).await.unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let js = reqwest::get(site.url("/static/copy.js")).await.unwrap();
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(js.text().await.unwrap().contains("data-copy"));
}

/// Without a login provider the home page offers no login that cannot
/// work, and says what to configure.
#[tokio::test]
async fn without_login_configured_the_home_page_says_so() {
    use crate::server::{Options, TestServer};

    let server = TestServer::start(Options::default()).await;
    let page = reqwest::get(format!("{}/", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Login is not configured"), "{page}");
    assert!(page.contains("oidc.provider_url"), "{page}");
    assert!(!page.contains("/login?next"), "{page}");
    server.stop().await;
}
