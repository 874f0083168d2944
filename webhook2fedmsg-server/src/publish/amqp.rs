//! Publishing to RabbitMQ with publisher confirms.
//!
//! [`AmqpPublisher`] holds one connection and one confirm-mode channel. Both
//! are opened on first use and opened again, on the next call, after any
//! connection or channel error; nothing runs in the background, so a broker
//! that is away costs one connection attempt per batch or readiness check
//! and the dispatcher's backoff sets the pace. A batch goes out in full
//! before its confirms are awaited.
//!
//! Messages go out as fedora-messaging publishes them: `content_type`
//! `application/json`, `content_encoding` `utf-8`, persistent, `message_id`
//! the message id, priority 0, and the headers typed as pika types them
//! (strings as long strings, integers as 32-bit integers when they fit,
//! booleans). Publishes carry no `mandatory` flag: like fedora-messaging we
//! publish to a topic exchange where nobody may be listening, and that is
//! not a failure.
//!
//! A message is refused for good ([`PublishError::Permanent`]) when the
//! broker nacks it or closes the channel over it (access refused, over the
//! broker's `max_message_size`). A channel closed by the broker fails every
//! message still waiting for its confirm, so the unconfirmed messages of such
//! a batch are sent again one at a time to find the one at fault. Anything
//! else (no connection, a broken connection, no confirm in time) is
//! [`PublishError::Transient`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::uri::{AMQPScheme, AMQPUri, SASLMechanism};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ConnectionStatus,
    ErrorKind, ExchangeKind, PublisherConfirm,
};
use tokio::sync::Mutex;
use tokio::time::{Instant, timeout, timeout_at};
use tracing::{debug, info, warn};
use webhook2fedmsg_core::message::HeaderValue;

use super::{Outgoing, PublishError, Publisher};

/// How to reach the broker and how long to wait for it.
#[derive(Clone)]
pub struct AmqpSettings {
    /// `amqp://user:password@host:5672/%2f` or `amqps://...`, with lapin's
    /// query parameters (`heartbeat=60`, `auth_mechanism=external`). The
    /// password never appears in `Debug` output or logs.
    pub url: String,
    /// The exchange to publish to. It must exist: it is declared passively.
    /// Default `amq.topic`.
    pub exchange: String,
    /// PEM file of the CAs that sign the broker's certificate. Required
    /// with `amqps://`: this build trusts no system certificates.
    pub ca_file: Option<PathBuf>,
    /// A client certificate (`amqps://` only). With one, and no
    /// `auth_mechanism` in the URL, the connection authenticates with
    /// EXTERNAL, as fedora-messaging does when it has a client certificate.
    pub identity: Option<ClientIdentity>,
    /// The longest a connection may take to open, TLS and the exchange
    /// check included. Default 10 s.
    pub connect_timeout: Duration,
    /// The longest a batch may take from its first publish to its last
    /// confirm. Default 30 s.
    pub confirm_timeout: Duration,
}

impl AmqpSettings {
    /// Settings for `url` with the defaults above.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            exchange: "amq.topic".into(),
            ca_file: None,
            identity: None,
            connect_timeout: Duration::from_secs(10),
            confirm_timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for AmqpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpSettings")
            .field("url", &redact_password(&self.url))
            .field("exchange", &self.exchange)
            .field("ca_file", &self.ca_file)
            .field("identity", &self.identity)
            .field("connect_timeout", &self.connect_timeout)
            .field("confirm_timeout", &self.confirm_timeout)
            .finish()
    }
}

/// The client certificate presented to the broker.
#[derive(Clone)]
pub enum ClientIdentity {
    /// A PEM certificate (chain) and its PEM private key (PKCS#8, PKCS#1
    /// or SEC1), as fedora-messaging's `certfile` and `keyfile`.
    Pem {
        /// The certificate, then any intermediates.
        cert_file: PathBuf,
        /// The private key, unencrypted.
        key_file: PathBuf,
    },
    /// A PKCS#12 (`.p12`, `.pfx`) bundle of key and certificates.
    Pkcs12 {
        /// The bundle.
        file: PathBuf,
        /// Its password; never shown by `Debug`.
        password: String,
    },
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pem {
                cert_file,
                key_file,
            } => f
                .debug_struct("Pem")
                .field("cert_file", cert_file)
                .field("key_file", key_file)
                .finish(),
            Self::Pkcs12 { file, .. } => f
                .debug_struct("Pkcs12")
                .field("file", file)
                .field("password", &"***")
                .finish(),
        }
    }
}

/// Why [`AmqpPublisher::new`] rejected its settings.
#[derive(Debug, thiserror::Error)]
pub enum AmqpSettingsError {
    /// The URL does not parse; the message never quotes it.
    #[error("amqp url is not valid: {0}")]
    InvalidUrl(String),
    /// lapin would connect to localhost instead of an IPv6 literal.
    #[error("amqp url: IPv6 address literals are not supported, use a host name")]
    Ipv6Host,
    /// `amqps://` without a CA file could verify no broker at all.
    #[error("amqps needs a CA file: this build trusts no system certificates")]
    MissingCaFile,
    /// A client certificate is only sent over TLS.
    #[error("a client certificate needs an amqps:// url")]
    IdentityWithoutTls,
    /// AMQP names are at most 255 bytes.
    #[error("exchange name is longer than 255 bytes")]
    ExchangeNameTooLong,
    /// A CA, certificate or key file could not be read.
    #[error("cannot read {path}: {source}")]
    UnreadableFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// Publishes to RabbitMQ; see the module documentation.
pub struct AmqpPublisher {
    target: Target,
    state: Mutex<State>,
    /// The status of the connection in use, for [`Publisher::is_ready`]
    /// while a batch holds `state`.
    status: StdMutex<Option<ConnectionStatus>>,
}

impl AmqpPublisher {
    /// Checks the settings and reads the TLS files; connects on first use.
    ///
    /// Fails on a URL that does not parse or names an IPv6 literal, on
    /// `amqps://` without `ca_file`, on a client identity without TLS, and
    /// on TLS files that cannot be read (they are read once, here).
    pub fn new(settings: AmqpSettings) -> Result<Self, AmqpSettingsError> {
        Ok(Self {
            target: Target::from_settings(settings)?,
            state: Mutex::new(State::default()),
            status: StdMutex::new(None),
        })
    }
}

impl fmt::Debug for AmqpPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpPublisher")
            .field("host", &self.target.uri.authority.host)
            .field("port", &self.target.uri.authority.port)
            .field("exchange", &self.target.exchange.as_str())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Publisher for AmqpPublisher {
    async fn publish(&self, batch: &[Outgoing]) -> Vec<Result<(), PublishError>> {
        if batch.is_empty() {
            return Vec::new();
        }
        let mut state = self.state.lock().await;
        let channel = match self.ensure_link(&mut state).await {
            Ok(link) => link.channel.clone(),
            Err(reason) => return vec![Err(PublishError::Transient(reason)); batch.len()],
        };

        let fates = self.target.send_batch(&channel, batch).await;
        self.settle(&mut state, batch, fates).await
    }

    async fn is_ready(&self) -> bool {
        match self.state.try_lock() {
            Ok(mut state) => self.ensure_link(&mut state).await.is_ok(),
            // A batch is under way: report the connection it is using.
            Err(_) => self
                .status
                .lock()
                .map(|status| status.as_ref().is_some_and(ConnectionStatus::connected))
                .unwrap_or(false),
        }
    }
}

impl AmqpPublisher {
    /// The open link, reopening the channel or the whole connection first
    /// if either is gone.
    async fn ensure_link<'a>(&self, state: &'a mut State) -> Result<&'a Link, String> {
        let connected = state
            .link
            .as_ref()
            .is_some_and(|link| link.connection.status().connected());
        if !connected {
            return self.reconnect(state).await;
        }

        // Only the channel is gone (the broker closed it over a message).
        let mut link = state.link.take().expect("checked to be some just above");
        if !link.channel.status().connected() {
            debug!("reopening the channel to the broker");
            match timeout(self.target.connect_timeout, self.target.open_channel(&link)).await {
                Ok(Ok(channel)) => link.channel = channel,
                Ok(Err(reason)) => return Err(self.lose(state, reason)),
                Err(_) => return Err(self.lose(state, "timed out reopening the channel".into())),
            }
        }
        Ok(state.link.insert(link))
    }

    async fn reconnect<'a>(&self, state: &'a mut State) -> Result<&'a Link, String> {
        if state.link.take().is_some() {
            let reason = state.broken.take();
            let reason = reason.as_deref().unwrap_or("the connection closed");
            warn!(
                error = reason,
                "connection to the broker lost, reconnecting"
            );
        }

        match timeout(self.target.connect_timeout, self.target.connect()).await {
            Ok(Ok(link)) => Ok(self.connected(state, link)),
            Ok(Err(reason)) => Err(self.lose(state, reason)),
            Err(_) => {
                let reason = "timed out connecting to the broker".to_string();
                Err(self.lose(state, reason))
            }
        }
    }

    fn connected<'a>(&self, state: &'a mut State, link: Link) -> &'a Link {
        if state.outage.take().is_some() {
            info!(amqp.host = %self.target.uri.authority.host, "connected to the broker again");
        }
        if let Ok(mut status) = self.status.lock() {
            *status = Some(link.connection.status().clone());
        }
        state.link.insert(link)
    }

    /// Records a failure to (re)connect, loudly only when an outage starts
    /// or its reason changes.
    fn lose(&self, state: &mut State, reason: String) -> String {
        state.link = None;
        if state.outage.as_ref() == Some(&reason) {
            debug!(error = %reason, "broker still unreachable");
        } else {
            warn!(
                amqp.host = %self.target.uri.authority.host,
                error = %reason,
                "cannot reach the broker"
            );
            state.outage = Some(reason.clone());
        }
        reason
    }

    /// Turns the fates of a batch into results, finding the messages at
    /// fault when the broker closed the channel.
    async fn settle(
        &self,
        state: &mut State,
        batch: &[Outgoing],
        fates: Vec<Fate>,
    ) -> Vec<Result<(), PublishError>> {
        let late = fates.iter().any(|fate| matches!(fate, Fate::Late));
        let refused = fates.iter().any(Fate::is_channel_refusal);
        if late {
            // The connection may be dead without knowing it: start afresh.
            state.link = None;
            state.broken = Some(self.target.late_reason());
        }

        let mut results = Vec::with_capacity(batch.len());
        for (message, fate) in batch.iter().zip(fates) {
            let result = match fate {
                Fate::Lost { .. } if refused && !late => self.isolate(state, message).await,
                fate => fate.into_result(&self.target),
            };
            if let Err(PublishError::Transient(reason)) = &result {
                state.broken.get_or_insert_with(|| reason.clone());
            }
            results.push(result);
        }
        results
    }

    /// Publishes one message on its own and awaits its confirm.
    async fn isolate(&self, state: &mut State, message: &Outgoing) -> Result<(), PublishError> {
        let channel = match self.ensure_link(state).await {
            Ok(link) => link.channel.clone(),
            Err(reason) => return Err(PublishError::Transient(reason)),
        };
        let deadline = Instant::now() + self.target.confirm_timeout;
        let sent = self.target.send(&channel, message, deadline).await;
        let fate = sent.confirmed(deadline).await;
        match fate {
            Fate::Lost {
                reason,
                refusal: true,
            } => Err(PublishError::Permanent(reason)),
            fate => fate.into_result(&self.target),
        }
    }
}

/// Where and how to connect, checked once.
struct Target {
    uri: AMQPUri,
    tls: OwnedTLSConfig,
    exchange: ShortString,
    connect_timeout: Duration,
    confirm_timeout: Duration,
}

impl Target {
    fn from_settings(settings: AmqpSettings) -> Result<Self, AmqpSettingsError> {
        let mut uri = parse_url(&settings.url)?;
        let tls = settings.tls_config()?;
        let is_tls = uri.scheme == AMQPScheme::AMQPS;
        if is_tls && tls.cert_chain.is_none() {
            return Err(AmqpSettingsError::MissingCaFile);
        }
        if tls.identity.is_some() {
            if !is_tls {
                return Err(AmqpSettingsError::IdentityWithoutTls);
            }
            uri.query
                .auth_mechanism
                .get_or_insert(SASLMechanism::External);
        }

        Ok(Self {
            uri,
            tls,
            exchange: ShortString::try_new(settings.exchange)
                .map_err(|_| AmqpSettingsError::ExchangeNameTooLong)?,
            connect_timeout: settings.connect_timeout,
            confirm_timeout: settings.confirm_timeout,
        })
    }

    /// Opens a connection and a confirm-mode channel on it.
    async fn connect(&self) -> Result<Link, String> {
        let runtime = lapin::runtime::default_runtime().map_err(|e| e.to_string())?;
        let properties = ConnectionProperties::default()
            .with_connection_name(concat!("webhook2fedmsg ", env!("CARGO_PKG_VERSION")).into());
        let connection = Connection::connect_uri_with_config(
            self.uri.clone(),
            properties,
            self.tls.clone(),
            runtime,
        )
        .await
        .map_err(|e| e.to_string())?;
        let channel = self.open_channel_on(&connection).await?;
        Ok(Link {
            connection,
            channel,
        })
    }

    async fn open_channel(&self, link: &Link) -> Result<Channel, String> {
        self.open_channel_on(&link.connection).await
    }

    /// A confirm-mode channel, once the exchange is known to exist.
    async fn open_channel_on(&self, connection: &Connection) -> Result<Channel, String> {
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| e.to_string())?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| e.to_string())?;

        let passive = ExchangeDeclareOptions {
            passive: true,
            ..ExchangeDeclareOptions::default()
        };
        let declared = channel
            .exchange_declare(
                self.exchange.clone(),
                ExchangeKind::Topic,
                passive,
                FieldTable::default(),
            )
            .await;
        match declared {
            Ok(()) => Ok(channel),
            Err(error) if has_soft_error(&error, AMQPSoftError::NOTFOUND) => Err(format!(
                "exchange {:?} does not exist on the broker",
                self.exchange.as_str()
            )),
            Err(error) => Err(format!("cannot check exchange: {error}")),
        }
    }

    /// Sends every message of the batch, then awaits every confirm.
    async fn send_batch(&self, channel: &Channel, batch: &[Outgoing]) -> Vec<Fate> {
        let deadline = Instant::now() + self.confirm_timeout;
        let mut sent = Vec::with_capacity(batch.len());
        for message in batch {
            sent.push(self.send(channel, message, deadline).await);
        }

        let mut fates = Vec::with_capacity(batch.len());
        for one in sent {
            fates.push(one.confirmed(deadline).await);
        }
        fates
    }

    /// Hands one message to the connection without awaiting its confirm.
    async fn send(&self, channel: &Channel, message: &Outgoing, deadline: Instant) -> Sent {
        let (routing_key, properties) = match encode(message) {
            Ok(encoded) => encoded,
            Err(reason) => return Sent::Done(Fate::Refused(reason)),
        };
        let publish = channel.basic_publish(
            self.exchange.clone(),
            routing_key,
            BasicPublishOptions::default(),
            message.body.as_bytes(),
            properties,
        );
        match timeout_at(deadline, publish).await {
            Ok(Ok(confirm)) => Sent::Waiting(confirm),
            Ok(Err(error)) => Sent::Done(Fate::lost(&error)),
            Err(_) => Sent::Done(Fate::Late),
        }
    }

    fn late_reason(&self) -> String {
        format!(
            "no confirm from the broker within {} ms",
            self.confirm_timeout.as_millis()
        )
    }
}

impl AmqpSettings {
    fn tls_config(&self) -> Result<OwnedTLSConfig, AmqpSettingsError> {
        let cert_chain = match &self.ca_file {
            Some(path) => Some(String::from_utf8_lossy(&read(path)?).into_owned()),
            None => None,
        };
        let identity = match &self.identity {
            None => None,
            Some(ClientIdentity::Pem {
                cert_file,
                key_file,
            }) => Some(OwnedIdentity::PKCS8 {
                pem: read(cert_file)?,
                key: read(key_file)?,
            }),
            Some(ClientIdentity::Pkcs12 { file, password }) => Some(OwnedIdentity::PKCS12 {
                der: read(file)?,
                password: password.clone(),
            }),
        };
        Ok(OwnedTLSConfig {
            identity,
            cert_chain,
        })
    }
}

/// The connection and channel in use.
struct Link {
    connection: Connection,
    channel: Channel,
}

#[derive(Default)]
struct State {
    link: Option<Link>,
    /// Why the last link broke, for the warning on reconnecting.
    broken: Option<String>,
    /// Why the last attempt to connect failed, if it did.
    outage: Option<String>,
}

/// One message handed to the connection, or already decided.
enum Sent {
    Waiting(PublisherConfirm),
    Done(Fate),
}

impl Sent {
    async fn confirmed(self, deadline: Instant) -> Fate {
        let confirm = match self {
            Sent::Done(fate) => return fate,
            Sent::Waiting(confirm) => confirm,
        };
        match timeout_at(deadline, confirm).await {
            Ok(Ok(Confirmation::Ack(_))) => Fate::Confirmed,
            Ok(Ok(Confirmation::Nack(_))) => Fate::Refused("the broker nacked the message".into()),
            // Only a channel without confirms answers this; ours has them.
            Ok(Ok(Confirmation::NotRequested)) => Fate::Lost {
                reason: "the broker did not confirm the message".into(),
                refusal: false,
            },
            Ok(Err(error)) => Fate::lost(&error),
            Err(_) => Fate::Late,
        }
    }
}

/// What became of one message.
enum Fate {
    Confirmed,
    /// The broker or the AMQP format refused this very message.
    Refused(String),
    /// Lost with its channel or connection; `refusal` when the broker closed
    /// the channel over some message of the batch, maybe this one.
    Lost {
        reason: String,
        refusal: bool,
    },
    /// No confirm before the deadline.
    Late,
}

impl Fate {
    fn lost(error: &lapin::Error) -> Self {
        let refusal = [
            AMQPSoftError::ACCESSREFUSED,
            AMQPSoftError::PRECONDITIONFAILED,
            AMQPSoftError::CONTENTTOOLARGE,
        ]
        .into_iter()
        .any(|code| has_soft_error(error, code));
        Fate::Lost {
            reason: error.to_string(),
            refusal,
        }
    }

    fn is_channel_refusal(&self) -> bool {
        matches!(self, Fate::Lost { refusal: true, .. })
    }

    fn into_result(self, target: &Target) -> Result<(), PublishError> {
        match self {
            Fate::Confirmed => Ok(()),
            Fate::Refused(reason) => Err(PublishError::Permanent(reason)),
            Fate::Lost { reason, .. } => Err(PublishError::Transient(reason)),
            Fate::Late => Err(PublishError::Transient(target.late_reason())),
        }
    }
}

/// The routing key and properties of a message, as fedora-messaging sets
/// them; an error for what AMQP cannot carry.
fn encode(message: &Outgoing) -> Result<(ShortString, BasicProperties), String> {
    let routing_key = ShortString::try_new(message.routing_key.as_str())
        .map_err(|_| "routing key is longer than 255 bytes".to_string())?;
    let mut headers = FieldTable::default();
    for (name, value) in &message.headers {
        let name = ShortString::try_new(name.as_str())
            .map_err(|_| "header name is longer than 255 bytes".to_string())?;
        headers.insert(name, header_value(value));
    }

    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2)
        .with_message_id(message.id.to_string().into())
        .with_priority(0)
        .with_headers(headers);
    Ok((routing_key, properties))
}

/// A header value as pika encodes the same Python value. Strings must be
/// long strings: RabbitMQ closes the connection over a short string.
fn header_value(value: &HeaderValue) -> AMQPValue {
    match value {
        HeaderValue::Text(text) => AMQPValue::LongString(text.as_str().into()),
        HeaderValue::Int(int) => match i32::try_from(*int) {
            Ok(small) => AMQPValue::LongInt(small),
            Err(_) => AMQPValue::LongLongInt(*int),
        },
        HeaderValue::Bool(flag) => AMQPValue::Boolean(*flag),
    }
}

fn has_soft_error(error: &lapin::Error, code: AMQPSoftError) -> bool {
    match error.kind() {
        ErrorKind::ProtocolError(error) => error.kind() == &AMQPErrorKind::Soft(code),
        _ => false,
    }
}

fn parse_url(url: &str) -> Result<AMQPUri, AmqpSettingsError> {
    // The parser puts the whole URL in some of its messages.
    let uri: AMQPUri = url.parse().map_err(|message: String| {
        AmqpSettingsError::InvalidUrl(if message.contains(url) {
            "not an amqp:// or amqps:// url".into()
        } else {
            message
        })
    })?;
    // lapin reads an IPv6 literal as no host and connects to localhost.
    let authority = url.split_once("://").map_or("", |(_, rest)| rest);
    let authority = authority.split(['/', '?']).next().unwrap_or("");
    if authority.contains('[') {
        return Err(AmqpSettingsError::Ipv6Host);
    }
    Ok(uri)
}

fn read(path: &Path) -> Result<Vec<u8>, AmqpSettingsError> {
    std::fs::read(path).map_err(|source| AmqpSettingsError::UnreadableFile {
        path: path.to_path_buf(),
        source,
    })
}

/// The URL with any password replaced by `***`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a url>".into();
    };
    let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{path}")
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let mut settings = AmqpSettings::new("amqps://fedora:hunter2@broker.example.org/%2f");
        settings.identity = Some(ClientIdentity::Pkcs12 {
            file: "client.p12".into(),
            password: "sesame".into(),
        });
        let shown = format!("{settings:?}");
        assert!(
            shown.contains("amqps://fedora:***@broker.example.org/%2f"),
            "{shown}"
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains("sesame"),
            "{shown}"
        );
    }

    #[test]
    fn redaction_handles_at_signs_in_passwords_and_no_password() {
        assert_eq!(
            redact_password("amqp://u:p@ss@host:5672/%2f?heartbeat=5"),
            "amqp://u:***@host:5672/%2f?heartbeat=5"
        );
        assert_eq!(redact_password("amqp://host/%2f"), "amqp://host/%2f");
        assert_eq!(redact_password("amqp://user@host"), "amqp://user@host");
    }

    #[test]
    fn url_errors_never_quote_the_url() {
        let error = AmqpPublisher::new(AmqpSettings::new("mailto:secret-password"))
            .expect_err("not an amqp url");
        assert!(!error.to_string().contains("secret-password"), "{error}");
    }

    #[test]
    fn rejects_ipv6_literals_lapin_would_turn_into_localhost() {
        let error = AmqpPublisher::new(AmqpSettings::new("amqp://u:p@[::1]:5672/%2f"))
            .expect_err("ipv6 literal");
        assert!(matches!(error, AmqpSettingsError::Ipv6Host), "{error}");
    }

    #[test]
    fn amqps_needs_a_ca_file() {
        let error = AmqpPublisher::new(AmqpSettings::new("amqps://broker.example.org/%2f"))
            .expect_err("no ca file");
        assert!(matches!(error, AmqpSettingsError::MissingCaFile), "{error}");
    }

    #[test]
    fn client_certificate_needs_tls() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = dir.path().join("client.p12");
        std::fs::write(&file, b"not really").expect("written");
        let mut settings = AmqpSettings::new("amqp://broker.example.org/%2f");
        settings.identity = Some(ClientIdentity::Pkcs12 {
            file,
            password: String::new(),
        });
        let error = AmqpPublisher::new(settings).expect_err("identity over plain amqp");
        assert!(
            matches!(error, AmqpSettingsError::IdentityWithoutTls),
            "{error}"
        );
    }

    #[test]
    fn client_certificate_selects_external_unless_the_url_names_a_mechanism() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let pem = dir.path().join("any.pem");
        std::fs::write(&pem, b"read, not parsed, until connecting").expect("written");
        let with_identity = |url: &str| {
            let mut settings = AmqpSettings::new(url);
            settings.ca_file = Some(pem.clone());
            settings.identity = Some(ClientIdentity::Pem {
                cert_file: pem.clone(),
                key_file: pem.clone(),
            });
            Target::from_settings(settings)
                .expect("valid settings")
                .uri
                .query
                .auth_mechanism
        };
        assert_eq!(
            with_identity("amqps://broker.example.org/%2f"),
            Some(SASLMechanism::External)
        );
        assert_eq!(
            with_identity("amqps://u:p@broker.example.org/%2f?auth_mechanism=plain"),
            Some(SASLMechanism::Plain)
        );
    }

    #[test]
    fn unreadable_tls_file_is_named() {
        let mut settings = AmqpSettings::new("amqps://broker.example.org/%2f");
        settings.ca_file = Some("/nonexistent/ca.pem".into());
        let error = AmqpPublisher::new(settings).expect_err("missing file");
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }

    #[test]
    fn integers_are_typed_as_pika_types_them() {
        assert_eq!(header_value(&HeaderValue::Int(20)), AMQPValue::LongInt(20));
        assert_eq!(
            header_value(&HeaderValue::Int(1 << 40)),
            AMQPValue::LongLongInt(1 << 40)
        );
        assert_eq!(
            header_value(&HeaderValue::Text("x".into())),
            AMQPValue::LongString("x".into())
        );
        assert_eq!(
            header_value(&HeaderValue::Bool(true)),
            AMQPValue::Boolean(true)
        );
    }
}
