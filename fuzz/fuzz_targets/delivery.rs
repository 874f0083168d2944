//! Decodes arbitrary bodies as every service, checking that nothing panics,
//! that whatever decodes has a parsable payload, a safe topic and a message
//! body that is a JSON object, and that a body sent as a form reads the same
//! as when sent as JSON.
//!
//! The first input byte chooses the headers: bits 0-2 the `Content-Type`,
//! bit 3 whether a form body is built from the rest (percent-encoded into
//! `payload=`) or sent as it is, bits 4-7 the event headers. The rest is the
//! body, so a fixture body behind a zero byte is a good seed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use webhook2fedmsg_core::{Delivery, Kind};
use webhook2fedmsg_fuzz::decode_all;

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

/// `Content-Type` values by bits 0-2 of the choice byte; an empty list sends
/// none.
const CONTENT_TYPES: [&[&str]; 8] = [
    &[JSON],
    &[FORM],
    &[],
    &["Application/JSON ; charset=UTF-8"],
    &["application/vnd.github+json"],
    &["text/plain"],
    &[""],
    // Sent twice: a delivery must not be read one way and signed another.
    &[JSON, JSON],
];

/// Event header values by bits 4-7, per service. The last few are names that
/// must never reach a topic.
const GITHUB: [&str; 16] = [
    "push",
    "pull_request",
    "issues",
    "ping",
    "release",
    "workflow_run",
    "issue_comment",
    "create",
    "delete",
    "fork",
    "star",
    "check_run",
    "Push",
    "push.tag",
    "*",
    "",
];

const GITLAB: [&str; 16] = [
    "Push Hook",
    "Tag Push Hook",
    "Issue Hook",
    "Confidential Issue Hook",
    "Note Hook",
    "Confidential Note Hook",
    "Merge Request Hook",
    "Pipeline Hook",
    "Deployment Hook",
    "Feature Flag Hook",
    "Milestone Hook",
    // U+212A KELVIN SIGN lowercases to an ASCII `k`.
    "\u{212A}elvin Hook",
    "Push.Tag Hook",
    "# Hook",
    "P\u{fc}sh Hook",
    " Hook",
];

const FORGEJO: [&str; 16] = [
    "push",
    "pull_request",
    "issues",
    "issue_comment",
    "create",
    "delete",
    "fork",
    "release",
    "action_run_failure",
    "action_run_success",
    "repository",
    "wiki",
    "Push",
    "a.b",
    "#",
    "",
];

const DISCOURSE: [(&str, &str); 16] = [
    ("post", "post_created"),
    ("post", "post_edited"),
    ("post", "post_destroyed"),
    ("topic", "topic_created"),
    ("topic", "topic_edited"),
    ("solved", "accepted_solution"),
    ("like", "post_liked"),
    ("ping", "ping"),
    ("user", "user_created"),
    ("post", "post_recovered"),
    ("topic", "topic_destroyed"),
    ("category", "category_created"),
    ("Post", "post_created"),
    ("post", "post.created"),
    ("*", "ping"),
    ("", ""),
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    let content_types = CONTENT_TYPES[usize::from(choice & 0b111)];
    let is_form = content_types == [FORM];
    let wrap = is_form && choice & 0b1000 != 0;
    let event = usize::from(choice >> 4);

    let sent = if wrap { form_body(body) } else { body.to_vec() };
    for kind in Kind::ALL {
        let mut headers = event_headers(kind, event);
        headers.extend(
            content_types
                .iter()
                .map(|&t| ("Content-Type", t.to_string())),
        );
        let delivery = Delivery::new(headers.clone(), sent.clone());
        decode_all(&delivery);

        if wrap {
            // The form's `payload` field is the body itself, so it must read
            // exactly as the same body sent as JSON.
            headers.retain(|(name, _)| *name != "Content-Type");
            let json = Delivery::new(headers, body.to_vec());
            assert_eq!(delivery.payload(), json.payload(), "form and JSON differ");
        }
    }
});

/// The headers a service names its event with, and a delivery id.
fn event_headers(kind: Kind, event: usize) -> Vec<(&'static str, String)> {
    let pairs: Vec<(&str, &str)> = match kind {
        Kind::Github => vec![
            ("X-GitHub-Event", GITHUB[event]),
            ("X-GitHub-Delivery", "d4b5c6e0-0000-4000-8000-000000000001"),
        ],
        Kind::Gitlab => vec![
            ("X-Gitlab-Event", GITLAB[event]),
            (
                "X-Gitlab-Event-UUID",
                "d4b5c6e0-0000-4000-8000-000000000002",
            ),
        ],
        Kind::Forgejo => vec![
            ("X-Forgejo-Event", FORGEJO[event]),
            ("X-Forgejo-Delivery", "d4b5c6e0-0000-4000-8000-000000000003"),
        ],
        Kind::Gitea => vec![
            ("X-Gitea-Event", FORGEJO[event]),
            ("X-Gitea-Delivery", "d4b5c6e0-0000-4000-8000-000000000004"),
        ],
        Kind::Discourse => vec![
            ("X-Discourse-Event-Type", DISCOURSE[event].0),
            ("X-Discourse-Event", DISCOURSE[event].1),
            ("X-Discourse-Event-Id", "12345"),
        ],
        // Pretix names its event in the payload.
        Kind::Pretix => vec![],
    };
    pairs.into_iter().map(|(n, v)| (n, v.to_string())).collect()
}

/// `payload=<body>`, every byte but the unreserved ones percent-encoded.
fn form_body(body: &[u8]) -> Vec<u8> {
    let mut form = b"hook_id=1&payload=".to_vec();
    for &b in body {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            form.push(b);
        } else {
            form.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    form
}
