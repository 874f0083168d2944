//! `GET /api/v1/services`: the known services and what each needs on its
//! side. Public: it holds nothing about anyone.

use warp::http::StatusCode;
use warp::reply::Response;

use crate::web::guide::Guide;

/// Answers with every service's guide.
pub fn handle() -> Response {
    super::reply(StatusCode::OK, &Guide::all())
}
