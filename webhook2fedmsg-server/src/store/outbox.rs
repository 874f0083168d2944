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
#[derive(Debug, Clone)]
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

/// An outbox row as stored: its body is in `body` when it was queued
/// before bodies were packed, in `packed_body` otherwise.
#[derive(sqlx::FromRow)]
struct StoredRow {
    id: String,
    message_id: String,
    topic: String,
    body: Option<String>,
    packed_body: Option<Vec<u8>>,
    body_size: i64,
    headers: String,
    attempts: i64,
    created_at: i64,
}

impl StoredRow {
    /// The row with its body unpacked, or its row and message ids when the
    /// stored body cannot be read.
    fn unpacked(self) -> Result<OutboxRow, (String, String)> {
        let body = match (self.body, &self.packed_body) {
            (Some(body), _) => Some(body),
            (None, Some(packed)) => unpack(packed, self.body_size),
            (None, None) => None,
        };
        let Some(body) = body else {
            return Err((self.id, self.message_id));
        };
        Ok(OutboxRow {
            id: self.id,
            message_id: self.message_id,
            topic: self.topic,
            body,
            headers: self.headers,
            attempts: self.attempts,
            created_at: self.created_at,
        })
    }
}

/// A body as the outbox stores it in `packed_body`: LZ4's block format,
/// led by the body's length as four little-endian bytes.
pub(crate) fn pack(body: &str) -> Vec<u8> {
    lz4_flex::compress_prepend_size(body.as_bytes())
}

/// The body [`pack`] stored, if `packed` is one of `size` bytes.
///
/// The length is checked against the row's before anything is allocated:
/// a damaged row must not make the dispatcher ask for gigabytes.
fn unpack(packed: &[u8], size: i64) -> Option<String> {
    let (length, block) = packed.split_first_chunk::<4>()?;
    let length = u32::from_le_bytes(*length);
    if i64::from(length) != size {
        return None;
    }
    let mut body = vec![0; length as usize];
    let written = lz4_flex::block::decompress_into(block, &mut body).ok()?;
    if written != body.len() {
        return None;
    }
    String::from_utf8(body).ok()
}

/// Why a row whose body cannot be read is marked failed.
const UNREADABLE: &str = "the stored message body cannot be read";

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
    // Numbered parameters, each first used in the order of its number,
    // read the same on both databases.
    let sql = format!(
        "SELECT id, body_size FROM outbox WHERE state = 'pending' \
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
         RETURNING id, message_id, topic, body, packed_body, body_size, headers, attempts, \
         created_at",
        ids_p.join(", ")
    );
    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .persistent(super::keep_prepared(conn))
        .bind(now + lease_ms)
        .bind(now);
    for (id, _) in ids {
        query = query.bind(id);
    }
    let stored: Vec<StoredRow> = query.fetch_all(&mut *conn).await?;
    let mut rows = Vec::with_capacity(stored.len());
    for row in stored {
        match row.unpacked() {
            Ok(row) => rows.push(row),
            Err((id, message_id)) => {
                tracing::error!(outbox.row = %id, message.id = %message_id,
                    "{UNREADABLE}; marked failed");
                sqlx::query(
                    "UPDATE outbox SET state = 'failed', locked_until = 0, last_error = $1 \
                     WHERE id = $2",
                )
                .bind(UNREADABLE)
                .bind(&id)
                .execute(&mut *conn)
                .await?;
            }
        }
    }
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
        let mut query =
            sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(super::keep_prepared(conn));
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
    fn packed_bodies_unpack_to_what_was_packed() {
        for body in [
            "",
            "{}",
            "é\u{1F600} ünïcode",
            &"{\"a\":[1,2,3]}".repeat(2000),
        ] {
            let packed = pack(body);
            assert_eq!(unpack(&packed, body.len() as i64).as_deref(), Some(body));
        }
        // A 7.7 KB push packs to under a third, into one 4 KB page.
        let recording = include_str!("../../../fixtures/github/push.new-branch.json");
        let push = webhook2fedmsg_core::recording::Recording::from_json(recording).unwrap();
        let push = String::from_utf8(push.body).unwrap();
        assert!(pack(&push).len() < push.len() / 3, "{}", pack(&push).len());
    }

    #[test]
    fn damaged_packed_bodies_are_refused() {
        let body = "{\"ref\":\"refs/heads/main\"}".repeat(50);
        let packed = pack(&body);
        let size = body.len() as i64;
        // A length that is not the row's, even a huge one.
        assert_eq!(unpack(&packed, size + 1), None);
        let mut huge = packed.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(unpack(&huge, size), None);
        // Cut short, empty, or not LZ4 at all.
        assert_eq!(unpack(&packed[..packed.len() - 3], size), None);
        assert_eq!(unpack(&packed[..2], size), None);
        assert_eq!(unpack(&[], 0), None);
        let mut garbage = packed[..4].to_vec();
        garbage.extend_from_slice(&[0xff; 40]);
        assert_eq!(unpack(&garbage, size), None);
        // Bytes that unpack, but not to UTF-8.
        let latin1 = lz4_flex::compress_prepend_size(b"caf\xe9");
        assert_eq!(unpack(&latin1, 4), None);
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
