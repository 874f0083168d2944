//! Configuration: one struct per section, read once and checked before the
//! server binds anything.
//!
//! Values come from a TOML file (`--config FILE` or `WEBHOOK2FEDMSG_CONFIG`)
//! and from the environment: `WEBHOOK2FEDMSG_` followed by the key, `__`
//! between nested keys (`WEBHOOK2FEDMSG_DATABASE__URL`). The environment
//! wins. Every key has a default, so the server starts with no file at all:
//! SQLite in the working directory, listening on 127.0.0.1:8080, messages
//! written to a file instead of a broker. `config.example.toml` beside this
//! crate documents every key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port to listen on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// The base of every webhook URL shown to users, as the sending
    /// services reach us (`https://webhook.fedoraproject.org`). Never
    /// taken from request headers. Default `http://<listen>`.
    pub public_url: Option<String>,
    /// Where tokens, sessions and the outbox live.
    pub database: DatabaseConfig,
    /// The RabbitMQ broker; without `url`, messages go to the file sink.
    pub amqp: AmqpConfig,
    /// The file sink used when no broker is configured.
    pub sink: SinkConfig,
    /// Encryption of token secrets at rest.
    pub secrets: SecretsConfig,
    /// Limits on what senders may send.
    pub limits: LimitsConfig,
    /// Recognising redeliveries and replays.
    pub dedupe: DedupeConfig,
    /// FASJSON, for mapping forge accounts to Fedora accounts.
    pub fasjson: FasjsonConfig,
    /// FAS login (OpenID Connect).
    pub oidc: OidcConfig,
    /// The web pages and the JSON API.
    pub web: WebConfig,
    /// Log output.
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            database: DatabaseConfig::default(),
            amqp: AmqpConfig::default(),
            sink: SinkConfig::default(),
            secrets: SecretsConfig::default(),
            limits: LimitsConfig::default(),
            dedupe: DedupeConfig::default(),
            fasjson: FasjsonConfig::default(),
            oidc: OidcConfig::default(),
            web: WebConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (created if missing) or `postgres://...`.
    /// Default `sqlite://webhook2fedmsg.db` in the working directory.
    pub url: Sensitive,
    /// Connections in the pool. Default 4: a webhook reads once, and the
    /// writes of the webhook path go through one connection at a time
    /// (on SQLite each connection is also a thread and a page cache).
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: Sensitive("sqlite://webhook2fedmsg.db".into()),
            max_connections: 4,
        }
    }
}

/// `[amqp]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmqpConfig {
    /// `amqp://user:pass@host:5672/%2f` or `amqps://...`. Unset: no
    /// broker, messages are written to the file sink.
    pub url: Option<Sensitive>,
    /// Exchange to publish to; it must exist (declared passively).
    /// Default `amq.topic`.
    pub exchange: String,
    /// Prepended to every topic with one dot, whether or not it ends with
    /// one (`org.fedoraproject.prod`): words of letters, digits, `_` and
    /// `-` joined by dots. Default empty.
    pub topic_prefix: String,
    /// PEM file of the CA that signed the broker's certificate (amqps).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for EXTERNAL authentication (amqps).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            url: None,
            exchange: "amq.topic".into(),
            topic_prefix: String::new(),
            ca_file: None,
            cert_file: None,
            key_file: None,
        }
    }
}

/// `[sink]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    /// File that receives one fedora-messaging dump line per message when
    /// no broker is configured. Default `messages.jsonl`.
    pub path: PathBuf,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            path: "messages.jsonl".into(),
        }
    }
}

/// `[secrets]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// The 32-byte key that encrypts token secrets, as 64 hex digits
    /// (better set from the environment: `WEBHOOK2FEDMSG_SECRETS__KEY`).
    pub key: Option<Sensitive>,
    /// A file holding that key (64 hex digits). When neither is set, a
    /// development key is generated in `webhook2fedmsg-dev.key` on first
    /// start, with a warning.
    pub key_file: Option<PathBuf>,
}

/// `[limits]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest webhook body accepted, in bytes; larger ones get 413 before
    /// they are read whole. Default 25 MiB, GitHub's own cap.
    pub max_body_bytes: u64,
    /// How long a webhook's body may take to arrive whole, in seconds;
    /// slower ones get 408. Default 60 (senders such as GitHub give up on
    /// the whole delivery after 10).
    pub body_timeout_seconds: u64,
    /// How long a client may take to send a request's headers, in
    /// seconds, counted from when the server starts waiting for them (so
    /// it also ends idle keep-alive connections); the connection is closed
    /// after that. Default 30.
    pub header_timeout_seconds: u64,
    /// The most client connections open at once; past it, new ones wait
    /// in the listen backlog until one closes. Default 1024.
    pub max_connections: u32,
    /// The most bytes of webhook bodies held at once, from before a body
    /// is read until it is stored; a webhook that finds no room for its
    /// body within a few seconds gets 503 with `Retry-After`. At least
    /// `max_body_bytes`. Default 256 MiB.
    pub max_inflight_body_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 25 * 1024 * 1024,
            body_timeout_seconds: 60,
            header_timeout_seconds: 30,
            max_connections: 1024,
            max_inflight_body_bytes: 256 * 1024 * 1024,
        }
    }
}

/// `[dedupe]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DedupeConfig {
    /// How long a delivery is remembered, in hours: a redelivery (same
    /// delivery id) or replay (same body) on the same token within this
    /// window publishes nothing new. Default 168 (a week). After it, the
    /// digest of a published body is still kept, until its token is
    /// removed: that body stays a duplicate.
    pub retention_hours: u64,
}

impl Default for DedupeConfig {
    fn default() -> Self {
        Self {
            retention_hours: 168,
        }
    }
}

/// `[fasjson]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FasjsonConfig {
    /// Base URL of FASJSON (`https://fasjson.fedoraproject.org`). Unset:
    /// no lookups, every agent is null.
    pub url: Option<String>,
    /// Give up on a lookup after this many milliseconds. Default 1500.
    pub timeout_ms: u64,
    /// Keep answers (found or not) this many seconds. Default 3600.
    pub cache_seconds: u64,
}

impl Default for FasjsonConfig {
    fn default() -> Self {
        Self {
            url: None,
            timeout_ms: 1500,
            cache_seconds: 3600,
        }
    }
}

/// `[oidc]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// The issuer URL; discovery is read from it
    /// (`https://id.fedoraproject.org/openidc`). Unset: login is disabled.
    pub provider_url: Option<String>,
    /// The client id registered with the provider.
    pub client_id: Option<String>,
    /// The client secret registered with the provider.
    pub client_secret: Option<Sensitive>,
    /// Members of this group (from the groups claim) administer every
    /// token. Unset: nobody does.
    pub admin_group: Option<String>,
    /// Scopes asked for at login, besides `openid`. Default `profile`,
    /// `email` and FAS's groups scope
    /// (`https://id.fedoraproject.org/scope/groups`).
    pub scopes: Vec<String>,
    /// How long an answer of the provider's userinfo endpoint to an access
    /// token sent as `Authorization: Bearer` is kept, in seconds. Default
    /// 300; 0 asks the provider on every request.
    pub access_token_cache_seconds: u64,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            provider_url: None,
            client_id: None,
            client_secret: None,
            admin_group: None,
            scopes: vec![
                "profile".into(),
                "email".into(),
                "https://id.fedoraproject.org/scope/groups".into(),
            ],
            access_token_cache_seconds: 300,
        }
    }
}

/// `[web]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Base URL of datagrepper (`https://apps.fedoraproject.org/datagrepper`):
    /// each delivery on the token pages then links to its message there.
    /// Unset: no links.
    pub datagrepper_url: Option<String>,
    /// How long a login lasts, in hours. Default 24.
    pub session_hours: u64,
    /// How many recent deliveries each token shows. Default 10.
    pub recent_deliveries: u32,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            datagrepper_url: None,
            session_hours: 24,
            recent_deliveries: 10,
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`. Default `text`.
    pub format: String,
    /// A tracing filter (`info`, `webhook2fedmsg_server=debug`). Default
    /// `info`; `RUST_LOG` overrides it.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            filter: "info".into(),
        }
    }
}

/// A configuration value that must not appear in logs: `Debug` hides it,
/// and URLs show no password.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Sensitive(pub String);

impl Sensitive {
    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// A URL with any password replaced by `***`; anything else is hidden
/// entirely.
pub fn redact_url(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return "<redacted>".into();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => value.to_string(),
    }
}

impl Config {
    /// Reads the configuration from `file` (or `WEBHOOK2FEDMSG_CONFIG`)
    /// and the environment, then checks it.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let from_env = std::env::var_os("WEBHOOK2FEDMSG_CONFIG").map(PathBuf::from);
        if let Some(path) = file.map(Path::to_path_buf).or(from_env) {
            if !path.exists() {
                bail!("configuration file {} does not exist", path.display());
            }
            figment = figment.merge(Toml::file(path));
        }
        let env = Env::prefixed("WEBHOOK2FEDMSG_")
            .ignore(&["CONFIG", "PYTHON"])
            .filter(|key| !key.as_str().starts_with("test_"))
            .split("__");
        let config: Config = figment
            .merge(env)
            .extract()
            .context("invalid configuration")?;
        config.check()?;
        Ok(config)
    }

    /// Checks values that parse but cannot work, naming the key at fault.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("public_url must start with http:// or https://");
            }
        }
        let db = self.database.url.expose();
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            bail!("database.url must be sqlite://PATH or postgres://...");
        }
        if let Some(url) = &self.amqp.url {
            let url = url.expose();
            if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
                bail!("amqp.url must start with amqp:// or amqps://");
            }
        }
        if self.amqp.cert_file.is_some() != self.amqp.key_file.is_some() {
            bail!("amqp.cert_file and amqp.key_file must be set together");
        }
        if self.limits.max_body_bytes == 0 {
            bail!("limits.max_body_bytes must be positive");
        }
        if self.limits.max_inflight_body_bytes < self.limits.max_body_bytes {
            bail!("limits.max_inflight_body_bytes must be at least limits.max_body_bytes");
        }
        if self.limits.body_timeout_seconds == 0 {
            bail!("limits.body_timeout_seconds must be positive");
        }
        if self.limits.header_timeout_seconds == 0 {
            bail!("limits.header_timeout_seconds must be positive");
        }
        if !is_topic_prefix(&self.amqp.topic_prefix) {
            bail!(
                "amqp.topic_prefix must be words of letters, digits, _ and - joined by dots, \
                 such as org.fedoraproject.prod: no wildcards, spaces or empty words"
            );
        }
        if self.limits.max_connections == 0 {
            bail!("limits.max_connections must be positive");
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            bail!("log.format must be text or json");
        }
        let oidc = [
            self.oidc.provider_url.is_some(),
            self.oidc.client_id.is_some(),
            self.oidc.client_secret.is_some(),
        ];
        if oidc.iter().any(|set| *set) && !oidc.iter().all(|set| *set) {
            bail!("oidc.provider_url, oidc.client_id and oidc.client_secret must be set together");
        }
        self.check_web()
    }

    fn check_web(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.oidc.provider_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("oidc.provider_url must start with http:// or https://");
            }
        }
        if let Some(url) = &self.web.datagrepper_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("web.datagrepper_url must start with http:// or https://");
            }
        }
        if self.web.session_hours == 0 {
            bail!("web.session_hours must be positive");
        }
        if self.web.recent_deliveries == 0 || self.web.recent_deliveries > 100 {
            bail!("web.recent_deliveries must be between 1 and 100");
        }
        Ok(())
    }

    /// Whether the public URL is https, so that cookies must be `Secure`.
    pub fn is_https(&self) -> bool {
        self.public_base().starts_with("https://")
    }

    /// The origin (scheme, host and port) of the public URL, as browsers
    /// send it in `Origin`.
    pub fn public_origin(&self) -> String {
        let base = self.public_base();
        let after_scheme = base.find("://").map_or(0, |i| i + 3);
        match base[after_scheme..].find('/') {
            Some(slash) => base[..after_scheme + slash].to_string(),
            None => base,
        }
    }

    /// The base of webhook URLs, without a trailing slash.
    pub fn public_base(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.listen),
        }
    }

    /// Why the hook URLs shown would not reach this server, when they
    /// are built from a `listen` address on every interface (`0.0.0.0`
    /// or `[::]`), which no sender can post to.
    pub fn hook_url_problem(&self) -> Option<String> {
        (self.public_url.is_none() && self.listen.ip().is_unspecified()).then(|| {
            format!(
                "public_url is unset and listen ({}) names no host: hook URLs start with \
                 {}, which no sender can reach; set public_url to this server's address",
                self.listen,
                self.public_base()
            )
        })
    }

    /// The URL a sender posts to for a token.
    pub fn hook_url(&self, service: &str, hook_id: &str) -> String {
        format!("{}/{service}/{hook_id}", self.public_base())
    }
}

/// Whether `prefix` may lead routing keys: empty, or words joined by dots,
/// with one trailing dot allowed (it is applied once either way).
fn is_topic_prefix(prefix: &str) -> bool {
    if prefix.is_empty() {
        return true;
    }
    let prefix = prefix.strip_suffix('.').unwrap_or(prefix);
    prefix.split('.').all(|word| {
        !word.is_empty()
            && word
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_password() {
        let url = Sensitive("amqps://fedora:hunter2@broker.example.org/%2f".into());
        let shown = format!("{url:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("broker.example.org"));
    }

    #[test]
    fn defaults_pass_the_checks() {
        Config::default().check().unwrap();
    }

    #[test]
    fn topic_prefixes_are_words_joined_by_dots() {
        let mut config = Config::default();
        for good in [
            "",
            "org.fedoraproject.prod",
            "org.fedoraproject.prod.",
            "io-x.a_1",
        ] {
            config.amqp.topic_prefix = good.into();
            assert!(config.check().is_ok(), "{good:?}");
        }
        for bad in [".", ".lead", "a..b", "x..", "a b", "a.#", "a.*.b", "é"] {
            config.amqp.topic_prefix = bad.into();
            let error = config.check().unwrap_err().to_string();
            assert!(error.contains("amqp.topic_prefix"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn public_origin_drops_the_path() {
        let mut config = Config {
            public_url: Some("https://example.org:8443/webhooks/".into()),
            ..Config::default()
        };
        assert_eq!(config.public_origin(), "https://example.org:8443");
        assert!(config.is_https());
        config.public_url = Some("http://127.0.0.1:9".into());
        assert_eq!(config.public_origin(), "http://127.0.0.1:9");
        assert!(!config.is_https());
    }

    #[test]
    fn half_configured_login_is_refused() {
        let mut config = Config::default();
        config.oidc.provider_url = Some("http://127.0.0.1:1/".into());
        let error = config.check().unwrap_err().to_string();
        assert!(error.contains("oidc."), "{error}");
    }
}
