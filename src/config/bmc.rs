//! `[bmc]`: the IPMI engine settings every node shares: cipher suites
//! (IPMI 2.0 section 22.15.2), session limits and timeouts (section 6.12),
//! the BMC key Kg (section 13.31) and Get Device ID's identity (section
//! 20.1). Defaults are the engine's own (`novabmc_proto`), so they are
//! defined once.

use std::time::Duration;

use novabmc_proto::session::budget::DEFAULT_RESERVE;
use novabmc_proto::session::table::{MAX_ESTABLISHED, MAX_IDLE_TIMEOUT, MAX_SETUP_TIMEOUT};
use novabmc_proto::{BmcConfig, CipherSuites, DeviceId};
use serde::Deserialize;

use super::error::{Checker, ConfigError};
use super::secret::{Secret, SecretBytes, warn_if_exposed};

/// `bmc.max_sessions_total` when not given (or four per node, if that is
/// more): about 18 MiB of sessions at most, all of them established.
pub const DEFAULT_MAX_SESSIONS_TOTAL: usize = 16384;

/// The shortest idle timeout: pyghmi keeps sessions alive every 30 s.
const MIN_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Supermicro's IANA number: Ironic changes its UEFI boot device codes
/// for it.
const SUPERMICRO: u32 = 10876;

/// `[bmc]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBmc {
    cipher_suites: Option<Vec<u8>>,
    max_sessions: Option<usize>,
    max_sessions_total: Option<usize>,
    kg: Option<Secret>,
    setup_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    manufacturer_id: Option<u32>,
    product_id: Option<u16>,
    sol_privilege: Option<String>,
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
    /// Where the key came from (see [`super::UserConfig::password_source`]).
    pub kg_source: Option<Secret>,
    /// How long a half-open session may live.
    pub setup_timeout: Duration,
    /// How long an idle session may live.
    pub idle_timeout: Duration,
    /// Get Device ID's answer.
    pub device: DeviceId,
    /// The lowest privilege that may activate SOL (`bmc.sol_privilege`),
    /// until `sol set privilege-level` changes it for a node.
    pub sol_privilege: novabmc_proto::Privilege,
}

impl Default for BmcSettings {
    /// The engine's defaults, without a key.
    fn default() -> Self {
        let engine = BmcConfig::new(novabmc_proto::Users::new());
        BmcSettings {
            cipher_suites: engine.cipher_suites,
            max_sessions: engine.max_sessions,
            max_sessions_total: DEFAULT_MAX_SESSIONS_TOTAL,
            kg: None,
            kg_source: None,
            setup_timeout: engine.timeouts.setup,
            idle_timeout: engine.timeouts.idle,
            device: engine.device,
            sol_privilege: engine.sol_privilege,
        }
    }
}

/// Validates `[bmc]` for a configuration of `nodes` nodes.
pub(super) fn check(b: RawBmc, nodes: usize, c: &Checker<'_>) -> Result<BmcSettings, ConfigError> {
    let d = BmcSettings::default();
    let cipher_suites = match &b.cipher_suites {
        None => d.cipher_suites,
        Some(ids) => {
            let s = CipherSuites::from_ids(ids)
                .map_err(|e| c.error("bmc.cipher_suites", e.to_string()))?;
            if s.is_empty() {
                return Err(c.error("bmc.cipher_suites", "at least one cipher suite is needed"));
            }
            s
        }
    };
    let max_sessions = b.max_sessions.unwrap_or(d.max_sessions);
    if !(1..=MAX_ESTABLISHED).contains(&max_sessions) {
        return Err(c.error(
            "bmc.max_sessions",
            "must be between 1 and 255 (session handles are one byte)",
        ));
    }
    let kg = match &b.kg {
        None => None,
        Some(secret) => Some(check_kg(secret, c)?),
    };
    // Upper bounds keep every deadline the engine computes far from
    // overflowing.
    let setup_timeout = b
        .setup_timeout_secs
        .map_or(d.setup_timeout, Duration::from_secs);
    if setup_timeout.is_zero() || setup_timeout > MAX_SETUP_TIMEOUT {
        return Err(c.error(
            "bmc.setup_timeout_secs",
            format!("must be between 1 and {}", MAX_SETUP_TIMEOUT.as_secs()),
        ));
    }
    let idle_timeout = b
        .idle_timeout_secs
        .map_or(d.idle_timeout, Duration::from_secs);
    if idle_timeout < MIN_IDLE_TIMEOUT || idle_timeout > MAX_IDLE_TIMEOUT {
        return Err(c.error(
            "bmc.idle_timeout_secs",
            format!(
                "must be between {} (pyghmi keeps sessions alive every 30 s) and {}",
                MIN_IDLE_TIMEOUT.as_secs(),
                MAX_IDLE_TIMEOUT.as_secs()
            ),
        ));
    }
    let sol_privilege = match &b.sol_privilege {
        None => d.sol_privilege,
        Some(p) => super::users::parse_privilege(p).ok_or_else(|| {
            c.error(
                "bmc.sol_privilege",
                "must be user, operator or administrator",
            )
        })?,
    };
    let mut device = d.device;
    if let Some(m) = b.manufacturer_id {
        if m > 0x000f_ffff {
            return Err(c.error("bmc.manufacturer_id", "must fit in 20 bits"));
        }
        if m == SUPERMICRO {
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
    // Each node keeps a few sessions of its own (so a flood on others
    // cannot lock it out); the cap must leave room for all of them.
    let reserved = nodes.saturating_mul(DEFAULT_RESERVE);
    let max_sessions_total = match b.max_sessions_total {
        None => d.max_sessions_total.max(reserved),
        Some(t) if t == 0 || t < reserved => {
            return Err(c.error(
                "bmc.max_sessions_total",
                format!(
                    "must be at least {}: each of the {nodes} nodes keeps {DEFAULT_RESERVE} \
                     sessions of its own",
                    reserved.max(1),
                ),
            ));
        }
        Some(t) => t,
    };
    Ok(BmcSettings {
        cipher_suites,
        max_sessions,
        max_sessions_total,
        kg,
        kg_source: b.kg,
        setup_timeout,
        idle_timeout,
        device,
        sol_privilege,
    })
}

/// The key as ipmitool's `-y` takes it: hexadecimal, 1 to 20 bytes.
fn check_kg(secret: &Secret, c: &Checker<'_>) -> Result<SecretBytes, ConfigError> {
    warn_if_exposed("bmc.kg", secret);
    let not_hex = || c.error("bmc.kg", "must be hexadecimal, as ipmitool -y takes it");
    let text = secret.resolve().map_err(|e| c.error("bmc.kg", e))?;
    let text = std::str::from_utf8(&text).map_err(|_| not_hex())?;
    let key = hex::decode(text.trim().trim_start_matches("0x")).map_err(|_| not_hex())?;
    if key.is_empty() || key.len() > 20 {
        return Err(c.error("bmc.kg", "must be 1 to 20 bytes (2 to 40 hex digits)"));
    }
    if key[0] == 0 {
        return Err(c.error(
            "bmc.kg",
            "must not start with a zero byte: ipmitool treats such a key as unset",
        ));
    }
    Ok(SecretBytes::new(key))
}
