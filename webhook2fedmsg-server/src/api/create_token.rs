//! `POST /api/v1/tokens`: a new token, answered with its secret once.

use std::sync::Arc;

use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use super::json::{NewToken, WithSecret};
use super::ops::{self, Creation};
use crate::App;
use crate::auth::Principal;
use crate::auth::session::CSRF_HEADER;
use crate::error::HttpError;

/// Creates the token; 201 with the token and its secret.
pub async fn handle(
    app: Arc<App>,
    principal: Principal,
    headers: HeaderMap,
    body: NewToken,
) -> Result<Response, HttpError> {
    principal.check_write(&app, &headers, csrf(&headers))?;
    let creation = Creation::parse(
        &body.service,
        &body.name,
        body.secret.as_deref(),
        body.instance_url.as_deref(),
    )?;
    let (token, secret) = ops::create(&app, &principal, creation).await?;
    let token = super::view(&app, &principal, &token).await?;
    Ok(super::reply(
        StatusCode::CREATED,
        &WithSecret { token, secret },
    ))
}

/// The CSRF header of a request, if any.
pub(super) fn csrf(headers: &HeaderMap) -> Option<&str> {
    headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok())
}
