//! Command dispatch: which commands exist, at which privilege, and which may
//! run outside a session (IPMI v2.0 appendix G, the command privilege table).
//!
//! Every request gets an answer. An unknown network function or command
//! gets completion code C1 at once: ipmitool probes HPM.2, PICMG and VITA
//! commands on every run and each unanswered probe costs it a full timeout.
//! A known command above the session's privilege gets D4; outside a session
//! only the session-less commands run.

mod app;
mod chassis;
mod fru;
mod lan_config;
mod payload;
mod sdr;
mod sel;
mod sol_config;
mod user_access;

use std::net::SocketAddr;
use std::time::Instant;

pub(crate) use chassis::Identify;

use crate::action::{Action, Outcome};
use crate::boot_options::{BootOptionError, BootOptions};
use crate::config::BmcConfig;
use crate::platform::Platform;
use crate::session::established::Protection;
use crate::session::table::SessionTable;
use crate::sol::SolPayload;
use crate::wire::ids::{CompletionCode, NetFn, Privilege};
use crate::wire::message::Request;

/// One implemented command: everything about it in one place. Adding a
/// command is one row in [`COMMANDS`] and one handler function.
pub(crate) struct Command {
    /// Network function of the request.
    pub netfn: NetFn,
    /// Command number.
    pub cmd: u8,
    /// Stable snake-case name, used as a metric label.
    pub name: &'static str,
    /// Lowest session privilege allowed to run it.
    pub privilege: Privilege,
    /// Whether it may be sent outside a session.
    pub sessionless: bool,
    /// Runs it on the request data.
    pub handler: fn(&mut Ctx<'_>, &[u8]) -> Handled,
}

use Privilege::{Administrator, Callback, Operator, User};

/// The implemented commands, with the privileges of the spec's command
/// table (appendix G). Get System Boot Options is at Operator as in that
/// table; MAAS and Ironic run it at Operator or above.
#[rustfmt::skip]
pub(crate) const COMMANDS: &[Command] = &[
    Command { netfn: NetFn::APP, cmd: 0x01, name: "get_device_id", privilege: User, sessionless: false, handler: app::get_device_id },
    Command { netfn: NetFn::APP, cmd: 0x02, name: "cold_reset", privilege: Administrator, sessionless: false, handler: app::reset },
    Command { netfn: NetFn::APP, cmd: 0x03, name: "warm_reset", privilege: Administrator, sessionless: false, handler: app::reset },
    Command { netfn: NetFn::APP, cmd: 0x04, name: "get_self_test_results", privilege: User, sessionless: false, handler: app::get_self_test_results },
    Command { netfn: NetFn::APP, cmd: 0x37, name: "get_system_guid", privilege: User, sessionless: false, handler: app::get_system_guid },
    Command { netfn: NetFn::APP, cmd: 0x38, name: "get_channel_auth_capabilities", privilege: Callback, sessionless: true, handler: app::get_channel_auth_caps },
    Command { netfn: NetFn::APP, cmd: 0x3b, name: "set_session_privilege_level", privilege: Callback, sessionless: false, handler: app::set_session_privilege },
    Command { netfn: NetFn::APP, cmd: 0x3c, name: "close_session", privilege: Callback, sessionless: false, handler: app::close_session },
    Command { netfn: NetFn::APP, cmd: 0x3d, name: "get_session_info", privilege: User, sessionless: false, handler: app::get_session_info },
    Command { netfn: NetFn::APP, cmd: 0x41, name: "get_channel_access", privilege: User, sessionless: false, handler: app::get_channel_access },
    Command { netfn: NetFn::APP, cmd: 0x42, name: "get_channel_info", privilege: User, sessionless: false, handler: app::get_channel_info },
    Command { netfn: NetFn::APP, cmd: 0x54, name: "get_channel_cipher_suites", privilege: Callback, sessionless: true, handler: app::get_channel_cipher_suites },
    Command { netfn: NetFn::APP, cmd: 0x48, name: "activate_payload", privilege: User, sessionless: false, handler: payload::activate },
    Command { netfn: NetFn::APP, cmd: 0x49, name: "deactivate_payload", privilege: User, sessionless: false, handler: payload::deactivate },
    Command { netfn: NetFn::APP, cmd: 0x4a, name: "get_payload_activation_status", privilege: User, sessionless: false, handler: payload::activation_status },
    Command { netfn: NetFn::APP, cmd: 0x4b, name: "get_payload_instance_info", privilege: User, sessionless: false, handler: payload::instance_info },
    Command { netfn: NetFn::APP, cmd: 0x4e, name: "get_channel_payload_support", privilege: User, sessionless: false, handler: payload::channel_payload_support },
    Command { netfn: NetFn::APP, cmd: 0x4f, name: "get_channel_payload_version", privilege: User, sessionless: false, handler: payload::channel_payload_version },
    Command { netfn: NetFn::TRANSPORT, cmd: 0x21, name: "set_sol_config_parameters", privilege: Administrator, sessionless: false, handler: sol_config::set },
    Command { netfn: NetFn::TRANSPORT, cmd: 0x22, name: "get_sol_config_parameters", privilege: User, sessionless: false, handler: sol_config::get },
    Command { netfn: NetFn::CHASSIS, cmd: 0x00, name: "get_chassis_capabilities", privilege: User, sessionless: false, handler: chassis::get_capabilities },
    Command { netfn: NetFn::CHASSIS, cmd: 0x01, name: "get_chassis_status", privilege: User, sessionless: false, handler: chassis::get_status },
    Command { netfn: NetFn::CHASSIS, cmd: 0x02, name: "chassis_control", privilege: Operator, sessionless: false, handler: chassis::control },
    Command { netfn: NetFn::CHASSIS, cmd: 0x04, name: "chassis_identify", privilege: Operator, sessionless: false, handler: chassis::identify },
    Command { netfn: NetFn::CHASSIS, cmd: 0x08, name: "set_system_boot_options", privilege: Operator, sessionless: false, handler: chassis::set_boot_options },
    Command { netfn: NetFn::CHASSIS, cmd: 0x09, name: "get_system_boot_options", privilege: Operator, sessionless: false, handler: chassis::get_boot_options },
    Command { netfn: NetFn::APP, cmd: 0x43, name: "set_user_access", privilege: Administrator, sessionless: false, handler: user_access::refuse_change },
    Command { netfn: NetFn::APP, cmd: 0x44, name: "get_user_access", privilege: Operator, sessionless: false, handler: user_access::get_access },
    Command { netfn: NetFn::APP, cmd: 0x45, name: "set_user_name", privilege: Administrator, sessionless: false, handler: user_access::refuse_change },
    Command { netfn: NetFn::APP, cmd: 0x46, name: "get_user_name", privilege: Operator, sessionless: false, handler: user_access::get_name },
    Command { netfn: NetFn::APP, cmd: 0x47, name: "set_user_password", privilege: Administrator, sessionless: false, handler: user_access::set_password },
    Command { netfn: NetFn::APP, cmd: 0x4c, name: "set_user_payload_access", privilege: Administrator, sessionless: false, handler: user_access::refuse_change },
    Command { netfn: NetFn::APP, cmd: 0x4d, name: "get_user_payload_access", privilege: Operator, sessionless: false, handler: user_access::get_payload_access },
    Command { netfn: NetFn::STORAGE, cmd: 0x10, name: "get_fru_inventory_area_info", privilege: User, sessionless: false, handler: fru::get_area_info },
    Command { netfn: NetFn::STORAGE, cmd: 0x11, name: "read_fru_data", privilege: User, sessionless: false, handler: fru::read },
    Command { netfn: NetFn::STORAGE, cmd: 0x12, name: "write_fru_data", privilege: Operator, sessionless: false, handler: fru::write },
    Command { netfn: NetFn::STORAGE, cmd: 0x20, name: "get_sdr_repository_info", privilege: User, sessionless: false, handler: sdr::get_info },
    Command { netfn: NetFn::STORAGE, cmd: 0x22, name: "reserve_sdr_repository", privilege: User, sessionless: false, handler: sdr::reserve },
    Command { netfn: NetFn::STORAGE, cmd: 0x23, name: "get_sdr", privilege: User, sessionless: false, handler: sdr::get },
    Command { netfn: NetFn::STORAGE, cmd: 0x40, name: "get_sel_info", privilege: User, sessionless: false, handler: sel::get_info },
    Command { netfn: NetFn::STORAGE, cmd: 0x41, name: "get_sel_allocation_info", privilege: User, sessionless: false, handler: sel::get_allocation_info },
    Command { netfn: NetFn::STORAGE, cmd: 0x42, name: "reserve_sel", privilege: User, sessionless: false, handler: sel::reserve },
    Command { netfn: NetFn::STORAGE, cmd: 0x43, name: "get_sel_entry", privilege: User, sessionless: false, handler: sel::get_entry },
    Command { netfn: NetFn::STORAGE, cmd: 0x47, name: "clear_sel", privilege: Operator, sessionless: false, handler: sel::clear },
    Command { netfn: NetFn::STORAGE, cmd: 0x48, name: "get_sel_time", privilege: User, sessionless: false, handler: sel::get_time },
    Command { netfn: NetFn::TRANSPORT, cmd: 0x01, name: "set_lan_configuration_parameters", privilege: Administrator, sessionless: false, handler: lan_config::set },
    Command { netfn: NetFn::TRANSPORT, cmd: 0x02, name: "get_lan_configuration_parameters", privilege: Operator, sessionless: false, handler: lan_config::get },
];

/// The table row of a request's command, if we implement it.
pub(crate) fn lookup(netfn: NetFn, cmd: u8) -> Option<usize> {
    COMMANDS
        .iter()
        .position(|c| c.netfn == netfn && c.cmd == cmd)
}

/// Longest response data: a Read FRU Data reply (a count byte and up to
/// 127 FRU bytes); every other reply is under 32 bytes.
pub(crate) const REPLY_CAPACITY: usize = 128;

/// Response data, kept inline so no reply allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReplyData {
    buf: [u8; REPLY_CAPACITY],
    len: usize,
}

impl ReplyData {
    pub(crate) const fn empty() -> Self {
        ReplyData {
            buf: [0; REPLY_CAPACITY],
            len: 0,
        }
    }

    pub(crate) fn from_slice(data: &[u8]) -> Self {
        let mut r = Self::empty();
        let n = data.len().min(REPLY_CAPACITY);
        r.buf[..n].copy_from_slice(&data[..n]);
        r.len = n;
        r
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// How to turn an action's outcome into reply data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Followup {
    /// Get Chassis Status bytes.
    ChassisStatus,
    /// A Get System Boot Options parameter.
    BootParameter(u8),
    /// Success with no data.
    Ack,
    /// The 16 GUID bytes.
    Guid,
    /// Get SEL Time's four bytes.
    SelTime,
}

/// What handling a request produced.
#[derive(Debug)]
pub(crate) enum Handled {
    /// Reply now.
    Reply(CompletionCode, ReplyData),
    /// Reply once the action completes.
    Defer(Action, Followup),
    /// Change the session's privilege, reply with the new level.
    SetPrivilege(Privilege),
    /// Reply OK, then close the session with this ID.
    CloseSession(u32),
    /// Reply OK, then drop every session (cold or warm reset).
    Reset,
}

impl Handled {
    pub(crate) fn ok(data: &[u8]) -> Self {
        Handled::Reply(CompletionCode::OK, ReplyData::from_slice(data))
    }

    pub(crate) fn code(cc: CompletionCode) -> Self {
        Handled::Reply(cc, ReplyData::empty())
    }
}

impl From<BootOptionError> for CompletionCode {
    fn from(e: BootOptionError) -> Self {
        match e {
            BootOptionError::ParameterNotSupported => CompletionCode::PARAMETER_NOT_SUPPORTED,
            BootOptionError::LengthInvalid => CompletionCode::REQUEST_LENGTH_INVALID,
            BootOptionError::InvalidField => CompletionCode::INVALID_DATA_FIELD,
        }
    }
}

/// The session a request arrived in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SessionView {
    pub id: u32,
    pub privilege: Privilege,
    pub max_privilege: Privilege,
    /// The user that logged in.
    pub user_id: u8,
    /// What the suite protects: SOL may ask for no more.
    pub protection: Protection,
}

/// Everything a handler may read or change.
pub(crate) struct Ctx<'a> {
    pub config: &'a BmcConfig,
    pub now: Instant,
    pub session: Option<SessionView>,
    pub table: &'a SessionTable,
    pub identify: &'a mut Identify,
    pub platform: &'a mut Platform,
    /// Serial over LAN: configuration and the active instance.
    pub sol: &'a mut SolPayload,
}

/// Dispatches a request to its handler after the privilege check; also
/// returns the command's table row (`None` for an unknown command).
pub(crate) fn dispatch(ctx: &mut Ctx<'_>, req: &Request<'_>) -> (Option<usize>, Handled) {
    let Some(row) = lookup(req.netfn, req.cmd) else {
        return (None, Handled::code(CompletionCode::INVALID_COMMAND));
    };
    let command = &COMMANDS[row];
    let allowed = match &ctx.session {
        None => command.sessionless,
        Some(s) => s.privilege >= command.privilege,
    };
    if !allowed {
        return (
            Some(row),
            Handled::code(CompletionCode::INSUFFICIENT_PRIVILEGE),
        );
    }
    (Some(row), (command.handler)(ctx, req.data))
}

/// Builds the reply data of a deferred command from its action's outcome.
pub(crate) fn follow_up(
    followup: Followup,
    outcome: Outcome,
    identify: &Identify,
    now: Instant,
) -> (CompletionCode, ReplyData) {
    match (followup, outcome) {
        (_, Outcome::Failed(cc)) => (cc, ReplyData::empty()),
        (Followup::ChassisStatus, Outcome::Chassis(state)) => (
            CompletionCode::OK,
            chassis::status_bytes(state, identify, now),
        ),
        (Followup::BootParameter(p), Outcome::BootOptions(options)) => boot_parameter(p, &options),
        (Followup::Guid, Outcome::Guid(g)) => (CompletionCode::OK, ReplyData::from_slice(&g)),
        (Followup::Ack, Outcome::Done) => (CompletionCode::OK, ReplyData::empty()),
        // The SEL's clock is 32 bits of seconds; past 2106 it saturates
        // rather than wrapping to 1970.
        (Followup::SelTime, Outcome::Clock(secs)) => (
            CompletionCode::OK,
            ReplyData::from_slice(&(secs.min(u64::from(u32::MAX)) as u32).to_le_bytes()),
        ),
        // The daemon answered with the wrong kind of outcome: a bug there,
        // reported to the console as an unspecified error.
        _ => (CompletionCode::UNSPECIFIED, ReplyData::empty()),
    }
}

fn boot_parameter(parameter: u8, options: &BootOptions) -> (CompletionCode, ReplyData) {
    let mut out = [0u8; 8];
    match options.get(parameter, &mut out) {
        Ok(n) => (CompletionCode::OK, ReplyData::from_slice(&out[..n])),
        Err(e) => (e.into(), ReplyData::empty()),
    }
}

/// Our one LAN channel, and the "this channel" alias.
pub(crate) const LAN_CHANNEL: u8 = 0x01;
const CURRENT_CHANNEL: u8 = 0x0e;

/// Request data of exactly `n` bytes, or "request data length invalid".
pub(crate) fn length_is(d: &[u8], n: usize) -> Result<(), CompletionCode> {
    if d.len() == n {
        Ok(())
    } else {
        Err(CompletionCode::REQUEST_LENGTH_INVALID)
    }
}

/// Whether a request's channel byte names our LAN channel.
pub(crate) fn is_our_channel(b: u8) -> bool {
    matches!(b & 0x0f, LAN_CHANNEL | CURRENT_CHANNEL)
}

/// The address of the console, for Get Session Info.
pub(crate) fn peer_ipv4(peer: SocketAddr) -> Option<([u8; 4], u16)> {
    match peer {
        SocketAddr::V4(a) => Some((a.ip().octets(), a.port())),
        SocketAddr::V6(a) => a.ip().to_ipv4_mapped().map(|ip| (ip.octets(), a.port())),
    }
}
