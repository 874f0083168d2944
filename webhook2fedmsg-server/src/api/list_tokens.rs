//! `GET /api/v1/tokens`: the caller's tokens (`?all=true`: an admin's view
//! of everybody's).

use std::sync::Arc;

use warp::http::StatusCode;
use warp::reply::Response;

use super::json::ListQuery;
use super::ops;
use crate::App;
use crate::auth::Principal;
use crate::error::HttpError;

/// Lists tokens, by service then age.
pub async fn handle(
    app: Arc<App>,
    principal: Principal,
    query: ListQuery,
) -> Result<Response, HttpError> {
    let everybody = query.all.unwrap_or(false);
    if everybody && !principal.is_admin {
        return Err(HttpError::Forbidden(
            "only admins may list everybody's tokens",
        ));
    }
    let owner = (!everybody).then_some(principal.username.as_str());
    let tokens = app.store.tokens(owner).await.map_err(ops::database)?;
    let mut views = Vec::with_capacity(tokens.len());
    for token in &tokens {
        views.push(super::view(&app, &principal, token).await?);
    }
    Ok(super::reply(StatusCode::OK, &views))
}
