//! Nothing accepted is lost: PostgreSQL as the store, two instances on one
//! database, and a server killed with SIGKILL in the middle of a load.

use std::collections::{BTreeSet, HashMap};
use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use webhook2fedmsg_core::recording::Recording;

use crate::server::{
    Database, Options, TEST_KEY, TestServer, fixtures, fresh_postgres, post, set_header,
};
use crate::support::broker::{Listener, amqp_url, unique_prefix};

/// A distinct public push number `n`, signed with `secret`: its own
/// delivery id and its own body, so neither dedupe rule applies.
fn numbered_push(n: usize, secret: &str) -> Recording {
    let text = std::fs::read_to_string(fixtures().join("github/push.new-branch.json")).unwrap();
    let mut recording = Recording::from_json(&text).unwrap();
    let mut body: Value = serde_json::from_slice(&recording.body).unwrap();
    body["after"] = Value::String(format!("{n:040x}"));
    recording.body = serde_json::to_vec(&body).unwrap();
    set_header(
        &mut recording,
        "X-GitHub-Delivery",
        &uuid::Uuid::new_v4().to_string(),
    );
    recording.sign(secret);
    recording
}

fn message_ids(deliveries: &[lapin::message::Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| {
            d.properties
                .message_id()
                .as_ref()
                .expect("message id")
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn postgres_store_accepts_dedupes_and_publishes() {
    let url = fresh_postgres().await;
    let server = TestServer::start(Options {
        database: Database::Postgres(url),
        ..Options::default()
    })
    .await;
    let (_, secret, hook) = server.token("user-a", "github", None).await;
    let first = numbered_push(1, &secret);
    let (status, body) = post(&hook, &first).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, again) = post(&hook, &first).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["message_id"], body["message_id"]);
    assert_eq!(
        post(&hook, &numbered_push(2, &secret)).await.0,
        StatusCode::ACCEPTED
    );
    server.drained().await;
    assert_eq!(server.sink_lines().len(), 2);
    server.stop().await;
}

/// The delivery id header is not signed: a long one is stored by its
/// digest, past PostgreSQL's limit on index entries, and still dedupes.
#[tokio::test]
async fn postgres_store_takes_a_delivery_id_of_any_length() {
    let url = fresh_postgres().await;
    let server = TestServer::start(Options {
        database: Database::Postgres(url),
        ..Options::default()
    })
    .await;
    let (_, secret, hook) = server.token("user-a", "github", None).await;
    let mut push = numbered_push(1, &secret);
    crate::server::set_header(&mut push, "X-GitHub-Delivery", &"d".repeat(8000));
    let (status, body) = post(&hook, &push).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, again) = post(&hook, &push).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["message_id"], body["message_id"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_publish_every_message_once() {
    let database = fresh_postgres().await;
    let prefix = unique_prefix();
    let mut listener = Listener::bind(&prefix).await;
    let options = Options {
        database: Database::Postgres(database),
        amqp_url: Some(amqp_url()),
        topic_prefix: prefix.clone(),
        ..Options::default()
    };
    let a = TestServer::start(options.clone()).await;
    let b = TestServer::start(options).await;
    let (_, secret, hook_a) = a.token("user-a", "github", None).await;
    let hook_b = hook_a.replace(&a.base, &b.base);

    // The same delivery to both at once: one stores it, the other sees the
    // duplicate.
    let twice = numbered_push(0, &secret);
    let (ra, rb) = tokio::join!(post(&hook_a, &twice), post(&hook_b, &twice));
    let mut statuses = [ra.0, rb.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::ACCEPTED]);
    assert_eq!(ra.1["message_id"], rb.1["message_id"]);

    let total = 400;
    let mut tasks = Vec::new();
    for n in 1..=total {
        let url = if n % 2 == 0 {
            hook_a.clone()
        } else {
            hook_b.clone()
        };
        let recording = numbered_push(n, &secret);
        tasks.push(tokio::spawn(async move { post(&url, &recording).await }));
    }
    let mut accepted = BTreeSet::new();
    accepted.insert(ra.1["message_id"].as_str().unwrap().to_string());
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        accepted.insert(body["message_id"].as_str().unwrap().to_string());
    }
    assert_eq!(accepted.len(), total + 1);

    let ids = message_ids(&listener.take(accepted.len()).await);
    let published: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(published.len(), ids.len(), "no message is published twice");
    assert_eq!(published, accepted);
    a.drained().await;
    let leftover = tokio::time::timeout(Duration::from_secs(2), listener.take(1)).await;
    assert!(leftover.is_err(), "nothing more arrives");
    a.stop().await;
    b.stop().await;
}

/// The `webhook2fedmsg` binary run as a child process, so that it can be
/// killed for real.
struct Child {
    process: tokio::process::Child,
    base: String,
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn command(dir: &Path, prefix: &str, port: u16) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_webhook2fedmsg"));
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("WEBHOOK2FEDMSG_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "WEBHOOK2FEDMSG_DATABASE__URL",
            format!("sqlite://{}", dir.join("w2f.db").display()),
        )
        .env("WEBHOOK2FEDMSG_AMQP__URL", amqp_url())
        .env("WEBHOOK2FEDMSG_AMQP__TOPIC_PREFIX", prefix)
        .env("WEBHOOK2FEDMSG_SECRETS__KEY", TEST_KEY)
        .env("WEBHOOK2FEDMSG_LOG__FILTER", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

async fn start_child(dir: &Path, prefix: &str, port: u16) -> Child {
    let process = command(dir, prefix, port)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the server binary starts");
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            return Child { process, base };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not start");
}

/// A GitHub token made with `webhook2fedmsg token add`: its id, its
/// secret and the hook id of its URL.
async fn cli_token(dir: &Path, prefix: &str, port: u16) -> (String, String, String) {
    let output = command(dir, prefix, port)
        .args(["token", "add", "--user", "user-a", "--service", "github"])
        .stdout(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "token add: {output:?}");
    let token: Value = serde_json::from_slice(&output.stdout).unwrap();
    let text = |key: &str| token[key].as_str().unwrap().to_string();
    let hook_url = text("hook_url");
    let (_, hook) = hook_url.rsplit_once("/github/").unwrap();
    (text("id"), text("secret"), hook.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_mid_load_publishes_every_accepted_delivery_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix();
    let port = free_port();
    let mut listener = Listener::bind(&prefix).await;

    let (_, secret, hook_path) = cli_token(dir.path(), &prefix, port).await;

    let mut child = start_child(dir.path(), &prefix, port).await;
    let url = format!("{}/github/{hook_path}", child.base);

    // Eight senders push numbered deliveries until the server dies.
    let accepted = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let mut senders = Vec::new();
    for sender in 0..8 {
        let (url, secret, accepted) = (url.clone(), secret.clone(), accepted.clone());
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in 0..10_000 {
                let n = sender * 100_000 + i;
                let recording = numbered_push(n, &secret);
                let mut request = client.post(&url).body(recording.body.clone());
                for (name, value) in &recording.headers {
                    request = request.header(name, value);
                }
                let Ok(response) = request.send().await else {
                    return;
                };
                if response.status() == StatusCode::ACCEPTED {
                    let Ok(body) = response.json::<Value>().await else {
                        return;
                    };
                    let id = body["message_id"].as_str().unwrap().to_string();
                    accepted.lock().unwrap().insert(id, n);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.process.start_kill().unwrap();
    child.process.wait().await.unwrap();
    for sender in senders {
        sender.await.unwrap();
    }
    let accepted: BTreeSet<String> = accepted.lock().unwrap().keys().cloned().collect();
    assert!(
        accepted.len() > 50,
        "the load ran before the kill ({} accepted)",
        accepted.len()
    );

    let restarted = start_child(dir.path(), &prefix, port).await;
    let mut published: HashMap<String, usize> = HashMap::new();
    while !accepted.iter().all(|id| published.contains_key(id)) {
        let batch = tokio::time::timeout(Duration::from_secs(60), listener.take(1))
            .await
            .unwrap_or_else(|_| {
                let missing = accepted
                    .iter()
                    .filter(|id| !published.contains_key(*id))
                    .count();
                panic!("{missing} accepted deliveries were never published")
            });
        for id in message_ids(&batch) {
            *published.entry(id).or_default() += 1;
        }
    }
    // A message published just before the kill and again after it keeps
    // its id, so consumers drop the repeat; count how often that happened.
    let repeated = published.values().filter(|&&n| n > 1).count();
    eprintln!(
        "{} accepted, all published; {repeated} published twice with the same id",
        accepted.len()
    );
    drop(restarted);
}

/// The writer hands committed messages to the dispatcher in memory, leased;
/// when the hand-off is full they wait in the outbox unleased, and the
/// dispatcher is told to claim them. A duplicate written in the same batch
/// as its first still points at the first's message.
#[tokio::test]
async fn writer_hands_messages_over_or_leaves_them_to_be_claimed() {
    use webhook2fedmsg_server::store::Stored;
    use webhook2fedmsg_server::store::deliveries::Writer;
    use webhook2fedmsg_server::store::outbox::Handoff;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    let (store, token) = store_with_token(&url).await;
    let delivery = |n: usize| accepted(&token.id, n, format!("{{\"n\":{n}}}"));

    // Room: handed over, with the body as stored.
    let roomy = Arc::new(Handoff::new(10));
    assert!(roomy.take_claim(), "a new hand-off asks for a first claim");
    let writer = Writer::start(store.clone(), roomy.clone()).unwrap();
    let first = delivery(1);
    let (a, b) = tokio::join!(writer.store(first.clone()), writer.store(first.clone()));
    let mut outcomes = vec![a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|s| matches!(s, Stored::Duplicate(_)));
    let first_id = first.message.as_ref().unwrap().message_id.clone();
    assert_eq!(
        outcomes,
        vec![Stored::New, Stored::Duplicate(Some(first_id.clone()))]
    );
    let handed = roomy.take(10);
    assert_eq!(handed.len(), 1);
    assert_eq!(handed[0].message_id, first_id);
    assert_eq!(handed[0].body, "{\"n\":1}");
    assert!(!roomy.take_claim());
    // Leased to this instance: a claim does not take it again.
    assert!(
        store
            .claim_outbox(10, i64::MAX, 60_000)
            .await
            .unwrap()
            .rows
            .is_empty()
    );

    // No room: left in the outbox, unleased, and a claim asked for.
    let full = Arc::new(Handoff::new(0));
    full.take_claim();
    let writer = Writer::start(store.clone(), full.clone()).unwrap();
    let second = delivery(2);
    assert_eq!(writer.store(second.clone()).await.unwrap(), Stored::New);
    assert!(full.take(10).is_empty());
    assert!(full.take_claim());
    let claimed = store.claim_outbox(10, i64::MAX, 60_000).await.unwrap().rows;
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        claimed[0].message_id,
        second.message.as_ref().unwrap().message_id
    );

    // A delivery for a token removed meanwhile is refused as such.
    let mut orphan = delivery(3);
    orphan.token_id = "removed".into();
    let (a, b) = tokio::join!(writer.store(orphan), writer.store(delivery(4)));
    assert!(
        matches!(
            a,
            Err(webhook2fedmsg_server::store::deliveries::WriteError::TokenRemoved)
        ),
        "{a:?}"
    );
    assert_eq!(
        b.unwrap(),
        Stored::New,
        "its neighbour in the batch is stored"
    );
    let claimed_too = store.claim_outbox(10, i64::MAX, 60_000).await.unwrap().rows;

    // Confirmed messages leave the outbox through the writer.
    let removed = writer
        .sent(
            [&handed[0], &claimed[0]]
                .into_iter()
                .chain(&claimed_too)
                .map(|row| row.id.clone())
                .collect(),
        )
        .await
        .unwrap();
    let _ = removed.await;
    assert_eq!(store.outbox_depth().await.unwrap(), 0);
    let recent = store.recent_deliveries(&token.id, 10).await.unwrap();
    assert_eq!(recent.len(), 3);
    assert!(
        recent.iter().all(|d| d.outcome == "published"),
        "{recent:?}"
    );
}

/// Messages queued before the outbox was keyed by delivery (migration 2)
/// survive the upgrade with their ids and bodies, and every delivery reads
/// the same outcome as before it; on both databases.
#[tokio::test]
async fn the_outbox_upgrade_keeps_queued_messages() {
    let dir = tempfile::tempdir().unwrap();
    for url in both_databases(dir.path()).await {
        upgrade_keeps_queued_messages(&url).await;
    }
}

/// A claim of due messages reads at most the bytes it is given (but always
/// one message, however large), says whether more are due, and never
/// takes a message twice while its lease holds; a start makes messages in
/// backoff due.
#[tokio::test]
async fn claims_are_bounded_in_bytes_and_take_each_message_once() {
    let dir = tempfile::tempdir().unwrap();
    for url in both_databases(dir.path()).await {
        claims_are_bounded_in_bytes(&url).await;
    }
}

async fn claims_are_bounded_in_bytes(url: &str) {
    use webhook2fedmsg_server::store::Stored;
    use webhook2fedmsg_server::store::deliveries::Writer;
    use webhook2fedmsg_server::store::outbox::Handoff;

    let (store, token) = store_with_token(url).await;
    // Nothing is handed over: every message waits in the outbox.
    let writer = Writer::start(store.clone(), Arc::new(Handoff::new(0))).unwrap();
    let mut sizes = Vec::new();
    for (n, size) in [1000, 1000, 1000, 5000, 1000].into_iter().enumerate() {
        let body = format!("{{\"n\":\"{}\"}}", "x".repeat(size - 8));
        assert_eq!(body.len(), size);
        sizes.push(size);
        let delivery = accepted(&token.id, n, body);
        assert_eq!(writer.store(delivery).await.unwrap(), Stored::New);
        // Distinct creation times keep the order of the claims certain.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut claimed = Vec::new();
    let mut rounds = Vec::new();
    loop {
        let claim = store.claim_outbox(10, 2500, 60_000).await.unwrap();
        if claim.rows.is_empty() {
            assert!(!claim.more);
            break;
        }
        rounds.push((
            claim.rows.iter().map(|r| r.body.len()).collect::<Vec<_>>(),
            claim.more,
        ));
        claimed.extend(claim.rows);
    }
    assert_eq!(
        rounds,
        vec![
            (vec![1000, 1000], true),
            (vec![1000], true),
            (vec![5000], true),
            (vec![1000], false),
        ],
        "{url}"
    );
    assert_eq!(
        claimed.iter().map(|r| r.body.len()).collect::<Vec<_>>(),
        sizes
    );
    // Leased: the rows claimed are not claimed again.
    assert!(
        store
            .claim_outbox(10, i64::MAX, 60_000)
            .await
            .unwrap()
            .rows
            .is_empty()
    );

    // A message put back with a long backoff waits it out, unless the
    // server starts again: then it is due at once.
    let in_an_hour = webhook2fedmsg_server::store::now_ms() + 3_600_000;
    store
        .mark_retry(&claimed[0].id, "broker away", in_an_hour)
        .await
        .unwrap();
    let waiting = store.claim_outbox(10, i64::MAX, 60_000).await.unwrap();
    assert!(waiting.rows.is_empty());
    store.outbox_due_at_start().await.unwrap();
    let again = store.claim_outbox(10, i64::MAX, 60_000).await.unwrap().rows;
    assert!(again.iter().any(|r| r.message_id == claimed[0].message_id));
    // SQLite serves one instance: a start also takes back what the
    // instance before it had claimed. PostgreSQL's leases run out instead.
    let expected = if url.starts_with("sqlite") { 5 } else { 1 };
    assert_eq!(again.len(), expected, "{url}");
    store.close().await;
}

/// A message whose stored body cannot be read is marked failed, with the
/// reason, instead of being claimed again after every lease; the messages
/// beside it go out.
#[tokio::test]
async fn an_unreadable_outbox_body_is_marked_failed() {
    let dir = tempfile::tempdir().unwrap();
    for url in both_databases(dir.path()).await {
        unreadable_body_is_marked_failed(&url).await;
    }
}

async fn unreadable_body_is_marked_failed(url: &str) {
    use webhook2fedmsg_server::store::Stored;
    use webhook2fedmsg_server::store::deliveries::Writer;
    use webhook2fedmsg_server::store::outbox::Handoff;

    let (store, token) = store_with_token(url).await;
    let writer = Writer::start(store.clone(), Arc::new(Handoff::new(0))).unwrap();
    let mut ids = Vec::new();
    for n in 0..2 {
        let delivery = accepted(&token.id, n, format!("{{\"n\":{n}}}"));
        ids.push(delivery.id.clone());
        assert_eq!(writer.store(delivery).await.unwrap(), Stored::New);
    }
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query("UPDATE outbox SET packed_body = $1 WHERE id = $2")
        .bind(vec![9_u8; 12])
        .bind(&ids[0])
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let claimed = store.claim_outbox(10, i64::MAX, 60_000).await.unwrap();
    let bodies: Vec<_> = claimed.rows.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(bodies, ["{\"n\":1}"], "{url}");
    let records = store.recent_deliveries(&token.id, 10).await.unwrap();
    let first = records
        .iter()
        .find(|r| r.delivery_id.as_deref() == Some("delivery-0"))
        .unwrap();
    assert_eq!(first.outcome, "failed", "{url}");
    assert_eq!(
        first.reason.as_deref(),
        Some("the stored message body cannot be read")
    );
    // Failed for good: a start does not make it due again.
    store.outbox_due_at_start().await.unwrap();
    let again = store.claim_outbox(10, i64::MAX, 60_000).await.unwrap().rows;
    assert!(again.iter().all(|r| r.id != ids[0]), "{url}");
    store.close().await;
}

/// A migrated store at `url` with one GitHub token, alice's.
async fn store_with_token(
    url: &str,
) -> (
    webhook2fedmsg_server::store::Store,
    webhook2fedmsg_server::store::Token,
) {
    use webhook2fedmsg_server::crypto::SecretBox;
    use webhook2fedmsg_server::store::Store;
    use webhook2fedmsg_server::store::tokens::NewToken;

    let store = Store::connect(url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let (token, _) = store
        .create_token(
            &SecretBox::new([7; 32]),
            NewToken {
                owner: "alice",
                service: "github",
                name: "hooks",
                secret: None,
                instance_url: None,
            },
        )
        .await
        .unwrap();
    (store, token)
}

/// The `n`th delivery of a test on a token, accepted with this message
/// body.
fn accepted(token_id: &str, n: usize, body: String) -> webhook2fedmsg_server::store::NewDelivery {
    use webhook2fedmsg_server::store::{Accepted, NewDelivery};

    NewDelivery {
        id: NewDelivery::new_id(),
        token_id: token_id.to_string(),
        delivery_id: Some(format!("delivery-{n}")),
        body_digest: format!("digest-{n}"),
        topic: "github.push".into(),
        message: Some(Accepted::new(
            uuid::Uuid::new_v4().to_string(),
            body,
            "{}".into(),
        )),
        skip_reason: None,
    }
}

/// A new SQLite file in `dir` and a new PostgreSQL database, for a test
/// that runs on both.
async fn both_databases(dir: &std::path::Path) -> [String; 2] {
    let sqlite = format!("sqlite://{}?mode=rwc", dir.join("test.db").display());
    [sqlite, fresh_postgres().await]
}

async fn upgrade_keeps_queued_messages(url: &str) {
    use webhook2fedmsg_server::store::Store;

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::migrate!("./migrations")
        .run_to(1, &pool)
        .await
        .unwrap();
    let statements = [
        "INSERT INTO users (username, created_at) VALUES ('alice', 1)",
        "INSERT INTO tokens (id, hook_id, owner, service, name, created_at) \
         VALUES ('t', 'h', 'alice', 'github', 'hooks', 1)",
        // Queued, published, failed and skipped deliveries.
        "INSERT INTO deliveries (id, token_id, delivery_id, body_digest, received_at, topic, \
         message_id, outcome, reason) VALUES \
         ('d1', 't', 'x1', 'b1', 10, 'github.push', 'm1', 'queued', NULL), \
         ('d2', 't', 'x2', 'b2', 20, 'github.push', 'm2', 'published', NULL), \
         ('d3', 't', 'x3', 'b3', 30, 'github.push', 'm3', 'failed', 'too large'), \
         ('d4', 't', 'x4', 'b4', 40, 'github.ping', NULL, 'skipped', 'a ping')",
        // m1 waits, m3 failed, and m0's delivery was purged already.
        "INSERT INTO outbox (message_id, topic, body, headers, created_at, next_attempt_at, \
         state, last_error) VALUES \
         ('m1', 'github.push', '{\"n\":1}', '{}', 10, 0, 'pending', NULL), \
         ('m3', 'github.push', '{\"n\":3}', '{}', 30, 0, 'failed', 'too large'), \
         ('m0', 'github.push', '{\"n\":0}', '{}', 5, 0, 'pending', NULL)",
    ];
    for statement in statements {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let store = Store::connect(url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let outcomes = |records: Vec<webhook2fedmsg_server::store::deliveries::DeliveryRecord>| {
        records
            .into_iter()
            .map(|r| (r.delivery_id.unwrap(), r.outcome, r.reason))
            .collect::<Vec<_>>()
    };
    let owned = |s: &str| Some(s.to_string());
    assert_eq!(
        outcomes(store.recent_deliveries("t", 10).await.unwrap()),
        vec![
            ("x4".into(), "skipped".into(), owned("a ping")),
            ("x3".into(), "failed".into(), owned("too large")),
            ("x2".into(), "published".into(), None),
            ("x1".into(), "queued".into(), None),
        ]
    );
    let claimed = store.claim_outbox(10, i64::MAX, 60_000).await.unwrap().rows;
    let rows: Vec<_> = claimed
        .iter()
        .map(|r| (r.id.as_str(), r.message_id.as_str(), r.body.as_str()))
        .collect();
    assert_eq!(
        rows,
        vec![("d1", "m1", "{\"n\":1}"), ("m0", "m0", "{\"n\":0}")]
    );

    // Published now: the delivery reads so, with nothing written to it.
    let handoff = Arc::new(webhook2fedmsg_server::store::outbox::Handoff::new(10));
    let writer =
        webhook2fedmsg_server::store::deliveries::Writer::start(store.clone(), handoff.clone())
            .unwrap();
    let removed = writer.sent(vec!["d1".into(), "m0".into()]).await.unwrap();
    let _ = removed.await;
    let after = outcomes(store.recent_deliveries("t", 10).await.unwrap());
    assert_eq!(after[3], ("x1".into(), "published".into(), None));
    assert_eq!(store.outbox_depth().await.unwrap(), 0);
    store.close().await;
}

/// A published body stays a duplicate after its delivery is purged (its
/// message shows the body and signature: anyone could send them again);
/// a delivery id is forgotten with its delivery. On both databases.
#[tokio::test]
async fn published_bodies_stay_duplicates_after_the_dedupe_window() {
    let dir = tempfile::tempdir().unwrap();
    for url in both_databases(dir.path()).await {
        replays_after_the_window(&url).await;
    }
}

async fn replays_after_the_window(url: &str) {
    use webhook2fedmsg_server::crypto::SecretBox;
    use webhook2fedmsg_server::store::deliveries::Writer;
    use webhook2fedmsg_server::store::outbox::Handoff;
    use webhook2fedmsg_server::store::tokens::NewToken;
    use webhook2fedmsg_server::store::{Accepted, NewDelivery, Store, Stored, now_ms};

    let store = Store::connect(url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let key = SecretBox::new([7; 32]);
    let mut tokens = Vec::new();
    for owner in ["alice", "bob"] {
        let new = NewToken {
            owner,
            service: "github",
            name: "hooks",
            secret: None,
            instance_url: None,
        };
        tokens.push(store.create_token(&key, new).await.unwrap().0.id);
    }
    let delivery = |token: &str, id: &str, digest: &str| NewDelivery {
        id: NewDelivery::new_id(),
        token_id: token.to_string(),
        delivery_id: Some(id.to_string()),
        body_digest: digest.to_string(),
        topic: "github.push".into(),
        message: Some(Accepted::new(
            uuid::Uuid::new_v4().to_string(),
            "{}".into(),
            "{}".into(),
        )),
        skip_reason: None,
    };
    let writer = Writer::start(store.clone(), Arc::new(Handoff::new(100))).unwrap();
    let first = delivery(&tokens[0], "x1", "body-1");
    assert_eq!(writer.store(first).await.unwrap(), Stored::New);
    assert_eq!(store.purge_deliveries(now_ms() + 1).await.unwrap(), 1);

    // The same body under a new delivery id, alone and inside a batch.
    let replay = delivery(&tokens[0], "x2", "body-1");
    let (a, b) = tokio::join!(
        writer.store(replay),
        writer.store(delivery(&tokens[0], "x3", "body-3"))
    );
    assert_eq!(a.unwrap(), Stored::Duplicate(None));
    assert_eq!(b.unwrap(), Stored::New);
    // Another token's body is its own; a forgotten delivery id is free.
    let other = delivery(&tokens[1], "x1", "body-1");
    assert_eq!(writer.store(other).await.unwrap(), Stored::New);
    let reused = delivery(&tokens[0], "x1", "body-4");
    assert_eq!(writer.store(reused).await.unwrap(), Stored::New);
    // Purging twice keeps one digest, and removing the token drops them.
    assert_eq!(store.purge_deliveries(now_ms() + 1).await.unwrap(), 3);
    assert!(store.remove_token(&tokens[0]).await.unwrap());
    store.close().await;
}

/// A stop signal lets a request still sending its body finish (up to the
/// body deadline); a second signal ends the server at once, without an
/// answer to that request, which was therefore not accepted.
#[tokio::test]
async fn a_second_stop_signal_ends_the_server_at_once() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix();
    let port = free_port();
    let (_, _, path) = cli_token(dir.path(), &prefix, port).await;
    let mut child = start_child(dir.path(), &prefix, port).await;

    // Headers and a tenth of the body, then nothing.
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST /github/{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         X-GitHub-Event: push\r\nX-GitHub-Delivery: 1\r\nX-Hub-Signature-256: sha256={}\r\n\
         Content-Length: 1000\r\n\r\n{{\"ref\":\"a\"",
        "0".repeat(64)
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = child.process.id().unwrap().to_string();
    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("TERM");
    // The first signal waits for the stalled body.
    let waited = tokio::time::timeout(Duration::from_secs(1), child.process.wait()).await;
    assert!(
        waited.is_err(),
        "the server waits for the request in flight"
    );
    signal("TERM");
    // The body deadline is 60 s; the second signal does not wait for it.
    let status = tokio::time::timeout(Duration::from_secs(20), child.process.wait())
        .await
        .expect("the second signal ends the server")
        .unwrap();
    assert!(!status.success(), "{status:?}");
    let mut answer = Vec::new();
    let _ = stalled.read_to_end(&mut answer).await;
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
}

/// On SQLite the server keeps a busy hook's token in memory for a
/// second; a `token remove` run by another process meanwhile still stops
/// the next delivery (404), which then publishes nothing.
#[tokio::test]
async fn a_token_removed_by_another_process_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix();
    let port = free_port();
    let mut listener = Listener::bind(&prefix).await;
    let (id, secret, path) = cli_token(dir.path(), &prefix, port).await;
    let child = start_child(dir.path(), &prefix, port).await;
    let url = format!("{}/github/{path}", child.base);

    let (status, body) = post(&url, &numbered_push(1, &secret)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let removed = command(dir.path(), &prefix, port)
        .args(["token", "remove", &id])
        .stdout(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(removed.success());
    let (status, body) = post(&url, &numbered_push(2, &secret)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "not_found");

    let published = listener.take(1).await;
    assert_eq!(published.len(), 1);
    let more = tokio::time::timeout(Duration::from_secs(2), listener.take(1)).await;
    assert!(more.is_err(), "the refused delivery is not published");
}

/// A stop signal that arrives as soon as the port opens, before the
/// server has finished starting, stops it cleanly (exit status 0), not
/// as a signal's default would.
#[tokio::test]
async fn a_stop_signal_as_soon_as_the_port_opens_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut process = command(dir.path(), &unique_prefix(), port)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut opened = false;
    for _ in 0..2000 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            opened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(opened, "the server did not open its port");
    let pid = process.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(20), process.wait())
        .await
        .expect("the server stops")
        .unwrap();
    assert!(status.success(), "{status:?}");
}
