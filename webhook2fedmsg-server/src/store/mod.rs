//! Storage: users, tokens and their secrets, deliveries and the outbox, in
//! SQLite or PostgreSQL through sqlx's `Any` driver.
//!
//! One set of migrations serves both databases; the few statements whose
//! dialects differ (row locking in the outbox) are chosen by
//! [`Backend`]. Several server instances may share one PostgreSQL: every
//! write here is safe under concurrency, by unique indexes and
//! `FOR UPDATE SKIP LOCKED` leases. SQLite serves a single instance.
//!
//! Times are Unix milliseconds ([`now_ms`]); ids are text.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions as _, Executor as _};

pub mod api_keys;
pub mod deliveries;
pub mod logins;
pub mod outbox;
pub mod sessions;
pub mod tokens;
pub mod users;

pub use deliveries::{Accepted, NewDelivery, Stored};
pub use tokens::{Token, TokenSecret};

/// The database kind behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A pool of connections to the database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Tokens recently looked up by hook id; SQLite only, see
    /// [`tokens::HookCache`].
    hook_cache: Option<std::sync::Arc<tokens::HookCache>>,
}

/// The migrations, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Connects to `url` (`sqlite://PATH`, created if missing, or
    /// `postgres://...`).
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        if backend == Backend::Sqlite {
            check_sqlite_directory(url)?;
        }
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url)
            .context("database.url is not a valid database URL")?
            .log_statements(tracing::log::LevelFilter::Trace);
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the one writer;
                        // synchronous=FULL makes each commit durable
                        // before the 202 that depends on it. The
                        // statement journals of multi-row inserts stay in
                        // memory rather than in temporary files. The WAL
                        // is copied back into the database every 2,000
                        // pages (8 MB) rather than 1,000: outbox pages
                        // written and freed within that span are copied
                        // once (load benchmark: 4,200 -> 4,540 accepted/s,
                        // peak RSS 60 -> 63 MB; 4,000 pages gave 4,660/s
                        // and 67 MB). Each connection caches 500 KB of
                        // pages rather than 2 MB: the pages a delivery
                        // changes in the two indexes keyed by random
                        // values are spread over far more than 2 MB
                        // anyway, and each connection's cache is its own
                        // (load benchmark: peak RSS 57.7 to 60.9 MB with
                        // 2 MB in three runs, 54.0 to 55.7 MB with 500 KB
                        // in five; accepted/s moved more from run to run
                        // than between the two).
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                             PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 2000; \
                             PRAGMA cache_size = -500;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .context("cannot connect to the database")?;
        let hook_cache = (backend == Backend::Sqlite).then(Default::default);
        Ok(Self {
            pool,
            backend,
            hook_cache,
        })
    }

    /// Creates or upgrades the schema.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .context("cannot apply the database migrations")
    }

    /// The pool, for modules of this crate.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn is_ready(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The `n`th bound parameter (from 1) of a statement sent on `conn`:
/// `$n` for PostgreSQL, a bare `?` for SQLite. SQLite binds bare ones in
/// the order they appear, while finding a numbered one's name is a
/// linear search per parameter: quadratic in the statements of hundreds
/// of parameters that write a batch. Statements using this must bind in
/// the order the parameters appear.
pub(crate) fn param(conn: &sqlx::AnyConnection, n: usize) -> String {
    if conn.backend_name() == "SQLite" {
        "?".to_string()
    } else {
        format!("${n}")
    }
}

/// Whether a statement whose text depends on how many rows or ids it
/// carries is kept prepared on `conn`. Not on SQLite: there each kept
/// statement holds its compiled program in the server's own memory, tens
/// of kilobytes for a batch of rows, and each connection keeps up to a
/// hundred (load benchmark: peak RSS 63 to 66 MB when kept, 49 to 53 MB
/// when not, at the same speed). PostgreSQL keeps them on its side.
pub(crate) fn keep_prepared(conn: &sqlx::AnyConnection) -> bool {
    conn.backend_name() != "SQLite"
}

/// `$first, $first+1, ...`: `count` parameters for `conn`, see [`param`].
pub(crate) fn params(conn: &sqlx::AnyConnection, first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| param(conn, n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fails with a clear message when the directory of a `sqlite:` URL's
/// file does not exist (SQLite creates the file, not its directory, and
/// says only "unable to open database file").
fn check_sqlite_directory(url: &str) -> anyhow::Result<()> {
    let path = url
        .trim_start_matches("sqlite:")
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    let directory = match std::path::Path::new(path).parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => return Ok(()),
    };
    if !directory.is_dir() {
        anyhow::bail!(
            "database.url: the directory {} of the SQLite file does not exist",
            directory.display()
        );
    }
    Ok(())
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}
