//! Sessions: who is logged in on which browser.
//!
//! The cookie holds a random session key; the table holds only its SHA-256
//! ([`crate::crypto::sha256_hex`]), so a copy of the database logs nobody
//! in. Each session has its own CSRF token, which every form and every
//! cookie-authenticated API write must repeat.

use super::users::User;
use super::{Store, now_ms};
use crate::crypto::{self, sha256_hex};

/// A live session, with the user it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Session {
    /// The FAS username.
    pub username: String,
    /// The e-mail address from the last login, if any.
    pub email: Option<String>,
    /// The FAS groups from the last login, as a JSON array.
    pub groups_json: String,
    /// The session's CSRF token.
    pub csrf_token: String,
    /// When the session ends, Unix milliseconds.
    pub expires_at: i64,
}

impl Session {
    /// The user behind the session.
    pub fn user(&self) -> User {
        User {
            username: self.username.clone(),
            email: self.email.clone(),
            groups_json: self.groups_json.clone(),
        }
    }
}

impl Store {
    /// Opens a session for `username` lasting `lifetime_ms`; returns the
    /// session key for the cookie (shown nowhere else) and the CSRF token.
    pub async fn create_session(
        &self,
        username: &str,
        lifetime_ms: i64,
    ) -> sqlx::Result<(String, String)> {
        let key = crypto::random_hex(32);
        let csrf = crypto::random_hex(32);
        let now = now_ms();
        sqlx::query(
            "INSERT INTO sessions (id_hash, username, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(sha256_hex(key.as_bytes()))
        .bind(username)
        .bind(&csrf)
        .bind(now)
        .bind(now.saturating_add(lifetime_ms))
        .execute(self.pool())
        .await?;
        sqlx::query("UPDATE users SET last_login_at = $1 WHERE username = $2")
            .bind(now)
            .bind(username)
            .execute(self.pool())
            .await?;
        Ok((key, csrf))
    }

    /// The unexpired session whose cookie holds `key`.
    pub async fn session(&self, key: &str) -> sqlx::Result<Option<Session>> {
        sqlx::query_as(
            "SELECT s.username, u.email, u.groups_json, s.csrf_token, s.expires_at \
             FROM sessions s JOIN users u ON u.username = s.username \
             WHERE s.id_hash = $1 AND s.expires_at > $2",
        )
        .bind(sha256_hex(key.as_bytes()))
        .bind(now_ms())
        .fetch_optional(self.pool())
        .await
    }

    /// Ends the session whose cookie holds `key`; `false` when there was
    /// none.
    pub async fn end_session(&self, key: &str) -> sqlx::Result<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(sha256_hex(key.as_bytes()))
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Forgets sessions that ended before now.
    pub async fn purge_sessions(&self) -> sqlx::Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now_ms())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
