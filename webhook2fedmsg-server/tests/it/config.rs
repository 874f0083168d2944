//! The example configuration ships every key and loads as it is.

use webhook2fedmsg_server::config::Config;

#[test]
fn example_config_loads_and_matches_the_defaults() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let loaded = Config::load(Some(&path)).expect("the example configuration loads");
    let defaults = Config::default();
    assert_eq!(format!("{loaded:?}"), format!("{defaults:?}"));
}

/// Every key of every section is in the example, set or commented out.
#[test]
fn example_config_names_every_key() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let example = std::fs::read_to_string(path).unwrap();
    let defaults = serde_json::to_value(Config::default()).unwrap();
    let mut section = String::new();
    let mut named = std::collections::BTreeSet::new();
    for line in example.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = format!("{name}.");
        } else if let Some((key, _)) = line.split_once(" = ") {
            named.insert(format!("{section}{key}"));
        }
    }
    for (key, value) in defaults.as_object().unwrap() {
        match value.as_object() {
            Some(fields) => {
                for field in fields.keys() {
                    let name = format!("{key}.{field}");
                    assert!(named.contains(&name), "{name} is not in the example");
                }
            }
            None => assert!(named.contains(key), "{key} is not in the example"),
        }
    }
}

/// A server whose secrets key is not the one its tokens were stored with
/// refuses to start, instead of answering 401 to every webhook.
#[tokio::test]
async fn a_replaced_secrets_key_stops_the_start() {
    use crate::server::{Options, TestServer, config};
    use webhook2fedmsg_server::App;
    use webhook2fedmsg_server::config::Sensitive;

    let server = TestServer::start(Options::default()).await;
    server.token("alice", "github", None).await;
    let dir = server.dir.clone();
    server.stop().await;

    let address = "127.0.0.1:9".parse().unwrap();
    let mut other = config(dir.path(), &Options::default(), address);
    other.secrets.key = Some(Sensitive("ff".repeat(32)));
    let error = App::new(other).await.err().expect("a wrong key is refused");
    let text = format!("{error:#}");
    assert!(text.contains("does not open the token secrets"), "{text}");
    assert!(!text.contains(&"ff".repeat(32)), "{text}");

    let same = config(dir.path(), &Options::default(), address);
    App::new(same).await.expect("the right key starts");
}

/// A database or file sink in a directory that does not exist stops the
/// start with a message naming the directory.
#[tokio::test]
async fn missing_directories_stop_the_start() {
    use crate::server::{Options, config};
    use webhook2fedmsg_server::App;
    use webhook2fedmsg_server::config::Sensitive;

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let address = "127.0.0.1:9".parse().unwrap();

    let mut database = config(dir.path(), &Options::default(), address);
    database.database.url = Sensitive(format!("sqlite://{}", missing.join("w.db").display()));
    let text = format!("{:#}", App::new(database).await.err().expect("refused"));
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert!(text.contains("does not exist"), "{text}");

    let mut sink = config(dir.path(), &Options::default(), address);
    sink.sink.path = missing.join("messages.jsonl");
    let text = format!("{:#}", App::new(sink).await.err().expect("refused"));
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert!(!missing.exists(), "nothing was created");
}
