//! A pool of BMC addresses: a CIDR range less its exclusions, handed out
//! lowest address first to servers in creation order (then UUID order),
//! so the outcome depends on the servers there are and on what is
//! recorded, never on the order Nova lists them.
//!
//! The range's network and broadcast addresses (IPv4, up to /30) and its
//! subnet-router anycast address (IPv6, up to /126) are never given.
//! What a server has recorded in its metadata ([`ADDRESS_KEY`]) is kept
//! while it is in the pool, not excluded, not reserved (a configured
//! node's address, the default route's gateway, the Redfish aggregate
//! listener's) and not recorded by an older server; otherwise the server
//! is given a new address and the reason reported. The pool being
//! exhausted leaves that server unserved, with an error naming both.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::{AddressNote, Assignment, Candidate, Record};
use crate::backend::nova::metadata::ADDRESS_KEY;

/// A validated pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    net: IpNet,
    /// The first and last address that may be given.
    first: u128,
    last: u128,
    /// Excluded ranges, inclusive, sorted and merged.
    exclude: Vec<(u128, u128)>,
    /// With `block`, each address given takes its whole block of this
    /// prefix length (the third address of the block: the first is the
    /// block's network, the second its gateway), so every node has a
    /// subnet of its own, as layout "nic-per-node" wants.
    block: Option<u8>,
}

/// What is wrong with a pool's settings; [`PoolError::key`] says which.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// `cidr` does not parse.
    #[error("{0:?} is not a CIDR range (like 192.0.2.0/24 or 2001:db8::/64)")]
    NotCidr(String),
    /// `cidr` has host bits set.
    #[error("{given} has host bits set: the range is {range}")]
    HostBits {
        /// As written.
        given: String,
        /// The range it falls in.
        range: String,
    },
    /// An exclusion does not parse.
    #[error("{0:?} is not an address, a CIDR range or a FIRST-LAST range")]
    BadExclusion(String),
    /// An exclusion of the other address family.
    #[error("{excluded} is not of the same address family as the pool {pool}")]
    Family {
        /// As written.
        excluded: String,
        /// The pool.
        pool: String,
    },
    /// An exclusion outside the pool (a typo, most likely).
    #[error("{excluded} is outside the pool {pool}")]
    Outside {
        /// As written.
        excluded: String,
        /// The pool.
        pool: String,
    },
    /// A block that does not fit the pool or holds no node address.
    #[error("/{block} does not fit the pool {pool}: it must be from /{min} to /{max}")]
    Block {
        /// As written.
        block: u8,
        /// The pool.
        pool: String,
        /// The pool's own prefix length.
        min: u8,
        /// The longest prefix with a network, a gateway and a node.
        max: u8,
    },
}

impl PoolError {
    /// The key of `[discovery.address]` at fault.
    pub fn key(&self) -> &'static str {
        match self {
            PoolError::NotCidr(_) | PoolError::HostBits { .. } => "cidr",
            PoolError::Block { .. } => "block",
            _ => "exclude",
        }
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl Pool {
    /// The pool `cidr` less `exclude` (addresses, CIDR ranges or
    /// `FIRST-LAST` ranges), giving one address per `block` when given.
    pub fn new(cidr: &str, exclude: &[String], block: Option<u8>) -> Result<Pool, PoolError> {
        let net: IpNet = cidr
            .trim()
            .parse()
            .map_err(|_| PoolError::NotCidr(cidr.to_string()))?;
        if net.trunc() != net {
            return Err(PoolError::HostBits {
                given: cidr.to_string(),
                range: net.trunc().to_string(),
            });
        }
        let (lo, hi) = (bits(net.network()), bits(net.broadcast()));
        let small = match net {
            IpNet::V4(n) => n.prefix_len() >= 31,
            IpNet::V6(n) => n.prefix_len() >= 127,
        };
        let (first, last) = match (net, small) {
            (_, true) => (lo, hi),
            (IpNet::V4(_), false) => (lo + 1, hi - 1),
            (IpNet::V6(_), false) => (lo + 1, hi),
        };
        let mut ranges = Vec::with_capacity(exclude.len());
        for text in exclude {
            let (a, b) = parse_range(text)?;
            if a.is_ipv4() != net.network().is_ipv4() || b.is_ipv4() != a.is_ipv4() {
                return Err(PoolError::Family {
                    excluded: text.clone(),
                    pool: net.to_string(),
                });
            }
            let (a, b) = (bits(a).min(bits(b)), bits(a).max(bits(b)));
            if b < lo || a > hi {
                return Err(PoolError::Outside {
                    excluded: text.clone(),
                    pool: net.to_string(),
                });
            }
            ranges.push((a, b));
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        if let Some(b) = block {
            let max = if net.network().is_ipv4() { 30 } else { 126 };
            let min = net.prefix_len();
            if b < min || b > max {
                return Err(PoolError::Block {
                    block: b,
                    pool: net.to_string(),
                    min,
                    max,
                });
            }
        }
        Ok(Pool {
            net,
            first,
            last,
            exclude: merged,
            block,
        })
    }

    /// How many bits of an address are below the block (0 without one).
    fn block_shift(&self) -> u32 {
        let width = if self.is_v4() { 32 } else { 128 };
        self.block.map_or(0, |b| width - u32::from(b))
    }

    /// The block holding `v` (`v` itself without blocks).
    fn block_of(&self, v: u128) -> u128 {
        v.checked_shr(self.block_shift()).unwrap_or(0)
    }

    fn is_v4(&self) -> bool {
        matches!(self.net, IpNet::V4(_))
    }

    fn address(&self, v: u128) -> IpAddr {
        if self.is_v4() {
            IpAddr::V4(Ipv4Addr::from(v as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(v))
        }
    }

    /// The first address the pool gives, whatever is taken (to check
    /// settings of the pool's family against).
    pub fn first(&self) -> IpAddr {
        self.address(self.first)
    }

    /// Whether `ip` may be given: in the range, not excluded.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.is_v4() {
            return false;
        }
        let v = bits(ip);
        (self.first..=self.last).contains(&v) && self.excluding(v).is_none()
    }

    /// The end of the exclusion holding `v`, if one does.
    fn excluding(&self, v: u128) -> Option<u128> {
        self.exclude
            .iter()
            .find(|(a, b)| (*a..=*b).contains(&v))
            .map(|(_, b)| *b)
    }

    /// How many addresses the pool can give (saturating for IPv6).
    pub fn size(&self) -> u128 {
        let all = (self.last - self.first).saturating_add(1);
        let excluded: u128 = self
            .exclude
            .iter()
            .map(|(a, b)| {
                let (a, b) = ((*a).max(self.first), (*b).min(self.last));
                if a > b { 0 } else { b - a + 1 }
            })
            .fold(0u128, u128::saturating_add);
        all.saturating_sub(excluded)
    }

    /// The lowest address neither excluded nor in `used` (with blocks:
    /// the node address of the lowest block none of `used` is in); steps
    /// over exclusions whole, so a large IPv6 range costs no more than the
    /// addresses in use.
    fn lowest_free(&self, used: &BTreeSet<u128>) -> Option<IpAddr> {
        if self.block.is_some() {
            let shift = self.block_shift();
            let taken: BTreeSet<u128> = used.iter().map(|v| self.block_of(*v)).collect();
            let mut b = self.block_of(self.first);
            while b <= self.block_of(self.last) {
                let v = b.checked_shl(shift)?.checked_add(2)?;
                if v > self.last {
                    return None;
                }
                if let Some(end) = self.excluding(v) {
                    b = self.block_of(end).checked_add(1)?;
                } else if v < self.first || taken.contains(&b) {
                    b = b.checked_add(1)?;
                } else {
                    return Some(self.address(v));
                }
            }
            return None;
        }
        let mut v = self.first;
        while v <= self.last {
            if let Some(end) = self.excluding(v) {
                v = end.checked_add(1)?;
            } else if used.contains(&v) {
                v = v.checked_add(1)?;
            } else {
                return Some(self.address(v));
            }
        }
        None
    }

    /// Gives each server an address: what it recorded (or, failing that,
    /// what this process gave it last time, `previous`) when that still
    /// holds, else the lowest free one; `reserved` addresses (and who
    /// holds them) are never given.
    pub(super) fn assign(
        &self,
        servers: &[Candidate<'_>],
        reserved: &BTreeMap<IpAddr, String>,
    ) -> Assignment {
        let mut order: Vec<&Candidate<'_>> = servers.iter().collect();
        order.sort_by(|a, b| (a.created, a.id).cmp(&(b.created, b.id)));
        let mut used: BTreeSet<u128> = reserved.keys().map(|ip| bits(*ip)).collect();
        let mut holder: BTreeMap<IpAddr, &Candidate<'_>> = BTreeMap::new();
        let mut out = Assignment::default();
        let mut unplaced: Vec<(&Candidate<'_>, Option<(String, String)>)> = Vec::new();
        for s in order {
            let recorded = s.metadata.get(ADDRESS_KEY);
            let claim = match (recorded, s.previous) {
                (Some(text), _) => Some((text.clone(), text.trim().parse::<IpAddr>().ok())),
                (None, Some(ip)) => Some((ip.to_string(), Some(ip))),
                (None, None) => None,
            };
            let Some((text, parsed)) = claim else {
                unplaced.push((s, None));
                continue;
            };
            let why = match parsed {
                None => Some("is not an address".to_string()),
                Some(ip) if !self.contains(ip) => Some(format!(
                    "is not in the pool {self} (outside it, excluded or reserved for the network)"
                )),
                Some(ip) => match (reserved.get(&ip), holder.get(&ip)) {
                    (Some(who), _) => Some(format!("is reserved: {who}")),
                    (None, Some(other)) => Some(format!(
                        "is also recorded for server {} ({}), created earlier",
                        other.name, other.id
                    )),
                    (None, None)
                        if self.block.is_some()
                            && used
                                .iter()
                                .any(|u| self.block_of(*u) == self.block_of(bits(ip))) =>
                    {
                        Some(format!(
                            "shares its /{} with another node or a reserved address",
                            self.block.unwrap_or_default()
                        ))
                    }
                    (None, None) => None,
                },
            };
            match (why, parsed) {
                (None, Some(ip)) => {
                    used.insert(bits(ip));
                    holder.insert(ip, s);
                    out.addresses.insert(s.id.to_string(), ip);
                    // Written when not recorded as the address reads.
                    if recorded.map(String::as_str) != Some(ip.to_string().as_str()) {
                        out.records.push(record(s.id, ip));
                    }
                }
                (why, _) => unplaced.push((s, Some((text, why.unwrap_or_default())))),
            }
        }
        for (s, rejected) in unplaced {
            match self.lowest_free(&used) {
                Some(ip) => {
                    used.insert(bits(ip));
                    out.addresses.insert(s.id.to_string(), ip);
                    out.records.push(record(s.id, ip));
                    if let Some((recorded, why)) = rejected {
                        out.notes.push(AddressNote::Reassigned {
                            server: s.id.to_string(),
                            name: s.name.to_string(),
                            recorded,
                            why,
                            now: ip,
                        });
                    }
                }
                None => out.notes.push(AddressNote::Exhausted {
                    server: s.id.to_string(),
                    name: s.name.to_string(),
                    pool: self.to_string(),
                    size: self.size(),
                }),
            }
        }
        out
    }
}

fn record(server: &str, ip: IpAddr) -> Record {
    Record {
        server: server.to_string(),
        key: ADDRESS_KEY,
        value: ip.to_string(),
    }
}

/// An exclusion: `ADDRESS`, `CIDR` or `FIRST-LAST`.
fn parse_range(text: &str) -> Result<(IpAddr, IpAddr), PoolError> {
    let bad = || PoolError::BadExclusion(text.to_string());
    let t = text.trim();
    if let Some((a, b)) = t.split_once('-') {
        let a: IpAddr = a.trim().parse().map_err(|_| bad())?;
        let b: IpAddr = b.trim().parse().map_err(|_| bad())?;
        return Ok((a, b));
    }
    if t.contains('/') {
        let n: IpNet = t.parse().map_err(|_| bad())?;
        return Ok((n.network(), n.broadcast()));
    }
    let a: IpAddr = t.parse().map_err(|_| bad())?;
    Ok((a, a))
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.net)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    struct Server {
        id: &'static str,
        created: &'static str,
        metadata: HashMap<String, String>,
        previous: Option<IpAddr>,
    }

    fn server(id: &'static str, created: &'static str, recorded: Option<&str>) -> Server {
        Server {
            id,
            created,
            metadata: recorded
                .map(|r| HashMap::from([(ADDRESS_KEY.to_string(), r.to_string())]))
                .unwrap_or_default(),
            previous: None,
        }
    }

    fn candidates(servers: &[Server]) -> Vec<Candidate<'_>> {
        servers
            .iter()
            .map(|s| Candidate {
                id: s.id,
                name: s.id,
                created: s.created,
                metadata: &s.metadata,
                previous: s.previous,
            })
            .collect()
    }

    #[test]
    fn ranges_leave_out_network_broadcast_and_exclusions() {
        let p = Pool::new(
            "192.0.2.0/29",
            &strings(&["192.0.2.1", "192.0.2.3-192.0.2.4"]),
            None,
        )
        .expect("pool");
        assert_eq!(p.first(), ip("192.0.2.1"));
        assert!(!p.contains(ip("192.0.2.0")));
        assert!(!p.contains(ip("192.0.2.1")));
        assert!(p.contains(ip("192.0.2.2")));
        assert!(!p.contains(ip("192.0.2.4")));
        assert!(p.contains(ip("192.0.2.6")));
        assert!(!p.contains(ip("192.0.2.7")));
        assert!(!p.contains(ip("2001:db8::1")));
        assert_eq!(p.size(), 3);
        let v6 = Pool::new("2001:db8::/64", &strings(&["2001:db8::/120"]), None).expect("pool");
        assert_eq!(v6.lowest_free(&BTreeSet::new()), Some(ip("2001:db8::100")));
        let one = Pool::new("192.0.2.9/32", &[], None).expect("pool");
        assert_eq!(one.size(), 1);
        assert!(one.contains(ip("192.0.2.9")));
    }

    #[test]
    fn bad_settings_name_their_key() {
        let e = Pool::new("192.0.2.5/24", &[], None).expect_err("host bits");
        assert_eq!(e.key(), "cidr");
        assert!(e.to_string().contains("192.0.2.0/24"), "{e}");
        assert_eq!(
            Pool::new("nope", &[], None).expect_err("parse").key(),
            "cidr"
        );
        let e = Pool::new("192.0.2.0/24", &strings(&["10.0.0.1"]), None).expect_err("outside");
        assert_eq!(e.key(), "exclude");
        assert!(matches!(e, PoolError::Outside { .. }));
        let e = Pool::new("192.0.2.0/24", &strings(&["2001:db8::1"]), None).expect_err("family");
        assert!(matches!(e, PoolError::Family { .. }));
        let e = Pool::new("192.0.2.0/24", &strings(&["192.0.2.x"]), None).expect_err("parse");
        assert!(matches!(e, PoolError::BadExclusion(_)));
    }

    #[test]
    fn allocation_follows_creation_order_not_listing_order() {
        let p = Pool::new("192.0.2.0/29", &strings(&["192.0.2.1"]), None).expect("pool");
        let servers = [
            server("c", "2026-01-03T00:00:00Z", None),
            server("a", "2026-01-01T00:00:00Z", None),
            server("b", "2026-01-01T00:00:00Z", None),
        ];
        let reserved = BTreeMap::from([(ip("192.0.2.3"), "node x's address".to_string())]);
        let got = p.assign(&candidates(&servers), &reserved);
        assert_eq!(got.addresses["a"], ip("192.0.2.2"));
        assert_eq!(got.addresses["b"], ip("192.0.2.4"));
        assert_eq!(got.addresses["c"], ip("192.0.2.5"));
        assert_eq!(got.records.len(), 3);
        assert!(got.notes.is_empty());
        let mut reversed = candidates(&servers);
        reversed.reverse();
        assert_eq!(p.assign(&reversed, &reserved).addresses, got.addresses);
    }

    #[test]
    fn recorded_addresses_stay_unless_they_no_longer_hold() {
        let p = Pool::new("192.0.2.0/28", &[], None).expect("pool");
        let reserved = BTreeMap::from([(ip("192.0.2.9"), "node x's address".to_string())]);
        let servers = [
            server("kept", "2026-01-01T00:00:00Z", Some("192.0.2.7")),
            server("twin", "2026-01-02T00:00:00Z", Some("192.0.2.7")),
            server("outside", "2026-01-03T00:00:00Z", Some("10.0.0.1")),
            server("reserved", "2026-01-04T00:00:00Z", Some("192.0.2.9")),
            server("garbage", "2026-01-05T00:00:00Z", Some("x")),
            server("new", "2026-01-06T00:00:00Z", None),
        ];
        let got = p.assign(&candidates(&servers), &reserved);
        assert_eq!(got.addresses["kept"], ip("192.0.2.7"));
        // Kept as recorded: nothing written for it.
        assert!(got.records.iter().all(|r| r.server != "kept"));
        // The others get the lowest free addresses, in creation order.
        assert_eq!(got.addresses["twin"], ip("192.0.2.1"));
        assert_eq!(got.addresses["outside"], ip("192.0.2.2"));
        assert_eq!(got.addresses["reserved"], ip("192.0.2.3"));
        assert_eq!(got.addresses["garbage"], ip("192.0.2.4"));
        assert_eq!(got.addresses["new"], ip("192.0.2.5"));
        let why: Vec<String> = got.notes.iter().map(ToString::to_string).collect();
        assert_eq!(why.len(), 4, "{why:?}");
        assert!(why[0].contains("also recorded for server kept"), "{why:?}");
        assert!(why[1].contains("not in the pool 192.0.2.0/28"), "{why:?}");
        assert!(why[2].contains("is reserved: node x's address"), "{why:?}");
        assert!(why[3].contains("not an address"), "{why:?}");
    }

    #[test]
    fn an_address_given_before_holds_until_it_is_recorded() {
        let p = Pool::new("192.0.2.0/29", &[], None).expect("pool");
        let mut early = server("early", "2026-01-01T00:00:00Z", None);
        let mut late = server("late", "2026-01-02T00:00:00Z", None);
        late.previous = Some(ip("192.0.2.1"));
        early.previous = None;
        let got = p.assign(&candidates(&[early, late]), &BTreeMap::new());
        assert_eq!(got.addresses["late"], ip("192.0.2.1"));
        assert_eq!(got.addresses["early"], ip("192.0.2.2"));
        // Both written: neither had it recorded.
        assert_eq!(got.records.len(), 2);
    }

    #[test]
    fn an_exhausted_pool_names_itself_and_the_server() {
        let p = Pool::new("192.0.2.0/30", &[], None).expect("pool");
        let servers = [
            server("a", "2026-01-01T00:00:00Z", None),
            server("b", "2026-01-02T00:00:00Z", None),
            server("c", "2026-01-03T00:00:00Z", None),
        ];
        let got = p.assign(&candidates(&servers), &BTreeMap::new());
        assert_eq!(got.addresses.len(), 2);
        let text = got.notes[0].to_string();
        assert!(
            text.contains("192.0.2.0/30")
                && text.contains("server c")
                && text.contains("2 addresses"),
            "{text}"
        );
    }

    #[test]
    fn blocks_give_each_node_a_subnet_of_its_own() {
        let p = Pool::new("10.80.0.0/24", &strings(&["10.80.0.16/29"]), Some(29)).expect("pool");
        let servers = [
            server("a", "2026-01-01T00:00:01Z", None),
            server("b", "2026-01-01T00:00:02Z", None),
            server("c", "2026-01-01T00:00:03Z", Some("10.80.0.12")),
            server("d", "2026-01-01T00:00:04Z", None),
        ];
        let out = p.assign(&candidates(&servers), &BTreeMap::new());
        let got = |id: &str| out.addresses.get(id).map(ToString::to_string);
        // c keeps its recorded address, whose /29 (.8) is then taken; the
        // excluded .16/29 is stepped over.
        assert_eq!(got("c").as_deref(), Some("10.80.0.12"));
        assert_eq!(got("a").as_deref(), Some("10.80.0.2"));
        assert_eq!(got("b").as_deref(), Some("10.80.0.26"));
        assert_eq!(got("d").as_deref(), Some("10.80.0.34"));
        // A recorded address in a block already taken is reassigned.
        let clash = [
            server("a", "2026-01-01T00:00:01Z", Some("10.80.0.2")),
            server("b", "2026-01-01T00:00:02Z", Some("10.80.0.3")),
        ];
        let out = p.assign(&candidates(&clash), &BTreeMap::new());
        assert_eq!(
            out.addresses.get("b").map(ToString::to_string).as_deref(),
            Some("10.80.0.10")
        );
        assert_eq!(
            Pool::new("10.80.0.0/24", &[], Some(31))
                .expect_err("too long")
                .key(),
            "block"
        );
        assert!(Pool::new("10.80.0.0/24", &[], Some(16)).is_err());
    }
}
