//! The SOL configuration parameters a BMC keeps per channel, as Get and Set
//! SOL Configuration Parameters read and write them (IPMI v2.0 sections
//! 26.2 and 26.3, table 26-5).
//!
//! Parameters 0 to 8 are served: set in progress, enable, authentication
//! and privilege, character accumulate interval and send threshold, retry
//! count and interval, the non-volatile and volatile bit rates (kept and
//! read back: a virtual serial port has no speed), and the payload channel
//! and port, which are read-only because they are where this BMC listens.
//! The timing parameters drive the SOL stream ([`super::stream`]).

use std::time::Duration;

use crate::wire::ids::{CompletionCode, Privilege};

/// Parameter revision reported by every Get: 1.1, as the spec's table
/// gives.
pub const REVISION: u8 = 0x11;

/// Completion codes of the two commands (section 26.2).
pub mod cc {
    use crate::wire::ids::CompletionCode;

    /// Parameter not supported.
    pub const PARAMETER_NOT_SUPPORTED: CompletionCode = CompletionCode(0x80);
    /// Set In Progress set while another set was already in progress.
    pub const SET_IN_PROGRESS: CompletionCode = CompletionCode(0x81);
    /// Write of a read-only parameter.
    pub const READ_ONLY: CompletionCode = CompletionCode(0x82);
}

/// Bit rates the spec defines for parameters 5 and 6 (0 = the serial
/// port's own setting).
const BIT_RATES: [u8; 6] = [0x00, 0x06, 0x07, 0x08, 0x09, 0x0a];

/// The SOL configuration of one BMC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SolConfig {
    /// Parameter 0: 0 set complete, 1 set in progress.
    pub set_in_progress: u8,
    /// Parameter 1: SOL may be activated.
    pub enabled: bool,
    /// Parameter 2 bit 7: activations must ask for encryption.
    pub force_encryption: bool,
    /// Parameter 2 bit 6: activations must ask for authentication.
    pub force_authentication: bool,
    /// Parameter 2 bits 3..0: lowest session privilege that may activate.
    pub privilege: Privilege,
    /// Parameter 3 byte 1: how long characters are gathered before they
    /// are sent, in 5 ms units (1..=255).
    pub accumulate_interval: u8,
    /// Parameter 3 byte 2: send at once when this many characters are
    /// waiting.
    pub send_threshold: u8,
    /// Parameter 4 byte 1: retransmissions of an unacknowledged packet
    /// (0..=7).
    pub retry_count: u8,
    /// Parameter 4 byte 2: time between retransmissions, in 10 ms units.
    pub retry_interval: u8,
    /// Parameter 5: non-volatile bit rate.
    pub non_volatile_bit_rate: u8,
    /// Parameter 6: volatile bit rate.
    pub volatile_bit_rate: u8,
    /// Parameter 8: the UDP port SOL runs on, the one this BMC listens on.
    pub port: u16,
}

impl Default for SolConfig {
    /// Enabled; encryption and authentication forced; User may activate;
    /// characters gathered for 10 ms or until 96 wait (a short interval,
    /// since nothing here is a slow UART); 7 retries 500 ms apart; bit
    /// rates left to the port; port 623.
    fn default() -> Self {
        SolConfig {
            set_in_progress: 0,
            enabled: true,
            force_encryption: true,
            force_authentication: true,
            privilege: Privilege::User,
            accumulate_interval: 2,
            send_threshold: 96,
            retry_count: 7,
            retry_interval: 50,
            non_volatile_bit_rate: 0,
            volatile_bit_rate: 0,
            port: 623,
        }
    }
}

/// The payload channel, parameter 7: our one LAN channel.
const PAYLOAD_CHANNEL: u8 = 0x01;

impl SolConfig {
    /// The character accumulate interval.
    pub fn accumulate(&self) -> Duration {
        Duration::from_millis(5 * u64::from(self.accumulate_interval.max(1)))
    }

    /// The retry interval; at least 10 ms, so that 0 cannot make a storm.
    pub fn retry(&self) -> Duration {
        Duration::from_millis(10 * u64::from(self.retry_interval.max(1)))
    }

    /// The send threshold, at least one character.
    pub fn threshold(&self) -> usize {
        usize::from(self.send_threshold.max(1))
    }

    /// Writes parameter `selector`'s data (after the revision byte) into
    /// `out`; returns its length.
    pub fn get(&self, selector: u8, out: &mut [u8; 4]) -> Result<usize, CompletionCode> {
        let data: &[u8] = match selector {
            0 => &[self.set_in_progress],
            1 => &[u8::from(self.enabled)],
            2 => &[u8::from(self.force_encryption) << 7
                | u8::from(self.force_authentication) << 6
                | self.privilege.level()],
            3 => &[self.accumulate_interval, self.send_threshold],
            4 => &[self.retry_count, self.retry_interval],
            5 => &[self.non_volatile_bit_rate],
            6 => &[self.volatile_bit_rate],
            7 => &[PAYLOAD_CHANNEL],
            8 => &self.port.to_le_bytes(),
            _ => return Err(cc::PARAMETER_NOT_SUPPORTED),
        };
        out[..data.len()].copy_from_slice(data);
        Ok(data.len())
    }

    /// Parameters 1 to 6 as written (their data bytes in order), for a
    /// daemon to keep across restarts; [`SolConfig::restore`] reads it.
    pub fn saved(&self) -> [u8; 8] {
        let mut out = [0u8; 8];
        let mut at = 0;
        for selector in 1..=6 {
            let mut data = [0u8; 4];
            // Parameters 1..=6 always have data.
            let n = self.get(selector, &mut data).unwrap_or(0);
            out[at..at + n].copy_from_slice(&data[..n]);
            at += n;
        }
        out
    }

    /// Applies what [`SolConfig::saved`] wrote, through the same checks
    /// as Set SOL Configuration Parameters; all or nothing.
    pub fn restore(&mut self, saved: &[u8]) -> Result<(), CompletionCode> {
        if saved.len() != 8 {
            return Err(CompletionCode::REQUEST_LENGTH_INVALID);
        }
        let mut c = *self;
        let mut at = 0;
        for (selector, n) in [(1u8, 1usize), (2, 1), (3, 2), (4, 2), (5, 1), (6, 1)] {
            c.set(selector, &saved[at..at + n])?;
            at += n;
        }
        *self = c;
        Ok(())
    }

    /// Applies a write of parameter `selector` with `data`. A write leaves
    /// the configuration unchanged unless every byte is valid.
    pub fn set(&mut self, selector: u8, data: &[u8]) -> Result<(), CompletionCode> {
        let exactly = |n: usize| {
            if data.len() == n {
                Ok(())
            } else {
                Err(CompletionCode::REQUEST_LENGTH_INVALID)
            }
        };
        match selector {
            0 => {
                exactly(1)?;
                match data[0] & 0x03 {
                    0 => self.set_in_progress = 0,
                    1 if self.set_in_progress == 1 => return Err(cc::SET_IN_PROGRESS),
                    1 => self.set_in_progress = 1,
                    // Commit write: everything is applied as written, so
                    // there is nothing left to commit.
                    2 => {}
                    _ => return Err(CompletionCode::INVALID_DATA_FIELD),
                }
            }
            1 => {
                exactly(1)?;
                self.enabled = data[0] & 0x01 != 0;
            }
            2 => {
                exactly(1)?;
                // Callback may never activate SOL, and there is no OEM
                // level here.
                let privilege = match Privilege::from_level(data[0] & 0x0f) {
                    Some(p) if p >= Privilege::User => p,
                    _ => return Err(CompletionCode::INVALID_DATA_FIELD),
                };
                self.force_encryption = data[0] & 0x80 != 0;
                self.force_authentication = data[0] & 0x40 != 0;
                self.privilege = privilege;
            }
            3 => {
                exactly(2)?;
                if data[0] == 0 {
                    return Err(CompletionCode::INVALID_DATA_FIELD);
                }
                self.accumulate_interval = data[0];
                self.send_threshold = data[1];
            }
            4 => {
                exactly(2)?;
                if data[0] & 0xf8 != 0 {
                    return Err(CompletionCode::INVALID_DATA_FIELD);
                }
                self.retry_count = data[0];
                self.retry_interval = data[1];
            }
            5 | 6 => {
                exactly(1)?;
                let rate = data[0] & 0x0f;
                if data[0] & 0xf0 != 0 || !BIT_RATES.contains(&rate) {
                    return Err(CompletionCode::INVALID_DATA_FIELD);
                }
                if selector == 5 {
                    self.non_volatile_bit_rate = rate;
                } else {
                    self.volatile_bit_rate = rate;
                }
            }
            7 | 8 => return Err(cc::READ_ONLY),
            _ => return Err(cc::PARAMETER_NOT_SUPPORTED),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(c: &SolConfig, p: u8) -> Vec<u8> {
        let mut out = [0u8; 4];
        let n = c.get(p, &mut out).expect("supported");
        out[..n].to_vec()
    }

    #[test]
    fn the_lengths_are_those_ipmitool_checks() {
        // ipmitool's `sol info` wants 2 bytes (revision included) for every
        // parameter but 3, 4 (3 bytes) and 8 (3 bytes).
        let c = SolConfig::default();
        for (p, n) in [
            (0, 1),
            (1, 1),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 1),
            (6, 1),
            (7, 1),
            (8, 2),
        ] {
            assert_eq!(get(&c, p).len(), n, "parameter {p}");
        }
        assert_eq!(get(&c, 2), [0xc2]);
        assert_eq!(get(&c, 8), [0x6f, 0x02]);
    }

    #[test]
    fn retry_count_round_trips_and_keeps_the_interval() {
        let mut c = SolConfig::default();
        c.set(4, &[5, 50]).expect("valid");
        assert_eq!(get(&c, 4), [5, 50]);
        assert_eq!(c.set(4, &[8, 50]), Err(CompletionCode::INVALID_DATA_FIELD));
        assert_eq!(get(&c, 4), [5, 50], "a refused write changes nothing");
    }

    #[test]
    fn set_in_progress_cannot_be_taken_twice() {
        let mut c = SolConfig::default();
        c.set(0, &[1]).expect("first");
        assert_eq!(c.set(0, &[1]), Err(cc::SET_IN_PROGRESS));
        c.set(0, &[2]).expect("commit write");
        c.set(0, &[0]).expect("complete");
        c.set(0, &[1]).expect("again");
    }

    #[test]
    fn bad_writes_get_their_codes() {
        let mut c = SolConfig::default();
        assert_eq!(c.set(7, &[1]), Err(cc::READ_ONLY));
        assert_eq!(c.set(8, &[1, 2]), Err(cc::READ_ONLY));
        assert_eq!(c.set(9, &[1]), Err(cc::PARAMETER_NOT_SUPPORTED));
        assert_eq!(c.set(5, &[0x05]), Err(CompletionCode::INVALID_DATA_FIELD));
        assert_eq!(c.set(2, &[0x01]), Err(CompletionCode::INVALID_DATA_FIELD));
        assert_eq!(c.set(3, &[0, 10]), Err(CompletionCode::INVALID_DATA_FIELD));
        assert_eq!(c.set(1, &[]), Err(CompletionCode::REQUEST_LENGTH_INVALID));
        assert_eq!(c, SolConfig::default());
    }

    #[test]
    fn bit_rates_read_back() {
        let mut c = SolConfig::default();
        c.set(5, &[0x0a]).expect("115.2");
        c.set(6, &[0x06]).expect("9.6");
        assert_eq!((get(&c, 5), get(&c, 6)), (vec![0x0a], vec![0x06]));
    }
}
