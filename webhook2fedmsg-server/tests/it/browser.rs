//! The end-to-end test: a person's walk through the whole site in Debian's
//! headless Chromium (`tests/browser/e2e.mjs`, driven by playwright-core),
//! from the home page through the provider's login form to adding,
//! using, changing and removing a GitHub token, and logging out; then the
//! server-side facts the browser cannot fake.
//!
//! It needs `/usr/bin/chromium` and `npm ci` in `tests/browser`
//! (scripts/setup does both); without them it fails, saying so. Each
//! step's screenshot goes to `target/screenshots/`, replaced on every run.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

use crate::site::{ADMIN_GROUP, Site, workspace};

/// Debian's Chromium; the walk never lets a tool fetch a browser.
const CHROMIUM: &str = "/usr/bin/chromium";

/// How long the walk may take; it normally takes a few seconds, and the
/// script stops itself well before this.
const WALK_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn a_person_walks_through_the_site_in_chromium() {
    let dir = workspace().join("tests/browser");
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: run scripts/setup (it installs Debian's chromium)"
    );
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "tests/browser/node_modules is missing: run scripts/setup (npm ci in tests/browser)"
    );
    let screenshots = workspace().join("target/screenshots");
    // Stale pictures of an earlier run would mislead whoever looks.
    let _ = std::fs::remove_dir_all(&screenshots);

    let site = Site::start().await;
    let summary = walk(&dir, &site.base, &screenshots).await;

    let store = &site.app.store;
    let alice = store.user("alice").await.unwrap();
    let alice = alice.expect("logging in through the provider recorded alice");
    assert_eq!(alice.email.as_deref(), Some("alice@example.org"));
    assert!(
        alice.groups_json.contains(ADMIN_GROUP),
        "{}",
        alice.groups_json
    );

    let token_id = summary["token_id"].as_str().expect("the token's id");
    assert!(
        store.token(token_id).await.unwrap().is_none(),
        "the token is gone"
    );
    assert!(store.tokens(Some("alice")).await.unwrap().is_empty());

    // Exactly the two accepted pushes were published, with the ids the page
    // showed; the refused ones (old secret, disabled, removed) left nothing.
    drained(&site).await;
    let sink = std::fs::read_to_string(&site.app.config.sink.path).expect("the sink file");
    let messages: Vec<Value> = sink
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let ids: Vec<&Value> = messages.iter().map(|m| &m["id"]).collect();
    let shown: Vec<&Value> = summary["message_ids"].as_array().unwrap().iter().collect();
    assert_eq!(ids, shown, "published messages and the page's message ids");
    assert!(messages.iter().all(|m| m["topic"] == "github.push"));
    assert_eq!(
        messages[1]["body"]["body"]["ref"],
        "refs/heads/after-enable"
    );

    let steps = summary["steps"].as_array().expect("the steps walked");
    let pictures = std::fs::read_dir(&screenshots).expect("the screenshots");
    let pictures: Vec<String> = pictures
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        pictures.len(),
        steps.len(),
        "one screenshot a step: {pictures:?}"
    );
    assert!(pictures.iter().any(|name| name.ends_with("-phone.png")));
}

/// Runs the walk against `base`; returns its summary, or fails with what
/// the script said.
async fn walk(dir: &Path, base: &str, screenshots: &Path) -> Value {
    let run = Command::new("node")
        .arg("e2e.mjs")
        .arg(base)
        .current_dir(dir)
        .env("SCREENSHOTS", screenshots)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(WALK_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("the walk took longer than {WALK_TIMEOUT:?}"))
        .expect("node runs tests/browser/e2e.mjs (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the walk in Chromium failed ({}); screenshots in {}:\n{stderr}{stdout}",
        output.status,
        screenshots.display()
    );
    eprint!("{stderr}");
    println!("{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|_| panic!("the walk's summary: {last:?}"))
}

/// Waits until the dispatcher has published every stored message (at most
/// 30 s).
async fn drained(site: &Site) {
    for _ in 0..300 {
        if site.app.store.outbox_depth().await.unwrap() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the outbox did not drain");
}
