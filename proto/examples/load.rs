//! A load client for a running BMC: full RMCP+ sessions (Open Session,
//! RAKP 1-4, Get Chassis Status, Close Session) or in-session Get Chassis
//! Status commands, kept in flight over many nodes on real UDP sockets
//! until a deadline, so the server's ceiling shows rather than the
//! client's. It reports operations per second, p50/p99 latency and, with
//! `--pid`, the server's CPU per operation read from `/proc`.
//!
//! The console is the engine tests' one (`tests/support`), built on this
//! crate's codecs and the spec's formulas: every reply is decoded, RAKP2 and
//! RAKP4 are checked against the password, and every in-session reply has
//! its AuthCode verified and is decrypted before its completion code is
//! read, so the server cannot look fast by answering garbage. A reply that
//! fails these checks stops the run with a message.
//!
//! Loopback only: any target outside 127.0.0.0/8 or ::1 is refused.
//!
//! ```text
//! cargo run --release -p novabmc-proto --example load -- \
//!     --targets FILE --mode sessions --duration 10 --concurrency 64 --pid PID
//! ```
//!
//! `FILE` holds one `address:port` per line. Options: `--target ADDR:PORT`
//! (repeatable, instead of or besides a file), `--mode sessions|commands`,
//! `--suite 3|17`, `--user`, `--password`, `--concurrency` (operations in
//! flight), `--threads` (client threads, one socket each), `--duration`
//! (seconds), `--timeout-ms` (a lost datagram restarts its operation),
//! `--pid` (the server's process).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use novabmc_proto::codec::{Decode, decode_prefix};
use novabmc_proto::wire::ids::{NetFn, PayloadType, RakpStatus};
use novabmc_proto::wire::message::Response;
use novabmc_proto::wire::rmcp::RmcpHeader;
use novabmc_proto::wire::session::PacketV20;
use support::{Console, suite};

/// Get Chassis Status (Chassis netFn).
const GET_CHASSIS_STATUS: u8 = 0x01;
/// Close Session (App netFn).
const CLOSE_SESSION: u8 = 0x3c;
/// Linux reports utime and stime in USER_HZ ticks, which is 100 on every
/// architecture's user ABI whatever the kernel's own HZ.
const USER_HZ: u64 = 100;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// One operation = a whole session, setup to close.
    Sessions,
    /// One operation = one Get Chassis Status in a session opened before.
    Commands,
}

#[derive(Debug)]
struct Args {
    targets: Vec<SocketAddr>,
    mode: Mode,
    suite: u8,
    user: &'static [u8],
    password: &'static [u8],
    concurrency: usize,
    threads: usize,
    duration: Duration,
    timeout: Duration,
    pid: Option<u32>,
}

const USAGE: &str = "usage: load (--targets FILE | --target ADDR:PORT ...) \
     [--mode sessions|commands] [--suite 3|17] [--user NAME] [--password PW] \
     [--concurrency N] [--threads N] [--duration SECS] [--timeout-ms MS] [--pid PID]";

fn usage(msg: &str) -> ! {
    eprintln!("load: {msg}");
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn parse_target(s: &str) -> SocketAddr {
    let addr: SocketAddr = s
        .parse()
        .unwrap_or_else(|_| usage(&format!("not an address:port: {s}")));
    // A load generator must never be aimed at somebody else's machine.
    if !addr.ip().is_loopback() {
        usage(&format!("{addr} is not a loopback address"));
    }
    addr
}

fn leak(s: String) -> &'static [u8] {
    Box::leak(s.into_bytes().into_boxed_slice())
}

fn parse_args() -> Args {
    let mut a = Args {
        targets: Vec::new(),
        mode: Mode::Sessions,
        suite: 17,
        user: b"admin",
        password: b"password",
        concurrency: 64,
        threads: 1,
        duration: Duration::from_secs(10),
        timeout: Duration::from_millis(1000),
        pid: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        let number = |v: String| -> u64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{flag}: not a number: {v}")))
        };
        match flag.as_str() {
            "--targets" => {
                let path = value();
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| usage(&format!("{path}: {e}")));
                a.targets.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(parse_target),
                );
            }
            "--target" => a.targets.push(parse_target(&value())),
            "--mode" => {
                a.mode = match value().as_str() {
                    "sessions" => Mode::Sessions,
                    "commands" => Mode::Commands,
                    m => usage(&format!("unknown mode {m}")),
                }
            }
            "--suite" => a.suite = number(value()) as u8,
            "--user" => a.user = leak(value()),
            "--password" => a.password = leak(value()),
            "--concurrency" => a.concurrency = number(value()) as usize,
            "--threads" => a.threads = number(value()) as usize,
            "--duration" => a.duration = Duration::from_secs(number(value())),
            "--timeout-ms" => a.timeout = Duration::from_millis(number(value())),
            "--pid" => a.pid = Some(number(value()) as u32),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            f => usage(&format!("unknown option {f}")),
        }
    }
    if a.targets.is_empty() {
        usage("no targets");
    }
    if ![3, 17].contains(&a.suite) {
        usage("suite must be 3 or 17");
    }
    if a.threads == 0 || a.concurrency < a.threads || a.concurrency > 0xffff {
        usage("need 1 <= threads <= concurrency <= 65535");
    }
    a
}

/// CPU a process has used, utime+stime from `/proc/PID/stat`, in
/// microseconds (all its threads together).
fn process_cpu_us(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields are counted after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 1_000_000 / USER_HZ)
}

/// The console session ID a reply is for and its payload type: from the
/// session header in session, from the payload (where Open Session
/// Response, RAKP2 and RAKP4 all carry it at offset 4) before.
fn reply_key(datagram: &[u8]) -> Option<(u32, PayloadType)> {
    let (_, rest) = decode_prefix("rmcp", datagram, RmcpHeader::parse).ok()?;
    let p = PacketV20::decode(rest).ok()?;
    let pt = p.header.payload_type;
    if p.header.session_id != 0 {
        return Some((p.header.session_id, pt));
    }
    let sid = p.payload.get(4..8)?;
    Some((u32::from_le_bytes(sid.try_into().ok()?), pt))
}

/// Where a flow is in its operation: the reply it waits for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Step {
    OpenSession,
    Rakp2,
    Rakp4,
    Status,
    Close,
}

/// One operation in flight, towards one node.
struct Flow {
    index: usize,
    target: SocketAddr,
    console: Console,
    /// Bumped for every new session so replies to an abandoned one are
    /// recognised as strays.
    generation: u16,
    step: Step,
    rq_seq: u8,
    op_start: Instant,
    sent: Instant,
    /// Stops after the current operation (the deadline has passed).
    finishing: bool,
    done: bool,
}

impl Flow {
    fn sidm(&self) -> u32 {
        ((self.index as u32 + 1) << 16) | u32::from(self.generation)
    }

    fn new_console(&mut self, args: &Args) {
        self.generation = self.generation.wrapping_add(1);
        let mut c = Console::new(suite(args.suite), args.user, args.password);
        c.sidm = self.sidm();
        self.console = c;
    }

    fn in_session(&mut self, cmd: NetFn, code: u8, data: &[u8]) -> Vec<u8> {
        self.rq_seq = self.console.rq_seq;
        self.console.request(cmd, code, data)
    }

    fn status_request(&mut self) -> Vec<u8> {
        self.step = Step::Status;
        self.in_session(NetFn::CHASSIS, GET_CHASSIS_STATUS, &[])
    }

    fn close_request(&mut self) -> Vec<u8> {
        self.step = Step::Close;
        let sidc = self.console.sidc.to_le_bytes();
        self.in_session(NetFn::APP, CLOSE_SESSION, &sidc)
    }

    /// Opens a verified in-session reply; `None` if it answers another
    /// request than the one outstanding (a late reply after a timeout).
    fn open_reply(&self, datagram: &[u8], cmd: u8) -> Option<Vec<u8>> {
        let (_, msg) = self.console.open(datagram);
        let r = Response::decode(&msg).expect("in-session reply decodes");
        if r.header.rq_seq != self.rq_seq || r.header.cmd != cmd {
            return None;
        }
        assert_eq!(
            r.completion.0, 0,
            "completion code of command {cmd:#04x} from {}",
            self.target
        );
        Some(r.data.to_vec())
    }
}

/// What happened to a reply.
enum Reply {
    /// Open Session answered "insufficient resources": the node's session
    /// table is full of established sessions (more in flight than it
    /// holds). The operation starts over.
    Busy,
    /// The next datagram of the operation.
    Next(Vec<u8>),
    /// The operation finished.
    Complete,
    /// Not for the step the flow is at.
    Stray,
}

/// Advances a flow on a reply that carries its console session ID.
fn advance(flow: &mut Flow, pt: PayloadType, datagram: &[u8], mode: Mode) -> Reply {
    match (flow.step, pt) {
        (Step::OpenSession, PayloadType::OpenSessionResponse) => {
            let status = flow.console.accept_open_session(datagram);
            if status == RakpStatus::InsufficientResources {
                return Reply::Busy;
            }
            assert_eq!(status, RakpStatus::Ok, "Open Session from {}", flow.target);
            flow.step = Step::Rakp2;
            Reply::Next(flow.console.rakp1())
        }
        (Step::Rakp2, PayloadType::Rakp2) => {
            let status = flow.console.accept_rakp2(datagram);
            assert_eq!(status, RakpStatus::Ok, "RAKP2 from {}", flow.target);
            flow.step = Step::Rakp4;
            Reply::Next(flow.console.rakp3())
        }
        (Step::Rakp4, PayloadType::Rakp4) => {
            let status = flow.console.accept_rakp4(datagram);
            assert_eq!(status, RakpStatus::Ok, "RAKP4 from {}", flow.target);
            Reply::Next(flow.status_request())
        }
        (Step::Status, PayloadType::Ipmi) => {
            let Some(data) = flow.open_reply(datagram, GET_CHASSIS_STATUS) else {
                return Reply::Stray;
            };
            assert!(
                data.len() >= 3,
                "Get Chassis Status data from {}",
                flow.target
            );
            match mode {
                Mode::Sessions => Reply::Next(flow.close_request()),
                Mode::Commands => Reply::Complete,
            }
        }
        (Step::Close, PayloadType::Ipmi) => match flow.open_reply(datagram, CLOSE_SESSION) {
            Some(_) => Reply::Complete,
            None => Reply::Stray,
        },
        _ => Reply::Stray,
    }
}

/// What one client thread counted.
#[derive(Debug, Default)]
struct Tally {
    ops: u64,
    latencies_us: Vec<u32>,
    timeouts: u64,
    strays: u64,
    busy: u64,
    /// When the last counted operation finished.
    end: Option<Instant>,
}

/// Sends a datagram; on loopback a failure means the client is broken.
fn send(socket: &UdpSocket, datagram: &[u8], to: SocketAddr) {
    socket
        .send_to(datagram, to)
        .unwrap_or_else(|e| panic!("send to {to}: {e}"));
}

/// One client thread's socket and flows.
struct Driver<'a> {
    args: &'a Args,
    socket: UdpSocket,
    flows: Vec<Flow>,
    by_sidm: HashMap<u32, usize>,
    next_target: usize,
    tally: Tally,
}

impl Driver<'_> {
    fn register(&mut self, i: usize) {
        let sidm = self.flows[i].sidm();
        self.by_sidm.insert(sidm, i);
    }

    fn start_session(&mut self, i: usize) {
        let old = self.flows[i].sidm();
        self.by_sidm.remove(&old);
        let args = self.args;
        let f = &mut self.flows[i];
        f.new_console(args);
        f.step = Step::OpenSession;
        let now = Instant::now();
        f.op_start = now;
        f.sent = now;
        let datagram = f.console.open_session(0);
        let to = f.target;
        self.register(i);
        send(&self.socket, &datagram, to);
    }

    fn start_command(&mut self, i: usize) {
        let f = &mut self.flows[i];
        let datagram = f.status_request();
        let now = Instant::now();
        f.op_start = now;
        f.sent = now;
        send(&self.socket, &datagram, f.target);
    }

    /// Picks the next node for a new session, so sessions visit all nodes.
    fn rotate_target(&mut self, i: usize) {
        let n = self.args.targets.len();
        self.flows[i].target = self.args.targets[self.next_target % n];
        self.next_target += self.args.threads;
    }

    /// Runs until every flow is done. With a `deadline`, a completed
    /// operation is followed by `next` until the deadline passes; without
    /// one (login and logout), each flow does one operation. A lost
    /// datagram makes `retry` run after `--timeout-ms`.
    fn run(&mut self, counting: bool, deadline: Option<Instant>, next: NextOp, retry: NextOp) {
        let mut buf = [0u8; 2048];
        let mut last_sweep = Instant::now();
        while self.flows.iter().any(|f| !f.done) {
            match self.socket.recv_from(&mut buf) {
                Ok((n, _from)) => self.on_datagram(&buf[..n], counting, deadline, next, retry),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("receive: {e}"),
            }
            let now = Instant::now();
            if now.duration_since(last_sweep) >= Duration::from_millis(20) {
                last_sweep = now;
                self.sweep(now, deadline, retry);
            }
        }
    }

    fn on_datagram(
        &mut self,
        datagram: &[u8],
        counting: bool,
        deadline: Option<Instant>,
        next: NextOp,
        retry: NextOp,
    ) {
        let Some((sidm, pt)) = reply_key(datagram) else {
            self.tally.strays += 1;
            return;
        };
        let Some(&i) = self.by_sidm.get(&sidm) else {
            self.tally.strays += 1;
            return;
        };
        let mode = self.args.mode;
        let f = &mut self.flows[i];
        if f.done {
            self.tally.strays += 1;
            return;
        }
        match advance(f, pt, datagram, mode) {
            Reply::Stray => self.tally.strays += 1,
            Reply::Busy => {
                self.tally.busy += 1;
                retry(self, i);
            }
            Reply::Next(datagram) => {
                f.sent = Instant::now();
                send(&self.socket, &datagram, f.target);
            }
            Reply::Complete => {
                let now = Instant::now();
                if counting {
                    self.tally.ops += 1;
                    let us = now.duration_since(f.op_start).as_micros();
                    self.tally
                        .latencies_us
                        .push(u32::try_from(us).unwrap_or(u32::MAX));
                    self.tally.end = Some(now);
                }
                match deadline {
                    Some(d) if !f.finishing && now < d => next(self, i),
                    _ => f.done = true,
                }
            }
        }
    }

    /// Restarts operations whose datagram or reply was lost; after the
    /// deadline, gives them up instead.
    fn sweep(&mut self, now: Instant, deadline: Option<Instant>, retry: NextOp) {
        for i in 0..self.flows.len() {
            let f = &mut self.flows[i];
            if deadline.is_some_and(|d| now >= d) {
                f.finishing = true;
            }
            if f.done || now.duration_since(f.sent) < self.args.timeout {
                continue;
            }
            self.tally.timeouts += 1;
            if f.finishing {
                f.done = true;
            } else {
                retry(self, i);
            }
        }
    }
}

/// What a flow does next: a function of the driver and the flow's index.
type NextOp = fn(&mut Driver<'_>, usize);

fn next_session(d: &mut Driver<'_>, i: usize) {
    d.rotate_target(i);
    d.start_session(i);
}

fn next_command(d: &mut Driver<'_>, i: usize) {
    d.start_command(i);
}

/// A lost handshake datagram during login starts the login over.
fn retry_session(d: &mut Driver<'_>, i: usize) {
    d.start_session(i);
}

/// A lost Close Session is not worth a retry: the server reaps the session.
fn give_up(d: &mut Driver<'_>, i: usize) {
    d.flows[i].done = true;
}

fn close_flow(d: &mut Driver<'_>, i: usize) {
    let f = &mut d.flows[i];
    f.finishing = true;
    let datagram = f.close_request();
    f.sent = Instant::now();
    send(&d.socket, &datagram, f.target);
}

/// One client thread: flows `thread`, `thread + threads`, ... on one
/// socket. The barriers bracket the measured phase.
fn client(args: &Args, thread: usize, start: &Barrier, stop: &Barrier) -> Tally {
    let bind: IpAddr = match args.targets[0] {
        SocketAddr::V4(_) => "127.0.0.1".parse().expect("loopback"),
        SocketAddr::V6(_) => "::1".parse().expect("loopback"),
    };
    let socket = UdpSocket::bind((bind, 0)).expect("bind the client socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(5)))
        .expect("read timeout");
    let now = Instant::now();
    let flows = (thread..args.concurrency)
        .step_by(args.threads)
        .map(|index| Flow {
            index,
            target: args.targets[index % args.targets.len()],
            console: Console::new(suite(args.suite), args.user, args.password),
            generation: 0,
            step: Step::OpenSession,
            rq_seq: 0,
            op_start: now,
            sent: now,
            finishing: false,
            done: false,
        })
        .collect();
    let mut d = Driver {
        args,
        socket,
        flows,
        by_sidm: HashMap::new(),
        next_target: thread,
        tally: Tally::default(),
    };
    if args.mode == Mode::Commands {
        // Log every flow in, untimed: the handshake of each runs to its
        // Get Chassis Status, which completes the "operation".
        for i in 0..d.flows.len() {
            d.start_session(i);
        }
        d.run(false, None, give_up, retry_session);
    }
    start.wait();
    let deadline = Instant::now() + args.duration;
    for f in &mut d.flows {
        f.done = false;
        f.finishing = false;
    }
    match args.mode {
        Mode::Sessions => {
            for i in 0..d.flows.len() {
                next_session(&mut d, i);
            }
            d.run(true, Some(deadline), next_session, next_session);
        }
        Mode::Commands => {
            for i in 0..d.flows.len() {
                next_command(&mut d, i);
            }
            d.run(true, Some(deadline), next_command, next_command);
        }
    }
    stop.wait();
    if args.mode == Mode::Commands {
        for f in &mut d.flows {
            f.done = false;
        }
        for i in 0..d.flows.len() {
            close_flow(&mut d, i);
        }
        d.run(false, None, give_up, give_up);
    }
    d.tally
}

fn percentile(sorted: &[u32], p: usize) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn main() {
    // A failed check in one client thread would leave the others waiting
    // at a barrier: report it and stop the whole run instead.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::exit(1);
    }));
    let args = parse_args();
    let pid = args.pid.map(|p| p.to_string());
    let start = Barrier::new(args.threads + 1);
    let stop = Barrier::new(args.threads + 1);
    let (tallies, began, server, client_cpu) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.threads)
            .map(|t| {
                let (args, start, stop) = (&args, &start, &stop);
                s.spawn(move || client(args, t, start, stop))
            })
            .collect();
        start.wait();
        let began = Instant::now();
        let server0 = pid.as_deref().and_then(process_cpu_us);
        let client0 = process_cpu_us("self");
        stop.wait();
        let server1 = pid.as_deref().and_then(process_cpu_us);
        let client1 = process_cpu_us("self");
        let tallies: Vec<Tally> = handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect();
        let delta = |a: Option<u64>, b: Option<u64>| a.zip(b).map(|(a, b)| b.saturating_sub(a));
        (
            tallies,
            began,
            delta(server0, server1),
            delta(client0, client1),
        )
    });
    let ops: u64 = tallies.iter().map(|t| t.ops).sum();
    let timeouts: u64 = tallies.iter().map(|t| t.timeouts).sum();
    let strays: u64 = tallies.iter().map(|t| t.strays).sum();
    let busy: u64 = tallies.iter().map(|t| t.busy).sum();
    let end = tallies.iter().filter_map(|t| t.end).max().unwrap_or(began);
    let elapsed = end.duration_since(began).as_secs_f64().max(1e-9);
    let mut lat: Vec<u32> = tallies.into_iter().flat_map(|t| t.latencies_us).collect();
    lat.sort_unstable();
    let per_op = |us: f64| if ops == 0 { 0.0 } else { us / ops as f64 };
    let mode = match args.mode {
        Mode::Sessions => "sessions",
        Mode::Commands => "commands",
    };
    println!(
        "{mode}: {ops} in {elapsed:.2} s = {:.0}/s over {} nodes, suite {}, {} in flight, \
         {} client threads",
        ops as f64 / elapsed,
        args.targets.len(),
        args.suite,
        args.concurrency,
        args.threads
    );
    println!(
        "latency: p50 {} us, p99 {} us; timeouts {timeouts}, stray replies {strays}, \
         busy {busy}",
        percentile(&lat, 50),
        percentile(&lat, 99)
    );
    let mut result = format!(
        "RESULT mode={mode} suite={} nodes={} concurrency={} threads={} ops={ops} \
         seconds={elapsed:.3} ops_per_s={:.0} p50_us={} p99_us={} timeouts={timeouts} strays={strays} busy={busy}",
        args.suite,
        args.targets.len(),
        args.concurrency,
        args.threads,
        ops as f64 / elapsed,
        percentile(&lat, 50),
        percentile(&lat, 99)
    );
    let op = &mode[..mode.len() - 1];
    if let Some(us) = server {
        println!(
            "server CPU: {:.1} us per {op}, {:.0}% of a core",
            per_op(us as f64),
            us as f64 / 1e4 / elapsed
        );
        result += &format!(" server_us_per_op={:.2}", per_op(us as f64));
    }
    if let Some(us) = client_cpu {
        println!(
            "client CPU: {:.1} us per {op}, {:.0}% of a core",
            per_op(us as f64),
            us as f64 / 1e4 / elapsed
        );
        result += &format!(" client_us_per_op={:.2}", per_op(us as f64));
    }
    println!("{result}");
}
