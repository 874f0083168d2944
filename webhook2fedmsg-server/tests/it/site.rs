//! What the login, page, API and browser tests share: the real OpenID
//! Connect provider of `tests/oidc` (started once per test binary), a
//! server configured to log in with it, and a cookie-keeping client that
//! goes through the login as a browser would.
//!
//! The provider needs Node.js and `npm ci` in `tests/oidc` (scripts/setup
//! does both); without them these tests fail, saying so.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use tokio::sync::oneshot;
use webhook2fedmsg_server::App;
use webhook2fedmsg_server::config::{Config, Sensitive};
use webhook2fedmsg_server::store::Token;
use webhook2fedmsg_server::store::tokens::NewToken;

use crate::server::TEST_KEY;

/// The provider's client registration (tests/oidc/provider.mjs defaults).
pub const CLIENT_ID: &str = "webhook2fedmsg";
/// The client's secret there.
pub const CLIENT_SECRET: &str = "test-client-secret";
/// The group that makes alice an admin.
pub const ADMIN_GROUP: &str = "sysadmin-main";

/// The provider process; it exits when our end of its stdin closes, so it
/// never outlives the test binary.
struct ProviderProcess {
    issuer: String,
    _child: Child,
}

static PROVIDER: OnceLock<ProviderProcess> = OnceLock::new();

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The issuer URL of the shared test provider, starting it on first use.
pub fn provider() -> &'static str {
    &PROVIDER.get_or_init(start_provider).issuer
}

fn start_provider() -> ProviderProcess {
    let dir = workspace().join("tests/oidc");
    assert!(
        dir.join("node_modules/oidc-provider").is_dir(),
        "tests/oidc/node_modules is missing: run scripts/setup (npm ci in tests/oidc)"
    );
    let mut child = Command::new("node")
        .arg("provider.mjs")
        .current_dir(&dir)
        .env("EXIT_ON_STDIN_CLOSE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs tests/oidc/provider.mjs (is Node.js installed?)");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("the provider prints its issuer");
    let ready: serde_json::Value =
        serde_json::from_str(&first).unwrap_or_else(|_| panic!("provider said {first:?}"));
    ProviderProcess {
        issuer: ready["issuer"].as_str().expect("issuer").to_string(),
        _child: child,
    }
}

/// A running server.
pub struct Site {
    /// `http://127.0.0.1:<port>`, also its public URL.
    pub base: String,
    /// The server's state.
    pub app: Arc<App>,
    // The database and sink live here until the site is dropped.
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

impl Site {
    /// A server that logs in with the test provider.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A server that logs in with the test provider, its configuration
    /// changed by `configure` first.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        let issuer = provider().to_string();
        let dir = tempfile::tempdir().expect("temporary directory");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let mut config = Config {
            listen: address,
            ..Config::default()
        };
        config.database.url = Sensitive(format!("sqlite://{}", dir.path().join("t.db").display()));
        config.sink.path = dir.path().join("messages.jsonl");
        config.secrets.key = Some(Sensitive(TEST_KEY.into()));
        config.oidc.provider_url = Some(issuer);
        config.oidc.client_id = Some(CLIENT_ID.into());
        config.oidc.client_secret = Some(Sensitive(CLIENT_SECRET.into()));
        config.oidc.admin_group = Some(ADMIN_GROUP.into());
        configure(&mut config);
        config.check().expect("test configuration is valid");

        let app = App::new(config).await.expect("the server starts");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(webhook2fedmsg_server::serve(
            app.clone(),
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            base: format!("http://{address}"),
            app,
            _dir: dir,
            _stop: stop,
        }
    }

    /// A URL on this site.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A session for `username` in `groups`, made directly in the store
    /// (for tests about pages, not about logging in): the cookie header
    /// value and the CSRF token.
    pub async fn session(&self, username: &str, groups: &[&str]) -> (String, String) {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let store = &self.app.store;
        store
            .upsert_user(
                username,
                Some(&format!("{username}@example.org")),
                Some(&groups),
            )
            .await
            .expect("user");
        let (key, csrf) = store
            .create_session(username, 3_600_000)
            .await
            .expect("session");
        (format!("w2f_session={key}"), csrf)
    }

    /// A GitHub-style token of `owner` made in the store: the token, its
    /// secret and its URL.
    pub async fn token(&self, owner: &str, service: &str) -> (Token, String, String) {
        let new = NewToken {
            owner,
            service,
            name: "test",
            secret: None,
            instance_url: None,
        };
        let (token, secret) = self
            .app
            .store
            .create_token(&self.app.secrets, new)
            .await
            .expect("token");
        let url = self.app.config.hook_url(&token.service, &token.hook_id);
        (token, secret, url)
    }

    /// An API key for `username` (made in the store).
    pub async fn api_key(&self, username: &str, groups: &[&str]) -> String {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let store = &self.app.store;
        store
            .upsert_user(username, None, Some(&groups))
            .await
            .expect("user");
        store
            .create_api_key(username, "test")
            .await
            .expect("api key")
            .1
    }
}

/// A client that keeps cookies (across the site and the provider, as a
/// browser does on one host) and follows no redirect by itself.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// What one step of a login returned.
pub struct Step {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The URL that answered.
    pub url: String,
    /// The body.
    pub body: String,
}

impl Step {
    /// The `Location` header, if any.
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }

    /// Every `Set-Cookie` header.
    pub fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }
}

/// GETs `url`.
pub async fn get(client: &reqwest::Client, url: &str) -> Step {
    let response = client.get(url).send().await.expect("request");
    Step {
        status: response.status(),
        headers: response.headers().clone(),
        url: url.to_string(),
        body: response.text().await.unwrap_or_default(),
    }
}

/// Resolves a `Location` against the URL that sent it.
pub fn resolve(from: &str, location: &str) -> String {
    reqwest::Url::parse(from)
        .and_then(|base| base.join(location))
        .expect("a valid Location")
        .to_string()
}

/// Follows redirects from `url` until one points at the site's
/// `/login/callback` (returned, not followed) or a page answers.
pub async fn follow_until_callback(client: &reqwest::Client, site: &Site, url: &str) -> Step {
    let mut url = url.to_string();
    for _ in 0..10 {
        let step = get(client, &url).await;
        let Some(location) = step.location() else {
            return step;
        };
        let next = resolve(&url, location);
        if next.starts_with(&site.url("/login/callback")) {
            return Step { url: next, ..step };
        }
        url = next;
    }
    panic!("too many redirects from {url}");
}

/// Goes through the provider's login page as `username`, starting at
/// `/login?next=<next>`; returns the callback URL the provider sends the
/// browser to (not yet visited).
pub async fn provider_login(
    client: &reqwest::Client,
    site: &Site,
    username: &str,
    next: &str,
) -> String {
    let start = site.url(&format!("/login?next={}", encode(next)));
    let page = follow_until_callback(client, site, &start).await;
    assert_eq!(page.status, StatusCode::OK, "{}: {}", page.url, page.body);
    assert!(page.body.contains("name=\"login\""), "{}", page.body);
    let form = client
        .post(&page.url)
        .form(&[("login", username)])
        .send()
        .await
        .expect("login form");
    let location = form
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("the provider redirects after the login form")
        .to_string();
    let callback = follow_until_callback(client, site, &resolve(&page.url, &location)).await;
    assert!(
        callback.url.starts_with(&site.url("/login/callback")),
        "the provider did not send us back: {} {}",
        callback.status,
        callback.body
    );
    callback.url
}

/// Logs `username` in and returns the callback's answer.
pub async fn login(client: &reqwest::Client, site: &Site, username: &str, next: &str) -> Step {
    let callback = provider_login(client, site, username, next).await;
    get(client, &callback).await
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The value of the `<input>` with this `id` in an HTML page (our
/// templates write `id` before `value`).
pub fn input_value<'a>(html: &'a str, id: &str) -> Option<&'a str> {
    let start = html.find(&format!("id=\"{id}\""))?;
    let rest = &html[start..];
    let value = rest.find("value=\"")? + 7;
    let end = rest[value..].find('"')?;
    Some(&rest[value..value + end])
}
