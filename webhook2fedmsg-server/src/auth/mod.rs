//! Who is asking: FAS login by OpenID Connect, sessions, API keys and
//! access tokens.
//!
//! People log in at `/login` ([`login`]): the provider sends them back to
//! `/login/callback`, which opens a server-side session and sets its cookie
//! ([`session`]). Scripts send `Authorization: Bearer` with a personal API
//! key or an access token from the provider ([`bearer`]). Either way the
//! request gets a [`Principal`]; [`Principal::may_manage`] and
//! [`Principal::may_see`] say what it may do with a token. The filters here
//! only extract; handlers in `web` and `api` decide.

use std::sync::Arc;

use warp::Filter;
use warp::http::HeaderMap;

use crate::App;
use crate::error::HttpError;
use crate::store::Token;
use crate::store::users::User;

pub mod bearer;
pub mod login;
pub mod next;
pub mod oidc;
pub mod session;

pub use bearer::AccessTokens;
pub use oidc::Provider;

/// A person or script the request acts for.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The FAS username.
    pub username: String,
    /// The e-mail address, if known.
    pub email: Option<String>,
    /// The FAS groups, as of the last login or token check.
    pub groups: Vec<String>,
    /// Whether the groups include the configured admin group.
    pub is_admin: bool,
    /// How the request proved who it is.
    pub credential: Credential,
}

/// How a request authenticated.
#[derive(Clone)]
pub enum Credential {
    /// The session cookie; writes must repeat the session's CSRF token.
    Session {
        /// The session key from the cookie.
        key: String,
        /// The session's CSRF token.
        csrf: String,
    },
    /// A personal API key.
    ApiKey,
    /// An access token issued by the OpenID Connect provider.
    AccessToken,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Session { .. } => "Session(<redacted>)",
            Credential::ApiKey => "ApiKey",
            Credential::AccessToken => "AccessToken",
        })
    }
}

impl Principal {
    /// The principal for a known user.
    pub fn new(app: &App, user: User, credential: Credential) -> Self {
        let groups = user.groups();
        let is_admin = app
            .config
            .oidc
            .admin_group
            .as_ref()
            .is_some_and(|admin| groups.iter().any(|g| g == admin));
        Self {
            username: user.username,
            email: user.email,
            groups,
            is_admin,
            credential,
        }
    }

    /// Whether this principal owns the token: only owners see its URL and
    /// secrets, rename, rotate or remove it.
    pub fn owns(&self, token: &Token) -> bool {
        token.owner == self.username
    }

    /// Whether the token may be listed for this principal: its owner and
    /// admins. Everybody else is told it does not exist.
    pub fn may_see(&self, token: &Token) -> bool {
        self.owns(token) || self.is_admin
    }

    /// Whether this principal may enable or disable the token.
    pub fn may_toggle(&self, token: &Token) -> bool {
        self.may_see(token)
    }

    /// The CSRF token of the session, when the request came with one.
    pub fn csrf(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session { csrf, .. } => Some(csrf),
            _ => None,
        }
    }

    /// Checks that a state-changing request really comes from our pages or
    /// a script: cookie-authenticated requests must come from our own
    /// origin and repeat the CSRF token (`presented`); bearer-authenticated
    /// ones carry no ambient credential and need neither.
    pub fn check_write(
        &self,
        app: &App,
        headers: &HeaderMap,
        presented: Option<&str>,
    ) -> Result<(), HttpError> {
        match &self.credential {
            Credential::Session { csrf, .. } => {
                session::check_origin(&app.config, headers)?;
                session::check_csrf(csrf, presented)
            }
            Credential::ApiKey | Credential::AccessToken => Ok(()),
        }
    }
}

/// The logged-in principal of a page request, if any; a request with an
/// unknown or expired cookie is simply not logged in.
pub fn viewer(
    app: Arc<App>,
) -> impl Filter<Extract = (Option<Principal>,), Error = warp::Rejection> + Clone {
    warp::cookie::optional::<String>(session::SESSION_COOKIE).and_then(
        move |cookie: Option<String>| {
            let app = app.clone();
            async move {
                session::principal(&app, cookie.as_deref())
                    .await
                    .map_err(warp::reject::custom)
            }
        },
    )
}

/// The principal of an API request: the bearer credential if one is sent,
/// else the session cookie. Rejects with 401 when there is neither or it
/// is not valid.
pub fn api_principal(
    app: Arc<App>,
) -> impl Filter<Extract = (Principal,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(warp::cookie::optional::<String>(session::SESSION_COOKIE))
        .and_then(
            move |authorization: Option<String>, cookie: Option<String>| {
                let app = app.clone();
                async move {
                    let found = match authorization {
                        Some(value) => bearer::principal(&app, &value).await,
                        None => session::principal(&app, cookie.as_deref()).await,
                    };
                    match found {
                        Ok(Some(principal)) => Ok(principal),
                        Ok(None) => Err(warp::reject::custom(HttpError::Unauthenticated)),
                        Err(error) => Err(warp::reject::custom(error)),
                    }
                }
            },
        )
}
