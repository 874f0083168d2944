//! Where to go after logging in: only ever a path on this site.
//!
//! `?next=` comes from a link anyone can craft, so it is kept only when it
//! is plainly a local path: it starts with one `/`, followed by anything
//! but a second `/` or a `\` (browsers read `//host` and `/\host` as
//! another host), and holds no backslash, whitespace or control character
//! anywhere. Everything else becomes [`FALLBACK`].

/// Where a refused or missing `next` leads.
pub const FALLBACK: &str = "/";

/// The longest `next` kept.
const MAX_LEN: usize = 512;

/// `next` when it is a safe local path, else [`FALLBACK`].
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(path) if is_local_path(path) => path.to_string(),
        _ => FALLBACK.to_string(),
    }
}

/// Whether `path` can only lead to this site.
pub fn is_local_path(path: &str) -> bool {
    let mut bytes = path.bytes();
    bytes.next() == Some(b'/')
        && !matches!(bytes.next(), Some(b'/' | b'\\'))
        && path.len() <= MAX_LEN
        && !path
            .bytes()
            .any(|b| b == b'\\' || b.is_ascii_whitespace() || b.is_ascii_control() || b >= 0x80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_local_paths() {
        for path in ["/", "/tokens", "/tokens?x=1#y", "/a/b%2F/c"] {
            assert_eq!(local_path(Some(path)), path);
        }
    }

    #[test]
    fn refuses_everything_that_can_leave_the_site() {
        for next in [
            "https://attacker.example.org/x",
            "//attacker.example.org",
            "/\\attacker.example.org",
            "https:attacker.example.org",
            "javascript:alert(1)",
            "/%0a/x\n",
            "/\t/attacker.example.org",
            "\\\\attacker.example.org",
            "",
            "tokens",
        ] {
            assert_eq!(local_path(Some(next)), FALLBACK, "{next:?}");
        }
        assert_eq!(local_path(None), FALLBACK);
    }
}
