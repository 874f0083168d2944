//! The login pages' work: `GET /login`, `GET /login/callback`,
//! `POST /logout`.
//!
//! A login stores its state (hashed), nonce, PKCE verifier and next path
//! ([`crate::store::logins`]), sets [`LOGIN_COOKIE`] to the state and sends
//! the browser to the provider. The callback takes that row once (a replay
//! finds nothing), checks the cookie, exchanges the code, verifies the ID
//! token, and only then opens a session. Every failure is an error page
//! with no session and no redirect to `next`.

use std::sync::Arc;

use serde::Deserialize;
use subtle::ConstantTimeEq as _;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::oidc::Identity;
use super::session::{self, LOGIN_COOKIE, SESSION_COOKIE};
use super::{Principal, next};
use crate::App;
use crate::error::HttpError;
use crate::store::logins::LOGIN_TTL_MS;
use crate::store::users::User;

/// `GET /login?next=PATH`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    /// Where to go once logged in; only a local path is kept.
    pub next: Option<String>,
}

/// `GET /login/callback?code=...&state=...` (or `error=...`).
#[derive(Deserialize)]
pub struct CallbackQuery {
    /// The authorization code.
    pub code: Option<String>,
    /// The state we sent.
    pub state: Option<String>,
    /// The provider's error code, when it refused.
    pub error: Option<String>,
}

/// The logout form.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    /// The session's CSRF token; missing counts as wrong.
    #[serde(default)]
    pub csrf: String,
}

/// Starts a login, or goes straight to `next` for someone logged in.
pub async fn start(
    app: Arc<App>,
    viewer: Option<Principal>,
    query: LoginQuery,
) -> Result<Response, HttpError> {
    let next = next::local_path(query.next.as_deref());
    if viewer.is_some() {
        return Ok(redirect(&next, &[]));
    }
    let provider = app.provider.as_ref().ok_or(HttpError::LoginNotConfigured)?;
    let started = provider.start().await.map_err(|error| {
        tracing::warn!(%error, "cannot start a login");
        HttpError::ProviderUnavailable
    })?;
    app.store
        .start_login(
            &started.state,
            &started.nonce,
            &started.pkce_verifier,
            &next,
        )
        .await
        .map_err(database)?;
    let bind = session::cookie(
        &app.config,
        LOGIN_COOKIE,
        &started.state,
        (LOGIN_TTL_MS / 1000) as u64,
    );
    Ok(redirect(&started.url, &[bind]))
}

/// Finishes a login: on success a session cookie and a redirect to the
/// path the login was started for.
pub async fn callback(
    app: Arc<App>,
    query: CallbackQuery,
    bound_state: Option<String>,
) -> Result<Response, HttpError> {
    let Some(state) = query.state.as_deref() else {
        return Err(refused("the answer from the login provider has no state"));
    };
    // Taken before anything else is checked, so that a state is good for
    // one callback whatever that callback carries.
    let pending = app.store.take_login(state).await.map_err(database)?;
    let Some(pending) = pending else {
        return Err(refused(
            "this login is unknown, expired or already finished: please log in again",
        ));
    };
    let same_browser: bool = bound_state
        .as_deref()
        .unwrap_or("")
        .as_bytes()
        .ct_eq(state.as_bytes())
        .into();
    if !same_browser {
        return Err(refused("this login was started in another browser"));
    }
    if let Some(error) = &query.error {
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        tracing::info!(oidc.error = %code, "the provider refused a login");
        return Err(refused_owned(format!(
            "the login provider refused the login ({code})"
        )));
    }
    let Some(code) = query.code.as_deref() else {
        return Err(refused("the answer from the login provider has no code"));
    };

    let provider = app.provider.as_ref().ok_or(HttpError::LoginNotConfigured)?;
    let identity = provider
        .finish(code, &pending.pkce_verifier, &pending.nonce)
        .await
        .map_err(|error| {
            tracing::warn!(%error, "login failed");
            refused("the login provider's answer could not be verified: please log in again")
        })?;
    let user = remember(&app, &identity).await?;
    let lifetime_ms = (app.config.web.session_hours as i64).saturating_mul(3_600_000);
    let (key, _csrf) = app
        .store
        .create_session(&user.username, lifetime_ms)
        .await
        .map_err(database)?;
    tracing::info!(user.name = %user.username, "logged in");

    let cookies = [
        session::cookie(
            &app.config,
            SESSION_COOKIE,
            &key,
            app.config.web.session_hours * 3600,
        ),
        session::cookie(&app.config, LOGIN_COOKIE, "", 0),
    ];
    Ok(redirect(&pending.next_path, &cookies))
}

/// Ends the session and goes home.
pub async fn logout(
    app: Arc<App>,
    viewer: Option<Principal>,
    headers: HeaderMap,
    form: LogoutForm,
) -> Result<Response, HttpError> {
    let Some(viewer) = viewer else {
        return Ok(redirect("/", &[]));
    };
    viewer.check_write(&app, &headers, Some(&form.csrf))?;
    if let super::Credential::Session { key, .. } = &viewer.credential {
        app.store.end_session(key).await.map_err(database)?;
    }
    tracing::info!(user.name = %viewer.username, "logged out");
    let clear = session::cookie(&app.config, SESSION_COOKIE, "", 0);
    Ok(redirect("/", &[clear]))
}

/// Records what the provider said about a user (e-mail and groups, when
/// it said anything about them) and returns the user.
pub async fn remember(app: &App, identity: &Identity) -> Result<User, HttpError> {
    app.store
        .upsert_user(
            &identity.username,
            identity.email.as_deref(),
            identity.groups.as_deref(),
        )
        .await
        .map_err(database)?;
    app.store
        .user(&identity.username)
        .await
        .map_err(database)?
        .ok_or(HttpError::Internal)
}

/// A 303 to `location`, setting `cookies`.
pub fn redirect(location: &str, cookies: &[String]) -> Response {
    let mut response = Response::new(Default::default());
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn refused(reason: &'static str) -> HttpError {
    HttpError::LoginFailed(reason.into())
}

fn refused_owned(reason: String) -> HttpError {
    HttpError::LoginFailed(reason)
}

fn database(error: sqlx::Error) -> HttpError {
    tracing::error!(%error, "database error during login");
    HttpError::Unavailable
}
