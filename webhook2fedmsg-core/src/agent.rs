//! Mapping the account that caused an event to a Fedora username.
//!
//! The core only reports an [`Identity`] (a login on some service); whether
//! and how it becomes a Fedora account is the host's business, through
//! [`AgentResolver`]. A resolver must never fail a delivery: any problem
//! means "unknown", and the message goes out with `agent: null`.

use async_trait::async_trait;

use crate::Identity;

/// Resolves a service account to the Fedora username linked to it.
#[async_trait]
pub trait AgentResolver: Send + Sync {
    /// The Fedora username provably linked to `identity`, or `None` when
    /// there is none, it is ambiguous, or the lookup failed.
    async fn resolve(&self, identity: &Identity) -> Option<String>;
}

/// A resolver that knows nobody: every agent is `null`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAgents;

#[async_trait]
impl AgentResolver for NoAgents {
    async fn resolve(&self, _identity: &Identity) -> Option<String> {
        None
    }
}
