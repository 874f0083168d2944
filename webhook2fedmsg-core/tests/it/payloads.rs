//! Payloads and events (CASES.md section B): what a body must be, which
//! events are skipped and why, agents that cannot be known, unknown and
//! hostile event names, and what a message never carries.

use serde_json::{Value, json};
use webhook2fedmsg_core::delivery::MAX_DEPTH;
use webhook2fedmsg_core::{Delivery, DeliveryError, Kind, SkipReason};

use crate::support::{self, SECRET, delivery, hub_sha256};

fn decode(kind: Kind, delivery: &Delivery) -> Result<webhook2fedmsg_core::Event, DeliveryError> {
    kind.service().decode(delivery, &support::context())
}

/// A delivery of `body` to `kind` with just the headers naming an event.
fn bare(kind: Kind, body: &[u8]) -> Delivery {
    let mut headers = support::event_headers(kind);
    headers.push(("Content-Type", "application/json"));
    delivery(&headers, body.to_vec())
}

/// Asserts that `kind` refuses `body` as invalid JSON.
fn refused_as_invalid_json(kind: Kind, body: &str) {
    let result = decode(kind, &bare(kind, body.as_bytes()));
    assert!(
        matches!(result, Err(DeliveryError::InvalidJson(_))),
        "{kind} {body}: {:?}",
        result.map(|e| e.topic().to_string())
    );
}

/// Asserts that every service refuses `body` as invalid JSON.
fn refused_as_invalid_json_by_every_service(body: &str) {
    for kind in Kind::ALL {
        refused_as_invalid_json(kind, body);
    }
}

#[test]
fn form_body_publishes_the_decoded_payload() {
    let json = support::recording("github/push.new-branch.json").body;
    let form = support::form_body(&json);
    let delivery = support::form_push(&hub_sha256(SECRET, &form), form);
    let message = support::convert(Kind::Github, &delivery, None).expect("published");
    let sent: Value = serde_json::from_slice(&json).expect("JSON");
    assert_eq!(support::body_of(&message)["body"], sent);
}

#[test]
fn form_body_without_payload_field_is_rejected() {
    for body in [&b"ref=refs%2Fheads%2Fmain"[..], b"", b"payloadx=%7B%7D"] {
        let delivery = support::form_push("unused", body.to_vec());
        assert_eq!(
            decode(Kind::Github, &delivery).err(),
            Some(DeliveryError::MissingFormPayload),
            "{body:?}"
        );
    }
}

#[test]
fn form_payload_is_checked_like_a_json_body() {
    let cases: [(&[u8], DeliveryError); 3] = [
        (b"payload=%5B1%5D", DeliveryError::NotAnObject("an array")),
        (
            b"payload=%7B%22a%22%3A%22%FF%22%7D",
            DeliveryError::NotUtf8(6),
        ),
        (b"payload=", DeliveryError::EmptyBody),
    ];
    for (body, expected) in cases {
        let delivery = support::form_push("unused", body.to_vec());
        assert_eq!(decode(Kind::Github, &delivery).err(), Some(expected));
    }
}

#[test]
fn other_content_types_are_refused_with_a_hint() {
    let body = support::recording("github/push.new-branch.json").body;
    for content_type in [
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/xml",
    ] {
        let delivery = delivery(
            &[("Content-Type", content_type), ("X-GitHub-Event", "push")],
            body.clone(),
        );
        let error = decode(Kind::Github, &delivery).expect_err(content_type);
        assert!(matches!(error, DeliveryError::UnsupportedContentType(_)));
        assert!(error.to_string().contains("application/json"));
    }
}

#[test]
fn json_content_type_with_parameters_is_accepted() {
    let body = support::recording("github/push.new-branch.json").body;
    for content_type in [
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.x+json",
    ] {
        let delivery = delivery(
            &[("Content-Type", content_type), ("X-GitHub-Event", "push")],
            body.clone(),
        );
        assert!(decode(Kind::Github, &delivery).is_ok(), "{content_type}");
    }
}

/// A body and a test of the error it must give.
type Case = (&'static [u8], fn(&DeliveryError) -> bool);

#[test]
fn rejects_bodies_that_are_not_json_objects_for_every_service() {
    let cases: [Case; 16] = [
        (b"[1,2]", |e| *e == DeliveryError::NotAnObject("an array")),
        (b"\"str\"", |e| *e == DeliveryError::NotAnObject("a string")),
        (b"null", |e| *e == DeliveryError::NotAnObject("null")),
        (b"true", |e| *e == DeliveryError::NotAnObject("a boolean")),
        (b"-1", |e| *e == DeliveryError::NotAnObject("a number")),
        (b"{\"a\":", |e| matches!(e, DeliveryError::InvalidJson(_))),
        (b"\xff\xfe\x00", |e| *e == DeliveryError::NotUtf8(0)),
        (b"", |e| *e == DeliveryError::EmptyBody),
        (b" \n\t", |e| *e == DeliveryError::EmptyBody),
        (b"{\"a\":1}{\"b\":2}", |e| {
            matches!(e, DeliveryError::InvalidJson(_))
        }),
        (b"<xml/>", |e| matches!(e, DeliveryError::InvalidJson(_))),
        // Named by their first letter only when they are that value.
        (b"nope", |e| matches!(e, DeliveryError::InvalidJson(_))),
        (b"truex", |e| matches!(e, DeliveryError::InvalidJson(_))),
        (b"[1,", |e| matches!(e, DeliveryError::InvalidJson(_))),
        (b"12abc", |e| matches!(e, DeliveryError::InvalidJson(_))),
        (b"\"unterminated", |e| {
            matches!(e, DeliveryError::InvalidJson(_))
        }),
    ];
    for kind in Kind::ALL {
        for (body, expected) in cases {
            let error = decode(kind, &bare(kind, body)).expect_err("rejected");
            assert!(expected(&error), "{kind} {body:?}: {error:?}");
        }
    }
}

#[test]
fn rejects_non_utf8_bytes_inside_a_string() {
    for kind in Kind::ALL {
        let body = b"{\"action\":\"pretix.event.order.placed\",\"x\":\"caf\xe9\"}";
        let at = body.iter().position(|&b| b == 0xe9).expect("the bad byte");
        assert_eq!(
            decode(kind, &bare(kind, body)).err(),
            Some(DeliveryError::NotUtf8(at)),
            "{kind}"
        );
    }
}

/// Lone UTF-16 surrogate escapes cannot be represented as UTF-8, and
/// serde-based consumers refuse them, so every service rejects them as
/// invalid JSON: in fields it reads and in fields it only passes on.
#[test]
fn rejects_lone_surrogate_escapes_anywhere_in_the_body() {
    let bodies = [
        r#"{"t":"\ud800"}"#,
        r#"{"t":"\uDBFF"}"#,
        r#"{"t":"\udc00"}"#,
        r#"{"t":"x\ud83dy"}"#,
        r#"{"t":"\ud83d\u0041"}"#,
        r#"{"t":"\ud83d\ud83d"}"#,
        r#"{"\ud800":1}"#,
        r#"{"deep":[{"a":{"b":["\ud800"]}}]}"#,
        r#"{"sender":{"login":"a\ud800"}}"#,
        r#"{"t":"\\\ud800"}"#,
    ];
    for body in bodies {
        refused_as_invalid_json_by_every_service(body);
    }
}

/// A lone surrogate is named as such, whether it is a leading one without
/// its pair or a trailing one alone, as a key or as a value.
#[test]
fn lone_surrogate_errors_say_what_is_wrong() {
    for body in [
        r#"{"t":"\ud800"}"#,
        r#"{"t":"\udc00"}"#,
        r#"{"\udfff":1}"#,
        r#"{"sender":{"login":"a\ud83d"}}"#,
    ] {
        let result = decode(Kind::Github, &bare(Kind::Github, body.as_bytes()));
        assert!(
            matches!(&result, Err(DeliveryError::InvalidJson(text))
                if text.starts_with("a lone UTF-16 surrogate escape")),
            "{body}: {:?}",
            result.map(|e| e.topic().to_string())
        );
    }
}

#[test]
fn accepts_surrogate_pairs_and_escaped_backslashes() {
    let bodies = [
        r#"{"t":"\ud83d\ude0a"}"#,
        r#"{"t":"\uD83D\uDE0A"}"#,
        r#"{"t":"\\ud800"}"#,
        r#"{"t":"\\\\ud800"}"#,
        r#"{"t":"\u00e9\/"}"#,
        r#"{"t":"\\u"}"#,
    ];
    for kind in [Kind::Github, Kind::Gitlab, Kind::Forgejo, Kind::Gitea] {
        for body in bodies {
            let event = decode(kind, &bare(kind, body.as_bytes()));
            assert!(event.is_ok(), "{kind} {body}: {:?}", event.err());
        }
    }
}

/// An object holding arrays, `depth` levels in all.
fn nested(depth: usize) -> String {
    let arrays = depth - 1;
    format!("{{\"a\":{}{}}}", "[".repeat(arrays), "]".repeat(arrays))
}

#[test]
fn rejects_nesting_deeper_than_the_limit_for_every_service() {
    for depth in [MAX_DEPTH + 1, 100_000] {
        refused_as_invalid_json_by_every_service(&nested(depth));
    }
}

/// Numbers beyond a double's range are refused by serde and read as
/// infinity by Python; the services that skip the fields they do not read
/// would not notice them.
#[test]
fn rejects_numbers_out_of_range_for_every_service() {
    let huge_integer = "9".repeat(400);
    for number in ["1e400", "-1E+400", "1.5e999", huge_integer.as_str()] {
        refused_as_invalid_json_by_every_service(&format!(r#"{{"a":{number}}}"#));
    }
}

/// Services read a few fields in the same pass that checks the rest, so a
/// bad value is refused inside the objects they read as well as beside them.
#[test]
fn rejects_bad_values_inside_the_objects_a_service_reads() {
    let deep = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    for bad in ["1e400", r#""\ud800""#, deep.as_str()] {
        let bodies = [
            format!(r#"{{"sender":{{"login":"a","id":{bad}}}}}"#),
            format!(r#"{{"repository":{{"private":false,"x":[{bad}]}}}}"#),
            format!(r#"{{"run":{{"trigger_user":{{"login":"a","x":{bad}}}}}}}"#),
            format!(r#"{{"user":{{"username":"a","x":{bad}}}}}"#),
            format!(r#"{{"object_attributes":{{"x":{{"y":{bad}}}}}}}"#),
            format!(r#"{{"post":{{"x":{bad}}}}}"#),
        ];
        for body in &bodies {
            refused_as_invalid_json_by_every_service(body);
        }
    }
}

/// An object a service reads must be an object: serde would otherwise read
/// an array in its place, by position.
#[test]
fn objects_a_service_reads_are_refused_when_sent_as_arrays() {
    let cases = [
        (Kind::Github, r#"{"sender":["alice","User"]}"#),
        (Kind::Github, r#"{"repository":[false,false,"public"]}"#),
        (Kind::Forgejo, r#"{"run":{"trigger_user":["bob","User"]}}"#),
        (Kind::Gitea, r#"{"sender":["alice"]}"#),
        (Kind::Gitlab, r#"{"user":["bob"]}"#),
        (Kind::Gitlab, r#"{"object_attributes":[true,null]}"#),
    ];
    for (kind, body) in cases {
        refused_as_invalid_json(kind, body);
    }
}

/// Numbers that round to infinity are refused, and those just below that
/// are kept, as a correctly rounding parser (Python's) reads them.
#[test]
fn numbers_at_the_edge_of_a_double_are_judged_as_python_reads_them() {
    for number in ["1.79769313486231585e308", "-1.79769313486231581e308"] {
        refused_as_invalid_json_by_every_service(&format!(r#"{{"a":{number}}}"#));
    }
    for number in ["1.7976931348623158e308", "1.7976931348623157999e308"] {
        let body = format!(r#"{{"a":{number}}}"#);
        let result = decode(Kind::Github, &bare(Kind::Github, body.as_bytes()));
        assert!(result.is_ok(), "{number}: {:?}", result.err());
    }
}

/// The depth limit counts the levels of the objects a service reads: the
/// same nesting under `sender` is accepted up to the limit and no deeper.
#[test]
fn nesting_under_a_field_a_service_reads_counts_toward_the_limit() {
    // `{"sender":{"x":` is two levels; the arrays make up the rest.
    let under_sender = |depth: usize| {
        let arrays = depth - 2;
        format!(
            r#"{{"sender":{{"login":"a","x":{}{}}}}}"#,
            "[".repeat(arrays),
            "]".repeat(arrays)
        )
    };
    for kind in [Kind::Github, Kind::Forgejo, Kind::Gitea] {
        let at_limit = decode(kind, &bare(kind, under_sender(MAX_DEPTH).as_bytes()));
        assert!(at_limit.is_ok(), "{kind}: {:?}", at_limit.err());
        let beyond = decode(kind, &bare(kind, under_sender(MAX_DEPTH + 1).as_bytes()));
        assert!(
            matches!(&beyond, Err(DeliveryError::InvalidJson(text)) if text.contains("nesting deeper")),
            "{kind}: {:?}",
            beyond.map(|e| e.topic().to_string())
        );
    }
}

#[test]
fn accepts_exponents_in_range_and_exponent_lookalikes_in_strings() {
    let body = r#"{"a":1e300,"b":[-2.5E-10, 3e2],"sha":"81e4c3f02e1","t":"2e5x"}"#;
    for kind in Kind::ALL {
        if kind == Kind::Pretix {
            continue; // needs its own fields, which this body lacks
        }
        let result = decode(kind, &bare(kind, body.as_bytes()));
        assert!(result.is_ok(), "{kind}: {:?}", result.err());
    }
}

/// The message wraps the payload one level deeper and its dump line two:
/// at the deepest payload accepted, both still parse with serde_json.
#[test]
fn messages_of_the_deepest_payload_parse_with_serde_json() {
    let body = nested(MAX_DEPTH);
    for kind in [
        Kind::Github,
        Kind::Gitlab,
        Kind::Forgejo,
        Kind::Gitea,
        Kind::Discourse,
    ] {
        let message = support::message_of(kind, &bare(kind, body.as_bytes()), None);
        serde_json::from_str::<Value>(message.body()).unwrap();
        serde_json::from_str::<Value>(&message.dump_line("")).unwrap();
    }
}

#[test]
fn accepts_nesting_up_to_the_limit_and_many_shallow_brackets() {
    let shallow = format!(
        "{{\"a\":[{}[]],\"s\":\"{}\"}}",
        "[],".repeat(500),
        "[{".repeat(500)
    );
    for body in [nested(MAX_DEPTH), shallow] {
        for kind in [
            Kind::Github,
            Kind::Gitlab,
            Kind::Forgejo,
            Kind::Gitea,
            Kind::Discourse,
        ] {
            let result = decode(kind, &bare(kind, body.as_bytes()));
            assert!(result.is_ok(), "{kind}: {:?}", result.err());
        }
    }
}

#[test]
fn invalid_json_errors_never_quote_payload_text() {
    let needle = "hunter2-private-text";
    let bodies = [
        format!(r#"{{"repository":{{"private":"{needle}"}}}}"#),
        format!(r#"{{"sender":{{"login":["{needle}"]}}}}"#),
        format!(r#"{{"user_username":{{"{needle}":1}}}}"#),
        format!(r#"{{"action":"pretix.x","notification_id":"{needle}"}}"#),
        format!(r#"{{"{needle}" 1}}"#),
        format!(r#"{{"a":"{needle}}}"#),
        format!(r#"{{"a":{needle}}}"#),
    ];
    for kind in Kind::ALL {
        for body in &bodies {
            let Err(error) = decode(kind, &bare(kind, body.as_bytes())) else {
                continue;
            };
            for text in [error.to_string(), format!("{error:?}")] {
                assert!(!text.contains(needle), "{kind} {body}: {text}");
                assert!(!text.contains("hunter2"), "{kind} {body}: {text}");
            }
        }
    }
}

#[test]
fn github_organization_ping_is_skipped_with_a_reason() {
    let path = support::fixtures_dir().join("github/ping.organization.json");
    let body = support::fixture_body("github/ping.organization.json");
    assert!(
        body.get("repository").is_none(),
        "an org ping has no repository"
    );
    let delivery = support::signed(&path);
    Kind::Github
        .service()
        .verify(
            &delivery,
            &[webhook2fedmsg_core::Secret::new(SECRET)],
            support::NOW,
        )
        .expect("verifies");
    let event = decode(Kind::Github, &delivery).expect("a ping decodes");
    assert_eq!(event.skip(), Some(SkipReason::Ping));
    assert_eq!(event.topic(), "github.ping");
    assert!(event.skip().expect("skipped").to_string().contains("ping"));
}

#[test]
fn discourse_ping_is_skipped_with_a_reason() {
    let path = support::fixtures_dir().join("discourse/ping.json");
    let delivery = support::signed(&path);
    Kind::Discourse
        .service()
        .verify(
            &delivery,
            &[webhook2fedmsg_core::Secret::new(SECRET)],
            support::NOW,
        )
        .expect("verifies");
    let event = decode(Kind::Discourse, &delivery).expect("a ping decodes");
    assert_eq!(event.skip(), Some(SkipReason::Ping));
    assert_eq!(event.skip().map(SkipReason::code), Some("ping"));
}

#[test]
fn bot_sender_has_no_identity_and_still_converts() {
    let mut body = support::fixture_body("github/push.new-branch.json");
    body["sender"] = json!({"login": "dependabot[bot]", "id": 49699333, "type": "Bot"});
    let delivery = support::resigned(
        "github/push.new-branch.json",
        body.to_string().into_bytes(),
        SECRET,
    );
    let event = decode(Kind::Github, &delivery).expect("decodes");
    assert_eq!(event.identity(), None);
    let message = support::convert(Kind::Github, &delivery, None).expect("published");
    assert_eq!(support::body_of(&message)["agent"], Value::Null);
    assert!(message.usernames().is_empty());

    // A bot type with an ordinary-looking login is a bot too.
    body["sender"] = json!({"login": "renovate", "type": "Bot"});
    let delivery = support::resigned(
        "github/push.new-branch.json",
        body.to_string().into_bytes(),
        SECRET,
    );
    assert_eq!(
        decode(Kind::Github, &delivery).expect("decodes").identity(),
        None
    );
}

#[test]
fn event_without_sender_has_no_identity_and_still_converts() {
    let body = br#"{"action":"created","installation":{"id":1,"account":{"login":"org-a"}}}"#;
    let delivery = delivery(
        &[
            ("X-GitHub-Event", "installation"),
            ("X-Hub-Signature-256", &hub_sha256(SECRET, body)),
        ],
        body.to_vec(),
    );
    let event = decode(Kind::Github, &delivery).expect("decodes");
    assert_eq!(event.identity(), None);
    assert_eq!(event.skip(), None);
    let message = support::convert(Kind::Github, &delivery, None).expect("published");
    assert_eq!(message.topic(), "github.installation");
    assert_eq!(support::body_of(&message)["agent"], Value::Null);
}

#[test]
fn sender_without_login_has_no_identity() {
    for sender in [
        json!({}),
        json!({"login": null}),
        json!({"login": ""}),
        Value::Null,
    ] {
        let mut body = support::fixture_body("github/push.new-branch.json");
        body["sender"] = sender.clone();
        let delivery = support::resigned(
            "github/push.new-branch.json",
            body.to_string().into_bytes(),
            SECRET,
        );
        let event = decode(Kind::Github, &delivery).expect("decodes");
        assert_eq!(event.identity(), None, "{sender}");
    }
}

#[test]
fn commit_author_without_username_still_converts() {
    let mut body = support::fixture_body("github/push.new-branch.json");
    for commit in body["commits"].as_array_mut().expect("commits") {
        commit["author"] = json!({"name": "Jane Doe", "email": "jane@example.org"});
    }
    body["head_commit"]["author"] = json!({"name": "Jane Doe"});
    let delivery = support::resigned(
        "github/push.new-branch.json",
        body.to_string().into_bytes(),
        SECRET,
    );
    let message = support::convert(Kind::Github, &delivery, None).expect("published");
    assert_eq!(
        support::body_of(&message)["body"]["head_commit"]["author"]["name"],
        "Jane Doe"
    );
}

#[test]
fn gitlab_note_without_user_has_no_identity_and_still_converts() {
    let mut body = support::fixture_body("gitlab/note.commit.json");
    body.as_object_mut().expect("object").remove("user");
    let delivery = support::resigned(
        "gitlab/note.commit.json",
        body.to_string().into_bytes(),
        SECRET,
    );
    let event = decode(Kind::Gitlab, &delivery).expect("decodes");
    assert_eq!(event.identity(), None);
    let message = support::convert(Kind::Gitlab, &delivery, None).expect("published");
    assert_eq!(message.topic(), "gitlab.note");
    assert_eq!(support::body_of(&message)["agent"], Value::Null);
}

#[test]
fn forgejo_identity_is_reported_under_forgejo_never_as_a_fedora_name() {
    let path = support::fixtures_dir().join("forgejo/push.json");
    let delivery = support::signed(&path);
    let event = decode(Kind::Forgejo, &delivery).expect("decodes");
    let identity = event.identity().expect("the pusher").clone();
    assert_eq!(identity.service, "forgejo");
    // Without a resolved agent, nobody is named in the message.
    let message = event.into_message(None, uuid::Uuid::nil(), time::OffsetDateTime::UNIX_EPOCH);
    assert!(message.usernames().is_empty());
    assert!(
        !message
            .headers()
            .keys()
            .any(|k| k.starts_with("fedora_messaging_user_"))
    );
    assert_eq!(support::body_of(&message)["agent"], Value::Null);
}

fn gitlab_event(header: &str) -> Delivery {
    let body = support::recording("gitlab/push.json").body;
    delivery(
        &[("X-Gitlab-Event", header), ("X-Gitlab-Token", SECRET)],
        body,
    )
}

#[test]
fn unknown_gitlab_events_convert_under_a_sanitised_topic() {
    for (header, topic) in [
        ("Emoji Hook", "gitlab.emoji"),
        ("Future Thing Hook", "gitlab.future_thing"),
    ] {
        let delivery = gitlab_event(header);
        for _ in 0..5 {
            let message = support::convert(Kind::Gitlab, &delivery, None).expect("published");
            assert_eq!(message.topic(), topic);
        }
    }
}

#[test]
fn unknown_github_event_converts_under_its_name() {
    let body = br#"{"action":"imagined","sender":{"login":"user-a"}}"#;
    let delivery = delivery(
        &[
            ("X-GitHub-Event", "future_event"),
            ("X-Hub-Signature-256", &hub_sha256(SECRET, body)),
        ],
        body.to_vec(),
    );
    let message = support::convert(Kind::Github, &delivery, None).expect("published");
    assert_eq!(message.topic(), "github.future_event");
}

#[test]
fn unknown_pretix_action_converts_under_its_name() {
    let mut body = support::fixture_body("pretix/order.placed.json");
    body["action"] = json!("pretix.event.unknown");
    let delivery = delivery(&[("Content-Type", "application/json")], body.to_string());
    let message = support::convert(Kind::Pretix, &delivery, None).expect("published");
    assert_eq!(message.topic(), "pretix.event.unknown");
}

const HOSTILE_WORDS: [&str; 8] = [
    "push.tag",
    "push#",
    "#",
    "*",
    "Push",
    "pùsh",
    "push hook",
    "",
];

fn is_invalid_event(result: &Result<webhook2fedmsg_core::Event, DeliveryError>) -> bool {
    matches!(result, Err(DeliveryError::InvalidEvent { .. }))
}

#[test]
fn refuses_hostile_event_names_in_headers() {
    let long = "a".repeat(65);
    let body = support::recording("github/push.new-branch.json").body;
    let headers = [
        (Kind::Github, "X-GitHub-Event"),
        (Kind::Forgejo, "X-Forgejo-Event"),
        (Kind::Forgejo, "X-Gitea-Event"),
        (Kind::Gitea, "X-Gitea-Event"),
    ];
    for (kind, header) in headers {
        for word in HOSTILE_WORDS.iter().copied().chain([long.as_str()]) {
            let delivery = delivery(&[(header, word)], body.clone());
            let result = decode(kind, &delivery);
            assert!(is_invalid_event(&result), "{kind} {header}: {word:?}");
        }
    }
    assert!(
        decode(
            Kind::Github,
            &delivery(&[("X-GitHub-Event", &"a".repeat(64))], body)
        )
        .is_ok()
    );
}

#[test]
fn refuses_hostile_discourse_event_names() {
    let body = support::recording("discourse/post_created.json").body;
    for word in HOSTILE_WORDS {
        for (event_type, event) in [(word, "post_created"), ("post", word)] {
            let delivery = delivery(
                &[
                    ("X-Discourse-Event-Type", event_type),
                    ("X-Discourse-Event", event),
                ],
                body.clone(),
            );
            let result = decode(Kind::Discourse, &delivery);
            assert!(is_invalid_event(&result), "{event_type:?} {event:?}");
        }
    }
}

#[test]
fn refuses_hostile_gitlab_event_names() {
    let long = format!("{} Hook", "a".repeat(65));
    for header in [
        "Push.Tag Hook",
        "Push# Hook",
        "* Hook",
        "Pùsh Hook",
        " Hook",
        long.as_str(),
    ] {
        let result = decode(Kind::Gitlab, &gitlab_event(header));
        assert!(is_invalid_event(&result), "{header:?}");
    }
}

#[test]
fn refuses_hostile_pretix_actions() {
    let long = format!("pretix.{}", "a".repeat(65));
    for action in [
        "pretix.event.#",
        "pretix.event.*",
        "pretix.Event.placed",
        "pretix.event..placed",
        "pretix.event.plàced",
        "pretix.",
        "event.order.placed",
        "pretix.a.b.c.d.e.f.g",
        long.as_str(),
    ] {
        let mut body = support::fixture_body("pretix/order.placed.json");
        body["action"] = json!(action);
        let result = decode(Kind::Pretix, &delivery(&[], body.to_string()));
        assert!(is_invalid_event(&result), "{action:?}");
    }
}

/// Headers a message must never carry, with values that must not leak.
const FORBIDDEN: [(&str, &str); 8] = [
    ("X-Gitlab-Token", "fixture-secret"),
    ("Authorization", "Bearer leaked-authorization"),
    ("Cookie", "session=leaked-cookie"),
    ("Host", "leaked-host.example.org"),
    ("X-Forwarded-For", "203.0.113.7"),
    ("X-Forwarded-Host", "leaked-forwarded-host.example.org"),
    ("X-Forwarded-Proto", "leaked-proto"),
    ("X-Real-Ip", "198.51.100.9"),
];

/// The header families a message may keep.
const KEPT_PREFIXES: [&str; 7] = [
    "x-discourse-",
    "x-github-",
    "x-hub-signature",
    "x-gitlab-",
    "idempotency-key",
    "x-forgejo-",
    "x-gitea-",
];

#[test]
fn messages_never_carry_tokens_or_transport_headers() {
    for path in support::fixture_paths() {
        let kind = support::kind_of(&path);
        let signed = support::signed(&path);
        let mut headers: Vec<(String, String)> = signed
            .headers()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        for (name, value) in FORBIDDEN {
            if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                headers.push((name.to_string(), value.to_string()));
            }
        }
        let delivery = Delivery::new(headers, signed.body().to_vec());
        let Some(message) = support::convert(kind, &delivery, None) else {
            continue;
        };
        let body = support::body_of(&message);
        let kept = body
            .get("headers")
            .or_else(|| body.get("webhook_headers"))
            .and_then(Value::as_object)
            .expect("every message keeps a header map");
        for name in kept.keys() {
            let lower = name.to_ascii_lowercase();
            assert!(
                KEPT_PREFIXES.iter().any(|p| lower.starts_with(p)),
                "{path:?} keeps {name}"
            );
            assert!(
                !FORBIDDEN.iter().any(|(f, _)| f.eq_ignore_ascii_case(name)),
                "{path:?} keeps {name}"
            );
        }
        let dump = message.dump_line("org.example");
        for (name, value) in FORBIDDEN {
            assert!(!dump.contains(value), "{path:?}: value of {name}");
        }
        assert!(!message.body().contains(SECRET), "{path:?}");
    }
}

#[test]
fn discourse_post_loses_megabytes_of_cooked_and_raw_text() {
    let mut body = support::fixture_body("discourse/post_created.json");
    let big = "<p>".to_string() + &"x".repeat(2 * 1024 * 1024) + "</p>";
    body["post"]["cooked"] = json!(big);
    body["post"]["raw"] = json!("y".repeat(1024 * 1024));
    let delivery = support::resigned(
        "discourse/post_created.json",
        body.to_string().into_bytes(),
        SECRET,
    );
    let message = support::convert(Kind::Discourse, &delivery, None).expect("published");
    let post = &support::body_of(&message)["webhook_body"]["post"];
    assert!(post.get("cooked").is_none() && post.get("raw").is_none());
    assert!(message.body().len() < 64 * 1024, "{}", message.body().len());
}

#[test]
fn large_github_body_converts_intact() {
    let mut body = support::fixture_body("github/push.new-branch.json");
    let commit = body["commits"][0].clone();
    body["commits"] = Value::Array(vec![commit; 10_000]);
    let bytes = body.to_string().into_bytes();
    assert!(bytes.len() > 4 * 1024 * 1024);
    let delivery = support::resigned("github/push.new-branch.json", bytes, SECRET);
    let message = support::convert(Kind::Github, &delivery, None).expect("published");
    assert_eq!(support::body_of(&message)["body"], body);
}

#[test]
fn forgejo_and_gitea_deliveries_are_refused_by_github() {
    for (fixture, header, service) in [
        ("forgejo/push.json", "X-Forgejo-Event", "forgejo"),
        ("gitea/push.json", "X-Gitea-Event", "gitea"),
    ] {
        let delivery = support::recording(fixture).to_delivery();
        assert!(
            delivery.first_header("x-github-event").is_some(),
            "{fixture}"
        );
        assert_eq!(
            decode(Kind::Github, &delivery).err(),
            Some(DeliveryError::OtherService { header, service }),
            "{fixture}"
        );
        let own: Kind = service.parse().unwrap();
        assert!(decode(own, &delivery).is_ok(), "{fixture}");
    }
    // Gitea's older header alone gives it away too.
    let delivery = delivery(
        &[("X-GitHub-Event", "push"), ("X-Gogs-Event", "push")],
        b"{}".to_vec(),
    );
    assert_eq!(
        decode(Kind::Github, &delivery).err(),
        Some(DeliveryError::OtherService {
            header: "X-Gogs-Event",
            service: "gitea"
        })
    );
}
