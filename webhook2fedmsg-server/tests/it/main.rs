//! Integration tests of the server crate.

mod publish;
mod support;
