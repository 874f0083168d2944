//! The conversion of GitHub's `push.new-branch.json` against its floor, as
//! the best time of many short batches.
//!
//! Criterion's estimates move with whatever else the machine runs; the best
//! batch of many is close to the cost with the machine to itself, so the
//! ratio printed here is steadier on a shared or busy machine. Run it with
//! `cargo bench -p webhook2fedmsg-benches --bench ratio`.

use std::hint::black_box;
use std::time::Instant;

use hmac::{Hmac, Mac};
use serde::de::IgnoredAny;
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;
use webhook2fedmsg_benches::{Fixture, NOW, SECRET};
use webhook2fedmsg_core::{Context, Secret};

/// Batches per round, calls per batch, and rounds.
const BATCHES: usize = 300;
const CALLS: u32 = 200;
const ROUNDS: usize = 3;

/// A named piece of work to time.
type Run<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// The best time of one call, in nanoseconds, over every batch.
fn best_ns(f: &mut dyn FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..BATCHES {
        let start = Instant::now();
        for _ in 0..CALLS {
            f();
        }
        best = best.min(start.elapsed().as_nanos() as f64 / f64::from(CALLS));
    }
    best
}

fn main() {
    let fixture = Fixture::load("github/push.new-branch.json");
    let body = fixture.delivery.body();
    let secrets = [Secret::new(SECRET)];
    let context = Context::default();
    let service = fixture.kind.service();
    let hmac = |body: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key");
        mac.update(body);
        black_box(mac.finalize());
    };

    let mut runs: Vec<Run> = vec![
        (
            "floor",
            Box::new(|| {
                hmac(black_box(body));
                black_box(serde_json::from_slice::<IgnoredAny>(black_box(body)).expect("JSON"));
            }),
        ),
        ("hmac-sha256", Box::new(|| hmac(black_box(body)))),
        (
            "verify",
            Box::new(|| {
                let verified = service.verify(black_box(&fixture.delivery), &secrets, NOW);
                verified.expect("signed");
            }),
        ),
        (
            "decode",
            Box::new(|| {
                let event = service.decode(black_box(&fixture.delivery), &context);
                black_box(event.expect("decodes"));
            }),
        ),
        (
            "convert",
            Box::new(|| {
                let delivery = black_box(&fixture.delivery);
                service.verify(delivery, &secrets, NOW).expect("signed");
                let event = service.decode(delivery, &context).expect("decodes");
                black_box(event.into_message(None, Uuid::nil(), OffsetDateTime::UNIX_EPOCH));
            }),
        ),
    ];
    // Rounds interleave the runs, so a busy spell hurts all of them alike.
    let mut best = vec![f64::MAX; runs.len()];
    for _ in 0..ROUNDS {
        for (i, (_, run)) in runs.iter_mut().enumerate() {
            best[i] = best[i].min(best_ns(run.as_mut()));
        }
    }
    println!("github/push.new-branch.json, {} bytes", body.len());
    for ((name, _), ns) in runs.iter().zip(&best) {
        println!("{name:12} {ns:8.0} ns  {:.2} x floor", ns / best[0]);
    }
}
