//! The JSON Schemas under `schemas/`: generated from the core's types,
//! checked in, and known to describe every message the fixtures become.
//!
//! `WEBHOOK2FEDMSG_BLESS_SCHEMAS=1 cargo test -p webhook2fedmsg-core
//! schemas_are_up_to_date` rewrites the files after a change of `schema.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use webhook2fedmsg_core::{Kind, schema};

use crate::support;

/// The workspace's `schemas/` directory.
fn schemas_dir() -> PathBuf {
    support::fixtures_dir().join("../schemas")
}

/// The checked-in schema files by name, as text.
fn checked_in() -> BTreeMap<String, String> {
    let Ok(entries) = std::fs::read_dir(schemas_dir()) else {
        return BTreeMap::new();
    };
    entries
        .map(|entry| entry.expect("schemas/ entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let name = path.file_name().expect("a file").to_string_lossy().into();
            let text = std::fs::read_to_string(&path).expect("schema is readable");
            (name, text)
        })
        .collect()
}

#[test]
fn schemas_are_up_to_date() {
    let generated: BTreeMap<String, String> = schema::all().into_iter().collect();
    if std::env::var_os("WEBHOOK2FEDMSG_BLESS_SCHEMAS").is_some_and(|v| v == "1") {
        let dir = schemas_dir();
        std::fs::create_dir_all(&dir).expect("schemas/ can be made");
        for stale in checked_in().keys().filter(|n| !generated.contains_key(*n)) {
            std::fs::remove_file(dir.join(stale)).expect("stale schema can be removed");
        }
        for (name, text) in &generated {
            std::fs::write(dir.join(name), text).expect("schema can be written");
        }
    }

    let files = checked_in();
    let names = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&files),
        names(&generated),
        "schemas/ holds other files than schema::all() makes; \
         run with WEBHOOK2FEDMSG_BLESS_SCHEMAS=1 to rewrite them"
    );
    for (name, text) in &generated {
        assert!(
            files.get(name) == Some(text),
            "schemas/{name} is stale; run with WEBHOOK2FEDMSG_BLESS_SCHEMAS=1 to rewrite it"
        );
    }
}

/// A compiled validator for each service's schema.
fn validators() -> BTreeMap<Kind, jsonschema::Validator> {
    Kind::ALL
        .into_iter()
        .map(|kind| {
            let schema = Value::from(schema::for_service(kind));
            let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
            (kind, validator)
        })
        .collect()
}

fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn every_fixture_message_follows_its_schema() {
    let validators = validators();
    let mut checked = BTreeMap::<Kind, usize>::new();
    for path in support::fixture_paths() {
        let kind = support::kind_of(&path);
        let delivery = support::signed(&path);
        for agent in [None, Some("fasuser")] {
            let Some(message) = support::convert(kind, &delivery, agent) else {
                continue;
            };
            let body = support::body_of(&message);
            let found = errors(&validators[&kind], &body);
            assert!(
                found.is_empty(),
                "{path:?} with agent {agent:?}: {found:#?}"
            );
            *checked.entry(kind).or_default() += 1;
        }
    }
    for kind in Kind::ALL {
        assert!(checked.contains_key(&kind), "no {kind} message was checked");
    }
}

#[test]
fn schemas_refuse_what_we_never_publish() {
    let validators = validators();
    let forge = |headers: Value| serde_json::json!({"body": {"ref": "x"}, "headers": headers, "agent": null});
    let github_headers = serde_json::json!({
        "x-github-event": "push",
        "x-github-delivery": "d",
        "x-github-hook-installation-target-id": "1",
        "x-github-hook-installation-target-type": "repository",
        "x-hub-signature": "",
        "x-hub-signature-256": "sha256=00",
    });
    assert!(validators[&Kind::Github].is_valid(&forge(github_headers.clone())));

    let mut with_token = github_headers.clone();
    with_token["authorization"] = "Bearer x".into();
    let mut missing = github_headers.clone();
    missing
        .as_object_mut()
        .expect("object")
        .remove("x-github-event");
    let mut extra_member = forge(github_headers.clone());
    extra_member["token"] = "x".into();
    let mut without_agent = forge(github_headers.clone());
    without_agent
        .as_object_mut()
        .expect("object")
        .remove("agent");
    let mut array_body = forge(github_headers);
    array_body["body"] = serde_json::json!([1]);
    for (what, instance) in [
        ("a header outside the allowlist", forge(with_token)),
        ("a missing required header", forge(missing)),
        ("a member beside body, headers and agent", extra_member),
        ("a body that is not an object", array_body),
        ("no agent member", without_agent),
    ] {
        assert!(!validators[&Kind::Github].is_valid(&instance), "{what}");
    }

    let gitlab = forge(serde_json::json!({
        "x-gitlab-event": "Push Hook",
        "x-gitlab-webhook-uuid": "w",
        "x-gitlab-event-uuid": "e",
        "x-gitlab-token": "secret",
    }));
    assert!(!validators[&Kind::Gitlab].is_valid(&gitlab), "the token");

    let pretix = serde_json::json!({
        "body": {
            "notification_id": 1, "organizer": "o", "event": "e", "code": null,
            "action": "pretix.event.order.placed", "instance_url": "", "attendee_name": null,
        },
        "headers": {},
        "agent": null,
    });
    assert!(validators[&Kind::Pretix].is_valid(&pretix));
    let mut with_header = pretix.clone();
    with_header["headers"]["x-anything"] = "x".into();
    let mut no_instance = pretix;
    no_instance["body"]
        .as_object_mut()
        .expect("object")
        .remove("instance_url");
    for (what, instance) in [("a header", with_header), ("no instance_url", no_instance)] {
        assert!(!validators[&Kind::Pretix].is_valid(&instance), "{what}");
    }
}
