//! The webhook2fedmsg server: receives webhooks, stores them durably and
//! publishes them to Fedora Messaging.
//!
//! The parts: [`config`] (TOML and environment), [`store`] (SQLite or
//! PostgreSQL: tokens, deliveries, the outbox), [`hooks`] (the webhook
//! endpoints, on top of `webhook2fedmsg-core`), [`dispatch`] (outbox to
//! broker), [`publish`] (RabbitMQ or a file), [`agents`] (FASJSON),
//! [`metrics`], [`auth`] (FAS login, sessions, API keys), [`web`] (the
//! token pages), [`api`] (the JSON API), and [`cli`], the `webhook2fedmsg`
//! command. [`run`] starts
//! everything on a listener the caller bound, so that tests can run the
//! whole server on `127.0.0.1:0`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use warp::Filter as _;
use warp::http::StatusCode;
use warp::reply::Reply as _;
use webhook2fedmsg_core::agent::{AgentResolver, NoAgents};

pub mod agents;
pub mod allow;
pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod dispatch;
pub mod error;
pub mod hooks;
pub mod metrics;
pub mod publish;
pub mod store;
pub mod web;

use config::Config;
use crypto::SecretBox;
use metrics::Metrics;
use publish::Publisher;
use store::Store;
use store::deliveries::Writer;
use store::outbox::Handoff;
use store::tokens::HookReader;

/// The most accepted messages waiting in memory for the dispatcher (about
/// 10 MB of GitHub pushes); more wait in the outbox only.
const HANDOFF_CAPACITY: usize = 1024;

/// The largest read buffer of one client connection.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// What every request handler shares.
pub struct App {
    /// The configuration, as loaded.
    pub config: Config,
    /// The database.
    pub store: Store,
    /// Batches delivery writes.
    pub writer: Writer,
    /// Batches the lookups of webhook URLs.
    pub hooks: HookReader,
    /// Opens token secrets.
    pub secrets: SecretBox,
    /// Resolves agents to Fedora usernames.
    pub agents: Arc<dyn AgentResolver>,
    /// Where messages go.
    pub publisher: Arc<dyn Publisher>,
    /// Carries accepted messages from the writer to the dispatcher.
    pub handoff: Arc<Handoff>,
    /// The room for webhook bodies being received.
    pub body_budget: hooks::BodyBudget,
    /// Counters and gauges.
    pub metrics: Arc<Metrics>,
    /// The OpenID Connect provider people log in with, if configured.
    pub provider: Option<Arc<auth::Provider>>,
    /// What the provider said about access tokens lately.
    pub access_tokens: auth::AccessTokens,
}

impl App {
    /// Connects to the database (applying migrations) and builds the
    /// publisher the configuration asks for.
    pub async fn new(config: Config) -> anyhow::Result<Arc<Self>> {
        let store = Store::connect(
            config.database.url.expose(),
            config.database.max_connections,
        )
        .await?;
        store.migrate().await?;
        let secrets = SecretBox::from_config(&config.secrets)?;
        store.check_secrets_key(&secrets).await?;
        let agents: Arc<dyn AgentResolver> = match agents::Fasjson::from_config(&config.fasjson)? {
            Some(fasjson) => Arc::new(fasjson),
            None => Arc::new(NoAgents),
        };
        let publisher = publish::from_config(&config)?;
        let provider = auth::Provider::from_config(&config.oidc, &config.public_base())?;
        let handoff = Arc::new(Handoff::new(HANDOFF_CAPACITY));
        Ok(Arc::new(Self {
            writer: Writer::start(store.clone(), handoff.clone())
                .context("cannot start the database writer's thread")?,
            hooks: HookReader::start(store.clone()),
            handoff,
            body_budget: hooks::BodyBudget::new(config.limits.max_inflight_body_bytes),
            config,
            store,
            secrets,
            agents,
            publisher,
            metrics: Arc::new(Metrics::new()),
            provider: provider.map(Arc::new),
            access_tokens: auth::AccessTokens::default(),
        }))
    }
}

/// Runs the server on `listener` until `shutdown` completes: stops
/// accepting, finishes the requests in flight, and leaves unsent messages
/// in the outbox for the next start.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = App::new(config).await?;
    serve(app, listener, shutdown).await
}

/// Like [`run`], with an [`App`] the caller built.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop, stopped) = watch::channel(false);
    app.store
        .outbox_due_at_start()
        .await
        .context("cannot read the outbox")?;
    let dispatcher = dispatch::Dispatcher {
        store: app.store.clone(),
        publisher: app.publisher.clone(),
        topic_prefix: app.config.amqp.topic_prefix.clone(),
        handoff: app.handoff.clone(),
        writer: app.writer.clone(),
        metrics: app.metrics.clone(),
        retention_ms: (app.config.dedupe.retention_hours as i64).saturating_mul(3_600_000),
    };
    let dispatching = tokio::spawn(dispatcher.run(stopped));

    let address = listener.local_addr().context("listener has no address")?;
    tracing::info!(listen = %address, public_url = %app.config.public_base(), "listening");
    if let Some(problem) = app.config.hook_url_problem() {
        tracing::warn!("{problem}");
    }
    if app.provider.is_none() {
        tracing::info!(
            "login is off (oidc.* unset): the pages offer none, use `webhook2fedmsg token`"
        );
    }
    serve_http(routes(app.clone()), listener, &app.config.limits, shutdown).await;

    tracing::info!("shutting down: unsent messages stay in the outbox");
    let _ = stop.send(true);
    let _ = dispatching.await;
    app.store.close().await;
    Ok(())
}

/// Serves `routes` over HTTP/1.1 on `listener` until `shutdown`
/// completes, then waits for the requests in flight.
///
/// warp's own server sets no bound on slow or idle clients; this one
/// closes a connection that takes longer than
/// `limits.header_timeout_seconds` to send a request's headers (idle
/// keep-alive connections too), and stops accepting while
/// `limits.max_connections` are open. Bodies have their own deadline
/// (`limits.body_timeout_seconds`, in [`hooks`]). HTTP/2 is not offered:
/// webhook senders use HTTP/1.1, and a connection that has not yet said
/// which protocol it speaks would escape the header deadline.
async fn serve_http<F>(
    routes: F,
    listener: TcpListener,
    limits: &config::LimitsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    F: warp::Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
    F::Future: Send,
{
    let service = warp::service(routes);
    let open = Arc::new(Semaphore::new(limits.max_connections as usize));
    let mut http = hyper::server::conn::http1::Builder::new();
    // A connection's read buffer grows with what arrives at once and
    // stays at that size while the connection is open: hyper's default cap
    // (about 400 KiB) times `max_connections` would be far more memory than
    // the bodies themselves. Headers must fit in it too; 64 KiB is plenty.
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_timeout_seconds))
        .max_buf_size(READ_BUFFER_BYTES);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = open.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Responses are written whole; nothing is gained by delaying them.
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(
            hyper_util::rt::TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(service.clone()),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Waits out an accept error: a refused or reset connection is the
/// client's business; anything else (out of file descriptors) is logged
/// and retried after a pause rather than in a busy loop.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "cannot accept connections; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Every route of the server.
pub fn routes(
    app: Arc<App>,
) -> impl warp::Filter<Extract = (impl warp::Reply,), Error = std::convert::Infallible> + Clone {
    let health = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})).into_response());
    let ready_app = app.clone();
    let ready = warp::path!("readyz").and(warp::get()).then(move || {
        let app = ready_app.clone();
        async move { readiness(&app).await }
    });
    let metrics_app = app.clone();
    let metrics = warp::path!("metrics").and(warp::get()).then(move || {
        let app = metrics_app.clone();
        async move {
            // Counted when asked, rather than by the dispatcher's rounds.
            match app.store.outbox_depth().await {
                Ok(depth) => {
                    app.metrics.outbox_depth.set(depth);
                }
                Err(error) => tracing::warn!(%error, "cannot count the outbox"),
            }
            warp::reply::with_header(
                app.metrics.render(),
                "content-type",
                // What prometheus-client writes: OpenMetrics text.
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
            .into_response()
        }
    });
    let routes = health
        .or(ready)
        .unify()
        .or(metrics)
        .unify()
        .or(web::routes(app.clone()))
        .unify()
        .or(api::routes(app.clone()))
        .unify()
        .or(hooks::routes(app))
        .unify()
        .recover(error::recover)
        .unify();
    warp::path::full()
        .and(routes)
        .map(with_allow)
        .with(warp::reply::with::header(
            "x-content-type-options",
            "nosniff",
        ))
}

/// Says in `Allow` what the path answers, on a 405 that does not.
fn with_allow(
    path: warp::path::FullPath,
    mut response: warp::reply::Response,
) -> warp::reply::Response {
    if response.status() == StatusCode::METHOD_NOT_ALLOWED
        && !response.headers().contains_key(warp::http::header::ALLOW)
    {
        if let Some(methods) = allow::methods(path.as_str()) {
            response.headers_mut().insert(
                warp::http::header::ALLOW,
                warp::http::HeaderValue::from_static(methods),
            );
        }
    }
    response
}

async fn readiness(app: &App) -> warp::reply::Response {
    let (database, broker) = tokio::join!(app.store.is_ready(), app.publisher.is_ready());
    let status = if database && broker {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({"database": database, "broker": broker});
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}
