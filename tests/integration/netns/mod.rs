//! Network namespaces for the routing tests: hosts joined by veth pairs,
//! built with `ip`, with the real `novabmc` and `ipmitool` run inside them
//! through `ip netns exec`.
//!
//! Every name carries the test process's pid and a counter, so runs and
//! parallel tests never meet. A [`Lab`] deletes its namespaces (and with
//! them every interface, rule and route inside) when dropped, which also
//! happens when a test panics; namespaces left by a killed run are swept
//! the next time a lab is built. Nothing here skips: without root or
//! without the tools a test fails saying what is missing.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::common::{self, Out};

/// Prefix of every namespace these tests make.
const PREFIX: &str = "novabmc-t";

/// A set of namespaces, deleted on drop.
pub struct Lab {
    tag: String,
    namespaces: Vec<String>,
}

impl Lab {
    /// A new, empty lab; fails loudly without root, `ip` or `ipmitool`.
    pub fn new() -> Lab {
        require_root();
        common::require_tool("ip");
        common::require_tool("ipmitool");
        common::require_tool("timeout");
        sweep_dead_runs();
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Lab {
            tag: format!("{}x{n}", std::process::id()),
            namespaces: Vec::new(),
        }
    }

    /// Adds a namespace for `role` (`bmc`, `rtr`, `cli`) with loopback up
    /// and IPv6 quiet (no DAD, no router solicitations), so interface
    /// counters count the test's own packets.
    pub fn host(&mut self, role: &str) -> String {
        let ns = format!("{PREFIX}{}-{role}", self.tag);
        ip(&["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        for key in [
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.router_solicitations=0",
            "net.ipv6.conf.default.accept_ra=0",
        ] {
            self.sysctl(&ns, key);
        }
        ns
    }

    /// A unique interface name from `base` (`b1`, `r2`...): the pid-based
    /// tag keeps runs apart and names at most 15 bytes.
    pub fn ifname(&self, base: &str) -> String {
        let name = format!("{base}-{}", self.tag);
        assert!(name.len() <= 15, "interface name {name} is too long");
        name
    }

    /// Joins `a_if` in `a` and `b_if` in `b` with a veth pair, both up.
    pub fn wire(&self, a: &str, a_if: &str, b: &str, b_if: &str) {
        ip(&[
            "-n", a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b,
        ]);
        ip(&["-n", a, "link", "set", a_if, "up"]);
        ip(&["-n", b, "link", "set", b_if, "up"]);
    }

    /// `sysctl -w key=value` inside `ns`, by writing /proc/sys (which shows
    /// the writer's namespace).
    pub fn sysctl(&self, ns: &str, assignment: &str) {
        let (key, value) = assignment.split_once('=').expect("key=value");
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let out = exec(ns, "sh", &["-c", &format!("echo {value} > {path}")]);
        assert_eq!(out.code, Some(0), "sysctl {assignment} in {ns}: {out:#?}");
    }

    /// Packets `ifname` in `ns` has transmitted.
    pub fn tx_packets(&self, ns: &str, ifname: &str) -> u64 {
        let out = exec(
            ns,
            "cat",
            &[&format!("/sys/class/net/{ifname}/statistics/tx_packets")],
        );
        out.stdout
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("tx_packets of {ifname} in {ns}: {out:#?}"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.drain(..).rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", &ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Fails the test unless it runs as root (namespaces, routes and port 623
/// need it; CI runs the suite as root).
pub fn require_root() {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "the routing tests build network namespaces and need root; run the suite \
         as root (CI does), e.g. sudo -E cargo test --test routing"
    );
}

/// Deletes namespaces of earlier runs whose process is gone (a run killed
/// before its guards could act).
fn sweep_dead_runs() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('x').next())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Runs `ip args`, failing the test with its message if it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ip args` output, for state comparisons.
pub fn ip_output(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {} failed", args.join(" "));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `program args` inside `ns` with a 60 s limit.
pub fn exec(ns: &str, program: &str, args: &[&str]) -> Out {
    Out::collect(
        Command::new("ip")
            .args(["netns", "exec", ns, "timeout", "60", program])
            .args(args),
        "run ip netns exec",
    )
}

/// One ipmitool call from `ns`: one try with a one-second timeout, so a
/// reply that never comes fails in about two seconds.
pub fn ipmitool(ns: &str, host: &str, port: u16, args: &[&str]) -> Out {
    let port = port.to_string();
    let mut all = vec![
        "-I",
        "lanplus",
        "-H",
        host,
        "-p",
        &port,
        "-U",
        common::ADMIN.0,
        "-P",
        common::ADMIN.1,
        "-R",
        "1",
        "-N",
        "1",
    ];
    all.extend_from_slice(args);
    exec(ns, "ipmitool", &all)
}

/// The `novabmc` binary run with `args` inside `ns`.
pub fn novabmc(ns: &str, args: &[&str]) -> Out {
    exec(ns, env!("CARGO_BIN_EXE_novabmc"), args)
}

/// A `novabmc serve` inside a namespace, stopped with SIGTERM on drop.
pub struct NsDaemon {
    child: Option<Child>,
    log: PathBuf,
}

impl NsDaemon {
    /// Starts `novabmc serve --config config` in `ns`, logging to `log`;
    /// does not wait (see [`NsDaemon::wait_log`]).
    pub fn start(ns: &str, config: &Path, log: &Path) -> NsDaemon {
        let file = std::fs::File::create(log).expect("log file");
        // `ip netns exec` execs the command, so the child is novabmc itself
        // and SIGTERM reaches it.
        let child = Command::new("ip")
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_novabmc")])
            .args(["--log", "debug", "serve", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start novabmc");
        NsDaemon {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to 20 s for a log line containing every one of `needles`;
    /// fails with the log if the daemon exits or time runs out.
    pub fn wait_log(&mut self, needles: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self
                .log()
                .lines()
                .any(|l| needles.iter().all(|n| l.contains(n)))
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "novabmc exited with {status} before logging {needles:?}:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "novabmc never logged {needles:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the daemon to exit by itself (a failed start) and returns
    /// its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return s.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("novabmc did not exit:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGHUP (reload the configuration).
    pub fn hangup(&self) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -HUP {pid}");
    }

    /// Stops the daemon with SIGTERM and returns its exit code.
    pub fn stop(&mut self) -> Option<i32> {
        common::stop_child(self.child.take()?).and_then(|s| s.code())
    }
}

impl Drop for NsDaemon {
    fn drop(&mut self) {
        self.stop();
    }
}
