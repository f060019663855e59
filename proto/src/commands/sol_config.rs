//! Get and Set SOL Configuration Parameters (IPMI v2.0 sections 26.2 and
//! 26.3, transport network function): the parameters themselves, and the
//! rules for each, are in [`crate::sol::config`].

use super::{Ctx, Handled, is_our_channel};
use crate::sol::config::REVISION;
use crate::wire::ids::CompletionCode;

/// Set SOL Configuration Parameters: `[channel, parameter, data...]`.
pub(super) fn set(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if d.len() < 3 {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    }
    if !is_our_channel(d[0]) {
        return Handled::code(CompletionCode::INVALID_DATA_FIELD);
    }
    match ctx.sol.config.set(d[1], &d[2..]) {
        Ok(()) => Handled::ok(&[]),
        Err(cc) => Handled::code(cc),
    }
}

/// Get SOL Configuration Parameters: `[channel (bit 7: revision only),
/// parameter, set selector, block selector]`; the answer is the revision,
/// then the parameter's data.
pub(super) fn get(ctx: &mut Ctx<'_>, d: &[u8]) -> Handled {
    if d.len() != 4 {
        return Handled::code(CompletionCode::REQUEST_LENGTH_INVALID);
    }
    if !is_our_channel(d[0]) {
        return Handled::code(CompletionCode::INVALID_DATA_FIELD);
    }
    let mut data = [0u8; 4];
    let n = match ctx.sol.config.get(d[1], &mut data) {
        Ok(n) => n,
        Err(cc) => return Handled::code(cc),
    };
    if d[0] & 0x80 != 0 {
        return Handled::ok(&[REVISION]);
    }
    let mut out = [0u8; 5];
    out[0] = REVISION;
    out[1..=n].copy_from_slice(&data[..n]);
    Handled::ok(&out[..=n])
}
