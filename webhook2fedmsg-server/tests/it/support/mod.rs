//! Helpers shared by the integration tests.

pub mod broker;
pub mod logs;
pub mod proxy;
