//! Prometheus metrics, served as text at `/metrics`.
//!
//! One [`Metrics`] per server instance, with its own registry, so that
//! tests can run several servers in one process.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels naming a service.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabel {
    /// The service name.
    pub service: String,
}

/// Labels naming a service and an outcome or reason.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// The service name.
    pub service: String,
    /// What happened (`queued`, `skipped`, `duplicate`) or why it was
    /// refused (the error code).
    pub outcome: String,
}

/// Labels naming a kind of publish failure.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabel {
    /// `transient` or `permanent`.
    pub kind: String,
}

/// Every metric the server keeps.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Webhook requests received, by service.
    pub received: Family<ServiceLabel, Counter>,
    /// Webhook requests refused, by service and error code.
    pub rejected: Family<OutcomeLabels, Counter>,
    /// Webhook requests accepted, by service and outcome.
    pub accepted: Family<OutcomeLabels, Counter>,
    /// Messages confirmed by the broker (or written to the file sink).
    pub published: Counter,
    /// Publish attempts that failed, by kind.
    pub publish_failures: Family<FailureLabel, Counter>,
    /// Messages waiting in the outbox.
    pub outbox_depth: Gauge,
    /// Seconds from acceptance to the broker's confirm.
    pub publish_latency: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("webhook2fedmsg");
        let received = Family::default();
        let rejected = Family::default();
        let accepted = Family::default();
        let published = Counter::default();
        let publish_failures = Family::default();
        let outbox_depth = Gauge::default();
        let publish_latency = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "webhooks_received",
            "Webhook requests received",
            received.clone(),
        );
        registry.register(
            "webhooks_rejected",
            "Webhook requests refused",
            rejected.clone(),
        );
        registry.register(
            "webhooks_accepted",
            "Webhook requests accepted",
            accepted.clone(),
        );
        registry.register(
            "messages_published",
            "Messages confirmed by the broker, or written to the file sink",
            published.clone(),
        );
        registry.register(
            "publish_failures",
            "Failed publish attempts",
            publish_failures.clone(),
        );
        registry.register(
            "outbox_depth",
            "Messages waiting in the outbox",
            outbox_depth.clone(),
        );
        registry.register(
            "publish_latency_seconds",
            "Seconds from acceptance to the broker's confirm",
            publish_latency.clone(),
        );
        Self {
            registry,
            received,
            rejected,
            accepted,
            published,
            publish_failures,
            outbox_depth,
            publish_latency,
        }
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encoding to a String cannot fail");
        out
    }

    /// Counts a refused webhook.
    pub fn reject(&self, service: &str, code: &str) {
        self.rejected
            .get_or_create(&OutcomeLabels {
                service: service.into(),
                outcome: code.into(),
            })
            .inc();
    }

    /// Counts a webhook request that reached a webhook URL.
    pub fn received(&self, service: &str) {
        self.received
            .get_or_create(&ServiceLabel {
                service: service.into(),
            })
            .inc();
    }

    /// Counts a webhook accepted, with its outcome.
    pub fn accept(&self, service: &str, outcome: &str) {
        self.accepted
            .get_or_create(&OutcomeLabels {
                service: service.into(),
                outcome: outcome.into(),
            })
            .inc();
    }
}
