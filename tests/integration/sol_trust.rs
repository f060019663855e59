//! Serial over LAN under the cloud's trust: `ipmitool sol activate` to a
//! server whose console is `wss://` (the simulator's serial console proxy
//! over TLS, with a certificate signed by a CA the test makes) verified
//! with the cloud's `cacert`, as the Nova API is; the same refused, with
//! the reason logged, when `cacert` does not sign the proxy's certificate;
//! and a plain `ws://` console refused, naming the key, unless
//! `backend.allow_plain_console` is set.

use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::cloud::{self, Sim};
use crate::common::*;
use crate::sol::Terminal;

/// A test CA, the console proxy's certificate it signs (for one address),
/// and another CA that signs nothing here; PEM files.
struct Pki {
    /// Holds the files.
    _dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn ca_params(name: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params
}

impl Pki {
    /// A CA, and a certificate it signs for `ip`.
    fn for_address(ip: Ipv4Addr) -> Pki {
        let dir = tempfile::tempdir().expect("dir");
        let ca = ca_params("novabmc test CA");
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = rcgen::Issuer::new(ca, ca_key);

        let mut leaf = rcgen::CertificateParams::new(vec![ip.to_string()]).expect("params");
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "serial console proxy");
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("certificate");

        let other = ca_params("another test CA");
        let other_key = rcgen::KeyPair::generate().expect("key");
        let other_cert = other.self_signed(&other_key).expect("other CA");

        let ca = write_file(dir.path(), "ca.pem", &ca_cert.pem());
        let other_ca = write_file(dir.path(), "other-ca.pem", &other_cert.pem());
        let cert = write_file(dir.path(), "proxy.pem", &leaf_cert.pem());
        let key = write_file(dir.path(), "proxy.key", &leaf_key.serialize_pem());
        Pki {
            _dir: dir,
            ca,
            other_ca,
            cert,
            key,
        }
    }
}

/// A simulator on `ip` whose serial consoles are `wss://`, with `pki`'s
/// certificate.
fn tls_sim(ip: Ipv4Addr, pki: &Pki) -> Sim {
    let sim = Sim::start_on(
        ip,
        &[
            OsStr::new("--console-cert"),
            pki.cert.as_os_str(),
            OsStr::new("--console-key"),
            pki.key.as_os_str(),
        ],
    );
    assert!(
        sim.log().contains("consoles=wss://"),
        "the console proxy serves TLS: {}",
        sim.log()
    );
    sim
}

/// The daemon serving one node on server `server` with `backend`.
fn daemon(backend: &str, server: &str) -> (Daemon, SocketAddr) {
    let (toml, nodes) = cloud::config(backend, unique_loopback(), &[("node-0", server)], "");
    let daemon = Daemon::start_with(&toml, nodes);
    let node = daemon.nodes[0];
    eventually("server resolved", || {
        ipmitool(node, ADMIN, &["-R", "1", "-N", "1", "power", "status"]).code == Some(0)
    });
    (daemon, node)
}

/// The server's open console websockets and what was typed on them.
fn console(sim: &Sim, server: &str) -> (u64, String) {
    let v: Value = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
        .get(format!("{}/_sim/servers/{server}/console", sim.base))
        .send()
        .expect("console state")
        .json()
        .expect("json");
    (
        v["connections"].as_u64().unwrap_or_default(),
        v["typed"].as_str().unwrap_or_default().to_string(),
    )
}

/// Logs in on the SOL console and gets a line echoed.
fn log_in_and_echo(t: &mut Terminal, name: &str) {
    t.wait_for(&format!("{name} login: "));
    t.type_text("root\r");
    t.wait_for(&format!("{name}:~$ "));
    t.type_text("over the console\r");
    t.wait_for("echo: over the console");
}

/// The cloud's `cacert` is the CA that signs the proxy's certificate: SOL
/// reaches the `wss://` console, keystrokes arrive and output comes back,
/// with plain consoles not allowed.
#[test]
fn sol_reaches_a_wss_console_verified_with_the_clouds_cacert() {
    let ip = unique_loopback();
    let pki = Pki::for_address(ip);
    let sim = tls_sim(ip, &pki);
    let server = sim.add_server("sol-wss", true);
    let (daemon, node) = daemon(&sim.backend_toml_trusting(Some(&pki.ca), None), "sol-wss");

    let mut t = Terminal::sol(node, ADMIN);
    t.wait_for("[SOL Session operational.");
    log_in_and_echo(&mut t, "sol-wss");
    eventually("one console websocket", || console(&sim, &server).0 == 1);
    assert!(
        console(&sim, &server)
            .1
            .contains("root\rover the console\r"),
        "typed on the wss console"
    );
    assert!(!t.output().contains("read-only"), "{}", t.output());
    t.type_text("~.");
    assert_eq!(t.wait_exit(), Some(0), "{}", t.output());
    eventually("the websocket closed with SOL", || {
        console(&sim, &server).0 == 0
    });
    assert!(
        daemon.log_lines(&["serial console refused"]).is_empty(),
        "{}",
        daemon.log()
    );
}

/// A `cacert` that does not sign the proxy's certificate: the console is
/// refused, the reason logged as an error naming the node and the scheme,
/// and SOL shows the console log read-only, saying why; nothing typed
/// reaches the console.
#[test]
fn a_wss_console_the_cacert_does_not_sign_is_refused_with_the_reason() {
    let ip = unique_loopback();
    let pki = Pki::for_address(ip);
    let sim = tls_sim(ip, &pki);
    let server = sim.add_server("sol-untrusted", true);
    let (daemon, node) = daemon(
        &sim.backend_toml_trusting(Some(&pki.other_ca), None),
        "sol-untrusted",
    );

    let mut t = Terminal::sol(node, ADMIN);
    t.wait_for("[novabmc: the serial console was refused: TLS with the console failed");
    t.wait_for("read-only");
    t.wait_for("Linux version");
    t.type_text("root\r");
    let refused = daemon.log_lines(&[
        "ERROR",
        "serial console refused",
        "node=node-0",
        "scheme=wss",
        "certificate",
    ]);
    assert_eq!(refused.len(), 1, "{}", daemon.log());
    assert!(
        !refused[0].contains("token="),
        "the console token stays out of the log: {}",
        refused[0]
    );
    assert_eq!(console(&sim, &server), (0, String::new()), "never opened");
    t.type_text("~.");
    assert_eq!(t.wait_exit(), Some(0), "{}", t.output());
}

/// A plain `ws://` console: refused, the log naming the node, the scheme
/// and `backend.allow_plain_console`, unless that key is set; with it,
/// SOL reaches the console.
#[test]
fn a_plain_ws_console_needs_allow_plain_console() {
    let sim = Sim::start();
    let server = sim.add_server("sol-plain", true);

    let (refusing, node) = daemon(&sim.backend_toml_trusting(None, None), "sol-plain");
    let mut t = Terminal::sol(node, ADMIN);
    t.wait_for("[novabmc: the serial console was refused: a plain ws:// console");
    t.wait_for("read-only");
    let refused = refusing.log_lines(&[
        "ERROR",
        "serial console refused",
        "node=node-0",
        "scheme=ws ",
        "backend.allow_plain_console",
    ]);
    assert_eq!(refused.len(), 1, "{}", refusing.log());
    assert_eq!(console(&sim, &server).0, 0, "never opened");
    t.type_text("~.");
    assert_eq!(t.wait_exit(), Some(0), "{}", t.output());
    drop(refusing);

    let (allowing, node) = daemon(&sim.backend_toml_trusting(None, Some(true)), "sol-plain");
    let mut t = Terminal::sol(node, ADMIN);
    log_in_and_echo(&mut t, "sol-plain");
    eventually("one console websocket", || console(&sim, &server).0 == 1);
    t.type_text("~.");
    assert_eq!(t.wait_exit(), Some(0), "{}", t.output());
    assert!(
        allowing.log_lines(&["serial console refused"]).is_empty(),
        "{}",
        allowing.log()
    );
}
