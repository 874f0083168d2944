//! Agents: mapping GitHub and GitLab accounts to Fedora accounts through
//! FASJSON.
//!
//! FAS users may record their GitHub and GitLab usernames; FASJSON's user
//! search finds the Fedora account that claims one. Forgejo and Gitea
//! logins are never looked up: on an open forge anyone can register any
//! name, and FAS records no link to them. Every failure (timeout, error,
//! several matches) means "unknown" and a warning; a webhook never fails
//! because of it. Answers are cached, found or not.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use webhook2fedmsg_core::Identity;
use webhook2fedmsg_core::agent::AgentResolver;

use crate::config::FasjsonConfig;

/// The most answers kept; the cache is cleared when it is full.
const MAX_CACHED: usize = 10_000;

/// Looks agents up in FASJSON.
#[derive(Debug)]
pub struct Fasjson {
    base: String,
    http: reqwest::Client,
    ttl: Duration,
    cache: Mutex<HashMap<Identity, (Instant, Option<String>)>>,
}

#[derive(Deserialize)]
struct SearchPage {
    result: Vec<SearchUser>,
}

#[derive(Deserialize)]
struct SearchUser {
    username: String,
}

impl Fasjson {
    /// A resolver for the FASJSON at `config.url`; `None` when unset.
    ///
    // TODO: Fedora's production FASJSON wants Kerberos (GSSAPI) credentials,
    // which this client cannot present; it works against a FASJSON reachable
    // without authentication (or through an authenticating proxy). Supporting
    // GSSAPI needs a Kerberos client library binding.
    pub fn from_config(config: &FasjsonConfig) -> anyhow::Result<Option<Self>> {
        let Some(base) = &config.url else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Some(Self {
            base: base.trim_end_matches('/').to_string(),
            http,
            ttl: Duration::from_secs(config.cache_seconds),
            cache: Mutex::new(HashMap::new()),
        }))
    }

    async fn search(&self, identity: &Identity) -> Result<Option<String>, String> {
        let field = match identity.service {
            "github" => "github_username",
            "gitlab" => "gitlab_username",
            _ => return Ok(None),
        };
        let url = format!("{}/v1/search/users/", self.base);
        let response = self
            .http
            .get(url)
            .query(&[(field, identity.login.as_str())])
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("FASJSON answered {}", response.status()));
        }
        let page: SearchPage = response
            .json()
            .await
            .map_err(|e| e.without_url().to_string())?;
        match page.result.as_slice() {
            [only] => Ok(Some(only.username.clone())),
            _ => Ok(None),
        }
    }

    fn cached(&self, identity: &Identity) -> Option<Option<String>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(identity)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, name)| name.clone())
    }
}

#[async_trait]
impl AgentResolver for Fasjson {
    async fn resolve(&self, identity: &Identity) -> Option<String> {
        if !matches!(identity.service, "github" | "gitlab") {
            return None;
        }
        if let Some(answer) = self.cached(identity) {
            return answer;
        }
        match self.search(identity).await {
            Ok(answer) => {
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
                cache.insert(identity.clone(), (Instant::now(), answer.clone()));
                answer
            }
            Err(error) => {
                tracing::warn!(agent.service = identity.service, %error, "FASJSON lookup failed; agent unknown");
                None
            }
        }
    }
}
