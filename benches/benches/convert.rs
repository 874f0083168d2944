//! What one delivery costs: verify the signature, decode the payload and
//! build the message, for each service's largest recorded delivery.
//!
//! The `push` group puts GitHub's `push.new-branch.json` beside its floor:
//! one HMAC-SHA256 of the same bytes plus one serde_json pass that skips
//! every value. Any receiver must do at least that much; the conversion
//! should stay within twice the floor.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use serde::de::IgnoredAny;
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;
use webhook2fedmsg_benches::{Fixture, NOW, SECRET};
use webhook2fedmsg_core::{Context, Kind, Message, Secret};

/// Verifies, decodes and converts one delivery, as the server does.
fn convert(fixture: &Fixture, secrets: &[Secret], context: &Context) -> Message {
    let service = fixture.kind.service();
    service
        .verify(&fixture.delivery, secrets, NOW)
        .expect("the fixture is signed with the bench secret");
    let event = service
        .decode(&fixture.delivery, context)
        .expect("the fixture decodes");
    event.into_message(None, Uuid::nil(), OffsetDateTime::UNIX_EPOCH)
}

/// The least any receiver does: authenticate the bytes and read them once.
fn floor(key: &[u8], body: &[u8]) -> IgnoredAny {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    black_box(mac.finalize());
    serde_json::from_slice(body).expect("the fixture is JSON")
}

fn context() -> Context {
    Context {
        instance_url: Some("https://pretix.example.org".into()),
    }
}

fn push_against_floor(c: &mut Criterion) {
    let fixture = Fixture::load("github/push.new-branch.json");
    let secrets = [Secret::new(SECRET)];
    let context = context();
    let body = fixture.delivery.body();

    let mut group = c.benchmark_group("push");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("convert", |b| {
        b.iter(|| convert(black_box(&fixture), &secrets, &context))
    });
    // The parts of `convert`, to see where its time goes.
    let service = fixture.kind.service();
    group.bench_function("verify", |b| {
        b.iter(|| service.verify(black_box(&fixture.delivery), &secrets, NOW))
    });
    group.bench_function("decode", |b| {
        b.iter(|| service.decode(black_box(&fixture.delivery), &context))
    });
    group.bench_function("floor", |b| {
        b.iter(|| floor(SECRET.as_bytes(), black_box(body)))
    });
    group.finish();
}

fn largest_per_service(c: &mut Criterion) {
    let secrets = [Secret::new(SECRET)];
    let context = context();
    let mut group = c.benchmark_group("largest");
    for kind in Kind::ALL {
        let fixture = Fixture::largest_of(kind);
        group.throughput(Throughput::Bytes(fixture.delivery.body().len() as u64));
        group.bench_function(fixture.name.as_str(), |b| {
            b.iter(|| convert(black_box(&fixture), &secrets, &context))
        });
    }
    group.finish();
}

criterion_group!(benches, push_against_floor, largest_per_service);
criterion_main!(benches);
