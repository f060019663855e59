//! The SDR repository (IPMI v2.0 chapter 33, record formats in chapter
//! 43): Get SDR Repository Info, Reserve SDR Repository and Get SDR.
//!
//! A virtual BMC has no sensors, so the repository holds one record: the
//! Management Controller Device Locator of the BMC itself (section 43.9),
//! as every real repository does. Not zero records, because FreeIPMI
//! refuses a repository reporting none ("invalid record count") and
//! `ipmi-sensors` would fail; a device locator is not a sensor, so
//! `ipmitool sdr list`, `sensor list` and `ipmi-sensors` print nothing.
//! The repository never changes: its timestamps are constant across
//! restarts, so FreeIPMI's SDR cache stays valid.
//!
//! ipmitool reads the repository (not device SDRs) because Get Device ID
//! does not set "provides device SDRs"; Get Device SDR Info on the sensor
//! network function is therefore never asked and stays C1.

use super::{Ctx, Handled, ReplyData};
use crate::platform::next_reservation;
use crate::wire::ids::CompletionCode;

/// SDR version 51h (IPMI 1.5 and 2.0).
const SDR_VERSION: u8 = 0x51;
/// The one record's ID.
const RECORD_ID: u16 = 0x0001;
/// "Last record" when asking, and "no next record" when answering.
const LAST_RECORD: u16 = 0xffff;
/// Timestamp "unspecified": nothing was ever added or erased.
const NEVER: [u8; 4] = [0xff; 4];

/// The MC Device Locator record of the BMC (section 43.9, type 12h).
const MC_LOCATOR: [u8; 23] = [
    // Header: record ID, SDR version, type, length of the rest.
    RECORD_ID.to_le_bytes()[0],
    RECORD_ID.to_le_bytes()[1],
    SDR_VERSION,
    0x12,
    18,
    // Device slave address 20h, channel 0.
    0x20,
    0x00,
    // No ACPI power state notification; event messages enabled.
    0x00,
    // Capabilities: chassis device (7), FRU inventory (3), SEL (2), SDR
    // repository (1).
    0x8e,
    0x00,
    0x00,
    0x00,
    // Entity: system management module (06h), instance 1.
    0x06,
    0x01,
    0x00,
    // Device ID string: 8-bit ASCII, 7 bytes.
    0xc7,
    b'n',
    b'o',
    b'v',
    b'a',
    b'b',
    b'm',
    b'c',
];

/// Get SDR Repository Info (section 33.9): one record, no free space, only
/// Reserve supported (bit 1), non-modal updates unspecified.
pub(super) fn get_info(_ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if !d.is_empty() {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    }
    let mut out = [0u8; 14];
    out[0] = SDR_VERSION;
    out[1..3].copy_from_slice(&1u16.to_le_bytes());
    out[5..9].copy_from_slice(&NEVER);
    out[9..13].copy_from_slice(&NEVER);
    out[13] = 0x02;
    Handled::ok(&out)
}

/// Reserve SDR Repository (section 33.11): a new reservation, which
/// cancels the previous one.
pub(super) fn reserve(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if !d.is_empty() {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    }
    let r = next_reservation(ctx.platform.sdr_reservation);
    ctx.platform.sdr_reservation = r;
    Handled::ok(&r.to_le_bytes())
}

/// Get SDR (section 33.12): reservation, record ID, offset, count (FFh:
/// the rest of the record). A partial read (offset past 0) needs the
/// current reservation, as the spec says; a read from the start needs
/// none.
pub(super) fn get(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    let [r0, r1, id0, id1, offset, count] = d else {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    };
    let reservation = u16::from_le_bytes([*r0, *r1]);
    let offset = usize::from(*offset);
    if offset != 0 && (reservation == 0 || reservation != ctx.platform.sdr_reservation) {
        return Handled::code(CompletionCode::RESERVATION_INVALID);
    }
    if !matches!(
        u16::from_le_bytes([*id0, *id1]),
        0 | RECORD_ID | LAST_RECORD
    ) {
        return Handled::code(CompletionCode::NOT_PRESENT);
    }
    if offset >= MC_LOCATOR.len() {
        return Handled::code(CompletionCode::PARAMETER_OUT_OF_RANGE);
    }
    let rest = &MC_LOCATOR[offset..];
    let n = if *count == 0xff {
        rest.len()
    } else {
        rest.len().min(usize::from(*count))
    };
    let mut out = [0u8; 2 + MC_LOCATOR.len()];
    out[..2].copy_from_slice(&LAST_RECORD.to_le_bytes());
    out[2..2 + n].copy_from_slice(&rest[..n]);
    Handled::Reply(CompletionCode::OK, ReplyData::from_slice(&out[..2 + n]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locator_length_byte_counts_the_body() {
        assert_eq!(usize::from(MC_LOCATOR[4]), MC_LOCATOR.len() - 5);
        assert_eq!(usize::from(MC_LOCATOR[15] & 0x3f), MC_LOCATOR.len() - 16);
    }
}
