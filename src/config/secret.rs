//! Secrets in the configuration (user passwords, the BMC key Kg): given
//! inline, read from a file, or read from an environment variable; zeroed
//! when dropped and never shown by `Debug` or logged.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroizing;

/// A secret given inline, in a file, or in an environment variable.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum Secret {
    /// `password = "..."`
    Inline(SecretString),
    /// `password = { file = "/etc/novabmc/admin.password" }`: the file's
    /// contents, without a trailing newline.
    File {
        /// Path of the file.
        file: PathBuf,
    },
    /// `password = { env = "NOVABMC_ADMIN_PASSWORD" }`
    Env {
        /// Name of the variable.
        env: String,
    },
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("Secret::Inline(..)"),
            Secret::File { file } => write!(f, "Secret::File({})", file.display()),
            Secret::Env { env } => write!(f, "Secret::Env({env})"),
        }
    }
}

/// An inline secret's text: zeroed when dropped. (The copies figment and
/// serde make while parsing the file are freed, not zeroed.)
#[derive(Clone, Deserialize)]
#[serde(from = "String")]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        SecretString(Zeroizing::new(s))
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        SecretString(Zeroizing::new(s.to_string()))
    }
}

/// Secret bytes: zeroed when dropped, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }
}

impl std::ops::Deref for SecretBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Secret {
    /// The secret's bytes.
    pub fn resolve(&self) -> Result<SecretBytes, String> {
        match self {
            Secret::Inline(s) => Ok(SecretBytes::new(s.as_str().as_bytes().to_vec())),
            Secret::File { file } => {
                let mut bytes = std::fs::read(file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    bytes.pop();
                }
                Ok(SecretBytes::new(bytes))
            }
            Secret::Env { env } => std::env::var(env)
                .map(|v| SecretBytes::new(v.into_bytes()))
                .map_err(|_| format!("environment variable {env} is not set")),
        }
    }

    /// The file holding the secret and its permission bits, if the file
    /// can be read by its group or by others.
    pub fn exposed_file(&self) -> Option<(&Path, u32)> {
        use std::os::unix::fs::PermissionsExt;
        let Secret::File { file } = self else {
            return None;
        };
        let mode = std::fs::metadata(file).ok()?.permissions().mode() & 0o777;
        (mode & 0o044 != 0).then_some((file.as_path(), mode))
    }

    /// Where the secret comes from, for messages (never the value).
    pub fn describe(&self) -> String {
        match self {
            Secret::Inline(_) => "inline".into(),
            Secret::File { file } => format!("file {}", file.display()),
            Secret::Env { env } => format!("environment variable {env}"),
        }
    }
}

/// Warns when a secret's file can be read by more than its owner.
pub(super) fn warn_if_exposed(key: &str, secret: &Secret) {
    if let Some((file, mode)) = secret.exposed_file() {
        tracing::warn!(
            key,
            file = %file.display(),
            mode = format_args!("{mode:03o}"),
            "secret file is readable by group or others; restrict it (chmod 600)"
        );
    }
}
