//! `Authorization: Bearer` credentials: personal API keys and access
//! tokens issued by the OpenID Connect provider.
//!
//! A credential starting with [`API_KEY_PREFIX`] is looked up (by hash) in
//! the database; anything else is shown to the provider's userinfo
//! endpoint, and the answer kept for `oidc.access_token_cache_seconds` in
//! [`AccessTokens`], keyed by the token's SHA-256 so that no token stays in
//! memory in clear. A refused credential is a 401, whichever kind it is.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::oidc::Identity;
use super::{Credential, Principal};
use crate::App;
use crate::crypto::sha256_hex;
use crate::error::HttpError;
use crate::store::api_keys::API_KEY_PREFIX;

/// The most access tokens remembered at once; past it the cache is
/// cleared, which only costs a few more userinfo requests.
const MAX_CACHED: usize = 10_000;

/// Answers of the userinfo endpoint, by token hash.
#[derive(Debug, Default)]
pub struct AccessTokens {
    known: Mutex<HashMap<String, (Instant, Identity)>>,
}

impl AccessTokens {
    fn get(&self, hash: &str, ttl: Duration) -> Option<Identity> {
        let known = self
            .known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        known
            .get(hash)
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, identity)| identity.clone())
    }

    fn put(&self, hash: String, identity: Identity) {
        let mut known = self
            .known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if known.len() >= MAX_CACHED {
            known.clear();
        }
        known.insert(hash, (Instant::now(), identity));
    }
}

/// The principal an `Authorization` header value names, `None` when it
/// names nobody.
pub async fn principal(app: &App, header: &str) -> Result<Option<Principal>, HttpError> {
    let Some(credential) = parse(header) else {
        return Err(HttpError::BadCredentials(
            "send Authorization: Bearer <key>",
        ));
    };
    if credential.starts_with(API_KEY_PREFIX) {
        let user = app.store.api_key_user(credential).await.map_err(|error| {
            tracing::error!(%error, "cannot read an API key");
            HttpError::Unavailable
        })?;
        return match user {
            Some(user) => Ok(Some(Principal::new(app, user, Credential::ApiKey))),
            None => Err(HttpError::BadCredentials(
                "this API key is unknown or revoked",
            )),
        };
    }
    access_token(app, credential).await.map(Some)
}

/// The credential of `Bearer <credential>`.
fn parse(header: &str) -> Option<&str> {
    let (scheme, credential) = header.trim().split_once(' ')?;
    let credential = credential.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credential.is_empty()).then_some(credential)
}

async fn access_token(app: &App, token: &str) -> Result<Principal, HttpError> {
    let Some(provider) = &app.provider else {
        return Err(HttpError::BadCredentials(
            "this API key is unknown or revoked",
        ));
    };
    let hash = sha256_hex(token.as_bytes());
    let ttl = Duration::from_secs(app.config.oidc.access_token_cache_seconds);
    let known = match app.access_tokens.get(&hash, ttl) {
        Some(identity) => app.store.user(&identity.username).await.map_err(|error| {
            tracing::error!(%error, "cannot read a user");
            HttpError::Unavailable
        })?,
        None => None,
    };
    let user = match known {
        Some(user) => user,
        None => {
            let identity = provider.identify(token).await.map_err(|error| {
                tracing::info!(%error, "access token refused");
                HttpError::BadCredentials("the provider does not accept this access token")
            })?;
            let user = super::login::remember(app, &identity).await?;
            if !ttl.is_zero() {
                app.access_tokens.put(hash, identity);
            }
            user
        }
    };
    Ok(Principal::new(app, user, Credential::AccessToken))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_a_credential() {
        assert_eq!(parse("Bearer abc"), Some("abc"));
        assert_eq!(parse("bearer  abc "), Some("abc"));
        assert_eq!(parse("Basic abc"), None);
        assert_eq!(parse("Bearer "), None);
        assert_eq!(parse("Bearer"), None);
    }
}
