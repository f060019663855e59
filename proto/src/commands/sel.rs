//! The System Event Log (IPMI v2.0 chapter 31): Get SEL Info, Get SEL
//! Allocation Info, Reserve SEL, Get SEL Entry, Clear SEL and Get SEL
//! Time.
//!
//! A virtual BMC watches no sensors and so logs no events: the SEL is
//! empty and has no room (`ipmitool sel info` shows 0 entries, `sel list`
//! "SEL has no entries", FreeIPMI `ipmi-sel` an empty list). Clearing it
//! is accepted and completes at once. The SEL time is the host's clock,
//! which the daemon reads for the engine ([`Action::ReadClock`]).

use super::{Ctx, Followup, Handled};
use crate::action::Action;
use crate::platform::next_reservation;
use crate::wire::ids::CompletionCode;

/// SEL version 51h (IPMI 1.5 and 2.0).
const SEL_VERSION: u8 = 0x51;
/// Timestamp "unspecified": nothing was ever added or erased.
const NEVER: [u8; 4] = [0xff; 4];

/// Get SEL Info (section 31.2): no entries, no free space, Reserve (bit 1)
/// and Get SEL Allocation Info (bit 0) supported.
pub(super) fn get_info(_ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if !d.is_empty() {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    }
    let mut out = [0u8; 14];
    out[0] = SEL_VERSION;
    out[5..9].copy_from_slice(&NEVER);
    out[9..13].copy_from_slice(&NEVER);
    out[13] = 0x03;
    Handled::ok(&out)
}

/// Get SEL Allocation Info (section 31.3): no allocation units at all, of
/// the usual 16 bytes, one unit being the largest record.
pub(super) fn get_allocation_info(_ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if !d.is_empty() {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    }
    Handled::ok(&[0, 0, 16, 0, 0, 0, 0, 0, 1])
}

/// Reserve SEL (section 31.4).
pub(super) fn reserve(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if !d.is_empty() {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    }
    let r = next_reservation(ctx.platform.sel_reservation);
    ctx.platform.sel_reservation = r;
    Handled::ok(&r.to_le_bytes())
}

/// Get SEL Entry (section 31.5): no record is ever present (CB).
pub(super) fn get_entry(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    let [r0, r1, _id0, _id1, offset, _count] = d else {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    };
    let reservation = u16::from_le_bytes([*r0, *r1]);
    if *offset != 0 && (reservation == 0 || reservation != ctx.platform.sel_reservation) {
        return Handled::code(CompletionCode::RESERVATION_INVALID);
    }
    Handled::code(CompletionCode::NOT_PRESENT)
}

/// Clear SEL (section 31.9): reservation, "CLR", then AAh (erase) or 00h
/// (status). Erasing an empty log completes at once: status 1.
pub(super) fn clear(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    let [r0, r1, b'C', b'L', b'R', operation] = d else {
        return Handled::code(if d.len() == 6 {
            CompletionCode::INVALID_DATA_FIELD
        } else {
            CompletionCode::REQUEST_LENGTH_INVALID
        });
    };
    let reservation = u16::from_le_bytes([*r0, *r1]);
    if reservation == 0 || reservation != ctx.platform.sel_reservation {
        return Handled::code(CompletionCode::RESERVATION_INVALID);
    }
    match operation {
        0xaa | 0x00 => Handled::ok(&[0x01]),
        _ => Handled::code(CompletionCode::INVALID_DATA_FIELD),
    }
}

/// Get SEL Time (section 31.10): the host's clock, from the daemon.
pub(super) fn get_time(_ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if !d.is_empty() {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    }
    Handled::Defer(Action::ReadClock, Followup::SelTime)
}
