//! Our messages, read by the real fedora-messaging library and the schema
//! package that consumers use (webhook-to-fedora-messaging-messages).
//!
//! Every published fixture becomes a message, once without an agent and,
//! for the services whose body carries one, once with a FAS username; the
//! dump lines go to `tests/python/check_messages.py`, which reads them as a
//! consumer does and checks headers, validation and what people read. The
//! Python comes from `W2F_TEST_PYTHON`, else the workspace's `.venv`
//! that `scripts/setup` makes; without it this test fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use webhook2fedmsg_core::Kind;

use crate::support;

/// The FAS username the agent runs use.
const AGENT: &str = "fasuser";

#[test]
fn fedora_messaging_reads_every_published_fixture() {
    let mut without_agent = Vec::new();
    let mut with_agent = Vec::new();
    let mut services = BTreeSet::new();
    for path in fixture_paths() {
        let kind = support::kind_of(&path);
        let delivery = support::signed(&path);
        let Some(message) = support::convert(kind, &delivery, None) else {
            continue;
        };
        services.insert(kind);
        without_agent.push(message.dump_line(""));
        if has_agent(kind) {
            let message = support::convert(kind, &delivery, Some(AGENT)).expect("published");
            with_agent.push(message.dump_line(""));
        }
    }
    let missing: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| !services.contains(k))
        .collect();
    assert!(missing.is_empty(), "no published fixture for {missing:?}");

    // Run both before failing, so that one report shows every problem.
    let reports = [
        check_messages("without-agent", &without_agent, None),
        check_messages("with-agent", &with_agent, Some(AGENT)),
    ];
    let failures: Vec<String> = reports.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Whether the service's message body carries the agent we resolve
/// (Discourse's schema derives its own from the payload).
fn has_agent(kind: Kind) -> bool {
    match kind {
        Kind::Github | Kind::Gitlab | Kind::Forgejo | Kind::Gitea | Kind::Pretix => true,
        Kind::Discourse => false,
    }
}

/// Writes the dump lines to a file and runs the checker on it; the error
/// is the checker's output unless every line passed.
fn check_messages(name: &str, lines: &[String], agent: Option<&str>) -> Result<(), String> {
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("interop-{name}.jsonl"));
    std::fs::write(&file, lines.join("\n") + "\n").expect("temp file is writable");

    let mut command = Command::new(python());
    command
        .arg(workspace().join("tests/python/check_messages.py"))
        .arg(&file);
    if let Some(agent) = agent {
        command.args(["--agent", agent]);
    }
    let output = command.output().expect("the Python interpreter runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = format!("check_messages.py {name}:\n{stdout}\n{stderr}");

    let expected = format!("{} passed, 0 failed", lines.len());
    if output.status.success() && stdout.lines().last() == Some(expected.as_str()) {
        Ok(())
    } else {
        Err(format!(
            "{report}\nexpected {expected:?} and exit 0, got {}",
            output.status
        ))
    }
}

/// The Python with fedora-messaging installed: `W2F_TEST_PYTHON`, or
/// the virtualenv `scripts/setup` makes at the workspace root.
fn python() -> PathBuf {
    let python = std::env::var_os("W2F_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "no Python at {}: run scripts/setup, or set W2F_TEST_PYTHON \
         to a Python with tests/python/requirements.txt installed",
        python.display()
    );
    python
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `fixtures/<service>/*.json`, sorted.
fn fixture_paths() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for dir in std::fs::read_dir(support::fixtures_dir()).expect("fixtures/ is readable") {
        let dir = dir.expect("fixtures/ entry").path();
        for file in std::fs::read_dir(&dir).expect("service dir is readable") {
            let file = file.expect("fixture entry").path();
            if file.extension().is_some_and(|e| e == "json") {
                paths.push(file);
            }
        }
    }
    paths.sort();
    paths
}
