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
