//! The `webhook2fedmsg` command: parses the command line and hands off to
//! [`webhook2fedmsg_server::cli`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use webhook2fedmsg_core::Kind;
use webhook2fedmsg_server::cli;
use webhook2fedmsg_server::config::Config;

/// mimalloc rather than glibc's allocator: a webhook's body is copied
/// and freed on several threads (the HTTP workers, the database and broker
/// threads), where glibc's arenas spent about a tenth of the server's CPU
/// (load benchmark, SQLite: 3,700 -> 4,500-4,800 accepted/s). Version 2,
/// without transparent huge pages: it hands freed memory back sooner, and
/// huge pages would round the resident size up in 2 MB steps.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Receive webhooks and publish them to Fedora Messaging.
#[derive(Parser)]
#[command(name = "webhook2fedmsg", version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// TOML configuration file (default: $WEBHOOK2FEDMSG_CONFIG, then
        /// built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Create or upgrade the database schema.
    Migrate {
        /// TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the Fedora message a recorded delivery becomes.
    Convert {
        /// The service (default: from the headers or the directory name).
        #[arg(long)]
        service: Option<Kind>,
        /// The Pretix instance a token would name.
        #[arg(long)]
        instance_url: Option<String>,
        /// A recorded delivery: {"headers": {...}, "body": ...}.
        file: PathBuf,
    },
    /// Manage tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
        /// TOML configuration file.
        #[arg(long, global = true)]
        config: Option<PathBuf>,
    },
    /// Sign a recorded delivery and POST it.
    Send {
        /// A recorded delivery; every COMPUTE header is filled in.
        file: PathBuf,
        /// The webhook URL.
        #[arg(long)]
        url: String,
        /// The token's secret.
        #[arg(long)]
        secret: String,
    },
    /// Write, or check, the JSON Schemas of the message bodies.
    Schemas {
        /// Fail if the files differ instead of writing them.
        #[arg(long)]
        check: bool,
        /// Directory of the schema files.
        #[arg(long, default_value = "schemas")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token; prints its id, hook URL and secret as JSON.
    Add {
        /// The owner's FAS username.
        #[arg(long)]
        user: String,
        /// The service.
        #[arg(long)]
        service: Kind,
        /// A label (default: the service name).
        #[arg(long)]
        name: Option<String>,
        /// The secret (default: 256 random bits).
        #[arg(long)]
        secret: Option<String>,
        /// Pretix: the instance's base URL.
        #[arg(long)]
        instance_url: Option<String>,
    },
    /// List tokens, one JSON object per line.
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
    },
    /// Remove a token; its hook URL stops working at once.
    Remove {
        /// The token's id.
        id: String,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("webhook2fedmsg: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Runtime::new()?;
    match args.command {
        Command::Serve { config } => {
            let config = Config::load(config.as_deref())?;
            init_logging(&config);
            runtime.block_on(cli::serve(config))?;
            Ok(true)
        }
        Command::Migrate { config } => {
            let config = Config::load(config.as_deref())?;
            init_logging(&config);
            runtime.block_on(cli::migrate(&config))?;
            Ok(true)
        }
        Command::Convert {
            service,
            instance_url,
            file,
        } => {
            // A deliberately unpublished event is not an error: exit 0.
            cli::convert(&file, service, instance_url)?;
            Ok(true)
        }
        Command::Token { command, config } => {
            let config = Config::load(config.as_deref())?;
            // Warnings (a development key created) on stderr; stdout
            // stays the JSON output.
            init_logging_at(&config, "warn");
            runtime.block_on(async {
                match command {
                    TokenCommand::Add {
                        user,
                        service,
                        name,
                        secret,
                        instance_url,
                    } => {
                        cli::token_add(
                            &config,
                            &user,
                            service,
                            name.as_deref(),
                            secret.as_deref(),
                            instance_url.as_deref(),
                        )
                        .await
                    }
                    TokenCommand::List { user } => cli::token_list(&config, user.as_deref()).await,
                    TokenCommand::Remove { id } => cli::token_remove(&config, &id).await,
                }
            })?;
            Ok(true)
        }
        Command::Send { file, url, secret } => runtime.block_on(cli::send(&file, &url, &secret)),
        Command::Schemas { check, out } => cli::schemas(&out, check),
    }
}

fn init_logging(config: &Config) {
    init_logging_at(config, &config.log.filter);
}

/// Logs to stderr with `default_filter`, unless `RUST_LOG` says otherwise.
fn init_logging_at(config: &Config, default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // Colours only on a terminal: not in files or the journal.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if config.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
