//! The example configuration ships every key and loads as it is.

use webhook2fedmsg_server::config::Config;

#[test]
fn example_config_loads_and_matches_the_defaults() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let loaded = Config::load(Some(&path)).expect("the example configuration loads");
    let defaults = Config::default();
    assert_eq!(format!("{loaded:?}"), format!("{defaults:?}"));
}
