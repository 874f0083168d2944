//! Every recorded delivery under `fixtures/` becomes the message in its
//! snapshot; skipped events snapshot their reason.

use serde_json::{Value, json};
use webhook2fedmsg_core::Secret;

use crate::support::{self, SECRET};

#[test]
fn every_fixture_converts_to_its_snapshot() {
    insta::glob!("../../../fixtures", "*/*.json", |path| {
        let kind = support::kind_of(path);
        let delivery = support::signed(path);
        let service = kind.service();
        service
            .verify(&delivery, &[Secret::new(SECRET)], support::NOW)
            .expect("fixture verifies with the secret it was signed with");
        let event = service
            .decode(&delivery, &support::context())
            .expect("fixture decodes");

        let snapshot = match event.skip() {
            Some(reason) => json!({
                "topic": event.topic(),
                "skipped": reason.code(),
                "identity": event.identity().map(|i| format!("{}:{}", i.service, i.login)),
            }),
            None => {
                let identity = event
                    .identity()
                    .map(|i| format!("{}:{}", i.service, i.login));
                let message = support::convert(kind, &delivery, None).expect("published");
                let mut dump: Value =
                    serde_json::from_str(&message.dump_line("")).expect("dump is JSON");
                dump["identity"] = json!(identity);
                dump
            }
        };
        insta::assert_json_snapshot!(snapshot, {
            ".id" => "[id]",
            ".headers[\"sent-at\"]" => "[sent-at]",
        });
    });
}
