//! What both the JSON API and the token pages do to tokens, with the one
//! set of rules: who may see and change what, and which inputs are valid.
//!
//! A token that is not the caller's (and the caller is no admin) does not
//! exist for them: [`visible`] says 404, exactly as for an unknown id, so
//! ids cannot be probed. Admins see and may disable anyone's token but
//! not its URL or secrets, and may not rename, rotate or remove it
//! ([`owned`] says 403 to them).

use webhook2fedmsg_core::Kind;

use crate::App;
use crate::auth::Principal;
use crate::error::HttpError;
use crate::store::Token;
use crate::store::tokens::NewToken;
use crate::web::guide::Guide;

/// The longest grace period a rotation may give old secrets: 30 days.
pub const MAX_GRACE_SECONDS: u32 = 30 * 24 * 3600;

/// The grace period when none is asked for: a day.
pub const DEFAULT_GRACE_SECONDS: u32 = 24 * 3600;

/// A valid request for a new token.
#[derive(Debug, Clone)]
pub struct Creation {
    /// The service.
    pub kind: Kind,
    /// The label.
    pub name: String,
    /// The secret, or `None` to generate one.
    pub secret: Option<String>,
    /// Pretix: the instance URL.
    pub instance_url: Option<String>,
}

impl Creation {
    /// Checks the raw inputs of a new token.
    pub fn parse(
        service: &str,
        name: &str,
        secret: Option<&str>,
        instance_url: Option<&str>,
    ) -> Result<Self, HttpError> {
        let kind: Kind = service
            .parse()
            .map_err(|e: webhook2fedmsg_core::service::UnknownService| invalid(e.to_string()))?;
        let guide = Guide::of(kind);
        let secret = check_secret(secret)?;
        if secret.is_some() && !guide.has_secret() {
            return Err(invalid(format!(
                "{} signs nothing: its tokens take no secret",
                guide.title
            )));
        }
        let instance_url = check_instance_url(instance_url)?;
        if instance_url.is_none() && guide.needs_instance_url {
            return Err(invalid(format!(
                "{} tokens need an instance_url: the base URL of the {} site, such as \
                 https://pretix.eu",
                guide.title, guide.title
            )));
        }
        if instance_url.is_some() && !guide.needs_instance_url {
            return Err(invalid(format!(
                "{} tokens take no instance_url",
                guide.title
            )));
        }
        Ok(Self {
            kind,
            name: check_name(name)?,
            secret,
            instance_url,
        })
    }
}

/// The token `id` if the principal may see it; 404 otherwise.
pub async fn visible(app: &App, principal: &Principal, id: &str) -> Result<Token, HttpError> {
    let token = app.store.token(id).await.map_err(database)?;
    token
        .filter(|token| principal.may_see(token))
        .ok_or(HttpError::NotFound("no such token"))
}

/// The token `id` if the principal owns it; 404 if they may not see it,
/// 403 if they see it only as an admin.
pub async fn owned(app: &App, principal: &Principal, id: &str) -> Result<Token, HttpError> {
    let token = visible(app, principal, id).await?;
    if principal.owns(&token) {
        Ok(token)
    } else {
        Err(HttpError::Forbidden(
            "only the token's owner may do this; admins may only enable or disable it",
        ))
    }
}

/// Makes the token; returns it with its secret (`None` for services that
/// sign nothing).
pub async fn create(
    app: &App,
    principal: &Principal,
    creation: Creation,
) -> Result<(Token, Option<String>), HttpError> {
    let new = NewToken {
        owner: &principal.username,
        service: creation.kind.name(),
        name: &creation.name,
        secret: creation.secret.as_deref(),
        instance_url: creation.instance_url.as_deref(),
    };
    let (token, secret) = app
        .store
        .create_token(&app.secrets, new)
        .await
        .map_err(database)?;
    tracing::info!(user.name = %principal.username, token.id = %token.id,
        webhook.service = %token.service, "token created");
    let shown = Guide::of(creation.kind).has_secret().then_some(secret);
    Ok((token, shown))
}

/// Gives an owned token a new secret; the old ones verify for
/// `grace_seconds` more. Returns the new secret.
pub async fn rotate(
    app: &App,
    principal: &Principal,
    token: &Token,
    grace_seconds: u32,
    secret: Option<&str>,
) -> Result<String, HttpError> {
    if Guide::named(&token.service).is_some_and(|g| !g.has_secret()) {
        return Err(HttpError::Conflict(
            "this service signs nothing, so its tokens have no secret to rotate: \
             add a new token to get a new URL",
        ));
    }
    if grace_seconds > MAX_GRACE_SECONDS {
        return Err(invalid(format!(
            "grace_seconds must be between 0 and {MAX_GRACE_SECONDS}"
        )));
    }
    let secret = check_secret(secret)?;
    let grace_ms = i64::from(grace_seconds) * 1000;
    let secret = app
        .store
        .rotate_secret(&app.secrets, &token.id, secret.as_deref(), grace_ms)
        .await
        .map_err(database)?;
    tracing::info!(user.name = %principal.username, token.id = %token.id, grace_seconds,
        "token secret rotated");
    Ok(secret)
}

/// Enables or disables a token the principal may see.
pub async fn set_enabled(
    app: &App,
    principal: &Principal,
    token: &Token,
    enabled: bool,
) -> Result<(), HttpError> {
    if !principal.may_toggle(token) {
        return Err(HttpError::NotFound("no such token"));
    }
    app.store
        .set_token_enabled(&token.id, enabled)
        .await
        .map_err(database)?;
    tracing::info!(user.name = %principal.username, token.id = %token.id, enabled,
        "token enabled or disabled");
    Ok(())
}

/// Renames an owned token, or changes its Pretix instance URL.
pub async fn update(
    app: &App,
    token: &Token,
    name: Option<&str>,
    instance_url: Option<&str>,
) -> Result<(), HttpError> {
    let name = name.map(check_name).transpose()?;
    let instance_url = check_instance_url(instance_url)?;
    if instance_url.is_some() && Guide::named(&token.service).is_some_and(|g| !g.needs_instance_url)
    {
        return Err(HttpError::Conflict(
            "this service's tokens take no instance_url",
        ));
    }
    app.store
        .update_token(&token.id, name.as_deref(), instance_url.as_deref())
        .await
        .map_err(database)?;
    Ok(())
}

/// Removes an owned token: its URL stops working at once.
pub async fn remove(app: &App, principal: &Principal, token: &Token) -> Result<(), HttpError> {
    app.store.remove_token(&token.id).await.map_err(database)?;
    tracing::info!(user.name = %principal.username, token.id = %token.id, "token removed");
    Ok(())
}

/// A label: 1 to 100 characters, not all blank, no control characters
/// (what [`crate::api::json::NAME_PATTERN`] says); returned trimmed.
pub fn check_name(name: &str) -> Result<String, HttpError> {
    if name.is_empty() || name.chars().count() > 100 || name.trim().is_empty() {
        return Err(invalid(
            "the label must have 1 to 100 characters, not all blank".into(),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("the label may not hold control characters".into()));
    }
    Ok(name.trim().to_string())
}

/// A supplied secret: 16 to 255 printable ASCII characters, no spaces.
pub fn check_secret(secret: Option<&str>) -> Result<Option<String>, HttpError> {
    let Some(secret) = secret else {
        return Ok(None);
    };
    if !(16..=255).contains(&secret.len()) || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "a secret must have 16 to 255 printable ASCII characters and no spaces".into(),
        ));
    }
    Ok(Some(secret.to_string()))
}

/// An instance URL as [`crate::api::json::INSTANCE_URL_PATTERN`] says:
/// `http://` or `https://`, a host name, maybe a port and a path, at most
/// 200 characters.
pub fn check_instance_url(url: Option<&str>) -> Result<Option<String>, HttpError> {
    let Some(url) = url else {
        return Ok(None);
    };
    let refused = || {
        invalid(
            "instance_url must be http:// or https://, a host name, maybe a port and a path, \
             at most 200 characters"
                .into(),
        )
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(refused)?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let port_ok =
        port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    // The characters of a URL's path (RFC 3986): no query or fragment,
    // and none of `"<>\^`{|}`, which would reach every message as they are.
    let path_ok = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._~!$&'()*+,;=:@%/-".contains(&b));
    if url.len() > 200 || !host_ok || !port_ok || !path_ok {
        return Err(refused());
    }
    Ok(Some(url.to_string()))
}

fn invalid(message: String) -> HttpError {
    HttpError::BadRequest(message)
}

/// The 503 of a database that does not answer, logged here once.
pub fn database(error: sqlx::Error) -> HttpError {
    tracing::error!(%error, "database error");
    HttpError::Unavailable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_trimmed_and_bounded() {
        assert_eq!(check_name("  ci  ").unwrap(), "ci");
        assert!(check_name("   ").is_err());
        assert!(check_name("\u{3000}").is_err());
        assert!(check_name(&"x".repeat(101)).is_err());
        assert!(check_name("a\u{0}b").is_err());
        assert_eq!(check_name("<img src=x>").unwrap(), "<img src=x>");
    }

    #[test]
    fn supplied_secrets_must_be_long_and_printable() {
        assert_eq!(check_secret(None).unwrap(), None);
        assert!(check_secret(Some("")).is_err());
        assert!(check_secret(Some("short")).is_err());
        assert!(check_secret(Some("sixteen chars ok")).is_err());
        assert!(check_secret(Some("0123456789abcdef")).unwrap().is_some());
    }

    #[test]
    fn instance_urls_name_a_host() {
        assert!(
            check_instance_url(Some("https://pretix.eu"))
                .unwrap()
                .is_some()
        );
        assert!(
            check_instance_url(Some("http://127.0.0.1:8000/x/"))
                .unwrap()
                .is_some()
        );
        for bad in [
            "ftp://x",
            "https://",
            "https://[::1]",
            "https://a:123456",
            "https://a b",
            "https://x.org/\"><script>",
            "https://x.org/a?b",
            "https://x.org/a#b",
        ] {
            assert!(check_instance_url(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn pretix_takes_no_secret_and_github_no_instance_url() {
        assert!(Creation::parse("pretix", "x", Some("0123456789abcdef"), None).is_err());
        assert!(Creation::parse("github", "x", None, Some("https://pretix.eu")).is_err());
        assert!(Creation::parse("pretix", "x", None, Some("https://pretix.eu")).is_ok());
        assert!(Creation::parse("pretix", "x", None, None).is_err());
        assert!(Creation::parse("bitbucket", "x", None, None).is_err());
    }
}
