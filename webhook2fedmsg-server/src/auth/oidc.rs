//! The OpenID Connect relying party: discovery, the authorization code
//! flow with PKCE, state and nonce, ID token verification, and userinfo.
//!
//! [`Provider`] reads the provider's discovery document (and keys) from
//! `oidc.provider_url` when it is first needed and again after
//! [`METADATA_TTL`], so a server starts while the provider is away and picks
//! up rotated signing keys. Everything the provider says about a person
//! becomes an [`Identity`]: the username is `preferred_username`, else
//! `nickname`, from the verified ID token or else from userinfo; e-mail and
//! groups come from either. Nothing here logs a token, a code or a claim.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreClient, CoreGenderClaim, CoreIdTokenClaims, CoreProviderMetadata, CoreResponseType,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AdditionalClaims, AuthenticationFlow, AuthorizationCode,
    ClientId, ClientSecret, CsrfToken, DiscoveryError, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse as _, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse as _, UserInfoClaims,
};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::config::OidcConfig;

/// How long discovered metadata and keys are used before reading them again.
pub const METADATA_TTL: Duration = Duration::from_secs(3600);

/// The client type discovery gives: token and userinfo endpoints as the
/// provider announces them.
type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Who the provider says someone is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The FAS username.
    pub username: String,
    /// The e-mail address, if the provider gave one.
    pub email: Option<String>,
    /// The FAS groups, if the provider gave them.
    pub groups: Option<Vec<String>>,
}

/// A login about to be sent to the provider.
pub struct Started {
    /// Where to send the browser.
    pub url: String,
    /// The `state` parameter.
    pub state: String,
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier the token request must show.
    pub pkce_verifier: String,
}

/// Why a login or an access token was refused.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The discovery document or the keys cannot be read.
    #[error("cannot read the provider's discovery document: {0}")]
    Discovery(String),
    /// The token endpoint refused the code (wrong, reused or expired) or
    /// the verifier.
    #[error("the provider refused the authorization code: {0}")]
    CodeRefused(String),
    /// The token response carries no ID token.
    #[error("the provider sent no ID token")]
    MissingIdToken,
    /// The ID token's signature, issuer, audience, expiry or nonce is wrong.
    #[error("the ID token does not verify: {0}")]
    InvalidIdToken(String),
    /// The userinfo endpoint refused the access token.
    #[error("the provider refused the access token: {0}")]
    TokenRefused(String),
    /// Neither `preferred_username` nor `nickname` is usable.
    #[error("the provider named no usable username")]
    NoUsername,
}

/// FAS's claims beyond the standard ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FasClaims {
    #[serde(default)]
    groups: Option<Vec<String>>,
}

impl AdditionalClaims for FasClaims {}

/// The configured provider, with its discovered metadata.
pub struct Provider {
    issuer: String,
    client_id: ClientId,
    client_secret: ClientSecret,
    redirect: RedirectUrl,
    scopes: Vec<String>,
    http: reqwest::Client,
    discovered: RwLock<Option<(Instant, Arc<Client>)>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id.as_str())
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// The provider the configuration names, or `None` when login is not
    /// configured. `public_base` is where the provider sends users back
    /// (`<public_base>/login/callback`).
    pub fn from_config(config: &OidcConfig, public_base: &str) -> anyhow::Result<Option<Self>> {
        let (Some(issuer), Some(id), Some(secret)) = (
            &config.provider_url,
            &config.client_id,
            &config.client_secret,
        ) else {
            return Ok(None);
        };
        let redirect = RedirectUrl::new(format!("{public_base}/login/callback"))?;
        // Redirects are refused: a provider answering discovery or token
        // requests with one is misconfigured, and following it could send
        // the client secret elsewhere.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Some(Self {
            issuer: issuer.clone(),
            client_id: ClientId::new(id.clone()),
            client_secret: ClientSecret::new(secret.expose().to_string()),
            redirect,
            scopes: config.scopes.clone(),
            http,
            discovered: RwLock::new(None),
        }))
    }

    /// Builds the authorization request for a new login.
    pub async fn start(&self) -> Result<Started, OidcError> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scopes(self.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge)
            .url();
        Ok(Started {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges the callback's code, verifies the ID token against
    /// `nonce`, and reads userinfo.
    pub async fn finish(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<Identity, OidcError> {
        let client = self.client().await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::CodeRefused(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::CodeRefused(describe(&e)))?;

        let id_token = response.id_token().ok_or(OidcError::MissingIdToken)?;
        let verifier = client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, &Nonce::new(nonce.to_string()))
            .map_err(|e| OidcError::InvalidIdToken(e.to_string()))?;
        if let Some(expected) = claims.access_token_hash() {
            let invalid = |e: &dyn std::fmt::Display| OidcError::InvalidIdToken(e.to_string());
            let algorithm = id_token.signing_alg().map_err(|e| invalid(&e))?;
            let key = id_token.signing_key(&verifier).map_err(|e| invalid(&e))?;
            let actual = AccessTokenHash::from_token(response.access_token(), algorithm, key)
                .map_err(|e| invalid(&e))?;
            if actual != *expected {
                return Err(OidcError::InvalidIdToken("at_hash does not match".into()));
            }
        }

        let info = match client.user_info(
            response.access_token().clone(),
            Some(claims.subject().clone()),
        ) {
            Ok(request) => Some(
                request
                    .request_async::<FasClaims, _, CoreGenderClaim>(&self.http)
                    .await
                    .map_err(|e| OidcError::TokenRefused(describe(&e)))?,
            ),
            // A provider without a userinfo endpoint: the ID token is all.
            Err(_) => None,
        };
        identity(Some(claims), info.as_ref())
    }

    /// Who an access token from this provider belongs to, by asking its
    /// userinfo endpoint.
    pub async fn identify(&self, access_token: &str) -> Result<Identity, OidcError> {
        let client = self.client().await?;
        let request = client
            .user_info(AccessToken::new(access_token.to_string()), None)
            .map_err(|_| OidcError::TokenRefused("the provider has no userinfo endpoint".into()))?;
        let info = request
            .request_async::<FasClaims, _, CoreGenderClaim>(&self.http)
            .await
            .map_err(|e| OidcError::TokenRefused(describe(&e)))?;
        identity(None, Some(&info))
    }

    /// The discovered client, read again once it is older than
    /// [`METADATA_TTL`].
    async fn client(&self) -> Result<Arc<Client>, OidcError> {
        if let Some((at, client)) = &*self.discovered.read().await {
            if at.elapsed() < METADATA_TTL {
                return Ok(client.clone());
            }
        }
        let mut slot = self.discovered.write().await;
        if let Some((at, client)) = &*slot {
            if at.elapsed() < METADATA_TTL {
                return Ok(client.clone());
            }
        }
        let metadata = self.discover().await?;
        let client = Arc::new(
            CoreClient::from_provider_metadata(
                metadata,
                self.client_id.clone(),
                Some(self.client_secret.clone()),
            )
            .set_redirect_uri(self.redirect.clone()),
        );
        *slot = Some((Instant::now(), client.clone()));
        Ok(client)
    }

    /// Reads the discovery document. Issuers are compared exactly, but a
    /// configured URL that differs from the announced issuer only by a
    /// trailing slash is tried both ways, since people write either.
    async fn discover(&self) -> Result<CoreProviderMetadata, OidcError> {
        let as_given = self.issuer.clone();
        let toggled = match as_given.strip_suffix('/') {
            Some(bare) => bare.to_string(),
            None => format!("{as_given}/"),
        };
        let mut last = String::new();
        for candidate in [as_given, toggled] {
            let issuer =
                IssuerUrl::new(candidate).map_err(|e| OidcError::Discovery(e.to_string()))?;
            match CoreProviderMetadata::discover_async(issuer, &self.http).await {
                Ok(metadata) => return Ok(metadata),
                Err(DiscoveryError::Validation(message)) => last = message,
                Err(error) => return Err(OidcError::Discovery(describe(&error))),
            }
        }
        Err(OidcError::Discovery(last))
    }
}

/// The identity in a verified ID token and userinfo, the token first.
fn identity(
    claims: Option<&CoreIdTokenClaims>,
    info: Option<&UserInfoClaims<FasClaims, CoreGenderClaim>>,
) -> Result<Identity, OidcError> {
    let from_token = claims.and_then(|c| {
        c.preferred_username()
            .map(|u| u.as_str().to_string())
            .or_else(|| {
                c.nickname()
                    .and_then(|n| n.get(None))
                    .map(|n| n.to_string())
            })
    });
    let from_info = info.and_then(|i| {
        i.preferred_username()
            .map(|u| u.as_str().to_string())
            .or_else(|| {
                i.nickname()
                    .and_then(|n| n.get(None))
                    .map(|n| n.to_string())
            })
    });
    let username = from_token
        .or(from_info)
        .filter(|name| is_username(name))
        .ok_or(OidcError::NoUsername)?;
    let email = claims
        .and_then(|c| c.email())
        .or_else(|| info.and_then(|i| i.email()))
        .map(|e| e.as_str().to_string());
    let groups = info.and_then(|i| i.additional_claims().groups.clone());
    Ok(Identity {
        username,
        email,
        groups,
    })
}

/// Whether a name can be a FAS username: 1 to 64 ASCII letters, digits,
/// `-`, `_` or `.`. Anything else is refused rather than stored.
pub fn is_username(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// An error with its causes, on one line.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_plain_ascii() {
        assert!(is_username("alice"));
        assert!(is_username("a.b-c_9"));
        assert!(!is_username(""));
        assert!(!is_username("<script>"));
        assert!(!is_username("name with space"));
        assert!(!is_username(&"x".repeat(65)));
    }
}
