//! The web pages: `/` (what the service does), `/login` and its callback,
//! `/tokens` and its forms, and `/static/` (one stylesheet, one script for
//! the copy buttons, and the icon, so that browsers do not ask for a
//! `/favicon.ico` we do not have).
//!
//! Pages are rendered on the server ([`view`]) and work without
//! JavaScript. Every response carries a Content-Security-Policy that
//! allows only our own stylesheet and script (no inline script, no
//! framing) and `Referrer-Policy: same-origin`: no other site learns which
//! of our pages linked to it. (Not `no-referrer`: with it browsers send
//! `Origin: null` on our own form posts, which the origin check must
//! refuse.) Errors on these routes are HTML pages ([`recover`]); other
//! routes' errors stay JSON. Webhook URLs are built from `public_url`,
//! never from request headers.

use std::sync::Arc;

use warp::Filter;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::App;
use crate::auth::{self, Principal, login};
use crate::error::HttpError;

pub mod guide;
mod pages;
mod view;

/// The Content-Security-Policy of every page.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// The largest form body read.
const MAX_FORM_BYTES: u64 = 16 * 1024;

const STYLE: &str = include_str!("static/style.css");
const SCRIPT: &str = include_str!("static/copy.js");
const ICON: &str = include_str!("static/icon.svg");

/// Every page route.
pub fn routes(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let viewer = auth::viewer(app.clone());
    let with_app = {
        let app = app.clone();
        warp::any().map(move || app.clone())
    };
    let headers = warp::header::headers_cloned();

    let index = warp::path::end()
        .and(warp::get())
        .and(with_app.clone())
        .and(viewer.clone())
        .and_then(|app, viewer| reject(pages::index(app, viewer)));
    let start = warp::path!("login")
        .and(warp::get())
        .and(with_app.clone())
        .and(viewer.clone())
        .and(warp::query::<login::LoginQuery>())
        .and_then(|app, viewer, query| reject(login::start(app, viewer, query)));
    let callback = warp::path!("login" / "callback")
        .and(warp::get())
        .and(with_app.clone())
        .and(warp::query::<login::CallbackQuery>())
        .and(warp::cookie::optional::<String>(
            auth::session::LOGIN_COOKIE,
        ))
        .and_then(|app, query, bound| reject(login::callback(app, query, bound)));
    let logout = warp::path!("logout")
        .and(warp::post())
        .and(with_app.clone())
        .and(viewer.clone())
        .and(headers)
        .and(form::<login::LogoutForm>())
        .and_then(|app, viewer, headers, form| reject(login::logout(app, viewer, headers, form)));
    let tokens = warp::path!("tokens")
        .and(warp::get())
        .and(with_app.clone())
        .and(viewer.clone())
        .and(warp::query::<pages::TokensQuery>())
        .and_then(|app, viewer, query| reject(pages::tokens(app, viewer, query)));
    let create = warp::path!("tokens")
        .and(warp::post())
        .and(with_app.clone())
        .and(viewer.clone())
        .and(headers)
        .and(form::<pages::CreateForm>())
        .and_then(|app, viewer, headers, form| reject(pages::create(app, viewer, headers, form)));
    let confirm = warp::path!("tokens" / String / "remove")
        .and(warp::get())
        .and(with_app.clone())
        .and(viewer.clone())
        .and_then(|id, app, viewer| reject(pages::confirm_remove(app, viewer, id)));
    let create_key = warp::path!("keys")
        .and(warp::post())
        .and(with_app.clone())
        .and(viewer.clone())
        .and(headers)
        .and(form::<pages::TokenForm>())
        .and_then(|app, viewer, headers, form| {
            reject(pages::create_key(app, viewer, headers, form))
        });
    let token_action = warp::path!("tokens" / String / String)
        .and(warp::post())
        .and(with_app.clone())
        .and(viewer.clone())
        .and(headers)
        .and(form::<pages::TokenForm>())
        .and_then(|id, action: String, app, viewer, headers, form| {
            reject(token_action(action, app, viewer, headers, id, form))
        });
    let revoke_key = warp::path!("keys" / String / "revoke")
        .and(warp::post())
        .and(with_app)
        .and(viewer)
        .and(headers)
        .and(form::<pages::TokenForm>())
        .and_then(|id, app, viewer, headers, form| {
            reject(pages::revoke_key(app, viewer, headers, id, form))
        });
    let style = warp::path!("static" / "style.css")
        .and(warp::get())
        .map(|| asset(STYLE, "text/css; charset=utf-8"));
    let script = warp::path!("static" / "copy.js")
        .and(warp::get())
        .map(|| asset(SCRIPT, "text/javascript; charset=utf-8"));
    let icon = warp::path!("static" / "icon.svg")
        .and(warp::get())
        .map(|| asset(ICON, "image/svg+xml"));

    let pages = index
        .or(start)
        .unify()
        .or(callback)
        .unify()
        .or(logout)
        .unify()
        .or(tokens)
        .unify()
        .or(create)
        .unify()
        .or(confirm)
        .unify()
        .or(token_action)
        .unify()
        .or(create_key)
        .unify()
        .or(revoke_key)
        .unify()
        .or(style)
        .unify()
        .or(script)
        .unify()
        .or(icon)
        .unify();
    pages.recover(recover).unify().map(with_security_headers)
}

/// The four form actions on one token, by the last path segment.
async fn token_action(
    action: String,
    app: Arc<App>,
    viewer: Option<Principal>,
    headers: HeaderMap,
    id: String,
    form: pages::TokenForm,
) -> Result<Response, HttpError> {
    match action.as_str() {
        "name" => pages::rename(app, viewer, headers, id, form).await,
        "enabled" => pages::set_enabled(app, viewer, headers, id, form).await,
        "rotate" => pages::rotate(app, viewer, headers, id, form).await,
        "remove" => pages::remove(app, viewer, headers, id, form).await,
        _ => Err(HttpError::NotFound("no such page")),
    }
}

async fn reject(
    work: impl Future<Output = Result<Response, HttpError>>,
) -> Result<Response, warp::Rejection> {
    work.await.map_err(warp::reject::custom)
}

/// A form body of at most [`MAX_FORM_BYTES`], with a deadline
/// ([`crate::hooks::small_body`]): it is read before the session is
/// checked, so a stranger must not be able to hold the connection with it.
fn form<T: serde::de::DeserializeOwned + Send>()
-> impl Filter<Extract = (T,), Error = warp::Rejection> + Clone {
    crate::hooks::small_body(MAX_FORM_BYTES).and_then(|body: bytes::Bytes| async move {
        serde_urlencoded::from_bytes::<T>(&body).map_err(|e| {
            warp::reject::custom(HttpError::BadRequest(format!("the form is not valid: {e}")))
        })
    })
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

fn with_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// The HTML error page of a rejection on a page route. "Not found" is
/// passed on, so that later routes (the API, the webhooks) get their turn.
async fn recover(rejection: warp::Rejection) -> Result<Response, warp::Rejection> {
    if rejection.is_not_found() {
        return Err(rejection);
    }
    let (status, message) = if let Some(error) = rejection.find::<HttpError>() {
        (error.status(), error.to_string())
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        let error = HttpError::TooLarge(MAX_FORM_BYTES);
        (error.status(), error.to_string())
    } else if is_malformed(&rejection) {
        // Looked for before "method not allowed": a form posted to the
        // right path is about the form, whatever the other routes say.
        let message = "the form or query is not what this page expects";
        (StatusCode::BAD_REQUEST, message.to_string())
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        let error = HttpError::MethodNotAllowed;
        (error.status(), error.to_string())
    } else {
        return Err(rejection);
    };
    let title = match status {
        StatusCode::UNAUTHORIZED => "Please log in",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        s if s.is_server_error() => "Something went wrong",
        _ => "That did not work",
    };
    // The header of an error page shows no one: some errors happen before
    // or instead of reading the session.
    let page = view::ErrorPage {
        nav: None,
        title: title.into(),
        message,
    };
    Ok(view::render_with(status, &page))
}

fn is_malformed(rejection: &warp::Rejection) -> bool {
    rejection
        .find::<warp::filters::body::BodyDeserializeError>()
        .is_some()
        || rejection.find::<warp::reject::InvalidQuery>().is_some()
        || rejection
            .find::<warp::reject::UnsupportedMediaType>()
            .is_some()
        || rejection.find::<warp::reject::LengthRequired>().is_some()
}
