//! Entry points for the fuzz targets in `proto/fuzz`, compiled only under
//! `cfg(fuzzing)` (which cargo-fuzz sets): they reach what the public API
//! keeps private, the command table and its handlers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::Entropy;
use crate::action::{ChassisState, Outcome};
use crate::boot_options::BootOptions;
use crate::cipher_suite::IMPLEMENTED;
use crate::commands::{self, Ctx, Handled, Identify, SessionView};
use crate::config::BmcConfig;
use crate::crypto::keys::SessionKeys;
use crate::crypto::{AuthHash, MacOutput};
use crate::session::budget::SessionBudget;
use crate::session::established::Established;
use crate::session::handshake::{ExpectRakp1, HalfOpen};
use crate::session::table::SessionTable;
use crate::user::Users;
use crate::wire::ids::{CompletionCode, NetFn, Privilege};
use crate::wire::message::Request;

/// Number of rows in the command table.
pub fn command_count() -> usize {
    commands::COMMANDS.len()
}

/// The network function and command number of table row `row`.
pub fn command(row: usize) -> (u8, u8) {
    let c = &commands::COMMANDS[row % commands::COMMANDS.len()];
    (c.netfn.0, c.cmd)
}

struct Fixed;

impl Entropy for Fixed {
    fn fill(&mut self, buf: &mut [u8]) {
        buf.fill(0x5a);
    }
}

/// Runs one request through the command table, as a session at
/// `privilege` would (or outside a session), completes a deferred action
/// with every kind of outcome, and panics if an answer breaks the table's
/// rules: an unknown command must get C1, one above the privilege D4.
pub fn run_command(netfn: u8, cmd: u8, data: &[u8], privilege: u8, in_session: bool) {
    let mut users = Users::new();
    let _ = users.add("admin", b"password", Privilege::Administrator);
    let config = BmcConfig::new(users);
    let mut table = SessionTable::new(4, Arc::new(SessionBudget::unlimited()));
    let now = Instant::now();
    let peer = SocketAddr::from(([192, 0, 2, 1], 623));
    let opened = table.open(&mut Fixed, now, peer, |_| {
        HalfOpen::ExpectRakp1(ExpectRakp1 {
            opener: peer,
            console_session_id: 1,
            suite: &IMPLEMENTED[2],
            max_privilege: Privilege::Administrator,
        })
    });
    let Ok(opened) = opened else {
        panic!("an empty table refused a session");
    };
    let keys = SessionKeys::derive(AuthHash::Sha1, &MacOutput::from_slice(&[1; 20]));
    let echo = (MacOutput::from_slice(&[]), MacOutput::from_slice(&[]));
    let Some(established) =
        Established::new(1, &IMPLEMENTED[2], &keys, 1, Privilege::Administrator, echo)
    else {
        panic!("suite 3 is implemented");
    };
    if table
        .establish(opened.id, Box::new(established), peer, now)
        .is_err()
    {
        panic!("a half-open session could not be established");
    }
    let privilege = Privilege::from_level(privilege & 0x07).unwrap_or(Privilege::User);
    let session = in_session.then_some(SessionView {
        id: opened.id,
        privilege,
        max_privilege: Privilege::Administrator,
        user_id: 1,
        protection: crate::session::established::Protection {
            authenticated: true,
            encrypted: true,
        },
    });
    let mut sol = crate::sol::SolPayload::default();
    let mut identify = Identify::default();
    let mut platform = crate::platform::Platform::default();
    platform.set_inventory(&crate::fru_area::Inventory::default());
    let mut ctx = Ctx {
        config: &config,
        now,
        session,
        table: &table,
        identify: &mut identify,
        platform: &mut platform,
        sol: &mut sol,
    };
    let req = Request {
        rs_addr: 0x20,
        netfn: NetFn(netfn & 0x3f),
        rs_lun: 0,
        rq_addr: 0x81,
        rq_seq: 1,
        rq_lun: 0,
        cmd,
        data,
    };
    let (row, handled) = commands::dispatch(&mut ctx, &req);
    let Some(row) = row else {
        assert!(
            matches!(handled, Handled::Reply(cc, _) if cc == CompletionCode::INVALID_COMMAND),
            "an unknown command must get C1"
        );
        return;
    };
    let spec = &commands::COMMANDS[row];
    let allowed = match session {
        None => spec.sessionless,
        Some(s) => s.privilege >= spec.privilege,
    };
    if !allowed {
        assert!(
            matches!(handled, Handled::Reply(cc, _) if cc == CompletionCode::INSUFFICIENT_PRIVILEGE),
            "{}: a request above the session's privilege must get D4",
            spec.name
        );
        return;
    }
    if let Handled::Defer(_, followup) = handled {
        for outcome in [
            Outcome::Chassis(ChassisState::default()),
            Outcome::BootOptions(BootOptions::new(true)),
            Outcome::Guid([7; 16]),
            Outcome::Clock(u64::MAX),
            Outcome::Done,
            Outcome::Failed(CompletionCode::NODE_BUSY),
        ] {
            let _ = commands::follow_up(followup, outcome, &identify, now);
        }
    }
}
