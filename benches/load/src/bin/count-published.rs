//! `count-published`: counts the messages a load run put on the broker.
//!
//! It binds an exclusive, server-named queue to `<prefix>.#` on the
//! exchange, prints `ready` on stdout and then leaves the queue to fill:
//! nothing is consumed while the load runs, so counting takes no CPU from
//! the server under test. On SIGTERM or SIGINT (or after `--max-seconds`)
//! it reads the queue empty and prints one JSON object: messages received,
//! distinct `message_id`s among them, and what was still queued when it
//! stopped reading (0 unless reading timed out). Only a broker on loopback
//! is accepted.

use std::collections::HashSet;
use std::io::Write as _;
use std::time::Duration;

use clap::Parser;
use futures_util::StreamExt as _;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};
use webhook2fedmsg_load::loopback::check_amqp_url;

/// Counts messages published under a topic prefix.
#[derive(Parser)]
struct Args {
    /// The broker, on loopback.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp_url: String,
    /// The exchange the server publishes to.
    #[arg(long, default_value = "amq.topic")]
    exchange: String,
    /// The server's topic prefix; the queue is bound to `<prefix>.#`.
    #[arg(long)]
    prefix: String,
    /// Stop waiting for a signal after this many seconds.
    #[arg(long, default_value_t = 1800)]
    max_seconds: u64,
    /// Stop reading once no message came for this many seconds.
    #[arg(long, default_value_t = 3)]
    idle_seconds: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    check_amqp_url(&args.amqp_url)?;
    let connection = Connection::connect(&args.amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let queue = bind(&channel, &args).await?;
    println!("ready");
    std::io::stdout().flush()?;

    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = tokio::time::sleep(Duration::from_secs(args.max_seconds)) => {}
    }

    let counted = drain(&channel, &queue, Duration::from_secs(args.idle_seconds)).await?;
    println!("{counted}");
    Ok(())
}

async fn bind(channel: &Channel, args: &Args) -> anyhow::Result<String> {
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    let queue = channel
        .queue_declare("".into(), options, FieldTable::default())
        .await?;
    channel
        .queue_bind(
            queue.name().clone(),
            args.exchange.as_str().into(),
            format!("{}.#", args.prefix).into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(queue.name().as_str().to_string())
}

/// Reads the queue until it has been quiet for `idle`.
async fn drain(
    channel: &Channel,
    queue: &str,
    idle: Duration,
) -> anyhow::Result<serde_json::Value> {
    channel.basic_qos(1000, BasicQosOptions::default()).await?;
    let options = BasicConsumeOptions {
        no_ack: true,
        ..BasicConsumeOptions::default()
    };
    let mut consumer = channel
        .basic_consume(queue.into(), "".into(), options, FieldTable::default())
        .await?;
    let mut messages = 0u64;
    let mut ids = HashSet::new();
    while let Ok(Some(delivery)) = tokio::time::timeout(idle, consumer.next()).await {
        let delivery = delivery?;
        messages += 1;
        if let Some(id) = delivery.properties.message_id() {
            ids.insert(id.as_str().to_string());
        }
    }

    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let left = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await?
        .message_count();
    Ok(json!({"messages": messages, "distinct_ids": ids.len(), "left_in_queue": left}))
}
