//! `webhook2fedmsg-load`: drives signed GitHub pushes at a webhook2fedmsg
//! server on this machine and prints one JSON object (see the crate docs).
//!
//! ```text
//! webhook2fedmsg-load --url http://127.0.0.1:8080/github/<hook-id> \
//!     --secret S --connections 64 --duration 10
//! webhook2fedmsg-load --url ... --secret S --rate 1000 --duration 10
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use clap::Parser;
use webhook2fedmsg_load::drive::{self, Pace, Plan};
use webhook2fedmsg_load::loopback::Target;
use webhook2fedmsg_load::pushes::Template;
use webhook2fedmsg_load::report;

/// The most pushes one run may pre-sign (each holds a copy of the body).
const MAX_REQUESTS: u64 = 2_000_000;
/// The longest a run may last, in seconds.
const MAX_DURATION: f64 = 600.0;

/// Load generator for a webhook2fedmsg server on loopback.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The hook URL (`http://127.0.0.1:PORT/github/<hook-id>`); any host
    /// outside 127.0.0.0/8, ::1 and localhost is refused.
    #[arg(long)]
    url: String,
    /// The token's secret. Default: `$LOAD_SECRET`.
    #[arg(long, env = "LOAD_SECRET", hide_env_values = true)]
    secret: String,
    /// The recorded push to copy.
    #[arg(long, default_value = "fixtures/github/push.new-branch.json")]
    fixture: PathBuf,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds during which pushes are started.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Open-loop: pushes per second. Without it, closed-loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Pushes to pre-sign, at most 2,000,000 (default: rate x duration
    /// open-loop, 100,000 closed-loop). A closed-loop run that uses them
    /// all ends early and says so.
    #[arg(long)]
    requests: Option<u64>,
    /// Seconds to wait for one answer before counting an error.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let target = Target::from_url(&args.url)?;
    ensure!(
        args.duration > 0.0 && args.duration <= MAX_DURATION,
        "--duration must be in (0, {MAX_DURATION}] seconds"
    );
    ensure!(
        (1..=1024).contains(&args.connections),
        "--connections must be 1 to 1024"
    );
    ensure!(
        args.timeout > 0.0 && args.timeout <= 120.0,
        "--timeout must be in (0, 120]"
    );
    let pace = match args.rate {
        Some(rate) if rate > 0.0 && rate <= 1e6 => Pace::Rate(rate),
        Some(_) => anyhow::bail!("--rate must be in (0, 1000000]"),
        None => Pace::Closed,
    };
    let requests = match (args.requests, pace) {
        (Some(n), _) => n,
        (None, Pace::Rate(rate)) => (rate * args.duration).ceil() as u64,
        (None, Pace::Closed) => 100_000,
    };
    ensure!(
        (1..=MAX_REQUESTS).contains(&requests),
        "--requests must be 1 to {MAX_REQUESTS}"
    );

    let template = Template::from_file(&args.fixture)?;
    let signing = Instant::now();
    let pushes = template.copies(requests, &args.secret, 2);
    eprintln!(
        "load: signed {requests} pushes of {} bytes in {:.1} s",
        template.body_len(),
        signing.elapsed().as_secs_f64()
    );

    let plan = Plan {
        target,
        connections: args.connections,
        duration: Duration::from_secs_f64(args.duration),
        pace,
        timeout: Duration::from_secs_f64(args.timeout),
    };
    let runtime = runtime(args.threads)?;
    let count = pushes.len();
    let tally = runtime.block_on(drive::run(plan.clone(), template.headers.clone(), pushes))?;
    let mut out = report::to_json(&plan, template.body_len(), count, &tally);
    // Closed-loop, running out of pushes ends the run before its duration.
    let answered = tally.statuses.values().sum::<u64>() + tally.errors;
    out["exhausted"] = (pace == Pace::Closed && answered >= count as u64).into();
    println!("{out}");
    Ok(())
}

fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the runtime")
}
