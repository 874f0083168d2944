//! Session cookies and the checks that keep other sites from using them.
//!
//! The session cookie [`SESSION_COOKIE`] is `HttpOnly`, `SameSite=Lax`,
//! `Path=/`, and `Secure` whenever the public URL is https. (It must not be
//! called `_session`: that is the OpenID Connect provider's cookie, and
//! cookies ignore ports, so on one host the two would collide.) While a
//! login is on its way through the provider, [`LOGIN_COOKIE`] ties its
//! `state` to the browser that started it, so that a callback link made by
//! someone else logs nobody in.
//!
//! State changes made with the cookie must come from our own origin
//! ([`check_origin`]) and repeat the session's CSRF token ([`check_csrf`]).

use subtle::ConstantTimeEq as _;
use warp::http::HeaderMap;

use super::{Credential, Principal};
use crate::App;
use crate::config::Config;
use crate::error::HttpError;

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "w2f_session";

/// The name of the cookie that binds a login in flight to its browser.
pub const LOGIN_COOKIE: &str = "w2f_login";

/// The header that carries the CSRF token on cookie-authenticated API
/// writes.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A `Set-Cookie` value for `name`; `max_age_seconds` 0 deletes it.
pub fn cookie(config: &Config, name: &str, value: &str, max_age_seconds: u64) -> String {
    let secure = if config.is_https() { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_seconds}{secure}")
}

/// The principal of the session whose key the cookie holds, if any.
pub async fn principal(app: &App, cookie: Option<&str>) -> Result<Option<Principal>, HttpError> {
    let Some(key) = cookie.filter(|key| is_session_key(key)) else {
        return Ok(None);
    };
    let session = app.store.session(key).await.map_err(|error| {
        tracing::error!(%error, "cannot read a session");
        HttpError::Unavailable
    })?;
    Ok(session.map(|session| {
        let credential = Credential::Session {
            key: key.to_string(),
            csrf: session.csrf_token.clone(),
        };
        Principal::new(app, session.user(), credential)
    }))
}

/// Whether a cookie value has the shape of our session keys (64 hex
/// digits), so that junk never reaches the database.
fn is_session_key(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Refuses a request that a browser says comes from another site: an
/// `Origin` other than the public URL's, or `Sec-Fetch-Site` other than
/// `same-origin` or `none`. Requests without either header (older
/// browsers, scripts) still need the CSRF token.
pub fn check_origin(config: &Config, headers: &HeaderMap) -> Result<(), HttpError> {
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return Err(HttpError::CrossSite);
        }
    }
    if let Some(origin) = headers.get("origin") {
        if origin.as_bytes() != config.public_origin().as_bytes() {
            return Err(HttpError::CrossSite);
        }
    }
    Ok(())
}

/// Compares the presented CSRF token with the session's, in constant time.
pub fn check_csrf(expected: &str, presented: Option<&str>) -> Result<(), HttpError> {
    let presented = presented.unwrap_or("");
    let same: bool = expected.as_bytes().ct_eq(presented.as_bytes()).into();
    if same && !expected.is_empty() {
        Ok(())
    } else {
        Err(HttpError::CsrfRejected)
    }
}

#[cfg(test)]
mod tests {
    use warp::http::HeaderValue;

    use super::*;

    fn config() -> Config {
        Config {
            public_url: Some("https://webhook.example.org".into()),
            ..Config::default()
        }
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_on_https() {
        let set = cookie(&config(), SESSION_COOKIE, "abc", 60);
        assert!(set.contains("HttpOnly"), "{set}");
        assert!(set.contains("SameSite=Lax"), "{set}");
        assert!(set.contains("Secure"), "{set}");
        let plain = cookie(&Config::default(), SESSION_COOKIE, "abc", 60);
        assert!(!plain.contains("Secure"), "{plain}");
    }

    #[test]
    fn other_origins_are_refused() {
        let mut headers = HeaderMap::new();
        assert!(check_origin(&config(), &headers).is_ok());
        headers.insert(
            "origin",
            HeaderValue::from_static("https://evil.example.org"),
        );
        assert!(check_origin(&config(), &headers).is_err());
        headers.insert(
            "origin",
            HeaderValue::from_static("https://webhook.example.org"),
        );
        assert!(check_origin(&config(), &headers).is_ok());
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(check_origin(&config(), &headers).is_err());
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        assert!(check_csrf("abc", Some("abc")).is_ok());
        assert!(check_csrf("abc", Some("abd")).is_err());
        assert!(check_csrf("abc", None).is_err());
        assert!(check_csrf("", Some("")).is_err());
    }
}
