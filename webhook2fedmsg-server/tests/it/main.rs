//! Integration tests of the server crate.

mod agents;
mod broker;
mod durability;
mod hooks;
mod publish;
mod server;
mod support;
