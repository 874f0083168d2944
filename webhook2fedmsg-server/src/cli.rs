//! The `webhook2fedmsg` command: parsing lives in `main.rs`, the work here.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::json;
use webhook2fedmsg_core::recording::Recording;
use webhook2fedmsg_core::{Context, Kind};

use crate::api::json::TokenView;
use crate::api::ops::Creation;
use crate::config::Config;
use crate::crypto::SecretBox;
use crate::store::Store;
use crate::store::tokens::NewToken;

/// `webhook2fedmsg serve`: runs until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Listened for before the port opens: until then a stop signal would
    // end the process at once, as if killed.
    let stops = StopSignals::new().context("cannot listen for SIGINT and SIGTERM")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    crate::run(config, listener, shutdown_on(stops)).await
}

/// SIGINT and SIGTERM, each caught from when this is made.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// The next SIGINT or SIGTERM.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Resolves at the first stop signal, when the server stops accepting
/// and finishes the requests in flight. A second signal ends the process
/// at once: what was committed stays in the outbox, and the requests then
/// in flight were not answered, so their senders do not count them as
/// delivered.
async fn shutdown_on(mut stops: StopSignals) {
    stops.next().await;
    tokio::spawn(async move {
        stops.next().await;
        tracing::warn!("second stop signal: exiting without waiting for the requests in flight");
        std::process::exit(1);
    });
}

/// `webhook2fedmsg migrate`.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    println!("database schema is up to date");
    store.close().await;
    Ok(())
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(
        config.database.url.expose(),
        config.database.max_connections,
    )
    .await?;
    store.migrate().await?;
    Ok(store)
}

/// `webhook2fedmsg convert`: prints the message a recorded delivery becomes.
///
/// Returns `Ok(false)`, with the reason on stderr, for an event that is
/// deliberately not published.
pub fn convert(
    file: &Path,
    service: Option<Kind>,
    instance_url: Option<String>,
) -> anyhow::Result<bool> {
    let recording = read_recording(file)?;
    let kind = match service {
        Some(kind) => kind,
        None => guess_service(file, &recording)?,
    };
    // The rules of `token add`: its token names the instance, the
    // delivery itself does not.
    let instance_url = crate::api::ops::check_instance_url(instance_url.as_deref())
        .map_err(|e| anyhow::anyhow!("--instance-url: {e}"))?;
    match (kind, &instance_url) {
        (Kind::Pretix, None) => {
            bail!("a Pretix delivery needs --instance-url, the base URL of the pretix instance")
        }
        (Kind::Pretix, Some(_)) | (_, None) => {}
        (_, Some(_)) => bail!("only Pretix deliveries take --instance-url"),
    }
    let delivery = recording.to_delivery();
    let context = Context { instance_url };
    let event = kind
        .service()
        .decode(&delivery, &context)
        .with_context(|| format!("{} is not a valid {kind} delivery", file.display()))?;
    if let Some(reason) = event.skip() {
        eprintln!("not published: {reason}");
        return Ok(false);
    }
    let message = event.into_message(None, uuid::Uuid::new_v4(), time::OffsetDateTime::now_utc());
    print_line(&message.dump_line(""))?;
    Ok(true)
}

fn read_recording(file: &Path) -> anyhow::Result<Recording> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    Recording::from_json(&text).with_context(|| file.display().to_string())
}

/// The service of a recording: from its event header, else from the name of
/// the directory it is in.
fn guess_service(file: &Path, recording: &Recording) -> anyhow::Result<Kind> {
    let has = |name: &str| {
        recording
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let by_header = if has("x-github-event") && !has("x-gitea-event") {
        Some(Kind::Github)
    } else if has("x-gitlab-event") {
        Some(Kind::Gitlab)
    } else if has("x-forgejo-event") {
        Some(Kind::Forgejo)
    } else if has("x-gitea-event") {
        Some(Kind::Gitea)
    } else if has("x-discourse-event") {
        Some(Kind::Discourse)
    } else {
        None
    };
    let by_dir = file
        .parent()
        .and_then(Path::file_name)
        .and_then(|d| d.to_str())
        .and_then(|d| d.parse().ok());
    by_header
        .or(by_dir)
        .context("cannot tell the service of this delivery: pass --service")
}

/// `webhook2fedmsg token add`.
pub async fn token_add(
    config: &Config,
    user: &str,
    service: Kind,
    name: Option<&str>,
    secret: Option<&str>,
    instance_url: Option<&str>,
) -> anyhow::Result<()> {
    if user.trim().is_empty() {
        bail!("--user must name a FAS account");
    }
    // The rules the pages and the API apply to a new token.
    let checked = Creation::parse(
        service.name(),
        name.unwrap_or(service.name()),
        secret,
        instance_url,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = open_store(config).await?;
    let secrets = SecretBox::from_config(&config.secrets)?;
    store.check_secrets_key(&secrets).await?;
    let (token, secret) = store
        .create_token(
            &secrets,
            NewToken {
                owner: user,
                service: service.name(),
                name: &checked.name,
                secret: checked.secret.as_deref(),
                instance_url: checked.instance_url.as_deref(),
            },
        )
        .await
        .context("cannot create the token")?;
    // A service that signs nothing has no secret to show: the URL is it.
    let secret = crate::web::guide::Guide::of(service)
        .has_secret()
        .then_some(secret);
    let out = json!({
        "id": token.id,
        "service": token.service,
        "name": token.name,
        "hook_url": config.hook_url(&token.service, &token.hook_id),
        "instance_url": token.instance_url,
        "secret": secret,
    });
    println!("{out}");
    if let Some(problem) = config.hook_url_problem() {
        eprintln!("webhook2fedmsg: warning: {problem}");
    }
    store.close().await;
    Ok(())
}

/// `webhook2fedmsg token list`: a line of JSON per token, as the API shows
/// it to its owner.
pub async fn token_list(config: &Config, user: Option<&str>) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for token in store.tokens(user).await? {
        let hook_url = config.hook_url(&token.service, &token.hook_id);
        let line = serde_json::to_string(&TokenView::new(&token, Some(hook_url), None))?;
        writeln!(out, "{line}")?;
    }
    store.close().await;
    Ok(())
}

/// `webhook2fedmsg token remove`.
pub async fn token_remove(config: &Config, id: &str) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let removed = store.remove_token(id).await?;
    store.close().await;
    if !removed {
        bail!("no token with id {id}");
    }
    println!("{}", json!({"id": id, "removed": true}));
    Ok(())
}

/// `webhook2fedmsg send`: signs a recording and posts it.
pub async fn send(file: &Path, url: &str, secret: &str) -> anyhow::Result<bool> {
    let mut recording = read_recording(file)?;
    recording.sign(secret);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut request = client.post(url).body(recording.body.clone());
    for (name, value) in &recording.headers {
        request = request.header(name, value);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot POST to {url}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    println!("{}", status.as_u16());
    println!("{body}");
    Ok(status.is_success())
}

/// `webhook2fedmsg schemas`: writes the JSON Schemas to `out`, or with
/// `check`, fails when the files there differ.
pub fn schemas(out: &Path, check: bool) -> anyhow::Result<bool> {
    let mut stale = Vec::new();
    for (name, text) in webhook2fedmsg_core::schema::all() {
        let path: PathBuf = out.join(&name);
        if check {
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            if current != text {
                stale.push(name);
            }
        } else {
            std::fs::create_dir_all(out)?;
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        eprintln!(
            "stale schemas in {}: {}; run `webhook2fedmsg schemas --out {}`",
            out.display(),
            stale.join(", "),
            out.display()
        );
        return Ok(false);
    }
    if check {
        println!("schemas in {} are up to date", out.display());
    }
    Ok(true)
}

/// Prints one line on stdout; a reader that went away (`| head`) is not
/// an error.
fn print_line(line: &str) -> anyhow::Result<()> {
    match writeln!(std::io::stdout().lock(), "{line}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => Ok(written?),
    }
}
