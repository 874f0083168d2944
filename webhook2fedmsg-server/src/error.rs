//! Errors of request handlers, and their one mapping to HTTP.
//!
//! Which type goes where: the core's `SignatureError` and `DeliveryError`
//! say what a sender got wrong; handlers wrap them, and everything else a
//! request can meet, in [`HttpError`], a warp rejection. [`recover`] turns
//! every rejection, warp's own included, into a status and a JSON body
//! `{"error": "<code>", "message": "<text>"}`. A sender's mistake is a 4xx
//! with a precise message, logged at info by the handler; anything internal
//! is a 500 or 503 with a generic message, logged once, with the detail,
//! where it happened. `anyhow` is only for startup and the command line.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use webhook2fedmsg_core::{DeliveryError, SignatureError};

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No such route, service or hook.
    #[error("{0}")]
    NotFound(&'static str),
    /// The token exists but is disabled.
    #[error("this webhook's token is disabled")]
    TokenDisabled,
    /// The signature or token of a delivery is wrong or missing.
    #[error("{0}")]
    Signature(#[from] SignatureError),
    /// The delivery's signature verifies against no token of the service.
    #[error("the signature matches no token of this service")]
    NoMatchingToken,
    /// A service that signs nothing must be reached by its hook URL.
    #[error("{0} deliveries are not signed: use the hook URL shown for the token")]
    UnsignedService(&'static str),
    /// The body cannot be read as this service's delivery.
    #[error("{0}")]
    Delivery(#[from] DeliveryError),
    /// The body is over the configured limit.
    #[error("the body is larger than the limit of {0} bytes")]
    TooLarge(u64),
    /// The request itself is malformed (wrong method, bad header).
    #[error("{0}")]
    BadRequest(String),
    /// The method is not allowed here.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body did not arrive whole within the configured time (seconds).
    #[error("the body did not arrive within {0} s")]
    BodyTimeout(u64),
    /// An API request body that is not `application/json`.
    #[error("send the body as application/json")]
    NotJson,
    /// A page or API call that needs a login, without credentials.
    #[error("log in, or send Authorization: Bearer with an API key or an access token")]
    Unauthenticated,
    /// Credentials were sent but are not valid.
    #[error("{0}")]
    BadCredentials(&'static str),
    /// A state change with the session cookie from another site.
    #[error("cross-site requests may not change anything")]
    CrossSite,
    /// A state change with the session cookie without the session's CSRF
    /// token.
    #[error("the CSRF token is missing or wrong: reload the page and try again")]
    CsrfRejected,
    /// Logged in, but not allowed to do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The request is valid but does not fit the resource as it is (a
    /// Pretix instance URL for a GitHub token).
    #[error("{0}")]
    Conflict(&'static str),
    /// A login that cannot be completed; no session was opened.
    #[error("{0}")]
    LoginFailed(String),
    /// No OpenID Connect provider is configured.
    #[error(
        "login is not configured on this server (oidc.provider_url, oidc.client_id and \
         oidc.client_secret are unset); tokens are managed with `webhook2fedmsg token`"
    )]
    LoginNotConfigured,
    /// The OpenID Connect provider cannot be reached.
    #[error("the login provider cannot be reached: try again later")]
    ProviderUnavailable,
    /// The database or another part is away: nothing was stored.
    #[error("the service is temporarily unavailable, nothing was stored: retry later")]
    Unavailable,
    /// The server holds as many webhook bodies as it may
    /// (`limits.max_inflight_body_bytes`): nothing was read or stored.
    #[error("the server is busy receiving other webhooks, nothing was stored: retry later")]
    Busy,
    /// A bug or an unexpected failure; the detail is in the log.
    #[error("internal error")]
    Internal,
}

impl warp::reject::Reject for HttpError {}

impl HttpError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::NotFound(_) => StatusCode::NOT_FOUND,
            HttpError::TokenDisabled => StatusCode::FORBIDDEN,
            HttpError::Signature(_)
            | HttpError::NoMatchingToken
            | HttpError::UnsignedService(_) => StatusCode::UNAUTHORIZED,
            HttpError::Delivery(DeliveryError::UnsupportedContentType(_)) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            HttpError::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            HttpError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            HttpError::Delivery(_) | HttpError::BadRequest(_) => StatusCode::BAD_REQUEST,
            HttpError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::Unauthenticated | HttpError::BadCredentials(_) => StatusCode::UNAUTHORIZED,
            HttpError::CrossSite | HttpError::CsrfRejected | HttpError::Forbidden(_) => {
                StatusCode::FORBIDDEN
            }
            HttpError::Conflict(_) => StatusCode::CONFLICT,
            HttpError::LoginFailed(_) => StatusCode::BAD_REQUEST,
            HttpError::LoginNotConfigured => StatusCode::NOT_FOUND,
            HttpError::ProviderUnavailable => StatusCode::BAD_GATEWAY,
            HttpError::Unavailable | HttpError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            HttpError::NotFound(_) => "not_found",
            HttpError::TokenDisabled => "token_disabled",
            HttpError::Signature(SignatureError::NoSecret) => "token_misconfigured",
            HttpError::Signature(_) => "invalid_signature",
            HttpError::NoMatchingToken => "invalid_signature",
            HttpError::UnsignedService(_) => "hook_url_required",
            HttpError::Delivery(DeliveryError::UnsupportedContentType(_)) => {
                "unsupported_content_type"
            }
            HttpError::Delivery(_) => "invalid_payload",
            HttpError::TooLarge(_) => "payload_too_large",
            HttpError::BadRequest(_) => "bad_request",
            HttpError::NotJson => "unsupported_media_type",
            HttpError::BodyTimeout(_) => "body_timeout",
            HttpError::MethodNotAllowed => "method_not_allowed",
            HttpError::Unauthenticated => "unauthenticated",
            HttpError::BadCredentials(_) => "invalid_credentials",
            HttpError::CrossSite => "cross_site_request",
            HttpError::CsrfRejected => "csrf_failed",
            HttpError::Forbidden(_) => "forbidden",
            HttpError::Conflict(_) => "conflict",
            HttpError::LoginFailed(_) => "login_failed",
            HttpError::LoginNotConfigured => "login_not_configured",
            HttpError::ProviderUnavailable => "provider_unavailable",
            HttpError::Unavailable => "unavailable",
            HttpError::Busy => "busy",
            HttpError::Internal => "internal_error",
        }
    }

    /// The JSON response.
    pub fn into_response(&self) -> Response {
        let mut response = json_error(self.status(), self.code(), &self.to_string());
        if matches!(self, HttpError::Busy) {
            response.headers_mut().insert(
                warp::http::header::RETRY_AFTER,
                warp::http::HeaderValue::from_static("5"),
            );
        }
        if self.status() == StatusCode::UNAUTHORIZED
            && matches!(
                self,
                HttpError::Unauthenticated | HttpError::BadCredentials(_)
            )
        {
            response.headers_mut().insert(
                warp::http::header::WWW_AUTHENTICATE,
                warp::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

/// A JSON error response.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ErrorBody {
        error: code,
        message,
    };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

/// Maps every rejection to its JSON error response.
pub async fn recover(rejection: warp::Rejection) -> Result<Response, Infallible> {
    if let Some(error) = rejection.find::<HttpError>() {
        return Ok(error.into_response());
    }
    let error = if rejection.is_not_found() {
        HttpError::NotFound("not found")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        HttpError::MethodNotAllowed
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        HttpError::BadRequest(e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::MissingHeader>() {
        HttpError::BadRequest(e.to_string())
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        HttpError::BadRequest("the query string is not valid here".into())
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        HttpError::BadRequest("send a Content-Length".into())
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        HttpError::TooLarge(0)
    } else if let Some(e) = rejection.find::<warp::filters::body::BodyDeserializeError>() {
        HttpError::BadRequest(e.to_string())
    } else if rejection
        .find::<warp::reject::UnsupportedMediaType>()
        .is_some()
    {
        HttpError::BadRequest("unsupported content type".into())
    } else {
        tracing::error!(?rejection, "unhandled rejection");
        HttpError::Internal
    };
    Ok(error.into_response())
}
