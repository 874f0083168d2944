//! A webhook secret, kept out of `Debug` output and error messages.

use std::fmt;

/// A secret shared with a sending service: an HMAC key or a plain token.
///
/// `Debug` prints `Secret(<redacted>)`, so a secret inside a struct that is
/// logged or shown in a test failure stays hidden. The bytes are reached only
/// through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret as the sending service knows it (its UTF-8 text).
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// Returns the secret itself; only for computing or comparing MACs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty. An empty secret never verifies anything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_secret() {
        let printed = format!("{:?}", Secret::new("hunter2"));
        assert!(!printed.contains("hunter2"));
    }
}
