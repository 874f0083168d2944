//! Distinct, signed copies of one recorded GitHub push.
//!
//! The server remembers each delivery id and each body digest per token,
//! so a load of identical requests would be all duplicates after the
//! first. Every copy here gets its own `X-GitHub-Delivery` (a UUIDv4) and
//! its own `after` commit id (40 hex digits: a per-run nonce, then the
//! copy's number), and is signed over its exact bytes with HMAC-SHA256
//! (`X-Hub-Signature-256`) and HMAC-SHA1 (`X-Hub-Signature`). The body is
//! serialised once; each copy overwrites the 40 digits in place, so the
//! copies have the size of the fixture's compact form.

use std::path::Path;

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use webhook2fedmsg_core::recording::{COMPUTE, Recording};
use webhook2fedmsg_core::signature::{sign_hex, sign_sha1_hex};

/// Stands in for the `after` commit id while the body is serialised.
const MARKER: &str = "feedfacefeedfacefeedfacefeedfacefeedface";

/// One request's worth of a push: its body and the headers that differ
/// from one copy to the next.
#[derive(Debug, Clone)]
pub struct Push {
    /// The exact bytes sent.
    pub body: Bytes,
    /// `X-GitHub-Delivery`.
    pub delivery: HeaderValue,
    /// `X-Hub-Signature-256`: `sha256=<hex>`.
    pub sha256: HeaderValue,
    /// `X-Hub-Signature`: `sha1=<hex>`.
    pub sha1: HeaderValue,
}

/// A recorded push ready to be copied.
#[derive(Debug, Clone)]
pub struct Template {
    /// The recorded headers that every copy shares (signatures and the
    /// delivery id left out), plus `Content-Type`.
    pub headers: HeaderMap,
    body: Vec<u8>,
    /// Where the 40 digits of `after` start in `body`.
    after_at: usize,
}

impl Template {
    /// Reads a recorded GitHub push (`{"headers", "body"}`), which must
    /// have an `after` commit id.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let recording = Recording::from_json(&text)
            .with_context(|| format!("{} is not a recorded delivery", path.display()))?;

        let mut payload: serde_json::Value =
            serde_json::from_slice(&recording.body).context("the body is not JSON")?;
        let Some(after) = payload.get_mut("after") else {
            bail!("{} has no `after` field: not a push", path.display());
        };
        *after = MARKER.into();
        let body = serde_json::to_vec(&payload)?;
        let hits = body
            .windows(MARKER.len())
            .filter(|w| *w == MARKER.as_bytes());
        ensure!(
            hits.count() == 1,
            "the body holds the marker more than once"
        );
        let after_at = find(&body, MARKER.as_bytes()).context("marker lost")?;

        let mut headers = HeaderMap::new();
        for (name, value) in &recording.headers {
            let lower = name.to_ascii_lowercase();
            if value == COMPUTE || lower == "x-github-delivery" {
                continue;
            }
            headers.append(
                HeaderName::from_bytes(lower.as_bytes())?,
                HeaderValue::from_str(value)?,
            );
        }
        Ok(Self {
            headers,
            body,
            after_at,
        })
    }

    /// Size of every copy's body in bytes.
    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    /// Copy number `index` of run `nonce`, signed with `secret`.
    pub fn copy(&self, nonce: u64, index: u64, secret: &str) -> Push {
        let mut body = self.body.clone();
        let digits = format!("{nonce:016x}{index:024x}");
        body[self.after_at..self.after_at + 40].copy_from_slice(digits.as_bytes());

        let key = secret.as_bytes();
        let header = |text: String| HeaderValue::try_from(text).expect("hex and ascii only");
        Push {
            sha256: header(format!("sha256={}", sign_hex(key, &body))),
            sha1: header(format!("sha1={}", sign_sha1_hex(key, &body))),
            delivery: header(uuid::Uuid::new_v4().to_string()),
            body: Bytes::from(body),
        }
    }

    /// `count` copies, signed on `threads` threads.
    pub fn copies(&self, count: u64, secret: &str, threads: usize) -> Vec<Push> {
        let nonce: u64 = rand::random();
        let threads = threads.max(1) as u64;
        let per_thread = count.div_ceil(threads);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let range = (t * per_thread)..((t + 1) * per_thread).min(count);
                    scope.spawn(move || {
                        range
                            .map(|i| self.copy(nonce, i, secret))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("signing does not panic"))
                .collect()
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use webhook2fedmsg_core::signature::sign_hex;

    use super::*;

    fn template() -> Template {
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/github/push.new-branch.json"
        );
        Template::from_file(Path::new(fixture)).expect("the fixture is a push")
    }

    #[test]
    fn copies_differ_in_body_and_delivery_id_and_verify() {
        let template = template();
        let copies = template.copies(50, "s3cret", 2);
        assert_eq!(copies.len(), 50);
        let bodies: HashSet<_> = copies.iter().map(|p| p.body.clone()).collect();
        let ids: HashSet<_> = copies.iter().map(|p| p.delivery.clone()).collect();
        assert_eq!((bodies.len(), ids.len()), (50, 50));
        for push in &copies {
            assert_eq!(push.body.len(), template.body_len());
            let expected = format!("sha256={}", sign_hex(b"s3cret", &push.body));
            assert_eq!(push.sha256.to_str().expect("ascii"), expected);
            let json: serde_json::Value = serde_json::from_slice(&push.body).expect("json");
            assert_eq!(json["after"].as_str().map(str::len), Some(40));
        }
    }

    #[test]
    fn shared_headers_leave_out_what_each_copy_sets() {
        let headers = template().headers;
        assert_eq!(headers["x-github-event"], "push");
        assert!(!headers.contains_key("x-github-delivery"));
        assert!(!headers.contains_key("x-hub-signature-256"));
    }
}
