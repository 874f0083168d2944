//! Accepting deliveries: the dedupe check and the outbox write, in one
//! transaction per batch.
//!
//! A delivery is stored once per token: the unique indexes on
//! `(token_id, delivery_id)` and `(token_id, body_digest)` make a
//! redelivery or a replay a [`Stored::Duplicate`] that points at the first
//! message, even when two server instances receive it at the same moment.
//! [`Writer`] gathers the deliveries of concurrent requests into one
//! transaction, so that a commit (and its fsync) serves many requests.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sqlx::AnyConnection;
use tokio::sync::{mpsc, oneshot};

use super::outbox::{Handoff, LEASE_MS, OutboxRow};
use super::{Store, now_ms};

/// A verified delivery to store.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// The row id, also its message's id in the outbox: a UUIDv7
    /// ([`NewDelivery::new_id`]), so that rows are appended in time order.
    pub id: String,
    /// The token it arrived on.
    pub token_id: String,
    /// The sender's delivery id, if it sends one.
    pub delivery_id: Option<String>,
    /// Hex SHA-256 of the raw body.
    pub body_digest: String,
    /// The topic, unprefixed.
    pub topic: String,
    /// The message to publish; `None` for an event that is not published.
    pub message: Option<Accepted>,
    /// Why the event is not published, when it is not.
    pub skip_reason: Option<String>,
}

impl NewDelivery {
    /// A fresh row id.
    pub fn new_id() -> String {
        uuid::Uuid::now_v7().to_string()
    }
}

/// A message bound for the outbox.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The message id.
    pub message_id: String,
    /// The JSON body.
    pub body: String,
    /// The fedora-messaging headers, as a JSON object.
    pub headers: String,
    /// `body` packed as the outbox stores it: by the request's task, so
    /// that the one writer only copies it.
    packed_body: Vec<u8>,
}

impl Accepted {
    /// A message with its body packed for the outbox.
    pub fn new(message_id: String, body: String, headers: String) -> Self {
        let packed_body = super::outbox::pack(&body);
        Self {
            message_id,
            body,
            headers,
            packed_body,
        }
    }
}

/// What storing one delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// First time seen: stored (and queued, unless skipped).
    New,
    /// Seen before on this token: nothing new is published. Holds the first
    /// delivery's message id (`None` when that one was skipped, or is past
    /// the dedupe window).
    Duplicate(Option<String>),
}

/// A recent delivery of a token, for the token pages and the API.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct DeliveryRecord {
    /// The sender's delivery id.
    pub delivery_id: Option<String>,
    /// When it arrived, Unix milliseconds.
    pub received_at: i64,
    /// The topic, unprefixed.
    pub topic: String,
    /// The message id, unless the event was skipped.
    pub message_id: Option<String>,
    /// `queued`, `published`, `failed` or `skipped`: whether its message
    /// is still in the outbox, and in which state, or gone (published).
    pub outcome: String,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
}

/// The longest delivery id stored as it is.
const MAX_DELIVERY_ID: usize = 200;

/// A delivery id as stored and compared: itself, or past
/// [`MAX_DELIVERY_ID`] bytes its SHA-256. The header is not signed, so
/// anyone may make it long, and PostgreSQL refuses index entries past
/// about 2.7 KB; real ids are UUIDs or numbers.
pub fn delivery_key(id: &str) -> String {
    if id.len() <= MAX_DELIVERY_ID {
        id.to_string()
    } else {
        format!("sha256:{}", crate::crypto::sha256_hex(id.as_bytes()))
    }
}

impl Store {
    /// Stores a batch of deliveries, forgets the published messages
    /// `sent` (outbox row ids) and sets the `last_used_at` of the tokens
    /// `touch`, in one transaction.
    ///
    /// New messages enter the outbox leased until `lease_until`
    /// (milliseconds; 0 for none), for the dispatcher they are handed to.
    /// When every delivery is new, which is the usual case, the batch
    /// costs a few multi-row statements; when one is a duplicate, the
    /// batch is written again one delivery at a time, to tell which. A
    /// body seen on the same token before the dedupe window (see
    /// [`Store::purge_deliveries`]) is a duplicate too.
    pub async fn write_batch(
        &self,
        batch: &[NewDelivery],
        sent: &[String],
        touch: &[&str],
        lease_until: i64,
    ) -> sqlx::Result<Vec<Stored>> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let mut results = vec![Stored::New; batch.len()];
        let mut inserted = 0;
        for rows in batch.chunks(ROWS_PER_STATEMENT) {
            inserted += insert_deliveries(&mut tx, rows, now).await?;
        }
        // Looked up only now: on SQLite a transaction that reads first and
        // then writes fails at once, without waiting, when another
        // connection wrote in between; one that writes first waits for
        // the write lock.
        let replays = seen_before(&mut tx, batch).await?;
        if replays.is_empty() && inserted == batch.len() as u64 {
            let messages: Vec<_> = batch.iter().filter(|d| d.message.is_some()).collect();
            for rows in messages.chunks(ROWS_PER_STATEMENT) {
                insert_outbox(&mut tx, rows, now, lease_until).await?;
            }
        } else {
            tx.rollback().await?;
            tx = self.pool().begin().await?;
            results = store_one_by_one(&mut tx, batch, &replays, now, lease_until).await?;
        }
        super::outbox::for_ids(
            &mut tx,
            "UPDATE tokens SET last_used_at = {first} WHERE id IN ({ids})",
            Some(now),
            touch,
        )
        .await?;
        super::outbox::forget_sent(&mut tx, sent).await?;
        tx.commit().await?;
        Ok(results)
    }

    /// The most recent deliveries of a token, newest first.
    pub async fn recent_deliveries(
        &self,
        token_id: &str,
        limit: i64,
    ) -> sqlx::Result<Vec<DeliveryRecord>> {
        sqlx::query_as(
            "SELECT d.delivery_id, d.received_at, d.topic, d.message_id, \
               CASE WHEN o.state = 'failed' THEN 'failed' \
                    WHEN o.id IS NOT NULL THEN 'queued' \
                    WHEN d.outcome = 'queued' THEN 'published' \
                    ELSE d.outcome END AS outcome, \
               CASE WHEN o.state = 'failed' THEN o.last_error ELSE d.reason END AS reason \
             FROM deliveries d LEFT JOIN outbox o ON o.id = d.id \
             WHERE d.token_id = $1 ORDER BY d.received_at DESC LIMIT $2",
        )
        .bind(token_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await
    }

    /// Forgets deliveries received before `cutoff` (milliseconds): their
    /// redeliveries are no longer recognised by delivery id. The body
    /// digests of the published ones are kept, so that their bodies (which
    /// the published messages show, with their signatures) are still
    /// recognised as replays.
    pub async fn purge_deliveries(&self, cutoff: i64) -> sqlx::Result<u64> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO seen_bodies (token_id, body_digest) \
             SELECT token_id, body_digest FROM deliveries \
             WHERE received_at < $1 AND message_id IS NOT NULL \
             ON CONFLICT DO NOTHING",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query("DELETE FROM deliveries WHERE received_at < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}

/// Rows per multi-row statement: far below the bound-parameter limits of
/// SQLite (32,766) and PostgreSQL (65,535).
const ROWS_PER_STATEMENT: usize = 100;

/// `($1, $2, ...), ($n+1, ...)`: `rows` groups of `columns` placeholders
/// for `conn`, see [`super::param`].
pub(crate) fn value_rows(conn: &AnyConnection, rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| {
            let numbers: Vec<String> = (1..=columns)
                .map(|column| super::param(conn, row * columns + column))
                .collect();
            format!("({})", numbers.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts the deliveries that are not duplicates; returns how many.
async fn insert_deliveries(
    conn: &mut AnyConnection,
    rows: &[NewDelivery],
    now: i64,
) -> sqlx::Result<u64> {
    let sql = format!(
        "INSERT INTO deliveries (id, token_id, delivery_id, body_digest, received_at, topic, \
         message_id, outcome, reason) VALUES {} ON CONFLICT DO NOTHING",
        value_rows(conn, rows.len(), 9)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(super::keep_prepared(conn));
    for delivery in rows {
        let outcome = if delivery.message.is_some() {
            "queued"
        } else {
            "skipped"
        };
        query = query
            .bind(&delivery.id)
            .bind(&delivery.token_id)
            .bind(delivery.delivery_id.as_deref().map(delivery_key))
            .bind(&delivery.body_digest)
            .bind(now)
            .bind(&delivery.topic)
            .bind(delivery.message.as_ref().map(|m| &m.message_id))
            .bind(outcome)
            .bind(&delivery.skip_reason);
    }
    Ok(query.execute(&mut *conn).await?.rows_affected())
}

/// Queues the messages of new deliveries.
async fn insert_outbox(
    conn: &mut AnyConnection,
    rows: &[&NewDelivery],
    now: i64,
    lease_until: i64,
) -> sqlx::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO outbox (id, message_id, topic, packed_body, body_size, headers, \
         created_at, next_attempt_at, locked_until) VALUES {}",
        value_rows(conn, rows.len(), 9)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(super::keep_prepared(conn));
    for delivery in rows {
        let Some(message) = &delivery.message else {
            continue;
        };
        query = query
            .bind(&delivery.id)
            .bind(&message.message_id)
            .bind(&delivery.topic)
            .bind(message.packed_body.as_slice())
            .bind(message.body.len() as i64)
            .bind(&message.headers)
            .bind(now)
            .bind(now)
            .bind(lease_until);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// The `(token id, body digest)` pairs of the batch that were published
/// before the dedupe window.
async fn seen_before(
    conn: &mut AnyConnection,
    batch: &[NewDelivery],
) -> sqlx::Result<HashSet<(String, String)>> {
    let mut seen = HashSet::new();
    for rows in batch.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT token_id, body_digest FROM seen_bodies WHERE body_digest IN ({})",
            super::params(conn, 1, rows.len())
        );
        let mut query = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql))
            .persistent(super::keep_prepared(conn));
        for delivery in rows {
            query = query.bind(&delivery.body_digest);
        }
        seen.extend(query.fetch_all(&mut *conn).await?);
    }
    seen.retain(|(token_id, digest)| {
        batch
            .iter()
            .any(|d| &d.token_id == token_id && &d.body_digest == digest)
    });
    Ok(seen)
}

/// Stores each delivery on its own, finding the duplicates and the first
/// message each of them repeats; `replays` are duplicates of messages
/// past the dedupe window, which are no longer known.
async fn store_one_by_one(
    conn: &mut AnyConnection,
    batch: &[NewDelivery],
    replays: &HashSet<(String, String)>,
    now: i64,
    lease_until: i64,
) -> sqlx::Result<Vec<Stored>> {
    let mut results = Vec::with_capacity(batch.len());
    for delivery in batch {
        let key = (delivery.token_id.clone(), delivery.body_digest.clone());
        if replays.contains(&key) {
            results.push(Stored::Duplicate(None));
        } else if insert_deliveries(conn, std::slice::from_ref(delivery), now).await? == 0 {
            let first: Option<(Option<String>,)> = sqlx::query_as(
                "SELECT message_id FROM deliveries WHERE token_id = $1 \
                 AND (delivery_id = $2 OR body_digest = $3) ORDER BY received_at LIMIT 1",
            )
            .bind(&delivery.token_id)
            .bind(delivery.delivery_id.as_deref().map(delivery_key))
            .bind(&delivery.body_digest)
            .fetch_optional(&mut *conn)
            .await?;
            results.push(Stored::Duplicate(first.and_then(|(id,)| id)));
        } else {
            if delivery.message.is_some() {
                insert_outbox(conn, &[delivery], now, lease_until).await?;
            }
            results.push(Stored::New);
        }
    }
    Ok(results)
}

type Reply = oneshot::Sender<Result<Stored, WriteError>>;

/// Work for the writer task.
enum Job {
    /// Store a delivery and say how it went.
    Store(Box<NewDelivery>, Reply),
    /// Forget messages the broker has confirmed; answer when done.
    Sent(Vec<String>, oneshot::Sender<()>),
}

/// Gathers the writes of the hot path, deliveries from concurrent
/// requests and the dispatcher's confirmed messages, into one transaction
/// at a time: one commit (and its fsync) serves many requests, and on
/// SQLite nothing else on this path waits for the one write lock.
///
/// On SQLite the writer runs on a thread of its own, with a
/// single-threaded runtime. Each statement of a batch is a round trip to
/// SQLite's connection thread, and an answer that wakes a task of the
/// server's runtime from outside joins the back of its queue, behind
/// every request being handled. On the server's runtime, under load, the
/// writer was busy 96% of the time with batches of 23 deliveries taking
/// 4.4 ms, and a single delivery's commit took 0.95 ms at 1,000/s; on its
/// own thread, batches of 15 to 19 took 1.7 to 2.8 ms, and a single
/// commit 0.35 ms (load benchmark: 4,625 to 4,960 accepted/s before, in
/// three runs; 5,367 and 5,397 after, in two). PostgreSQL's answers come
/// through the sockets the server's runtime watches, and there the thread
/// made it slower (4,221 and 4,293/s against 4,499 to 4,806/s), so its
/// writer stays on the server's runtime.
///
/// New messages are handed to the dispatcher in memory once committed
/// (leased, so that no other instance takes them), unless its
/// [`Handoff`] is full; then they wait in the outbox, unleased, for the
/// dispatcher to claim them.
#[derive(Debug, Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
}

/// The most jobs done in one transaction.
const MAX_BATCH: usize = 256;

/// A token's `last_used_at` is set at most this often (milliseconds), so
/// that a busy token costs no statement in most batches.
const TOUCH_EVERY_MS: i64 = 1000;

/// When the writer last set each token's `last_used_at`.
#[derive(Debug, Default)]
struct LastUsed {
    touched: HashMap<String, i64>,
}

impl LastUsed {
    /// The tokens of `deliveries` not touched in the last
    /// [`TOUCH_EVERY_MS`], once each.
    fn due<'a>(&self, deliveries: &'a [NewDelivery], now: i64) -> Vec<&'a str> {
        let mut ids: Vec<&str> = deliveries
            .iter()
            .map(|d| d.token_id.as_str())
            .filter(|id| {
                self.touched
                    .get(*id)
                    .is_none_or(|&at| now - at >= TOUCH_EVERY_MS)
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Notes that `ids` were touched at `now`; forgets tokens not touched
    /// for a minute, so that removed ones do not stay.
    fn record(&mut self, ids: &[&str], now: i64) {
        for id in ids {
            self.touched.insert((*id).to_string(), now);
        }
        if self.touched.len() > 1024 {
            self.touched.retain(|_, at| now - *at < 60_000);
        }
    }
}

/// Why a delivery could not be stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The database refused the write; the detail is logged.
    #[error("the database is unavailable")]
    Database,
    /// The writer stopped (the server is shutting down).
    #[error("the server is shutting down")]
    Stopped,
    /// The token was removed before the delivery could be stored.
    #[error("the token was removed")]
    TokenRemoved,
}

impl WriteError {
    /// What a failed write means for the deliveries in it; logs the
    /// database's error unless it is the token's removal.
    fn from_database(error: &sqlx::Error) -> Self {
        let removed = error
            .as_database_error()
            .is_some_and(|e| e.is_foreign_key_violation());
        if removed {
            WriteError::TokenRemoved
        } else {
            tracing::error!(%error, "cannot store a delivery");
            WriteError::Database
        }
    }
}

impl Writer {
    /// Starts the writer on `store`, handing new messages to `handoff`:
    /// on SQLite on a thread of its own, which fails only when the thread
    /// cannot be started. It stops once every clone of the [`Writer`] is
    /// dropped.
    pub fn start(store: Store, handoff: Arc<Handoff>) -> std::io::Result<Self> {
        let (queue, incoming) = mpsc::channel::<Job>(4 * MAX_BATCH);
        if store.backend() != super::Backend::Sqlite {
            tokio::spawn(write_all(store, handoff, incoming));
            return Ok(Self { queue });
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("w2f-writer".into())
            .spawn(move || runtime.block_on(write_all(store, handoff, incoming)))?;
        Ok(Self { queue })
    }

    /// Stores one delivery; returns once it is committed.
    pub async fn store(&self, delivery: NewDelivery) -> Result<Stored, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job::Store(Box::new(delivery), reply))
            .await
            .map_err(|_| WriteError::Stopped)?;
        answer.await.map_err(|_| WriteError::Stopped)?
    }

    /// Removes confirmed messages (by outbox row id) from the outbox,
    /// with the next batch, without waiting for it: the receiver answers
    /// once that is done (or failed). Should it fail, they are published
    /// again after their lease, with the same message ids: a duplicate,
    /// never a loss.
    pub async fn sent(&self, row_ids: Vec<String>) -> Result<oneshot::Receiver<()>, WriteError> {
        let (done, removed) = oneshot::channel();
        self.queue
            .send(Job::Sent(row_ids, done))
            .await
            .map_err(|_| WriteError::Stopped)?;
        Ok(removed)
    }
}

/// The writer's loop: a batch of whatever jobs are waiting at a time.
async fn write_all(store: Store, handoff: Arc<Handoff>, mut incoming: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    let mut last_used = LastUsed::default();
    while incoming.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        write_jobs(&store, &handoff, &mut last_used, std::mem::take(&mut jobs)).await;
    }
}

async fn write_jobs(store: &Store, handoff: &Handoff, last_used: &mut LastUsed, jobs: Vec<Job>) {
    let mut deliveries = Vec::new();
    let mut replies = Vec::new();
    let mut sent = Vec::new();
    // Dropped at the end, which answers every waiter.
    let mut _removals = Vec::new();
    for job in jobs {
        match job {
            Job::Store(delivery, reply) => {
                deliveries.push(*delivery);
                replies.push(reply);
            }
            Job::Sent(ids, done) => {
                sent.extend(ids);
                _removals.push(done);
            }
        }
    }
    let (messages, bytes) = deliveries
        .iter()
        .filter_map(|d| d.message.as_ref())
        .fold((0, 0), |(n, bytes), m| (n + 1, bytes + m.body.len()));
    let handed = messages > 0 && handoff.fits(messages, bytes);
    let accepted_at = now_ms();
    let lease_until = if handed { accepted_at + LEASE_MS } else { 0 };
    let touch = last_used.due(&deliveries, accepted_at);
    let written = store
        .write_batch(&deliveries, &sent, &touch, lease_until)
        .await;
    let results = match written {
        Ok(results) => {
            last_used.record(&touch, accepted_at);
            results
        }
        Err(error)
            if is_row_fault(&error) && deliveries.len() + usize::from(!sent.is_empty()) > 1 =>
        {
            // One bad row must not fail its neighbours: retry one by one.
            tracing::debug!(%error, batch.size = deliveries.len(), "a row of the batch was refused, retrying singly");
            if !sent.is_empty() {
                if let Err(error) = store.write_batch(&[], &sent, &[], 0).await {
                    tracing::error!(%error, "cannot remove published messages from the outbox");
                }
            }
            let results = write_singly(store, &deliveries, lease_until).await;
            finish(handoff, handed, accepted_at, deliveries, replies, results);
            return;
        }
        Err(error) => {
            // Not the fault of a row (the database is locked, full or
            // gone): writing the rows one by one would wait as long again
            // for each, so the whole batch fails now.
            if !sent.is_empty() {
                tracing::error!(%error, "cannot remove published messages from the outbox");
            }
            if !deliveries.is_empty() {
                let error = WriteError::from_database(&error);
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
            return;
        }
    };
    finish(
        handoff,
        handed,
        accepted_at,
        deliveries,
        replies,
        results.into_iter().map(Ok).collect(),
    );
}

/// Whether the database refused `error`'s statement for what one of its
/// rows holds (a removed token, a broken constraint), rather than for
/// its own state (locked, full, unreachable), which would refuse every
/// row alike.
fn is_row_fault(error: &sqlx::Error) -> bool {
    use sqlx::error::ErrorKind;
    error.as_database_error().is_some_and(|e| {
        matches!(
            e.kind(),
            ErrorKind::ForeignKeyViolation
                | ErrorKind::UniqueViolation
                | ErrorKind::NotNullViolation
                | ErrorKind::CheckViolation
        )
    })
}

/// Writes each delivery in a transaction of its own, after a batch of
/// them was refused for one row's sake. Once one fails for another
/// reason than its row, the rest fail with it, unwritten.
async fn write_singly(
    store: &Store,
    deliveries: &[NewDelivery],
    lease_until: i64,
) -> Vec<Result<Stored, WriteError>> {
    let mut results = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        if let Some(Err(WriteError::Database)) = results.last() {
            results.push(Err(WriteError::Database));
            continue;
        }
        let result = store
            .write_batch(
                std::slice::from_ref(delivery),
                &[],
                &[delivery.token_id.as_str()],
                lease_until,
            )
            .await
            .map(|mut r| r.remove(0))
            .map_err(|e| WriteError::from_database(&e));
        results.push(result);
    }
    results
}

/// Hands the new messages to the dispatcher and answers each request.
fn finish(
    handoff: &Handoff,
    handed: bool,
    accepted_at: i64,
    deliveries: Vec<NewDelivery>,
    replies: Vec<Reply>,
    results: Vec<Result<Stored, WriteError>>,
) {
    let mut rows = Vec::new();
    for (delivery, result) in deliveries.into_iter().zip(&results) {
        if let (Ok(Stored::New), Some(message)) = (result, delivery.message) {
            rows.push(OutboxRow {
                id: delivery.id,
                message_id: message.message_id,
                topic: delivery.topic,
                body: message.body,
                headers: message.headers,
                attempts: 0,
                created_at: accepted_at,
            });
        }
    }
    // Handed over before the answers, so that a message is on its way
    // once its request is answered.
    if !rows.is_empty() {
        if handed {
            handoff.push(rows);
        } else {
            handoff.claim_soon();
        }
    }
    for (reply, result) in replies.into_iter().zip(results) {
        let _ = reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(token_id: &str) -> NewDelivery {
        NewDelivery {
            id: NewDelivery::new_id(),
            token_id: token_id.to_string(),
            delivery_id: None,
            body_digest: String::new(),
            topic: "github.push".into(),
            message: None,
            skip_reason: None,
        }
    }

    /// A batch is written again row by row only when one of its rows is
    /// at fault; a database that refuses every row would only make each
    /// of them wait and fail again.
    #[tokio::test]
    async fn only_a_refused_row_is_a_row_fault() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url, 1).await.unwrap();
        store.migrate().await.unwrap();

        let orphan = store
            .write_batch(&[delivery("no-such-token")], &[], &[], 0)
            .await
            .unwrap_err();
        assert!(is_row_fault(&orphan), "{orphan}");

        sqlx::query("ALTER TABLE deliveries RENAME TO deliveries_away")
            .execute(store.pool())
            .await
            .unwrap();
        let broken = store
            .write_batch(&[delivery("no-such-token")], &[], &[], 0)
            .await
            .unwrap_err();
        assert!(!is_row_fault(&broken), "{broken}");
        let results = write_singly(&store, &[delivery("a"), delivery("b")], 0).await;
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(WriteError::Database))),
            "{results:?}"
        );
    }

    #[test]
    fn a_token_is_touched_once_per_batch_and_then_once_a_second() {
        let batch = [delivery("b"), delivery("a"), delivery("b")];
        let mut last_used = LastUsed::default();
        let due = last_used.due(&batch, 10_000);
        assert_eq!(due, ["a", "b"]);
        last_used.record(&due, 10_000);

        assert!(last_used.due(&batch, 10_999).is_empty());
        let later = [delivery("a"), delivery("c")];
        assert_eq!(last_used.due(&later, 10_999), ["c"]);
        assert_eq!(last_used.due(&later, 11_000), ["a", "c"]);
    }

    #[test]
    fn tokens_not_touched_for_a_minute_are_forgotten_once_many_are_known() {
        let mut last_used = LastUsed::default();
        let old: Vec<String> = (0..1024).map(|n| format!("old-{n}")).collect();
        let old: Vec<&str> = old.iter().map(String::as_str).collect();
        last_used.record(&old, 0);
        assert_eq!(last_used.touched.len(), 1024);
        last_used.record(&["new"], 60_000);
        assert_eq!(last_used.touched.len(), 1);
        assert!(last_used.touched.contains_key("new"));
    }
}
