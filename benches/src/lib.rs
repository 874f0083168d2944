//! Helpers of the webhook2fedmsg benchmarks: the recorded deliveries under
//! `fixtures/`, signed as a sender would sign them.
//!
//! The benchmarks themselves are in `benches/convert.rs`; run them with
//! `cargo bench -p webhook2fedmsg-benches`.

use std::path::{Path, PathBuf};

use webhook2fedmsg_core::recording::Recording;
use webhook2fedmsg_core::{Delivery, Kind};

/// The secret the benchmarks sign deliveries with.
pub const SECRET: &str = "bench-secret";

/// The receiver's clock, in Unix seconds, for timestamped signatures.
pub const NOW: i64 = 1_750_000_000;

/// The workspace's `fixtures/` directory.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// A recorded delivery, signed with [`SECRET`].
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The path under `fixtures/`, such as `github/push.new-branch.json`.
    pub name: String,
    /// The service it is sent to.
    pub kind: Kind,
    /// The delivery, as received.
    pub delivery: Delivery,
}

impl Fixture {
    /// Reads and signs one fixture, named by its path under `fixtures/`.
    ///
    /// Panics when the file is missing or not a recording: a benchmark
    /// without its input is a broken benchmark.
    pub fn load(name: &str) -> Fixture {
        let path = fixtures_dir().join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let mut recording = Recording::from_json(&text)
            .unwrap_or_else(|e| panic!("{} is not a recording: {e}", path.display()));
        recording.sign(SECRET);
        let service = name.split('/').next().unwrap_or_default();
        let kind = service.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
        Fixture {
            name: name.to_string(),
            kind,
            delivery: recording.to_delivery(),
        }
    }

    /// Every fixture of one service.
    pub fn all_of(kind: Kind) -> Vec<Fixture> {
        let dir = fixtures_dir().join(kind.name());
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|name| Fixture::load(&format!("{}/{name}", kind.name())))
            .collect()
    }

    /// The fixture of one service with the largest body.
    pub fn largest_of(kind: Kind) -> Fixture {
        Fixture::all_of(kind)
            .into_iter()
            .max_by_key(|f| f.delivery.body().len())
            .unwrap_or_else(|| panic!("no {kind} fixtures"))
    }
}
