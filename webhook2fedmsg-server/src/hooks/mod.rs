//! Receiving webhooks: `POST /<service>/<hook-id>` and `POST /<service>`.
//!
//! The filters here do routing and extraction only: the service from the
//! path, the headers, and the body read up to the configured limit (a
//! larger body gets 413 before it is read whole, whether its length is
//! announced or it arrives chunked). [`receive`] does the work. A trailing
//! slash is accepted, never redirected; no CORS headers are sent.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt as _};
use warp::Filter;
use warp::http::HeaderMap;
use webhook2fedmsg_core::Kind;

use crate::App;
use crate::error::HttpError;

mod receive;

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
            move |kind: Kind, token, app: Arc<App>, headers: HeaderMap, stream| async move {
                let length = headers
                    .get(warp::http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                // Known gap: the body is read whole before its signature
                // can be checked, and nothing caps the bytes of all bodies
                // in flight together: `limit` times the connection cap.
                let body = match read_body(stream, length, limit, timeout).await {
                    Ok(body) => body,
                    Err(error) => {
                        receive::refused_before_reading(&app, kind, &error);
                        return Err(warp::reject::custom(error));
                    }
                };
                receive(app, kind, token, headers, body)
                    .await
                    .map_err(warp::reject::custom)
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
            read_body(stream, length, limit, SMALL_BODY_TIMEOUT)
                .await
                .map_err(warp::reject::custom)
        })
}

/// The body, refused with 413 as soon as it is known to exceed `limit`
/// (by its announced `length` or as it arrives), and with 408 when it has
/// not arrived whole within `timeout`.
async fn read_body<S, B>(
    stream: S,
    length: Option<u64>,
    limit: u64,
    timeout: Duration,
) -> Result<Bytes, HttpError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: bytes::Buf,
{
    if length.is_some_and(|l| l > limit) {
        return Err(HttpError::TooLarge(limit));
    }
    tokio::time::timeout(timeout, read_limited(stream, limit))
        .await
        .unwrap_or(Err(HttpError::BodyTimeout(timeout.as_secs())))
}

/// Reads a body stream whole, refusing it with 413 once it passes `limit`
/// bytes.
async fn read_limited<S, B>(mut stream: S, limit: u64) -> Result<Bytes, HttpError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: bytes::Buf,
{
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk =
            chunk.map_err(|e| HttpError::BadRequest(format!("cannot read the body: {e}")))?;
        if (body.len() + chunk.remaining()) as u64 > limit {
            return Err(HttpError::TooLarge(limit));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
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
