//! Receiving webhooks: `POST /<service>/<hook-id>` and `POST /<service>`.
//!
//! The filters here do routing and extraction only: the service from the
//! path, the headers, and the body read up to the configured limit (a
//! larger body gets 413 before it is read whole, whether its length is
//! announced or it arrives chunked). Before the body is read, the token's
//! state and the signature headers are checked, and room for the body is
//! reserved in the [`BodyBudget`]. [`receive`] does the work. A trailing
//! slash is accepted, never redirected; no CORS headers are sent.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt as _};
use warp::Filter;
use warp::http::HeaderMap;
use webhook2fedmsg_core::{Delivery, Kind};

use crate::App;
use crate::error::HttpError;

mod budget;
mod receive;

pub use budget::{BodyBudget, Reservation};
use receive::Named;
pub use receive::receive;

/// The webhook routes.
pub fn routes(
    app: Arc<App>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let limit = app.config.limits.max_body_bytes;
    let timeout = Duration::from_secs(app.config.limits.body_timeout_seconds);
    // The path first: a path that is no webhook's is 404 whatever the
    // method, and only a webhook path answers 405 to a GET. The hook id is
    // looked up before the body is read, so an unknown URL costs no upload.
    service()
        .and(hook_id())
        .and(warp::post())
        .and(with_app(app))
        .and_then(|kind, hook: Option<String>, app: Arc<App>| async move {
            let token = receive::named_token(&app, kind, hook.as_deref())
                .await
                .map_err(warp::reject::custom)?;
            Ok::<_, warp::Rejection>((kind, token, app))
        })
        .untuple_one()
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and_then(
            move |kind: Kind, token: Option<Named>, app: Arc<App>, headers: HeaderMap, stream| {
                async move {
                    // What the body cannot change is refused before it is
                    // read: a disabled token, missing or malformed
                    // signature headers.
                    let delivery = Delivery::new(header_pairs(&headers), Vec::new());
                    let token_id = token.as_ref().map(Named::token_id);
                    let read = async {
                        receive::check_before_reading(kind, token.as_ref(), &delivery)?;
                        let length = headers
                            .get(warp::http::header::CONTENT_LENGTH)
                            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                        read_body(stream, length, limit, timeout, Some(&app.body_budget)).await
                    }
                    .await;
                    // The reservation holds the body's room until it is
                    // stored.
                    let (body, _reservation) = match read {
                        Ok(read) => read,
                        Err(error) => {
                            receive::refused_before_reading(&app, kind, token_id, &error);
                            return Err(warp::reject::custom(error));
                        }
                    };
                    receive(app, kind, token, delivery, body)
                        .await
                        .map_err(warp::reject::custom)
                }
            },
        )
}

fn with_app(
    app: Arc<App>,
) -> impl Filter<Extract = (Arc<App>,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || app.clone())
}

/// The first path segment, when it names a service.
fn service() -> impl Filter<Extract = (Kind,), Error = warp::Rejection> + Clone {
    warp::path::param::<String>().and_then(|name: String| async move {
        name.parse::<Kind>().map_err(|_| warp::reject::not_found())
    })
}

/// The hook id, if the path has one, and nothing more (a trailing slash is
/// fine).
fn hook_id() -> impl Filter<Extract = (Option<String>,), Error = warp::Rejection> + Clone {
    warp::path::tail().and_then(|tail: warp::path::Tail| async move {
        let segments: Vec<&str> = tail.as_str().split('/').filter(|s| !s.is_empty()).collect();
        match segments.as_slice() {
            [] => Ok(None),
            [hook] => Ok(Some(hook.to_string())),
            _ => Err(warp::reject::not_found()),
        }
    })
}

/// How long the small bodies of the pages' forms and of the JSON API may
/// take to arrive whole (408 after that), so that a client trickling one
/// cannot hold a connection: they are at most a few KB.
const SMALL_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// A small body (a form, an API request) of at most `limit` bytes (413
/// past it), arrived whole within [`SMALL_BODY_TIMEOUT`] (408 after it).
pub(crate) fn small_body(
    limit: u64,
) -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |length: Option<u64>, stream| async move {
            match read_body(stream, length, limit, SMALL_BODY_TIMEOUT, None).await {
                Ok((body, _)) => Ok(body),
                Err(error) => Err(warp::reject::custom(error)),
            }
        })
}

/// The body, refused with 413 as soon as it is known to exceed `limit`
/// (by its announced `length` or as it arrives), and with 408 when it has
/// not arrived whole within `timeout`. With a `budget`, room for the body
/// is reserved before it is read (503 when there is none), and returned
/// with it.
async fn read_body<S, B>(
    stream: S,
    length: Option<u64>,
    limit: u64,
    timeout: Duration,
    budget: Option<&BodyBudget>,
) -> Result<(Bytes, Reservation), HttpError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: bytes::Buf,
{
    if length.is_some_and(|l| l > limit) {
        return Err(HttpError::TooLarge(limit));
    }
    tokio::time::timeout(timeout, read_limited(stream, length, limit, budget))
        .await
        .unwrap_or(Err(HttpError::BodyTimeout(timeout.as_secs())))
}

/// Reads a body stream whole, refusing it with 413 once it passes `limit`
/// bytes, and keeping room for it in the `budget`: its announced `length`
/// at once, or step by step as it arrives.
async fn read_limited<S, B>(
    mut stream: S,
    length: Option<u64>,
    limit: u64,
    budget: Option<&BodyBudget>,
) -> Result<(Bytes, Reservation), HttpError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: bytes::Buf,
{
    let mut reservation = Reservation::default();
    if let (Some(budget), Some(length)) = (budget, length) {
        budget.grow(&mut reservation, length, limit).await?;
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk =
            chunk.map_err(|e| HttpError::BadRequest(format!("cannot read the body: {e}")))?;
        let size = (body.len() + chunk.remaining()) as u64;
        if size > limit {
            return Err(HttpError::TooLarge(limit));
        }
        if let Some(budget) = budget {
            budget.grow(&mut reservation, size, limit).await?;
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok((body.freeze(), reservation))
}

/// Header pairs for the core; values that are not UTF-8 are read lossily
/// (they then match no signature).
pub(crate) fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}
