//! Virtual media as any front door speaks of it (DSP0268 VirtualMedia):
//! the devices a node's BMC offers, what is inserted in each, and the
//! insert and eject requests, in terms neither Redfish nor a cloud owns.
//!
//! A node has a CD/DVD drive and two removable-media slots (a USB stick
//! and a floppy, as Ironic's `config_via_removable` looks for them). What
//! is inserted is a URL; the backend fetches it (into the cloud, for Nova)
//! in the background, so an insert is answered once the URL has been
//! checked and the request recorded, and the fetch's progress is what
//! [`MediaStatus`] shows.

use std::fmt;

/// A virtual media device of a node's BMC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MediaDevice {
    /// The CD/DVD drive: what a boot from CD boots.
    Cd,
    /// A USB stick slot.
    UsbStick,
    /// A floppy drive.
    Floppy,
}

impl MediaDevice {
    /// Every device, in the order a client is shown them.
    pub const ALL: [MediaDevice; 3] = [MediaDevice::Cd, MediaDevice::UsbStick, MediaDevice::Floppy];

    /// The device's Id in URIs and the state directory.
    pub fn id(self) -> &'static str {
        match self {
            MediaDevice::Cd => "Cd",
            MediaDevice::UsbStick => "UsbStick",
            MediaDevice::Floppy => "Floppy",
        }
    }

    /// The device an Id names.
    pub fn of_id(id: &str) -> Option<MediaDevice> {
        MediaDevice::ALL.into_iter().find(|d| d.id() == id)
    }

    /// Whether the medium reaches the machine as a removable disk (a
    /// volume attached to the server) rather than as the boot CD.
    pub fn removable(self) -> bool {
        !matches!(self, MediaDevice::Cd)
    }
}

impl fmt::Display for MediaDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// Where an inserted medium stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaStatus {
    /// Nothing inserted.
    Empty,
    /// Being fetched into the cloud (and, for removable media, attached).
    Loading,
    /// Ready: a boot from it (or the machine, for removable media) sees it.
    Ready,
    /// Fetching or attaching failed; the message says why. The medium
    /// stays "inserted but unusable" until it is ejected or inserted again.
    Failed(String),
    /// Ejected; what it left in the cloud is being removed.
    Ejecting,
}

/// What a front door shows of one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaView {
    /// The device.
    pub device: MediaDevice,
    /// The inserted image's URL (credentials never included).
    pub image: Option<String>,
    /// The image's file name.
    pub image_name: Option<String>,
    /// Whether media is inserted.
    pub inserted: bool,
    /// Whether the medium is read-only.
    pub write_protected: bool,
    /// Where it stands.
    pub status: MediaStatus,
}

impl MediaView {
    /// A device with nothing in it.
    pub fn empty(device: MediaDevice) -> Self {
        MediaView {
            device,
            image: None,
            image_name: None,
            inserted: false,
            write_protected: true,
            status: MediaStatus::Empty,
        }
    }
}

/// An insert request.
#[derive(Clone, PartialEq, Eq)]
pub struct MediaInsert {
    /// The image's URL (http or https).
    pub image: String,
    /// Read-only medium.
    pub write_protected: bool,
    /// Credentials for the download, if the server asks for them.
    pub credentials: Option<(String, String)>,
}

impl fmt::Debug for MediaInsert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaInsert")
            .field("image", &self.image)
            .field("write_protected", &self.write_protected)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .finish_non_exhaustive()
    }
}

/// Why an insert or eject was refused; each maps to one answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The image URL is not one the BMC can fetch (malformed, another
    /// scheme, refused by its server, too large, no answer): the client's
    /// request is wrong (Redfish 400 naming `Image`).
    #[error("{0}")]
    BadImage(String),
    /// The device already holds media (Redfish 409).
    #[error("{0}")]
    Occupied(String),
    /// The node cannot do it now or at all (not resolved, no image
    /// service in the cloud).
    #[error(transparent)]
    Backend(#[from] super::BackendError),
}

/// The file name a URL names (its last path segment), for `ImageName`.
pub fn image_name_of(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let after_host = path.split_once("://").map_or(path, |(_, rest)| rest);
    let (_, path) = after_host.split_once('/')?;
    path.rsplit('/')
        .find(|s| !s.is_empty())
        .map(|s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_come_from_the_path() {
        assert_eq!(
            image_name_of("http://h:8080/a/deploy.iso?x=1").as_deref(),
            Some("deploy.iso")
        );
        assert_eq!(image_name_of("http://h/").as_deref(), None);
        assert_eq!(image_name_of("http://h").as_deref(), None);
        assert_eq!(MediaDevice::of_id("UsbStick"), Some(MediaDevice::UsbStick));
    }
}
