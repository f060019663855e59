//! Configuration errors, and where they point: every message names the key
//! as the file spells it (`users.admin.password`) and the source it came
//! from (the file, or the `NOVABMC_` environment variables).
//!
//! Each error's text says everything once: none of these types has an
//! error `source()`, so a chain printer (anyhow's `{:#}`) adds nothing
//! after it, and figment's own errors are rewritten without the profile
//! name figment puts in front of every key (`default.nodes.a.address`).

use std::path::PathBuf;

use figment::Figment;

/// A configuration problem, naming the key and its source.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}{source_text}")]
pub struct ConfigError {
    /// Dotted key, e.g. `users.admin.password`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// " (in FILE)" or " (in NOVABMC_ environment variable(s))", or empty.
    pub(super) source_text: String,
}

/// Errors from loading a configuration.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file does not exist or cannot be read.
    #[error("cannot read configuration file {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (in the message, not a separate cause).
        error: std::io::Error,
    },
    /// figment could not parse or type-check a value.
    #[error("{0}")]
    Parse(String),
    /// A value failed validation.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

/// Builds [`ConfigError`]s that name where a key was set.
pub(super) struct Checker<'a> {
    pub(super) figment: &'a Figment,
}

impl Checker<'_> {
    /// An error about `key`, naming the source that set it (or its
    /// nearest parent that was set).
    pub(super) fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            key: key.to_string(),
            message: message.into(),
            source_text: self.source_of(key),
        }
    }

    fn source_of(&self, key: &str) -> String {
        let mut key = key;
        loop {
            if let Some(m) = self.figment.find_metadata(key) {
                return describe_metadata(m);
            }
            match key.rsplit_once('.') {
                Some((parent, _)) => key = parent,
                None => return String::new(),
            }
        }
    }
}

fn describe_metadata(m: &figment::Metadata) -> String {
    match &m.source {
        Some(s) => format!(" (in {s})"),
        None => format!(" (in {})", m.name),
    }
}

/// figment's errors, one line each, keys as the file spells them:
/// `nodes.a.address: invalid type: found string "x", expected an IP
/// address (in bad.toml)`.
pub(super) fn format_figment_error(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let place = e
                .metadata
                .as_ref()
                .map(describe_metadata)
                .unwrap_or_default();
            if e.path.is_empty() {
                format!("{}{place}", e.kind)
            } else {
                format!("{}: {}{place}", e.path.join("."), e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}
