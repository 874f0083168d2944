//! `POST /api/v1/tokens/{id}/rotate`: a new secret for an owned token,
//! answered once; the old ones keep verifying for the grace period.

use std::sync::Arc;

use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use super::create_token::csrf;
use super::json::{Rotation, WithSecret};
use super::ops::{self, DEFAULT_GRACE_SECONDS};
use crate::App;
use crate::auth::Principal;
use crate::error::HttpError;

/// Rotates the secret; answers with the token and the new secret.
pub async fn handle(
    app: Arc<App>,
    principal: Principal,
    headers: HeaderMap,
    id: String,
    rotation: Rotation,
) -> Result<Response, HttpError> {
    principal.check_write(&app, &headers, csrf(&headers))?;
    let token = ops::owned(&app, &principal, &id).await?;
    let grace = rotation.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
    let secret = ops::rotate(&app, &principal, &token, grace, rotation.secret.as_deref()).await?;
    let token = super::view(&app, &principal, &token).await?;
    let body = WithSecret {
        token,
        secret: Some(secret),
    };
    Ok(super::reply(StatusCode::OK, &body))
}
