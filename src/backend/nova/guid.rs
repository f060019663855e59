//! The bytes Get System GUID sends for a Nova server UUID, chosen so that
//! `ipmitool mc guid` prints the UUID `openstack server show` does (Nova
//! uses the server UUID as the VM's SMBIOS system UUID).
//!
//! The IPMI specification (section 20.8) sends every GUID field least
//! significant byte first, which for a UUID is its sixteen bytes reversed;
//! FreeIPMI's `bmc-info` decodes exactly that. ipmitool 1.8.19 instead
//! guesses the encoding: it tries the IPMI, RFC 4122 and SMBIOS layouts in
//! that order and keeps the last whose version nibble is 1 to 5 (stopping
//! early only at a version-1 GUID with a plausible timestamp). For a random
//! (version 4) UUID sent in IPMI order, the RFC 4122 reading picks up a
//! random nibble and wins about three times in ten, so ipmitool would print
//! a scrambled UUID.
//!
//! So we send the IPMI encoding whenever ipmitool reads it back as IPMI, and
//! otherwise the first other encoding it reads back correctly (the SMBIOS
//! one almost always is). `bmc-info` then shows the right UUID whenever the
//! IPMI encoding was chosen, and the SMBIOS one with `-W guidformat`. For
//! about one UUID in a thousand every encoding has a reading that looks like
//! a plausible time-based GUID, and ipmitool's guess is wrong whatever we
//! send; those get the IPMI encoding, which `ipmitool mc guid ipmi` prints
//! right.

/// The three layouts ipmitool knows, in the order it probes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// IPMI: every field least significant byte first.
    Ipmi,
    /// RFC 4122: every field most significant byte first (the UUID bytes).
    Rfc4122,
    /// SMBIOS: time fields little-endian, the rest as in RFC 4122.
    Smbios,
}

const LAYOUTS: [Layout; 3] = [Layout::Ipmi, Layout::Rfc4122, Layout::Smbios];

/// Encodes a UUID (its 16 bytes in RFC 4122 order) in `layout`.
pub fn encode(uuid: [u8; 16], layout: Layout) -> [u8; 16] {
    match layout {
        Layout::Rfc4122 => uuid,
        Layout::Ipmi => {
            let mut g = uuid;
            g.reverse();
            g
        }
        Layout::Smbios => {
            let mut g = uuid;
            g[0..4].reverse();
            g[4..6].reverse();
            g[6..8].reverse();
            g
        }
    }
}

/// The timestamp fields (time_low, time_mid, time_hi_and_version) of `g`
/// read in `layout`.
fn time_fields(g: &[u8; 16], layout: Layout) -> (u32, u16, u16) {
    let le16 = |i: usize| u16::from_le_bytes([g[i], g[i + 1]]);
    let be16 = |i: usize| u16::from_be_bytes([g[i], g[i + 1]]);
    match layout {
        Layout::Ipmi => (
            u32::from_le_bytes([g[12], g[13], g[14], g[15]]),
            le16(10),
            le16(8),
        ),
        Layout::Rfc4122 => (
            u32::from_be_bytes([g[0], g[1], g[2], g[3]]),
            be16(4),
            be16(6),
        ),
        Layout::Smbios => (
            u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
            le16(4),
            le16(6),
        ),
    }
}

/// The layout ipmitool's automatic detection settles on, or `None` when it
/// would dump raw bytes. `this_year` bounds the plausible timestamps of
/// version-1 GUIDs, as ipmitool compares them with the current year.
pub fn ipmitool_detects(g: &[u8; 16], this_year: i32) -> Option<Layout> {
    let mut found = None;
    for layout in LAYOUTS {
        let (low, mid, hi) = time_fields(g, layout);
        let version = hi >> 12;
        if (1..=5).contains(&version) {
            found = Some(layout);
            if version == 1 && time_plausible(low, mid, hi, this_year) {
                break;
            }
        }
    }
    found
}

fn time_plausible(low: u32, mid: u16, hi: u16, this_year: i32) -> bool {
    let hundreds_of_ns = (u64::from(hi & 0x0fff) << 48) | (u64::from(mid) << 32) | u64::from(low);
    let unix = (hundreds_of_ns / 10_000_000) as i64 - 12_219_292_800;
    let year = 1970 + unix.div_euclid(31_556_952);
    (1970..=i64::from(this_year)).contains(&year)
}

/// The bytes to send for `uuid`: the IPMI encoding when ipmitool reads it
/// back correctly, else another encoding it does.
pub fn system_guid(uuid: [u8; 16], this_year: i32) -> [u8; 16] {
    for layout in [Layout::Ipmi, Layout::Smbios, Layout::Rfc4122] {
        let g = encode(uuid, layout);
        if ipmitool_detects(&g, this_year) == Some(layout) {
            return g;
        }
    }
    encode(uuid, Layout::Ipmi)
}

/// Parses a UUID in its text form (with or without dashes).
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex_text: String = s.chars().filter(|c| *c != '-').collect();
    let bytes = hex::decode(hex_text).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What ipmitool prints for `g` in `layout` (its `%08x-%04x-%04x-%04x-`
    /// then node bytes).
    fn ipmitool_prints(g: &[u8; 16], layout: Layout) -> String {
        let (low, mid, hi) = time_fields(g, layout);
        let (clock, node): (u16, [u8; 6]) = match layout {
            Layout::Ipmi => {
                let mut node = [0u8; 6];
                node.copy_from_slice(&g[0..6]);
                node.reverse();
                (u16::from_le_bytes([g[6], g[7]]), node)
            }
            Layout::Rfc4122 | Layout::Smbios => {
                let mut node = [0u8; 6];
                node.copy_from_slice(&g[10..16]);
                (u16::from_be_bytes([g[8], g[9]]), node)
            }
        };
        format!(
            "{low:08x}-{mid:04x}-{hi:04x}-{clock:04x}-{}",
            hex::encode(node)
        )
    }

    fn text(uuid: [u8; 16]) -> String {
        let h = hex::encode(uuid);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    #[test]
    fn ipmitool_prints_random_uuids_correctly_whenever_possible() {
        let (mut ipmi, mut impossible) = (0, 0);
        for _ in 0..20_000 {
            let mut uuid: [u8; 16] = rand::random();
            uuid[6] = (uuid[6] & 0x0f) | 0x40;
            uuid[8] = (uuid[8] & 0x3f) | 0x80;
            let g = system_guid(uuid, 2026);
            let layout = ipmitool_detects(&g, 2026).expect("detected");
            if ipmitool_prints(&g, layout) != text(uuid) {
                // Only when no encoding is read back right, and then the
                // spec's own, which `mc guid ipmi` prints right.
                assert!(
                    LAYOUTS
                        .iter()
                        .all(|l| ipmitool_detects(&encode(uuid, *l), 2026) != Some(*l)),
                    "{}",
                    text(uuid)
                );
                assert_eq!(g, encode(uuid, Layout::Ipmi));
                assert_eq!(ipmitool_prints(&g, Layout::Ipmi), text(uuid));
                impossible += 1;
            } else if layout == Layout::Ipmi {
                ipmi += 1;
            }
        }
        // The spec's encoding is kept whenever ipmitool allows it, and the
        // hopeless cases are rare.
        assert!(ipmi > 12_000, "{ipmi}");
        assert!(impossible < 100, "{impossible}");
    }

    #[test]
    fn known_uuid() {
        let uuid = parse_uuid("6a3f0a5e-2f7c-4b1e-9d2a-0c1b2a394857").expect("uuid");
        let g = system_guid(uuid, 2026);
        let layout = ipmitool_detects(&g, 2026).expect("detected");
        assert_eq!(
            ipmitool_prints(&g, layout),
            "6a3f0a5e-2f7c-4b1e-9d2a-0c1b2a394857"
        );
        assert!(parse_uuid("not-a-uuid").is_none());
    }
}
