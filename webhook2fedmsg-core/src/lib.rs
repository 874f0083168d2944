//! Verify webhook deliveries and turn them into Fedora Messaging messages.
//!
//! This crate is the part of webhook2fedmsg that does no I/O: given the
//! headers and the exact body bytes of a webhook delivery, it checks the
//! signature against a token's secrets ([`signature`]), decodes the payload
//! and derives the event, topic and agent identity ([`service`]), and builds
//! the fedora-messaging [`Message`] a consumer will read ([`message`]). The
//! JSON Schemas of the published bodies come from [`schema`].
//!
//! What a host must provide, such as mapping an account on a forge to a
//! Fedora account, is described by the async traits in [`agent`]. Storage,
//! HTTP and the message broker are left to the host (the
//! `webhook2fedmsg-server` crate is one).
//!
//! ```
//! use webhook2fedmsg_core::{Delivery, Secret, service::Kind};
//!
//! let body = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
//! let secret = Secret::new("s3cret");
//! let signature = webhook2fedmsg_core::signature::sign_hex(secret.expose().as_bytes(), body);
//! let delivery = Delivery::new(
//!     [
//!         ("X-GitHub-Event", "ping".to_string()),
//!         ("X-Hub-Signature-256", format!("sha256={signature}")),
//!         ("Content-Type", "application/json".to_string()),
//!     ],
//!     body.to_vec(),
//! );
//! let service = Kind::Github.service();
//! service.verify(&delivery, &[secret], 0).unwrap();
//! let event = service.decode(&delivery, &Default::default()).unwrap();
//! assert_eq!(event.topic(), "github.ping");
//! assert!(event.skip().is_some(), "pings are not published");
//! ```

pub mod agent;
pub mod delivery;
pub mod event;
pub mod message;
pub mod recording;
pub mod schema;
pub mod secret;
pub mod service;
pub mod signature;
mod strict;
pub mod topic;

pub use delivery::{Delivery, DeliveryError};
pub use event::{Event, Identity, SkipReason};
pub use message::Message;
pub use secret::Secret;
pub use service::{Context, Kind, Service, UnknownService};
pub use signature::SignatureError;
