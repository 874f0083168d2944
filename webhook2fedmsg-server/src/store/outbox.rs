//! The outbox: messages accepted but not yet confirmed by the broker.
//!
//! A dispatcher claims due rows with a lease (`locked_until`); on
//! PostgreSQL the claim uses `FOR UPDATE SKIP LOCKED`, so instances sharing
//! the database take disjoint rows. A claimed row that is neither marked
//! sent nor retried before its lease ends (the instance died) becomes due
//! again and is published by whoever claims it next, with the same id.

use super::{Backend, Store, now_ms};

/// A message waiting in the outbox.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    /// The message id.
    pub message_id: String,
    /// The topic, unprefixed.
    pub topic: String,
    /// The JSON body.
    pub body: String,
    /// The headers as a JSON object.
    pub headers: String,
    /// Publish attempts so far.
    pub attempts: i64,
    /// When the message was accepted, Unix milliseconds.
    pub created_at: i64,
}

/// How many message ids one statement of [`Store::mark_sent`] names.
const SENT_PER_STATEMENT: usize = 100;

/// `$first, $first+1, ...`: `count` numbered placeholders.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Claims up to `limit` due messages for `lease_ms`, oldest first.
    pub async fn claim_outbox(&self, limit: i64, lease_ms: i64) -> sqlx::Result<Vec<OutboxRow>> {
        let now = now_ms();
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            // SQLite has one writer at a time: the UPDATE itself is the lock.
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET locked_until = $1 WHERE message_id IN ( \
               SELECT message_id FROM outbox WHERE state = 'pending' \
               AND next_attempt_at <= $2 AND locked_until <= $2 \
               ORDER BY created_at LIMIT $3 {lock}) \
             RETURNING message_id, topic, body, headers, attempts, created_at"
        );
        let mut rows: Vec<OutboxRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(now + lease_ms)
            .bind(now)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.sort_by(|a, b| a.message_id.cmp(&b.message_id));
        Ok(rows)
    }

    /// On SQLite, which serves one instance, makes every message claimed
    /// by a process that died due again at once, instead of after its
    /// lease. On PostgreSQL other instances may hold leases, so they run
    /// out by themselves.
    pub async fn release_leases_at_start(&self) -> sqlx::Result<()> {
        if matches!(self.backend(), Backend::Sqlite) {
            sqlx::query("UPDATE outbox SET locked_until = 0 WHERE state = 'pending'")
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }

    /// Removes published messages from the outbox and marks their
    /// deliveries published, in one transaction.
    pub async fn mark_sent(&self, message_ids: &[String]) -> sqlx::Result<()> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        // A few statements for a whole batch, not two per message: on
        // SQLite this transaction holds the one write lock that incoming
        // webhooks wait for.
        for ids in message_ids.chunks(SENT_PER_STATEMENT) {
            let delete = format!(
                "DELETE FROM outbox WHERE message_id IN ({})",
                placeholders(1, ids.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(delete));
            for id in ids {
                query = query.bind(id);
            }
            query.execute(&mut *tx).await?;

            let update = format!(
                "UPDATE deliveries SET outcome = 'published', published_at = $1 \
                 WHERE message_id IN ({})",
                placeholders(2, ids.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(update)).bind(now);
            for id in ids {
                query = query.bind(id);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    /// Puts a message back for another attempt at `next_attempt_at`.
    pub async fn mark_retry(
        &self,
        message_id: &str,
        error: &str,
        next_attempt_at: i64,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, locked_until = 0, \
             last_error = $2 WHERE message_id = $3",
        )
        .bind(next_attempt_at)
        .bind(error)
        .bind(message_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Gives up on a message the broker refused for good, keeping it with
    /// the reason for an operator to look at.
    pub async fn mark_failed(&self, message_id: &str, error: &str) -> sqlx::Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE outbox SET state = 'failed', attempts = attempts + 1, locked_until = 0, \
             last_error = $1 WHERE message_id = $2",
        )
        .bind(error)
        .bind(message_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE deliveries SET outcome = 'failed', reason = $1 WHERE message_id = $2")
            .bind(error)
            .bind(message_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Messages waiting to be published (not failed).
    pub async fn outbox_depth(&self) -> sqlx::Result<i64> {
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
                .fetch_one(self.pool())
                .await?;
        Ok(count)
    }
}
