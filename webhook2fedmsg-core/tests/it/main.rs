//! Integration tests of webhook2fedmsg-core: every recorded delivery, and
//! the failure cases of signatures and payloads.

mod fixtures;
mod interop;
mod payloads;
mod schemas;
mod signatures;
mod support;
