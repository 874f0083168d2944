//! The JSON API under `/api/v1`, for scripts and for the pages' copy of the
//! same facts.
//!
//! The filters here route and extract: the principal
//! ([`crate::auth::api_principal`]: 401 without credentials), path
//! parameters, queries and JSON bodies (at most [`MAX_BODY_BYTES`]); one
//! file per action does the work, with the shared rules in [`ops`] and the
//! wire types in [`json`]. Errors are the server's JSON errors
//! (`{"error", "message"}`). No CORS headers are ever sent, so browsers
//! keep other sites' pages from reading anything; cookie-authenticated
//! writes also need `X-CSRF-Token`. [`openapi`] describes all of it.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use warp::Filter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::{Reply as _, Response};

use crate::App;
use crate::allow;
use crate::auth::{self, Principal};
use crate::error::HttpError;

mod create_token;
mod delete_token;
mod deliveries;
mod get_token;
pub mod json;
mod list_tokens;
mod me;
pub mod openapi;
pub mod ops;
mod rotate_token;
mod services;
mod update_token;

/// The largest request body the API reads.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// Every `/api/v1` route.
pub fn routes(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let v1 = warp::path("api").and(warp::path("v1"));
    let who = auth::api_principal(app.clone());
    let app = warp::any().map(move || app.clone());
    let headers = warp::header::headers_cloned();

    let openapi = v1
        .and(warp::path!("openapi.json"))
        .and(warp::get())
        .and(app.clone())
        .map(|app: Arc<App>| openapi::handle(&app));
    let services = v1
        .and(warp::path!("services"))
        .and(warp::get())
        .map(services::handle);
    let me = v1
        .and(warp::path!("me"))
        .and(warp::get())
        .and(who.clone())
        .map(me::handle);
    let list = v1
        .and(warp::path!("tokens"))
        .and(warp::get())
        .and(app.clone())
        .and(who.clone())
        .and(warp::query::<json::ListQuery>())
        .and_then(|app, who, query| reject(list_tokens::handle(app, who, query)));
    let create = v1
        .and(warp::path!("tokens"))
        .and(warp::post())
        .and(app.clone())
        .and(who.clone())
        .and(headers)
        .and(json_body::<json::NewToken>(false))
        .and_then(|app, who, headers, body| reject(create_token::handle(app, who, headers, body)));
    let get = v1
        .and(warp::path!("tokens" / String))
        .and(warp::get())
        .and(app.clone())
        .and(who.clone())
        .and_then(|id, app, who| reject(get_token::handle(app, who, id)));
    let update = v1
        .and(warp::path!("tokens" / String))
        .and(warp::patch())
        .and(app.clone())
        .and(who.clone())
        .and(headers)
        .and(json_body::<json::TokenChange>(false))
        .and_then(|id, app, who, headers, body| {
            reject(update_token::handle(app, who, headers, id, body))
        });
    let delete = v1
        .and(warp::path!("tokens" / String))
        .and(warp::delete())
        .and(app.clone())
        .and(who.clone())
        .and(headers)
        .and_then(|id, app, who, headers| reject(delete_token::handle(app, who, headers, id)));
    let rotate = v1
        .and(warp::path!("tokens" / String / "rotate"))
        .and(warp::post())
        .and(app.clone())
        .and(who.clone())
        .and(headers)
        .and(json_body::<json::Rotation>(true))
        .and_then(|id, app, who, headers, body| {
            reject(rotate_token::handle(app, who, headers, id, body))
        });
    let deliveries = v1
        .and(warp::path!("tokens" / String / "deliveries"))
        .and(warp::get())
        .and(app.clone())
        .and(who)
        .and(warp::query::<json::DeliveriesQuery>())
        .and_then(|id, app, who, query| reject(deliveries::handle(app, who, id, query)));

    let unknown = warp::path("api")
        .and(warp::path::full())
        .and(warp::method())
        .and_then(|path: warp::path::FullPath, method| async move {
            Err::<Response, _>(unknown(path.as_str(), &method))
        });

    openapi
        .or(services)
        .unify()
        .or(me)
        .unify()
        .or(list)
        .unify()
        .or(create)
        .unify()
        .or(get)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(rotate)
        .unify()
        .or(deliveries)
        .unify()
        .or(unknown)
        .unify()
        .recover(recover)
        .unify()
        .map(|mut response: Response| {
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        })
}

/// The rejection of a request no API route took: 404 for a path the API
/// does not have, 405 for a method the path does not answer, and nothing
/// of its own when the route exists (its own rejection then stands).
fn unknown(path: &str, method: &warp::http::Method) -> warp::Rejection {
    if allow::methods(path).is_none() {
        warp::reject::custom(HttpError::NotFound("the API has no such path"))
    } else if !allow::answers(path, method.as_str()) {
        warp::reject::custom(HttpError::MethodNotAllowed)
    } else {
        warp::reject::not_found()
    }
}

/// Turns every rejection under `/api` into its JSON error here, so that
/// the other routes of the server (which answer other methods) have no
/// say about API paths; other paths are passed on.
async fn recover(rejection: warp::Rejection) -> Result<Response, warp::Rejection> {
    let error = if let Some(error) = rejection.find::<HttpError>() {
        return Ok(error.into_response());
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        HttpError::BadRequest("the query string is not valid here".into())
    } else if let Some(header) = rejection.find::<warp::reject::InvalidHeader>() {
        // Looked for before "method not allowed": a header that is not
        // text (a non-ASCII Authorization) is what is wrong, on any route.
        if header.name() == "authorization" {
            HttpError::BadCredentials("the Authorization header is not valid")
        } else {
            HttpError::BadRequest(header.to_string())
        }
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        HttpError::MethodNotAllowed
    } else if rejection.is_not_found() {
        // Not an API path at all: the next routes' turn.
        return Err(rejection);
    } else {
        tracing::error!(?rejection, "unhandled rejection in the API");
        HttpError::Internal
    };
    Ok(error.into_response())
}

/// A handler's error as a rejection, for the server's one `recover`.
async fn reject(
    work: impl Future<Output = Result<Response, HttpError>>,
) -> Result<Response, warp::Rejection> {
    work.await.map_err(warp::reject::custom)
}

/// A JSON reply.
pub fn reply<T: Serialize>(status: StatusCode, body: &T) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// A JSON body of at most [`MAX_BODY_BYTES`]; with `empty_is_default`, an
/// empty body reads as `T::default()`.
fn json_body<T: DeserializeOwned + Default + Send + 'static>(
    empty_is_default: bool,
) -> impl Filter<Extract = (T,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("content-type")
        .and(crate::hooks::small_body(MAX_BODY_BYTES))
        .and_then(move |kind: Option<String>, body: bytes::Bytes| async move {
            parse_json(kind.as_deref(), &body, empty_is_default).map_err(warp::reject::custom)
        })
}

fn parse_json<T: DeserializeOwned + Default>(
    kind: Option<&str>,
    body: &[u8],
    empty_is_default: bool,
) -> Result<T, HttpError> {
    if body.is_empty() && empty_is_default {
        return Ok(T::default());
    }
    let is_json = kind.is_some_and(|k| {
        let essence = k.split(';').next().unwrap_or("").trim();
        essence.eq_ignore_ascii_case("application/json")
    });
    if !is_json {
        return Err(HttpError::NotJson);
    }
    // serde would also read a struct from an array of its fields in order.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(HttpError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| HttpError::BadRequest(format!("the body is not valid here: {e}")))
}

/// The view of a token for `principal`: URL and secrets for its owner only.
async fn view(
    app: &App,
    principal: &Principal,
    token: &crate::store::Token,
) -> Result<json::TokenView, HttpError> {
    if !principal.owns(token) {
        return Ok(json::TokenView::new(token, None, None));
    }
    let secrets = app
        .store
        .token_secrets(&token.id)
        .await
        .map_err(ops::database)?;
    let now = crate::store::now_ms();
    let live: Vec<_> = secrets
        .into_iter()
        .filter(|s| s.expires_at.is_none_or(|at| at > now))
        .collect();
    let url = app.config.hook_url(&token.service, &token.hook_id);
    Ok(json::TokenView::new(token, Some(url), Some(&live)))
}
