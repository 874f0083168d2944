//! Checks signature verification: arbitrary signature headers never panic
//! and never verify under a secret the input cannot know, and a body signed
//! with a secret the input chooses verifies in every header format, in
//! either case of hex, and under no other secret.
//!
//! The input is split at newlines: the first piece is the body, each later
//! one a header whose name is chosen by its first byte (so a name may come
//! twice) and whose value is the rest.

#![no_main]

use libfuzzer_sys::fuzz_target;
use webhook2fedmsg_core::signature::{sign_hex, sign_sha1_hex, sign_standard_webhooks};
use webhook2fedmsg_core::{Delivery, Kind, Secret, SignatureError};
use webhook2fedmsg_fuzz::{NOW, SECRET};

/// Every header a service reads while verifying.
const NAMES: [&str; 11] = [
    "X-Hub-Signature-256",
    "X-Hub-Signature",
    "X-Forgejo-Signature",
    "X-Gitea-Signature",
    "X-Gogs-Signature",
    "X-Discourse-Event-Signature",
    "X-Gitlab-Token",
    "webhook-signature",
    "webhook-id",
    "webhook-timestamp",
    "Content-Type",
];

fuzz_target!(|data: &[u8]| {
    let mut pieces = data.split(|&b| b == b'\n');
    let body = pieces.next().unwrap_or_default();
    let headers: Vec<(&str, String)> = pieces
        .filter_map(|piece| piece.split_first())
        .map(|(&name, value)| {
            let name = NAMES[usize::from(name) % NAMES.len()];
            (name, String::from_utf8_lossy(value).into_owned())
        })
        .collect();

    never_verifies_unknown_secret(&headers, body);

    // Sign with the first header value the input gives, so that secrets of
    // every shape are tried (`whsec_` keys, long keys, non-ASCII ones).
    let secret = match headers.first() {
        Some((_, value)) if !value.is_empty() => value.clone(),
        _ => SECRET.to_string(),
    };
    signed_bodies_verify(&secret, body);
});

/// Arbitrary headers verify under no service but Pretix, which signs
/// nothing; the one exception is a GitLab token equal to the secret.
fn never_verifies_unknown_secret(headers: &[(&str, String)], body: &[u8]) {
    let delivery = Delivery::new(headers.iter().cloned(), body);
    let secrets = [Secret::new(""), Secret::new(SECRET)];
    for kind in Kind::ALL {
        let result = kind.service().verify(&delivery, &secrets, NOW);
        let no_secret = kind.service().verify(&delivery, &[Secret::new("")], NOW);
        assert!(
            kind == Kind::Pretix || no_secret.is_err(),
            "{kind}: no secret"
        );
        match kind {
            Kind::Pretix => assert_eq!(result, Ok(())),
            Kind::Gitlab
                if delivery
                    .header_values("x-gitlab-token")
                    .any(|t| t == SECRET) => {}
            _ => assert!(result.is_err(), "{kind} verified arbitrary headers"),
        }
    }
}

/// Every way a service signs, checked with `secret`, with `secret` among
/// rotated ones, and with another secret that must fail.
fn signed_bodies_verify(secret: &str, body: &[u8]) {
    let sha256 = sign_hex(secret.as_bytes(), body);
    let sha1 = sign_sha1_hex(secret.as_bytes(), body);
    for hex in [
        sha256.clone(),
        sha256.to_ascii_uppercase(),
        alternate_case(&sha256),
    ] {
        let prefixed = format!("sha256={hex}");
        expect_verified(
            Kind::Github,
            &[("X-Hub-Signature-256", &prefixed)],
            secret,
            body,
        );
        expect_verified(
            Kind::Forgejo,
            &[("X-Forgejo-Signature", &hex)],
            secret,
            body,
        );
        expect_verified(Kind::Forgejo, &[("X-Gitea-Signature", &hex)], secret, body);
        expect_verified(
            Kind::Forgejo,
            &[("X-Hub-Signature-256", &prefixed)],
            secret,
            body,
        );
        expect_verified(Kind::Gitea, &[("X-Gitea-Signature", &hex)], secret, body);
        expect_verified(Kind::Gitea, &[("X-Gogs-Signature", &hex)], secret, body);
        let discourse = [("X-Discourse-Event-Signature", prefixed.as_str())];
        expect_verified(Kind::Discourse, &discourse, secret, body);
    }

    // GitHub sends the legacy SHA-1 header beside the SHA-256 one; alone it
    // is refused even when it matches.
    let legacy = format!("sha1={}", sha1.to_ascii_uppercase());
    let both = [
        ("X-Hub-Signature-256", format!("sha256={sha256}")),
        ("X-Hub-Signature", legacy.clone()),
    ];
    let both: Vec<(&str, &str)> = both.iter().map(|(n, v)| (*n, v.as_str())).collect();
    expect_verified(Kind::Github, &both, secret, body);
    let only_sha1 = Delivery::new([("X-Hub-Signature", legacy)], body);
    let result = Kind::Github
        .service()
        .verify(&only_sha1, &[Secret::new(secret)], NOW);
    assert_eq!(result, Err(SignatureError::Sha1Only));

    expect_verified(Kind::Gitlab, &[("X-Gitlab-Token", secret)], secret, body);
    let id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
    let signature = sign_standard_webhooks(secret, id, NOW, body);
    let timestamp = NOW.to_string();
    let standard = [
        ("webhook-id", id),
        ("webhook-timestamp", timestamp.as_str()),
        ("webhook-signature", signature.as_str()),
    ];
    expect_verified(Kind::Gitlab, &standard, secret, body);
}

/// Checks that the headers verify under `secret`, alone or after another
/// secret, and not under a secret one character longer.
fn expect_verified(kind: Kind, headers: &[(&str, &str)], secret: &str, body: &[u8]) {
    let delivery = Delivery::new(headers.iter().map(|&(n, v)| (n, v.to_string())), body);
    let service = kind.service();
    let result = service.verify(&delivery, &[Secret::new(secret)], NOW);
    assert_eq!(result, Ok(()), "{kind} {:?}", names(headers));
    let rotated = [Secret::new(SECRET), Secret::new(secret)];
    assert_eq!(
        service.verify(&delivery, &rotated, NOW),
        Ok(()),
        "{kind} rotated"
    );

    // A trailing NUL would give the same HMAC key (keys are zero-padded), so
    // the other secret ends in a letter.
    let other = Secret::new(format!("{secret}x"));
    let result = service.verify(&delivery, &[other], NOW);
    assert!(
        result.is_err(),
        "{kind} {:?} verified another secret",
        names(headers)
    );
}

fn names<'a>(headers: &[(&'a str, &str)]) -> Vec<&'a str> {
    headers.iter().map(|&(n, _)| n).collect()
}

/// `aBcD...`: every other hex letter in upper case.
fn alternate_case(hex: &str) -> String {
    hex.chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}
