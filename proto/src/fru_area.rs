//! The FRU inventory image of a node, encoded as the Platform Management
//! FRU Information Storage Definition v1.0 lays it out: a common header
//! (section 8) followed by a chassis info area (section 10), a board info
//! area (section 11) and a product info area (section 12).
//!
//! Every area starts with format version 1 and its length in multiples of
//! eight bytes, holds type/length-prefixed fields (section 13: type `11b`,
//! 8-bit ASCII + Latin 1, up to 63 bytes), ends with the `C1` end-of-fields
//! marker, is padded with zeros to a multiple of eight bytes, and its last
//! byte makes the whole area sum to zero. The image is built once when the
//! daemon learns the node's inventory, so reads never allocate.

/// Longest field a type/length byte can announce (six length bits).
const MAX_FIELD: usize = 63;
/// Type/length byte of an empty field: 8-bit ASCII, length 0.
const EMPTY_FIELD: u8 = 0xc0;
/// The end-of-fields marker (type `11b`, length 1, which is therefore never
/// a field of its own: one-byte strings are padded to two).
const END_OF_FIELDS: u8 = 0xc1;
/// Chassis type "Other" (SMBIOS table 3.3.4.1, which the FRU spec uses):
/// a cloud server has no enclosure of its own to name.
const CHASSIS_TYPE_OTHER: u8 = 0x01;
/// Language code 0: English, the one language 8-bit ASCII fields may use.
const ENGLISH: u8 = 0x00;

/// What a node's FRU says about the machine behind it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Board and product manufacturer.
    pub manufacturer: String,
    /// Product name (for a Nova server: its flavor).
    pub product_name: String,
    /// Product and board part/model number.
    pub part_number: String,
    /// Serial number of chassis, board and product (a Nova server's UUID).
    pub serial_number: String,
    /// Asset tag (a Nova server's name).
    pub asset_tag: String,
}

impl Inventory {
    /// The FRU image: common header, chassis, board and product areas.
    pub fn encode(&self) -> Vec<u8> {
        let chassis = area(
            &[CHASSIS_TYPE_OTHER],
            &[&self.part_number, &self.serial_number],
        );
        // Manufacturing date 0: unspecified (minutes since 1996 are not
        // something a cloud server has).
        let board = area(
            &[ENGLISH, 0, 0, 0],
            &[
                &self.manufacturer,
                &self.product_name,
                &self.serial_number,
                &self.part_number,
                "",
            ],
        );
        let product = area(
            &[ENGLISH],
            &[
                &self.manufacturer,
                &self.product_name,
                &self.part_number,
                "",
                &self.serial_number,
                &self.asset_tag,
                "",
            ],
        );
        let chassis_at = 1;
        let board_at = chassis_at + chassis.len() / 8;
        let product_at = board_at + board.len() / 8;
        let mut image = Vec::with_capacity(8 + chassis.len() + board.len() + product.len());
        // Offsets are in multiples of eight bytes; no internal use or
        // multi-record area.
        image.extend_from_slice(&[
            0x01,
            0x00,
            chassis_at as u8,
            board_at as u8,
            product_at as u8,
            0x00,
            0x00,
        ]);
        image.push(checksum(&image));
        image.extend_from_slice(&chassis);
        image.extend_from_slice(&board);
        image.extend_from_slice(&product);
        image
    }
}

/// One info area: version, length, the fixed bytes, the fields, the end
/// marker, padding and checksum. Each field is at most 63 bytes and an
/// area at most 8 + 3 * 64 bytes here, so the length byte cannot overflow.
fn area(fixed: &[u8], fields: &[&str]) -> Vec<u8> {
    let mut a = vec![0x01, 0x00];
    a.extend_from_slice(fixed);
    for f in fields {
        field(&mut a, f);
    }
    a.push(END_OF_FIELDS);
    // Room for the checksum, then up to a multiple of eight.
    a.push(0);
    while a.len() % 8 != 0 {
        a.push(0);
    }
    a[1] = (a.len() / 8) as u8;
    let last = a.len() - 1;
    a[last] = checksum(&a[..last]);
    a
}

/// Appends one 8-bit ASCII field: characters outside printable ASCII become
/// `?` (the field has no encoding for them), the text is cut at 63 bytes,
/// and a one-byte text gets a trailing space so its type/length byte is not
/// the end-of-fields marker.
fn field(out: &mut Vec<u8>, text: &str) {
    let mut bytes: Vec<u8> = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c as u8
            } else {
                b'?'
            }
        })
        .take(MAX_FIELD)
        .collect();
    if bytes.len() == 1 {
        bytes.push(b' ');
    }
    out.push(EMPTY_FIELD | bytes.len() as u8);
    out.extend_from_slice(&bytes);
}

/// The zero checksum: the byte that makes `data` plus it sum to 0 mod 256.
fn checksum(data: &[u8]) -> u8 {
    data.iter()
        .fold(0u8, |s, b| s.wrapping_add(*b))
        .wrapping_neg()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory() -> Inventory {
        Inventory {
            manufacturer: "OpenStack Nova".into(),
            product_name: "baremetal".into(),
            part_number: "baremetal".into(),
            serial_number: "5b8f6a8e-2c2d-4e41-9d0e-3f0a1c2b4d6e".into(),
            asset_tag: "node-0".into(),
        }
    }

    fn sums_to_zero(b: &[u8]) -> bool {
        b.iter().fold(0u8, |s, x| s.wrapping_add(*x)) == 0
    }

    /// The fields of the area starting at `at`, after `fixed` bytes.
    fn fields(image: &[u8], at: usize, fixed: usize) -> Vec<String> {
        let len = usize::from(image[at + 1]) * 8;
        let area = &image[at..at + len];
        assert!(sums_to_zero(area), "area checksum");
        let mut i = 2 + fixed;
        let mut out = Vec::new();
        while area[i] != END_OF_FIELDS {
            assert_eq!(area[i] & 0xc0, 0xc0, "8-bit ASCII type");
            let n = usize::from(area[i] & 0x3f);
            out.push(String::from_utf8_lossy(&area[i + 1..i + 1 + n]).into_owned());
            i += 1 + n;
        }
        out
    }

    #[test]
    fn header_points_at_three_checksummed_areas() {
        let image = inventory().encode();
        assert_eq!(image.len() % 8, 0);
        assert!(sums_to_zero(&image[..8]), "header checksum");
        assert_eq!(image[0], 0x01);
        assert_eq!(image[1], 0, "no internal use area");
        assert_eq!(image[5], 0, "no multi-record area");
        let (c, b, p) = (
            usize::from(image[2]) * 8,
            usize::from(image[3]) * 8,
            usize::from(image[4]) * 8,
        );
        assert_eq!(c, 8);
        assert_eq!(c + usize::from(image[c + 1]) * 8, b);
        assert_eq!(b + usize::from(image[b + 1]) * 8, p);
        assert_eq!(p + usize::from(image[p + 1]) * 8, image.len());
        assert_eq!(image[c + 2], CHASSIS_TYPE_OTHER);
        let inv = inventory();
        assert_eq!(
            fields(&image, c, 1),
            [inv.part_number.as_str(), &inv.serial_number]
        );
        assert_eq!(
            fields(&image, b, 4),
            [
                "OpenStack Nova",
                "baremetal",
                &inv.serial_number,
                "baremetal",
                ""
            ]
        );
        assert_eq!(
            fields(&image, p, 1),
            [
                "OpenStack Nova",
                "baremetal",
                "baremetal",
                "",
                &inv.serial_number,
                "node-0",
                ""
            ]
        );
    }

    #[test]
    fn fields_are_ascii_cut_and_never_the_end_marker() {
        let mut inv = inventory();
        inv.asset_tag = "é".repeat(100);
        inv.product_name = "x".into();
        let image = inv.encode();
        let p = usize::from(image[4]) * 8;
        let f = fields(&image, p, 1);
        assert_eq!(f[1], "x ");
        assert_eq!(f[5], "?".repeat(63));
    }

    #[test]
    fn empty_inventory_still_encodes() {
        let image = Inventory::default().encode();
        assert!(sums_to_zero(&image[..8]));
        let p = usize::from(image[4]) * 8;
        assert_eq!(fields(&image, p, 1), vec![String::new(); 7]);
    }
}
