//! Signature schemes: how a sender proves that a delivery comes from it.
//!
//! Every check runs over the raw body bytes as received, decodes the hex or
//! base64 the sender wrote (so either case of hex is accepted) and compares
//! MACs in constant time. A service lists the [`Check`]s it uses; each
//! header that is present must match, and at least one of the service's
//! required headers must be present. A token may hold several secrets (old
//! and new, while a secret is rotated): the delivery verifies when one
//! secret satisfies every header present.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::{Delivery, Secret};

type HmacSha256 = Hmac<Sha256>;
type HmacSha1 = Hmac<Sha1>;

/// How far a signed timestamp may be from the receiver's clock.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

/// Why a delivery's signature or token was refused.
///
/// Messages name the header at fault but never quote a secret, a MAC or the
/// body.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// None of the headers this service signs with is present.
    #[error("missing signature header: send {0}")]
    MissingSignature(&'static str),
    /// A GitHub delivery signed only with SHA-1, which is not accepted.
    #[error(
        "only the SHA-1 signature (X-Hub-Signature) is present: X-Hub-Signature-256 is required"
    )]
    Sha1Only,
    /// A signature header is sent more than once.
    #[error("signature header {0} is sent more than once")]
    DuplicateHeader(&'static str),
    /// A signature header does not have the expected form.
    #[error("malformed {header}: {reason}")]
    Malformed {
        /// The header at fault.
        header: &'static str,
        /// What form was expected.
        reason: &'static str,
    },
    /// A well-formed signature or token that matches none of the secrets.
    #[error("{0} does not match")]
    Mismatch(&'static str),
    /// The signed timestamp is too far from now (a replay, or a bad clock).
    #[error("webhook-timestamp is more than five minutes away from the current time")]
    StaleTimestamp,
    /// The token has no usable secret: it is misconfigured, never open.
    #[error("the token has no usable secret")]
    NoSecret,
}

/// One signature header and how to check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// `sha256=<hex HMAC-SHA256>`, as GitHub, Forgejo and Discourse send.
    PrefixedSha256(&'static str),
    /// `sha1=<hex HMAC-SHA1>` (GitHub's and Forgejo's legacy header).
    PrefixedSha1(&'static str),
    /// Bare hex HMAC-SHA256 (`X-Forgejo-Signature`, `X-Gitea-Signature`).
    BareSha256(&'static str),
    /// The secret itself, sent as a token (`X-Gitlab-Token`).
    Token(&'static str),
    /// Standard Webhooks: `webhook-signature: v1,<base64>` over
    /// `<webhook-id>.<webhook-timestamp>.<body>`, as GitLab signs.
    StandardWebhooks,
}

impl Check {
    fn header(self) -> &'static str {
        match self {
            Check::PrefixedSha256(h)
            | Check::PrefixedSha1(h)
            | Check::BareSha256(h)
            | Check::Token(h) => h,
            Check::StandardWebhooks => "webhook-signature",
        }
    }
}

/// A service's signature policy: the headers it may send, and those of
/// which at least one must be present.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Every header the service may sign with; each one present is checked.
    pub checks: &'static [Check],
    /// Names of headers of which one is required, for the error message.
    pub required: &'static str,
    /// Whether a check counts towards "at least one present".
    pub is_required: fn(Check) -> bool,
}

/// Verifies a delivery under a policy with the token's secrets.
///
/// `now` is the receiver's clock in Unix seconds, used only by timestamped
/// schemes.
pub fn verify(
    policy: &Policy,
    delivery: &Delivery,
    secrets: &[Secret],
    now: i64,
) -> Result<(), SignatureError> {
    let present = parse_headers(policy, delivery, now)?;
    let mut usable = secrets.iter().filter(|s| !s.is_empty()).peekable();
    if usable.peek().is_none() {
        return Err(SignatureError::NoSecret);
    }
    // Report the first header that no secret satisfies.
    let mut first_failure = None;
    // A SHA-1 MAC beside a SHA-256 one: both are needed, and they are
    // cheaper computed together.
    let sha1 = |check: &Check| matches!(check, Check::PrefixedSha1(_));
    let both = present.iter().any(|(check, _)| sha1(check))
        && present
            .iter()
            .any(|(check, parsed)| !sha1(check) && matches!(parsed, Parsed::Mac(_)));
    for secret in usable {
        let mut macs = Macs::new(secret, delivery.body());
        if both {
            macs.pair();
        }
        match present
            .iter()
            .find(|(check, parsed)| !matches(*check, parsed, &mut macs, delivery))
        {
            None => return Ok(()),
            Some((check, _)) => {
                first_failure.get_or_insert(check.header());
            }
        }
    }
    Err(SignatureError::Mismatch(
        first_failure.unwrap_or("signature"),
    ))
}

/// Checks what [`verify`] checks of the headers alone: that a required
/// signature header is present, that each one present is well formed and
/// sent once, and that a signed timestamp is recent. Neither the body nor
/// a secret is needed, so a receiver can refuse such a delivery before
/// reading its body.
pub fn check_headers(policy: &Policy, delivery: &Delivery, now: i64) -> Result<(), SignatureError> {
    parse_headers(policy, delivery, now).map(drop)
}

/// Parses every signature header of the policy: a malformed or duplicated
/// header is refused whatever the secrets are.
fn parse_headers(
    policy: &Policy,
    delivery: &Delivery,
    now: i64,
) -> Result<Vec<(Check, Parsed)>, SignatureError> {
    let mut present = Vec::with_capacity(policy.checks.len());
    for &check in policy.checks {
        if let Some(parsed) = parse(check, delivery, now)? {
            present.push((check, parsed));
        }
    }
    if present
        .iter()
        .any(|(check, _)| (policy.is_required)(*check))
    {
        Ok(present)
    } else {
        Err(missing(policy, &present))
    }
}

fn missing(policy: &Policy, present: &[(Check, Parsed)]) -> SignatureError {
    let sha1_only = present
        .iter()
        .any(|(check, _)| matches!(check, Check::PrefixedSha1(_)));
    if sha1_only {
        SignatureError::Sha1Only
    } else {
        SignatureError::MissingSignature(policy.required)
    }
}

/// A signature header, decoded but not yet compared.
enum Parsed {
    Mac(Vec<u8>),
    Token(String),
    Signed {
        prefix: Vec<u8>,
        signatures: Vec<Vec<u8>>,
    },
}

fn single<'a>(
    delivery: &'a Delivery,
    name: &'static str,
) -> Result<Option<&'a str>, SignatureError> {
    delivery
        .header(name)
        .map_err(|_| SignatureError::DuplicateHeader(name))
}

fn parse(check: Check, delivery: &Delivery, now: i64) -> Result<Option<Parsed>, SignatureError> {
    let name = check.header();
    let Some(value) = single(delivery, name)? else {
        return Ok(None);
    };
    let parsed = match check {
        Check::PrefixedSha256(_) => Parsed::Mac(hex_mac(name, value, "sha256=", 32)?),
        Check::PrefixedSha1(_) => Parsed::Mac(hex_mac(name, value, "sha1=", 20)?),
        Check::BareSha256(_) => Parsed::Mac(hex_mac(name, value, "", 32)?),
        Check::Token(_) if value.is_empty() => {
            return Err(SignatureError::Malformed {
                header: name,
                reason: "empty token",
            });
        }
        Check::Token(_) => Parsed::Token(value.to_string()),
        Check::StandardWebhooks => standard_webhooks(delivery, value, now)?,
    };
    Ok(Some(parsed))
}

fn hex_mac(
    header: &'static str,
    value: &str,
    prefix: &str,
    len: usize,
) -> Result<Vec<u8>, SignatureError> {
    let malformed = |reason| SignatureError::Malformed { header, reason };
    let digits = if prefix.is_empty() {
        value
    } else {
        value
            .strip_prefix(prefix)
            .ok_or(malformed("expected an algorithm prefix such as sha256="))?
    };
    if digits.len() != len * 2 {
        return Err(malformed("wrong digest length"));
    }
    hex::decode(digits).map_err(|_| malformed("digest is not hexadecimal"))
}

fn standard_webhooks(delivery: &Delivery, value: &str, now: i64) -> Result<Parsed, SignatureError> {
    let malformed = |header, reason| SignatureError::Malformed { header, reason };
    let id = single(delivery, "webhook-id")?.ok_or(malformed("webhook-id", "missing"))?;
    let timestamp =
        single(delivery, "webhook-timestamp")?.ok_or(malformed("webhook-timestamp", "missing"))?;
    let seconds: i64 = timestamp
        .parse()
        .map_err(|_| malformed("webhook-timestamp", "not a number of seconds"))?;
    if now.abs_diff(seconds) > TIMESTAMP_TOLERANCE_SECS as u64 {
        return Err(SignatureError::StaleTimestamp);
    }

    // Several space-separated signatures may be sent while the sender
    // rotates its key; only the `v1` (HMAC-SHA256) ones are ours to check.
    let signatures: Vec<Vec<u8>> = value
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .map(|b64| base64::engine::general_purpose::STANDARD.decode(b64))
        .collect::<Result<_, _>>()
        .map_err(|_| malformed("webhook-signature", "signature is not base64"))?;
    if signatures.is_empty() {
        return Err(malformed("webhook-signature", "expected v1,<base64>"));
    }
    let mut prefix = Vec::with_capacity(id.len() + timestamp.len() + 2);
    prefix.extend_from_slice(id.as_bytes());
    prefix.push(b'.');
    prefix.extend_from_slice(timestamp.as_bytes());
    prefix.push(b'.');
    Ok(Parsed::Signed { prefix, signatures })
}

/// The MACs of a body under one secret, each computed at most once: senders
/// often repeat one HMAC-SHA256 under several header names.
struct Macs<'a> {
    secret: &'a Secret,
    body: &'a [u8],
    sha256: Option<[u8; 32]>,
    sha1: Option<[u8; 20]>,
}

/// The block size of SHA-256 and of SHA-1.
const BLOCK: usize = 64;

impl<'a> Macs<'a> {
    fn new(secret: &'a Secret, body: &'a [u8]) -> Self {
        Self {
            secret,
            body,
            sha256: None,
            sha1: None,
        }
    }

    fn key(&self) -> &'a [u8] {
        self.secret.expose().as_bytes()
    }

    fn sha256(&mut self) -> &[u8] {
        let (key, body) = (self.key(), self.body);
        self.sha256
            .get_or_insert_with(|| hmac_sha256(key, body).finalize().into_bytes().into())
    }

    fn sha1(&mut self) -> &[u8] {
        let (key, body) = (self.key(), self.body);
        self.sha1
            .get_or_insert_with(|| hmac_sha1(key, body).finalize().into_bytes().into())
    }

    /// Both MACs, fed the body one block at a time in turn.
    ///
    /// Each compression function is one long chain of dependent
    /// instructions. Blocks of the two hashes are independent, so the
    /// processor runs one hash's block while the other's waits on its
    /// chain, and the pair costs about three quarters of the two computed
    /// one after the other.
    fn pair(&mut self) {
        let key = self.key();
        let (mut sha256, mut sha1) = (hmac_sha256(key, &[]), hmac_sha1(key, &[]));
        for block in self.body.chunks(BLOCK) {
            sha256.update(block);
            sha1.update(block);
        }
        self.sha256 = Some(sha256.finalize().into_bytes().into());
        self.sha1 = Some(sha1.finalize().into_bytes().into());
    }
}

fn matches(check: Check, parsed: &Parsed, macs: &mut Macs<'_>, delivery: &Delivery) -> bool {
    match (check, parsed) {
        // `ct_eq` on slices of different lengths is false; `parse` has
        // checked the lengths anyway.
        (Check::PrefixedSha1(_), Parsed::Mac(mac)) => bool::from(macs.sha1().ct_eq(mac)),
        (_, Parsed::Mac(mac)) => bool::from(macs.sha256().ct_eq(mac)),
        (_, Parsed::Token(token)) => {
            // Hashing first gives equal lengths, so the comparison leaks
            // nothing about the secret's length either.
            let sent = Sha256::digest(token.as_bytes());
            let expected = Sha256::digest(macs.key());
            bool::from(sent.ct_eq(&expected))
        }
        (_, Parsed::Signed { prefix, signatures }) => {
            let key = standard_webhooks_key(macs.secret.expose());
            signatures.iter().any(|sig| {
                let mut hmac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key");
                hmac.update(prefix);
                hmac.update(delivery.body());
                hmac.verify_slice(sig).is_ok()
            })
        }
    }
}

/// Standard Webhooks secrets are `whsec_<base64 key>`; anything else, and
/// a `whsec_` whose key would be empty, is taken as the key's bytes, so
/// that no secret ever gives the empty key anyone can sign with.
fn standard_webhooks_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .filter(|key| !key.is_empty())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

fn hmac_sha256(key: &[u8], body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of every length, so this cannot fail.
    let mut hmac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    hmac.update(body);
    hmac
}

fn hmac_sha1(key: &[u8], body: &[u8]) -> HmacSha1 {
    let mut hmac = HmacSha1::new_from_slice(key).expect("HMAC takes keys of any length");
    hmac.update(body);
    hmac
}

/// Lower-case hex HMAC-SHA256 of `body` under `key`, as senders compute it.
pub fn sign_hex(key: &[u8], body: &[u8]) -> String {
    hex::encode(hmac_sha256(key, body).finalize().into_bytes())
}

/// Lower-case hex HMAC-SHA1 of `body` under `key` (legacy `sha1=` headers).
pub fn sign_sha1_hex(key: &[u8], body: &[u8]) -> String {
    hex::encode(hmac_sha1(key, body).finalize().into_bytes())
}

/// The Standard Webhooks `v1,<base64>` signature of a delivery.
pub fn sign_standard_webhooks(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = standard_webhooks_key(secret);
    let mut hmac = HmacSha256::new_from_slice(&key).expect("HMAC takes keys of any length");
    hmac.update(format!("{id}.{timestamp}.").as_bytes());
    hmac.update(body);
    let mac = hmac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac)
    )
}
