//! What the backend reads from Nova's and Glance's bodies, and the
//! actions it posts: small structures holding only what it uses, so
//! unknown statuses or new fields never break parsing.

use std::collections::HashMap;

use osauth::ApiVersion;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::backend::nova::states::{PowerState, Status, TaskState, VmState};

/// Nova shows "no task" as null; some versions and proxies send "".
fn non_empty<'de, D: Deserializer<'de>, T: From<String>>(d: D) -> Result<Option<T>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    Ok(s.filter(|s| !s.is_empty()).map(T::from))
}

impl From<String> for TaskState {
    fn from(s: String) -> Self {
        TaskState::parse(&s)
    }
}

impl From<String> for VmState {
    fn from(s: String) -> Self {
        VmState::parse(&s)
    }
}

/// What the backend reads from a server body.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ServerInfo {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// API status.
    pub status: Status,
    /// Task in progress, if any.
    #[serde(
        rename = "OS-EXT-STS:task_state",
        default,
        deserialize_with = "non_empty"
    )]
    pub task_state: Option<TaskState>,
    /// vm_state.
    #[serde(
        rename = "OS-EXT-STS:vm_state",
        default,
        deserialize_with = "non_empty"
    )]
    pub vm_state: Option<VmState>,
    /// power_state.
    #[serde(rename = "OS-EXT-STS:power_state", default)]
    pub power_state: Option<PowerState>,
    /// Metadata.
    #[serde(default)]
    pub metadata: HashMap<String, String>,
    /// The root disk's image ID: Nova sends `{"id": ..., "links": ...}`,
    /// or `""` for a server booted from a volume. Only the ID is kept, as a
    /// listing holds thousands of these.
    #[serde(default, deserialize_with = "image_ref")]
    pub image: Option<String>,
    /// Last change.
    #[serde(default)]
    pub updated: Option<String>,
    /// `{"id": ...}` below microversion 2.47; from 2.47 the flavor itself,
    /// with its `original_name`.
    #[serde(default)]
    pub flavor: Value,
    /// The addresses of its ports, by network (each with the port's MAC).
    #[serde(default)]
    pub addresses: HashMap<String, Vec<AddressInfo>>,
}

impl ServerInfo {
    /// The root disk's image ID, if booted from an image.
    pub fn image_id(&self) -> Option<&str> {
        self.image.as_deref()
    }

    /// The MACs of its ports, in network name order.
    pub fn macs(&self) -> Vec<String> {
        macs_of(&self.addresses)
    }

    /// The flavor's name, when the server embeds its flavor (2.47 on).
    pub fn flavor_name(&self) -> Option<&str> {
        self.flavor.get("original_name").and_then(Value::as_str)
    }

    /// The flavor's ID, when the server refers to its flavor (below 2.47).
    pub fn flavor_id(&self) -> Option<&str> {
        self.flavor.get("id").and_then(Value::as_str)
    }
}

/// The `id` of Nova's `image` field, or nothing for `""`.
fn image_ref<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Image {
        Ref { id: String },
        Other(serde::de::IgnoredAny),
    }
    Ok(match Image::deserialize(d)? {
        Image::Ref { id } if !id.is_empty() => Some(id),
        _ => None,
    })
}

/// A server action (`POST /servers/{id}/action`) the backend makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerAction {
    /// `os-start`.
    Start,
    /// `os-stop` (graceful; Nova has no hard power-off).
    Stop,
    /// `reboot` of type HARD (it also starts a stopped server).
    HardReboot,
    /// `rebuild` with an image.
    Rebuild {
        /// Image ID.
        image: String,
    },
    /// `rescue` with an image.
    Rescue {
        /// Image ID.
        image: String,
    },
    /// `rescue` with virtual media: an image whose `hw_rescue_device` and
    /// `hw_rescue_bus` make it a stable-device rescue (the root disk kept
    /// attached). `stable` asks for microversion 2.87, which a
    /// volume-backed server needs.
    RescueMedia {
        /// Image ID.
        image: String,
        /// Ask for microversion 2.87.
        stable: bool,
    },
    /// `unrescue`.
    Unrescue,
    /// `trigger_crash_dump` (an NMI), microversion 2.17.
    CrashDump,
}

impl ServerAction {
    /// The action's key in the request body, as Nova names it.
    pub fn name(&self) -> &'static str {
        match self {
            ServerAction::Start => "os-start",
            ServerAction::Stop => "os-stop",
            ServerAction::HardReboot => "reboot",
            ServerAction::Rebuild { .. } => "rebuild",
            ServerAction::Rescue { .. } | ServerAction::RescueMedia { .. } => "rescue",
            ServerAction::Unrescue => "unrescue",
            ServerAction::CrashDump => "trigger_crash_dump",
        }
    }

    /// The request body.
    pub fn body(&self) -> Value {
        match self {
            ServerAction::HardReboot => json!({"reboot": {"type": "HARD"}}),
            ServerAction::Rebuild { image } => json!({"rebuild": {"imageRef": image}}),
            ServerAction::Rescue { image } | ServerAction::RescueMedia { image, .. } => {
                json!({"rescue": {"rescue_image_ref": image}})
            }
            other => json!({ other.name(): null }),
        }
    }

    /// The microversion the action needs, if above 2.1.
    pub fn microversion(&self) -> Option<ApiVersion> {
        match self {
            ServerAction::CrashDump => Some(ApiVersion(2, 17)),
            ServerAction::RescueMedia { stable: true, .. } => Some(ApiVersion(2, 87)),
            _ => None,
        }
    }

    /// The task_states Nova shows once it has accepted this call: after a
    /// lost answer, finding one means the call went through and must not be
    /// sent again (a second hard reboot or rebuild would not be harmless).
    pub fn started_tasks(&self) -> &'static [TaskState] {
        use TaskState::*;
        match self {
            ServerAction::Start => &[PoweringOn],
            ServerAction::Stop => &[PoweringOff],
            ServerAction::HardReboot => &[RebootingHard, RebootPendingHard, RebootStartedHard],
            ServerAction::Rebuild { .. } => {
                &[Rebuilding, RebuildBlockDeviceMapping, RebuildSpawning]
            }
            ServerAction::Rescue { .. } | ServerAction::RescueMedia { .. } => &[Rescuing],
            ServerAction::Unrescue => &[Unrescuing],
            ServerAction::CrashDump => &[],
        }
    }
}

/// A page-joined server listing, with the time Nova answered it (its
/// `Date` header): the next `changes-since` must come from Nova's clock.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// The servers.
    pub servers: Vec<ServerInfo>,
    /// When the API server answered the first page.
    pub answered: Option<chrono::DateTime<chrono::Utc>>,
}

/// An image as the backend needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// ID.
    pub id: String,
    /// Name.
    pub name: String,
}

/// One address of a server.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct AddressInfo {
    /// The port's MAC.
    #[serde(rename = "OS-EXT-IPS-MAC:mac_addr", default)]
    pub mac: Option<String>,
}

/// The MACs of a server's `addresses`, in network name order and without
/// repeats (a port with two addresses shows twice).
pub fn macs_of(addresses: &HashMap<String, Vec<AddressInfo>>) -> Vec<String> {
    let mut networks: Vec<_> = addresses.iter().collect();
    networks.sort_by(|a, b| a.0.cmp(b.0));
    let mut macs: Vec<String> = Vec::new();
    for (_, list) in networks {
        for a in list {
            if let Some(mac) = &a.mac
                && !macs.contains(mac)
            {
                macs.push(mac.clone());
            }
        }
    }
    macs
}

/// The firmware an image asks Nova for: `hw_firmware_type` (`uefi` or
/// `bios`) and `os_secure_boot` (`required`, `optional`, `disabled`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageFirmware {
    /// `hw_firmware_type`, if set.
    pub firmware_type: Option<String>,
    /// `os_secure_boot`, if set.
    pub secure_boot: Option<String>,
}

impl ImageFirmware {
    /// From a Glance image body.
    pub fn of(image: &Value) -> ImageFirmware {
        let text = |k: &str| image.get(k).and_then(Value::as_str).map(str::to_string);
        ImageFirmware {
            firmware_type: text("hw_firmware_type"),
            secure_boot: text("os_secure_boot"),
        }
    }

    /// Whether servers of this image boot UEFI.
    pub fn uefi(&self) -> bool {
        self.firmware_type
            .as_deref()
            .is_some_and(|f| f.eq_ignore_ascii_case("uefi"))
    }

    /// Whether Nova boots them with secure boot (libvirt does for
    /// `required`; `optional` leaves it to the flavor, which defaults off).
    pub fn secure_boot(&self) -> bool {
        self.secure_boot
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("required"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_body_with_unknown_fields_parses() {
        let body = json!({"id": "u", "name": "n", "status": "SOFT_DELETED", "future": 1,
            "OS-EXT-STS:power_state": 4, "OS-EXT-STS:task_state": "", "image": ""});
        let s: ServerInfo = serde_json::from_value(body).expect("parse");
        assert_eq!(s.image_id(), None);
        assert_eq!(s.power_state, Some(PowerState::Shutdown));
        assert_eq!(s.status, Status::SoftDeleted);
        assert_eq!(s.task_state, None);
    }

    #[test]
    fn action_bodies() {
        assert_eq!(ServerAction::Start.body(), json!({"os-start": null}));
        assert_eq!(
            ServerAction::HardReboot.body(),
            json!({"reboot": {"type": "HARD"}})
        );
        assert_eq!(
            ServerAction::Rescue { image: "i".into() }.body(),
            json!({"rescue": {"rescue_image_ref": "i"}})
        );
        assert_eq!(
            ServerAction::CrashDump.microversion(),
            Some(ApiVersion(2, 17))
        );
    }
}
