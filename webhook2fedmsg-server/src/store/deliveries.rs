//! Accepting deliveries: the dedupe check and the outbox write, in one
//! transaction per batch.
//!
//! A delivery is stored once per token: the unique indexes on
//! `(token_id, delivery_id)` and `(token_id, body_digest)` make a
//! redelivery or a replay a [`Stored::Duplicate`] that points at the first
//! message, even when two server instances receive it at the same moment.
//! [`Writer`] gathers the deliveries of concurrent requests into one
//! transaction, so that a commit (and its fsync) serves many requests.

use tokio::sync::{mpsc, oneshot};

use super::{Store, now_ms};

/// A verified delivery to store.
#[derive(Debug, Clone)]
pub struct NewDelivery {
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

/// A message bound for the outbox.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The message id.
    pub message_id: String,
    /// The JSON body.
    pub body: String,
    /// The fedora-messaging headers, as a JSON object.
    pub headers: String,
}

/// What storing one delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// First time seen: stored (and queued, unless skipped).
    New,
    /// Seen before on this token: nothing new is published. Holds the first
    /// delivery's message id (`None` when that one was skipped).
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
    /// `queued`, `published`, `failed` or `skipped`.
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
    /// Stores a batch of deliveries in one transaction.
    pub async fn store_deliveries(&self, batch: &[NewDelivery]) -> sqlx::Result<Vec<Stored>> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let mut results = Vec::with_capacity(batch.len());
        for delivery in batch {
            let outcome = if delivery.message.is_some() {
                "queued"
            } else {
                "skipped"
            };
            let inserted = sqlx::query(
                "INSERT INTO deliveries (id, token_id, delivery_id, body_digest, received_at, \
                 topic, message_id, outcome, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(&delivery.token_id)
            .bind(delivery.delivery_id.as_deref().map(delivery_key))
            .bind(&delivery.body_digest)
            .bind(now)
            .bind(&delivery.topic)
            .bind(delivery.message.as_ref().map(|m| &m.message_id))
            .bind(outcome)
            .bind(&delivery.skip_reason)
            .execute(&mut *tx)
            .await?
            .rows_affected();

            if inserted == 0 {
                let first: Option<(Option<String>,)> = sqlx::query_as(
                    "SELECT message_id FROM deliveries WHERE token_id = $1 \
                     AND (delivery_id = $2 OR body_digest = $3) ORDER BY received_at LIMIT 1",
                )
                .bind(&delivery.token_id)
                .bind(delivery.delivery_id.as_deref().map(delivery_key))
                .bind(&delivery.body_digest)
                .fetch_optional(&mut *tx)
                .await?;
                results.push(Stored::Duplicate(first.and_then(|(id,)| id)));
            } else {
                if let Some(message) = &delivery.message {
                    sqlx::query(
                        "INSERT INTO outbox (message_id, topic, body, headers, created_at, \
                         next_attempt_at) VALUES ($1, $2, $3, $4, $5, $5)",
                    )
                    .bind(&message.message_id)
                    .bind(&delivery.topic)
                    .bind(&message.body)
                    .bind(&message.headers)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                results.push(Stored::New);
            }
            sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&delivery.token_id)
                .execute(&mut *tx)
                .await?;
        }
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
            "SELECT delivery_id, received_at, topic, message_id, outcome, reason \
             FROM deliveries WHERE token_id = $1 ORDER BY received_at DESC LIMIT $2",
        )
        .bind(token_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await
    }

    /// Forgets deliveries received before `cutoff` (milliseconds): their
    /// redeliveries are no longer recognised.
    pub async fn purge_deliveries(&self, cutoff: i64) -> sqlx::Result<u64> {
        let done = sqlx::query("DELETE FROM deliveries WHERE received_at < $1")
            .bind(cutoff)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

type Reply = oneshot::Sender<Result<Stored, String>>;

/// Gathers deliveries from concurrent requests into batched transactions.
#[derive(Debug, Clone)]
pub struct Writer {
    queue: mpsc::Sender<(NewDelivery, Reply)>,
}

/// The most deliveries written in one transaction.
const MAX_BATCH: usize = 256;

/// Why a delivery could not be stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The database refused the write; the detail is logged.
    #[error("the database is unavailable")]
    Database,
    /// The writer stopped (the server is shutting down).
    #[error("the server is shutting down")]
    Stopped,
}

impl Writer {
    /// Starts the writer task on `store`.
    pub fn start(store: Store) -> Self {
        let (queue, mut incoming) = mpsc::channel::<(NewDelivery, Reply)>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while incoming.recv_many(&mut batch, MAX_BATCH).await > 0 {
                write_batch(&store, std::mem::take(&mut batch)).await;
            }
        });
        Self { queue }
    }

    /// Stores one delivery; returns once it is committed.
    pub async fn store(&self, delivery: NewDelivery) -> Result<Stored, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((delivery, reply))
            .await
            .map_err(|_| WriteError::Stopped)?;
        match answer.await {
            Ok(Ok(stored)) => Ok(stored),
            Ok(Err(_)) => Err(WriteError::Database),
            Err(_) => Err(WriteError::Stopped),
        }
    }
}

async fn write_batch(store: &Store, batch: Vec<(NewDelivery, Reply)>) {
    let (deliveries, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    match store.store_deliveries(&deliveries).await {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok(result));
            }
        }
        Err(error) if deliveries.len() > 1 => {
            // One bad row must not fail its neighbours: retry one by one.
            tracing::warn!(%error, batch.size = deliveries.len(), "batch write failed, retrying singly");
            for (delivery, reply) in deliveries.into_iter().zip(replies) {
                let result = store
                    .store_deliveries(std::slice::from_ref(&delivery))
                    .await;
                let _ = reply.send(result.map(|mut r| r.remove(0)).map_err(|e| {
                    tracing::error!(error = %e, token.id = %delivery.token_id, "cannot store a delivery");
                    e.to_string()
                }));
            }
        }
        Err(error) => {
            tracing::error!(%error, "cannot store a delivery");
            for reply in replies {
                let _ = reply.send(Err(error.to_string()));
            }
        }
    }
}
