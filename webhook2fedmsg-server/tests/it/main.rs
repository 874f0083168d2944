//! Integration tests of the server crate.

mod hooks;
mod publish;
mod server;
mod support;
