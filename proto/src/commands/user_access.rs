//! User Access and User Name commands (IPMI v2.0 sections 22.26 to 22.30):
//! `ipmitool user list` and `user summary`, FreeIPMI `bmc-config`'s User
//! sections.
//!
//! User ID 1 is the spec's null user (section 6.9.1): no name, disabled,
//! no access, since anonymous login is never allowed here. The configured
//! users follow from ID 2 in configuration order, the IDs Get Session Info
//! reports. ipmitool lists IDs 1 to the maximum Get User Access reports, so
//! the null user shows as an unnamed "NO ACCESS" line, as on most BMCs.
//!
//! Users come from the daemon's configuration file, so nothing here can
//! change them: Set User Access, Set User Name and the password-changing
//! operations of Set User Password answer D6 ("command sub-function has
//! been disabled or is unavailable"). D6 rather than C1, because the
//! commands exist and the console should say they are disabled, not
//! unknown; rather than D4, because no privilege would make them work.
//! Set User Password's "test password" operation only reads, and works.
//!
//! Get User Payload Access (section 24.6) says which payloads each user
//! may activate: Serial over LAN for every configured user (activation
//! still asks the SOL privilege), nothing for the null user; Set User
//! Payload Access is refused like the other changes.

use super::{Ctx, Handled, is_our_channel};
use crate::user::User;
use crate::wire::ids::CompletionCode;

/// Set User Password, test password: the password does not match.
const PASSWORD_MISMATCH: CompletionCode = CompletionCode(0x80);
/// Set User Password, test password: the stored password is of the other
/// size (16 vs 20 bytes).
const PASSWORD_SIZE: CompletionCode = CompletionCode(0x81);
/// The null user's ID.
const NULL_USER: u8 = 1;
/// "No access" privilege limit.
const NO_ACCESS: u8 = 0x0f;

/// A user ID this BMC has: the null user, or a configured user.
enum Slot<'a> {
    Null,
    Configured(&'a User),
}

fn slot<'a>(ctx: &'a Ctx<'_>, id: u8) -> Option<Slot<'a>> {
    match id & 0x3f {
        NULL_USER => Some(Slot::Null),
        id => ctx.config.users.by_id(id).map(Slot::Configured),
    }
}

/// Highest user ID: the null user plus the configured ones.
fn max_user_id(ctx: &Ctx<'_>) -> u8 {
    (ctx.config.users.len() + 1).min(63) as u8
}

/// Get User Access (section 22.27): the ID counts, then the user's access
/// on the LAN channel. Every configured user has IPMI messaging at its
/// configured privilege limit and nothing else (no callback, no link
/// authentication); every name is fixed, since none can be set.
pub(super) fn get_access(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    let [channel, user] = d else {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    };
    if !is_our_channel(*channel) || channel & 0xf0 != 0 || user & 0xc0 != 0 {
        return Handled::code(CompletionCode::INVALID_DATA_FIELD);
    }
    let Some(s) = slot(ctx, *user) else {
        return Handled::code(CompletionCode::INVALID_DATA_FIELD);
    };
    let max = max_user_id(ctx);
    let enabled = (max - 1) & 0x3f;
    let (status, access) = match s {
        // 10b: disabled.
        Slot::Null => (0x80, NO_ACCESS),
        // 01b: enabled; bit 4: IPMI messaging enabled.
        Slot::Configured(u) => (0x40, 0x10 | u.privilege().level()),
    };
    Handled::ok(&[max, status | enabled, max, access])
}

/// Get User Name (section 22.29): sixteen bytes, zero padded; the null
/// user's are all zero.
pub(super) fn get_name(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    let [user] = d else {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    };
    if user & 0xc0 != 0 {
        return Handled::code(CompletionCode::INVALID_DATA_FIELD);
    }
    let mut name = [0u8; 16];
    match slot(ctx, *user) {
        Some(Slot::Null) => {}
        Some(Slot::Configured(u)) => {
            let n = u.name().len().min(16);
            name[..n].copy_from_slice(&u.name()[..n]);
        }
        None => return Handled::code(CompletionCode::INVALID_DATA_FIELD),
    }
    Handled::ok(&name)
}

/// Get User Payload Access (section 24.6): channel, user ID; four bytes of
/// enables, bit 1 of the first being payload type 1, SOL.
pub(super) fn get_payload_access(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    let [channel, user] = d else {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    };
    if !is_our_channel(*channel) || channel & 0xf0 != 0 || user & 0xc0 != 0 {
        return Handled::code(CompletionCode::INVALID_DATA_FIELD);
    }
    match slot(ctx, *user) {
        Some(Slot::Null) => Handled::ok(&[0, 0, 0, 0]),
        Some(Slot::Configured(_)) => Handled::ok(&[0x02, 0, 0, 0]),
        None => Handled::code(CompletionCode::INVALID_DATA_FIELD),
    }
}

/// Set User Access, Set User Name and Set User Payload Access (sections
/// 22.26, 22.28, 24.5): the users
/// are the configuration file's.
pub(super) fn refuse_change(_ctx: &mut Ctx<'_>, _d: &[u8]) -> Handled {
    Handled::code(CompletionCode::SUBFUNCTION_UNAVAILABLE)
}

/// Set User Password (section 22.30): user ID (bit 7: 20-byte form),
/// operation, password. Only operation 3, "test password", is served.
pub(super) fn set_password(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    let [user, operation, password @ ..] = d else {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    };
    if operation & 0x03 != 0x03 {
        return Handled::code(CompletionCode::SUBFUNCTION_UNAVAILABLE);
    }
    let wide = user & 0x80 != 0;
    if password.len() != if wide { 20 } else { 16 } {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    }
    let stored = match slot(ctx, *user) {
        Some(Slot::Configured(u)) => u.password(),
        // The null user has no password to match.
        Some(Slot::Null) => return Handled::code(PASSWORD_MISMATCH),
        None => return Handled::code(CompletionCode::INVALID_DATA_FIELD),
    };
    if stored.len() > 16 && !wide {
        return Handled::code(PASSWORD_SIZE);
    }
    // The stored password zero padded to the size sent, as a BMC keeps it.
    let matches = password.len() >= stored.len()
        && password[..stored.len()] == *stored
        && password[stored.len()..].iter().all(|b| *b == 0);
    if matches {
        Handled::ok(&[])
    } else {
        Handled::code(PASSWORD_MISMATCH)
    }
}
