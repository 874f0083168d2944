//! The outcome of a run as one JSON object, for people and for
//! `benches/load.sh`.

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::drive::{Pace, Plan, Tally};

/// The report of `tally`, a run of `plan` with bodies of `body_bytes`.
pub fn to_json(plan: &Plan, body_bytes: usize, pushes: usize, tally: &Tally) -> Value {
    let seconds = tally.elapsed.as_secs_f64();
    let accepted = tally.count(202);
    let answered: u64 = tally.statuses.values().sum();
    let statuses: serde_json::Map<String, Value> = tally
        .statuses
        .iter()
        .map(|(status, count)| (status.to_string(), json!(count)))
        .collect();
    json!({
        "mode": match plan.pace {
            Pace::Closed => "closed",
            Pace::Rate(_) => "open",
        },
        "target_rate": match plan.pace {
            Pace::Closed => Value::Null,
            Pace::Rate(rate) => json!(rate),
        },
        "connections": plan.connections,
        "duration_s": plan.duration.as_secs_f64(),
        "elapsed_s": round(seconds, 3),
        "body_bytes": body_bytes,
        "presigned": pushes,
        "answered": answered,
        "accepted": accepted,
        "accepted_per_s": round(accepted as f64 / seconds.max(1e-9), 1),
        "statuses": statuses,
        "errors": tally.errors,
        "latency_ms": quantiles(&tally.latency),
        "service_ms": quantiles(&tally.service),
    })
}

/// p50, p90, p99, p99.9 and max of a histogram of microseconds, in ms.
fn quantiles(histogram: &Histogram<u64>) -> Value {
    let ms = |micros: u64| round(micros as f64 / 1000.0, 3);
    json!({
        "p50": ms(histogram.value_at_quantile(0.50)),
        "p90": ms(histogram.value_at_quantile(0.90)),
        "p99": ms(histogram.value_at_quantile(0.99)),
        "p99.9": ms(histogram.value_at_quantile(0.999)),
        "max": ms(histogram.max()),
    })
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}
