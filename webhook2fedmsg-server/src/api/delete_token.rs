//! `DELETE /api/v1/tokens/{id}`: removes an owned token; its URL stops
//! working at once.

use std::sync::Arc;

use warp::http::{HeaderMap, StatusCode};
use warp::reply::{Reply as _, Response};

use super::create_token::csrf;
use super::ops;
use crate::App;
use crate::auth::Principal;
use crate::error::HttpError;

/// Removes the token; 204.
pub async fn handle(
    app: Arc<App>,
    principal: Principal,
    headers: HeaderMap,
    id: String,
) -> Result<Response, HttpError> {
    principal.check_write(&app, &headers, csrf(&headers))?;
    let token = ops::owned(&app, &principal, &id).await?;
    ops::remove(&app, &principal, &token).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
