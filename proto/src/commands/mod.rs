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

use std::net::SocketAddr;
use std::time::Instant;

pub(crate) use chassis::Identify;

use crate::action::{Action, Outcome};
use crate::boot_options::{BootOptionError, BootOptions};
use crate::config::BmcConfig;
use crate::session::table::SessionTable;
use crate::wire::ids::{CompletionCode, NetFn, Privilege};
use crate::wire::message::Request;

/// One implemented command.
struct Spec {
    netfn: NetFn,
    cmd: u8,
    /// Lowest session privilege allowed to run it.
    privilege: Privilege,
    /// Whether it may be sent outside a session.
    sessionless: bool,
}

const fn spec(netfn: NetFn, cmd: u8, privilege: Privilege, sessionless: bool) -> Spec {
    Spec {
        netfn,
        cmd,
        privilege,
        sessionless,
    }
}

/// Command numbers, each defined once.
pub(crate) mod cmd {
    /// Get Device ID (App).
    pub const GET_DEVICE_ID: u8 = 0x01;
    /// Cold Reset (App).
    pub const COLD_RESET: u8 = 0x02;
    /// Warm Reset (App).
    pub const WARM_RESET: u8 = 0x03;
    /// Get Self Test Results (App).
    pub const GET_SELF_TEST_RESULTS: u8 = 0x04;
    /// Get System GUID (App).
    pub const GET_SYSTEM_GUID: u8 = 0x37;
    /// Get Channel Authentication Capabilities (App).
    pub const GET_CHANNEL_AUTH_CAPS: u8 = 0x38;
    /// Set Session Privilege Level (App).
    pub const SET_SESSION_PRIVILEGE: u8 = 0x3b;
    /// Close Session (App).
    pub const CLOSE_SESSION: u8 = 0x3c;
    /// Get Session Info (App).
    pub const GET_SESSION_INFO: u8 = 0x3d;
    /// Get Channel Access (App).
    pub const GET_CHANNEL_ACCESS: u8 = 0x41;
    /// Get Channel Info (App).
    pub const GET_CHANNEL_INFO: u8 = 0x42;
    /// Get Channel Cipher Suites (App).
    pub const GET_CHANNEL_CIPHER_SUITES: u8 = 0x54;
    /// Get Chassis Capabilities (Chassis).
    pub const GET_CHASSIS_CAPABILITIES: u8 = 0x00;
    /// Get Chassis Status (Chassis).
    pub const GET_CHASSIS_STATUS: u8 = 0x01;
    /// Chassis Control (Chassis).
    pub const CHASSIS_CONTROL: u8 = 0x02;
    /// Chassis Identify (Chassis).
    pub const CHASSIS_IDENTIFY: u8 = 0x04;
    /// Set System Boot Options (Chassis).
    pub const SET_SYSTEM_BOOT_OPTIONS: u8 = 0x08;
    /// Get System Boot Options (Chassis).
    pub const GET_SYSTEM_BOOT_OPTIONS: u8 = 0x09;
}

use Privilege::{Administrator, Callback, Operator, User};

/// The implemented commands. Get System Boot Options is at Operator as in
/// the spec's table; MAAS and Ironic run it at Operator or above.
const COMMANDS: &[Spec] = &[
    spec(NetFn::APP, cmd::GET_DEVICE_ID, User, false),
    spec(NetFn::APP, cmd::COLD_RESET, Administrator, false),
    spec(NetFn::APP, cmd::WARM_RESET, Administrator, false),
    spec(NetFn::APP, cmd::GET_SELF_TEST_RESULTS, User, false),
    spec(NetFn::APP, cmd::GET_SYSTEM_GUID, User, false),
    spec(NetFn::APP, cmd::GET_CHANNEL_AUTH_CAPS, Callback, true),
    spec(NetFn::APP, cmd::SET_SESSION_PRIVILEGE, Callback, false),
    spec(NetFn::APP, cmd::CLOSE_SESSION, Callback, false),
    spec(NetFn::APP, cmd::GET_SESSION_INFO, User, false),
    spec(NetFn::APP, cmd::GET_CHANNEL_ACCESS, User, false),
    spec(NetFn::APP, cmd::GET_CHANNEL_INFO, User, false),
    spec(NetFn::APP, cmd::GET_CHANNEL_CIPHER_SUITES, Callback, true),
    spec(NetFn::CHASSIS, cmd::GET_CHASSIS_CAPABILITIES, User, false),
    spec(NetFn::CHASSIS, cmd::GET_CHASSIS_STATUS, User, false),
    spec(NetFn::CHASSIS, cmd::CHASSIS_CONTROL, Operator, false),
    spec(NetFn::CHASSIS, cmd::CHASSIS_IDENTIFY, Operator, false),
    spec(
        NetFn::CHASSIS,
        cmd::SET_SYSTEM_BOOT_OPTIONS,
        Operator,
        false,
    ),
    spec(
        NetFn::CHASSIS,
        cmd::GET_SYSTEM_BOOT_OPTIONS,
        Operator,
        false,
    ),
];

/// Response data, kept inline: the longest reply is under 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReplyData {
    buf: [u8; 32],
    len: usize,
}

impl ReplyData {
    pub(crate) const fn empty() -> Self {
        ReplyData {
            buf: [0; 32],
            len: 0,
        }
    }

    pub(crate) fn from_slice(data: &[u8]) -> Self {
        let mut r = Self::empty();
        let n = data.len().min(32);
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
}

/// Everything a handler may read or change.
pub(crate) struct Ctx<'a> {
    pub config: &'a BmcConfig,
    pub now: Instant,
    pub session: Option<SessionView>,
    pub table: &'a SessionTable,
    pub identify: &'a mut Identify,
}

/// Dispatches a request to its handler after the privilege check.
pub(crate) fn dispatch(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Handled {
    let Some(spec) = COMMANDS
        .iter()
        .find(|s| s.netfn == req.netfn && s.cmd == req.cmd)
    else {
        return Handled::code(CompletionCode::INVALID_COMMAND);
    };
    match &ctx.session {
        None if !spec.sessionless => return Handled::code(CompletionCode::INSUFFICIENT_PRIVILEGE),
        Some(s) if s.privilege < spec.privilege => {
            return Handled::code(CompletionCode::INSUFFICIENT_PRIVILEGE);
        }
        _ => {}
    }
    let d = req.data;
    match (spec.netfn, spec.cmd) {
        (NetFn::APP, cmd::GET_DEVICE_ID) => app::get_device_id(ctx, d),
        (NetFn::APP, cmd::COLD_RESET | cmd::WARM_RESET) => app::reset(d),
        (NetFn::APP, cmd::GET_SELF_TEST_RESULTS) => app::get_self_test_results(d),
        (NetFn::APP, cmd::GET_SYSTEM_GUID) => app::get_system_guid(d),
        (NetFn::APP, cmd::GET_CHANNEL_AUTH_CAPS) => app::get_channel_auth_caps(ctx, d),
        (NetFn::APP, cmd::SET_SESSION_PRIVILEGE) => app::set_session_privilege(ctx, d),
        (NetFn::APP, cmd::CLOSE_SESSION) => app::close_session(ctx, d),
        (NetFn::APP, cmd::GET_SESSION_INFO) => app::get_session_info(ctx, d),
        (NetFn::APP, cmd::GET_CHANNEL_ACCESS) => app::get_channel_access(d),
        (NetFn::APP, cmd::GET_CHANNEL_INFO) => app::get_channel_info(ctx, d),
        (NetFn::APP, cmd::GET_CHANNEL_CIPHER_SUITES) => app::get_channel_cipher_suites(ctx, d),
        (NetFn::CHASSIS, cmd::GET_CHASSIS_CAPABILITIES) => chassis::get_capabilities(d),
        (NetFn::CHASSIS, cmd::GET_CHASSIS_STATUS) => chassis::get_status(d),
        (NetFn::CHASSIS, cmd::CHASSIS_CONTROL) => chassis::control(d),
        (NetFn::CHASSIS, cmd::CHASSIS_IDENTIFY) => chassis::identify(ctx, d),
        (NetFn::CHASSIS, cmd::SET_SYSTEM_BOOT_OPTIONS) => chassis::set_boot_options(d),
        (NetFn::CHASSIS, cmd::GET_SYSTEM_BOOT_OPTIONS) => chassis::get_boot_options(d),
        _ => Handled::code(CompletionCode::INVALID_COMMAND),
    }
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
