//! Signatures and tokens (CASES.md section A): every check runs over the
//! raw bytes, malformed headers are refused without panicking, nothing is
//! ever open, and no error text gives a secret or a MAC away.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use webhook2fedmsg_core::signature::{sign_hex, sign_sha1_hex, sign_standard_webhooks};
use webhook2fedmsg_core::{Delivery, Kind, Secret, SignatureError};

use crate::support::{self, NOW, delivery, hub_sha256};

const SECRET_1: &str = "secret-1";
const SECRET_2: &str = "secret-2";

/// A Forgejo `action_run_failure` body as a sender might write it: 2-space
/// indentation, keys in no particular order, `\/` and `\u00e9` escapes, the
/// triggering event's payload as a JSON string, and a final newline.
const ACTION_RUN_BODY: &str = r#"{
  "run": {
    "title": "Caf\u00e9 build \u2014 fix",
    "id": 12346,
    "status": "failure",
    "html_url": "https:\/\/codeberg.org\/user-a\/w2fm-test\/actions\/runs\/12346",
    "event": "push",
    "event_payload": "{\"ref\":\"refs\/heads\/main\",\"pusher\":{\"login\":\"user-a\"}}",
    "trigger_user": {
      "login": "user-a",
      "full_name": "Us\u00e9r A",
      "id": 42
    },
    "repository": {
      "private": false,
      "full_name": "user-a\/w2fm-test",
      "id": 421133
    }
  },
  "action": "failure",
  "sender": {
    "login": "forgejo-actions",
    "id": -2
  },
  "prior_status": "running"
}
"#;

fn secrets(names: &[&str]) -> Vec<Secret> {
    names.iter().map(|&s| Secret::new(s)).collect()
}

fn verify(kind: Kind, delivery: &Delivery, secret: &str) -> Result<(), SignatureError> {
    kind.service().verify(delivery, &secrets(&[secret]), NOW)
}

/// A GitHub push from the fixtures, with `signature` as its only
/// signature header.
fn github_push(signature: &str) -> Delivery {
    let body = support::recording("github/push.json").body;
    github_with(&[("X-Hub-Signature-256", signature)], body)
}

fn github_with(signatures: &[(&str, &str)], body: Vec<u8>) -> Delivery {
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("X-GitHub-Event", "push"),
    ];
    headers.extend_from_slice(signatures);
    delivery(&headers, body)
}

fn push_body() -> Vec<u8> {
    support::recording("github/push.json").body
}

fn forgejo_action_run(headers: &[(&str, &str)], body: &[u8]) -> Delivery {
    let mut all = vec![
        ("Content-Type", "application/json"),
        ("X-Forgejo-Event", "action_run_failure"),
        ("X-Forgejo-Delivery", "0b6e3ab0-39a1-4a8e-9d2c-1f5b8c7e6d01"),
    ];
    all.extend_from_slice(headers);
    delivery(&all, body.to_vec())
}

#[test]
fn verifies_reserialised_looking_body_over_its_raw_bytes() {
    let raw = ACTION_RUN_BODY.as_bytes();
    let bare = sign_hex(SECRET_1.as_bytes(), raw);
    let prefixed = hub_sha256(SECRET_1, raw);
    let delivery = forgejo_action_run(
        &[
            ("X-Forgejo-Signature", &bare),
            ("X-Hub-Signature-256", &prefixed),
        ],
        raw,
    );

    verify(Kind::Forgejo, &delivery, SECRET_1).expect("signed over the raw bytes");
    let message = support::message_of(Kind::Forgejo, &delivery, None);
    assert_eq!(message.topic(), "forgejo.action_run_failure");
    let body = support::body_of(&message);
    let sent: Value = serde_json::from_slice(raw).expect("the body is JSON");
    assert_eq!(body["body"], sent, "published body equals the raw body");
    assert!(
        message.body().contains(ACTION_RUN_BODY.trim_end()),
        "the payload is published as the sender wrote it"
    );
    assert_eq!(body["body"]["run"]["title"], "Café build — fix");
}

#[test]
fn action_run_identity_is_the_trigger_user() {
    let raw = ACTION_RUN_BODY.as_bytes();
    let bare = sign_hex(SECRET_1.as_bytes(), raw);
    let delivery = forgejo_action_run(&[("X-Forgejo-Signature", &bare)], raw);
    let event = Kind::Forgejo
        .service()
        .decode(&delivery, &support::context())
        .expect("decodes");
    let identity = event.identity().expect("the run names who triggered it");
    assert_eq!(
        (identity.service, identity.login.as_str()),
        ("forgejo", "user-a")
    );
}

#[test]
fn rejects_minified_body_with_the_original_signature() {
    let raw = ACTION_RUN_BODY.as_bytes();
    let bare = sign_hex(SECRET_1.as_bytes(), raw);
    let prefixed = hub_sha256(SECRET_1, raw);
    let value: Value = serde_json::from_slice(raw).expect("the body is JSON");
    let minified = serde_json::to_vec(&value).expect("serialises");
    let delivery = forgejo_action_run(
        &[
            ("X-Forgejo-Signature", &bare),
            ("X-Hub-Signature-256", &prefixed),
        ],
        &minified,
    );
    assert!(matches!(
        verify(Kind::Forgejo, &delivery, SECRET_1),
        Err(SignatureError::Mismatch(_))
    ));
}

#[test]
fn verifies_multibyte_utf8_body_and_keeps_it_intact() {
    let mut body = support::fixture_body("github/push.json");
    let text = "Plaça 😊 …";
    body["head_commit"]["message"] = Value::String(text.into());
    let bytes = serde_json::to_vec(&body).expect("serialises");
    assert!(bytes.windows(4).any(|w| w == [0xf0, 0x9f, 0x98, 0x8a]));
    let delivery = support::resigned("github/push.json", bytes, SECRET_1);

    verify(Kind::Github, &delivery, SECRET_1).expect("multibyte bodies verify");
    let message = support::message_of(Kind::Github, &delivery, None);
    assert!(message.body().contains(text), "characters are not escaped");
    assert_eq!(
        support::body_of(&message)["body"]["head_commit"]["message"],
        text
    );
}

#[test]
fn multibyte_secret_is_used_as_its_utf8_bytes() {
    let secret = "sécret-1";
    let body = push_body();
    let signed = github_push(&hub_sha256(secret, &body));
    verify(Kind::Github, &signed, secret).expect("UTF-8 key verifies");

    // The same text as ISO-8859-1 bytes is another key.
    let latin1: Vec<u8> = secret.chars().map(|c| c as u8).collect();
    let wrong = format!("sha256={}", sign_hex(&latin1, &body));
    assert!(verify(Kind::Github, &github_push(&wrong), secret).is_err());
}

#[test]
fn rejects_every_malformed_github_signature() {
    let body = push_body();
    let hex = sign_hex(SECRET_1.as_bytes(), &body);
    let cases = [
        ("sha256=abc".to_string(), "short digest"),
        (format!("sha256={hex}0"), "65 hex digits"),
        (format!("sha256={}", "z".repeat(64)), "not hex"),
        (format!("sha256= {hex}"), "space after the prefix"),
        (String::new(), "empty value"),
        (hex.clone(), "bare hex without prefix"),
        (format!("sha256={}", &hex[..63]), "63 hex digits"),
        (format!("sha512={hex}"), "another algorithm"),
        (format!("sha256={hex} "), "trailing space"),
        (
            format!("sha256={}", base64_of_hex(&hex)),
            "base64 instead of hex",
        ),
    ];
    for (value, what) in cases {
        let result = verify(Kind::Github, &github_push(&value), SECRET_1);
        assert!(
            matches!(result, Err(SignatureError::Malformed { .. })),
            "{what}: {result:?}"
        );
    }
}

fn base64_of_hex(hex: &str) -> String {
    let mac = hex::decode(hex).expect("a MAC in hex");
    base64::engine::general_purpose::STANDARD.encode(mac)
}

#[test]
fn rejects_signature_header_sent_twice_with_different_values() {
    let body = push_body();
    let good = hub_sha256(SECRET_1, &body);
    let other = hub_sha256(SECRET_2, &body);
    for pair in [[&good, &other], [&other, &good]] {
        let delivery = github_with(
            &[
                ("X-Hub-Signature-256", pair[0]),
                ("X-Hub-Signature-256", pair[1]),
            ],
            body.clone(),
        );
        assert_eq!(
            verify(Kind::Github, &delivery, SECRET_1),
            Err(SignatureError::DuplicateHeader("x-hub-signature-256"))
        );
    }
}

#[test]
fn accepts_correct_digest_in_uppercase_hex() {
    let body = push_body();
    let upper = sign_hex(SECRET_1.as_bytes(), &body).to_uppercase();
    let delivery = github_push(&format!("sha256={upper}"));
    assert_eq!(verify(Kind::Github, &delivery, SECRET_1), Ok(()));
}

#[test]
fn rejects_body_signed_with_another_secret() {
    let body = push_body();
    let delivery = github_push(&hub_sha256(SECRET_2, &body));
    assert_eq!(
        verify(Kind::Github, &delivery, SECRET_1),
        Err(SignatureError::Mismatch("x-hub-signature-256"))
    );
}

#[test]
fn accepts_forgejo_bare_hex_signature() {
    let raw = ACTION_RUN_BODY.as_bytes();
    let bare = sign_hex(SECRET_1.as_bytes(), raw);
    let delivery = forgejo_action_run(&[("X-Forgejo-Signature", &bare)], raw);
    assert_eq!(verify(Kind::Forgejo, &delivery, SECRET_1), Ok(()));
}

#[test]
fn wrong_forgejo_signature_is_not_rescued_by_a_correct_hub_signature() {
    let raw = ACTION_RUN_BODY.as_bytes();
    let wrong = sign_hex(SECRET_2.as_bytes(), raw);
    let good = hub_sha256(SECRET_1, raw);
    let delivery = forgejo_action_run(
        &[
            ("X-Forgejo-Signature", &wrong),
            ("X-Hub-Signature-256", &good),
        ],
        raw,
    );
    assert_eq!(
        verify(Kind::Forgejo, &delivery, SECRET_1),
        Err(SignatureError::Mismatch("x-forgejo-signature"))
    );
}

#[test]
fn wrong_hub_signature_is_not_rescued_by_a_correct_forgejo_signature() {
    let raw = ACTION_RUN_BODY.as_bytes();
    let good = sign_hex(SECRET_1.as_bytes(), raw);
    let wrong = hub_sha256(SECRET_2, raw);
    let delivery = forgejo_action_run(
        &[
            ("X-Forgejo-Signature", &good),
            ("X-Hub-Signature-256", &wrong),
        ],
        raw,
    );
    assert_eq!(
        verify(Kind::Forgejo, &delivery, SECRET_1),
        Err(SignatureError::Mismatch("x-hub-signature-256"))
    );
}

#[test]
fn wrong_sha1_signature_beside_a_correct_sha256_is_rejected() {
    let body = push_body();
    let good = hub_sha256(SECRET_1, &body);
    let wrong = format!("sha1={}", sign_sha1_hex(SECRET_2.as_bytes(), &body));
    let delivery = github_with(
        &[("X-Hub-Signature-256", &good), ("X-Hub-Signature", &wrong)],
        body,
    );
    assert_eq!(
        verify(Kind::Github, &delivery, SECRET_1),
        Err(SignatureError::Mismatch("x-hub-signature"))
    );
}

#[test]
fn sha256_and_sha1_macs_checked_together_agree_with_each_alone() {
    // Lengths around one, two and three 64-byte blocks, where feeding the
    // two MACs in turn could drop or repeat part of a block.
    for len in 0..=200 {
        let body: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        let sha256 = hub_sha256(SECRET_1, &body);
        let good = format!("sha1={}", sign_sha1_hex(SECRET_1.as_bytes(), &body));
        let wrong = format!("sha1={}", sign_sha1_hex(SECRET_2.as_bytes(), &body));
        let both = |sha1: &str| {
            let headers = [
                ("X-Hub-Signature-256", sha256.as_str()),
                ("X-Hub-Signature", sha1),
            ];
            verify(Kind::Github, &github_with(&headers, body.clone()), SECRET_1)
        };
        assert_eq!(both(&good), Ok(()), "{len} bytes");
        assert_eq!(
            both(&wrong),
            Err(SignatureError::Mismatch("x-hub-signature")),
            "{len} bytes"
        );
    }
}

#[test]
fn sha256_and_sha1_macs_checked_together_give_the_known_answers() {
    // RFC 4231 and RFC 2202, test case 2 of each: key "Jefe".
    let body = b"what do ya want for nothing?".to_vec();
    let headers = [
        (
            "X-Hub-Signature-256",
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            "X-Hub-Signature",
            "sha1=effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
        ),
    ];
    let delivery = github_with(&headers, body);
    assert_eq!(verify(Kind::Github, &delivery, "Jefe"), Ok(()));
    assert_eq!(
        verify(Kind::Github, &delivery, "Jeff"),
        Err(SignatureError::Mismatch("x-hub-signature-256"))
    );
}

#[test]
fn rejects_malformed_forgejo_bare_signature() {
    let raw = ACTION_RUN_BODY.as_bytes();
    let prefixed = hub_sha256(SECRET_1, raw);
    for bad in ["", "abc", &prefixed] {
        let delivery = forgejo_action_run(&[("X-Forgejo-Signature", bad)], raw);
        assert!(
            matches!(
                verify(Kind::Forgejo, &delivery, SECRET_1),
                Err(SignatureError::Malformed { .. })
            ),
            "{bad:?}"
        );
    }
}

fn discourse_post(signature: &str, body: Vec<u8>) -> Delivery {
    delivery(
        &[
            ("Content-Type", "application/json"),
            ("X-Discourse-Event-Type", "post"),
            ("X-Discourse-Event", "post_created"),
            ("X-Discourse-Event-Signature", signature),
        ],
        body,
    )
}

#[test]
fn accepts_correct_discourse_signature() {
    let body = support::recording("discourse/post_created.json").body;
    let delivery = discourse_post(&hub_sha256(SECRET_1, &body), body);
    assert_eq!(verify(Kind::Discourse, &delivery, SECRET_1), Ok(()));
}

#[test]
fn rejects_wrong_discourse_signature() {
    let body = support::recording("discourse/post_created.json").body;
    let delivery = discourse_post(&hub_sha256(SECRET_2, &body), body);
    assert_eq!(
        verify(Kind::Discourse, &delivery, SECRET_1),
        Err(SignatureError::Mismatch("x-discourse-event-signature"))
    );
}

#[test]
fn empty_stored_secret_never_verifies() {
    let body = push_body();
    let unsigned = github_with(&[], body.clone());
    assert!(verify(Kind::Github, &unsigned, "").is_err());
    let signed_empty = github_push(&hub_sha256("", &body));
    assert_eq!(
        verify(Kind::Github, &signed_empty, ""),
        Err(SignatureError::NoSecret)
    );
    let no_secrets = Kind::Github.service().verify(&signed_empty, &[], NOW);
    assert_eq!(no_secrets, Err(SignatureError::NoSecret));

    // GitLab compares tokens, where an empty one would match an empty secret.
    let gitlab = gitlab_push(&[("X-Gitlab-Token", "")]);
    assert!(verify(Kind::Gitlab, &gitlab, "").is_err());
}

#[test]
fn an_empty_secret_beside_a_real_one_is_ignored() {
    let body = push_body();
    let signed_empty = github_push(&hub_sha256("", &body));
    let result = Kind::Github
        .service()
        .verify(&signed_empty, &secrets(&["", SECRET_1]), NOW);
    assert_eq!(result, Err(SignatureError::Mismatch("x-hub-signature-256")));
}

#[test]
fn rejects_delivery_without_signature_header() {
    for kind in [Kind::Github, Kind::Forgejo, Kind::Gitea, Kind::Discourse] {
        let delivery = delivery(&support::event_headers(kind), push_body());
        assert!(
            matches!(
                verify(kind, &delivery, SECRET_1),
                Err(SignatureError::MissingSignature(_))
            ),
            "{kind}"
        );
    }
}

#[test]
fn rejects_body_signed_with_an_empty_key() {
    let body = push_body();
    let delivery = github_push(&hub_sha256("", &body));
    assert_eq!(
        verify(Kind::Github, &delivery, SECRET_1),
        Err(SignatureError::Mismatch("x-hub-signature-256"))
    );
}

fn gitlab_push(auth: &[(&str, &str)]) -> Delivery {
    let body = support::recording("gitlab/push.json").body;
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("X-Gitlab-Event", "Push Hook"),
    ];
    headers.extend_from_slice(auth);
    delivery(&headers, body)
}

#[test]
fn rejects_gitlab_delivery_without_token() {
    assert!(matches!(
        verify(Kind::Gitlab, &gitlab_push(&[]), SECRET_1),
        Err(SignatureError::MissingSignature(_))
    ));
}

#[test]
fn rejects_gitlab_delivery_with_another_token() {
    let delivery = gitlab_push(&[("X-Gitlab-Token", SECRET_2)]);
    assert_eq!(
        verify(Kind::Gitlab, &delivery, SECRET_1),
        Err(SignatureError::Mismatch("x-gitlab-token"))
    );
}

#[test]
fn rejects_gitlab_token_that_only_shares_a_prefix() {
    for token in ["secret", "secret-10", "secret-1 ", " secret-1", "SECRET-1"] {
        let delivery = gitlab_push(&[("X-Gitlab-Token", token)]);
        assert!(
            verify(Kind::Gitlab, &delivery, SECRET_1).is_err(),
            "{token:?}"
        );
    }
}

#[test]
fn accepts_gitlab_delivery_with_its_token() {
    let delivery = gitlab_push(&[("X-Gitlab-Token", SECRET_1)]);
    assert_eq!(verify(Kind::Gitlab, &delivery, SECRET_1), Ok(()));
    let message = support::message_of(Kind::Gitlab, &delivery, None);
    assert_eq!(message.topic(), "gitlab.push");
}

fn gitlab_signed(secret: &str, timestamp: i64) -> Delivery {
    let body = support::recording("gitlab/push.json").body;
    let id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
    let signature = sign_standard_webhooks(secret, id, timestamp, &body);
    let timestamp = timestamp.to_string();
    let headers = [
        ("Content-Type", "application/json"),
        ("X-Gitlab-Event", "Push Hook"),
        ("webhook-id", id),
        ("webhook-timestamp", timestamp.as_str()),
        ("webhook-signature", signature.as_str()),
    ];
    delivery(&headers, body)
}

#[test]
fn accepts_fresh_standard_webhooks_signature() {
    let delivery = gitlab_signed(SECRET_1, NOW);
    assert_eq!(verify(Kind::Gitlab, &delivery, SECRET_1), Ok(()));
    let message = support::message_of(Kind::Gitlab, &delivery, None);
    assert_eq!(message.topic(), "gitlab.push");
}

#[test]
fn rejects_standard_webhooks_signature_ten_minutes_old() {
    let delivery = gitlab_signed(SECRET_1, NOW - 600);
    assert_eq!(
        verify(Kind::Gitlab, &delivery, SECRET_1),
        Err(SignatureError::StaleTimestamp)
    );
    let future = gitlab_signed(SECRET_1, NOW + 600);
    assert_eq!(
        verify(Kind::Gitlab, &future, SECRET_1),
        Err(SignatureError::StaleTimestamp)
    );
}

#[test]
fn rejects_standard_webhooks_signature_made_with_another_secret() {
    let delivery = gitlab_signed(SECRET_2, NOW);
    assert_eq!(
        verify(Kind::Gitlab, &delivery, SECRET_1),
        Err(SignatureError::Mismatch("webhook-signature"))
    );
}

#[test]
fn rejects_standard_webhooks_signature_over_another_timestamp() {
    let mut delivery = gitlab_signed(SECRET_1, NOW);
    let headers: Vec<(String, String)> = delivery
        .headers()
        .map(|(n, v)| {
            let v = if n == "webhook-timestamp" {
                (NOW + 1).to_string()
            } else {
                v.to_string()
            };
            (n.to_string(), v)
        })
        .collect();
    delivery = Delivery::new(headers, delivery.body().to_vec());
    assert_eq!(
        verify(Kind::Gitlab, &delivery, SECRET_1),
        Err(SignatureError::Mismatch("webhook-signature"))
    );
}

#[test]
fn standard_webhooks_whsec_secret_is_the_decoded_key() {
    let key = base64::engine::general_purpose::STANDARD.encode(b"0123456789abcdef");
    let secret = format!("whsec_{key}");
    let delivery = gitlab_signed(&secret, NOW);
    assert_eq!(verify(Kind::Gitlab, &delivery, &secret), Ok(()));
}

/// `whsec_` with nothing after it would decode to the empty key, which
/// anyone can sign with: the secret's own bytes are the key instead.
#[test]
fn standard_webhooks_whsec_secret_never_gives_the_empty_key() {
    let body = support::recording("gitlab/push.json").body;
    let id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
    let mut mac = Hmac::<Sha256>::new_from_slice(b"").unwrap();
    mac.update(format!("{id}.{NOW}.").as_bytes());
    mac.update(&body);
    let forged = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let timestamp = NOW.to_string();
    let headers = [
        ("Content-Type", "application/json"),
        ("X-Gitlab-Event", "Push Hook"),
        ("webhook-id", id),
        ("webhook-timestamp", timestamp.as_str()),
        ("webhook-signature", forged.as_str()),
    ];
    let delivery = delivery(&headers, body);
    assert_eq!(
        verify(Kind::Gitlab, &delivery, "whsec_"),
        Err(SignatureError::Mismatch("webhook-signature"))
    );
    let honest = gitlab_signed("whsec_", NOW);
    assert_eq!(verify(Kind::Gitlab, &honest, "whsec_"), Ok(()));
}

#[test]
fn wrong_token_beside_a_correct_standard_webhooks_signature_is_rejected() {
    let good = gitlab_signed(SECRET_1, NOW);
    let mut headers: Vec<(String, String)> = good
        .headers()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    headers.push(("X-Gitlab-Token".into(), SECRET_2.into()));
    let delivery = Delivery::new(headers, good.body().to_vec());
    assert_eq!(
        verify(Kind::Gitlab, &delivery, SECRET_1),
        Err(SignatureError::Mismatch("x-gitlab-token"))
    );
}

#[test]
fn rejects_malformed_standard_webhooks_headers() {
    let good = gitlab_signed(SECRET_1, NOW);
    let cases: [(&str, &str); 5] = [
        ("webhook-signature", "v1,not base64!"),
        ("webhook-signature", "v2,AAAA"),
        ("webhook-signature", ""),
        ("webhook-timestamp", "soon"),
        ("webhook-timestamp", "99999999999999999999999"),
    ];
    for (name, value) in cases {
        let headers: Vec<(String, String)> = good
            .headers()
            .map(|(n, v)| (n.to_string(), if n == name { value } else { v }.to_string()))
            .collect();
        let delivery = Delivery::new(headers, good.body().to_vec());
        assert!(
            matches!(
                verify(Kind::Gitlab, &delivery, SECRET_1),
                Err(SignatureError::Malformed { .. })
            ),
            "{name}: {value:?}"
        );
    }
    // Without webhook-id there is nothing to sign over.
    let headers: Vec<(String, String)> = good
        .headers()
        .filter(|(n, _)| *n != "webhook-id")
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let without_id = Delivery::new(headers, good.body().to_vec());
    assert!(verify(Kind::Gitlab, &without_id, SECRET_1).is_err());
}

#[test]
fn verifies_form_body_over_the_raw_form_bytes() {
    let json = support::recording("github/push.json").body;
    let form = support::form_body(&json);
    let delivery = support::form_push(&hub_sha256(SECRET_1, &form), form.clone());
    assert_eq!(verify(Kind::Github, &delivery, SECRET_1), Ok(()));

    let over_json = support::form_push(&hub_sha256(SECRET_1, &json), form);
    assert_eq!(
        verify(Kind::Github, &over_json, SECRET_1),
        Err(SignatureError::Mismatch("x-hub-signature-256"))
    );
}

#[test]
fn either_active_secret_verifies_during_rotation() {
    let body = push_body();
    let active = secrets(&[SECRET_1, SECRET_2]);
    for secret in [SECRET_1, SECRET_2] {
        let delivery = github_push(&hub_sha256(secret, &body));
        assert_eq!(
            Kind::Github.service().verify(&delivery, &active, NOW),
            Ok(()),
            "{secret}"
        );
    }
    let retired = github_push(&hub_sha256("secret-0", &body));
    assert!(
        Kind::Github
            .service()
            .verify(&retired, &active, NOW)
            .is_err()
    );

    let gitlab = gitlab_push(&[("X-Gitlab-Token", SECRET_2)]);
    assert_eq!(Kind::Gitlab.service().verify(&gitlab, &active, NOW), Ok(()));
}

#[test]
fn headers_signed_with_different_secrets_are_rejected() {
    // One secret must satisfy every header present: mixing old and new
    // keys is not a delivery either of them signed.
    let body = push_body();
    let sha256 = hub_sha256(SECRET_1, &body);
    let sha1 = format!("sha1={}", sign_sha1_hex(SECRET_2.as_bytes(), &body));
    let delivery = github_with(
        &[("X-Hub-Signature-256", &sha256), ("X-Hub-Signature", &sha1)],
        body,
    );
    let active = secrets(&[SECRET_1, SECRET_2]);
    assert!(
        Kind::Github
            .service()
            .verify(&delivery, &active, NOW)
            .is_err()
    );
}

#[test]
fn refuses_github_delivery_signed_only_with_sha1() {
    let body = push_body();
    let sha1 = format!("sha1={}", sign_sha1_hex(SECRET_1.as_bytes(), &body));
    let delivery = github_with(&[("X-Hub-Signature", &sha1)], body);
    assert_eq!(
        verify(Kind::Github, &delivery, SECRET_1),
        Err(SignatureError::Sha1Only)
    );
}

#[test]
fn accepts_github_delivery_with_both_correct_signatures() {
    let body = push_body();
    let sha256 = hub_sha256(SECRET_1, &body);
    let sha1 = format!("sha1={}", sign_sha1_hex(SECRET_1.as_bytes(), &body));
    let delivery = github_with(
        &[("X-Hub-Signature-256", &sha256), ("X-Hub-Signature", &sha1)],
        body,
    );
    assert_eq!(verify(Kind::Github, &delivery, SECRET_1), Ok(()));
}

#[test]
fn header_names_match_in_any_case() {
    let body = push_body();
    let signature = hub_sha256(SECRET_1, &body);
    let delivery = delivery(
        &[
            ("x-github-event", "push"),
            ("X-HUB-SIGNATURE-256", &signature),
        ],
        body,
    );
    assert_eq!(verify(Kind::Github, &delivery, SECRET_1), Ok(()));
}

/// Every way a check can fail, with the secret it was checked against.
fn failing_deliveries(secret: &str) -> Vec<(Kind, Delivery)> {
    let body = push_body();
    let other = "other-secret";
    let sha1 = format!("sha1={}", sign_sha1_hex(other.as_bytes(), &body));
    let standard = sign_standard_webhooks(other, "msg_1", NOW, &body);
    let now = NOW.to_string();
    let mut cases = vec![
        (Kind::Github, github_push(&hub_sha256(other, &body))),
        (Kind::Github, github_push("sha256=abc")),
        (
            Kind::Github,
            github_with(&[("X-Hub-Signature", &sha1)], body.clone()),
        ),
        (Kind::Github, github_with(&[], body.clone())),
        (
            Kind::Forgejo,
            forgejo_action_run(
                &[("X-Forgejo-Signature", &sign_hex(other.as_bytes(), &body))],
                &body,
            ),
        ),
        (
            Kind::Discourse,
            discourse_post(&hub_sha256(other, &body), body.clone()),
        ),
        (Kind::Gitlab, gitlab_push(&[("X-Gitlab-Token", other)])),
        (Kind::Gitlab, gitlab_push(&[("X-Gitlab-Token", "")])),
        (
            Kind::Gitlab,
            gitlab_push(&[
                ("webhook-id", "msg_1"),
                ("webhook-timestamp", &now),
                ("webhook-signature", &standard),
            ]),
        ),
        (Kind::Gitlab, gitlab_signed(other, NOW - 3600)),
    ];
    cases.push((
        Kind::Github,
        github_push(&hub_sha256(secret, b"another body")),
    ));
    cases
}

#[test]
fn error_texts_never_contain_the_secret_or_the_expected_mac() {
    let secret = "hunter2-very-secret";
    for (kind, delivery) in failing_deliveries(secret) {
        let error = kind
            .service()
            .verify(&delivery, &secrets(&[secret]), NOW)
            .expect_err("every case fails");
        let texts = [error.to_string(), format!("{error:?}")];
        let body = delivery.body();
        let expected = sign_hex(secret.as_bytes(), body);
        let expected_sha1 = sign_sha1_hex(secret.as_bytes(), body);
        let expected_b64 = base64_of_hex(&expected);
        let sent: Vec<&str> = delivery
            .headers()
            .filter(|(n, _)| n.contains("signature") || n.contains("token"))
            .map(|(_, v)| v)
            .filter(|v| v.len() > 3)
            .collect();
        for text in texts {
            for needle in [secret, &expected, &expected.to_uppercase(), &expected_sha1] {
                assert!(!text.contains(needle), "{kind}: {text}");
            }
            assert!(!text.contains(&expected_b64), "{kind}: {text}");
            for value in &sent {
                assert!(!text.contains(value), "{kind} echoes {value:?}: {text}");
            }
        }
    }
}

/// Whether a signature error is about the headers alone.
fn is_about_headers(error: &SignatureError) -> bool {
    !matches!(
        error,
        SignatureError::Mismatch(_) | SignatureError::NoSecret
    )
}

#[test]
fn the_header_check_refuses_without_the_body_what_verify_refuses_for_its_headers() {
    let secret = "hunter2-very-secret";
    let mut cases = failing_deliveries(secret);
    let body = push_body();
    let good = hub_sha256(secret, &body);
    cases.extend([
        (
            Kind::Github,
            github_with(
                &[
                    ("X-Hub-Signature-256", &good),
                    ("X-Hub-Signature-256", &good),
                ],
                body.clone(),
            ),
        ),
        (
            Kind::Github,
            github_with(
                &[
                    ("X-Hub-Signature-256", &good),
                    ("X-Hub-Signature", "md5=00"),
                ],
                body.clone(),
            ),
        ),
        (Kind::Forgejo, forgejo_action_run(&[], &body)),
        (Kind::Discourse, discourse_post("sha256=", body.clone())),
    ]);
    let mut refused = 0;
    for (kind, delivery) in cases {
        let service = kind.service();
        let verified = service.verify(&delivery, &secrets(&[secret]), NOW);
        let headers_only = delivery.clone().with_body(Vec::new());
        let checked = service.check_signature_headers(&headers_only, NOW);
        match verified {
            Err(error) if is_about_headers(&error) => {
                refused += 1;
                assert_eq!(checked, Err(error), "{kind}");
            }
            _ => assert_eq!(checked, Ok(()), "{kind}: {verified:?}"),
        }
    }
    assert!(refused >= 8, "only {refused} cases are about headers");
}

#[test]
fn the_header_check_passes_every_signed_fixture() {
    for path in support::fixture_paths() {
        let kind = support::kind_of(&path);
        let headers_only = support::signed(&path).with_body(Vec::new());
        let checked = kind.service().check_signature_headers(&headers_only, NOW);
        assert_eq!(checked, Ok(()), "{}", path.display());
    }
}
