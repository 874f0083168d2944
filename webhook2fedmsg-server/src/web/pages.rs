//! The work of the pages: each handler takes the viewer and the form, does
//! what the JSON API would do ([`crate::api::ops`]), and renders a page or
//! redirects back to `/tokens` (303, so a reload repeats nothing).
//!
//! Pages for logged-in users send others to `/login?next=...`; forms need
//! a session, our own origin and the session's CSRF token.

use std::sync::Arc;

use serde::Deserialize;
use warp::http::HeaderMap;
use warp::reply::Response;
use webhook2fedmsg_core::Kind;

use super::guide::Guide;
use super::view::{self, Nav};
use crate::App;
use crate::api::json::message_url;
use crate::api::ops::{self, Creation, DEFAULT_GRACE_SECONDS};
use crate::auth::Principal;
use crate::auth::login::redirect;
use crate::error::HttpError;
use crate::store::{Token, now_ms};

/// `POST /tokens`.
#[derive(Debug, Deserialize)]
pub struct CreateForm {
    // A missing token is a wrong one (403), not a malformed form.
    #[serde(default)]
    csrf: String,
    service: String,
    name: String,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    instance_url: Option<String>,
}

/// `POST /tokens/{id}/name`, `/enabled`, `/rotate`, `/remove`, and the
/// key forms: every field any of them has.
#[derive(Debug, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    grace_seconds: Option<u32>,
    #[serde(default)]
    secret: Option<String>,
}

/// `GET /tokens?notice=...`.
#[derive(Debug, Deserialize)]
pub struct TokensQuery {
    #[serde(default)]
    notice: Option<String>,
}

/// `/`.
pub async fn index(app: Arc<App>, viewer: Option<Principal>) -> Result<Response, HttpError> {
    Ok(view::render(&view::Index {
        nav: Nav::of(viewer.as_ref()),
        guides: Guide::all(),
        can_log_in: app.provider.is_some(),
    }))
}

/// `/tokens`: the user's tokens by service, their API keys, and for admins
/// everybody else's tokens.
pub async fn tokens(
    app: Arc<App>,
    viewer: Option<Principal>,
    query: TokensQuery,
) -> Result<Response, HttpError> {
    let Some(viewer) = viewer else {
        return Ok(redirect("/login?next=/tokens", &[]));
    };
    let mut groups: Vec<view::Group> = Vec::new();
    let own = app
        .store
        .tokens(Some(&viewer.username))
        .await
        .map_err(ops::database)?;
    for kind in Kind::ALL {
        let mut cards = Vec::new();
        for token in own.iter().filter(|t| t.service == kind.name()) {
            cards.push(card(&app, token).await?);
        }
        if !cards.is_empty() {
            groups.push(view::Group {
                guide: Guide::of(kind),
                tokens: cards,
            });
        }
    }
    let keys = app
        .store
        .api_keys(&viewer.username)
        .await
        .map_err(ops::database)?;
    let keys = keys
        .into_iter()
        .map(|key| view::KeyRow {
            id: key.id,
            name: key.name,
            created: view::when(key.created_at),
            last_used: key.last_used_at.map_or_else(|| "never".into(), view::when),
            revoked: key.revoked_at.is_some(),
        })
        .collect();
    let others = if viewer.is_admin {
        others(&app, &viewer).await?
    } else {
        Vec::new()
    };

    Ok(view::render(&view::Tokens {
        csrf: viewer.csrf().unwrap_or_default().to_string(),
        nav: Nav::of(Some(&viewer)),
        notice: query.notice.as_deref().and_then(notice),
        guides: Guide::all(),
        graces: &view::GRACES,
        groups,
        keys,
        others,
    }))
}

async fn card(app: &App, token: &Token) -> Result<view::TokenCard, HttpError> {
    let limit = i64::from(app.config.web.recent_deliveries);
    let records = app
        .store
        .recent_deliveries(&token.id, limit)
        .await
        .map_err(ops::database)?;
    let datagrepper = app.config.web.datagrepper_url.as_deref();
    let deliveries = records
        .iter()
        .map(|r| view::DeliveryRow {
            time: view::when(r.received_at),
            event: r.topic.clone(),
            outcome: r.outcome.clone(),
            reason: r.reason.clone(),
            message_id: r.message_id.clone(),
            link: message_url(datagrepper, r.message_id.as_deref()),
        })
        .collect();
    Ok(view::TokenCard {
        id: token.id.clone(),
        name: token.name.clone(),
        hook_url: app.config.hook_url(&token.service, &token.hook_id),
        enabled: token.is_enabled(),
        instance_url: token.instance_url.clone(),
        created: view::when(token.created_at),
        last_used: token
            .last_used_at
            .map_or_else(|| "never".into(), view::when),
        old_secret_until: old_secret_until(app, &token.id).await?,
        deliveries,
    })
}

/// When the last old secret of a token stops verifying, if one still does.
async fn old_secret_until(app: &App, token_id: &str) -> Result<Option<String>, HttpError> {
    let secrets = app
        .store
        .token_secrets(token_id)
        .await
        .map_err(ops::database)?;
    let now = now_ms();
    Ok(secrets
        .iter()
        .filter_map(|s| s.expires_at)
        .filter(|at| *at > now)
        .max()
        .map(view::when))
}

async fn others(app: &App, viewer: &Principal) -> Result<Vec<view::OtherRow>, HttpError> {
    let all = app.store.tokens(None).await.map_err(ops::database)?;
    Ok(all
        .into_iter()
        .filter(|t| t.owner != viewer.username)
        .map(|t| view::OtherRow {
            enabled: t.is_enabled(),
            last_used: t.last_used_at.map_or_else(|| "never".into(), view::when),
            id: t.id,
            owner: t.owner,
            service: t.service,
            name: t.name,
        })
        .collect())
}

/// The fixed sentences a redirect back to `/tokens` may ask for; nothing
/// from the query string itself is ever shown.
fn notice(key: &str) -> Option<&'static str> {
    Some(match key {
        "added" => "The token was added.",
        "renamed" => "The label was changed.",
        "rotated" => "The secret was changed.",
        "enabled" => "The token is enabled: deliveries are accepted again.",
        "disabled" => "The token is disabled: deliveries are refused until you enable it.",
        "removed" => "The token was removed; its URL no longer works.",
        "revoked" => "The API key was revoked.",
        _ => return None,
    })
}

/// `POST /tokens`: makes the token and shows its URL and secret once.
pub async fn create(
    app: Arc<App>,
    viewer: Option<Principal>,
    headers: HeaderMap,
    form: CreateForm,
) -> Result<Response, HttpError> {
    let viewer = writer(&app, viewer, &headers, &form.csrf)?;
    // Forms send empty fields; empty means "generate" and "none" here.
    let creation = Creation::parse(
        &form.service,
        &form.name,
        form.secret.as_deref().filter(|s| !s.is_empty()),
        form.instance_url.as_deref().filter(|s| !s.is_empty()),
    )?;
    let guide = Guide::of(creation.kind);
    let (token, secret) = ops::create(&app, &viewer, creation).await?;
    Ok(view::render(&view::SecretShown {
        nav: Nav::of(Some(&viewer)),
        heading: format!("Your new {} token “{}”", guide.title, token.name),
        guide,
        hook_url: app.config.hook_url(&token.service, &token.hook_id),
        token_id: token.id,
        secret,
        old_secret_until: None,
        back_notice: "added",
    }))
}

/// `POST /tokens/{id}/name`.
pub async fn rename(
    app: Arc<App>,
    viewer: Option<Principal>,
    headers: HeaderMap,
    id: String,
    form: TokenForm,
) -> Result<Response, HttpError> {
    let viewer = writer(&app, viewer, &headers, &form.csrf)?;
    let token = ops::owned(&app, &viewer, &id).await?;
    ops::update(&app, &token, Some(form.name.as_deref().unwrap_or("")), None).await?;
    Ok(back("renamed", &token.id))
}

/// `POST /tokens/{id}/enabled`, for owners and admins.
pub async fn set_enabled(
    app: Arc<App>,
    viewer: Option<Principal>,
    headers: HeaderMap,
    id: String,
    form: TokenForm,
) -> Result<Response, HttpError> {
    let viewer = writer(&app, viewer, &headers, &form.csrf)?;
    let token = ops::visible(&app, &viewer, &id).await?;
    let enabled = match form.enabled.as_deref() {
        Some("true") => true,
        Some("false") => false,
        _ => {
            return Err(HttpError::BadRequest(
                "enabled must be true or false".into(),
            ));
        }
    };
    ops::set_enabled(&app, &viewer, &token, enabled).await?;
    let notice = if enabled { "enabled" } else { "disabled" };
    let anchor = if viewer.owns(&token) {
        "token-"
    } else {
        "admin-"
    };
    Ok(redirect(
        &format!("/tokens?notice={notice}#{anchor}{}", token.id),
        &[],
    ))
}

/// `POST /tokens/{id}/rotate`: shows the new secret once.
pub async fn rotate(
    app: Arc<App>,
    viewer: Option<Principal>,
    headers: HeaderMap,
    id: String,
    form: TokenForm,
) -> Result<Response, HttpError> {
    let viewer = writer(&app, viewer, &headers, &form.csrf)?;
    let token = ops::owned(&app, &viewer, &id).await?;
    let grace = form.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
    let supplied = form.secret.as_deref().filter(|s| !s.is_empty());
    let secret = ops::rotate(&app, &viewer, &token, grace, supplied).await?;
    let guide = Guide::named(&token.service).ok_or(HttpError::Internal)?;
    Ok(view::render(&view::SecretShown {
        nav: Nav::of(Some(&viewer)),
        heading: format!("New secret for “{}”", token.name),
        guide,
        hook_url: app.config.hook_url(&token.service, &token.hook_id),
        old_secret_until: old_secret_until(&app, &token.id).await?,
        token_id: token.id,
        secret: Some(secret),
        back_notice: "rotated",
    }))
}

/// `GET /tokens/{id}/remove`: asks first.
pub async fn confirm_remove(
    app: Arc<App>,
    viewer: Option<Principal>,
    id: String,
) -> Result<Response, HttpError> {
    let Some(viewer) = viewer else {
        return Ok(redirect("/login?next=/tokens", &[]));
    };
    let token = ops::owned(&app, &viewer, &id).await?;
    let service = Guide::named(&token.service).map_or("", |g| g.title);
    Ok(view::render(&view::ConfirmRemove {
        nav: Nav::of(Some(&viewer)),
        csrf: viewer.csrf().unwrap_or_default().to_string(),
        id: token.id,
        name: token.name,
        service,
    }))
}

/// `POST /tokens/{id}/remove`.
pub async fn remove(
    app: Arc<App>,
    viewer: Option<Principal>,
    headers: HeaderMap,
    id: String,
    form: TokenForm,
) -> Result<Response, HttpError> {
    let viewer = writer(&app, viewer, &headers, &form.csrf)?;
    let token = ops::owned(&app, &viewer, &id).await?;
    ops::remove(&app, &viewer, &token).await?;
    Ok(redirect("/tokens?notice=removed", &[]))
}

/// `POST /keys`: makes an API key and shows it once.
pub async fn create_key(
    app: Arc<App>,
    viewer: Option<Principal>,
    headers: HeaderMap,
    form: TokenForm,
) -> Result<Response, HttpError> {
    let viewer = writer(&app, viewer, &headers, &form.csrf)?;
    let name = ops::check_name(form.name.as_deref().unwrap_or(""))?;
    let (key, secret) = app
        .store
        .create_api_key(&viewer.username, &name)
        .await
        .map_err(ops::database)?;
    tracing::info!(user.name = %viewer.username, api_key.id = %key.id, "API key made");
    Ok(view::render(&view::KeyShown {
        nav: Nav::of(Some(&viewer)),
        name: key.name,
        key: secret,
    }))
}

/// `POST /keys/{id}/revoke`.
pub async fn revoke_key(
    app: Arc<App>,
    viewer: Option<Principal>,
    headers: HeaderMap,
    id: String,
    form: TokenForm,
) -> Result<Response, HttpError> {
    let viewer = writer(&app, viewer, &headers, &form.csrf)?;
    let revoked = app
        .store
        .revoke_api_key(&viewer.username, &id)
        .await
        .map_err(ops::database)?;
    if !revoked {
        return Err(HttpError::NotFound("no such API key"));
    }
    tracing::info!(user.name = %viewer.username, api_key.id = %id, "API key revoked");
    Ok(redirect("/tokens?notice=revoked#keys", &[]))
}

/// The viewer of a form, once it is known to come from our own page.
fn writer(
    app: &App,
    viewer: Option<Principal>,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Principal, HttpError> {
    let viewer = viewer.ok_or(HttpError::Unauthenticated)?;
    viewer.check_write(app, headers, Some(csrf))?;
    Ok(viewer)
}

fn back(notice: &str, token_id: &str) -> Response {
    redirect(&format!("/tokens?notice={notice}#token-{token_id}"), &[])
}
