//! The outbox: messages accepted but not yet confirmed by the broker.
//!
//! A message is written to the outbox leased (`locked_until`) to the
//! instance that accepted it, whose dispatcher gets it in memory through
//! the [`Handoff`] without reading it back. Rows that are due and not
//! leased (retries, and rows that found the hand-off full) are claimed by
//! a dispatcher with a lease too; on
//! PostgreSQL the claim uses `FOR UPDATE SKIP LOCKED`, so instances sharing
//! the database take disjoint rows. A claimed row that is neither marked
//! sent nor retried before its lease ends (the instance died) becomes due
//! again and is published by whoever claims it next, with the same id.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::AnyConnection;
use tokio::sync::Notify;

use super::{Backend, Store, now_ms};

/// How long a lease holds before another instance may take the rows.
pub const LEASE_MS: i64 = 60_000;

/// A message waiting in the outbox.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    /// The row id: the id of the delivery that queued it.
    pub id: String,
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

/// How many ids one statement of [`for_ids`] names.
const IDS_PER_STATEMENT: usize = 100;

impl Store {
    /// Claims up to `limit` due messages for `lease_ms`, oldest first.
    ///
    /// Known gap: the batch is bounded in rows, not bytes, so a backlog of
    /// large messages is read `limit` large bodies at a time.
    pub async fn claim_outbox(&self, limit: i64, lease_ms: i64) -> sqlx::Result<Vec<OutboxRow>> {
        let now = now_ms();
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            // SQLite has one writer at a time: the UPDATE itself is the lock.
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET locked_until = $1 WHERE id IN ( \
               SELECT id FROM outbox WHERE state = 'pending' \
               AND next_attempt_at <= $2 AND locked_until <= $2 \
               ORDER BY created_at LIMIT $3 {lock}) \
             RETURNING id, message_id, topic, body, headers, attempts, created_at"
        );
        let mut rows: Vec<OutboxRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(now + lease_ms)
            .bind(now)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        // Row ids are time-ordered: oldest first.
        rows.sort_by(|a, b| a.id.cmp(&b.id));
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

    /// Makes these messages, leased by this instance but not published,
    /// due again at once (at shutdown).
    pub async fn release(&self, row_ids: &[String]) -> sqlx::Result<()> {
        let mut conn = self.pool().acquire().await?;
        for_ids(
            &mut conn,
            "UPDATE outbox SET locked_until = 0 WHERE id IN ({ids})",
            None,
            row_ids,
        )
        .await
    }

    /// Puts a message (by row id) back for another attempt at
    /// `next_attempt_at`.
    pub async fn mark_retry(
        &self,
        row_id: &str,
        error: &str,
        next_attempt_at: i64,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, locked_until = 0, \
             last_error = $2 WHERE id = $3",
        )
        .bind(next_attempt_at)
        .bind(error)
        .bind(row_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Gives up on a message (by row id) the broker refused for good,
    /// keeping it with the reason for an operator to look at; its
    /// delivery then reads as failed.
    pub async fn mark_failed(&self, row_id: &str, error: &str) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE outbox SET state = 'failed', attempts = attempts + 1, locked_until = 0, \
             last_error = $1 WHERE id = $2",
        )
        .bind(error)
        .bind(row_id)
        .execute(self.pool())
        .await?;
        Ok(())
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

/// Removes published messages (by row id) from the outbox, within the
/// caller's transaction: their deliveries then read as published.
pub(crate) async fn forget_sent(conn: &mut AnyConnection, row_ids: &[String]) -> sqlx::Result<()> {
    // A few statements for a whole batch, not one per message.
    for_ids(
        conn,
        "DELETE FROM outbox WHERE id IN ({ids})",
        None,
        row_ids,
    )
    .await
}

/// Runs `statement` once per [`IDS_PER_STATEMENT`] ids, with `{ids}`
/// replaced by their placeholders, after `first`'s (at `{first}`, which
/// must come before `{ids}`) when there is one.
pub(crate) async fn for_ids<S: AsRef<str> + Sync>(
    conn: &mut AnyConnection,
    statement: &str,
    first: Option<i64>,
    ids: &[S],
) -> sqlx::Result<()> {
    let start = if first.is_some() { 2 } else { 1 };
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let sql = statement
            .replace("{first}", &super::param(conn, 1))
            .replace("{ids}", &super::params(conn, start, chunk.len()));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(first) = first {
            query = query.bind(first);
        }
        for id in chunk {
            query = query.bind(id.as_ref());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Messages this instance wrote to the outbox, leased to it, on their way
/// to its dispatcher in memory. Holds at most a fixed number, so that a
/// dispatcher that cannot keep up (the broker is away) costs no more
/// memory than that: what does not fit waits in the outbox, unleased.
#[derive(Debug)]
pub struct Handoff {
    rows: Mutex<VecDeque<OutboxRow>>,
    capacity: usize,
    claim: AtomicBool,
    wake: Notify,
}

impl Handoff {
    /// A hand-off holding at most `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        Self {
            rows: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
            // The outbox may hold rows from before a restart.
            claim: AtomicBool::new(true),
            wake: Notify::new(),
        }
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, VecDeque<OutboxRow>> {
        // A panic while holding the lock cannot leave the queue half
        // changed: every change is one VecDeque call.
        self.rows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many more messages fit.
    pub fn room(&self) -> usize {
        self.capacity.saturating_sub(self.rows().len())
    }

    /// Adds committed messages (callers check [`Handoff::room`] first;
    /// a row past the capacity is still kept, never dropped) and wakes the
    /// dispatcher.
    pub fn push(&self, rows: Vec<OutboxRow>) {
        self.rows().extend(rows);
        self.wake.notify_one();
    }

    /// Tells the dispatcher that unleased rows wait in the outbox.
    pub fn claim_soon(&self) {
        self.claim.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Whether [`Handoff::claim_soon`] was called since the last time
    /// this was asked.
    pub fn take_claim(&self) -> bool {
        self.claim.swap(false, Ordering::AcqRel)
    }

    /// Takes up to `max` messages, oldest first.
    pub fn take(&self, max: usize) -> Vec<OutboxRow> {
        let mut rows = self.rows();
        let n = max.min(rows.len());
        rows.drain(..n).collect()
    }

    /// Waits until something is pushed or asked for.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}
