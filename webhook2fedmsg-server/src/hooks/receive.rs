//! The work of receiving one webhook: find the token, verify, decode,
//! resolve the agent, store, answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use tracing::Instrument as _;
use warp::http::StatusCode;
use warp::reply::{Reply as _, Response};
use webhook2fedmsg_core::{Context, Delivery, Event, Kind, Secret};

use crate::App;
use crate::crypto::sha256_hex;
use crate::error::HttpError;
use crate::store::deliveries::WriteError;
use crate::store::tokens::{Hook, LookupError};
use crate::store::{Accepted, NewDelivery, Stored, Token, now_ms};

/// A delivery whose body took longer than this to arrive after its token
/// was looked up is checked against the token as it is once the body is
/// in: a token disabled, rotated or removed meanwhile then refuses it.
const RECHECK_AFTER: Duration = Duration::from_millis(100);

/// The token a hook URL named, and when it was read.
pub struct Named {
    hook: Hook,
    read_at: Instant,
}

impl Named {
    /// The token's id, for log lines.
    pub fn token_id(&self) -> &str {
        &self.hook.token.id
    }
}

/// Refuses, from its headers alone, a delivery that its body cannot make
/// acceptable: on a disabled token, with missing or malformed signature
/// headers, or to a service that signs nothing without a hook id.
pub fn check_before_reading(
    kind: Kind,
    named: Option<&Named>,
    headers: &Delivery,
) -> Result<(), HttpError> {
    match named {
        Some(named) if !named.hook.token.is_enabled() => return Err(HttpError::TokenDisabled),
        None if kind == Kind::Pretix => return Err(HttpError::UnsignedService(kind.name())),
        _ => {}
    }
    kind.service()
        .check_signature_headers(headers, now_ms() / 1000)
        .map_err(HttpError::from)
}

/// The token a hook id names, with its secrets, looked up before the body
/// is read: `None` for `POST /<service>`, which names none; 404 for an
/// unknown hook.
pub async fn named_token(
    app: &App,
    kind: Kind,
    hook: Option<&str>,
) -> Result<Option<Named>, HttpError> {
    let Some(hook) = hook else {
        return Ok(None);
    };
    let read_at = Instant::now();
    match look_up(app, kind, hook).await? {
        Some(hook) => Ok(Some(Named { hook, read_at })),
        None => {
            let error = no_such_hook();
            refused_before_reading(app, kind, None, &error);
            Err(error)
        }
    }
}

/// Counts and logs a delivery refused before its body was read whole
/// (unknown hook, disabled token, bad signature headers, no room, body too
/// large, too slow or broken).
pub fn refused_before_reading(app: &App, kind: Kind, token_id: Option<&str>, error: &HttpError) {
    app.metrics.received(kind.name());
    app.metrics.reject(kind.name(), error.code());
    tracing::info!(webhook.service = kind.name(), token.id = token_id, outcome = "rejected",
        reason = %error, status = error.status().as_u16(), "webhook rejected");
}

async fn look_up(app: &App, kind: Kind, hook_id: &str) -> Result<Option<Hook>, HttpError> {
    app.hooks
        .hook(kind.name(), hook_id)
        .await
        // Either way (the database failed, which the reader logged, or
        // the server is stopping) the sender should come back later.
        .map_err(|_: LookupError| HttpError::Unavailable)
}

fn no_such_hook() -> HttpError {
    HttpError::NotFound("no such webhook: check the URL")
}

/// Handles `POST /<service>[/<hook-id>]`, with the token the hook id named,
/// the delivery's headers (a [`Delivery`] without its body) and its body.
pub async fn receive(
    app: Arc<App>,
    kind: Kind,
    token: Option<Named>,
    headers: Delivery,
    body: Bytes,
) -> Result<Response, HttpError> {
    let started = Instant::now();
    app.metrics.received(kind.name());
    // Takes the buffer over when this is its only owner, rather than
    // copying the body, unless the buffer is much larger than the body
    // (a connection's read buffer): the delivery is held until stored.
    let mut body = Vec::from(body);
    if body.capacity() > body.len() + body.len() / 4 {
        body.shrink_to_fit();
    }
    let delivery = headers.with_body(body);
    let span = tracing::info_span!("webhook", webhook.service = kind.name());
    let result = handle(&app, kind, token, &delivery).instrument(span).await;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let delivery_id = sender_delivery_id(&delivery);
    match result {
        Ok(outcome) => {
            app.metrics.accept(kind.name(), outcome.label);
            tracing::info!(
                webhook.service = kind.name(),
                token.id = %outcome.token_id,
                delivery.id = delivery_id,
                message.id = outcome.message_id.as_deref(),
                outcome = outcome.label,
                reason = outcome.reason.as_deref(),
                duration_ms,
                "webhook accepted"
            );
            Ok(outcome.response)
        }
        Err(Refused { error, token_id }) => {
            app.metrics.reject(kind.name(), error.code());
            let status = error.status();
            if status.is_server_error() {
                tracing::error!(
                    webhook.service = kind.name(),
                    token.id = token_id.as_deref(),
                    delivery.id = delivery_id,
                    outcome = "error",
                    reason = error.code(),
                    duration_ms,
                    "webhook not stored"
                );
            } else {
                tracing::info!(webhook.service = kind.name(), token.id = token_id.as_deref(),
                    delivery.id = delivery_id, outcome = "rejected", reason = %error,
                    status = status.as_u16(), duration_ms, "webhook rejected");
            }
            Err(error)
        }
    }
}

struct Outcome {
    token_id: String,
    label: &'static str,
    message_id: Option<String>,
    reason: Option<String>,
    response: Response,
}

struct Refused {
    error: HttpError,
    token_id: Option<String>,
}

impl From<HttpError> for Refused {
    fn from(error: HttpError) -> Self {
        Refused {
            error,
            token_id: None,
        }
    }
}

async fn handle(
    app: &App,
    kind: Kind,
    named: Option<Named>,
    delivery: &Delivery,
) -> Result<Outcome, Refused> {
    let now = now_ms();
    let token = find_token(app, kind, named, delivery, now).await?;
    let refused = |error: HttpError| Refused {
        error,
        token_id: Some(token.id.clone()),
    };

    let context = Context {
        instance_url: token.instance_url.clone(),
    };
    let event = kind
        .service()
        .decode(delivery, &context)
        .map_err(|e| refused(e.into()))?;
    let digest = sha256_hex(delivery.body());
    let (new, label) = match event.skip() {
        Some(reason) => (
            skipped(&token, &event, digest, &reason.to_string()),
            "skipped",
        ),
        None => (queued(app, &token, event, digest, now).await, "queued"),
    };
    let message_id = new.message.as_ref().map(|m| m.message_id.clone());
    let reason = new.skip_reason.clone();

    let stored = app.writer.store(new).await.map_err(|error| match error {
        // Removed after it was looked up: as if it had never been.
        WriteError::TokenRemoved => refused(no_such_hook()),
        WriteError::Database | WriteError::Stopped => {
            tracing::error!(%error, token.id = %token.id, "cannot store a delivery");
            refused(HttpError::Unavailable)
        }
    })?;
    let (status, message_id, label) = match stored {
        Stored::New => (StatusCode::ACCEPTED, message_id, label),
        Stored::Duplicate(first) => (StatusCode::OK, first, "duplicate"),
    };
    let body = match (&message_id, &reason, label) {
        (_, _, "duplicate") => json!({"message_id": message_id, "duplicate": true}),
        (Some(id), _, _) => json!({"message_id": id}),
        (None, reason, _) => json!({"message_id": null, "reason": reason}),
    };
    let response = warp::reply::with_status(warp::reply::json(&body), status).into_response();
    Ok(Outcome {
        token_id: token.id,
        label,
        message_id,
        reason,
        response,
    })
}

/// The token a delivery is for: the one its hook id named, or for
/// `POST /<service>`, the first enabled token of the service whose secrets
/// verify it. Verification happens here in both cases.
async fn find_token(
    app: &App,
    kind: Kind,
    named: Option<Named>,
    delivery: &Delivery,
    now: i64,
) -> Result<Token, Refused> {
    let now_secs = now / 1000;
    let Some(hook) = named else {
        if kind == Kind::Pretix {
            return Err(HttpError::UnsignedService(kind.name()).into());
        }
        let tokens = app
            .store
            .enabled_tokens_of(kind.name())
            .await
            .map_err(unavailable)?;
        for token in tokens {
            let secrets = secrets_of(app, &token, now).await?;
            if kind.service().verify(delivery, &secrets, now_secs).is_ok() {
                return Ok(token);
            }
        }
        return Err(HttpError::NoMatchingToken.into());
    };

    let hook = if hook.read_at.elapsed() > RECHECK_AFTER {
        look_up(app, kind, &hook.hook.token.hook_id)
            .await?
            .ok_or_else(no_such_hook)?
    } else {
        hook.hook
    };
    let secrets = hook.secrets(&app.secrets, now);
    let token = hook.token;
    let refused = |error: HttpError| Refused {
        error,
        token_id: Some(token.id.clone()),
    };
    if !token.is_enabled() {
        return Err(refused(HttpError::TokenDisabled));
    }
    kind.service()
        .verify(delivery, &secrets, now_secs)
        .map_err(|e| refused(e.into()))?;
    Ok(token)
}

async fn secrets_of(app: &App, token: &Token, now: i64) -> Result<Vec<Secret>, Refused> {
    app.store
        .active_secrets(&app.secrets, &token.id, now)
        .await
        .map_err(|e| Refused {
            error: unavailable(e),
            token_id: Some(token.id.clone()),
        })
}

fn unavailable(error: sqlx::Error) -> HttpError {
    tracing::error!(%error, "database unavailable");
    HttpError::Unavailable
}

fn skipped(token: &Token, event: &Event, digest: String, reason: &str) -> NewDelivery {
    NewDelivery {
        id: NewDelivery::new_id(),
        token_id: token.id.clone(),
        delivery_id: event.delivery_id().map(str::to_string),
        body_digest: digest,
        topic: event.topic().to_string(),
        message: None,
        skip_reason: Some(reason.to_string()),
    }
}

async fn queued(app: &App, token: &Token, event: Event, digest: String, now: i64) -> NewDelivery {
    let agent = match event.identity() {
        Some(identity) => app.agents.resolve(identity).await,
        None => None,
    };
    let delivery_id = event.delivery_id().map(str::to_string);
    let topic = event.topic().to_string();
    let sent_at = time::OffsetDateTime::from_unix_timestamp(now / 1000)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let message = event.into_message(agent.as_deref(), uuid::Uuid::new_v4(), sent_at);
    let headers = serde_json::to_string(&message.headers()).unwrap_or_else(|_| "{}".into());
    let message_id = message.id().to_string();
    NewDelivery {
        id: NewDelivery::new_id(),
        token_id: token.id.clone(),
        delivery_id,
        body_digest: digest,
        topic,
        message: Some(Accepted::new(message_id, message.into_body(), headers)),
        skip_reason: None,
    }
}

/// The sender's delivery id, for the log line, from whichever header the
/// services use.
fn sender_delivery_id(delivery: &Delivery) -> Option<&str> {
    [
        "x-github-delivery",
        "x-forgejo-delivery",
        "x-gitea-delivery",
        "idempotency-key",
        "x-gitlab-event-uuid",
        "x-discourse-event-id",
    ]
    .into_iter()
    .find_map(|name| delivery.first_header(name))
}
