//! The configuration file: one TOML file, with `NOVABMC_` environment
//! variables overriding any key (`NOVABMC_BMC__MAX_SESSIONS=16`,
//! `NOVABMC_NODES__RACK1__PORT=6240`; a double underscore separates
//! levels, and only the `bmc`, `users`, `backend`, `nodes` and `routing`
//! sections are read from the environment).
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
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;

use crate::backend::nova::cloud::CloudSource;
use crate::backend::nova::{NetworkBoot, NovaNode, NovaSettings};
use figment::providers::{Env, Format, Toml};
use novabmc_proto::session::budget::DEFAULT_RESERVE;
use novabmc_proto::session::table::{MAX_ESTABLISHED, MAX_IDLE_TIMEOUT, MAX_SETUP_TIMEOUT};
use novabmc_proto::{CipherSuites, DeviceId, Privilege, SessionBudget};
use serde::Deserialize;
use zeroize::Zeroizing;

/// The IPMI port.
pub const DEFAULT_PORT: u16 = 623;

/// `bmc.max_sessions_total` when not given (or four per node, if that is
/// more): about 18 MiB of sessions at most, all of them established.
pub const DEFAULT_MAX_SESSIONS_TOTAL: usize = 16384;

/// Environment variables override keys only under these sections, so other
/// `NOVABMC_` variables (`NOVABMC_LOG`, secrets named in the file) are not
/// mistaken for configuration.
const SECTIONS: [&str; 5] = ["bmc__", "users__", "backend__", "nodes__", "routing__"];

/// The priority of a node's `from ADDRESS lookup TABLE` rule when
/// `nodes.NAME.route.priority` is not given: well before the main table's
/// rule (32766), so the node's table wins, and far enough from 0 that an
/// operator can still put rules of their own in front.
pub const DEFAULT_RULE_PRIORITY: u32 = 1000;

/// Routing tables the kernel gives a meaning (unspec, default, main,
/// local); a node's table must be none of them.
pub const RESERVED_TABLES: [u32; 4] = [0, 253, 254, 255];

/// The main table's rule priority: a node's rule must come before it.
const MAIN_RULE_PRIORITY: u32 = 32766;

/// Longest interface name the kernel accepts (IFNAMSIZ less the NUL).
const MAX_INTERFACE_NAME: usize = 15;

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
fn warn_if_exposed(key: &str, secret: &Secret) {
    if let Some((file, mode)) = secret.exposed_file() {
        tracing::warn!(
            key,
            file = %file.display(),
            mode = format_args!("{mode:03o}"),
            "secret file is readable by group or others; restrict it (chmod 600)"
        );
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
    #[serde(default)]
    routing: RawRouting,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouting {
    keep_routes: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBmc {
    cipher_suites: Option<Vec<u8>>,
    max_sessions: Option<usize>,
    max_sessions_total: Option<usize>,
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
    Nova {
        cloud: Option<String>,
        clouds_yaml: Option<PathBuf>,
        refresh_secs: Option<f64>,
        network_boot: Option<String>,
        ipxe_image: Option<String>,
        request_timeout_secs: Option<f64>,
        give_up_after_secs: Option<u64>,
        max_concurrent_calls: Option<usize>,
        state_dir: Option<PathBuf>,
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
    route: Option<RawRoute>,
    network_boot: Option<String>,
    ipxe_image: Option<String>,
    efi: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    table: u32,
    gateway: IpAddr,
    interface: Option<String>,
    priority: Option<u32>,
}

/// A user as configured.
#[derive(Debug, Clone)]
pub struct UserConfig {
    /// Login name.
    pub name: String,
    /// Password bytes.
    pub password: SecretBytes,
    /// Where the password came from, so `novabmc export --password-ref`
    /// can name the file or variable instead of printing the secret.
    pub password_source: Secret,
    /// Privilege limit.
    pub privilege: Privilege,
}

/// Settings of the IPMI engine shared by all nodes.
#[derive(Debug, Clone)]
pub struct BmcSettings {
    /// Accepted and advertised cipher suites.
    pub cipher_suites: CipherSuites,
    /// Established sessions per node (1..=255).
    pub max_sessions: usize,
    /// Sessions, half-open ones included, across all nodes.
    pub max_sessions_total: usize,
    /// The BMC key Kg, if any.
    pub kg: Option<SecretBytes>,
    /// Where the key came from (see [`UserConfig::password_source`]).
    pub kg_source: Option<Secret>,
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

/// The Nova backend's settings (`[backend] type = "nova"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NovaConfig {
    /// Cloud, refresh interval, timeouts.
    pub settings: NovaSettings,
    /// Default network boot mode of the nodes.
    pub network_boot: NetworkBoot,
    /// Default iPXE image (name or ID).
    pub ipxe_image: Option<String>,
}

/// Which cloud the nodes live in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendConfig {
    /// The in-process simulated cloud.
    Simulated(SimulatedConfig),
    /// OpenStack Nova.
    Nova(NovaConfig),
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
    /// Policy routing for a node whose address has a NIC of its own.
    pub route: Option<RouteConfig>,
    /// Network boot mode, overriding the backend's (Nova only).
    pub network_boot: Option<NetworkBoot>,
    /// iPXE image, overriding the backend's (Nova only).
    pub ipxe_image: Option<String>,
    /// EFI firmware, instead of reading the server's image.
    pub efi: Option<bool>,
}

/// `[nodes.NAME.route]`: replies from the node's address leave through its
/// own NIC (`from ADDRESS lookup TABLE` and `default via GATEWAY dev
/// INTERFACE table TABLE`), because a cloud drops packets whose source
/// address does not belong to the port they leave by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// The node's routing table (never 0, 253, 254 or 255).
    pub table: u32,
    /// The next hop on the node's subnet, of the address's family.
    pub gateway: IpAddr,
    /// The NIC; `None` means the one holding the node's address.
    pub interface: Option<String>,
    /// The rule's priority.
    pub priority: u32,
}

/// `[routing]`: settings for every node's routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingConfig {
    /// Leave the rules and routes in place when `serve` stops, so replies
    /// keep their path across a restart; by default they are removed.
    pub keep_routes: bool,
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
    /// Routing settings.
    pub routing: RoutingConfig,
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
        let max_sessions = b.max_sessions.unwrap_or(MAX_ESTABLISHED);
        if !(1..=MAX_ESTABLISHED).contains(&max_sessions) {
            return Err(c.error(
                "bmc.max_sessions",
                "must be between 1 and 255 (session handles are one byte)",
            ));
        }
        let kg = match &b.kg {
            None => None,
            Some(secret) => {
                warn_if_exposed("bmc.kg", secret);
                let text = secret.resolve().map_err(|e| c.error("bmc.kg", e))?;
                let text = std::str::from_utf8(&text).map_err(|_| {
                    c.error("bmc.kg", "must be hexadecimal, as ipmitool -y takes it")
                })?;
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
        // Upper bounds keep every deadline the engine computes far from
        // overflowing.
        let setup_timeout = Duration::from_secs(b.setup_timeout_secs.unwrap_or(5));
        if setup_timeout.is_zero() || setup_timeout > MAX_SETUP_TIMEOUT {
            return Err(c.error(
                "bmc.setup_timeout_secs",
                format!("must be between 1 and {}", MAX_SETUP_TIMEOUT.as_secs()),
            ));
        }
        let idle_timeout = Duration::from_secs(b.idle_timeout_secs.unwrap_or(60));
        if idle_timeout < Duration::from_secs(30) || idle_timeout > MAX_IDLE_TIMEOUT {
            return Err(c.error(
                "bmc.idle_timeout_secs",
                format!(
                    "must be between 30 (pyghmi keeps sessions alive every 30 s) and {}",
                    MAX_IDLE_TIMEOUT.as_secs()
                ),
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
            warn_if_exposed(&format!("{key}.password"), &u.password);
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
                password_source: u.password,
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
            RawBackend::Nova {
                cloud,
                clouds_yaml,
                refresh_secs,
                network_boot,
                ipxe_image,
                request_timeout_secs,
                give_up_after_secs,
                max_concurrent_calls,
                state_dir,
            } => {
                let source = match (cloud, clouds_yaml) {
                    (Some(name), file) => {
                        if let Some(f) = &file
                            && std::fs::metadata(f).is_err()
                        {
                            return Err(c.error(
                                "backend.clouds_yaml",
                                format!("{} cannot be read", f.display()),
                            ));
                        }
                        CloudSource::Named { name, file }
                    }
                    (None, Some(_)) => {
                        return Err(c.error(
                            "backend.clouds_yaml",
                            "needs backend.cloud to name the cloud in it",
                        ));
                    }
                    (None, None) => CloudSource::Environment,
                };
                let mut settings = NovaSettings::new(source);
                if let Some(r) = refresh_secs {
                    if !(0.1..=3600.0).contains(&r) {
                        return Err(c.error("backend.refresh_secs", "must be between 0.1 and 3600"));
                    }
                    settings.refresh = Duration::from_secs_f64(r);
                }
                if let Some(t) = request_timeout_secs {
                    if !(1.0..=600.0).contains(&t) {
                        return Err(
                            c.error("backend.request_timeout_secs", "must be between 1 and 600")
                        );
                    }
                    settings.request_timeout = Duration::from_secs_f64(t);
                }
                if let Some(g) = give_up_after_secs {
                    if g < 10 {
                        return Err(c.error("backend.give_up_after_secs", "must be at least 10"));
                    }
                    settings.give_up_after = Duration::from_secs(g);
                }
                if let Some(m) = max_concurrent_calls {
                    if m == 0 {
                        return Err(c.error("backend.max_concurrent_calls", "must be at least 1"));
                    }
                    settings.max_concurrent_calls = m;
                }
                if let Some(d) = state_dir {
                    if d.as_os_str().is_empty() {
                        return Err(c.error("backend.state_dir", "must not be empty"));
                    }
                    settings.state_dir = d;
                }
                let network_boot = match network_boot.as_deref() {
                    None => NetworkBoot::Rebuild,
                    Some(m) => NetworkBoot::parse(m).ok_or_else(|| {
                        c.error(
                            "backend.network_boot",
                            format!("unknown mode {m:?} (rebuild, rescue, metadata)"),
                        )
                    })?,
                };
                BackendConfig::Nova(NovaConfig {
                    settings,
                    network_boot,
                    ipxe_image: ipxe_image.filter(|i| !i.trim().is_empty()),
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
            let route = match n.route {
                None => None,
                Some(r) => Some(check_route(&key, n.address, r, c)?),
            };
            let network_boot = match n.network_boot.as_deref() {
                None => None,
                Some(m) => Some(NetworkBoot::parse(m).ok_or_else(|| {
                    c.error(
                        &format!("{key}.network_boot"),
                        format!("unknown mode {m:?} (rebuild, rescue, metadata)"),
                    )
                })?),
            };
            if let BackendConfig::Nova(nova) = &backend {
                let mode = network_boot.unwrap_or(nova.network_boot);
                if mode.needs_image() && n.ipxe_image.is_none() && nova.ipxe_image.is_none() {
                    return Err(c.error(
                        &format!("{key}.ipxe_image"),
                        "network boot by rebuild or rescue needs an iPXE image \
                         (here or as backend.ipxe_image)",
                    ));
                }
            } else if n.network_boot.is_some() || n.ipxe_image.is_some() {
                let field = if n.network_boot.is_some() {
                    "network_boot"
                } else {
                    "ipxe_image"
                };
                return Err(c.error(
                    &format!("{key}.{field}"),
                    "only applies to the nova backend",
                ));
            }
            nodes.push(NodeConfig {
                name,
                listen,
                server,
                route,
                network_boot,
                ipxe_image: n.ipxe_image,
                efi: n.efi,
            });
        }
        check_shared_routes(&nodes, c)?;
        // Each node keeps a few sessions of its own (so a flood on others
        // cannot lock it out); the cap must leave room for all of them.
        let reserved = nodes.len().saturating_mul(DEFAULT_RESERVE);
        let max_sessions_total = match b.max_sessions_total {
            None => DEFAULT_MAX_SESSIONS_TOTAL.max(reserved),
            Some(t) if t == 0 || t < reserved => {
                return Err(c.error(
                    "bmc.max_sessions_total",
                    format!(
                        "must be at least {}: each of the {} nodes keeps {DEFAULT_RESERVE} \
                         sessions of its own",
                        reserved.max(1),
                        nodes.len()
                    ),
                ));
            }
            Some(t) => t,
        };
        let routing = RoutingConfig {
            keep_routes: raw.routing.keep_routes.unwrap_or(false),
        };

        Ok(Config {
            bmc: BmcSettings {
                cipher_suites,
                max_sessions,
                max_sessions_total,
                kg,
                kg_source: b.kg,
                setup_timeout,
                idle_timeout,
                device,
            },
            users,
            backend,
            nodes,
            routing,
        })
    }

    /// The nodes as the Nova backend needs them (defaults applied).
    pub fn nova_nodes(&self, nova: &NovaConfig) -> Vec<NovaNode> {
        self.nodes
            .iter()
            .map(|n| NovaNode {
                name: n.name.clone(),
                server: n.server.clone(),
                network_boot: n.network_boot.unwrap_or(nova.network_boot),
                ipxe_image: n.ipxe_image.clone().or_else(|| nova.ipxe_image.clone()),
                efi: n.efi,
            })
            .collect()
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
        // Validated to hold every node's reserve; a hand-built
        // configuration that does not is served without a global cap
        // rather than refused here.
        c.budget = Arc::new(
            SessionBudget::new(
                self.bmc.max_sessions_total,
                self.nodes.len(),
                DEFAULT_RESERVE,
            )
            .unwrap_or_else(|_| SessionBudget::unlimited()),
        );
        c.timeouts.setup = self.bmc.setup_timeout;
        c.timeouts.idle = self.bmc.idle_timeout;
        c.device = self.bmc.device;
        c
    }
}

/// Validates one node's `[nodes.NAME.route]`; `key` is `nodes.NAME`.
fn check_route(
    key: &str,
    address: IpAddr,
    r: RawRoute,
    c: &Checker<'_>,
) -> Result<RouteConfig, ConfigError> {
    if RESERVED_TABLES.contains(&r.table) {
        return Err(c.error(
            &format!("{key}.route.table"),
            format!(
                "table {} is reserved (0 unspec, 253 default, 254 main, 255 local); \
                 give the node a table of its own",
                r.table
            ),
        ));
    }
    if r.gateway.is_ipv4() != address.is_ipv4() {
        return Err(c.error(
            &format!("{key}.route.gateway"),
            format!(
                "{} is not of the same family as the address {address}",
                r.gateway
            ),
        ));
    }
    if r.gateway.is_unspecified() || r.gateway.is_multicast() || r.gateway == address {
        return Err(c.error(
            &format!("{key}.route.gateway"),
            "must be the unicast address of the router on the node's subnet",
        ));
    }
    if let Some(name) = &r.interface
        && (name.is_empty()
            || name.len() > MAX_INTERFACE_NAME
            || name.contains(['/', ':'])
            || name.contains(char::is_whitespace))
    {
        return Err(c.error(
            &format!("{key}.route.interface"),
            format!(
                "{name:?} is not an interface name (1 to {MAX_INTERFACE_NAME} bytes, \
                 no '/', ':' or spaces)"
            ),
        ));
    }
    let priority = r.priority.unwrap_or(DEFAULT_RULE_PRIORITY);
    if !(1..MAIN_RULE_PRIORITY).contains(&priority) {
        return Err(c.error(
            &format!("{key}.route.priority"),
            format!(
                "must be between 1 and {}: the rule must come after the local table's \
                 (0) and before the main table's ({MAIN_RULE_PRIORITY})",
                MAIN_RULE_PRIORITY - 1
            ),
        ));
    }
    Ok(RouteConfig {
        table: r.table,
        gateway: r.gateway,
        interface: r.interface,
        priority,
    })
}

/// Nodes may share a table (and so its one default route) only if they
/// agree on that route, and nodes sharing an address need one rule for it,
/// so their routes must match.
fn check_shared_routes(nodes: &[NodeConfig], c: &Checker<'_>) -> Result<(), ConfigError> {
    for (i, n) in nodes.iter().enumerate() {
        let Some(r) = &n.route else { continue };
        for o in &nodes[..i] {
            let Some(or) = &o.route else { continue };
            if or.table == r.table && (or.gateway != r.gateway || or.interface != r.interface) {
                return Err(c.error(
                    &format!("nodes.{}.route.table", n.name),
                    format!(
                        "table {} is also node {}'s, with {}; nodes sharing a table \
                         must share its gateway and interface",
                        r.table,
                        o.name,
                        describe_next_hop(or)
                    ),
                ));
            }
            if o.listen.ip() == n.listen.ip() && or != r {
                return Err(c.error(
                    &format!("nodes.{}.route", n.name),
                    format!(
                        "node {} has the same address {} with a different route; \
                         one address has one rule, so their routes must be the same",
                        o.name,
                        n.listen.ip()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn describe_next_hop(r: &RouteConfig) -> String {
    match &r.interface {
        Some(i) => format!("gateway {} on {i}", r.gateway),
        None => format!("gateway {} on the address's interface", r.gateway),
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
            assert_eq!(c.bmc.max_sessions, 255);
            assert_eq!(c.bmc.max_sessions_total, DEFAULT_MAX_SESSIONS_TOTAL);
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
            jail.set_env("NOVABMC_BMC__MAX_SESSIONS", "256");
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
                ("[bmc]\nmax_sessions = 0\n", "bmc.max_sessions"),
                ("[bmc]\nmax_sessions_total = 3\n", "bmc.max_sessions_total"),
                ("[bmc]\nsetup_timeout_secs = 61\n", "bmc.setup_timeout_secs"),
                (
                    "[bmc]\nsetup_timeout_secs = 9223372036854775807\n",
                    "bmc.setup_timeout_secs",
                ),
                (
                    "[bmc]\nidle_timeout_secs = 86401\n",
                    "bmc.idle_timeout_secs",
                ),
                (
                    "[bmc]\nidle_timeout_secs = 9223372036854775807\n",
                    "bmc.idle_timeout_secs",
                ),
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
    fn secret_files_readable_by_others_are_noticed() {
        use std::os::unix::fs::PermissionsExt;
        Jail::expect_with(|jail| {
            jail.create_file("open.pw", "s3cret")?;
            jail.create_file("closed.pw", "s3cret")?;
            let set =
                |f: &str, mode| std::fs::set_permissions(f, std::fs::Permissions::from_mode(mode));
            set("open.pw", 0o644).expect("chmod");
            set("closed.pw", 0o600).expect("chmod");
            let open = Secret::File {
                file: "open.pw".into(),
            };
            let closed = Secret::File {
                file: "closed.pw".into(),
            };
            assert_eq!(
                open.exposed_file().map(|(_, m)| m),
                Some(0o644),
                "group and others may read it"
            );
            assert_eq!(closed.exposed_file(), None);
            assert_eq!(Secret::Inline("x".into()).exposed_file(), None);
            Ok(())
        });
    }

    #[test]
    fn the_session_cap_leaves_room_for_every_node() {
        Jail::expect_with(|jail| {
            let mut text = format!("{GOOD}\n[bmc]\nmax_sessions_total = 8\n");
            let c = load(jail, &text).expect("1 node, 8 sessions");
            assert_eq!(c.bmc.max_sessions_total, 8);
            for i in 1..3 {
                text.push_str(&format!(
                    "[nodes.extra-{i}]\naddress = \"127.0.0.1\"\nport = {}\n",
                    7000 + i
                ));
            }
            let e = load(jail, &text).expect_err("3 nodes need 12").to_string();
            assert!(e.contains("bmc.max_sessions_total"), "{e}");
            assert!(e.contains("at least 12"), "{e}");
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
    fn routes_are_optional_and_get_defaults() {
        Jail::expect_with(|jail| {
            let text = format!(
                "{GOOD}\n[nodes.r4]\naddress = \"10.0.2.10\"\n[nodes.r4.route]\n\
                 table = 1002\ngateway = \"10.0.2.1\"\n\
                 [nodes.r6]\naddress = \"fd00:3::10\"\n[nodes.r6.route]\n\
                 table = 300\ngateway = \"fe80::1\"\ninterface = \"eth3\"\npriority = 50\n"
            );
            let c = load(jail, &text).expect("valid");
            assert!(!c.routing.keep_routes);
            let by_name = |n: &str| c.nodes.iter().find(|x| x.name == n).expect("node");
            assert_eq!(by_name("node-0").route, None);
            assert_eq!(
                by_name("r4").route,
                Some(RouteConfig {
                    table: 1002,
                    gateway: "10.0.2.1".parse().expect("ip"),
                    interface: None,
                    priority: DEFAULT_RULE_PRIORITY,
                })
            );
            let r6 = by_name("r6").route.clone().expect("route");
            assert_eq!((r6.table, r6.priority), (300, 50));
            assert_eq!(r6.interface.as_deref(), Some("eth3"));
            Ok(())
        });
    }

    #[test]
    fn keep_routes_from_file_and_environment() {
        Jail::expect_with(|jail| {
            let c = load(jail, &format!("{GOOD}\n[routing]\nkeep_routes = true\n")).expect("ok");
            assert!(c.routing.keep_routes);
            jail.set_env("NOVABMC_ROUTING__KEEP_ROUTES", "false");
            let c = load(jail, &format!("{GOOD}\n[routing]\nkeep_routes = true\n")).expect("ok");
            assert!(!c.routing.keep_routes);
            Ok(())
        });
    }

    #[test]
    fn bad_routes_are_refused_naming_the_key() {
        Jail::expect_with(|jail| {
            let node = |route: &str| {
                format!("[nodes.b]\naddress = \"10.0.2.10\"\n[nodes.b.route]\n{route}\n")
            };
            let mut cases = Vec::new();
            for table in RESERVED_TABLES {
                cases.push((
                    node(&format!("table = {table}\ngateway = \"10.0.2.1\"")),
                    "nodes.b.route.table",
                    "reserved",
                ));
            }
            cases.extend([
                (
                    node("table = 7\ngateway = \"fd00::1\""),
                    "nodes.b.route.gateway",
                    "same family",
                ),
                (
                    node("table = 7\ngateway = \"10.0.2.10\""),
                    "nodes.b.route.gateway",
                    "unicast",
                ),
                (
                    node("table = 7\ngateway = \"10.0.2.1\"\ninterface = \"a/b\""),
                    "nodes.b.route.interface",
                    "not an interface name",
                ),
                (
                    node("table = 7\ngateway = \"10.0.2.1\"\ninterface = \"sixteen-chars-xx\""),
                    "nodes.b.route.interface",
                    "not an interface name",
                ),
                (
                    node("table = 7\ngateway = \"10.0.2.1\"\npriority = 0"),
                    "nodes.b.route.priority",
                    "32765",
                ),
                (
                    node("table = 7\ngateway = \"10.0.2.1\"\npriority = 32766"),
                    "nodes.b.route.priority",
                    "32765",
                ),
                (node("table = 7"), "gateway", "missing"),
                (
                    node("table = 7\ngateway = \"10.0.2.1\"\nmetric = 3"),
                    "metric",
                    "unknown",
                ),
                (
                    format!(
                        "{}[nodes.c]\naddress = \"10.0.3.10\"\n[nodes.c.route]\n\
                         table = 7\ngateway = \"10.0.3.1\"\n",
                        node("table = 7\ngateway = \"10.0.2.1\"")
                    ),
                    "nodes.c.route.table",
                    "also node b's",
                ),
                (
                    format!(
                        "{}[nodes.c]\naddress = \"10.0.2.10\"\nport = 624\n[nodes.c.route]\n\
                         table = 8\ngateway = \"10.0.2.1\"\n",
                        node("table = 7\ngateway = \"10.0.2.1\"")
                    ),
                    "nodes.c.route",
                    "same address",
                ),
            ]);
            for (extra, key, why) in cases {
                let e = load(jail, &format!("{GOOD}\n{extra}"))
                    .expect_err(&extra)
                    .to_string();
                assert!(e.contains(key) && e.contains(why), "{extra}: {e}");
            }
            Ok(())
        });
    }

    #[test]
    fn nodes_may_share_a_table_with_the_same_next_hop() {
        Jail::expect_with(|jail| {
            let mut text = GOOD.to_string();
            for (name, port) in [("a", 623), ("b", 624)] {
                text.push_str(&format!(
                    "[nodes.{name}]\naddress = \"10.0.2.10\"\nport = {port}\n\
                     [nodes.{name}.route]\ntable = 7\ngateway = \"10.0.2.1\"\n"
                ));
            }
            let c = load(jail, &text).expect("valid");
            assert_eq!(c.nodes.iter().filter(|n| n.route.is_some()).count(), 2);
            Ok(())
        });
    }

    #[test]
    fn nova_backend_settings() {
        Jail::expect_with(|jail| {
            jail.create_file("clouds.yaml", "clouds: {}\n")?;
            let nova = |backend: &str, node: &str| {
                format!(
                    "[users.admin]\npassword = \"pw\"\n[backend]\ntype = \"nova\"\n{backend}\n\
                     [nodes.n]\naddress = \"127.0.0.1\"\nserver = \"vm-1\"\n{node}\n"
                )
            };
            let c = load(
                jail,
                &nova(
                    "cloud = \"sim\"\nclouds_yaml = \"clouds.yaml\"\nrefresh_secs = 2.5\nipxe_image = \"ipxe\"",
                    "network_boot = \"rescue\"\nefi = false",
                ),
            )
            .expect("valid");
            let BackendConfig::Nova(n) = &c.backend else {
                panic!("nova expected");
            };
            assert_eq!(n.settings.refresh, Duration::from_millis(2500));
            let nodes = c.nova_nodes(n);
            assert_eq!(nodes[0].network_boot, NetworkBoot::Rescue);
            assert_eq!(nodes[0].ipxe_image.as_deref(), Some("ipxe"));
            assert_eq!(nodes[0].efi, Some(false));
            let metadata =
                load(jail, &nova("network_boot = \"metadata\"", "")).expect("no image needed");
            assert!(matches!(metadata.backend, BackendConfig::Nova(_)));
            for (backend, node, key) in [
                ("", "", "nodes.n.ipxe_image"),
                ("network_boot = \"pxe\"", "", "backend.network_boot"),
                (
                    "ipxe_image = \"i\"",
                    "network_boot = \"tftp\"",
                    "nodes.n.network_boot",
                ),
                (
                    "clouds_yaml = \"clouds.yaml\"\nipxe_image = \"i\"",
                    "",
                    "backend.clouds_yaml",
                ),
                (
                    "cloud = \"x\"\nclouds_yaml = \"absent.yaml\"\nipxe_image = \"i\"",
                    "",
                    "backend.clouds_yaml",
                ),
                (
                    "refresh_secs = 0.0\nipxe_image = \"i\"",
                    "",
                    "backend.refresh_secs",
                ),
            ] {
                let e = load(jail, &nova(backend, node)).expect_err(key).to_string();
                assert!(e.contains(key), "{key}: {e}");
            }
            let e = load(
                jail,
                &format!(
                    "{GOOD}\n[nodes.x]\naddress = \"127.0.0.2\"\nnetwork_boot = \"rebuild\"\n"
                ),
            )
            .expect_err("simulated backend")
            .to_string();
            assert!(e.contains("nodes.x.network_boot"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn missing_file_is_an_error() {
        let e = Config::load(Path::new("/nonexistent/novabmc.toml")).expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/novabmc.toml"));
    }
}
