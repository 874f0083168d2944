//! Users: Fedora accounts that own tokens.

use super::{Store, now_ms};

/// A Fedora account known to the server.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    /// The FAS username.
    pub username: String,
    /// The e-mail address from the login, if any.
    pub email: Option<String>,
    /// The FAS groups, as a JSON array.
    pub groups_json: String,
}

impl User {
    /// The user's groups.
    pub fn groups(&self) -> Vec<String> {
        serde_json::from_str(&self.groups_json).unwrap_or_default()
    }
}

impl Store {
    /// Creates the user, or updates e-mail and groups when they are given.
    pub async fn upsert_user(
        &self,
        username: &str,
        email: Option<&str>,
        groups: Option<&[String]>,
    ) -> sqlx::Result<()> {
        let groups = groups.map(|g| serde_json::to_string(g).unwrap_or_else(|_| "[]".into()));
        sqlx::query(
            "INSERT INTO users (username, email, groups_json, created_at) \
             VALUES ($1, $2, COALESCE($3, '[]'), $4) \
             ON CONFLICT (username) DO UPDATE SET \
               email = COALESCE(excluded.email, users.email), \
               groups_json = COALESCE($3, users.groups_json)",
        )
        .bind(username)
        .bind(email)
        .bind(groups)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The user with this username, if known.
    pub async fn user(&self, username: &str) -> sqlx::Result<Option<User>> {
        sqlx::query_as("SELECT username, email, groups_json FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(self.pool())
            .await
    }
}
