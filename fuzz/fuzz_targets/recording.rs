//! Reads arbitrary text as a recorded delivery, checking that reading,
//! signing and replaying it never panic, and that what replays decodes to
//! the same safe topics and readable messages as any other delivery.
//!
//! Fixture files under `fixtures/<service>/` are the natural seeds: each is
//! a recording as it is.

#![no_main]

use libfuzzer_sys::fuzz_target;
use webhook2fedmsg_core::Kind;
use webhook2fedmsg_core::recording::Recording;
use webhook2fedmsg_core::{Secret, SignatureError};
use webhook2fedmsg_fuzz::{NOW, SECRET, decode_all};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut recording) = Recording::from_json(text) else {
        return;
    };

    // Unsigned, `COMPUTE` is not a signature any service accepts.
    let delivery = recording.to_delivery();
    decode_all(&delivery);
    for kind in Kind::ALL {
        let result = kind
            .service()
            .verify(&delivery, &[Secret::new(SECRET)], NOW);
        let is_token = |t: &str| t == SECRET;
        let token_given = delivery.header_values("x-gitlab-token").any(is_token);
        if kind != Kind::Pretix && !(kind == Kind::Gitlab && token_given) {
            assert!(result.is_err(), "{kind} verified an unsigned recording");
        }
    }

    // Signed, it must at least not panic; whether it verifies depends on
    // which headers the recording has.
    recording.sign(SECRET);
    let signed = recording.to_delivery();
    for kind in Kind::ALL {
        let result = kind.service().verify(&signed, &[Secret::new(SECRET)], NOW);
        assert_ne!(result, Err(SignatureError::NoSecret), "{kind}");
    }
    decode_all(&signed);
});
