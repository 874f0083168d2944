//! Sending the pushes: keep-alive HTTP/1.1 connections on loopback,
//! closed-loop or open-loop.
//!
//! Closed-loop, each connection sends its next push as soon as the answer
//! to the previous one is read, until the duration is over: that measures
//! throughput at a given concurrency. Open-loop, push number `i` is due at
//! `start + i / rate` whether or not the server kept up, and its latency is
//! counted from that moment, so a stall delays and counts against every
//! push due during it (no coordinated omission). tokio's timer fires on
//! whole milliseconds: a push leaves up to about 1 ms after it is due, and
//! that lag is in the open-loop latency; `service` latency, counted from the
//! moment the request was handed to the connection, leaves it out.
//!
//! The connections are opened before the clock starts; one that breaks is
//! opened again and the failure counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HOST, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::loopback::Target;
use crate::pushes::Push;

/// When pushes are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// As fast as the connections get answers.
    Closed,
    /// This many per second, on schedule.
    Rate(f64),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where the pushes go.
    pub target: Target,
    /// Keep-alive connections.
    pub connections: usize,
    /// No push starts after this much time.
    pub duration: Duration,
    /// Closed-loop or a fixed rate.
    pub pace: Pace,
    /// A request without an answer in this time counts as an error.
    pub timeout: Duration,
}

/// What happened.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Microseconds from due (open-loop) or sent (closed-loop) to answered.
    pub latency: Histogram<u64>,
    /// Microseconds from handed to the connection to answered.
    pub service: Histogram<u64>,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests without an answer: connection failures and timeouts.
    pub errors: u64,
    /// From the start of the clock to the last answer.
    pub elapsed: Duration,
}

impl Tally {
    fn new() -> Self {
        // 1 µs to 10 minutes, 3 significant digits.
        let histogram = || Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds");
        Self {
            latency: histogram(),
            service: histogram(),
            statuses: BTreeMap::new(),
            errors: 0,
            elapsed: Duration::ZERO,
        }
    }

    fn merge(&mut self, other: Tally) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.service.add(&other.service);
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        self.errors += other.errors;
    }

    /// Answers with `status`.
    pub fn count(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }
}

struct Shared {
    plan: Plan,
    headers: HeaderMap,
    pushes: Vec<Push>,
    next: AtomicUsize,
    start: Instant,
}

/// Runs `plan` with `pushes` (each sent at most once) and `headers` on
/// every request.
pub async fn run(plan: Plan, headers: HeaderMap, pushes: Vec<Push>) -> anyhow::Result<Tally> {
    let mut senders = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        senders.push(connect(&plan.target).await?);
    }

    let shared = Arc::new(Shared {
        plan,
        headers,
        pushes,
        next: AtomicUsize::new(0),
        start: Instant::now(),
    });
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|sender| tokio::spawn(connection(shared.clone(), sender)))
        .collect();
    let mut tally = Tally::new();
    for task in tasks {
        tally.merge(task.await?);
    }
    tally.elapsed = shared.start.elapsed();
    Ok(tally)
}

/// One connection's share of the pushes.
async fn connection(shared: Arc<Shared>, mut sender: SendRequest<Full<Bytes>>) -> Tally {
    let mut tally = Tally::new();
    let plan = &shared.plan;
    let end = shared.start + plan.duration;
    loop {
        let index = shared.next.fetch_add(1, Ordering::Relaxed);
        let Some(push) = shared.pushes.get(index) else {
            return tally;
        };
        let due = match plan.pace {
            Pace::Closed => Instant::now(),
            Pace::Rate(rate) => shared.start + Duration::from_secs_f64(index as f64 / rate),
        };
        if due >= end {
            return tally;
        }
        tokio::time::sleep_until(due).await;

        let sent = Instant::now();
        let request = build(&shared, push);
        match tokio::time::timeout(plan.timeout, exchange(&mut sender, request)).await {
            Ok(Ok(status)) => {
                let done = Instant::now();
                *tally.statuses.entry(status).or_default() += 1;
                tally.latency.saturating_record(micros(done - due));
                tally.service.saturating_record(micros(done - sent));
            }
            Ok(Err(_)) | Err(_) => {
                tally.errors += 1;
                match reconnect(&plan.target, end).await {
                    Some(fresh) => sender = fresh,
                    None => return tally,
                }
            }
        }
    }
}

fn build(shared: &Shared, push: &Push) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(push.body.clone()));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = shared
        .plan
        .target
        .path
        .parse()
        .expect("the path came from a parsed URL");
    let headers = request.headers_mut();
    headers.clone_from(&shared.headers);
    let host = HeaderValue::from_str(&shared.plan.target.authority).expect("a parsed authority");
    headers.insert(HOST, host);
    headers.insert(name("x-github-delivery"), push.delivery.clone());
    headers.insert(name("x-hub-signature-256"), push.sha256.clone());
    headers.insert(name("x-hub-signature"), push.sha1.clone());
    request
}

fn name(text: &'static str) -> HeaderName {
    HeaderName::from_static(text)
}

/// Sends one request and reads the whole answer, so the connection can
/// carry the next.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> hyper::Result<u16> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}

async fn connect(target: &Target) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(target.addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// A new connection, retried every 10 ms until `end`.
async fn reconnect(target: &Target, end: Instant) -> Option<SendRequest<Full<Bytes>>> {
    while Instant::now() < end {
        if let Ok(sender) = connect(target).await {
            return Some(sender);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
