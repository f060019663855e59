//! The input format of the `engine` fuzz target, shared with the seed
//! generator (`proto/examples/fuzz_seeds.rs`) so the two never disagree.
//!
//! An input is a sequence of operations; any bytes decode to one, so the
//! fuzzer mutates freely. Four consoles take part, each with its own
//! address, and talk to one of two engines that share a session budget.
//! The consoles compute real RAKP codes and session keys from the engine's
//! replies, so whole handshakes complete and the fuzzer reaches in-session
//! code with several sessions at once.

/// One step of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Console sends an Open Session Request for a suite (index into
    /// 1, 2, 3, 15, 16, 17) and a requested privilege.
    Open {
        /// Which console (0..4).
        console: u8,
        /// Which suite.
        suite: u8,
        /// Requested maximum privilege byte.
        privilege: u8,
    },
    /// Console sends RAKP1 for its session.
    Rakp1 {
        /// Which console.
        console: u8,
        /// The role byte.
        role: u8,
        /// Which user name: admin, operator, unknown, empty, too long.
        user: u8,
    },
    /// Console sends RAKP3: the right code, or a wrong one.
    Rakp3 {
        /// Which console.
        console: u8,
        /// Whether the code is right.
        good: bool,
    },
    /// Console sends an in-session request (or, before its handshake, an
    /// unauthenticated one with its session ID).
    Request {
        /// Which console.
        console: u8,
        /// Network function.
        netfn: u8,
        /// Command.
        cmd: u8,
        /// Request data.
        data: Vec<u8>,
    },
    /// Raw bytes from one of the consoles' addresses.
    Raw {
        /// Whose address.
        console: u8,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// Console's last datagram again, with one byte changed.
    Mutate {
        /// Which console.
        console: u8,
        /// Where (modulo the length).
        at: u8,
        /// XORed into that byte.
        value: u8,
    },
    /// Console's last datagram again, cut to a length.
    Truncate {
        /// Which console.
        console: u8,
        /// New length (modulo the length).
        len: u8,
    },
    /// Console's last datagram again, exactly.
    Replay {
        /// Which console.
        console: u8,
    },
    /// Console's last datagram again, from another console's address.
    Spoof {
        /// Which console's datagram.
        console: u8,
        /// From whose address.
        from: u8,
    },
    /// Time passes: ticks of 250 ms, then the engines' timers run.
    Wait {
        /// How many ticks.
        ticks: u8,
    },
    /// The engines' pending actions complete.
    Complete,
}

const OPS: u8 = 11;

/// Reads operations from fuzzer bytes; never fails.
pub fn decode(mut data: &[u8]) -> Vec<Op> {
    let mut ops = Vec::new();
    let byte = |data: &mut &[u8]| -> u8 {
        let (b, rest) = data.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        *data = rest;
        b
    };
    while !data.is_empty() && ops.len() < 256 {
        let op = match byte(&mut data) % OPS {
            0 => Op::Open {
                console: byte(&mut data),
                suite: byte(&mut data),
                privilege: byte(&mut data),
            },
            1 => Op::Rakp1 {
                console: byte(&mut data),
                role: byte(&mut data),
                user: byte(&mut data),
            },
            2 => Op::Rakp3 {
                console: byte(&mut data),
                good: byte(&mut data) & 1 == 0,
            },
            3 => {
                let console = byte(&mut data);
                let netfn = byte(&mut data);
                let cmd = byte(&mut data);
                let len = usize::from(byte(&mut data) % 40).min(data.len());
                let (d, rest) = data.split_at(len);
                data = rest;
                Op::Request {
                    console,
                    netfn,
                    cmd,
                    data: d.to_vec(),
                }
            }
            4 => {
                let console = byte(&mut data);
                let len = usize::from(byte(&mut data)).min(data.len());
                let (d, rest) = data.split_at(len);
                data = rest;
                Op::Raw {
                    console,
                    bytes: d.to_vec(),
                }
            }
            5 => Op::Mutate {
                console: byte(&mut data),
                at: byte(&mut data),
                value: byte(&mut data),
            },
            6 => Op::Truncate {
                console: byte(&mut data),
                len: byte(&mut data),
            },
            7 => Op::Replay {
                console: byte(&mut data),
            },
            8 => Op::Spoof {
                console: byte(&mut data),
                from: byte(&mut data),
            },
            9 => Op::Wait {
                ticks: byte(&mut data),
            },
            _ => Op::Complete,
        };
        ops.push(op);
    }
    ops
}

/// Writes operations in the form [`decode`] reads.
pub fn encode(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops {
        match op {
            Op::Open {
                console,
                suite,
                privilege,
            } => out.extend_from_slice(&[0, *console, *suite, *privilege]),
            Op::Rakp1 {
                console,
                role,
                user,
            } => out.extend_from_slice(&[1, *console, *role, *user]),
            Op::Rakp3 { console, good } => {
                out.extend_from_slice(&[2, *console, if *good { 0 } else { 1 }])
            }
            Op::Request {
                console,
                netfn,
                cmd,
                data,
            } => {
                let len = data.len().min(39);
                out.extend_from_slice(&[3, *console, *netfn, *cmd, len as u8]);
                out.extend_from_slice(&data[..len]);
            }
            Op::Raw { console, bytes } => {
                let len = bytes.len().min(255);
                out.extend_from_slice(&[4, *console, len as u8]);
                out.extend_from_slice(&bytes[..len]);
            }
            Op::Mutate { console, at, value } => out.extend_from_slice(&[5, *console, *at, *value]),
            Op::Truncate { console, len } => out.extend_from_slice(&[6, *console, *len]),
            Op::Replay { console } => out.extend_from_slice(&[7, *console]),
            Op::Spoof { console, from } => out.extend_from_slice(&[8, *console, *from]),
            Op::Wait { ticks } => out.extend_from_slice(&[9, *ticks]),
            Op::Complete => out.push(10),
        }
    }
    out
}
