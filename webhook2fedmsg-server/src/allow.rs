//! Which methods each path of the server answers.
//!
//! A `405 Method Not Allowed` must say, in `Allow`, what the path does
//! answer. warp's method filters only say "not this one", so the routes
//! are listed once more here, by their path segments; [`crate::routes`]
//! fills `Allow` from this table and the API tells an unknown path (404)
//! from a wrong method (405) with it. A test walks every entry.

use webhook2fedmsg_core::Kind;

/// Path patterns (segments joined by `/`, `*` for any one segment) and the
/// methods they answer, as `Allow` lists them. The first match wins.
const PATHS: &[(&str, &str)] = &[
    ("", "GET"),
    ("login", "GET"),
    ("login/callback", "GET"),
    ("logout", "POST"),
    ("tokens", "GET, POST"),
    ("tokens/*/remove", "GET, POST"),
    ("tokens/*/*", "POST"),
    ("keys", "POST"),
    ("keys/*/revoke", "POST"),
    ("static/*", "GET"),
    ("healthz", "GET"),
    ("readyz", "GET"),
    ("metrics", "GET"),
    ("api/v1/openapi.json", "GET"),
    ("api/v1/services", "GET"),
    ("api/v1/me", "GET"),
    ("api/v1/tokens", "GET, POST"),
    ("api/v1/tokens/*", "GET, PATCH, DELETE"),
    ("api/v1/tokens/*/rotate", "POST"),
    ("api/v1/tokens/*/deliveries", "GET"),
];

/// The methods `path` answers, as `Allow` lists them, or `None` for a path
/// the server does not have. The webhook paths (`/<service>` and
/// `/<service>/<hook-id>`, a trailing slash allowed) answer POST.
pub fn methods(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let listed = PATHS.iter().find(|(pattern, _)| {
        let pattern: Vec<&str> = pattern.split('/').collect();
        pattern.len() == segments.len()
            && pattern
                .iter()
                .zip(&segments)
                .all(|(p, s)| *p == "*" || p == s)
    });
    if let Some((_, methods)) = listed {
        return Some(methods);
    }
    let is_hook = match segments.as_slice() {
        [service] | [service, _] | [service, _, ""] => service.parse::<Kind>().is_ok(),
        _ => false,
    };
    is_hook.then_some("POST")
}

/// Whether `path` answers `method`.
pub fn answers(path: &str, method: &str) -> bool {
    methods(path).is_some_and(|methods| methods.split(", ").any(|m| m == method))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_pages_api_and_webhooks() {
        assert_eq!(methods("/"), Some("GET"));
        assert_eq!(methods("/tokens"), Some("GET, POST"));
        assert_eq!(methods("/tokens/abc/remove"), Some("GET, POST"));
        assert_eq!(methods("/tokens/abc/rotate"), Some("POST"));
        assert_eq!(methods("/api/v1/tokens/abc"), Some("GET, PATCH, DELETE"));
        assert_eq!(methods("/github"), Some("POST"));
        assert_eq!(methods("/github/0123abcd"), Some("POST"));
        assert_eq!(methods("/github/0123abcd/"), Some("POST"));
        assert!(answers("/api/v1/tokens", "POST"));
        assert!(!answers("/api/v1/me", "TRACE"));
    }

    #[test]
    fn knows_no_other_path() {
        for path in [
            "/nope",
            "/api/v1",
            "/api/v1/tokens/a/b/c",
            "/github/a/b",
            "/tokens/a",
        ] {
            assert_eq!(methods(path), None, "{path}");
        }
    }
}
