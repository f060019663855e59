//! The kernel's floor under novabmc's per-datagram cost, for
//! `contrib/bench/floor.sh`: servers that answer each datagram with itself,
//! doing no IPMI work at all, and a client that keeps a number of requests
//! in flight and reports the server's CPU per answered datagram.
//!
//!     datagram_floor serve per-node TARGETS   one socket per address, as the
//!                                             daemon runs: a task each, batched
//!                                             receive (novabmc::ipmi::datagrams),
//!                                             one sendto per reply
//!     datagram_floor serve shared TARGETS     one wildcard socket per port for
//!                                             all addresses: IP_PKTINFO names
//!                                             the destination, which must be a
//!                                             served address, and sets the
//!                                             reply's source; recvmmsg and
//!                                             sendmmsg batch across nodes
//!     datagram_floor serve bare TARGETS       the shared socket with no runtime
//!                                             at all: one thread blocking in
//!                                             recvmmsg(MSG_WAITFORONE), the
//!                                             least a server can do
//!     datagram_floor serve epoll TARGETS      one socket per address again, no
//!                                             runtime: one thread waiting in
//!                                             epoll_wait for all of them, then
//!                                             the daemon's batched receive and
//!                                             a sendto per reply
//!     datagram_floor client TARGETS PID [SECONDS] [IN-FLIGHT] [BYTES]
//!
//! TARGETS is a file of `address:port` lines (IPv4). Whatever the server
//! costs per datagram here, an IPMI server with the same socket layout
//! costs at least that much per in-session command (one request, one
//! reply), and a full session (five exchanges with the load client) at
//! least five times as much.
#![allow(unsafe_code)]

use std::collections::HashSet;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use novabmc::ipmi::datagrams::{Batch, NodeSocket};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve", "per-node", targets] => serve_per_node(read_targets(targets)?),
        ["serve", "shared", targets] => serve_shared(read_targets(targets)?, false),
        ["serve", "bare", targets] => serve_shared(read_targets(targets)?, true),
        ["serve", "epoll", targets] => serve_epoll(read_targets(targets)?),
        ["client", targets, pid, rest @ ..] => {
            let number = |i: usize, default: u64| -> Result<u64> {
                rest.get(i)
                    .map(|s| s.parse().with_context(|| format!("not a number: {s}")))
                    .unwrap_or(Ok(default))
            };
            client(
                read_targets(targets)?,
                pid.parse().context("PID")?,
                Duration::from_secs(number(0, 5)?),
                number(1, 64)? as usize,
                number(2, 64)? as usize,
            )
        }
        _ => bail!(
            "usage: datagram_floor serve per-node|shared|bare|epoll TARGETS\n       \
             datagram_floor client TARGETS PID [SECONDS] [IN-FLIGHT] [BYTES]"
        ),
    }
}

fn read_targets(path: &str) -> Result<Vec<SocketAddrV4>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim()
                .parse()
                .with_context(|| format!("{path}: not an address:port: {l}"))
        })
        .collect()
}

/// The runtime as the daemon builds it (one worker per core).
fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn serve_per_node(targets: Vec<SocketAddrV4>) -> Result<()> {
    runtime()?.block_on(async move {
        let mut tasks = Vec::new();
        for target in targets {
            let socket = tokio::net::UdpSocket::bind(target)
                .await
                .with_context(|| format!("binding {target}"))?;
            let socket = NodeSocket::new(socket)?;
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok(mut ready) = socket.readable().await else {
                        return;
                    };
                    let mut batch = Batch::new();
                    match batch.receive(socket.get_ref()) {
                        Ok(n) => {
                            for (from, data) in batch.iter() {
                                let _ = socket.send_to(data, from).await;
                            }
                            if n < novabmc::ipmi::datagrams::BATCH {
                                ready.clear_ready();
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready.clear_ready(),
                        Err(_) => return,
                    }
                }
            }));
        }
        eprintln!("datagram_floor: serving per node");
        for task in tasks {
            task.await?;
        }
        Ok(())
    })
}

/// One socket per address without a runtime: what tokio's scheduling
/// costs on top of the per-node layout's own system calls.
fn serve_epoll(targets: Vec<SocketAddrV4>) -> Result<()> {
    let mut sockets = Vec::new();
    // SAFETY: no preconditions; the descriptor is checked below.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(io::Error::last_os_error()).context("epoll_create1");
    }
    for (i, target) in targets.iter().enumerate() {
        let socket = UdpSocket::bind(target).with_context(|| format!("binding {target}"))?;
        socket.set_nonblocking(true)?;
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: i as u64,
        };
        // SAFETY: both descriptors are open; ev lives through the call.
        if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, socket.as_raw_fd(), &raw mut ev) } != 0
        {
            return Err(io::Error::last_os_error()).context("epoll_ctl");
        }
        sockets.push(socket);
    }
    eprintln!(
        "datagram_floor: serving {} sockets from one epoll thread",
        sockets.len()
    );
    // SAFETY: plain old data.
    let mut events: [libc::epoll_event; 64] = unsafe { zeroed() };
    let mut batch = Batch::new();
    loop {
        // SAFETY: `events` holds 64 entries and outlives the call.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), 64, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        for ev in &events[..n as usize] {
            let socket = &sockets[ev.u64 as usize];
            // Edge-triggered: read until a batch comes back short.
            while let Ok(got) = batch.receive(socket) {
                for (from, data) in batch.iter() {
                    let _ = socket.send_to(data, from);
                }
                if got < novabmc::ipmi::datagrams::BATCH {
                    break;
                }
            }
        }
    }
}

/// Datagrams per `recvmmsg` and `sendmmsg` of the shared socket.
const SHARED_BATCH: usize = 32;
const SHARED_DATAGRAM: usize = 2048;
/// Room for one `in_pktinfo` control message.
const CONTROL: usize = 64;

fn serve_shared(targets: Vec<SocketAddrV4>, bare: bool) -> Result<()> {
    let ports: HashSet<u16> = targets.iter().map(|t| t.port()).collect();
    let [port] = ports.into_iter().collect::<Vec<_>>()[..] else {
        bail!("the shared layout here serves one port");
    };
    let served: HashSet<Ipv4Addr> = targets.iter().map(|t| *t.ip()).collect();
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).context("binding the wildcard")?;
    socket.set_nonblocking(!bare)?;
    let on: libc::c_int = 1;
    // SAFETY: a valid descriptor and an int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("IP_PKTINFO");
    }
    if bare {
        eprintln!(
            "datagram_floor: serving {} addresses, no runtime",
            served.len()
        );
        let mut io = SharedIo::new();
        loop {
            // Blocks for the first datagram, then takes what else is queued.
            let n = io.receive(&socket, libc::MSG_WAITFORONE)?;
            io.answer(&socket, n, &served)?;
        }
    }
    runtime()?.block_on(async move {
        // SAFETY: the socket owns its descriptor and is neither closed nor
        // replaced while registered.
        let socket = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }?;
        let mut io = SharedIo::new();
        eprintln!(
            "datagram_floor: serving {} addresses on one socket",
            served.len()
        );
        loop {
            let mut ready = socket.readable().await?;
            let n = match io.receive(socket.get_ref(), libc::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready.clear_ready();
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            io.answer(socket.get_ref(), n, &served)?;
            if n < SHARED_BATCH {
                ready.clear_ready();
            }
        }
    })
}

/// Buffers, names and control messages for one batch each way; the reply
/// reuses the request's buffer (an echo) and its control message, whose
/// `ipi_spec_dst` (the address asked) becomes the source.
struct SharedIo {
    bufs: Box<[[u8; SHARED_DATAGRAM]; SHARED_BATCH]>,
    names: [libc::sockaddr_in; SHARED_BATCH],
    controls: [[u64; CONTROL / 8]; SHARED_BATCH],
    iov: [libc::iovec; SHARED_BATCH],
    headers: [libc::mmsghdr; SHARED_BATCH],
}

impl SharedIo {
    fn new() -> Self {
        SharedIo {
            bufs: Box::new([[0; SHARED_DATAGRAM]; SHARED_BATCH]),
            // SAFETY: plain old data; zeroes are valid values.
            names: unsafe { zeroed() },
            controls: [[0; CONTROL / 8]; SHARED_BATCH],
            // SAFETY: as above; every pointer is set before use.
            iov: unsafe { zeroed() },
            // SAFETY: as above.
            headers: unsafe { zeroed() },
        }
    }

    fn receive(&mut self, socket: &UdpSocket, flags: libc::c_int) -> io::Result<usize> {
        for i in 0..SHARED_BATCH {
            self.iov[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: SHARED_DATAGRAM,
            };
            let h = &mut self.headers[i].msg_hdr;
            h.msg_name = (&raw mut self.names[i]).cast();
            h.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_iov = &raw mut self.iov[i];
            h.msg_iovlen = 1;
            h.msg_control = self.controls[i].as_mut_ptr().cast();
            h.msg_controllen = CONTROL;
            h.msg_flags = 0;
        }
        // SAFETY: SHARED_BATCH headers, each naming live buffers of the
        // lengths given, all owned by self and outliving the call.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                SHARED_BATCH as libc::c_uint,
                flags,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(n).unwrap_or(0).min(SHARED_BATCH))
    }

    /// Echoes the first `n` datagrams received whose destination is a
    /// served address, from that address, in one `sendmmsg`.
    fn answer(&mut self, socket: &UdpSocket, n: usize, served: &HashSet<Ipv4Addr>) -> Result<()> {
        let mut out = 0;
        for i in 0..n {
            let Some(dst) = self.destination(i) else {
                continue;
            };
            if !served.contains(&dst) {
                continue;
            }
            let len = self.headers[i].msg_len as usize;
            self.iov[i].iov_len = len;
            if out != i {
                self.headers.swap(out, i);
            }
            // The control message keeps in_pktinfo: ipi_spec_dst is the
            // address asked, which the kernel uses as the source.
            let h = &mut self.headers[out].msg_hdr;
            h.msg_flags = 0;
            out += 1;
        }
        let mut sent = 0;
        while sent < out {
            // SAFETY: the first `out` headers name live buffers, names
            // and control messages filled by the last receive.
            let r = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    self.headers.as_mut_ptr().add(sent),
                    (out - sent) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r <= 0 {
                break;
            }
            sent += r as usize;
        }
        Ok(())
    }

    /// The destination address of the i-th datagram, from its in_pktinfo.
    fn destination(&mut self, i: usize) -> Option<Ipv4Addr> {
        let h = &mut self.headers[i].msg_hdr;
        // SAFETY: the header's control buffer was filled by the kernel
        // up to msg_controllen; the CMSG macros stay within it.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(h);
            while !c.is_null() {
                if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_PKTINFO {
                    let info = libc::CMSG_DATA(c).cast::<libc::in_pktinfo>();
                    let mut pi = info.read_unaligned();
                    let dst = Ipv4Addr::from(u32::from_be(pi.ipi_addr.s_addr));
                    pi.ipi_ifindex = 0;
                    pi.ipi_spec_dst = pi.ipi_addr;
                    info.write_unaligned(pi);
                    h.msg_controllen =
                        libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) as usize;
                    return Some(dst);
                }
                c = libc::CMSG_NXTHDR(h, c);
            }
        }
        None
    }
}

/// User plus system CPU time of a process, from /proc/PID/stat.
fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').map(|(_, r)| r).context("stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).context("utime")?.parse::<u64>()?
        + fields.get(12).context("stime")?.parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

fn client(
    targets: Vec<SocketAddrV4>,
    pid: u32,
    duration: Duration,
    inflight: usize,
    bytes: usize,
) -> Result<()> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let payload = vec![0x06u8; bytes.clamp(1, SHARED_DATAGRAM)];
    let mut next = 0usize;
    let mut send = |socket: &UdpSocket| -> io::Result<()> {
        let to = targets[next % targets.len()];
        next += 1;
        socket.send_to(&payload, SocketAddr::V4(to)).map(|_| ())
    };
    for _ in 0..inflight {
        send(&socket)?;
    }
    let mut buf = [0u8; SHARED_DATAGRAM];
    let (mut answered, mut timeouts, mut wrong_source) = (0u64, 0u64, 0u64);
    let served: HashSet<SocketAddrV4> = targets.iter().copied().collect();
    let (cpu0, own0, t0) = (
        cpu_time(pid)?,
        cpu_time(std::process::id())?,
        Instant::now(),
    );
    while t0.elapsed() < duration {
        match socket.recv_from(&mut buf) {
            Ok((_, SocketAddr::V4(from))) if served.contains(&from) => {
                answered += 1;
                send(&socket)?;
            }
            Ok(_) => {
                wrong_source += 1;
                send(&socket)?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                timeouts += 1;
                for _ in 0..inflight {
                    send(&socket)?;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let server = (cpu_time(pid)? - cpu0).as_secs_f64();
    let own = (cpu_time(std::process::id())? - own0).as_secs_f64();
    let per = |cpu: f64| cpu * 1e6 / answered.max(1) as f64;
    println!(
        "echoes: {answered} in {secs:.2} s = {:.0}/s over {} addresses, {inflight} in flight, \
         {bytes} bytes; timeouts {timeouts}, wrong source {wrong_source}",
        answered as f64 / secs,
        targets.len()
    );
    println!(
        "server CPU: {:.2} us per echo, {:.0}% of a core; client CPU: {:.2} us per echo",
        per(server),
        server * 100.0 / secs,
        per(own)
    );
    println!(
        "RESULT echoes={answered} seconds={secs:.3} server_us_per_echo={:.2} client_us_per_echo={:.2} \
         wrong_source={wrong_source}",
        per(server),
        per(own)
    );
    Ok(())
}
