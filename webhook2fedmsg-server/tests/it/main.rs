//! Integration tests of the server crate.

mod broker;
mod hooks;
mod publish;
mod server;
mod support;
