//! The reads only `novabmc check` and `novabmc export` make, beside the
//! backend's own calls: the catalog and its microversions, a server with
//! its flavor embedded (2.47), its ports' MACs, image properties, and the
//! Cinder volumes that describe a volume-backed server's root disk.

use std::collections::HashMap;

use osauth::services::{COMPUTE, IMAGE, ServiceType};
use osauth::{ApiVersion, ErrorKind};
use serde::Deserialize;
use serde_json::Value;

use super::{AddressInfo, FLAVOR_EMBEDDED, NovaClient, NovaError, NovaErrorKind, json_of, macs_of};

/// One service of the catalog, as the session resolved it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The service type (`compute`, `image`).
    pub service: &'static str,
    /// The endpoint calls go to.
    pub endpoint: String,
    /// The lowest and highest microversions it supports, if it has them.
    pub versions: Option<(ApiVersion, ApiVersion)>,
}

/// A server as `novabmc export` needs it (read at microversion 2.47).
#[derive(Clone, Debug, Deserialize)]
pub struct ServerDetail {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// The embedded flavor.
    pub flavor: FlavorInfo,
    /// `{"id": ...}`, or `""` for a server booted from a volume.
    #[serde(default)]
    pub image: Value,
    /// Attached volumes (for a server booted from a volume, its root disk
    /// is one of them).
    #[serde(rename = "os-extended-volumes:volumes_attached", default)]
    pub volumes_attached: Vec<AttachedVolume>,
    /// The root disk's device (`/dev/vda`), shown to administrators.
    #[serde(rename = "OS-EXT-SRV-ATTR:root_device_name", default)]
    pub root_device_name: Option<String>,
    /// Addresses per network, each with its port's MAC.
    #[serde(default)]
    pub addresses: HashMap<String, Vec<AddressInfo>>,
}

impl ServerDetail {
    /// The root disk's image ID, if booted from an image.
    pub fn image_id(&self) -> Option<&str> {
        self.image
            .get("id")
            .and_then(Value::as_str)
            .filter(|i| !i.is_empty())
    }

    /// The MACs of `addresses`, in network name order and without
    /// repeats (a port with two addresses shows twice).
    pub fn address_macs(&self) -> Vec<String> {
        macs_of(&self.addresses)
    }
}

/// The flavor as embedded in a server from microversion 2.47.
#[derive(Clone, Debug, Deserialize)]
pub struct FlavorInfo {
    /// vCPUs.
    pub vcpus: u32,
    /// RAM in MiB.
    pub ram: u64,
    /// Root disk in GiB (0 for flavors meant to boot from volume).
    pub disk: u64,
    /// The flavor's name when the server was created.
    #[serde(default)]
    pub original_name: Option<String>,
}

/// One entry of `os-extended-volumes:volumes_attached`.
#[derive(Clone, Debug, Deserialize)]
pub struct AttachedVolume {
    /// Volume ID.
    pub id: String,
}

#[derive(Deserialize)]
struct ServerDetailRoot {
    server: ServerDetail,
}

#[derive(Deserialize)]
struct InterfaceList {
    #[serde(rename = "interfaceAttachments")]
    interfaces: Vec<Interface>,
}

#[derive(Deserialize)]
struct Interface {
    mac_addr: String,
}

/// A Cinder volume as `novabmc export` needs it.
#[derive(Clone, Debug, Deserialize)]
pub struct VolumeInfo {
    /// ID.
    pub id: String,
    /// Size in GiB.
    pub size: u64,
    /// `"true"` or `"false"` (Cinder sends a string).
    #[serde(default)]
    pub bootable: Value,
    /// The properties of the image the volume was made from.
    #[serde(default)]
    pub volume_image_metadata: HashMap<String, Value>,
    /// Where it is attached.
    #[serde(default)]
    pub attachments: Vec<VolumeAttachment>,
}

impl VolumeInfo {
    /// Whether Cinder marks the volume bootable.
    pub fn is_bootable(&self) -> bool {
        match &self.bootable {
            Value::Bool(b) => *b,
            Value::String(s) => s.eq_ignore_ascii_case("true"),
            _ => false,
        }
    }
}

/// One attachment of a volume.
#[derive(Clone, Debug, Deserialize)]
pub struct VolumeAttachment {
    /// The server.
    #[serde(default)]
    pub server_id: Option<String>,
    /// The device the server sees.
    #[serde(default)]
    pub device: Option<String>,
}

#[derive(Deserialize)]
struct VolumeRoot {
    volume: VolumeInfo,
}

/// Cinder v3 under one catalog name, without version discovery: the
/// catalog URL is the API root as it is. Discovery would move to the
/// unversioned document's link, which drops the project ID that most
/// catalogs put in the URL and that Cinder before 3.67 requires.
#[derive(Clone, Copy, Debug)]
pub(super) struct Volumes(pub(super) &'static str);

impl ServiceType for Volumes {
    fn catalog_type(&self) -> &'static str {
        self.0
    }

    fn version_discovery_supported(&self) -> bool {
        false
    }
}

/// Cinder's catalog names, newest first (`volumev3` is what older
/// deployments register).
const VOLUME_SERVICES: [&str; 2] = ["block-storage", "volumev3"];

impl NovaClient {
    /// An image as Glance v2 shows it: core fields and properties as
    /// top-level keys.
    pub async fn image(&self, image_id: &str) -> Result<Value, NovaError> {
        self.bounded(
            ("image", "get_image"),
            &format!("GET images/{image_id}"),
            async { json_of(self.send(|s| s.get(IMAGE, &["images", image_id])).await?).await },
        )
        .await
    }

    /// The compute and image endpoints the calls use, and their
    /// microversions (for `novabmc check`).
    pub async fn catalog(&self) -> Result<Vec<CatalogEntry>, NovaError> {
        self.bounded(
            ("compute", "discovery"),
            "service catalog and version discovery",
            async {
                let s = self.session().await?;
                let root: [&str; 0] = [];
                let compute = CatalogEntry {
                    service: "compute",
                    endpoint: s.get_endpoint(COMPUTE, root).await?.to_string(),
                    versions: s.get_api_versions(COMPUTE).await?,
                };
                let image = CatalogEntry {
                    service: "image",
                    endpoint: s.get_endpoint(IMAGE, root).await?.to_string(),
                    versions: s.get_api_versions(IMAGE).await?,
                };
                Ok(vec![compute, image])
            },
        )
        .await
    }

    /// One server with its flavor embedded (microversion 2.47).
    pub async fn get_server_detail(&self, id: &str) -> Result<ServerDetail, NovaError> {
        self.bounded(
            ("compute", "get_server_detail"),
            &format!("GET servers/{id} (2.47)"),
            async {
                let root: ServerDetailRoot = json_of(
                    self.send(|s| {
                        s.get(COMPUTE, &["servers", id])
                            .api_version(FLAVOR_EMBEDDED)
                    })
                    .await?,
                )
                .await?;
                Ok(root.server)
            },
        )
        .await
    }

    /// The MACs of a server's ports, in Nova's order
    /// (`GET /servers/{id}/os-interface`).
    pub async fn interface_macs(&self, id: &str) -> Result<Vec<String>, NovaError> {
        self.bounded(
            ("compute", "list_interfaces"),
            &format!("GET servers/{id}/os-interface"),
            async {
                let list: InterfaceList = json_of(
                    self.send(|s| s.get(COMPUTE, &["servers", id, "os-interface"]))
                        .await?,
                )
                .await?;
                Ok(list.interfaces.into_iter().map(|i| i.mac_addr).collect())
            },
        )
        .await
    }

    /// One Cinder volume, from whichever of Cinder's catalog names the
    /// cloud registers.
    pub async fn volume(&self, id: &str) -> Result<VolumeInfo, NovaError> {
        self.bounded(
            ("volume", "get_volume"),
            &format!("GET volumes/{id}"),
            async {
                let service = self.volume_service().await?;
                let root: VolumeRoot =
                    json_of(self.send(|s| s.get(service, &["volumes", id])).await?).await?;
                Ok(root.volume)
            },
        )
        .await
    }

    /// The first Cinder catalog entry the session knows.
    pub(super) async fn volume_service(&self) -> Result<Volumes, NovaError> {
        let session = self.session().await?;
        for name in VOLUME_SERVICES {
            match session.get_endpoint(Volumes(name), &[] as &[&str]).await {
                Ok(_) => return Ok(Volumes(name)),
                Err(e) if e.kind() == ErrorKind::EndpointNotFound => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(NovaError {
            kind: NovaErrorKind::Config,
            message: format!(
                "the cloud's catalog has no block storage service ({})",
                VOLUME_SERVICES.join(" or ")
            ),
        })
    }
}
