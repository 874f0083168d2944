//! The dispatcher: publishes what the outbox holds.
//!
//! It takes the messages this instance accepted from the [`Handoff`], in
//! memory, and claims due rows of the outbox (retries, rows of instances
//! that died, rows left from before a restart) about once a second. It
//! hands them to the [`Publisher`] in batches (pipelined, with confirms),
//! has the [`Writer`] remove the confirmed ones and schedules the rest: a
//! transient failure (the broker is away) is retried with exponential
//! backoff, a permanent one marks the message failed with the reason.
//! After a restart it simply starts from the outbox again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use uuid::Uuid;
use webhook2fedmsg_core::message::{HeaderValue, routing_key};

use crate::metrics::{FailureLabel, Metrics};
use crate::publish::{Outgoing, PublishError, Publisher};
use crate::store::deliveries::Writer;
use crate::store::outbox::{Handoff, LEASE_MS, OutboxRow};
use crate::store::{Store, now_ms};

/// Messages published per round.
const BATCH: usize = 500;
/// The most bytes of bodies one claim of due messages reads (a message
/// larger than this is claimed alone).
///
/// Known gap: draining a backlog of large messages still peaked near the
/// backlog's size in a test (175 MB for 144 MB), for a reason not found.
const CLAIM_BYTES: i64 = 16 * 1024 * 1024;
/// How often the outbox is looked at for due rows, when nothing asks
/// sooner.
const CLAIM_EVERY: Duration = Duration::from_secs(1);
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
    /// The messages this instance accepted.
    pub handoff: Arc<Handoff>,
    /// Removes published messages from the outbox.
    pub writer: Writer,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Deliveries older than this many milliseconds are forgotten.
    pub retention_ms: i64,
}

impl Dispatcher {
    /// Runs until `shutdown` turns true; unsent messages stay in the outbox.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut pause = Duration::ZERO;
        let mut last_purge = Instant::now() - PURGE_EVERY;
        let mut state = State {
            last_claim: Instant::now() - CLAIM_EVERY,
            removing: None,
        };
        loop {
            if *shutdown.borrow() {
                break;
            }
            if last_purge.elapsed() >= PURGE_EVERY {
                self.purge().await;
                last_purge = Instant::now();
            }
            if pause > Duration::ZERO {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => break,
                }
            }
            pause = match self.round(&mut state).await {
                Round::Busy => Duration::ZERO,
                Round::Idle => {
                    tokio::select! {
                        _ = self.handoff.woken() => {}
                        _ = tokio::time::sleep(CLAIM_EVERY) => {}
                        _ = shutdown.changed() => break,
                    }
                    Duration::ZERO
                }
                Round::BrokerAway => Duration::from_millis(500),
                Round::DatabaseAway => Duration::from_secs(1),
            };
        }
        self.stop(state).await;
    }

    /// Waits for the last removal of published messages, and gives back
    /// the messages that were handed over but not published, so that they
    /// are due at once for whoever starts next.
    async fn stop(&self, state: State) {
        if let Some(removing) = state.removing {
            let _ = removing.await;
        }
        let left: Vec<String> = self
            .handoff
            .take(usize::MAX)
            .into_iter()
            .map(|row| row.id)
            .collect();
        if !left.is_empty() {
            if let Err(error) = self.store.release(&left).await {
                tracing::warn!(%error, messages = left.len(),
                    "cannot release unsent messages; they are due when their lease ends");
            }
        }
    }

    async fn round(&self, state: &mut State) -> Round {
        let mut rows = self.handoff.take(BATCH);
        if rows.is_empty() {
            let due = self.handoff.take_claim() || state.last_claim.elapsed() >= CLAIM_EVERY;
            if !due {
                return Round::Idle;
            }
            state.last_claim = Instant::now();
            let claimed = self
                .store
                .claim_outbox(BATCH as i64, CLAIM_BYTES, LEASE_MS)
                .await;
            let claimed = match claimed {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::error!(%error, "cannot read the outbox");
                    return Round::DatabaseAway;
                }
            };
            if claimed.more {
                self.handoff.claim_soon();
            }
            rows = claimed.rows;
        }
        if rows.is_empty() {
            return Round::Idle;
        }
        let outgoing: Vec<Outgoing> = rows.iter_mut().map(|row| self.outgoing(row)).collect();
        let results = self.publisher.publish(&outgoing).await;
        self.settle(&rows, results, state).await
    }

    /// The message a row holds, ready to go. Takes the row's body, the
    /// bulk of its memory, rather than copying it: once handed to the
    /// publisher a row is only settled (by id), and a retry reads the body
    /// from the outbox again.
    fn outgoing(&self, row: &mut OutboxRow) -> Outgoing {
        Outgoing {
            // Ids are written by this server as UUIDs; a row edited by hand
            // into something else still goes out, under a fresh id.
            id: Uuid::parse_str(&row.message_id).unwrap_or_else(|_| Uuid::new_v4()),
            routing_key: routing_key(&self.topic_prefix, &row.topic),
            body: std::mem::take(&mut row.body),
            headers: parse_headers(&row.headers),
        }
    }

    async fn settle(
        &self,
        rows: &[OutboxRow],
        results: Vec<Result<(), PublishError>>,
        state: &mut State,
    ) -> Round {
        let now = now_ms();
        let mut sent = Vec::new();
        let mut broker_away: Option<String> = None;
        for (row, result) in rows.iter().zip(results) {
            match result {
                Ok(()) => {
                    let latency = (now - row.created_at).max(0) as f64 / 1000.0;
                    self.metrics.publish_latency.observe(latency);
                    sent.push(row.id.clone());
                }
                Err(PublishError::Transient(reason)) => {
                    broker_away.get_or_insert_with(|| reason.clone());
                    self.count_failure("transient");
                    let next = now + backoff_ms(row.attempts);
                    if let Err(error) = self.store.mark_retry(&row.id, &reason, next).await {
                        tracing::error!(%error, message.id = %row.message_id, "cannot reschedule");
                    }
                }
                Err(PublishError::Permanent(reason)) => {
                    self.count_failure("permanent");
                    tracing::error!(message.id = %row.message_id, message.topic = %row.topic,
                        %reason, "the broker refused a message for good; marked failed");
                    if let Err(error) = self.store.mark_failed(&row.id, &reason).await {
                        tracing::error!(%error, message.id = %row.message_id, "cannot mark failed");
                    }
                }
            }
        }
        if !sent.is_empty() {
            let count = sent.len();
            match self.writer.sent(sent).await {
                Ok(removing) => state.removing = Some(removing),
                Err(error) => tracing::error!(%error, "cannot mark messages sent"),
            }
            self.metrics.published.inc_by(count as u64);
            tracing::debug!(messages = count, "published");
        }
        if let Some(reason) = broker_away {
            tracing::warn!(%reason, "cannot publish; messages stay in the outbox and are retried");
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

/// What the dispatcher remembers between rounds.
struct State {
    /// When the outbox was last looked at for due rows.
    last_claim: Instant,
    /// Answers when the last confirmed messages are removed.
    removing: Option<oneshot::Receiver<()>>,
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
