//! `GET /api/v1/me`: who the credentials belong to.

use warp::http::StatusCode;
use warp::reply::Response;

use super::json::Me;
use crate::auth::{Credential, Principal};

/// Answers with the principal's account.
pub fn handle(principal: Principal) -> Response {
    let authenticated_by = match principal.credential {
        Credential::Session { .. } => "session",
        Credential::ApiKey => "api_key",
        Credential::AccessToken => "access_token",
    };
    let me = Me {
        csrf_token: principal.csrf().map(str::to_string),
        username: principal.username,
        email: principal.email,
        groups: principal.groups,
        is_admin: principal.is_admin,
        authenticated_by: authenticated_by.into(),
    };
    super::reply(StatusCode::OK, &me)
}
