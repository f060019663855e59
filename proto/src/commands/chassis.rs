//! Chassis commands (IPMI v2.0 chapter 28): capabilities, status, power
//! control, identify and system boot options.

use std::time::{Duration, Instant};

use super::{Ctx, Followup, Handled, ReplyData};
use crate::action::{Action, ChassisControl, ChassisState};
use crate::boot_options::{BootOptionError, BootParameterWrite, param};
use crate::wire::ids::CompletionCode;

/// The chassis identify indicator (section 28.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Identify {
    until: Option<Instant>,
    forever: bool,
}

impl Identify {
    /// Bits 5..4 of Get Chassis Status byte 3: 00 off, 01 temporary on,
    /// 10 indefinite on.
    fn state(&self, now: Instant) -> u8 {
        if self.forever {
            0b10
        } else if self.until.is_some_and(|t| t > now) {
            0b01
        } else {
            0b00
        }
    }
}

/// Get Chassis Capabilities (section 28.1): no optional features; every
/// device address is the BMC's.
pub(super) fn get_capabilities(_ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if !d.is_empty() {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    }
    Handled::ok(&[0x00, 0x20, 0x20, 0x20, 0x20])
}

/// Get Chassis Status (section 28.2): the power state comes from the
/// backend.
pub(super) fn get_status(_ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if !d.is_empty() {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    }
    Handled::Defer(Action::GetChassisStatus, Followup::ChassisStatus)
}

/// The three bytes of Get Chassis Status: power on and fault bits with the
/// restore policy reported as unknown, no last power event, and the
/// identify state (with bit 6, "identify state supported").
pub(super) fn status_bytes(state: ChassisState, identify: &Identify, now: Instant) -> ReplyData {
    let power = u8::from(state.power_on) | if state.power_fault { 0x08 } else { 0 } | 0x60;
    ReplyData::from_slice(&[power, 0x00, 0x40 | identify.state(now) << 4])
}

/// Chassis Control (section 28.3).
pub(super) fn control(_ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    match d {
        [b] => match ChassisControl::from_byte(*b) {
            Some(c) if b & 0xf0 == 0 => Handled::Defer(Action::ChassisControl(c), Followup::Ack),
            _ => Handled::code(CompletionCode::INVALID_DATA_FIELD),
        },
        _ => Handled::code(CompletionCode::REQUEST_LENGTH_INVALID),
    }
}

/// Chassis Identify (section 28.5): optional interval in seconds (default
/// 15, 0 turns it off) and optional "force on" bit.
pub(super) fn identify(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    let (interval, force) = match d {
        [] => (15, false),
        [i] => (*i, false),
        [i, f] => (*i, f & 0x01 != 0),
        _ => return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID),
    };
    *ctx.identify = if force {
        Identify {
            until: None,
            forever: true,
        }
    } else if interval == 0 {
        Identify::default()
    } else {
        Identify {
            until: Some(ctx.now + Duration::from_secs(interval.into())),
            forever: false,
        }
    };
    Handled::ok(&[])
}

/// Set System Boot Options (section 28.12).
pub(super) fn set_boot_options(_ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    match BootParameterWrite::parse(d) {
        Ok((write, mark_invalid)) => Handled::Defer(
            Action::SetBootParameter {
                write,
                mark_invalid,
            },
            Followup::Ack,
        ),
        Err(e) => Handled::code(e.into()),
    }
}

/// Get System Boot Options (section 28.13): parameter selector, set
/// selector, block selector.
pub(super) fn get_boot_options(_ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    let [selector, _set, _block] = d else {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    };
    let parameter = selector & 0x7f;
    if !matches!(
        parameter,
        param::SET_IN_PROGRESS
            | param::VALID_BIT_CLEARING
            | param::BOOT_INFO_ACK
            | param::BOOT_FLAGS
    ) {
        return Handled::code(BootOptionError::ParameterNotSupported.into());
    }
    Handled::Defer(Action::GetBootOptions, Followup::BootParameter(parameter))
}
