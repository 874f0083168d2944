//! The pages' templates (askama, in `templates/`) and the values they show.
//!
//! Askama escapes every value for HTML, so what users typed (labels,
//! secrets, usernames) is always text on the page. Each page carries the
//! [`Nav`] of the logged-in user, if any, for the header and its logout
//! form.

use askama::Template;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::guide::Guide;
use crate::auth::Principal;

/// The header's view of the logged-in user.
pub struct Nav {
    /// The FAS username.
    pub username: String,
    /// The session's CSRF token, for the logout form.
    pub csrf: String,
    /// Whether the user is an admin.
    pub is_admin: bool,
}

impl Nav {
    /// The nav of a page viewer, if logged in with a session.
    pub fn of(viewer: Option<&Principal>) -> Option<Nav> {
        let viewer = viewer?;
        Some(Nav {
            username: viewer.username.clone(),
            csrf: viewer.csrf()?.to_string(),
            is_admin: viewer.is_admin,
        })
    }
}

/// `/`.
#[derive(Template)]
#[template(path = "index.html")]
pub struct Index {
    pub nav: Option<Nav>,
    pub guides: &'static [Guide],
    /// Whether an OpenID Connect provider is configured.
    pub can_log_in: bool,
}

/// An error page.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub nav: Option<Nav>,
    pub title: String,
    pub message: String,
}

/// `/tokens`.
#[derive(Template)]
#[template(path = "tokens.html")]
pub struct Tokens {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub notice: Option<&'static str>,
    pub guides: &'static [Guide],
    pub graces: &'static [(u32, &'static str)],
    pub groups: Vec<Group>,
    pub keys: Vec<KeyRow>,
    pub others: Vec<OtherRow>,
}

/// The tokens of one service.
pub struct Group {
    pub guide: &'static Guide,
    pub tokens: Vec<TokenCard>,
}

/// One of the user's own tokens.
pub struct TokenCard {
    pub id: String,
    pub name: String,
    pub hook_url: String,
    pub enabled: bool,
    pub instance_url: Option<String>,
    pub created: String,
    pub last_used: String,
    pub old_secret_until: Option<String>,
    pub deliveries: Vec<DeliveryRow>,
}

/// One recent delivery.
pub struct DeliveryRow {
    pub time: String,
    pub event: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub message_id: Option<String>,
    pub link: Option<String>,
}

/// One API key.
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub created: String,
    pub last_used: String,
    pub revoked: bool,
}

/// Someone else's token, in the admin's list.
pub struct OtherRow {
    pub id: String,
    pub owner: String,
    pub service: String,
    pub name: String,
    pub enabled: bool,
    pub last_used: String,
}

/// A new token or secret, shown once.
#[derive(Template)]
#[template(path = "secret.html")]
pub struct SecretShown {
    pub nav: Option<Nav>,
    pub heading: String,
    pub guide: &'static Guide,
    pub token_id: String,
    pub hook_url: String,
    pub secret: Option<String>,
    pub old_secret_until: Option<String>,
    /// The notice of the way back to `/tokens`. The link must differ from
    /// this page's URL in more than its fragment: a new token's page is
    /// the answer to `POST /tokens`, and a link to `/tokens#token-ID` from
    /// there would only scroll, never load the list.
    pub back_notice: &'static str,
}

/// A new API key, shown once.
#[derive(Template)]
#[template(path = "api_key.html")]
pub struct KeyShown {
    pub nav: Option<Nav>,
    pub name: String,
    pub key: String,
}

/// The confirmation before removing a token.
#[derive(Template)]
#[template(path = "remove.html")]
pub struct ConfirmRemove {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub id: String,
    pub name: String,
    pub service: &'static str,
}

/// The grace periods offered when rotating a secret.
pub const GRACES: [(u32, &str); 5] = [
    (0, "no longer: stop it now"),
    (3600, "for an hour"),
    (86400, "for a day"),
    (7 * 86400, "for a week"),
    (30 * 86400, "for 30 days"),
];

/// Renders a page as a `200 text/html` that no cache keeps.
pub fn render(page: &impl Template) -> Response {
    render_with(StatusCode::OK, page)
}

/// Renders a page with `status`.
pub fn render_with(status: StatusCode, page: &impl Template) -> Response {
    let (status, body) = match page.render() {
        Ok(body) => (status, body),
        Err(error) => {
            tracing::error!(%error, "cannot render a page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error".to_string(),
            )
        }
    };
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A time in Unix milliseconds as people read it: `2024-05-01 12:00 UTC`.
pub fn when(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}
