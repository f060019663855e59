//! `[backend]`: which cloud the nodes live in, the in-process simulated
//! one or OpenStack Nova, and its settings. Defaults belong to the backend
//! that uses them ([`SimulatedConfig::default`], [`NovaSettings::new`],
//! [`NetworkBoot::default`]); this module only reads and bounds values.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::error::{Checker, ConfigError};
use crate::backend::nova::cloud::CloudSource;
use crate::backend::nova::media::{MediaBoot, MediaSettings};
use crate::backend::nova::{NetworkBoot, NovaSettings};
pub use crate::backend::simulated::SimulatedConfig;

/// `[backend]` as written.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
// Read once per load: the size of the rarely used variant does not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum RawBackend {
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
        virtual_media: Option<RawMedia>,
        allow_plain_console: Option<bool>,
    },
}

/// `[backend.virtual_media]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMedia {
    max_size_mib: Option<u64>,
    probe_timeout_secs: Option<u64>,
    load_timeout_secs: Option<u64>,
    keep_unused_images: Option<usize>,
    boot: Option<String>,
    web_download: Option<bool>,
    rescue_bus: Option<String>,
}

/// Validates `[backend.virtual_media]`.
fn media(raw: RawMedia, c: &Checker<'_>) -> Result<MediaSettings, ConfigError> {
    let mut m = MediaSettings::default();
    if let Some(v) = raw.max_size_mib {
        if v == 0 {
            return Err(c.error("backend.virtual_media.max_size_mib", "must be at least 1"));
        }
        m.max_size = v.saturating_mul(1 << 20);
    }
    if let Some(v) = raw.probe_timeout_secs {
        if !(1..=300).contains(&v) {
            return Err(c.error(
                "backend.virtual_media.probe_timeout_secs",
                "must be between 1 and 300",
            ));
        }
        m.probe_timeout = Duration::from_secs(v);
    }
    if let Some(v) = raw.load_timeout_secs {
        if v < 10 {
            return Err(c.error(
                "backend.virtual_media.load_timeout_secs",
                "must be at least 10",
            ));
        }
        m.load_timeout = Duration::from_secs(v);
    }
    if let Some(v) = raw.keep_unused_images {
        m.keep_unused = v;
    }
    if let Some(b) = raw.boot {
        m.boot = MediaBoot::parse(&b).ok_or_else(|| {
            c.error(
                "backend.virtual_media.boot",
                format!("unknown way {b:?} (rescue, rebuild)"),
            )
        })?;
    }
    if let Some(w) = raw.web_download {
        m.web_download = w;
    }
    if let Some(bus) = raw.rescue_bus {
        if !matches!(bus.as_str(), "sata" | "scsi" | "ide" | "usb" | "virtio") {
            return Err(c.error(
                "backend.virtual_media.rescue_bus",
                format!("unknown bus {bus:?} (sata, scsi, ide, usb, virtio)"),
            ));
        }
        m.rescue_bus = bus;
    }
    Ok(m)
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
// One per configuration: boxing the larger variant would only add an
// indirection to every reader.
#[allow(clippy::large_enum_variant)]
pub enum BackendConfig {
    /// The in-process simulated cloud.
    Simulated(SimulatedConfig),
    /// OpenStack Nova.
    Nova(NovaConfig),
}

/// Parses a network boot mode at `key`.
pub(super) fn network_boot(
    key: &str,
    mode: &str,
    c: &Checker<'_>,
) -> Result<NetworkBoot, ConfigError> {
    NetworkBoot::parse(mode).ok_or_else(|| {
        c.error(
            key,
            format!("unknown mode {mode:?} (rebuild, rescue, metadata)"),
        )
    })
}

/// Validates `[backend]`.
pub(super) fn check(raw: RawBackend, c: &Checker<'_>) -> Result<BackendConfig, ConfigError> {
    match raw {
        RawBackend::Simulated {
            power_on_ms,
            power_off_ms,
            efi,
        } => {
            let d = SimulatedConfig::default();
            Ok(BackendConfig::Simulated(SimulatedConfig {
                power_on: power_on_ms.map_or(d.power_on, Duration::from_millis),
                power_off: power_off_ms.map_or(d.power_off, Duration::from_millis),
                efi: efi.unwrap_or(d.efi),
            }))
        }
        RawBackend::Nova {
            cloud,
            clouds_yaml,
            refresh_secs,
            network_boot: mode,
            ipxe_image,
            request_timeout_secs,
            give_up_after_secs,
            max_concurrent_calls,
            state_dir,
            virtual_media,
            allow_plain_console,
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
            settings.media = media(virtual_media.unwrap_or_default(), c)?;
            if let Some(allow) = allow_plain_console {
                settings.allow_plain_console = allow;
            }
            let network_boot = match mode.as_deref() {
                None => NetworkBoot::default(),
                Some(m) => network_boot("backend.network_boot", m, c)?,
            };
            Ok(BackendConfig::Nova(NovaConfig {
                settings,
                network_boot,
                ipxe_image: ipxe_image.filter(|i| !i.trim().is_empty()),
            }))
        }
    }
}
