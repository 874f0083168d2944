//! `PATCH /api/v1/tokens/{id}`: rename, enable or disable, or change the
//! Pretix instance URL. Admins may change `enabled` on any token and
//! nothing else on others' tokens.

use std::sync::Arc;

use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use super::create_token::csrf;
use super::json::TokenChange;
use super::ops;
use crate::App;
use crate::auth::Principal;
use crate::error::HttpError;

/// Applies the change; answers with the token as it now is.
pub async fn handle(
    app: Arc<App>,
    principal: Principal,
    headers: HeaderMap,
    id: String,
    change: TokenChange,
) -> Result<Response, HttpError> {
    principal.check_write(&app, &headers, csrf(&headers))?;
    let renames = change.name.is_some() || change.instance_url.is_some();
    let token = if renames {
        ops::owned(&app, &principal, &id).await?
    } else {
        ops::visible(&app, &principal, &id).await?
    };
    if renames {
        ops::update(
            &app,
            &token,
            change.name.as_deref(),
            change.instance_url.as_deref(),
        )
        .await?;
    }
    if let Some(enabled) = change.enabled {
        ops::set_enabled(&app, &principal, &token, enabled).await?;
    }

    let token = ops::visible(&app, &principal, &id).await?;
    let view = super::view(&app, &principal, &token).await?;
    Ok(super::reply(StatusCode::OK, &view))
}
