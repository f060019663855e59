//! What the Nova backend is configured with: backend-wide settings (the
//! cloud, the state directory, timeouts and limits), each node's server
//! and network-boot mode, and why a start can fail.

use std::path::PathBuf;
use std::time::Duration;

use super::cloud::CloudSource;
use super::store::{self, StoreError};

/// How a node boots from the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NetworkBoot {
    /// Rebuild the server with the iPXE image (rewrites the root disk, as
    /// a PXE deploy does anyway): the default, as it needs nothing of the
    /// host cloud but an image.
    #[default]
    Rebuild,
    /// Rescue the server with the iPXE image; unrescue to boot the disk.
    Rescue,
    /// Set `libvirt:pxe-first` (needs OVB's Nova patch on the host cloud).
    Metadata,
}

impl NetworkBoot {
    /// Parses the configuration value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rebuild" => Some(Self::Rebuild),
            "rescue" => Some(Self::Rescue),
            "metadata" => Some(Self::Metadata),
            _ => None,
        }
    }

    /// Whether this mode needs an iPXE image.
    pub fn needs_image(self) -> bool {
        !matches!(self, Self::Metadata)
    }
}

/// Backend-wide settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NovaSettings {
    /// Where the cloud configuration comes from.
    pub cloud: CloudSource,
    /// How often the poller lists changed servers.
    pub refresh: Duration,
    /// Longest time one cloud call may take, body included.
    pub request_timeout: Duration,
    /// How long a power operation may take before the worker gives up.
    pub give_up_after: Duration,
    /// Most Nova calls in flight at once, all nodes together.
    pub max_concurrent_calls: usize,
    /// How often a worker reads its server while Nova runs a task.
    pub task_poll: Duration,
    /// Where pending work is kept across restarts.
    pub state_dir: PathBuf,
    /// Virtual media.
    pub media: super::media::MediaSettings,
    /// Whether a serial console may be a plain `ws://` websocket, which
    /// carries what is typed and the console's token in clear
    /// (`backend.allow_plain_console`); `wss://` always may.
    pub allow_plain_console: bool,
}

impl NovaSettings {
    /// Defaults around a cloud source.
    pub fn new(cloud: CloudSource) -> Self {
        NovaSettings {
            cloud,
            refresh: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            give_up_after: Duration::from_secs(600),
            max_concurrent_calls: 16,
            task_poll: Duration::from_millis(500),
            state_dir: PathBuf::from(store::DEFAULT_STATE_DIR),
            media: Default::default(),
            allow_plain_console: false,
        }
    }
}

/// One node as the Nova backend needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NovaNode {
    /// Node name.
    pub name: String,
    /// Server name or UUID.
    pub server: String,
    /// Network boot mode.
    pub network_boot: NetworkBoot,
    /// iPXE image name or ID.
    pub ipxe_image: Option<String>,
    /// EFI firmware, when not read from the server's image.
    pub efi: Option<bool>,
}

/// The backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The cloud configuration is missing or wrong.
    #[error("{0}")]
    Cloud(String),
    /// The state directory cannot be used.
    #[error(transparent)]
    Store(#[from] StoreError),
}
