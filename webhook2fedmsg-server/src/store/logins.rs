//! Logins in flight: what the callback of an OpenID Connect login needs to
//! check the provider's answer (nonce, PKCE verifier) and where to go next.
//!
//! Rows are keyed by the SHA-256 of the `state` parameter and taken exactly
//! once: a replayed callback finds nothing. A login must come back within
//! [`LOGIN_TTL_MS`].

use super::{Store, now_ms};
use crate::crypto::sha256_hex;

/// How long a started login may take, in milliseconds (10 minutes).
pub const LOGIN_TTL_MS: i64 = 10 * 60 * 1000;

/// A started login, as the callback finds it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PendingLogin {
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier.
    pub pkce_verifier: String,
    /// The path on this site to return to.
    pub next_path: String,
    /// When the login started, Unix milliseconds.
    pub created_at: i64,
}

impl Store {
    /// Records a started login under its `state`.
    pub async fn start_login(
        &self,
        state: &str,
        nonce: &str,
        pkce_verifier: &str,
        next_path: &str,
    ) -> sqlx::Result<()> {
        let now = now_ms();
        sqlx::query("DELETE FROM logins WHERE created_at < $1")
            .bind(now - LOGIN_TTL_MS)
            .execute(self.pool())
            .await?;
        sqlx::query(
            "INSERT INTO logins (state_hash, nonce, pkce_verifier, next_path, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(sha256_hex(state.as_bytes()))
        .bind(nonce)
        .bind(pkce_verifier)
        .bind(next_path)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Takes the login started with `state`, if it is recent: a second
    /// call with the same state finds nothing.
    pub async fn take_login(&self, state: &str) -> sqlx::Result<Option<PendingLogin>> {
        let taken: Option<PendingLogin> = sqlx::query_as(
            "DELETE FROM logins WHERE state_hash = $1 \
             RETURNING nonce, pkce_verifier, next_path, created_at",
        )
        .bind(sha256_hex(state.as_bytes()))
        .fetch_optional(self.pool())
        .await?;
        Ok(taken.filter(|login| login.created_at >= now_ms() - LOGIN_TTL_MS))
    }
}
