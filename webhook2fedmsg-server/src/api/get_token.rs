//! `GET /api/v1/tokens/{id}`: one token; 404 for a token the caller may
//! not see, exactly as for one that does not exist.

use std::sync::Arc;

use warp::http::StatusCode;
use warp::reply::Response;

use super::ops;
use crate::App;
use crate::auth::Principal;
use crate::error::HttpError;

/// Answers with the token.
pub async fn handle(
    app: Arc<App>,
    principal: Principal,
    id: String,
) -> Result<Response, HttpError> {
    let token = ops::visible(&app, &principal, &id).await?;
    let view = super::view(&app, &principal, &token).await?;
    Ok(super::reply(StatusCode::OK, &view))
}
