//! What a node's FRU says about the machine behind it, as the backend
//! knows it: the server's UUID, name and flavor.
//!
//! A backend publishes each node's inventory on a `watch` channel: the
//! Nova backend once it has resolved the server (and again when the
//! listing shows its name or flavor change), the simulated one at once.
//! Each UDP task hands the latest value to its engine, which encodes the
//! FRU image then, so a FRU read never waits on the backend.

use novabmc_proto::Inventory;

/// Board and product manufacturer in every node's FRU.
pub const MANUFACTURER: &str = "OpenStack Nova";

/// One machine's inventory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerInventory {
    /// The server's UUID, as the cloud writes it.
    pub uuid: String,
    /// The server's name.
    pub name: String,
    /// The server's flavor name (empty when unknown).
    pub flavor: String,
    /// The MAC addresses of the server's ports, in network name order
    /// (what Redfish's EthernetInterfaces list).
    pub macs: Vec<String>,
    /// Whether the server boots with UEFI secure boot (its image's
    /// `os_secure_boot` is `required`); `None` when not known.
    pub secure_boot: Option<bool>,
}

impl ServerInventory {
    /// The FRU contents: the flavor as product name and part number, the
    /// UUID as serial number, the name as asset tag.
    pub fn fru(&self) -> Inventory {
        Inventory {
            manufacturer: MANUFACTURER.to_string(),
            product_name: self.flavor.clone(),
            part_number: self.flavor.clone(),
            serial_number: self.uuid.clone(),
            asset_tag: self.name.clone(),
        }
    }
}

/// A UUID's canonical text form (lower case, hyphenated).
pub fn format_uuid(u: [u8; 16]) -> String {
    let h = hex::encode(u);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_text_is_canonical() {
        let mut u = [0u8; 16];
        u[0] = 0x5b;
        u[15] = 0x6e;
        assert_eq!(format_uuid(u), "5b000000-0000-0000-0000-00000000006e");
    }

    #[test]
    fn fru_fields_come_from_the_server() {
        let inv = ServerInventory {
            macs: Vec::new(),
            secure_boot: None,
            uuid: "u".into(),
            name: "n".into(),
            flavor: "f".into(),
        };
        let fru = inv.fru();
        assert_eq!(fru.manufacturer, MANUFACTURER);
        assert_eq!(
            (
                fru.product_name.as_str(),
                fru.serial_number.as_str(),
                fru.asset_tag.as_str()
            ),
            ("f", "u", "n")
        );
    }
}
