//! Shared harness of the integration tests: the real `novabmc` binary on
//! real UDP sockets, the real client tools, and a logging UDP relay.
//!
//! Each daemon gets its own loopback address (all of 127/8 is local on
//! Linux), so tests run in parallel without port clashes. A missing client
//! tool is a loud failure naming the command that installs it.

#![allow(dead_code)]

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The users every test daemon has.
pub const ADMIN: (&str, &str) = ("admin", "password");
/// An operator-level user.
pub const OPERATOR: (&str, &str) = ("operator", "op-secret");
/// A user-level user.
pub const USER: (&str, &str) = ("viewer", "view-secret");

/// Fails the test loudly if `tool` is not installed.
pub fn require_tool(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed; run contrib/test.sh, which installs ipmitool, \
         freeipmi-tools and iproute2 before running the suite"
    );
}

/// A loopback address no other test uses.
pub fn unique_loopback() -> Ipv4Addr {
    static COUNTER: AtomicU32 = AtomicU32::new(1);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    // 127.a.b.c: a from the process, b.c from a counter; a and c are never
    // 0, so addresses the host may use (127.0.0.x) are avoided.
    Ipv4Addr::new(
        127,
        1 + (pid % 250) as u8,
        (n / 250 % 256) as u8,
        1 + (n % 250) as u8,
    )
}

/// A loopback /28 no other test uses, for discovery's address pools: its
/// CIDR text and its network address. The third byte is 200 or more,
/// which [`unique_loopback`]'s counter never reaches.
pub fn unique_pool() -> (String, Ipv4Addr) {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let net = Ipv4Addr::new(
        127,
        1 + (pid % 250) as u8,
        200 + (n / 16 % 50) as u8,
        (n % 16 * 16) as u8,
    );
    (format!("{net}/28"), net)
}

/// Options for a test daemon.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Number of nodes.
    pub nodes: u16,
    /// Address all nodes listen on.
    pub address: Ipv4Addr,
    /// Port of the first node.
    pub base_port: u16,
    /// Extra TOML appended to the `[bmc]` table.
    pub bmc: String,
    /// Extra TOML appended to the `[backend]` table.
    pub backend: String,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            nodes: 1,
            address: unique_loopback(),
            base_port: 6230,
            bmc: String::new(),
            backend: "power_on_ms = 300\npower_off_ms = 200\n".into(),
        }
    }
}

impl Setup {
    /// The configuration file text.
    pub fn toml(&self) -> String {
        let mut t = format!("[bmc]\n{}\n", self.bmc);
        for (name, pw, privilege) in [
            (ADMIN.0, ADMIN.1, "administrator"),
            (OPERATOR.0, OPERATOR.1, "operator"),
            (USER.0, USER.1, "user"),
        ] {
            t.push_str(&format!(
                "[users.{name}]\npassword = \"{pw}\"\nprivilege = \"{privilege}\"\n"
            ));
        }
        t.push_str(&format!(
            "[backend]\ntype = \"simulated\"\n{}\n",
            self.backend
        ));
        for i in 0..self.nodes {
            t.push_str(&format!(
                "[nodes.node-{i}]\naddress = \"{}\"\nport = {}\n",
                self.address,
                self.base_port + i
            ));
        }
        t
    }
}

/// A running `novabmc serve`, stopped with SIGTERM when dropped.
pub struct Daemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Node addresses in node order.
    pub nodes: Vec<SocketAddr>,
}

impl Daemon {
    /// Starts the daemon and waits until every node answers an RMCP ping.
    pub fn start(setup: &Setup) -> Daemon {
        let nodes = (0..setup.nodes)
            .map(|i| SocketAddr::from((setup.address, setup.base_port + i)))
            .collect();
        Self::start_with(&setup.toml(), nodes)
    }

    /// Starts the daemon on a configuration written by the caller, whose
    /// nodes listen on `nodes`.
    pub fn start_with(toml: &str, nodes: Vec<SocketAddr>) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, toml, nodes)
    }

    /// Like [`Daemon::start_with`], in an existing directory (kept across a
    /// restart).
    pub fn start_in(dir: tempfile::TempDir, toml: &str, nodes: Vec<SocketAddr>) -> Daemon {
        let config = dir.path().join("novabmc.toml");
        std::fs::write(&config, toml).expect("write config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("daemon.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_novabmc"))
            .args(["--log", "debug", "serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start novabmc");
        let mut d = Daemon {
            child: Some(child),
            dir,
            nodes,
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in self.nodes.clone() {
            loop {
                if ping(node, Duration::from_millis(100)) {
                    break;
                }
                if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                    panic!("novabmc exited with {status}:\n{}", self.log());
                }
                assert!(
                    Instant::now() < deadline,
                    "node {node} never answered:\n{}",
                    self.log()
                );
            }
        }
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Log lines containing every one of `needles`.
    pub fn log_lines(&self, needles: &[&str]) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_string)
            .collect()
    }

    /// The daemon's process ID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The daemon's resident memory (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("daemon's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS line")
    }

    /// The directory holding the config and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the daemon and hands back its directory, for a restart.
    pub fn into_dir(mut self) -> tempfile::TempDir {
        self.stop();
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }

    /// Kills the daemon with SIGKILL (as a crash or the OOM killer would)
    /// and hands back its directory, for a restart.
    pub fn kill_into_dir(mut self) -> tempfile::TempDir {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }

    /// Stops the daemon with SIGTERM and returns its exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        stop_child(self.child.take()?)
    }
}

/// Stops a child with SIGTERM, waits up to 10 s for it to exit, then kills
/// it: the one way every harness here stops what it started.
pub fn stop_child(mut child: Child) -> Option<std::process::ExitStatus> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child.wait().ok();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A process a test started, stopped (SIGTERM, then SIGKILL) when dropped,
/// so a panicking test leaves nothing running.
pub struct Spawned(Option<Child>);

impl Spawned {
    /// Guards `child`.
    pub fn new(child: Child) -> Spawned {
        Spawned(Some(child))
    }

    /// The process ID.
    pub fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// Stops it now, as on drop.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        stop_child(self.0.take()?)
    }

    /// Sends `signal` (a `kill` name, like `INT`) and collects the output
    /// once it exits (within 20 s, or it is killed).
    pub fn signal_and_wait(mut self, signal: &str) -> std::process::Output {
        let child = self.0.take().expect("running");
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status();
        let id = child.id();
        let watchdog = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(20));
            let _ = Command::new("kill")
                .args(["-KILL", &id.to_string()])
                .status();
        });
        let out = child.wait_with_output().expect("wait");
        drop(watchdog);
        out
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends an RMCP presence ping and waits for the pong.
pub fn ping(node: SocketAddr, timeout: Duration) -> bool {
    let local: SocketAddr = if node.is_ipv6() {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    } else {
        (Ipv4Addr::LOCALHOST, 0).into()
    };
    let Ok(s) = UdpSocket::bind(local) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let ping = [
        0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x80, 0x42, 0x00, 0x00,
    ];
    if s.send_to(&ping, node).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(s.recv_from(&mut buf), Ok((n, from)) if from == node && n >= 12 && buf[8] == 0x40)
}

/// What a tool run produced.
#[derive(Debug)]
pub struct Out {
    /// Exit code (None if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl Out {
    /// Runs `cmd` to completion with stdin closed, capturing its output and
    /// wall time; `what` names it if it cannot be started at all.
    pub fn collect(cmd: &mut Command, what: &str) -> Out {
        let start = Instant::now();
        let output = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        Out {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed: start.elapsed(),
        }
    }

    /// Asserts exit status 0 and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "command failed: {self:#?}");
        &self.stdout
    }

    /// Asserts a failure exit status.
    pub fn failed(&self) -> &Self {
        assert_ne!(
            self.code,
            Some(0),
            "command unexpectedly succeeded: {self:#?}"
        );
        self
    }

    /// stdout and stderr together.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `program args` with a 60 s limit.
pub fn run(program: &str, args: &[&str]) -> Out {
    require_tool(program);
    Out::collect(
        Command::new("timeout").arg("60").arg(program).args(args),
        "run tool",
    )
}

/// `ipmitool -I lanplus -H host -p port -U user -P pass <args>`.
pub fn ipmitool(node: SocketAddr, user: (&str, &str), args: &[&str]) -> Out {
    let host = node.ip().to_string();
    let port = node.port().to_string();
    let mut all = vec![
        "-I", "lanplus", "-H", &host, "-p", &port, "-U", user.0, "-P", user.1,
    ];
    all.extend_from_slice(args);
    run("ipmitool", &all)
}

/// FreeIPMI's `host:port` form.
pub fn hostport(node: SocketAddr) -> String {
    format!("{}:{}", node.ip(), node.port())
}

/// `ipmipower -D LAN_2_0 -h host:port -u user -p pass <args>`.
pub fn ipmipower(node: SocketAddr, user: (&str, &str), args: &[&str]) -> Out {
    let h = hostport(node);
    let mut all = vec!["-D", "LAN_2_0", "-h", &h, "-u", user.0, "-p", user.1];
    all.extend_from_slice(args);
    run("ipmipower", &all)
}

/// How long [`eventually`] waits, and how often it looks.
pub const EVENTUALLY: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// Polls `f` until it returns true, failing the test after [`EVENTUALLY`].
pub fn eventually(what: &str, f: impl FnMut() -> bool) {
    eventually_within(what, EVENTUALLY, f);
}

/// [`eventually`] for what takes longer by design (a Nova answering
/// every call after ten seconds).
pub fn eventually_within(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}

/// [`eventually`] for async tests: polls without blocking the runtime.
pub async fn eventually_async(what: &str, f: impl FnMut() -> bool) {
    eventually_async_within(what, EVENTUALLY, f).await;
}

/// [`eventually_async`] for what takes longer than [`EVENTUALLY`] by
/// design (a Nova answering every call after ten seconds).
pub async fn eventually_async_within(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

// ----- the command lines of Ironic and MAAS ---------------------------------

/// What Ironic's ipmitool driver runs (`_get_ipmitool_args` and
/// `_exec_ipmitool`): privilege ADMINISTRATOR, one try with a 5 s timeout,
/// the password in a file, no `-C`.
pub fn ironic_ipmitool(node: SocketAddr, password_file: &Path, sub: &[&str]) -> Out {
    let (host, port) = (node.ip().to_string(), node.port().to_string());
    let pw = password_file.to_string_lossy().into_owned();
    let mut args = vec![
        "-I",
        "lanplus",
        "-H",
        &host,
        "-L",
        "ADMINISTRATOR",
        "-p",
        &port,
        "-U",
        ADMIN.0,
        "-R",
        "1",
        "-N",
        "5",
        "-f",
        &pw,
    ];
    args.extend_from_slice(sub);
    run("ipmitool", &args)
}

/// Runs a FreeIPMI `tool` with MAAS's common arguments (`-W opensesspriv
/// --driver-type LAN_2_0 -h host:port -u user -p pass -I 3 -l OPERATOR`),
/// then `extra`.
pub fn maas(tool: &str, node: SocketAddr, user: (&str, &str), extra: &[&str]) -> Out {
    let h = hostport(node);
    let mut all = vec![
        "-W",
        "opensesspriv",
        "--driver-type",
        "LAN_2_0",
        "-h",
        &h,
        "-u",
        user.0,
        "-p",
        user.1,
        "-I",
        "3",
        "-l",
        "OPERATOR",
    ];
    all.extend_from_slice(extra);
    run(tool, &all)
}

/// MAAS's boot-flags file for `ipmi-chassis-config --commit`: one-time
/// PXE, with `BIOS_Boot_Type` when given.
pub fn maas_boot_file(dir: &Path, boot_type: Option<&str>) -> PathBuf {
    let mut text = String::from("Section Chassis_Boot_Flags\n        Boot_Flags_Persistent No\n");
    if let Some(t) = boot_type {
        text.push_str(&format!("        BIOS_Boot_Type {t}\n"));
    }
    text.push_str("        Boot_Device PXE\nEndSection\n");
    write_file(dir, "maas-boot.conf", &text)
}

/// Direction of a relayed datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Console to BMC.
    ToBmc,
    /// BMC to console.
    ToConsole,
}

/// The datagrams a relay saw, in order.
pub type RelayLog = Arc<Mutex<Vec<(Dir, Vec<u8>)>>>;

/// Decides whether the relay drops a BMC-to-console datagram.
pub type DropRule = Box<dyn FnMut(&[u8]) -> bool + Send>;

/// A UDP relay between one console and one node that records every
/// datagram and can drop replies.
pub struct Relay {
    /// Where consoles should send.
    pub addr: SocketAddr,
    /// Everything relayed, in order.
    pub log: RelayLog,
    /// The relay's socket toward the node: the console's address as the
    /// node sees it.
    back: UdpSocket,
    target: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// Relays to `target`; `drop_reply` may discard replies.
    pub fn start(target: SocketAddr, mut drop_reply: DropRule) -> Relay {
        let front = UdpSocket::bind((unique_loopback(), 0)).expect("relay front");
        let back = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("relay back");
        front
            .set_read_timeout(Some(Duration::from_millis(5)))
            .expect("timeout");
        back.set_read_timeout(Some(Duration::from_millis(5)))
            .expect("timeout");
        let addr = front.local_addr().expect("addr");
        let back_handle = back.try_clone().expect("clone relay socket");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2) = (log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut console: Option<SocketAddr> = None;
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                if let Ok((n, from)) = front.recv_from(&mut buf) {
                    console = Some(from);
                    log2.lock()
                        .expect("log")
                        .push((Dir::ToBmc, buf[..n].to_vec()));
                    let _ = back.send_to(&buf[..n], target);
                }
                if let Ok((n, _)) = back.recv_from(&mut buf) {
                    log2.lock()
                        .expect("log")
                        .push((Dir::ToConsole, buf[..n].to_vec()));
                    if let Some(c) = console
                        && !drop_reply(&buf[..n])
                    {
                        let _ = front.send_to(&buf[..n], c);
                    }
                }
            }
        });
        Relay {
            addr,
            log,
            back: back_handle,
            target,
            stop,
            thread: Some(thread),
        }
    }

    /// Sends `datagram` to the node from the relay's own socket, so it
    /// arrives from the address and port the console's session uses.
    /// Replies are relayed to the console like any other.
    pub fn send_to_bmc(&self, datagram: &[u8]) {
        self.back.send_to(datagram, self.target).expect("send");
    }

    /// The datagrams seen so far.
    pub fn datagrams(&self) -> Vec<(Dir, Vec<u8>)> {
        self.log.lock().expect("log").clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes `text` to a file in `dir` and returns its path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).expect("create");
    f.write_all(text.as_bytes()).expect("write");
    p
}

/// A running `ipmitool ... shell`: one session kept open across commands.
pub struct Shell {
    child: Child,
    stdin: std::process::ChildStdin,
    output: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Shell {
    /// Starts `ipmitool -I lanplus -H host -p port -U user -P pass <args> shell`.
    pub fn start(node: SocketAddr, user: (&str, &str), args: &[&str]) -> Shell {
        require_tool("ipmitool");
        let mut child = Command::new("ipmitool")
            .args(["-I", "lanplus", "-H", &node.ip().to_string()])
            .args(["-p", &node.port().to_string(), "-U", user.0, "-P", user.1])
            .args(args)
            .arg("shell")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ipmitool shell");
        let stdin = child.stdin.take().expect("stdin");
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            readers.push(std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 1024];
                while let Ok(n) = std::io::Read::read(&mut stream, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    output
                        .lock()
                        .expect("output")
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }));
        }
        let reader = std::thread::spawn(move || {
            for r in readers {
                let _ = r.join();
            }
        });
        Shell {
            child,
            stdin,
            output,
            reader: Some(reader),
        }
    }

    /// Runs `command` and waits until its output contains `expect`;
    /// returns everything printed since the command was sent.
    pub fn run(&mut self, command: &str, expect: &str) -> String {
        let start = self.output.lock().expect("output").len();
        writeln!(self.stdin, "{command}").expect("write to the shell");
        self.stdin.flush().expect("flush");
        let mut seen = String::new();
        eventually(&format!("`{command}` to print {expect:?}"), || {
            seen = self.output.lock().expect("output")[start..].to_string();
            seen.contains(expect)
        });
        seen
    }

    /// Everything the shell has printed.
    pub fn output(&self) -> String {
        self.output.lock().expect("output").clone()
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "exit");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}
