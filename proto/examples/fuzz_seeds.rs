//! Writes the seed corpora of the fuzz targets in `proto/fuzz` from the
//! captures in `fixtures/captures` (ipmitool against ipmi_sim and against
//! novabmc), split at each framing layer with this crate's own decoders,
//! plus whole logins for the engine target:
//!
//!     cargo run -p novabmc-proto --example fuzz_seeds -- proto/fuzz/corpus
//!
//! `contrib/fuzz.sh` runs it before fuzzing.

#[allow(dead_code)]
#[path = "../fuzz/engine_input.rs"]
mod engine_input;

use std::path::{Path, PathBuf};

use engine_input::Op;
use novabmc_proto::codec::decode_prefix;
use novabmc_proto::wire::rmcp::RmcpHeader;
use novabmc_proto::wire::session::{PacketV15, PacketV20};

/// Every datagram of every capture, from the console's side and the BMC's.
fn captured() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/captures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for line in text.lines() {
            let hex_text = line
                .strip_prefix("c2s ")
                .or_else(|| line.strip_prefix("s2c "));
            if let Some(bytes) = hex_text.and_then(|h| hex::decode(h.trim()).ok()) {
                out.push(bytes);
            }
        }
    }
    out
}

struct Corpus {
    root: PathBuf,
    count: usize,
}

impl Corpus {
    fn add(&mut self, target: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        self.count += 1;
        let path = dir.join(format!("seed-{:04}", self.count));
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// A whole login by console `c` with suite index `suite`, then requests.
fn login(c: u8, suite: u8, requests: &[(u8, u8, &[u8])]) -> Vec<Op> {
    let mut ops = vec![
        Op::Open {
            console: c,
            suite,
            privilege: 0,
        },
        Op::Rakp1 {
            console: c,
            role: 0x14,
            user: 0,
        },
        Op::Rakp3 {
            console: c,
            good: true,
        },
    ];
    for (netfn, cmd, data) in requests {
        ops.push(Op::Request {
            console: c,
            netfn: *netfn,
            cmd: *cmd,
            data: data.to_vec(),
        });
        ops.push(Op::Complete);
    }
    ops
}

fn main() {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("proto/fuzz/corpus"));
    let mut corpus = Corpus { root, count: 0 };
    let datagrams = captured();
    for d in &datagrams {
        corpus.add("rmcp", d);
        let Ok((_, rest)) = decode_prefix("rmcp", d, RmcpHeader::parse) else {
            continue;
        };
        if rest.first() == Some(&0x06) {
            corpus.add("rmcpplus", rest);
            let Ok(p) = PacketV20::decode(rest) else {
                continue;
            };
            match u8::from(p.header.payload_type) {
                0x10 | 0x11 => corpus.add("open_session", p.payload),
                t @ 0x12..=0x15 => {
                    let mut sel = vec![t - 0x12];
                    sel.extend_from_slice(p.payload);
                    corpus.add("rakp", &sel);
                }
                0x00 if !p.header.encrypted => corpus.add("message", p.payload),
                _ => {}
            }
        } else {
            corpus.add("ipmi15", rest);
            if let Ok(p) = PacketV15::decode(rest) {
                corpus.add("message", p.message);
            }
        }
    }
    // The command table with the request data real clients send.
    let requests: [(u8, u8, &[u8]); 12] = [
        (0x06, 0x38, &[0x8e, 0x04]),
        (0x06, 0x54, &[0x0e, 0x00, 0x80]),
        (0x06, 0x3b, &[0x04]),
        (0x06, 0x3c, &[0x5a, 0x5a, 0x5a, 0x5a]),
        (0x06, 0x3d, &[0x00]),
        (0x06, 0x01, &[]),
        (0x00, 0x01, &[]),
        (0x00, 0x02, &[0x01]),
        (0x00, 0x08, &[0x05, 0xa0, 0x04, 0x00, 0x00, 0x00]),
        (0x00, 0x08, &[0x03, 0x08]),
        (0x00, 0x09, &[0x05, 0x00, 0x00]),
        (0x00, 0x04, &[0x0f, 0x01]),
    ];
    for (netfn, cmd, data) in requests {
        let mut seed = vec![0x80, 0x04, netfn, cmd];
        seed.extend_from_slice(data);
        corpus.add("commands", &seed);
    }
    // The engine: whole logins with every suite and ipmitool's requests,
    // several consoles at once, then the captures' datagrams themselves.
    for suite in 0..6u8 {
        corpus.add(
            "engine",
            &engine_input::encode(&login(suite % 4, suite, &requests)),
        );
    }
    let mut many = Vec::new();
    for c in 0..4u8 {
        many.extend(login(c, 2 + c % 2, &requests[5..8]));
    }
    many.push(Op::Replay { console: 1 });
    many.push(Op::Spoof {
        console: 2,
        from: 3,
    });
    many.push(Op::Wait { ticks: 250 });
    corpus.add("engine", &engine_input::encode(&many));
    let raw: Vec<Op> = datagrams
        .iter()
        .map(|d| Op::Raw {
            console: 0,
            bytes: d.clone(),
        })
        .collect();
    corpus.add("engine", &engine_input::encode(&raw));
    println!("{} seeds in {}", corpus.count, corpus.root.display());
}
