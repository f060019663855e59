//! What a node's virtual media holds, as kept in its state-directory
//! record: one slot per device with media in it, and the volumes an eject
//! left to detach and delete. Both survive a restart, so an inserted
//! medium is still inserted after one, a load interrupted by it starts
//! again, and an eject is never lost.

use serde::{Deserialize, Serialize};

use crate::backend::virtual_media::{MediaDevice, MediaStatus, MediaView, image_name_of};

/// Where a slot's medium stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Phase {
    /// Being fetched into Glance (and, for removable media, attached).
    Loading,
    /// Ready.
    Ready,
    /// Failed, with the reason.
    Failed {
        /// Why.
        message: String,
    },
}

/// A device with media in it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// The device's Id (`Cd`, `UsbStick`, `Floppy`).
    pub device: String,
    /// The image's URL.
    pub url: String,
    /// Download credentials (the record is readable by the daemon's user
    /// only, as the configuration is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Download password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Read-only medium.
    pub write_protected: bool,
    /// What the image server's validators said at insert time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator: Option<String>,
    /// Where it stands.
    pub phase: Phase,
    /// The Glance image holding it, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Removable media: the volume created from the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// Removable media: the server the volume is attached to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached: Option<String>,
    /// Bumped by each insert, so a load started for an earlier insert
    /// never completes a later one.
    pub generation: u64,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("device", &self.device)
            .field("url", &self.url)
            .field("user", &self.user)
            .field("phase", &self.phase)
            .field("image", &self.image)
            .field("volume", &self.volume)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Slot {
    /// The device.
    pub fn device(&self) -> Option<MediaDevice> {
        MediaDevice::of_id(&self.device)
    }

    /// The download credentials, if any.
    pub fn credentials(&self) -> Option<(String, String)> {
        self.user
            .clone()
            .map(|u| (u, self.password.clone().unwrap_or_default()))
    }

    /// What a front door shows.
    pub fn view(&self, device: MediaDevice) -> MediaView {
        let status = match &self.phase {
            Phase::Loading => MediaStatus::Loading,
            Phase::Ready => MediaStatus::Ready,
            Phase::Failed { message } => MediaStatus::Failed(message.clone()),
        };
        MediaView {
            device,
            image: Some(self.url.clone()),
            image_name: image_name_of(&self.url),
            inserted: !matches!(self.phase, Phase::Failed { .. }),
            write_protected: self.write_protected,
            status,
        }
    }
}

/// What an eject (or an unfinished load) left to remove: a volume to
/// detach and delete, and this node's use of an image to give back to the
/// cache (which deletes the image once nobody uses it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cleanup {
    /// The volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// The server it may be attached to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The image the node used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}
