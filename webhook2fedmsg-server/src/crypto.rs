//! Random identifiers and secrets, and the encryption of secrets at rest.
//!
//! HMAC needs the secret itself, so token secrets cannot be stored hashed;
//! they are encrypted with ChaCha20-Poly1305 under a key from the
//! configuration, bound to their token's id so that a ciphertext copied to
//! another row does not decrypt. API keys and session ids, which only need
//! to be recognised, are stored as SHA-256 hashes.

use std::path::Path;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::SecretsConfig;

/// Where the development key is written when none is configured.
pub const DEV_KEY_FILE: &str = "webhook2fedmsg-dev.key";

/// `bytes` random bytes from the operating system's generator, as hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// A hook id: 128 random bits, 32 hex digits.
pub fn new_hook_id() -> String {
    random_hex(16)
}

/// A generated webhook secret: 256 random bits, 64 hex digits.
pub fn new_secret() -> String {
    random_hex(32)
}

/// Lower-case hex SHA-256, for storing what only needs to be recognised.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Encrypts and decrypts token secrets.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<key redacted>)")
    }
}

/// A stored secret that does not decrypt: a wrong key or a tampered row.
#[derive(Debug, thiserror::Error)]
#[error("a stored secret does not decrypt with the configured key")]
pub struct UndecryptableSecret;

impl SecretBox {
    /// Builds the box from a 32-byte key.
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// Loads the key the configuration names, or creates a development key
    /// file beside the working directory (with a warning) when none is set.
    pub fn from_config(config: &SecretsConfig) -> anyhow::Result<Self> {
        let text = match (&config.key, &config.key_file) {
            (Some(key), _) => key.expose().to_string(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read secrets.key_file {}", path.display()))?,
            (None, None) => dev_key(Path::new(DEV_KEY_FILE))?,
        };
        const FORM: &str = "the secrets key must be 64 hex digits (32 bytes), such as `openssl rand -hex 32` prints";
        let Ok(bytes) = hex::decode(text.trim()) else {
            bail!(FORM);
        };
        let Ok(key) = <[u8; 32]>::try_from(bytes) else {
            bail!(FORM);
        };
        Ok(Self::new(key))
    }

    /// Encrypts `secret` for the token `token_id`: base64 of nonce and
    /// ciphertext.
    pub fn seal(&self, token_id: &str, secret: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: secret.as_bytes(),
            aad: token_id.as_bytes(),
        };
        // Encryption fails only for messages beyond 256 GiB.
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("secrets are far below the cipher's limit");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        BASE64.encode(out)
    }

    /// Decrypts what [`SecretBox::seal`] made for the same token.
    pub fn open(&self, token_id: &str, sealed: &str) -> Result<String, UndecryptableSecret> {
        let bytes = BASE64.decode(sealed).map_err(|_| UndecryptableSecret)?;
        if bytes.len() < 12 {
            return Err(UndecryptableSecret);
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let payload = Payload {
            msg: ciphertext,
            aad: token_id.as_bytes(),
        };
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| UndecryptableSecret)?;
        String::from_utf8(plain).map_err(|_| UndecryptableSecret)
    }
}

fn dev_key(path: &Path) -> anyhow::Result<String> {
    if path.exists() {
        return std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the development key {}", path.display()));
    }
    let key = random_hex(32);
    write_private(path, &key)
        .with_context(|| format!("cannot write the development key {}", path.display()))?;
    tracing::warn!(
        key.file = %path.display(),
        "no secrets key configured: generated a development key; set secrets.key_file \
         in production, or stored secrets become unreadable if this file is lost"
    );
    Ok(key)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secret_opens_only_for_its_token() {
        let secrets = SecretBox::new([7; 32]);
        let sealed = secrets.seal("token-a", "s3cret");
        assert!(!sealed.contains("s3cret"));
        assert_eq!(secrets.open("token-a", &sealed).unwrap(), "s3cret");
        assert!(secrets.open("token-b", &sealed).is_err());
        assert!(SecretBox::new([8; 32]).open("token-a", &sealed).is_err());
    }

    #[test]
    fn generated_ids_and_secrets_are_long_and_distinct() {
        let a = new_hook_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, new_hook_id());
        assert_eq!(new_secret().len(), 64);
    }
}
