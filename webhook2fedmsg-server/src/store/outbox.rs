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
    /// Claims up to `limit` due messages for `lease_ms`, oldest first, and
    /// no more than `max_bytes` of bodies (but always the first one), so
    /// that a backlog of large messages is read a few at a time.
    pub async fn claim_outbox(
        &self,
        limit: i64,
        max_bytes: i64,
        lease_ms: i64,
    ) -> sqlx::Result<Claimed> {
        let now = now_ms();
        // On PostgreSQL the candidates stay locked until the claim is
        // committed, and instances skip each other's; SQLite has one
        // writer at a time, and a read transaction there could not become
        // a write one while deliveries are written. Either way the UPDATE
        // takes only rows still due and unleased.
        if matches!(self.backend(), Backend::Postgres) {
            let mut tx = self.pool().begin().await?;
            let claimed = claim(&mut tx, now, limit, max_bytes, lease_ms, true).await?;
            tx.commit().await?;
            Ok(claimed)
        } else {
            let mut conn = self.pool().acquire().await?;
            claim(&mut conn, now, limit, max_bytes, lease_ms, false).await
        }
    }

    /// At start, makes every waiting message due at once rather than after
    /// the backoff of its last failure (a restart is often what fixed the
    /// cause). On SQLite, which serves one instance, also releases what a
    /// process that died had claimed, instead of waiting for its lease; on
    /// PostgreSQL other instances may hold leases, so they run out by
    /// themselves.
    pub async fn outbox_due_at_start(&self) -> sqlx::Result<()> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                "UPDATE outbox SET locked_until = 0, next_attempt_at = 0 WHERE state = 'pending'"
            }
            Backend::Postgres => {
                "UPDATE outbox SET next_attempt_at = 0 WHERE state = 'pending' AND attempts > 0"
            }
        };
        sqlx::query(sql).execute(self.pool()).await?;
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

/// The messages one claim took.
#[derive(Debug, Default)]
pub struct Claimed {
    /// The rows, oldest first.
    pub rows: Vec<OutboxRow>,
    /// Whether more were due than were taken (the row or byte limit cut
    /// the claim short).
    pub more: bool,
}

async fn claim(
    conn: &mut AnyConnection,
    now: i64,
    limit: i64,
    max_bytes: i64,
    lease_ms: i64,
    postgres: bool,
) -> sqlx::Result<Claimed> {
    let lock = if postgres {
        "FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    // `octet_length` is read from the row's header on both databases,
    // without reading the body itself.
    // Numbered parameters, each first used in the order of its number,
    // read the same on both databases.
    let sql = format!(
        "SELECT id, octet_length(body) FROM outbox WHERE state = 'pending' \
         AND next_attempt_at <= $1 AND locked_until <= $1 \
         ORDER BY created_at LIMIT $2 {lock}"
    );
    let candidates: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    let mut total = 0;
    let taken = candidates
        .iter()
        .take_while(|(_, bytes)| {
            total += bytes;
            total <= max_bytes || total == *bytes
        })
        .count();
    let more = taken < candidates.len() || candidates.len() as i64 == limit;
    let ids = &candidates[..taken];
    if ids.is_empty() {
        return Ok(Claimed::default());
    }
    let ids_p: Vec<String> = (3..3 + ids.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "UPDATE outbox SET locked_until = $1 WHERE locked_until <= $2 \
         AND state = 'pending' AND id IN ({}) \
         RETURNING id, message_id, topic, body, headers, attempts, created_at",
        ids_p.join(", ")
    );
    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(now + lease_ms)
        .bind(now);
    for (id, _) in ids {
        query = query.bind(id);
    }
    let mut rows: Vec<OutboxRow> = query.fetch_all(&mut *conn).await?;
    // Row ids are time-ordered: oldest first.
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Claimed { rows, more })
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

/// The most bytes of message bodies a [`Handoff`] holds, unless it holds
/// nothing else: a batch of large messages past it waits in the outbox.
pub const HANDOFF_BYTES: usize = 16 * 1024 * 1024;

/// Messages this instance wrote to the outbox, leased to it, on their way
/// to its dispatcher in memory. Holds at most a fixed number, and about
/// [`HANDOFF_BYTES`] of bodies, so that a dispatcher that cannot keep up
/// (the broker is away) costs no more memory than that: what does not fit
/// waits in the outbox, unleased.
#[derive(Debug)]
pub struct Handoff {
    queue: Mutex<Queue>,
    capacity: usize,
    claim: AtomicBool,
    wake: Notify,
}

#[derive(Debug, Default)]
struct Queue {
    rows: VecDeque<OutboxRow>,
    /// The bytes of the bodies in `rows`.
    bytes: usize,
}

impl Handoff {
    /// A hand-off holding at most `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: Mutex::new(Queue {
                rows: VecDeque::with_capacity(capacity),
                bytes: 0,
            }),
            capacity,
            // The outbox may hold rows from before a restart.
            claim: AtomicBool::new(true),
            wake: Notify::new(),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding the lock cannot leave the queue half
        // changed: every change is one VecDeque call and its byte count.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `messages` more, with bodies of `bytes` in all, fit.
    pub fn fits(&self, messages: usize, bytes: usize) -> bool {
        let queue = self.queue();
        queue.rows.len() + messages <= self.capacity
            && (queue.bytes + bytes <= HANDOFF_BYTES || queue.rows.is_empty())
    }

    /// Adds committed messages (callers check [`Handoff::fits`] first;
    /// a row past the capacity is still kept, never dropped) and wakes the
    /// dispatcher.
    pub fn push(&self, rows: Vec<OutboxRow>) {
        let mut queue = self.queue();
        queue.bytes += rows.iter().map(|row| row.body.len()).sum::<usize>();
        queue.rows.extend(rows);
        drop(queue);
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
        let mut queue = self.queue();
        let n = max.min(queue.rows.len());
        let rows: Vec<OutboxRow> = queue.rows.drain(..n).collect();
        queue.bytes -= rows.iter().map(|row| row.body.len()).sum::<usize>();
        rows
    }

    /// Waits until something is pushed or asked for.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(bytes: usize) -> OutboxRow {
        OutboxRow {
            id: String::new(),
            message_id: String::new(),
            topic: String::new(),
            body: "x".repeat(bytes),
            headers: String::new(),
            attempts: 0,
            created_at: 0,
        }
    }

    #[test]
    fn the_handoff_holds_a_bounded_number_of_bytes() {
        let handoff = Handoff::new(10);
        // An empty hand-off takes one batch however large.
        assert!(handoff.fits(1, HANDOFF_BYTES + 1));
        handoff.push(vec![row(HANDOFF_BYTES / 2)]);
        assert!(handoff.fits(1, HANDOFF_BYTES / 2));
        assert!(!handoff.fits(1, HANDOFF_BYTES / 2 + 1));
        handoff.push(vec![row(HANDOFF_BYTES / 4)]);
        assert_eq!(handoff.take(1).len(), 1);
        // What was taken is room again.
        assert!(handoff.fits(1, HANDOFF_BYTES * 3 / 4));
        assert!(!handoff.fits(1, HANDOFF_BYTES * 3 / 4 + 1));
        // And the row count still holds.
        assert!(!handoff.fits(10, 1));
        assert!(handoff.fits(9, 1));
    }
}
