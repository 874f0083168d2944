//! Starting the whole server in process, on `127.0.0.1:0`, for tests.
//!
//! Each [`TestServer`] has its own temporary directory, its own database
//! (a SQLite file there, or a fresh PostgreSQL database) and its own topic
//! prefix, so tests run side by side on the shared broker and PostgreSQL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use webhook2fedmsg_core::recording::Recording;
use webhook2fedmsg_server::App;
use webhook2fedmsg_server::config::{Config, Sensitive};
use webhook2fedmsg_server::store::Token;
use webhook2fedmsg_server::store::tokens::NewToken;

/// The secrets key of every test server (64 hex digits).
pub const TEST_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Which database a test server uses.
#[derive(Debug, Clone)]
pub enum Database {
    /// A SQLite file in the server's directory.
    Sqlite,
    /// This PostgreSQL URL.
    Postgres(String),
}

/// How to start a test server.
#[derive(Debug, Clone)]
pub struct Options {
    /// The database.
    pub database: Database,
    /// The broker URL; `None` uses the file sink.
    pub amqp_url: Option<String>,
    /// The topic prefix.
    pub topic_prefix: String,
    /// The body limit, when not the default.
    pub max_body_bytes: Option<u64>,
    /// The room for bodies in flight, when not the default.
    pub max_inflight_body_bytes: Option<u64>,
    /// The time a body may take, when not the default.
    pub body_timeout_seconds: Option<u64>,
    /// The time headers may take, when not the default.
    pub header_timeout_seconds: Option<u64>,
    /// The connection cap, when not the default.
    pub max_connections: Option<u32>,
    /// The FASJSON base URL, if agents are looked up.
    pub fasjson_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            database: Database::Sqlite,
            amqp_url: None,
            topic_prefix: String::new(),
            max_body_bytes: None,
            max_inflight_body_bytes: None,
            body_timeout_seconds: None,
            header_timeout_seconds: None,
            max_connections: None,
            fasjson_url: None,
        }
    }
}

/// A running server.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The server's shared state.
    pub app: Arc<App>,
    /// The server's directory (database, file sink).
    pub dir: Arc<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// Starts a server with `options` in a new directory.
    pub async fn start(options: Options) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temporary directory"));
        Self::start_in(dir, options).await
    }

    /// Starts a server in `dir`, reusing whatever database is there.
    pub async fn start_in(dir: Arc<tempfile::TempDir>, options: Options) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let config = config(dir.path(), &options, address);
        let app = App::new(config).await.expect("the server starts");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(webhook2fedmsg_server::serve(
            app.clone(),
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            base: format!("http://{address}"),
            app,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
    }

    /// Creates a token for `owner`; returns it, its secret and its URL.
    pub async fn token(
        &self,
        owner: &str,
        service: &str,
        secret: Option<&str>,
    ) -> (Token, String, String) {
        let (token, secret) = self
            .app
            .store
            .create_token(
                &self.app.secrets,
                NewToken {
                    owner,
                    service,
                    name: "test",
                    secret,
                    instance_url: Some("https://pretix.example.org"),
                },
            )
            .await
            .expect("token created");
        let url = self.app.config.hook_url(&token.service, &token.hook_id);
        (token, secret, url)
    }

    /// The lines written to the file sink so far, parsed.
    pub fn sink_lines(&self) -> Vec<Value> {
        let text =
            std::fs::read_to_string(self.dir.path().join("messages.jsonl")).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("sink lines are JSON"))
            .collect()
    }

    /// Waits until the outbox is empty (at most 30 s).
    pub async fn drained(&self) {
        for _ in 0..300 {
            if self.app.store.outbox_depth().await.expect("outbox depth") == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the outbox did not drain");
    }
}

/// The configuration [`TestServer`] runs with.
pub fn config(dir: &Path, options: &Options, address: std::net::SocketAddr) -> Config {
    let mut config = Config {
        listen: address,
        ..Config::default()
    };
    config.database.url = Sensitive(match &options.database {
        Database::Sqlite => format!("sqlite://{}", dir.join("test.db").display()),
        Database::Postgres(url) => url.clone(),
    });
    config.amqp.url = options.amqp_url.clone().map(Sensitive);
    config.amqp.topic_prefix = options.topic_prefix.clone();
    config.sink.path = dir.join("messages.jsonl");
    config.secrets.key = Some(Sensitive(TEST_KEY.into()));
    config.fasjson.url = options.fasjson_url.clone();
    if let Some(seconds) = options.body_timeout_seconds {
        config.limits.body_timeout_seconds = seconds;
    }
    if let Some(seconds) = options.header_timeout_seconds {
        config.limits.header_timeout_seconds = seconds;
    }
    if let Some(cap) = options.max_connections {
        config.limits.max_connections = cap;
    }
    if let Some(limit) = options.max_body_bytes {
        config.limits.max_body_bytes = limit;
    }
    if let Some(limit) = options.max_inflight_body_bytes {
        config.limits.max_inflight_body_bytes = limit;
    }
    config
}

/// The workspace's `fixtures/` directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// Every fixture file, sorted.
pub fn all_fixtures() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for service in std::fs::read_dir(fixtures()).expect("fixtures/") {
        let service = service.expect("entry").path();
        if !service.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&service).expect("service dir") {
            let file = file.expect("entry").path();
            if file.extension().is_some_and(|e| e == "json") {
                files.push(file);
            }
        }
    }
    files.sort();
    files
}

/// A fixture, signed with `secret`.
pub fn signed_fixture(path: &Path, secret: &str) -> Recording {
    let text = std::fs::read_to_string(path).expect("fixture readable");
    let mut recording = Recording::from_json(&text).expect("fixture parses");
    recording.sign(secret);
    recording
}

/// POSTs a recording; returns the status and the JSON body.
pub async fn post(url: &str, recording: &Recording) -> (StatusCode, Value) {
    let client = reqwest::Client::new();
    let mut request = client.post(url).body(recording.body.clone());
    for (name, value) in &recording.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let text = response.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, json)
}

/// Sets a header of a recording, replacing any with that name.
pub fn set_header(recording: &mut Recording, name: &str, value: &str) {
    recording
        .headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    recording
        .headers
        .push((name.to_string(), value.to_string()));
}

/// A fresh PostgreSQL database for one test; returns its URL.
pub async fn fresh_postgres() -> String {
    use sqlx::Connection as _;
    let admin = std::env::var("W2F_TEST_POSTGRES").unwrap_or_else(|_| {
        "postgres://webhook2fedmsg:webhook2fedmsg@127.0.0.1:5432/postgres".into()
    });
    let name = format!("w2f_test_{}", uuid::Uuid::new_v4().simple());
    let mut connection = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("the test PostgreSQL is unreachable ({e}); run scripts/setup"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut connection)
        .await
        .expect("create the test database");
    let base = admin
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(&admin);
    format!("{base}/{name}")
}
