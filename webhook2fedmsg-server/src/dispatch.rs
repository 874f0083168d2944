//! The dispatcher: publishes what the outbox holds.
//!
//! It claims due messages in batches, hands them to the [`Publisher`]
//! (pipelined, with confirms), removes the confirmed ones and schedules the
//! rest: a transient failure (the broker is away) is retried with
//! exponential backoff, a permanent one marks the message failed with the
//! reason. It wakes when a request stores a message, and polls every
//! second for rows of other instances and for retries. After a restart it
//! simply starts from the outbox again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use uuid::Uuid;
use webhook2fedmsg_core::message::{HeaderValue, routing_key};

use crate::metrics::{FailureLabel, Metrics};
use crate::publish::{Outgoing, PublishError, Publisher};
use crate::store::outbox::OutboxRow;
use crate::store::{Store, now_ms};

/// Messages claimed per round.
const BATCH: i64 = 500;
/// How long a claim holds before another instance may take the rows.
const LEASE_MS: i64 = 60_000;
/// Longest wait between two attempts at one message.
const MAX_BACKOFF_MS: i64 = 60_000;
/// How often accepted deliveries past the retention window are purged.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// Publishes the outbox.
pub struct Dispatcher {
    /// Where messages are stored.
    pub store: Store,
    /// Where they go.
    pub publisher: Arc<dyn Publisher>,
    /// The topic prefix.
    pub topic_prefix: String,
    /// Signalled when a request stores a message.
    pub wake: Arc<Notify>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Deliveries older than this many milliseconds are forgotten.
    pub retention_ms: i64,
}

impl Dispatcher {
    /// Runs until `shutdown` turns true; unsent messages stay in the outbox.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut pause = Duration::ZERO;
        let mut last_purge = tokio::time::Instant::now() - PURGE_EVERY;
        loop {
            if *shutdown.borrow() {
                return;
            }
            if last_purge.elapsed() >= PURGE_EVERY {
                self.purge().await;
                last_purge = tokio::time::Instant::now();
            }
            if pause > Duration::ZERO {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => return,
                }
            }
            pause = match self.round().await {
                Round::Busy => Duration::ZERO,
                Round::Idle => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => return,
                    }
                    Duration::ZERO
                }
                Round::BrokerAway => Duration::from_millis(500),
                Round::DatabaseAway => Duration::from_secs(1),
            };
        }
    }

    async fn round(&self) -> Round {
        let rows = match self.store.claim_outbox(BATCH, LEASE_MS).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::error!(%error, "cannot read the outbox");
                return Round::DatabaseAway;
            }
        };
        if let Ok(depth) = self.store.outbox_depth().await {
            self.metrics.outbox_depth.set(depth);
        }
        if rows.is_empty() {
            return Round::Idle;
        }
        let outgoing: Vec<Outgoing> = rows.iter().map(|row| self.outgoing(row)).collect();
        let results = self.publisher.publish(&outgoing).await;
        self.settle(&rows, results).await
    }

    fn outgoing(&self, row: &OutboxRow) -> Outgoing {
        Outgoing {
            // Ids are written by this server as UUIDs; a row edited by hand
            // into something else still goes out, under a fresh id.
            id: Uuid::parse_str(&row.message_id).unwrap_or_else(|_| Uuid::new_v4()),
            routing_key: routing_key(&self.topic_prefix, &row.topic),
            body: row.body.clone(),
            headers: parse_headers(&row.headers),
        }
    }

    async fn settle(&self, rows: &[OutboxRow], results: Vec<Result<(), PublishError>>) -> Round {
        let now = now_ms();
        let mut sent = Vec::new();
        let mut broker_away = false;
        for (row, result) in rows.iter().zip(results) {
            match result {
                Ok(()) => {
                    let latency = (now - row.created_at).max(0) as f64 / 1000.0;
                    self.metrics.publish_latency.observe(latency);
                    sent.push(row.message_id.clone());
                }
                Err(PublishError::Transient(reason)) => {
                    broker_away = true;
                    self.count_failure("transient");
                    let next = now + backoff_ms(row.attempts);
                    if let Err(error) = self.store.mark_retry(&row.message_id, &reason, next).await
                    {
                        tracing::error!(%error, message.id = %row.message_id, "cannot reschedule");
                    }
                }
                Err(PublishError::Permanent(reason)) => {
                    self.count_failure("permanent");
                    tracing::error!(message.id = %row.message_id, message.topic = %row.topic,
                        %reason, "the broker refused a message for good; marked failed");
                    if let Err(error) = self.store.mark_failed(&row.message_id, &reason).await {
                        tracing::error!(%error, message.id = %row.message_id, "cannot mark failed");
                    }
                }
            }
        }
        if !sent.is_empty() {
            // If this fails the rows are published again after their lease,
            // with the same ids: a duplicate, never a loss.
            if let Err(error) = self.store.mark_sent(&sent).await {
                tracing::error!(%error, "cannot mark messages sent");
            }
            self.metrics.published.inc_by(sent.len() as u64);
            tracing::debug!(messages = sent.len(), "published");
        }
        if broker_away {
            tracing::warn!("broker unavailable; messages stay in the outbox and are retried");
            Round::BrokerAway
        } else {
            Round::Busy
        }
    }

    fn count_failure(&self, kind: &str) {
        self.metrics
            .publish_failures
            .get_or_create(&FailureLabel { kind: kind.into() })
            .inc();
    }

    // FIXME: once a delivery is purged, its body and signature (both in
    // the published message, as the schema package requires) can be sent
    // again to POST /<service> and are published anew. Keeping the body
    // digests, which are small, for much longer than the deliveries would
    // close this.
    async fn purge(&self) {
        match self
            .store
            .purge_deliveries(now_ms() - self.retention_ms)
            .await
        {
            Ok(0) => {}
            Ok(purged) => tracing::info!(deliveries = purged, "forgot deliveries past retention"),
            Err(error) => tracing::warn!(%error, "cannot purge old deliveries"),
        }
    }
}

enum Round {
    Busy,
    Idle,
    BrokerAway,
    DatabaseAway,
}

/// 1 s, 2 s, 4 s... up to a minute.
fn backoff_ms(attempts: i64) -> i64 {
    let exponent = attempts.clamp(0, 16) as u32;
    (1000i64 << exponent).min(MAX_BACKOFF_MS)
}

/// Headers as stored by the hooks: a JSON object of strings, integers and
/// booleans.
fn parse_headers(json: &str) -> BTreeMap<String, HeaderValue> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).unwrap_or_default();
    object
        .into_iter()
        .filter_map(|(name, value)| {
            let value = match value {
                serde_json::Value::String(s) => HeaderValue::Text(s),
                serde_json::Value::Bool(b) => HeaderValue::Bool(b),
                serde_json::Value::Number(n) => HeaderValue::Int(n.as_i64()?),
                _ => return None,
            };
            Some((name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        assert_eq!(backoff_ms(0), 1000);
        assert_eq!(backoff_ms(3), 8000);
        assert_eq!(backoff_ms(40), MAX_BACKOFF_MS);
    }

    #[test]
    fn stored_headers_keep_their_types() {
        let headers = parse_headers(r#"{"a":"x","b":20,"c":true}"#);
        assert_eq!(headers["a"], HeaderValue::Text("x".into()));
        assert_eq!(headers["b"], HeaderValue::Int(20));
        assert_eq!(headers["c"], HeaderValue::Bool(true));
    }
}
