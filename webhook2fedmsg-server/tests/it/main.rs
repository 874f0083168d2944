//! Integration tests of the server crate.
#![allow(clippy::unwrap_used)] // a test may panic on what it does not expect

mod agents;
mod api;
mod broker;
mod browser;
mod cli;
mod config;
mod durability;
mod hooks;
mod login;
mod publish;
mod server;
mod site;
mod support;
mod web;
