//! The `webhook2fedmsg` command, run as a user would.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::server::{TEST_KEY, fixtures};

fn run(dir: &Path, args: &[&str]) -> Output {
    run_with(dir, &[], args)
}

/// [`run`] with more environment variables.
fn run_with(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_webhook2fedmsg"))
        .current_dir(dir)
        .env_remove("WEBHOOK2FEDMSG_CONFIG")
        .env("WEBHOOK2FEDMSG_SECRETS__KEY", TEST_KEY)
        .env(
            "WEBHOOK2FEDMSG_DATABASE__URL",
            format!("sqlite://{}", dir.join("cli.db").display()),
        )
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("the command runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn convert_prints_one_dump_line() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixtures().join("gitlab/merge_request.json");
    let output = run(dir.path(), &["convert", fixture.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert_eq!(stdout.lines().count(), 1);
    let dump: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(dump["topic"], "gitlab.merge_request");
    assert_eq!(
        dump["headers"]["fedora_messaging_schema"],
        "webhook_to_fedora_messaging.gitlab.message_v1"
    );
    for key in ["body", "headers", "id", "queue", "topic"] {
        assert!(dump.get(key).is_some(), "{key}");
    }
    assert!(!stdout.to_ascii_lowercase().contains("x-gitlab-token"));
}

#[test]
fn convert_takes_the_pretix_instance_url() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixtures().join("pretix/checkin.entry.json");
    let output = run(
        dir.path(),
        &[
            "convert",
            "--instance-url",
            "https://rsvp.example.org",
            fixture.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let dump: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        dump["body"]["body"]["instance_url"],
        "https://rsvp.example.org"
    );
    assert_eq!(dump["topic"], "pretix.event.checkin");

    // Refused as `token add` refuses them: no instance, a malformed one,
    // and one for a service that takes none.
    let github = fixtures().join("github/push.new-branch.json");
    for args in [
        vec!["convert", fixture.to_str().unwrap()],
        vec![
            "convert",
            "--instance-url",
            "https://x.org/\"><script>",
            fixture.to_str().unwrap(),
        ],
        vec![
            "convert",
            "--instance-url",
            "https://x.org",
            github.to_str().unwrap(),
        ],
    ] {
        let refused = run(dir.path(), &args);
        assert!(!refused.status.success(), "{args:?}");
        assert!(refused.stdout.is_empty());
        assert!(
            text(&refused.stderr).contains("--instance-url"),
            "{}",
            text(&refused.stderr)
        );
    }
}

#[test]
fn convert_of_a_ping_prints_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixtures().join("github/ping.json");
    let output = run(dir.path(), &["convert", fixture.to_str().unwrap()]);
    assert!(output.status.success());
    assert!(output.stdout.is_empty());
    assert!(
        text(&output.stderr).contains("ping"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn convert_of_bad_input_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    std::fs::write(
        &broken,
        r#"{"headers": {"X-GitHub-Event": "push"}, "body_raw": "{\"a\":"}"#,
    )
    .unwrap();
    let missing = dir.path().join("missing.json");
    for file in [&broken, &missing] {
        let output = run(
            dir.path(),
            &["convert", "--service", "github", file.to_str().unwrap()],
        );
        assert!(!output.status.success());
        assert!(output.stdout.is_empty());
        assert!(
            text(&output.stderr).starts_with("webhook2fedmsg: "),
            "{}",
            text(&output.stderr)
        );
    }
    let output = run(
        dir.path(),
        &[
            "convert",
            "--service",
            "bitbucket",
            broken.to_str().unwrap(),
        ],
    );
    assert!(!output.status.success());
}

#[test]
fn token_add_list_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        dir.path(),
        &[
            "token",
            "add",
            "--user",
            "alice",
            "--service",
            "gitlab",
            "--name",
            "ci",
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let token: Value = serde_json::from_slice(&output.stdout).unwrap();
    for key in ["id", "service", "name", "hook_url", "secret"] {
        assert!(token.get(key).is_some(), "{key}");
    }
    assert_eq!(token["service"], "gitlab");
    assert!(
        token["hook_url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:8080/gitlab/")
    );
    assert_eq!(token["secret"].as_str().unwrap().len(), 64);
    let id = token["id"].as_str().unwrap();

    let listed = run(dir.path(), &["token", "list", "--user", "alice"]);
    let line: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(line["id"], token["id"]);
    assert_eq!(line["hook_url"], token["hook_url"]);
    assert_eq!(line["enabled"], true);
    assert_eq!(line["last_used_at"], Value::Null);
    let created = line["created_at"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{created}"
    );
    assert!(
        !text(&listed.stdout).contains(token["secret"].as_str().unwrap()),
        "list never shows secrets"
    );

    let removed = run(dir.path(), &["token", "remove", id]);
    assert!(removed.status.success());
    assert!(run(dir.path(), &["token", "list"]).stdout.is_empty());
    assert!(!run(dir.path(), &["token", "remove", id]).status.success());
    let empty = run(
        dir.path(),
        &[
            "token",
            "add",
            "--user",
            "a",
            "--service",
            "github",
            "--secret",
            "",
        ],
    );
    assert!(!empty.status.success(), "an empty secret is refused");
    // The rules of the pages and the API: no short secret, no empty user,
    // no instance URL where the service takes none.
    for args in [
        &["--user", "a", "--service", "github", "--secret", "a"][..],
        &["--user", "", "--service", "github"][..],
        &[
            "--user",
            "a",
            "--service",
            "github",
            "--instance-url",
            "https://x.org",
        ][..],
    ] {
        let refused = run(dir.path(), &[&["token", "add"][..], args].concat());
        assert!(!refused.status.success(), "{args:?}");
        assert!(!text(&refused.stderr).is_empty(), "{args:?} says why");
    }
}

#[test]
fn schemas_check_passes_on_the_checked_in_schemas_and_fails_when_stale() {
    let dir = tempfile::tempdir().unwrap();
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let output = run(
        dir.path(),
        &["schemas", "--check", "--out", schemas.to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));

    let stale = dir.path().join("schemas");
    assert!(
        run(dir.path(), &["schemas", "--out", stale.to_str().unwrap()])
            .status
            .success()
    );
    let first = std::fs::read_dir(&stale)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&first, "{}\n").unwrap();
    let output = run(
        dir.path(),
        &["schemas", "--check", "--out", stale.to_str().unwrap()],
    );
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("stale"));
}

#[test]
fn token_add_warns_when_hook_urls_name_no_host() {
    let dir = tempfile::tempdir().unwrap();
    let add = |listen: &str, public_url: Option<&str>| {
        let mut env = vec![("WEBHOOK2FEDMSG_LISTEN", listen)];
        env.extend(public_url.map(|url| ("WEBHOOK2FEDMSG_PUBLIC_URL", url)));
        run_with(
            dir.path(),
            &env,
            &["token", "add", "--user", "a", "--service", "github"],
        )
    };
    let anywhere = add("0.0.0.0:8080", None);
    assert!(anywhere.status.success());
    assert!(
        text(&anywhere.stderr).contains("set public_url"),
        "{}",
        text(&anywhere.stderr)
    );
    for quiet in [
        add("0.0.0.0:8080", Some("https://hooks.example.org")),
        add("127.0.0.1:8080", None),
    ] {
        assert!(quiet.status.success());
        assert!(
            !text(&quiet.stderr).contains("public_url"),
            "{}",
            text(&quiet.stderr)
        );
    }
}
