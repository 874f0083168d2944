//! Integration tests of webhook2fedmsg-core: every recorded delivery, and
//! the failure cases of signatures and payloads.
#![allow(clippy::unwrap_used)] // a test may panic on what it does not expect

mod fixtures;
mod interop;
mod payloads;
mod schemas;
mod signatures;
mod support;
