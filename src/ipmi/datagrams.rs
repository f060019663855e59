//! Receiving a node's datagrams in batches with `recvmmsg(2)`, and sending
//! its replies without a write registration.
//!
//! Reading until the socket says `EAGAIN` costs one system call per wake-up
//! that returns nothing: a third of all system calls, since a console waits
//! for each reply before it sends again, so a node's socket mostly holds
//! one datagram when it wakes. `recvmmsg` with `MSG_DONTWAIT` reads up to a
//! batch and stops, inside the kernel, at the first receive that would
//! block; a batch shorter than asked therefore proves the queue was empty
//! when the call returned, and the caller may clear its readiness without
//! asking again. A datagram arriving after that raises a fresh edge in the
//! (edge-triggered) epoll set, so none is missed.
//!
//! Sends are plain non-blocking `sendto` on the same socket, so the socket
//! need not be registered for writability: a UDP socket whose send buffer
//! drains would otherwise wake the poller for write space nobody waits for.
//!
//! This is the one module of the daemon allowed `unsafe`: `recvmmsg` over
//! buffers left uninitialised, with headers on the stack. nix's safe
//! wrapper needs initialised buffers (16 KiB zeroed per wake-up) and
//! allocates its headers per call, which would cost back what the batch
//! saves. Each `unsafe` block says why it is sound, and the tests below
//! cover short, full, IPv6 and oversized batches.
#![allow(unsafe_code)]

use std::io;
use std::mem::{MaybeUninit, size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

use tokio::io::Interest;
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

/// Tries of a send that finds the socket's buffer full before the reply is
/// dropped (the console retransmits and the engine's reply cache answers).
const SEND_TRIES: usize = 3;

/// A node's socket, registered with the runtime for readability only.
#[derive(Debug)]
pub struct NodeSocket(AsyncFd<std::net::UdpSocket>);

impl NodeSocket {
    /// Takes over a bound socket.
    pub fn new(socket: tokio::net::UdpSocket) -> io::Result<Self> {
        let socket = socket.into_std()?;
        // SAFETY: the socket owns its descriptor, and NodeSocket neither
        // closes nor replaces it while registered (it is dropped with the
        // AsyncFd, which deregisters first).
        let fd = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) };
        fd.map(NodeSocket).map_err(io::Error::from)
    }

    /// Waits until the socket is readable. Clear the guard's readiness only
    /// after a read found the socket empty.
    pub async fn readable(&self) -> io::Result<AsyncFdReadyGuard<'_, std::net::UdpSocket>> {
        self.0.readable().await
    }

    /// The socket itself, to read from.
    pub fn get_ref(&self) -> &std::net::UdpSocket {
        self.0.get_ref()
    }

    /// Sends one datagram. A full send buffer (the socket is not
    /// registered for writability, so it is not waited on) is retried
    /// after yielding, then the reply is dropped: a console retransmits
    /// its request and gets the cached reply.
    pub async fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<()> {
        let mut tries = 0;
        loop {
            match self.0.get_ref().send_to(data, to) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && tries + 1 < SEND_TRIES => {
                    tries += 1;
                    tokio::task::yield_now().await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Datagrams read by one `recvmmsg` call.
pub const BATCH: usize = 8;
/// Largest datagram read; RMCP+ requests are far smaller, and a longer one
/// is truncated to this and then refused by the engine as malformed.
pub const DATAGRAM: usize = 2048;

/// Buffers for one batch, meant to live on the stack of the reading task
/// only while it reads (an idle node holds none).
pub struct Batch {
    /// Left uninitialised: zeroing 16 KiB on every wake-up would cost more
    /// than the system call saved. Only what the kernel wrote is read.
    bufs: MaybeUninit<[[u8; DATAGRAM]; BATCH]>,
    names: [libc::sockaddr_storage; BATCH],
    lens: [usize; BATCH],
    name_lens: [libc::socklen_t; BATCH],
    count: usize,
}

impl Batch {
    /// Empty buffers.
    pub fn new() -> Self {
        Batch {
            bufs: MaybeUninit::uninit(),
            // SAFETY: sockaddr_storage is plain old data; all zeroes is a
            // valid (AF_UNSPEC) value.
            names: unsafe { zeroed() },
            lens: [0; BATCH],
            name_lens: [0; BATCH],
            count: 0,
        }
    }

    /// Reads up to [`BATCH`] datagrams without blocking. `Ok(n)` with
    /// `n < BATCH` means the socket was empty when the call returned;
    /// `WouldBlock` that it held nothing at all.
    pub fn receive(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        self.count = 0;
        let fd: RawFd = socket.as_raw_fd();
        let base: *mut u8 = self.bufs.as_mut_ptr().cast();
        let mut iov: [libc::iovec; BATCH] = std::array::from_fn(|i| libc::iovec {
            // SAFETY: within the BATCH * DATAGRAM bytes of `bufs`.
            iov_base: unsafe { base.add(i * DATAGRAM) }.cast(),
            iov_len: DATAGRAM,
        });
        // SAFETY: mmsghdr is plain old data; every pointer in it is set
        // below before the call.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for (i, h) in headers.iter_mut().enumerate() {
            h.msg_hdr.msg_name = (&raw mut self.names[i]).cast();
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &raw mut iov[i];
            h.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `headers` holds BATCH valid headers, each naming a live
        // buffer of DATAGRAM bytes and a sockaddr_storage; all outlive the
        // call, which writes within the lengths given.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = usize::try_from(n).unwrap_or(0).min(BATCH);
        for (i, h) in headers.iter().take(n).enumerate() {
            self.lens[i] = (h.msg_len as usize).min(DATAGRAM);
            self.name_lens[i] = h.msg_hdr.msg_namelen;
        }
        self.count = n;
        Ok(n)
    }

    /// The datagrams of the last read, with their senders. A datagram
    /// whose sender is not an IP address (impossible on a UDP socket) is
    /// skipped.
    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        (0..self.count).filter_map(|i| {
            let from = socket_addr(&self.names[i], self.name_lens[i])?;
            let base: *const u8 = self.bufs.as_ptr().cast();
            // SAFETY: the kernel wrote the first lens[i] (<= DATAGRAM)
            // bytes of the i-th buffer in the last receive, and `count` is
            // reset before each; the slice borrows `self`.
            let data = unsafe { std::slice::from_raw_parts(base.add(i * DATAGRAM), self.lens[i]) };
            Some((from, data))
        })
    }
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

/// An IPv4 or IPv6 socket address from the kernel's representation.
fn socket_addr(name: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(name.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is large and aligned enough for any address.
            let sin = unsafe { &*(std::ptr::from_ref(name).cast::<libc::sockaddr_in>()) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddrV4::new(ip, u16::from_be(sin.sin_port)).into())
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*(std::ptr::from_ref(name).cast::<libc::sockaddr_in6>()) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(
                SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )
                .into(),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    use super::*;

    #[test]
    fn a_short_batch_reads_everything_queued_and_names_each_sender() {
        let server = UdpSocket::bind("127.0.0.1:0").expect("bind");
        server.set_nonblocking(true).expect("nonblocking");
        let to = server.local_addr().expect("addr");
        let a = UdpSocket::bind("127.0.0.1:0").expect("a");
        let b = UdpSocket::bind("127.0.0.1:0").expect("b");
        a.send_to(b"one", to).expect("send");
        b.send_to(b"two", to).expect("send");
        a.send_to(b"three", to).expect("send");

        let mut batch = Batch::new();
        assert_eq!(batch.receive(&server).expect("receive"), 3);
        let got: Vec<(SocketAddr, Vec<u8>)> =
            batch.iter().map(|(from, d)| (from, d.to_vec())).collect();
        let (ea, eb) = (a.local_addr().expect("a"), b.local_addr().expect("b"));
        assert_eq!(
            got,
            vec![
                (ea, b"one".to_vec()),
                (eb, b"two".to_vec()),
                (ea, b"three".to_vec())
            ]
        );
        let empty = batch.receive(&server).expect_err("nothing left");
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_full_batch_leaves_the_rest_for_the_next_read() {
        let server = UdpSocket::bind("[::1]:0").expect("bind v6");
        server.set_nonblocking(true).expect("nonblocking");
        let to = server.local_addr().expect("addr");
        let client = UdpSocket::bind("[::1]:0").expect("client");
        for i in 0..BATCH + 2 {
            client.send_to(&[i as u8], to).expect("send");
        }
        let mut batch = Batch::new();
        assert_eq!(batch.receive(&server).expect("first"), BATCH);
        assert!(
            batch
                .iter()
                .all(|(from, _)| from == client.local_addr().expect("client addr"))
        );
        assert_eq!(batch.receive(&server).expect("second"), 2);
        let rest: Vec<u8> = batch.iter().map(|(_, d)| d[0]).collect();
        assert_eq!(rest, vec![BATCH as u8, BATCH as u8 + 1]);
    }

    #[test]
    fn an_oversized_datagram_is_truncated_not_overrun() {
        let server = UdpSocket::bind("127.0.0.1:0").expect("bind");
        server.set_nonblocking(true).expect("nonblocking");
        let client = UdpSocket::bind("127.0.0.1:0").expect("client");
        client
            .send_to(&[7u8; DATAGRAM + 100], server.local_addr().expect("addr"))
            .expect("send");
        let mut batch = Batch::new();
        assert_eq!(batch.receive(&server).expect("receive"), 1);
        let (_, d) = batch.iter().next().expect("one");
        assert_eq!(d.len(), DATAGRAM);
    }
}
