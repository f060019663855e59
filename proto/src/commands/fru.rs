//! FRU inventory device commands (IPMI v2.0 chapter 34): Get FRU Inventory
//! Area Info, Read FRU Data and Write FRU Data, over FRU device 0, the
//! one the BMC holds. The image itself is [`crate::fru_area`]'s.
//!
//! The image comes from the daemon once its backend knows the machine (for
//! Nova: once the server is resolved); until then both reads answer C0,
//! "node busy", as a command that needs the backend does. Nothing can be
//! written: the inventory is the cloud's description of the server.

use super::{Ctx, Handled, REPLY_CAPACITY, ReplyData};
use crate::wire::ids::CompletionCode;

/// The BMC's own FRU device.
const FRU_DEVICE: u8 = 0;
/// Most bytes one Read FRU Data reply carries (after the count byte).
pub(super) const MAX_READ: usize = REPLY_CAPACITY - 1;
/// Write FRU Data: "write-protected offset" (table 34-4).
const WRITE_PROTECTED: CompletionCode = CompletionCode(0x80);

fn image<'a>(ctx: &'a Ctx<'_>, device: u8) -> Result<&'a [u8], CompletionCode> {
    if device != FRU_DEVICE {
        return Err(CompletionCode::NOT_PRESENT);
    }
    ctx.platform.fru.as_deref().ok_or(CompletionCode::NODE_BUSY)
}

/// Get FRU Inventory Area Info (section 34.1): size, byte access.
pub(super) fn get_area_info(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    let [device] = d else {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    };
    match image(ctx, *device) {
        Ok(fru) => {
            let size = (fru.len().min(usize::from(u16::MAX)) as u16).to_le_bytes();
            Handled::ok(&[size[0], size[1], 0x00])
        }
        Err(cc) => Handled::code(cc),
    }
}

/// Read FRU Data (section 34.2): device, offset, count. A count the reply
/// cannot carry gets CA, on which ipmitool retries with fewer bytes; a
/// read past the end returns what there is (the count byte says how
/// much), one starting past the end is out of range.
pub(super) fn read(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    let [device, o0, o1, count] = d else {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    };
    let fru = match image(ctx, *device) {
        Ok(f) => f,
        Err(cc) => return Handled::code(cc),
    };
    let count = usize::from(*count);
    if count > MAX_READ {
        return Handled::code(CompletionCode::CANNOT_RETURN_REQUESTED_BYTES);
    }
    let offset = usize::from(u16::from_le_bytes([*o0, *o1]));
    if offset > fru.len() {
        return Handled::code(CompletionCode::PARAMETER_OUT_OF_RANGE);
    }
    let n = count.min(fru.len() - offset);
    let mut out = [0u8; REPLY_CAPACITY];
    out[0] = n as u8;
    out[1..1 + n].copy_from_slice(&fru[offset..offset + n]);
    Handled::Reply(CompletionCode::OK, ReplyData::from_slice(&out[..1 + n]))
}

/// Write FRU Data (section 34.3): the whole image is write-protected.
pub(super) fn write(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    let [device, _o0, _o1, _data @ ..] = d else {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    };
    match image(ctx, *device) {
        Ok(_) => Handled::code(WRITE_PROTECTED),
        Err(cc) => Handled::code(cc),
    }
}
