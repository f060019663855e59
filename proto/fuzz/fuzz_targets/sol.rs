//! SOL packets: decoding never panics and round-trips, and a SOL stream
//! fed any sequence of console packets and machine output keeps its
//! bounds (never more than one packet in flight, never sequence 0 on data).
//!
//! Input: a series of records, each a length byte then that many bytes;
//! a record starting with an even byte is a console packet, an odd one is
//! machine output; each record also moves the clock by its length in ms.
//!
//!     cargo fuzz run -s none sol

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use novabmc_proto::codec::{Decode, Encode};
use novabmc_proto::session::established::Protection;
use novabmc_proto::sol::config::SolConfig;
use novabmc_proto::sol::packet::SolPacket;
use novabmc_proto::sol::stream::SolStream;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = SolPacket::decode(data) {
        assert_eq!(SolPacket::decode(&p.to_vec()), Ok(p));
    }
    let config = SolConfig::default();
    let protection = Protection {
        authenticated: true,
        encrypted: true,
    };
    let mut stream = SolStream::new(1, 1, protection);
    let mut now = Instant::now();
    let mut rest = data;
    while let [len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (record, next) = tail.split_at(n);
        rest = next;
        now += Duration::from_millis(n as u64);
        match record.first() {
            Some(b) if b % 2 == 0 => {
                if let Ok(p) = SolPacket::decode(&record[1..]) {
                    let typed = stream.on_packet(now, &p, 64, &config);
                    assert!(typed.len() <= 64);
                }
            }
            Some(_) => {
                stream.machine_output(now, &record[1..], &config);
            }
            None => stream.on_timeout(now, &config),
        }
        if stream.deadline(&config).is_some_and(|d| d <= now) {
            stream.on_timeout(now, &config);
        }
        while let Some(p) = stream.poll_packet() {
            let p = SolPacket::decode(&p).expect("our packets decode");
            assert!(p.data.is_empty() || p.sequence != 0);
            assert!(p.data.len() <= 255);
        }
    }
});
