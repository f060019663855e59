//! Application commands (IPMI v2.0 chapters 20 and 22): device identity,
//! channel and session management.

use super::{Ctx, Followup, Handled, LAN_CHANNEL, ReplyData, is_our_channel, length_is, peer_ipv4};
use crate::action::Action;
use crate::wire::ids::{CompletionCode, Privilege};

/// Get Device ID (section 20.1): fifteen bytes, as ipmitool reads them
/// without a length check.
pub(super) fn get_device_id(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if let Err(cc) = length_is(d, 0) {
        return Handled::code(cc);
    }
    Handled::ok(&ctx.config.device.to_bytes())
}

/// Cold and Warm Reset (sections 20.2, 20.3): a virtual BMC has nothing to
/// reboot, so a reset drops this BMC's sessions and nothing else.
pub(super) fn reset(_ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if let Err(cc) = length_is(d, 0) {
        return Handled::code(cc);
    }
    Handled::Reset
}

/// Get Self Test Results (section 20.4): 55h, "no error".
pub(super) fn get_self_test_results(_ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if let Err(cc) = length_is(d, 0) {
        return Handled::code(cc);
    }
    Handled::ok(&[0x55, 0x00])
}

/// Get System GUID (section 22.14): the machine's GUID from the backend.
pub(super) fn get_system_guid(_ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if let Err(cc) = length_is(d, 0) {
        return Handled::code(cc);
    }
    Handled::Defer(Action::GetSystemGuid, Followup::Guid)
}

/// Get Channel Authentication Capabilities (section 22.13), answered the
/// same for the v1.5 and v2.0 request forms: IPMI 2.0 only, no IPMI 1.5
/// authentication types (so 1.5 consoles fail fast instead of timing out),
/// named users only, and the Kg bit telling consoles whether a BMC key is
/// set (FreeIPMI refuses before Open Session when it disagrees with `-k`).
pub(super) fn get_channel_auth_caps(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if let Err(cc) = length_is(d, 2) {
        return Handled::code(cc);
    }
    if !is_our_channel(d[0]) || d[0] & 0x70 != 0 {
        return Handled::code(CompletionCode::INVALID_DATA_FIELD);
    }
    if !(1..=5).contains(&(d[1] & 0x0f)) {
        return Handled::code(CompletionCode::INVALID_DATA_FIELD);
    }
    let kg = if ctx.config.kg.is_some() { 0x20 } else { 0x00 };
    Handled::ok(&[LAN_CHANNEL, 0x80, kg | 0x04, 0x02, 0, 0, 0, 0])
}

/// Set Session Privilege Level (section 22.18).
pub(super) fn set_session_privilege(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if let Err(cc) = length_is(d, 1) {
        return Handled::code(cc);
    }
    let Some(session) = ctx.session else {
        return Handled::code(CompletionCode::INSUFFICIENT_PRIVILEGE);
    };
    let level = d[0] & 0x0f;
    if level == 0 {
        return Handled::SetPrivilege(session.privilege);
    }
    match Privilege::from_level(level) {
        Some(p) if p <= session.max_privilege => Handled::SetPrivilege(p),
        Some(_) => Handled::code(CompletionCode::LEVEL_EXCEEDS_LIMIT),
        None => Handled::code(CompletionCode::PARAMETER_NOT_SUPPORTED),
    }
}

/// Close Session (section 22.19). A session may close itself; closing
/// another needs Administrator.
pub(super) fn close_session(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    let Some(session) = ctx.session else {
        return Handled::code(CompletionCode::INSUFFICIENT_PRIVILEGE);
    };
    let target = match d {
        [a, b, c, e] => {
            let id = u32::from_le_bytes([*a, *b, *c, *e]);
            match ctx.table.get(id) {
                Some(s) => s.id,
                None => return Handled::code(CompletionCode::INVALID_SESSION_ID),
            }
        }
        [0, 0, 0, 0, handle] => match ctx.table.by_handle(*handle) {
            Some(s) => s.id,
            None => return Handled::code(CompletionCode::INVALID_SESSION_HANDLE),
        },
        _ => return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID),
    };
    if target != session.id && session.privilege < Privilege::Administrator {
        return Handled::code(CompletionCode::INSUFFICIENT_PRIVILEGE);
    }
    Handled::CloseSession(target)
}

/// Get Session Info (section 22.20). An index with no session behind it
/// gets the three-byte form with handle 0, as the spec describes; only
/// established sessions are listed (half-open ones have no handle).
pub(super) fn get_session_info(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    let Some(current) = ctx.session else {
        return Handled::code(CompletionCode::INSUFFICIENT_PRIVILEGE);
    };
    let found = match d {
        [0x00] => ctx.table.get(current.id),
        [0xfe, handle] => ctx.table.by_handle(*handle),
        [0xff, a, b, c, e] => ctx.table.get(u32::from_le_bytes([*a, *b, *c, *e])),
        [n] if *n != 0xfe && *n != 0xff => ctx.table.nth_established(usize::from(*n)),
        _ => return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID),
    };
    // The count fields are six bits wide: at most 63, however many
    // sessions the table really holds.
    let slots = ctx.table.max_established().min(63) as u8;
    let active = ctx.table.established().min(63) as u8;
    let Some(s) = found else {
        return Handled::ok(&[0, slots, active]);
    };
    let e = &s.established;
    let mut out = [0u8; 18];
    out[..6].copy_from_slice(&[
        s.handle,
        slots,
        active,
        e.user_id & 0x3f,
        e.privilege.level(),
        0x10 | LAN_CHANNEL,
    ]);
    match peer_ipv4(s.peer) {
        Some((ip, port)) => {
            out[6..10].copy_from_slice(&ip);
            // Bytes 10..16: the console's MAC, unknown to a UDP server.
            out[16..18].copy_from_slice(&port.to_le_bytes());
            Handled::ok(&out)
        }
        None => Handled::ok(&out[..6]),
    }
}

/// Get Channel Access (section 22.23): always available, PEF alerting
/// disabled, Administrator as the channel privilege limit.
pub(super) fn get_channel_access(_ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if let Err(cc) = length_is(d, 2) {
        return Handled::code(cc);
    }
    if !is_our_channel(d[0]) || !matches!(d[1] >> 6, 0b01 | 0b10) {
        return Handled::code(CompletionCode::INVALID_DATA_FIELD);
    }
    Handled::ok(&[0x22, Privilege::Administrator.level()])
}

/// Get Channel Info (section 22.24): one 802.3 LAN channel, multi-session.
pub(super) fn get_channel_info(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if let Err(cc) = length_is(d, 1) {
        return Handled::code(cc);
    }
    if !is_our_channel(d[0]) {
        return Handled::code(CompletionCode::INVALID_DATA_FIELD);
    }
    let active = ctx.table.established().min(63) as u8;
    // IPMI's own IANA number, 7154, least significant byte first.
    Handled::ok(&[
        LAN_CHANNEL,
        0x04,
        0x01,
        0x80 | active,
        0xf2,
        0x1b,
        0x00,
        0x00,
        0x00,
    ])
}

/// Get Channel Cipher Suites (section 22.15), in pages of 16 record bytes.
/// ipmitool keeps asking while a page is full, so a multiple of 16 is
/// followed by a page holding only the channel byte.
pub(super) fn get_channel_cipher_suites(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if let Err(cc) = length_is(d, 3) {
        return Handled::code(cc);
    }
    if !is_our_channel(d[0]) || d[1] & 0x3f != 0 {
        return Handled::code(CompletionCode::INVALID_DATA_FIELD);
    }
    let by_suite = d[2] & 0x80 != 0;
    let index = usize::from(d[2] & 0x3f);
    let mut records = [0u8; 32];
    let len = ctx.config.cipher_suites.records(by_suite, &mut records);
    let start = (index * 16).min(len);
    let end = (start + 16).min(len);
    let mut out = [0u8; 17];
    out[0] = LAN_CHANNEL;
    out[1..1 + end - start].copy_from_slice(&records[start..end]);
    Handled::Reply(
        CompletionCode::OK,
        ReplyData::from_slice(&out[..1 + end - start]),
    )
}
