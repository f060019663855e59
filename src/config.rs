//! The configuration file: one TOML file, with `NOVABMC_` environment
//! variables overriding any key (`NOVABMC_BMC__MAX_SESSIONS=16`,
//! `NOVABMC_NODES__RACK1__PORT=6240`; a double underscore separates
//! levels, and only the `bmc`, `users`, `backend` and `nodes` sections are
//! read from the environment).
//!
//! Loading has two steps. figment reads and merges the sources into the raw
//! structures below (unknown keys are errors, so a typo never passes
//! silently); then [`Config::load`] checks every value and builds the
//! validated [`Config`]. Every error names the key and where it came from:
//! `users.admin.password: longer than 20 bytes (in novabmc.toml)`.
//!
//! Secrets (passwords, the BMC key) may be inline, read from a file, or read
//! from an environment variable; they are never logged.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use novabmc_proto::{CipherSuites, DeviceId, Privilege};
use serde::Deserialize;
use zeroize::Zeroizing;

/// The IPMI port.
pub const DEFAULT_PORT: u16 = 623;

/// Environment variables override keys only under these sections, so other
/// `NOVABMC_` variables (`NOVABMC_LOG`, secrets named in the file) are not
/// mistaken for configuration.
const SECTIONS: [&str; 4] = ["bmc__", "users__", "backend__", "nodes__"];

/// A configuration problem, naming the key and its source.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}{source_text}")]
pub struct ConfigError {
    /// Dotted key, e.g. `users.admin.password`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// " (in FILE)" or " (in NOVABMC_ environment variable(s))", or empty.
    source_text: String,
}

/// Errors from loading a configuration.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file does not exist or cannot be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// figment could not parse or type-check a value.
    #[error("{0}")]
    Parse(String),
    /// A value failed validation.
    #[error("{0}")]
    Invalid(#[from] ConfigError),
}

/// A secret given inline, in a file, or in an environment variable.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum Secret {
    /// `password = "..."`
    Inline(String),
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
            Secret::Inline(s) => Ok(SecretBytes::new(s.as_bytes().to_vec())),
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

    /// Where the secret comes from, for messages (never the value).
    pub fn describe(&self) -> String {
        match self {
            Secret::Inline(_) => "inline".into(),
            Secret::File { file } => format!("file {}", file.display()),
            Secret::Env { env } => format!("environment variable {env}"),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    bmc: RawBmc,
    #[serde(default)]
    users: BTreeMap<String, RawUser>,
    #[serde(default)]
    backend: RawBackend,
    #[serde(default)]
    nodes: BTreeMap<String, RawNode>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBmc {
    cipher_suites: Option<Vec<u8>>,
    max_sessions: Option<usize>,
    kg: Option<Secret>,
    setup_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    manufacturer_id: Option<u32>,
    product_id: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    password: Secret,
    privilege: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum RawBackend {
    Simulated {
        power_on_ms: Option<u64>,
        power_off_ms: Option<u64>,
        efi: Option<bool>,
    },
}

impl Default for RawBackend {
    fn default() -> Self {
        RawBackend::Simulated {
            power_on_ms: None,
            power_off_ms: None,
            efi: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    address: IpAddr,
    port: Option<u16>,
    server: Option<String>,
}

/// A user as configured.
#[derive(Debug, Clone)]
pub struct UserConfig {
    /// Login name.
    pub name: String,
    /// Password bytes.
    pub password: SecretBytes,
    /// Privilege limit.
    pub privilege: Privilege,
}

/// Settings of the IPMI engine shared by all nodes.
#[derive(Debug, Clone)]
pub struct BmcSettings {
    /// Accepted and advertised cipher suites.
    pub cipher_suites: CipherSuites,
    /// Session table size per node.
    pub max_sessions: usize,
    /// The BMC key Kg, if any.
    pub kg: Option<SecretBytes>,
    /// How long a half-open session may live.
    pub setup_timeout: Duration,
    /// How long an idle session may live.
    pub idle_timeout: Duration,
    /// Get Device ID's answer.
    pub device: DeviceId,
}

/// The simulated cloud's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedConfig {
    /// How long a machine takes to power on.
    pub power_on: Duration,
    /// How long a machine takes to power off.
    pub power_off: Duration,
    /// Whether machines have EFI firmware.
    pub efi: bool,
}

impl Default for SimulatedConfig {
    fn default() -> Self {
        SimulatedConfig {
            power_on: Duration::from_millis(1500),
            power_off: Duration::from_millis(800),
            efi: true,
        }
    }
}

/// Which cloud the nodes live in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendConfig {
    /// The in-process simulated cloud.
    Simulated(SimulatedConfig),
}

/// One virtual bare-metal node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// The node's name (its key under `[nodes]`).
    pub name: String,
    /// Where its BMC listens.
    pub listen: SocketAddr,
    /// The cloud server behind it (name or UUID); defaults to the node name.
    pub server: String,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Engine settings.
    pub bmc: BmcSettings,
    /// Users, in name order.
    pub users: Vec<UserConfig>,
    /// The cloud.
    pub backend: BackendConfig,
    /// Nodes, in name order.
    pub nodes: Vec<NodeConfig>,
}

struct Checker<'a> {
    figment: &'a Figment,
}

impl Checker<'_> {
    fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let source_text = self
            .figment
            .find_metadata(key)
            .map(|m| match &m.source {
                Some(s) => format!(" (in {s})"),
                None => format!(" (in {})", m.name),
            })
            .unwrap_or_default();
        ConfigError {
            key: key.to_string(),
            message: message.into(),
            source_text,
        }
    }
}

impl Config {
    /// Loads `path`, applies `NOVABMC_` overrides, and validates.
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        // figment silently ignores a missing file; a BMC without its
        // configuration must not start, so check first.
        std::fs::metadata(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let figment = Figment::new().merge(Toml::file_exact(path)).merge(
            Env::prefixed("NOVABMC_")
                .filter(|key| {
                    let key = key.as_str().to_ascii_lowercase();
                    SECTIONS.iter().any(|s| key.starts_with(s))
                })
                .split("__")
                .lowercase(true),
        );
        Self::from_figment(&figment)
    }

    /// Validates whatever `figment` holds.
    pub fn from_figment(figment: &Figment) -> Result<Config, LoadError> {
        let raw: RawConfig = figment
            .extract()
            .map_err(|e| LoadError::Parse(format_figment_error(e)))?;
        let c = Checker { figment };
        Ok(Self::validate(raw, &c)?)
    }

    fn validate(raw: RawConfig, c: &Checker<'_>) -> Result<Config, ConfigError> {
        let b = raw.bmc;
        let cipher_suites = match &b.cipher_suites {
            None => CipherSuites::default(),
            Some(ids) => {
                let s = CipherSuites::from_ids(ids)
                    .map_err(|e| c.error("bmc.cipher_suites", e.to_string()))?;
                if s.is_empty() {
                    return Err(c.error("bmc.cipher_suites", "at least one cipher suite is needed"));
                }
                s
            }
        };
        let max_sessions = b.max_sessions.unwrap_or(32);
        if !(1..=63).contains(&max_sessions) {
            return Err(c.error("bmc.max_sessions", "must be between 1 and 63"));
        }
        let kg = match &b.kg {
            None => None,
            Some(secret) => {
                let text = secret.resolve().map_err(|e| c.error("bmc.kg", e))?;
                let text = String::from_utf8_lossy(&text);
                let hex_text = text.trim().trim_start_matches("0x");
                let key = hex::decode(hex_text).map_err(|_| {
                    c.error("bmc.kg", "must be hexadecimal, as ipmitool -y takes it")
                })?;
                if key.is_empty() || key.len() > 20 {
                    return Err(c.error("bmc.kg", "must be 1 to 20 bytes (2 to 40 hex digits)"));
                }
                if key[0] == 0 {
                    return Err(c.error(
                        "bmc.kg",
                        "must not start with a zero byte: ipmitool treats such a key as unset",
                    ));
                }
                Some(SecretBytes::new(key))
            }
        };
        let setup_timeout = Duration::from_secs(b.setup_timeout_secs.unwrap_or(5));
        let idle_timeout = Duration::from_secs(b.idle_timeout_secs.unwrap_or(60));
        if setup_timeout.is_zero() {
            return Err(c.error("bmc.setup_timeout_secs", "must be at least 1"));
        }
        if idle_timeout < Duration::from_secs(30) {
            return Err(c.error(
                "bmc.idle_timeout_secs",
                "must be at least 30 (pyghmi keeps sessions alive every 30 s)",
            ));
        }
        let mut device = DeviceId::default();
        if let Some(m) = b.manufacturer_id {
            if m > 0x000f_ffff {
                return Err(c.error("bmc.manufacturer_id", "must fit in 20 bits"));
            }
            if m == 10876 {
                return Err(c.error(
                    "bmc.manufacturer_id",
                    "10876 is Supermicro's: Ironic would change its UEFI boot device codes",
                ));
            }
            device.manufacturer_id = m;
        }
        if let Some(p) = b.product_id {
            device.product_id = p;
        }

        if raw.users.is_empty() {
            return Err(c.error("users", "at least one user is needed"));
        }
        let mut users = Vec::new();
        let mut check = novabmc_proto::Users::new();
        for (name, u) in raw.users {
            let key = format!("users.{name}");
            let password = u
                .password
                .resolve()
                .map_err(|e| c.error(&format!("{key}.password"), e))?;
            let privilege = match u.privilege.as_deref() {
                None => Privilege::Administrator,
                Some(p) => parse_privilege(p).ok_or_else(|| {
                    c.error(
                        &format!("{key}.privilege"),
                        format!(
                            "unknown privilege {p:?} (callback, user, operator, administrator)"
                        ),
                    )
                })?,
            };
            check.add(&name, &password, privilege).map_err(|e| {
                let field = match e {
                    novabmc_proto::user::UserError::EmptyPassword(_)
                    | novabmc_proto::user::UserError::PasswordTooLong(_) => "password",
                    _ => "name",
                };
                c.error(&format!("{key}.{field}"), e.to_string())
            })?;
            users.push(UserConfig {
                name,
                password,
                privilege,
            });
        }

        let backend = match raw.backend {
            RawBackend::Simulated {
                power_on_ms,
                power_off_ms,
                efi,
            } => {
                let d = SimulatedConfig::default();
                BackendConfig::Simulated(SimulatedConfig {
                    power_on: power_on_ms.map(Duration::from_millis).unwrap_or(d.power_on),
                    power_off: power_off_ms
                        .map(Duration::from_millis)
                        .unwrap_or(d.power_off),
                    efi: efi.unwrap_or(d.efi),
                })
            }
        };

        if raw.nodes.is_empty() {
            return Err(c.error("nodes", "at least one node is needed"));
        }
        let mut nodes: Vec<NodeConfig> = Vec::new();
        for (name, n) in raw.nodes {
            let key = format!("nodes.{name}");
            let port = n.port.unwrap_or(DEFAULT_PORT);
            if port == 0 {
                return Err(c.error(&format!("{key}.port"), "must not be 0"));
            }
            let listen = SocketAddr::new(n.address, port);
            if n.address.is_unspecified() || n.address.is_multicast() {
                return Err(c.error(
                    &format!("{key}.address"),
                    "must be one unicast address: replies must leave from the address the request hit",
                ));
            }
            if let Some(other) = nodes.iter().find(|o| o.listen == listen) {
                return Err(c.error(
                    &format!("{key}.address"),
                    format!("{listen} is already used by node {}", other.name),
                ));
            }
            let server = n.server.unwrap_or_else(|| name.clone());
            if server.trim().is_empty() {
                return Err(c.error(&format!("{key}.server"), "must not be empty"));
            }
            nodes.push(NodeConfig {
                name,
                listen,
                server,
            });
        }

        Ok(Config {
            bmc: BmcSettings {
                cipher_suites,
                max_sessions,
                kg,
                setup_timeout,
                idle_timeout,
                device,
            },
            users,
            backend,
            nodes,
        })
    }

    /// The engine configuration all nodes share.
    pub fn engine_config(&self) -> novabmc_proto::BmcConfig {
        let mut users = novabmc_proto::Users::new();
        for u in &self.users {
            // Validated above; a failure here would be a bug, reported by
            // leaving the user out rather than by a panic.
            if let Err(e) = users.add(&u.name, &u.password, u.privilege) {
                tracing::error!(user = %u.name, error = %e, "user rejected");
            }
        }
        let mut c = novabmc_proto::BmcConfig::new(users);
        c.kg = self.bmc.kg.as_ref().map(|k| Zeroizing::new(k.to_vec()));
        c.cipher_suites = self.bmc.cipher_suites;
        c.max_sessions = self.bmc.max_sessions;
        c.timeouts.setup = self.bmc.setup_timeout;
        c.timeouts.idle = self.bmc.idle_timeout;
        c.device = self.bmc.device;
        c
    }
}

/// Parses a privilege name as ipmitool spells it (any case).
pub fn parse_privilege(s: &str) -> Option<Privilege> {
    match s.to_ascii_lowercase().as_str() {
        "callback" => Some(Privilege::Callback),
        "user" => Some(Privilege::User),
        "operator" => Some(Privilege::Operator),
        "administrator" | "admin" => Some(Privilege::Administrator),
        _ => None,
    }
}

/// figment's errors already name the key and the source; join the chain.
fn format_figment_error(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
// figment's Jail closures return its own large error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    const GOOD: &str = r#"
        [users.admin]
        password = "password"

        [nodes.node-0]
        address = "127.0.0.1"
        port = 6230
    "#;

    fn load(jail: &mut Jail, text: &str) -> Result<Config, LoadError> {
        jail.create_file("novabmc.toml", text).expect("write");
        Config::load(Path::new("novabmc.toml"))
    }

    #[test]
    fn minimal_file_gets_defaults() {
        Jail::expect_with(|jail| {
            let c = load(jail, GOOD).expect("valid");
            assert_eq!(c.nodes.len(), 1);
            assert_eq!(c.nodes[0].server, "node-0");
            assert_eq!(c.bmc.max_sessions, 32);
            assert_eq!(c.users[0].privilege, Privilege::Administrator);
            assert_eq!(c.bmc.cipher_suites, CipherSuites::default());
            Ok(())
        });
    }

    #[test]
    fn errors_name_key_and_file() {
        Jail::expect_with(|jail| {
            let text = GOOD.replace(
                "password = \"password\"",
                "password = \"123456789012345678901\"",
            );
            let e = load(jail, &text).expect_err("too long").to_string();
            assert!(e.contains("users.admin.password"), "{e}");
            assert!(e.contains("novabmc.toml"), "{e}");
            assert!(e.contains("20 bytes"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_errors() {
        Jail::expect_with(|jail| {
            let text = format!("{GOOD}\n[bmc]\nmax_sesions = 4\n");
            let e = load(jail, &text).expect_err("typo").to_string();
            assert!(e.contains("max_sesions"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_and_is_named() {
        Jail::expect_with(|jail| {
            jail.set_env("NOVABMC_BMC__MAX_SESSIONS", "99");
            let e = load(jail, GOOD).expect_err("out of range").to_string();
            assert!(e.contains("bmc.max_sessions"), "{e}");
            assert!(e.contains("NOVABMC_"), "{e}");
            jail.set_env("NOVABMC_BMC__MAX_SESSIONS", "8");
            let c = load(jail, GOOD).expect("valid");
            assert_eq!(c.bmc.max_sessions, 8);
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_refused() {
        Jail::expect_with(|jail| {
            let cases = [
                ("[bmc]\ncipher_suites = [0]\n", "bmc.cipher_suites"),
                ("[bmc]\ncipher_suites = []\n", "bmc.cipher_suites"),
                ("[bmc]\nkg = \"zz\"\n", "bmc.kg"),
                ("[bmc]\nkg = \"00ff\"\n", "bmc.kg"),
                ("[bmc]\nmanufacturer_id = 10876\n", "bmc.manufacturer_id"),
                (
                    "[users.op]\npassword = \"x\"\nprivilege = \"boss\"\n",
                    "users.op.privilege",
                ),
                (
                    "[nodes.dup]\naddress = \"127.0.0.1\"\nport = 6230\n",
                    "nodes.node-0.address",
                ),
                ("[nodes.any]\naddress = \"0.0.0.0\"\n", "nodes.any.address"),
                (
                    "[users.f]\npassword = { file = \"missing.pw\" }\n",
                    "users.f.password",
                ),
                (
                    "[users.e]\npassword = { env = \"NOVABMC_TEST_UNSET\" }\n",
                    "users.e.password",
                ),
            ];
            for (extra, key) in cases {
                let e = load(jail, &format!("{GOOD}\n{extra}"))
                    .expect_err(extra)
                    .to_string();
                assert!(e.contains(key), "{extra}: {e}");
            }
            Ok(())
        });
    }

    #[test]
    fn secrets_from_file_and_env() {
        Jail::expect_with(|jail| {
            jail.create_file("admin.pw", "s3cret\n")?;
            jail.set_env("NOVABMC_TEST_KG", "0x0102030405");
            let text = r#"
                [bmc]
                kg = { env = "NOVABMC_TEST_KG" }
                [users.admin]
                password = { file = "admin.pw" }
                [nodes.n]
                address = "::1"
            "#;
            let c = load(jail, text).expect("valid");
            assert_eq!(&c.users[0].password[..], b"s3cret");
            assert_eq!(c.bmc.kg.as_deref(), Some(&[1u8, 2, 3, 4, 5][..]));
            assert_eq!(c.nodes[0].listen.port(), DEFAULT_PORT);
            let shown = format!("{c:?}");
            assert!(
                !shown.contains("s3cret") && !shown.contains("115, 51"),
                "{shown}"
            );
            Ok(())
        });
    }

    #[test]
    fn missing_file_is_an_error() {
        let e = Config::load(Path::new("/nonexistent/novabmc.toml")).expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/novabmc.toml"));
    }
}
