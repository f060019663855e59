//! RMCP+ payload commands (IPMI v2.0 chapter 24) for the one payload
//! beyond IPMI that this BMC carries, SOL: Activate and Deactivate
//! Payload, Get Payload Activation Status, Get Payload Instance Info, Get
//! Channel Payload Support and Get Channel Payload Version.
//!
//! Activation honours what the console asks and what the SOL
//! configuration demands: encryption asked in a session without
//! confidentiality is refused (83h), encryption left out while the
//! configuration forces it is refused (84h), and authentication must be
//! asked exactly when the session authenticates, since SOL packets are
//! protected no less than the session's own (CCh otherwise). One instance
//! exists, so a second activation gets 80h, which ipmitool prints as "SOL
//! payload already active on another session".

use super::{Ctx, Handled, SessionView, is_our_channel, length_is};
use crate::session::established::Protection;
use crate::sol::Deactivation;
use crate::sol::packet::{HEADER_LEN, MAX_CHARACTERS};
use crate::wire::ids::{CompletionCode, Privilege};

/// Payload type 1.
const SOL: u8 = 0x01;
/// Payload type 0, which Get Channel Payload Version may ask about.
const IPMI: u8 = 0x00;
/// Our one SOL instance.
const INSTANCE: u8 = 1;
/// Largest SOL payload either way: header and 255 characters, the most an
/// accepted-character count can acknowledge.
const MAX_PAYLOAD: u16 = (HEADER_LEN + MAX_CHARACTERS) as u16;

/// Activate Payload: payload already active on another session.
const ALREADY_ACTIVE: CompletionCode = CompletionCode(0x80);
/// Activate Payload: payload type disabled.
const DISABLED: CompletionCode = CompletionCode(0x81);
/// Activate Payload: payload activation limit reached.
const LIMIT_REACHED: CompletionCode = CompletionCode(0x82);
/// Activate Payload: cannot activate payload with encryption.
const CANNOT_ENCRYPT: CompletionCode = CompletionCode(0x83);
/// Activate Payload: cannot activate payload without encryption.
const MUST_ENCRYPT: CompletionCode = CompletionCode(0x84);
/// Deactivate Payload: payload already deactivated.
const ALREADY_DEACTIVATED: CompletionCode = CompletionCode(0x80);
/// Get Channel Payload Version: payload type not available on this
/// channel.
const NOT_AVAILABLE: CompletionCode = CompletionCode(0x80);

/// The payload type and instance bytes of Activate and Deactivate.
fn sol_instance(d: &[u8]) -> Result<(), CompletionCode> {
    if d[0] & 0x3f != SOL {
        return Err(CompletionCode::INVALID_DATA_FIELD);
    }
    match d[1] & 0x0f {
        0 => Err(CompletionCode::INVALID_DATA_FIELD),
        INSTANCE => Ok(()),
        _ => Err(LIMIT_REACHED),
    }
}

/// The checks Activate and Deactivate Payload share: six request bytes,
/// sent in a session, naming SOL instance 1. Returns that session.
fn sol_request(ctx: &Ctx<'_>, d: &[u8]) -> Result<SessionView, CompletionCode> {
    length_is(d, 6)?;
    let session = ctx.session.ok_or(CompletionCode::INSUFFICIENT_PRIVILEGE)?;
    sol_instance(d)?;
    Ok(session)
}

/// Activate Payload (section 24.1): request `[type, instance, aux x4]`,
/// answer the twelve bytes ipmitool checks: aux data, inbound and outbound
/// payload sizes, the UDP port (the one this BMC listens on, which
/// ipmitool insists on) and no VLAN.
pub(super) fn activate(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    let session = match sol_request(ctx, d) {
        Ok(s) => s,
        Err(cc) => return Handled::code(cc),
    };
    let config = ctx.sol.config;
    if !config.enabled {
        return Handled::code(DISABLED);
    }
    if session.privilege < config.privilege {
        return Handled::code(CompletionCode::INSUFFICIENT_PRIVILEGE);
    }
    let encrypt = d[2] & 0x80 != 0;
    let authenticate = d[2] & 0x40 != 0;
    if encrypt && !session.protection.encrypted {
        return Handled::code(CANNOT_ENCRYPT);
    }
    if !encrypt && config.force_encryption {
        return Handled::code(MUST_ENCRYPT);
    }
    if authenticate != session.protection.authenticated
        || (!authenticate && config.force_authentication)
    {
        return Handled::code(CompletionCode::INVALID_DATA_FIELD);
    }
    if ctx.sol.active().is_some() {
        return Handled::code(ALREADY_ACTIVE);
    }
    ctx.sol.activate(
        session.id,
        session.user_id,
        Protection {
            authenticated: authenticate,
            encrypted: encrypt,
        },
    );
    let size = MAX_PAYLOAD.to_le_bytes();
    let port = config.port.to_le_bytes();
    Handled::ok(&[
        0, 0, 0, 0, size[0], size[1], size[0], size[1], port[0], port[1], 0xff, 0xff,
    ])
}

/// Deactivate Payload (section 24.2): by the owning session, or by
/// another session of the same user or at administrator level (Ironic
/// runs `sol deactivate` in a fresh session before each console start).
pub(super) fn deactivate(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    let session = match sol_request(ctx, d) {
        Ok(s) => s,
        Err(cc) => return Handled::code(cc),
    };
    let Some(active) = ctx.sol.active() else {
        return Handled::code(ALREADY_DEACTIVATED);
    };
    let why = if active.session_id == session.id {
        Deactivation::ByOwner
    } else if active.user_id == session.user_id || session.privilege >= Privilege::Administrator {
        Deactivation::ByOther {
            session_id: session.id,
        }
    } else {
        return Handled::code(CompletionCode::INSUFFICIENT_PRIVILEGE);
    };
    ctx.sol.deactivate(why);
    Handled::ok(&[])
}

/// Get Payload Activation Status (section 24.4): one instance, and whether
/// it is active.
pub(super) fn activation_status(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if let Err(cc) = length_is(d, 1) {
        return Handled::code(cc);
    }
    if d[0] & 0x3f != SOL {
        return Handled::code(CompletionCode::INVALID_DATA_FIELD);
    }
    let active = u8::from(ctx.sol.active().is_some());
    Handled::ok(&[INSTANCE, active, 0])
}

/// Get Payload Instance Info (section 24.5): the owning session's ID and,
/// for SOL, the serial port number (1), or zeros when inactive.
pub(super) fn instance_info(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if let Err(cc) = length_is(d, 2) {
        return Handled::code(cc);
    }
    if let Err(cc) = sol_instance(d) {
        return Handled::code(cc);
    }
    let mut out = [0u8; 12];
    if let Some(owner) = ctx.sol.owner() {
        out[..4].copy_from_slice(&owner.to_le_bytes());
        out[4] = 1;
    }
    Handled::ok(&out)
}

/// Get Channel Payload Support (section 24.8): IPMI and SOL, and the six
/// session setup payloads.
pub(super) fn channel_payload_support(_ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if let Err(cc) = length_is(d, 1) {
        return Handled::code(cc);
    }
    if !is_our_channel(d[0]) {
        return Handled::code(CompletionCode::INVALID_DATA_FIELD);
    }
    Handled::ok(&[0x03, 0x00, 0x3f, 0x00, 0x00, 0x00, 0x00, 0x00])
}

/// Get Channel Payload Version (section 24.9): format version 1.0 for the
/// two payloads carried.
pub(super) fn channel_payload_version(_ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if let Err(cc) = length_is(d, 2) {
        return Handled::code(cc);
    }
    if !is_our_channel(d[0]) {
        return Handled::code(CompletionCode::INVALID_DATA_FIELD);
    }
    match d[1] & 0x3f {
        IPMI | SOL => Handled::ok(&[0x10]),
        _ => Handled::code(NOT_AVAILABLE),
    }
}
