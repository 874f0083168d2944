//! Tokens: a user's registration of one webhook on one service, with its
//! hook id (the last part of the webhook URL) and its secrets.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};
use webhook2fedmsg_core::Secret;

use super::{Store, now_ms};
use crate::crypto::{self, SecretBox};

/// A token, as stored (its secrets are fetched separately).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Token {
    /// The token's id (a UUID), used by the API and the CLI.
    pub id: String,
    /// 128 random bits in hex: the secret part of the webhook URL.
    pub hook_id: String,
    /// The FAS username of the owner.
    pub owner: String,
    /// The service name (`github`).
    pub service: String,
    /// The owner's label.
    pub name: String,
    /// 1 when deliveries are accepted, 0 when disabled.
    pub enabled: i64,
    /// Pretix: the base URL of the instance.
    pub instance_url: Option<String>,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// When a delivery last reached this token's hook.
    pub last_used_at: Option<i64>,
}

impl Token {
    /// Whether deliveries are accepted.
    pub fn is_enabled(&self) -> bool {
        self.enabled != 0
    }
}

/// One of a token's secrets, still sealed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenSecret {
    /// The secret's row id.
    pub id: String,
    /// The encrypted secret.
    pub sealed: String,
    /// When it was added.
    pub created_at: i64,
    /// When it stops verifying; `None` for the current secret.
    pub expires_at: Option<i64>,
}

/// A token as a webhook URL finds it, with its secrets still sealed.
#[derive(Debug, Clone)]
pub struct Hook {
    /// The token.
    pub token: Token,
    /// Sealed secrets and when each stops verifying.
    secrets: Vec<(String, Option<i64>)>,
}

impl Hook {
    /// The secrets that verify at `now` (milliseconds), opened, as
    /// [`Store::active_secrets`] gives them.
    pub fn secrets(&self, secrets: &SecretBox, now: i64) -> Vec<Secret> {
        open_secrets(secrets, &self.token.id, &self.secrets, now)
    }
}

/// One row of [`Store::hook`]'s join: the token, and one of its secrets
/// if it has any.
#[derive(sqlx::FromRow)]
struct HookRow {
    #[sqlx(flatten)]
    token: Token,
    sealed: Option<String>,
    expires_at: Option<i64>,
}

/// Opens the sealed secrets that verify at `now`. A secret that does not
/// decrypt (a wrong key) is left out with an error in the log: the token
/// then verifies nothing.
fn open_secrets(
    secrets: &SecretBox,
    token_id: &str,
    sealed: &[(String, Option<i64>)],
    now: i64,
) -> Vec<Secret> {
    sealed
        .iter()
        .filter(|(_, expires_at)| expires_at.is_none_or(|at| at > now))
        .filter_map(|(sealed, _)| match secrets.open(token_id, sealed) {
            Ok(secret) => Some(Secret::new(secret)),
            Err(error) => {
                tracing::error!(token.id = token_id, %error, "cannot open a secret");
                None
            }
        })
        .collect()
}

/// Hook ids looked up per statement by [`Store::hooks`].
const HOOKS_PER_STATEMENT: usize = 100;

const TOKEN_COLUMNS: &str =
    "id, hook_id, owner, service, name, enabled, instance_url, created_at, last_used_at";

/// What a new token is made of.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    /// The owner's FAS username (created if unknown).
    pub owner: &'a str,
    /// The service name.
    pub service: &'a str,
    /// The owner's label.
    pub name: &'a str,
    /// The secret; generated when `None`.
    pub secret: Option<&'a str>,
    /// Pretix: the instance's base URL.
    pub instance_url: Option<&'a str>,
}

impl Store {
    /// Creates a token and returns it with its secret in clear, the only
    /// time the secret is shown.
    pub async fn create_token(
        &self,
        secrets: &SecretBox,
        new: NewToken<'_>,
    ) -> sqlx::Result<(Token, String)> {
        let secret = match new.secret {
            Some(s) => s.to_string(),
            None => crypto::new_secret(),
        };
        self.upsert_user(new.owner, None, None).await?;
        let token = Token {
            id: uuid::Uuid::new_v4().to_string(),
            hook_id: crypto::new_hook_id(),
            owner: new.owner.to_string(),
            service: new.service.to_string(),
            name: new.name.to_string(),
            enabled: 1,
            instance_url: new.instance_url.map(str::to_string),
            created_at: now_ms(),
            last_used_at: None,
        };
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO tokens (id, hook_id, owner, service, name, enabled, instance_url, \
             created_at) VALUES ($1, $2, $3, $4, $5, 1, $6, $7)",
        )
        .bind(&token.id)
        .bind(&token.hook_id)
        .bind(&token.owner)
        .bind(&token.service)
        .bind(&token.name)
        .bind(&token.instance_url)
        .bind(token.created_at)
        .execute(&mut *tx)
        .await?;
        insert_secret(&mut tx, secrets, &token.id, &secret).await?;
        tx.commit().await?;
        Ok((token, secret))
    }

    /// The token with this id.
    pub async fn token(&self, id: &str) -> sqlx::Result<Option<Token>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1");
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await
    }

    /// Every enabled token of a service (for `POST /<service>`).
    pub async fn enabled_tokens_of(&self, service: &str) -> sqlx::Result<Vec<Token>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE service = $1 AND enabled = 1 \
             ORDER BY created_at"
        );
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(service)
            .fetch_all(self.pool())
            .await
    }

    /// Tokens of one owner, or of everybody.
    pub async fn tokens(&self, owner: Option<&str>) -> sqlx::Result<Vec<Token>> {
        match owner {
            Some(owner) => {
                let sql = format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens WHERE owner = $1 \
                     ORDER BY service, created_at"
                );
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(owner)
                    .fetch_all(self.pool())
                    .await
            }
            None => {
                let sql = format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY owner, service, created_at"
                );
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .fetch_all(self.pool())
                    .await
            }
        }
    }

    /// The secrets of a token that verify at `now` (milliseconds), opened.
    ///
    /// A secret that does not decrypt (a wrong key) is left out with an
    /// error in the log: the token then verifies nothing.
    pub async fn active_secrets(
        &self,
        secrets: &SecretBox,
        token_id: &str,
        now: i64,
    ) -> sqlx::Result<Vec<Secret>> {
        let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
            "SELECT sealed, expires_at FROM token_secrets \
             WHERE token_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(token_id)
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        Ok(open_secrets(secrets, token_id, &rows, now))
    }

    /// Fails when the database holds token secrets and `secrets` opens
    /// none of the few it tries: the key was replaced or lost, and every
    /// token would stop verifying without a word.
    pub async fn check_secrets_key(&self, secrets: &SecretBox) -> anyhow::Result<()> {
        let sample: Vec<(String, String)> =
            sqlx::query_as("SELECT token_id, sealed FROM token_secrets LIMIT 3")
                .fetch_all(self.pool())
                .await?;
        if sample.is_empty()
            || sample
                .iter()
                .any(|(token_id, sealed)| secrets.open(token_id, sealed).is_ok())
        {
            return Ok(());
        }
        anyhow::bail!(
            "the secrets key does not open the token secrets in the database: it is not \
             the key they were stored with (was secrets.key, secrets.key_file or {} \
             replaced or lost?). Restore that key, or remove the tokens and register \
             them again",
            crate::crypto::DEV_KEY_FILE
        )
    }

    /// The tokens these hook ids name, with the secrets each has at `now`
    /// (milliseconds), by hook id; unknown ids are left out.
    pub async fn hooks(&self, hook_ids: &[&str], now: i64) -> sqlx::Result<HashMap<String, Hook>> {
        let columns: Vec<String> = TOKEN_COLUMNS
            .split(", ")
            .map(|c| format!("t.{c}"))
            .collect();
        let mut hooks: HashMap<String, Hook> = HashMap::with_capacity(hook_ids.len());
        let generation = self.hook_cache.as_ref().map(|cache| cache.generation());
        let mut conn = self.pool().acquire().await?;
        for chunk in hook_ids.chunks(HOOKS_PER_STATEMENT) {
            let now_param = super::param(&conn, 1);
            let sql = format!(
                "SELECT {}, s.sealed, s.expires_at FROM tokens t \
                 LEFT JOIN token_secrets s ON s.token_id = t.id \
                 AND (s.expires_at IS NULL OR s.expires_at > {now_param}) \
                 WHERE t.hook_id IN ({})",
                columns.join(", "),
                super::params(&conn, 2, chunk.len())
            );
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .persistent(super::keep_prepared(&conn))
                .bind(now);
            for hook_id in chunk {
                query = query.bind(*hook_id);
            }
            let rows: Vec<HookRow> = query.fetch_all(&mut *conn).await?;
            for row in rows {
                let hook = hooks
                    .entry(row.token.hook_id.clone())
                    .or_insert_with(|| Hook {
                        token: row.token,
                        secrets: Vec::new(),
                    });
                if let Some(sealed) = row.sealed {
                    hook.secrets.push((sealed, row.expires_at));
                }
            }
        }
        if let (Some(cache), Some(generation)) = (&self.hook_cache, generation) {
            cache.fill(generation, &hooks, now);
        }
        Ok(hooks)
    }

    /// The token `hook_id` names, as read by [`Store::hooks`] in the last
    /// [`HOOK_CACHE_MS`], if this store keeps them.
    pub(crate) fn cached_hook(&self, hook_id: &str, now: i64) -> Option<Hook> {
        self.hook_cache.as_ref()?.get(hook_id, now)
    }

    /// Forgets the cached tokens, after a change to one of them.
    fn forget_hooks(&self) {
        if let Some(cache) = &self.hook_cache {
            cache.clear();
        }
    }

    /// The secrets rows of a token (still sealed), newest first.
    pub async fn token_secrets(&self, token_id: &str) -> sqlx::Result<Vec<TokenSecret>> {
        sqlx::query_as(
            "SELECT id, sealed, created_at, expires_at FROM token_secrets \
             WHERE token_id = $1 ORDER BY created_at DESC",
        )
        .bind(token_id)
        .fetch_all(self.pool())
        .await
    }

    /// Replaces a token's secret. The old ones keep verifying for
    /// `grace_ms` (0: they stop at once). Returns the new secret in clear.
    pub async fn rotate_secret(
        &self,
        secrets: &SecretBox,
        token_id: &str,
        new_secret: Option<&str>,
        grace_ms: i64,
    ) -> sqlx::Result<String> {
        let secret = match new_secret {
            Some(s) => s.to_string(),
            None => crypto::new_secret(),
        };
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE token_secrets SET expires_at = $1 WHERE token_id = $2 \
             AND (expires_at IS NULL OR expires_at > $1)",
        )
        .bind(now + grace_ms.max(0))
        .bind(token_id)
        .execute(&mut *tx)
        .await?;
        insert_secret(&mut tx, secrets, token_id, &secret).await?;
        tx.commit().await?;
        self.forget_hooks();
        Ok(secret)
    }

    /// Enables or disables a token; `false` when there is no such token.
    pub async fn set_token_enabled(&self, token_id: &str, enabled: bool) -> sqlx::Result<bool> {
        let done = sqlx::query("UPDATE tokens SET enabled = $1 WHERE id = $2")
            .bind(i64::from(enabled))
            .bind(token_id)
            .execute(self.pool())
            .await?;
        self.forget_hooks();
        Ok(done.rows_affected() > 0)
    }

    /// Changes a token's label (and Pretix instance URL when given).
    pub async fn update_token(
        &self,
        token_id: &str,
        name: Option<&str>,
        instance_url: Option<&str>,
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE tokens SET name = COALESCE($1, name), \
             instance_url = COALESCE($2, instance_url) WHERE id = $3",
        )
        .bind(name)
        .bind(instance_url)
        .bind(token_id)
        .execute(self.pool())
        .await?;
        self.forget_hooks();
        Ok(done.rows_affected() > 0)
    }

    /// Removes a token and its secrets; its hook becomes unknown at once.
    /// Messages already accepted stay in the outbox and are published.
    pub async fn remove_token(&self, token_id: &str) -> sqlx::Result<bool> {
        let done = sqlx::query("DELETE FROM tokens WHERE id = $1")
            .bind(token_id)
            .execute(self.pool())
            .await?;
        self.forget_hooks();
        Ok(done.rows_affected() > 0)
    }
}

async fn insert_secret(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    secrets: &SecretBox,
    token_id: &str,
    secret: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO token_secrets (id, token_id, sealed, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(token_id)
    .bind(secrets.seal(token_id, secret))
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// How long a token read by [`Store::hooks`] answers lookups from memory
/// (milliseconds).
pub(crate) const HOOK_CACHE_MS: i64 = 1000;

/// Tokens recently read by hook id, so that a busy hook costs a query a
/// second rather than one per delivery (load benchmark on SQLite, three
/// alternating pairs of runs: 290 to 300 µs of the server's CPU per
/// delivery against 337 to 352 µs, and 5,287 to 5,665 accepted/s
/// against 4,932 to 5,172).
///
/// Kept on SQLite only, where one server owns the database: this
/// [`Store`] forgets every cached token at once when it changes one
/// (enables, disables, rotates, relabels or removes it), so the web
/// pages and the API act at once. Only another process can change tokens
/// behind it, and the `token` commands can only add tokens (not cached
/// until read) or remove them (a delivery for a removed token fails on
/// its foreign key when stored, and is answered 404). Several instances
/// share a PostgreSQL database, and a change made through one must act
/// at once on all: there every lookup reads the database.
#[derive(Debug, Default)]
pub(crate) struct HookCache {
    inner: std::sync::Mutex<CachedHooks>,
}

#[derive(Debug, Default)]
struct CachedHooks {
    /// Bumped by every [`HookCache::clear`]: a read that began before
    /// it must not put what it read back.
    generation: u64,
    /// Each token by hook id, with when it was read.
    hooks: HashMap<String, (Hook, i64)>,
}

/// The most tokens cached; past it, those read over [`HOOK_CACHE_MS`]
/// ago are dropped.
const HOOK_CACHE_SIZE: usize = 1024;

impl HookCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CachedHooks> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn generation(&self) -> u64 {
        self.lock().generation
    }

    fn get(&self, hook_id: &str, now: i64) -> Option<Hook> {
        let inner = self.lock();
        let (hook, read_at) = inner.hooks.get(hook_id)?;
        (now.saturating_sub(*read_at) < HOOK_CACHE_MS).then(|| hook.clone())
    }

    /// Keeps `hooks`, read at `now`, unless the cache was cleared since
    /// `generation`.
    fn fill(&self, generation: u64, hooks: &HashMap<String, Hook>, now: i64) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.hooks.len() + hooks.len() > HOOK_CACHE_SIZE {
            inner
                .hooks
                .retain(|_, (_, read_at)| now.saturating_sub(*read_at) < HOOK_CACHE_MS);
        }
        if inner.hooks.len() + hooks.len() > HOOK_CACHE_SIZE {
            return;
        }
        for (hook_id, hook) in hooks {
            inner.hooks.insert(hook_id.clone(), (hook.clone(), now));
        }
    }

    fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.hooks.clear();
    }
}

/// One lookup waiting for the [`HookReader`].
struct Lookup {
    service: &'static str,
    hook_id: String,
    reply: oneshot::Sender<Result<Option<Hook>, LookupError>>,
}

/// Why a hook could not be looked up.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LookupError {
    /// The database refused the query; the detail is logged.
    #[error("the database is unavailable")]
    Database,
    /// The reader stopped (the server is shutting down).
    #[error("the server is shutting down")]
    Stopped,
}

/// Finds the tokens that webhook URLs name. Lookups from concurrent
/// requests are gathered into one query, so that under load a query (and
/// its trip to the database connection's thread) serves many requests;
/// each lookup still reads the tokens as they are when it runs, or, on
/// SQLite, as they were read in the last second and not changed since
/// (see [`HookCache`]).
#[derive(Debug, Clone)]
pub struct HookReader {
    queue: mpsc::Sender<Lookup>,
    store: Store,
}

/// The most lookups answered by one round of queries.
const MAX_LOOKUPS: usize = 256;

impl HookReader {
    /// Starts the reader task on `store`.
    pub fn start(store: Store) -> Self {
        let (queue, mut incoming) = mpsc::channel::<Lookup>(4 * MAX_LOOKUPS);
        let reader = Self {
            queue,
            store: store.clone(),
        };
        tokio::spawn(async move {
            let mut lookups = Vec::with_capacity(MAX_LOOKUPS);
            while incoming.recv_many(&mut lookups, MAX_LOOKUPS).await > 0 {
                answer(&store, std::mem::take(&mut lookups)).await;
            }
        });
        reader
    }

    /// The token of `service` whose hook id is `hook_id`, with its
    /// secrets as sealed; `None` when there is none.
    pub async fn hook(
        &self,
        service: &'static str,
        hook_id: &str,
    ) -> Result<Option<Hook>, LookupError> {
        if let Some(hook) = self.store.cached_hook(hook_id, now_ms()) {
            return Ok(Some(hook).filter(|hook| hook.token.service == service));
        }
        let (reply, answer) = oneshot::channel();
        let lookup = Lookup {
            service,
            hook_id: hook_id.to_string(),
            reply,
        };
        self.queue
            .send(lookup)
            .await
            .map_err(|_| LookupError::Stopped)?;
        answer.await.map_err(|_| LookupError::Stopped)?
    }
}

async fn answer(store: &Store, lookups: Vec<Lookup>) {
    let mut ids: Vec<&str> = lookups.iter().map(|l| l.hook_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    match store.hooks(&ids, now_ms()).await {
        Ok(hooks) => {
            for lookup in lookups {
                let hook = hooks
                    .get(&lookup.hook_id)
                    .filter(|hook| hook.token.service == lookup.service)
                    .cloned();
                let _ = lookup.reply.send(Ok(hook));
            }
        }
        Err(error) => {
            tracing::error!(%error, "database unavailable: cannot look up hooks");
            for lookup in lookups {
                let _ = lookup.reply.send(Err(LookupError::Database));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(hook_id: &str) -> HashMap<String, Hook> {
        let token = Token {
            id: "t".into(),
            hook_id: hook_id.into(),
            owner: "alice".into(),
            service: "github".into(),
            name: "n".into(),
            enabled: 1,
            instance_url: None,
            created_at: 0,
            last_used_at: None,
        };
        let hook = Hook {
            token,
            secrets: Vec::new(),
        };
        HashMap::from([(hook_id.to_string(), hook)])
    }

    #[test]
    fn cached_tokens_expire_and_a_clear_wins_over_a_read_begun_before_it() {
        let cache = HookCache::default();
        let generation = cache.generation();
        cache.fill(generation, &hooks("a"), 10_000);
        assert!(cache.get("a", 10_000 + HOOK_CACHE_MS - 1).is_some());
        assert!(cache.get("a", 10_000 + HOOK_CACHE_MS).is_none());
        assert!(cache.get("b", 10_000).is_none());

        // A read that began before a change must not put back what it
        // read: the change may have come after it.
        let before = cache.generation();
        cache.clear();
        assert!(cache.get("a", 10_000).is_none());
        cache.fill(before, &hooks("a"), 10_000);
        assert!(cache.get("a", 10_000).is_none());
        cache.fill(cache.generation(), &hooks("a"), 10_000);
        assert!(cache.get("a", 10_000).is_some());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = HookCache::default();
        for n in 0..HOOK_CACHE_SIZE {
            cache.fill(cache.generation(), &hooks(&format!("old-{n}")), 0);
        }
        // Full of fresh tokens: a new one is not kept.
        cache.fill(cache.generation(), &hooks("new"), 1);
        assert!(cache.get("new", 1).is_none());
        // Once they are stale, they make room.
        cache.fill(cache.generation(), &hooks("new"), HOOK_CACHE_MS);
        assert!(cache.get("new", HOOK_CACHE_MS).is_some());
        assert_eq!(cache.lock().hooks.len(), 1);
    }
}
