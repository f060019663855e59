//! Serial over LAN end to end: the real ipmitool (in a pseudo-terminal, as
//! an operator runs it), Ironic's socat console line and FreeIPMI's
//! ipmiconsole against the daemon, the daemon against the Nova simulator's
//! serial console websocket and console log.
//!
//! The pseudo-terminal is util-linux `script`, which gives the client a
//! real terminal (ipmitool and ipmiconsole put it in raw mode) while the
//! test talks to it through pipes.

use crate::cloud;
use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloud::Sim;
use common::*;
use serde_json::{Value, json};

/// A client running in a pseudo-terminal; stopped when dropped.
pub(crate) struct Terminal {
    child: Option<Child>,
    stdin: std::process::ChildStdin,
    output: Arc<Mutex<Vec<u8>>>,
    what: String,
}

impl Terminal {
    /// Runs the shell command line `command` in a pseudo-terminal.
    pub(crate) fn start(command: &str) -> Terminal {
        require_tool("script");
        let mut child = Command::new("script")
            .args(["-q", "-f", "-e", "-c", command, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start script");
        let stdin = child.stdin.take().expect("stdin");
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    output.lock().expect("output").extend_from_slice(&buf[..n]);
                }
            });
        }
        Terminal {
            child: Some(child),
            stdin,
            output,
            what: command.to_string(),
        }
    }

    /// `ipmitool ... sol activate` on `node`.
    pub(crate) fn sol(node: SocketAddr, user: (&str, &str)) -> Terminal {
        require_tool("ipmitool");
        Terminal::start(&format!(
            "ipmitool -I lanplus -H {} -p {} -U {} -P {} sol activate",
            node.ip(),
            node.port(),
            user.0,
            user.1
        ))
    }

    pub(crate) fn type_text(&mut self, text: &str) {
        self.stdin.write_all(text.as_bytes()).expect("type");
        self.stdin.flush().expect("flush");
    }

    pub(crate) fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().expect("output")).into_owned()
    }

    /// Waits until the output contains `text`.
    pub(crate) fn wait_for(&self, text: &str) {
        let mut seen = String::new();
        eventually_within(
            &format!("{:?} in the output of {}", text, self.what),
            Duration::from_secs(30),
            || {
                seen = self.output();
                seen.contains(text)
            },
        );
    }

    /// Waits for the client to exit; returns its exit code.
    pub(crate) fn wait_exit(&mut self) -> Option<i32> {
        let mut code = None;
        let child = self.child.as_mut().expect("running");
        eventually(&format!("{} to exit", self.what), || {
            match child.try_wait() {
                Ok(Some(s)) => {
                    code = s.code();
                    true
                }
                _ => false,
            }
        });
        self.child = None;
        code
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            stop_child(c);
        }
    }
}

/// The simulator, one server, and the daemon serving it.
struct Bench {
    sim: Sim,
    server: String,
    daemon: Daemon,
    http: reqwest::blocking::Client,
}

impl Bench {
    fn start(name: &str) -> Bench {
        let sim = Sim::start();
        let server = sim.add_server(name, true);
        let (toml, nodes) = cloud::config(
            &sim.backend_toml("rebuild"),
            unique_loopback(),
            &[("node-0", name)],
            "",
        );
        let daemon = Daemon::start_with(&toml, nodes);
        let node = daemon.nodes[0];
        eventually("server resolved", || {
            ipmitool(node, ADMIN, &["-R", "1", "-N", "1", "power", "status"]).code == Some(0)
        });
        Bench {
            sim,
            server,
            daemon,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        }
    }

    fn node(&self) -> SocketAddr {
        self.daemon.nodes[0]
    }

    /// The server's console websockets and everything typed on them.
    fn console(&self) -> (u64, String) {
        let v: Value = self
            .http
            .get(format!(
                "{}/_sim/servers/{}/console",
                self.sim.base, self.server
            ))
            .send()
            .expect("console state")
            .json()
            .expect("json");
        (
            v["connections"].as_u64().unwrap_or_default(),
            v["typed"].as_str().unwrap_or_default().to_string(),
        )
    }

    fn post(&self, what: &str, body: Value) {
        let r = self
            .http
            .post(format!(
                "{}/_sim/servers/{}/{what}",
                self.sim.base, self.server
            ))
            .json(&body)
            .send()
            .expect("control request");
        assert!(r.status().is_success(), "POST {what}: {}", r.status());
    }

    /// Remote-console requests the simulator answered with `status`.
    fn console_requests(&self, status: u64) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| {
                r["path"]
                    .as_str()
                    .unwrap_or_default()
                    .ends_with("/remote-consoles")
                    && r["status"].as_u64() == Some(status)
            })
            .count()
    }
}

/// `sol activate` shows the server's login prompt, a typed line comes
/// back, and `~.` leaves cleanly, closing the serial console.
#[test]
fn activate_shows_the_prompt_echoes_and_leaves_cleanly() {
    let b = Bench::start("sol-echo");
    let mut t = Terminal::sol(b.node(), ADMIN);
    t.wait_for("[SOL Session operational.");
    t.wait_for("sol-echo login: ");
    t.type_text("root\r");
    t.wait_for("sol-echo:~$ ");
    t.type_text("hello sol\r");
    t.wait_for("echo: hello sol");
    eventually("one console websocket", || b.console().0 == 1);
    t.type_text("~.");
    assert_eq!(t.wait_exit(), Some(0), "{}", t.output());
    eventually("the websocket closed with SOL", || b.console().0 == 0);
    assert!(b.console().1.contains("root\rhello sol\r"));
}

/// One SOL at a time: a second activation is refused as ipmitool
/// explains it; a user without the right cannot deactivate it; the same
/// user can, from another session, and the first then finds it gone.
#[test]
fn one_sol_at_a_time_and_deactivation_from_another_session() {
    let b = Bench::start("sol-busy");
    let mut first = Terminal::sol(b.node(), ADMIN);
    first.wait_for("sol-busy login: ");

    let second = ipmitool(b.node(), ADMIN, &["sol", "activate"]);
    assert_eq!(second.code, Some(1));
    assert!(
        second
            .stderr
            .contains("SOL payload already active on another session"),
        "{}",
        second.all()
    );
    let status = ipmitool(b.node(), ADMIN, &["raw", "0x06", "0x4a", "0x01"]);
    assert_eq!(status.ok().trim(), "01 01 00", "one instance, active");

    let refused = ipmitool(b.node(), OPERATOR, &["sol", "deactivate"]);
    assert_eq!(refused.code, Some(1), "{}", refused.all());
    assert_eq!(b.console().0, 1, "still active");

    ipmitool(b.node(), ADMIN, &["sol", "deactivate"]).ok();
    eventually("the websocket closed", || b.console().0 == 0);
    assert_eq!(
        ipmitool(b.node(), ADMIN, &["raw", "0x06", "0x4a", "0x01"])
            .ok()
            .trim(),
        "01 00 00"
    );
    // ipmitool ignores the "deactivating" status; on leaving, it learns
    // its payload was already taken away.
    first.type_text("\r~.");
    first.wait_for("SOL payload already de-activated");
    first.wait_exit();

    let mut again = Terminal::sol(b.node(), ADMIN);
    again.wait_for("sol-busy login: ");
    again.type_text("~.");
    assert_eq!(again.wait_exit(), Some(0), "{}", again.output());
}

/// `sol set` writes, `sol info` reads back; writes need an administrator.
#[test]
fn sol_info_and_set_round_trip() {
    let b = Bench::start("sol-config");
    let n = b.node();
    let info = ipmitool(n, ADMIN, &["sol", "info"]).ok().to_string();
    assert!(
        info.contains("Enabled                         : true"),
        "{info}"
    );
    assert!(
        info.contains("Retry Count                     : 7"),
        "{info}"
    );
    assert!(
        info.contains(&format!("Payload Port                    : {}", n.port())),
        "{info}"
    );

    ipmitool(n, ADMIN, &["sol", "set", "retry-count", "5"]).ok();
    ipmitool(n, ADMIN, &["sol", "set", "retry-interval", "20"]).ok();
    ipmitool(n, ADMIN, &["sol", "set", "non-volatile-bit-rate", "115.2"]).ok();
    ipmitool(n, ADMIN, &["sol", "set", "character-accumulate-level", "4"]).ok();
    let info = ipmitool(n, ADMIN, &["sol", "info"]).ok().to_string();
    assert!(
        info.contains("Retry Count                     : 5"),
        "{info}"
    );
    assert!(
        info.contains("Retry Interval (ms)             : 200"),
        "{info}"
    );
    assert!(
        info.contains("Non-Volatile Bit Rate (kbps)    : 115.2"),
        "{info}"
    );
    assert!(
        info.contains("Character Accumulate Level (ms) : 20"),
        "{info}"
    );
    assert!(
        info.contains("Set in progress                 : set-complete"),
        "{info}"
    );

    let refused = ipmitool(n, OPERATOR, &["sol", "set", "retry-count", "1"]);
    assert_eq!(refused.code, Some(1), "{}", refused.all());
    assert!(
        ipmitool(n, ADMIN, &["sol", "info"])
            .ok()
            .contains("Retry Count                     : 5")
    );

    // SOL disabled: activation is refused as ipmitool explains it.
    ipmitool(n, ADMIN, &["sol", "set", "enabled", "false"]).ok();
    let off = ipmitool(n, ADMIN, &["sol", "activate"]);
    assert!(off.stderr.contains("SOL payload disabled"), "{}", off.all());
}

/// The websocket drops and the cloud refuses a new console for a while:
/// what is typed meanwhile reaches the server once it is back.
#[test]
fn a_dropped_websocket_reconnects_losing_nothing_typed() {
    let b = Bench::start("sol-drop");
    let mut t = Terminal::sol(b.node(), ADMIN);
    t.wait_for("sol-drop login: ");
    t.type_text("root\r");
    t.wait_for("sol-drop:~$ ");

    b.sim.faults(json!({"console_refuse_status": 503}));
    b.post("console/drop", json!({}));
    eventually("the daemon to try again and be refused", || {
        b.console_requests(503) > 0
    });
    assert_eq!(b.console().0, 0, "disconnected");
    t.type_text("typed-while-away\r");
    b.sim.faults(json!({"console_refuse_status": 0}));

    eventually("reconnected", || b.console().0 == 1);
    eventually("what was typed delivered", || {
        b.console().1.ends_with("typed-while-away\r")
    });
    t.wait_for("sol-drop login: typed-while-away");
    t.type_text("still here\r");
    t.wait_for("echo: still here");
    assert!(
        b.daemon.log().contains("serial console lost; reconnecting"),
        "{}",
        b.daemon.log()
    );
    t.type_text("~.");
    assert_eq!(t.wait_exit(), Some(0), "{}", t.output());
}

/// A cloud without serial consoles (501): SOL still activates and shows
/// the console log, new lines only, and says so once.
#[test]
fn without_a_serial_console_the_console_log_is_shown_read_only() {
    let b = Bench::start("sol-log");
    b.sim.faults(json!({"console_refuse_status": 501}));
    let mut t = Terminal::sol(b.node(), ADMIN);
    t.wait_for("read-only");
    t.wait_for("Linux version");
    t.wait_for("sol-log login: ");
    b.post("console", json!({"lines": ["first new line"]}));
    t.wait_for("first new line");
    b.post("console", json!({"lines": ["second new line"]}));
    t.wait_for("second new line");
    let out = t.output();
    assert_eq!(out.matches("Linux version").count(), 1, "{out}");
    assert_eq!(out.matches("first new line").count(), 1, "{out}");
    assert_eq!(out.matches("read-only").count(), 1, "{out}");
    let warned = b.daemon.log_lines(&["no serial console", "read-only"]);
    assert_eq!(warned.len(), 1, "{warned:?}");
    t.type_text("~.");
    assert_eq!(t.wait_exit(), Some(0), "{}", t.output());
}

/// Ironic's `ipmitool-socat` console: `sol deactivate`, then socat
/// listening with `sol activate` behind it; a TCP client reads the login
/// prompt and gets its line echoed; console stop is socat killed and
/// `sol deactivate` again.
#[test]
fn ironic_socat_console() {
    require_tool("socat");
    let b = Bench::start("sol-ironic");
    let n = b.node();
    let dir = tempfile::tempdir().expect("dir");
    let pw = write_file(dir.path(), "node.pw", ADMIN.1);
    let code = ironic_ipmitool(n, &pw, &["sol", "deactivate"]).code;
    assert!(matches!(code, Some(0 | 1)), "Ironic accepts 0 or 1");

    let listen = {
        let l = TcpListener::bind((unique_loopback(), 0)).expect("free port");
        l.local_addr().expect("addr")
    };
    let exec = format!(
        "EXEC:ipmitool -I lanplus -H {} -L ADMINISTRATOR -p {} -U {} -f {} sol activate,pty,stderr",
        n.ip(),
        n.port(),
        ADMIN.0,
        pw.display()
    );
    let socat = Spawned::new(
        Command::new("socat")
            .arg(format!(
                "TCP4-LISTEN:{},bind={},reuseaddr,fork,max-children=1",
                listen.port(),
                listen.ip()
            ))
            .arg(exec)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start socat"),
    );
    let mut stream = None;
    eventually("socat listening", || {
        stream = TcpStream::connect(listen).ok();
        stream.is_some()
    });
    let mut stream = stream.expect("connected");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut seen = Vec::new();
    let mut read_until = |stream: &mut TcpStream, text: &str| {
        eventually(&format!("{text:?} from the socat console"), || {
            let mut buf = [0u8; 1024];
            if let Ok(k) = stream.read(&mut buf) {
                seen.extend_from_slice(&buf[..k]);
            }
            String::from_utf8_lossy(&seen).contains(text)
        });
    };
    read_until(&mut stream, "sol-ironic login: ");
    stream.write_all(b"root\r").expect("type");
    read_until(&mut stream, "sol-ironic:~$ ");
    stream.write_all(b"ironic\r").expect("type");
    read_until(&mut stream, "echo: ironic");
    // Ironic's console stop: socat goes, then `sol deactivate`.
    drop(stream);
    drop(socat);
    let code = ironic_ipmitool(n, &pw, &["sol", "deactivate"]).code;
    assert!(matches!(code, Some(0 | 1)), "Ironic accepts 0 or 1");
    eventually("SOL deactivated", || b.console().0 == 0);
}

/// FreeIPMI's ipmiconsole: the prompt, an echoed line, `&.` to leave.
#[test]
fn ipmiconsole_prompt_and_echo() {
    require_tool("ipmiconsole");
    let b = Bench::start("sol-freeipmi");
    let mut t = Terminal::start(&format!(
        "ipmiconsole -h {} -u {} -p {}",
        hostport(b.node()),
        ADMIN.0,
        ADMIN.1
    ));
    t.wait_for("[SOL established]");
    t.wait_for("sol-freeipmi login: ");
    t.type_text("root\r");
    t.wait_for("sol-freeipmi:~$ ");
    t.type_text("from freeipmi\r");
    t.wait_for("echo: from freeipmi");
    t.type_text("&.");
    t.wait_exit();
    eventually("the websocket closed", || b.console().0 == 0);
}

/// SOL's privilege comes from the file (`bmc.sol_privilege`, operator by
/// default), and what `sol set` writes is kept in the state directory, so
/// a restart keeps it.
#[test]
fn sol_privilege_is_configured_and_sol_set_survives_a_restart() {
    let b = Bench::start("sol-kept");
    let n = b.node();
    let info = ipmitool(n, ADMIN, &["sol", "info"]).ok().to_string();
    assert!(
        info.contains("Privilege Level                 : OPERATOR"),
        "operator by default: {info}"
    );
    ipmitool(n, ADMIN, &["sol", "set", "privilege-level", "admin"]).ok();
    ipmitool(n, ADMIN, &["sol", "set", "retry-count", "5"]).ok();
    let Bench { sim, daemon, .. } = b;
    let toml = std::fs::read_to_string(daemon.dir().join("novabmc.toml")).expect("config");
    let nodes = daemon.nodes.clone();
    let daemon = Daemon::start_in(daemon.into_dir(), &toml, nodes);
    let info = ipmitool(daemon.nodes[0], ADMIN, &["sol", "info"])
        .ok()
        .to_string();
    assert!(
        info.contains("Privilege Level                 : ADMINISTRATOR")
            && info.contains("Retry Count                     : 5"),
        "kept across the restart: {info}"
    );
    drop(sim);

    // The file's setting, for a fresh state directory.
    let sim = Sim::start();
    sim.add_server("sol-file", true);
    let (toml, nodes) = cloud::config(
        &format!(
            "[bmc]\nsol_privilege = \"user\"\n{}",
            sim.backend_toml("rebuild")
        ),
        unique_loopback(),
        &[("node-0", "sol-file")],
        "",
    );
    let daemon = Daemon::start_with(&toml, nodes);
    let info = ipmitool(daemon.nodes[0], ADMIN, &["sol", "info"])
        .ok()
        .to_string();
    assert!(
        info.contains("Privilege Level                 : USER"),
        "{info}"
    );
}
