//! Personal API keys: what scripts send as `Authorization: Bearer`.
//!
//! A key is shown once, when it is made; the table keeps its SHA-256. Keys
//! start with [`API_KEY_PREFIX`], which tells them apart from OpenID
//! Connect access tokens. A revoked key stays listed, marked, and
//! authenticates nothing.

use super::users::User;
use super::{Store, now_ms};
use crate::crypto::{self, sha256_hex};

/// The start of every API key.
pub const API_KEY_PREFIX: &str = "w2f_";

/// An API key, as listed (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiKey {
    /// The key's id.
    pub id: String,
    /// The owner's FAS username.
    pub username: String,
    /// The owner's label for it.
    pub name: String,
    /// When it was made, Unix milliseconds.
    pub created_at: i64,
    /// When it last authenticated a request.
    pub last_used_at: Option<i64>,
    /// When it was revoked; `None` while it works.
    pub revoked_at: Option<i64>,
}

impl Store {
    /// Makes a key for `username`; returns it with the key in clear, the
    /// only time it is available.
    pub async fn create_api_key(
        &self,
        username: &str,
        name: &str,
    ) -> sqlx::Result<(ApiKey, String)> {
        let key = format!("{API_KEY_PREFIX}{}", crypto::random_hex(32));
        let listed = ApiKey {
            id: uuid::Uuid::new_v4().to_string(),
            username: username.to_string(),
            name: name.to_string(),
            created_at: now_ms(),
            last_used_at: None,
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO api_keys (id, username, name, key_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&listed.id)
        .bind(&listed.username)
        .bind(&listed.name)
        .bind(sha256_hex(key.as_bytes()))
        .bind(listed.created_at)
        .execute(self.pool())
        .await?;
        Ok((listed, key))
    }

    /// The user a working key belongs to; notes the use.
    pub async fn api_key_user(&self, key: &str) -> sqlx::Result<Option<User>> {
        let owner: Option<(String,)> = sqlx::query_as(
            "UPDATE api_keys SET last_used_at = $1 \
             WHERE key_hash = $2 AND revoked_at IS NULL RETURNING username",
        )
        .bind(now_ms())
        .bind(sha256_hex(key.as_bytes()))
        .fetch_optional(self.pool())
        .await?;
        match owner {
            Some((username,)) => self.user(&username).await,
            None => Ok(None),
        }
    }

    /// The keys of `username`, newest first, revoked ones included.
    pub async fn api_keys(&self, username: &str) -> sqlx::Result<Vec<ApiKey>> {
        sqlx::query_as(
            "SELECT id, username, name, created_at, last_used_at, revoked_at FROM api_keys \
             WHERE username = $1 ORDER BY created_at DESC",
        )
        .bind(username)
        .fetch_all(self.pool())
        .await
    }

    /// Revokes a key of `username`; `false` when that user has no such
    /// working key.
    pub async fn revoke_api_key(&self, username: &str, id: &str) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 \
             WHERE id = $2 AND username = $3 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .bind(username)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
