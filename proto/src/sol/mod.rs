//! Serial over LAN (IPMI v2.0 chapters 15 and 26): the machine's serial
//! console carried in RMCP+ session packets of payload type 1.
//!
//! One BMC has one SOL payload instance. The session that activates it
//! owns it until it deactivates it, until another session of the same user
//! or an administrator's does, or until the session ends; a second
//! activation meanwhile gets completion code 80h. The engine never touches
//! a serial port: it asks the daemon, through [`ConsoleRequest`]s, to open
//! the machine's console, to write what the console typed, and to close
//! it, and the daemon hands back what the machine printed with
//! [`crate::Bmc::console_output`].
//!
//! # Layout
//!
//! - [`packet`]: the SOL payload codec;
//! - [`config`]: the SOL configuration parameters;
//! - [`stream`]: sequence numbers, acknowledgements, retransmission and
//!   accumulation of one active instance.
//!
//! The commands that drive it (Activate/Deactivate Payload and their
//! companions, Get/Set SOL Configuration Parameters) live in the command
//! table with the others.

pub mod config;
pub mod packet;
pub mod stream;

use std::collections::VecDeque;
use std::time::Instant;

use config::SolConfig;
use packet::SolPacket;
use stream::SolStream;

use crate::session::established::Protection;

/// Bytes typed on the console and not yet taken by the daemon, at most;
/// past this, the console's packets are only partly accepted, and it sends
/// the rest again.
pub const MAX_TO_MACHINE: usize = 64 * 1024;

/// What the engine asks of the daemon for the machine's serial console.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsoleRequest {
    /// SOL was activated: open the machine's console and feed what it
    /// prints to [`crate::Bmc::console_output`].
    Open,
    /// Characters typed on the SOL console, for the machine.
    Input(Vec<u8>),
    /// SOL was deactivated or its session ended: close the console.
    Close,
}

/// A packet for a session's console, sealed by the engine.
#[derive(Debug)]
pub(crate) struct SolTransmit {
    pub session_id: u32,
    pub encrypted: bool,
    pub payload: Vec<u8>,
}

/// Why SOL was deactivated, for the engine's events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deactivation {
    /// Deactivate Payload from the session that activated it.
    ByOwner,
    /// Deactivate Payload from another session.
    ByOther {
        /// The session that asked.
        session_id: u32,
    },
    /// The owning session ended.
    SessionEnded,
}

/// The SOL state of one BMC: configuration, the active instance, and what
/// waits for the daemon and the consoles.
#[derive(Debug, Default)]
pub struct SolPayload {
    /// The configuration parameters.
    pub config: SolConfig,
    active: Option<SolStream>,
    requests: VecDeque<ConsoleRequest>,
    requests_bytes: usize,
    transmits: VecDeque<SolTransmit>,
}

impl SolPayload {
    /// The active instance, if any.
    pub fn active(&self) -> Option<&SolStream> {
        self.active.as_ref()
    }

    /// Activates the instance for session `session_id` of user `user_id`
    /// and asks the daemon to open the console. The caller has checked
    /// that none is active.
    pub(crate) fn activate(&mut self, session_id: u32, user_id: u8, protection: Protection) {
        self.active = Some(SolStream::new(session_id, user_id, protection));
        self.request(ConsoleRequest::Open);
    }

    /// Deactivates the instance and asks the daemon to close the console;
    /// a session that lost it to another gets a last packet saying so.
    pub(crate) fn deactivate(&mut self, why: Deactivation) -> Option<SolStream> {
        let stream = self.active.take()?;
        if matches!(why, Deactivation::ByOther { .. }) {
            self.transmits.push_back(SolTransmit {
                session_id: stream.session_id,
                encrypted: stream.protection.encrypted,
                payload: SolStream::deactivating(),
            });
        }
        self.request(ConsoleRequest::Close);
        Some(stream)
    }

    /// A session ended: its SOL goes with it.
    pub(crate) fn session_ended(&mut self, session_id: u32) -> bool {
        if self.owner() == Some(session_id) {
            self.deactivate(Deactivation::SessionEnded);
            true
        } else {
            false
        }
    }

    /// The session that owns the active instance.
    pub fn owner(&self) -> Option<u32> {
        self.active.as_ref().map(|s| s.session_id)
    }

    /// How an owner's SOL packets are protected; `None` if `session_id`
    /// owns no SOL.
    pub(crate) fn protection_of(&self, session_id: u32) -> Option<Protection> {
        self.active
            .as_ref()
            .filter(|s| s.session_id == session_id)
            .map(|s| s.protection)
    }

    /// A SOL packet that arrived, authenticated, in session `session_id`.
    /// Packets of a session that owns no SOL get a NACK saying that
    /// characters cannot be transferred.
    pub(crate) fn on_packet(
        &mut self,
        now: Instant,
        session_id: u32,
        encrypted: bool,
        packet: &SolPacket<'_>,
    ) {
        let room = MAX_TO_MACHINE.saturating_sub(self.requests_bytes);
        let Some(stream) = self.active.as_mut().filter(|s| s.session_id == session_id) else {
            if packet.sequence != 0 {
                let nack = SolPacket::ack(
                    packet.sequence,
                    0,
                    packet::status::NACK
                        | packet::status::TRANSFER_UNAVAILABLE
                        | packet::status::DEACTIVATING,
                );
                self.transmits.push_back(SolTransmit {
                    session_id,
                    encrypted,
                    payload: crate::codec::Encode::to_vec(&nack),
                });
            }
            return;
        };
        let typed = stream.on_packet(now, packet, room, &self.config);
        if !typed.is_empty() {
            let typed = typed.to_vec();
            self.request(ConsoleRequest::Input(typed));
        }
        self.collect();
    }

    /// Characters the machine printed; returns how many were taken. With
    /// no active instance they are discarded (and counted as taken).
    pub(crate) fn machine_output(&mut self, now: Instant, data: &[u8]) -> usize {
        let Some(stream) = self.active.as_mut() else {
            return data.len();
        };
        let n = stream.machine_output(now, data, &self.config);
        self.collect();
        n
    }

    /// When [`SolPayload::on_timeout`] next has work.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.active.as_ref()?.deadline(&self.config)
    }

    /// Retransmissions and gathered characters that are due.
    pub(crate) fn on_timeout(&mut self, now: Instant) {
        if let Some(stream) = self.active.as_mut() {
            stream.on_timeout(now, &self.config);
        }
        self.collect();
    }

    /// Moves the active stream's packets to the transmit queue.
    fn collect(&mut self) {
        let Some(stream) = self.active.as_mut() else {
            return;
        };
        while let Some(payload) = stream.poll_packet() {
            self.transmits.push_back(SolTransmit {
                session_id: stream.session_id,
                encrypted: stream.protection.encrypted,
                payload,
            });
        }
    }

    fn request(&mut self, r: ConsoleRequest) {
        if let ConsoleRequest::Input(b) = &r {
            self.requests_bytes += b.len();
        }
        self.requests.push_back(r);
    }

    /// The next request for the daemon.
    pub(crate) fn poll_request(&mut self) -> Option<ConsoleRequest> {
        let r = self.requests.pop_front()?;
        if let ConsoleRequest::Input(b) = &r {
            self.requests_bytes = self.requests_bytes.saturating_sub(b.len());
        }
        Some(r)
    }

    /// The next packet to seal.
    pub(crate) fn poll_transmit(&mut self) -> Option<SolTransmit> {
        self.transmits.pop_front()
    }
}
