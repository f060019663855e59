//! The BMC instance's own side, through rtnetlink: its NICs found by the
//! MAC of the Neutron port behind each, and the node addresses configured
//! on them (and brought up), so no DHCP client or netplan file is needed.
//! A hot-plugged NIC appears some time after Nova's attach answers, so
//! [`Host::wait_for`] looks again until it is there.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};

use super::cloud::NetError;

/// One NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// Its index.
    pub index: u32,
    /// Its name (`ens5`).
    pub name: String,
    /// Its MAC, lowercase with colons.
    pub mac: String,
    /// Whether it is up.
    pub up: bool,
}

/// An address configured on a NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    /// The NIC's index.
    pub index: u32,
    /// The address.
    pub ip: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
}

/// How often [`Host::wait_for`] looks.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// A netlink route socket on the current runtime.
#[derive(Debug, Clone)]
pub struct Host {
    handle: Handle,
}

fn host_error(what: &str) -> impl Fn(rtnetlink::Error) -> NetError + '_ {
    move |e| {
        NetError::Host(format!(
            "cannot {what}: {}",
            crate::routing::netlink::describe(&e)
        ))
    }
}

impl Host {
    /// Opens the socket.
    pub fn connect() -> Result<Host, NetError> {
        let (connection, handle, _) = rtnetlink::new_connection()
            .map_err(|e| NetError::Host(format!("cannot open a netlink socket: {e}")))?;
        tokio::spawn(connection);
        Ok(Host { handle })
    }

    /// Every NIC with a MAC.
    pub async fn nics(&self) -> Result<Vec<Nic>, NetError> {
        let mut out = Vec::new();
        let mut links = self.handle.link().get().execute();
        while let Some(m) = links
            .try_next()
            .await
            .map_err(host_error("list the links"))?
        {
            if let Some(nic) = nic_of(&m) {
                out.push(nic);
            }
        }
        Ok(out)
    }

    /// Every address, every NIC.
    pub async fn addresses(&self) -> Result<Vec<Address>, NetError> {
        let mut out = Vec::new();
        let mut list = self.handle.address().get().execute();
        while let Some(m) = list
            .try_next()
            .await
            .map_err(host_error("list the addresses"))?
        {
            for a in &m.attributes {
                if let AddressAttribute::Address(ip) = a {
                    out.push(Address {
                        index: m.header.index,
                        ip: *ip,
                        prefix: m.header.prefix_len,
                    });
                }
            }
        }
        Ok(out)
    }

    /// The NICs with these MACs, waiting up to `wait` for those not there
    /// yet; the ones found (the caller reports the others).
    pub async fn wait_for(&self, macs: &[String], wait: Duration) -> Result<Vec<Nic>, NetError> {
        let deadline = Instant::now() + wait;
        loop {
            let nics: Vec<Nic> = self
                .nics()
                .await?
                .into_iter()
                .filter(|n| macs.iter().any(|m| m.eq_ignore_ascii_case(&n.mac)))
                .collect();
            if nics.len() >= macs.len() || Instant::now() >= deadline {
                return Ok(nics);
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }

    /// Puts `ip/prefix` on `nic` and brings it up; returns what it did
    /// (nothing when all was in place).
    pub async fn ensure(
        &self,
        nic: &Nic,
        ip: IpAddr,
        prefix: u8,
        have: &[Address],
    ) -> Result<Vec<String>, NetError> {
        let mut done = Vec::new();
        if !nic.up {
            let m = rtnetlink::LinkUnspec::new_with_index(nic.index)
                .up()
                .build();
            self.handle
                .link()
                .set(m)
                .execute()
                .await
                .map_err(host_error(&format!("bring {} up", nic.name)))?;
            done.push(format!("brought {} up", nic.name));
        }
        let present = have
            .iter()
            .any(|a| a.index == nic.index && a.ip == ip && a.prefix == prefix);
        if !present {
            let mut add = self.handle.address().add(nic.index, ip, prefix);
            if ip.is_ipv6() {
                // The address is the port's: nobody else may hold it, and
                // the node must answer at once.
                add.message_mut().header.flags = AddressHeaderFlags::Nodad;
            }
            add.execute()
                .await
                .map_err(host_error(&format!("add {ip}/{prefix} to {}", nic.name)))?;
            done.push(format!("added {ip}/{prefix} to {}", nic.name));
        }
        Ok(done)
    }

    /// Removes `ip` from whichever NIC holds it; whether it was there.
    pub async fn remove(&self, ip: IpAddr, have: &[Address]) -> Result<bool, NetError> {
        let mut removed = false;
        for a in have.iter().filter(|a| a.ip == ip) {
            let mut m = AddressMessage::default();
            m.header.family = if ip.is_ipv4() {
                rtnetlink::packet_route::AddressFamily::Inet
            } else {
                rtnetlink::packet_route::AddressFamily::Inet6
            };
            m.header.index = a.index;
            m.header.prefix_len = a.prefix;
            m.attributes.push(AddressAttribute::Address(ip));
            if ip.is_ipv4() {
                m.attributes.push(AddressAttribute::Local(ip));
            }
            self.handle
                .address()
                .del(m)
                .execute()
                .await
                .map_err(host_error(&format!("remove {ip}")))?;
            removed = true;
        }
        Ok(removed)
    }
}

fn nic_of(m: &LinkMessage) -> Option<Nic> {
    let mut name = None;
    let mut mac = None;
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Address(bytes) if bytes.len() == 6 => {
                mac = Some(
                    bytes
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":"),
                );
            }
            _ => {}
        }
    }
    Some(Nic {
        index: m.header.index,
        name: name?,
        mac: mac?,
        up: m.header.flags.contains(LinkFlags::Up),
    })
}
