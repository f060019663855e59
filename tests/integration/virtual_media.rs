//! Virtual media on the Nova simulator: Ironic's virtual-media deploy
//! through the real `sushy` (eject all, insert the ISO, boot Cd once,
//! power on: one import, one stable rescue, then one unrescue at the next
//! boot from disk; the same URL again reuses the image), the configuration
//! drive on a USB stick and a floppy as Cinder volumes, IPMI's `chassis
//! bootdev cdrom` booting the same media, and the hostile paths: a URL of
//! another scheme, a 404, a server that never answers, an image larger
//! than allowed, a Glance that refuses the import, a Nova that refuses
//! the rescue, a restart between insert and boot and one in the middle of
//! a load.
//!
//! Images are served over HTTP by `tests/redfish_clients/media_server.py`
//! (Python's http.server) on a loopback address of the test's own.

use crate::common::*;
use crate::redfish::{Rig, client, get, send};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// The image server: Python's http.server over a directory of images.
struct MediaServer {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl MediaServer {
    /// Serves `deploy.iso` (256 KiB), `config.img` (64 KiB) and `big.iso`
    /// (3 MiB).
    fn start() -> MediaServer {
        require_tool("python3");
        let dir = tempfile::tempdir().expect("dir");
        write_bytes(dir.path(), "deploy.iso", 256 << 10);
        write_bytes(dir.path(), "config.img", 64 << 10);
        write_bytes(dir.path(), "big.iso", 3 << 20);
        let ip = unique_loopback();
        let mut child = Command::new("python3")
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/redfish_clients/media_server.py"),
            )
            .arg(ip.to_string())
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the media server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the media server's port");
        let port = serde_json::from_str::<Value>(&line).expect("json")["port"]
            .as_u64()
            .expect("port");
        MediaServer {
            child,
            base: format!("http://{ip}:{port}"),
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }
}

impl Drop for MediaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_bytes(dir: &Path, name: &str, len: usize) {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join(name), data).expect("write image");
}

/// A rig of one node (off) with virtual media settings `media`.
fn rig(media: &str) -> Rig {
    Rig::with_servers(
        1,
        &format!("\n[backend.virtual_media]\n{media}\n"),
        |sim, i| sim.add_server(&format!("vm-{i}"), false),
    )
}

fn manager_media(rig: &Rig, device: &str) -> String {
    format!(
        "/redfish/v1/Managers/{}/VirtualMedia/{device}",
        rig.servers[0]
    )
}

fn insert(rig: &Rig, device: &str, body: Value) -> (u16, Value) {
    send(
        reqwest::Method::POST,
        &rig.url(0),
        &format!(
            "{}/Actions/VirtualMedia.InsertMedia",
            manager_media(rig, device)
        ),
        ADMIN,
        &body.to_string(),
        &[],
    )
}

fn device(rig: &Rig, device: &str) -> Value {
    get(&rig.url(0), &manager_media(rig, device), ADMIN)
        .map(|(_, v)| v)
        .unwrap_or(Value::Null)
}

fn wait_ready(rig: &Rig, name: &str) -> Value {
    let mut last = Value::Null;
    eventually_within("the media loaded", Duration::from_secs(60), || {
        last = device(rig, name);
        last["Status"]["State"] == "Enabled" && last["Inserted"] == true
    });
    last
}

fn sim_get(rig: &Rig, what: &str) -> Value {
    http_get(&format!("{}/_sim/{what}", rig.sim.base))
}

fn http_get(url: &str) -> Value {
    reqwest::blocking::Client::new()
        .get(url)
        .send()
        .expect("get")
        .json()
        .expect("json")
}

/// Accepted requests to Glance's import of any image.
fn imports(rig: &Rig) -> usize {
    rig.sim
        .requests()
        .iter()
        .filter(|r| {
            r["method"] == "POST"
                && r["path"].as_str().is_some_and(|p| p.ends_with("/import"))
                && r["status"]
                    .as_u64()
                    .is_some_and(|s| (200..300).contains(&s))
        })
        .count()
}

fn uploads(rig: &Rig) -> usize {
    rig.sim
        .requests()
        .iter()
        .filter(|r| {
            r["method"] == "PUT" && r["path"].as_str().is_some_and(|p| p.ends_with("/file"))
        })
        .count()
}

/// The server's simulator record.
fn record(rig: &Rig) -> Value {
    rig.sim.server("vm-0")
}

fn media_images(rig: &Rig) -> Vec<Value> {
    sim_get(rig, "images")["images"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| {
            i["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "novabmc-media"))
        })
        .collect()
}

/// Ironic's virtual-media deploy through sushy, then the boot from disk
/// that ends it, then a second deploy of the same ISO.
#[test]
fn ironic_virtual_media_deploy_through_sushy() {
    let media = MediaServer::start();
    let rig = rig("");
    let iso = media.url("deploy.iso");
    let flow = |steps: &[&str]| {
        let mut args = vec![
            rig.url(0),
            ADMIN.0.to_string(),
            ADMIN.1.to_string(),
            rig.servers[0].clone(),
            "--verify".into(),
            "false".into(),
        ];
        args.extend(steps.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        client("ironic_flow.py", &refs)
    };
    let lines = flow(&[
        "eject-all",
        "insert-media",
        &iso,
        "cd",
        "set-boot",
        "cd",
        "once",
        "reset",
        "On",
    ]);
    assert!(lines.iter().all(|l| l["ok"] == true), "{lines:?}");
    let id = rig.servers[0].clone();
    eventually_within("rescued with the ISO", Duration::from_secs(60), || {
        record(&rig)["stable"]["status"] == "RESCUE"
    });
    let r = record(&rig);
    let images = media_images(&rig);
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(r["rescue"]["image"], images[0]["id"], "{r}");
    assert_eq!(r["rescue"]["device"], "cdrom", "stable-device rescue: {r}");
    assert_eq!(imports(&rig), 1, "one web-download import");
    assert_eq!(uploads(&rig), 0);
    let actions = rig.sim.actions(&id);
    assert_eq!(
        actions.iter().filter(|a| *a == "rescue").count(),
        1,
        "{actions:?}"
    );
    // The BMC has seen the boot end (a reset during it would be part of
    // it, as Ironic's off-then-on is one reboot).
    eventually("the boot carried out", || {
        crate::cloud::pending_power(&rig.sim.state_dir()).is_empty()
    });
    // The one-time override is used up: the next boot is the disk's.
    let lines = flow(&["boot", "reset", "ForceRestart"]);
    assert_eq!(lines[1]["target"], "None", "{lines:?}");
    eventually_within("unrescued", Duration::from_secs(30), || {
        record(&rig)["stable"]["status"] == "ACTIVE"
    });
    let actions = rig.sim.actions(&id);
    assert_eq!(
        actions.iter().filter(|a| *a == "unrescue").count(),
        1,
        "{actions:?}"
    );
    assert_eq!(actions.iter().filter(|a| *a == "rescue").count(), 1);
    // Eject, and insert the same URL again: the cached image is reused.
    let lines = flow(&["eject-all", "media"]);
    assert_eq!(lines[1]["ejected"], json!(["Cd"]), "{lines:?}");
    let lines = flow(&["insert-media", &iso, "cd"]);
    assert!(lines.iter().all(|l| l["ok"] == true), "{lines:?}");
    wait_ready(&rig, "Cd");
    assert_eq!(imports(&rig), 1, "no second import");
    assert_eq!(media_images(&rig).len(), 1);
    assert!(
        rig.daemon
            .log()
            .contains("reusing the image already in Glance"),
        "{}",
        rig.daemon.log()
    );
    // The same devices under the system.
    let (s, v) = get(
        &rig.url(0),
        &format!("{}/VirtualMedia/Cd", rig.system_path(0)),
        ADMIN,
    )
    .expect("system's media");
    assert_eq!(s, 200);
    assert_eq!(v["Image"], json!(iso));
}

/// The configuration drive on a USB stick and on a floppy: each a Cinder
/// volume made from the image and attached to the server; eject removes
/// both.
#[test]
fn removable_media_reach_the_server_as_volumes() {
    let media = MediaServer::start();
    let rig = rig("");
    let img = media.url("config.img");
    for dev in ["UsbStick", "Floppy"] {
        let (s, v) = insert(&rig, dev, json!({"Image": img, "WriteProtected": false}));
        assert_eq!(s, 204, "{v}");
    }
    for dev in ["UsbStick", "Floppy"] {
        let v = wait_ready(&rig, dev);
        assert_eq!(v["WriteProtected"], false, "{v}");
    }
    let attached = || -> Vec<Value> {
        sim_get(&rig, "volumes")["volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|v| {
                v["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("novabmc-"))
            })
            .collect()
    };
    let vols = attached();
    assert_eq!(vols.len(), 2, "{vols:?}");
    for v in &vols {
        assert_eq!(v["server"], json!(rig.servers[0]), "{v}");
        assert_eq!(v["status"], "in-use", "{v}");
    }
    assert_eq!(imports(&rig), 1, "one image for both devices");
    for dev in ["UsbStick", "Floppy"] {
        let (s, v) = send(
            reqwest::Method::POST,
            &rig.url(0),
            &format!(
                "{}/Actions/VirtualMedia.EjectMedia",
                manager_media(&rig, dev)
            ),
            ADMIN,
            "{}",
            &[],
        );
        assert_eq!(s, 204, "{v}");
        assert_eq!(device(&rig, dev)["Inserted"], false);
    }
    eventually_within("the volumes removed", Duration::from_secs(30), || {
        attached().is_empty()
    });
}

/// IPMI's boot from CD (Ironic's raw UEFI form) boots the media a Redfish
/// client inserted, with one rescue; with nothing inserted (`chassis
/// bootdev cdrom`), the disk, logged once.
#[test]
fn ipmi_bootdev_cdrom_boots_the_inserted_media() {
    let media = MediaServer::start();
    let rig = rig("");
    let node = rig.daemon.nodes[0];
    // Nothing inserted: a CD boot is a disk boot.
    ipmitool(node, ADMIN, &["chassis", "bootdev", "cdrom"]).ok();
    ipmitool(node, ADMIN, &["power", "on"]).ok();
    eventually("started from disk", || {
        record(&rig)["stable"]["status"] == "ACTIVE"
    });
    assert_eq!(
        rig.daemon.log_lines(&["empty tray"]).len(),
        1,
        "{}",
        rig.daemon.log()
    );
    ipmitool(node, ADMIN, &["power", "off"]).ok();
    eventually("stopped", || record(&rig)["stable"]["status"] == "SHUTOFF");
    let (s, v) = insert(
        &rig,
        "Cd",
        json!({"Image": media.url("deploy.iso"),
        "TransferProtocolType": "HTTP"}),
    );
    assert_eq!(s, 204, "{v}");
    wait_ready(&rig, "Cd");
    // Ironic's raw form for UEFI (Set System Boot Options, parameter 5:
    // valid, EFI, one boot; selector 0101b, CD/DVD).
    ipmitool(
        node,
        ADMIN,
        &[
            "raw", "0x00", "0x08", "0x05", "0xa0", "0x14", "0x00", "0x00", "0x00",
        ],
    )
    .ok();
    let get5 = ipmitool(node, ADMIN, &["chassis", "bootparam", "get", "5"]);
    assert!(
        get5.ok().contains("Force Boot from CD/DVD"),
        "{}",
        get5.all()
    );
    let (_, sys) = get(&rig.url(0), &rig.system_path(0), ADMIN).expect("system");
    assert_eq!(sys["Boot"]["BootSourceOverrideTarget"], "Cd", "{sys}");
    ipmitool(node, ADMIN, &["power", "on"]).ok();
    eventually_within("rescued", Duration::from_secs(30), || {
        record(&rig)["stable"]["status"] == "RESCUE"
    });
    let actions = rig.sim.actions(&rig.servers[0]);
    assert_eq!(
        actions.iter().filter(|a| *a == "rescue").count(),
        1,
        "{actions:?}"
    );
    assert_eq!(record(&rig)["rescue"]["device"], "cdrom");
}

/// Each bad image gets a 400 naming Image, at once or within the probe
/// timeout; the node keeps serving both protocols.
#[test]
fn bad_images_are_refused_with_the_reason() {
    let media = MediaServer::start();
    let rig = rig("probe_timeout_secs = 2\nmax_size_mib = 1");
    let node = rig.daemon.nodes[0];
    let cases = [
        ("ftp://h/a.iso".to_string(), "scheme"),
        ("nfs://h/a.iso".to_string(), "scheme"),
        ("not a url".to_string(), "not a URL"),
        (media.url("missing.iso"), "404"),
        (media.url("hang"), "no answer within 2 s"),
        (media.url("big.iso"), "more than the 1048576 allowed"),
    ];
    for (url, why) in &cases {
        let started = std::time::Instant::now();
        let (s, v) = insert(&rig, "Cd", json!({"Image": url}));
        assert_eq!(s, 400, "{url}: {v}");
        let text = v.to_string();
        assert!(
            text.contains("Image") && text.contains(why),
            "{url}: {text}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{url} answered in {:?}",
            started.elapsed()
        );
        assert_eq!(device(&rig, "Cd")["Inserted"], false);
    }
    // A wrong protocol or parameter is named too.
    let (s, v) = insert(
        &rig,
        "Cd",
        json!({"Image": media.url("deploy.iso"), "TransferProtocolType": "NFS"}),
    );
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("TransferProtocolType"), "{v}");
    // Inserting into a device that holds media is a 409.
    let (s, _) = insert(&rig, "Cd", json!({"Image": media.url("deploy.iso")}));
    assert_eq!(s, 204);
    let (s, v) = insert(&rig, "Cd", json!({"Image": media.url("config.img")}));
    assert_eq!(s, 409, "{v}");
    // PATCH, as clients older than the actions do it: an empty Image
    // ejects, a new one inserts.
    for (body, inserted) in [
        (json!({"Image": ""}), false),
        (
            json!({"Image": media.url("deploy.iso"), "Inserted": true}),
            true,
        ),
        (json!({"Image": null, "Inserted": false}), false),
    ] {
        let (s, v) = send(
            reqwest::Method::PATCH,
            &rig.url(0),
            &manager_media(&rig, "Cd"),
            ADMIN,
            &body.to_string(),
            &[],
        );
        assert_eq!(s, 200, "{body}: {v}");
        assert_eq!(v["Inserted"], inserted, "{body}: {v}");
    }
    // A user may not insert.
    let (s, _) = send(
        reqwest::Method::POST,
        &rig.url(0),
        &format!(
            "{}/Actions/VirtualMedia.EjectMedia",
            manager_media(&rig, "Cd")
        ),
        ("viewer", "view-secret"),
        "",
        &[],
    );
    assert_eq!(s, 403);
    assert!(
        ipmitool(node, ADMIN, &["power", "status"])
            .ok()
            .contains("Chassis Power")
    );
    assert_eq!(imports(&rig) + uploads(&rig), 1, "only the good one loaded");
}

/// An image behind HTTP Basic: refused without the credentials (the
/// server's 401, naming Image), loaded with them (uploaded by novabmc, as
/// Glance's web-download takes no credentials), and the password never
/// shown nor logged.
#[test]
fn credentials_for_the_download_are_used_and_kept_secret() {
    let media = MediaServer::start();
    let rig = rig("");
    let url = media.url("auth/deploy.iso");
    let (s, v) = insert(&rig, "Cd", json!({"Image": url}));
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("401"), "{v}");
    let (s, v) = insert(
        &rig,
        "Cd",
        json!({"Image": url, "UserName": "media", "Password": "secret"}),
    );
    assert_eq!(s, 204, "{v}");
    let v = wait_ready(&rig, "Cd");
    assert_eq!(v["Password"], Value::Null, "{v}");
    assert!(!v.to_string().contains("secret"), "{v}");
    assert_eq!(uploads(&rig), 1, "uploaded by novabmc");
    assert_eq!(imports(&rig), 0);
    assert!(
        !rig.daemon.log().contains("secret"),
        "the log shows the password"
    );
}

/// Glance refusing the web-download import: the image is uploaded by
/// novabmc instead; Nova refusing the rescue: the CD boot falls back to
/// the disk, logged.
#[test]
fn refusals_by_the_cloud_fall_back_and_are_logged() {
    let media = MediaServer::start();
    let rig = rig("");
    rig.sim.faults(json!({"import_refuse_status": 403}));
    let (s, v) = insert(&rig, "Cd", json!({"Image": media.url("deploy.iso")}));
    assert_eq!(s, 204, "{v}");
    wait_ready(&rig, "Cd");
    assert_eq!(uploads(&rig), 1, "uploaded instead");
    assert!(
        rig.daemon.log().contains("uploading the image instead"),
        "{}",
        rig.daemon.log()
    );
    let images = media_images(&rig);
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["status"], "active");
    assert_eq!(images[0]["size"], 256 << 10);
    rig.sim.faults(json!({"refuse_rescue": true}));
    let node = rig.daemon.nodes[0];
    ipmitool(node, ADMIN, &["chassis", "bootdev", "cdrom"]).ok();
    ipmitool(node, ADMIN, &["power", "on"]).ok();
    eventually_within("booted from disk instead", Duration::from_secs(30), || {
        record(&rig)["stable"]["status"] == "ACTIVE"
    });
    assert!(
        rig.daemon
            .log()
            .contains("Nova refused to boot the inserted media"),
        "{}",
        rig.daemon.log()
    );
}

/// A restart between insert and boot keeps the medium; a restart in the
/// middle of a load resumes it.
#[test]
fn restarts_keep_the_media_and_resume_a_load() {
    let media = MediaServer::start();
    let rig = rig("");
    let (s, _) = insert(&rig, "Cd", json!({"Image": media.url("deploy.iso")}));
    assert_eq!(s, 204);
    wait_ready(&rig, "Cd");
    // A slow image for the floppy: the restart comes mid-load.
    let (s, _) = insert(
        &rig,
        "Floppy",
        json!({"Image": media.url("slow/config.img")}),
    );
    assert_eq!(s, 204);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(device(&rig, "Floppy")["Status"]["State"], "Starting");
    let Rig {
        sim,
        daemon,
        servers,
        toml,
        addrs,
    } = rig;
    let dir = daemon.kill_into_dir();
    let daemon = Daemon::start_in(dir, &toml, addrs.clone());
    let rig = Rig {
        sim,
        daemon,
        servers,
        toml,
        addrs,
    };
    eventually("served again", || {
        get(&rig.url(0), &manager_media(&rig, "Cd"), ADMIN).is_some_and(|(s, _)| s == 200)
    });
    let cd = device(&rig, "Cd");
    assert_eq!(cd["Inserted"], true, "{cd}");
    assert_eq!(cd["Image"], json!(media.url("deploy.iso")));
    wait_ready(&rig, "Floppy");
    assert!(
        rig.daemon
            .log()
            .contains("resuming a virtual media load interrupted by the restart"),
        "{}",
        rig.daemon.log()
    );
    // Booting from the CD uses the image loaded before the restart.
    let node = rig.daemon.nodes[0];
    ipmitool(node, ADMIN, &["chassis", "bootdev", "cdrom"]).ok();
    ipmitool(node, ADMIN, &["power", "on"]).ok();
    eventually_within("rescued", Duration::from_secs(30), || {
        record(&rig)["stable"]["status"] == "RESCUE"
    });
    let cd_images: Vec<Value> = media_images(&rig)
        .into_iter()
        .filter(|i| i["name"].as_str().is_some_and(|n| n.contains("deploy.iso")))
        .collect();
    assert_eq!(cd_images.len(), 1, "{cd_images:?}");
    assert_eq!(record(&rig)["rescue"]["image"], cd_images[0]["id"]);
}

/// `novabmc check` says how a CD boots on this cloud and how images get
/// into Glance, for the default and for the configured alternatives.
#[test]
fn check_reports_how_virtual_media_works() {
    for (media, want) in [
        (
            "",
            "CD boots by stable-device rescue (2.87: disks kept, volume-backed servers too); images fetched by Glance (web-download)",
        ),
        (
            "boot = \"rebuild\"\nweb_download = false",
            "CD boots by rebuild with the image (the root disk is replaced); images uploaded by novabmc",
        ),
    ] {
        let rig = rig(media);
        let out = Out::collect(
            Command::new(env!("CARGO_BIN_EXE_novabmc"))
                .args(["--log", "warn", "check", "--config"])
                .arg(rig.daemon.dir().join("novabmc.toml")),
            "novabmc check",
        );
        let text = out.all();
        assert!(text.contains(want), "{want} in:\n{text}");
        assert!(
            text.contains("microversion 2.87: supported (virtual media"),
            "{text}"
        );
    }
}

/// A reload that changes the backend's settings while a load runs: the
/// new backend picks the load up from the state directory and finishes
/// it, with one image in Glance; an eject during a load leaves nothing
/// attached.
#[test]
fn a_reload_during_a_load_finishes_it_and_an_eject_cancels_one() {
    let media = MediaServer::start();
    let rig = rig("");
    let (s, _) = insert(
        &rig,
        "Floppy",
        json!({"Image": media.url("slow/config.img")}),
    );
    assert_eq!(s, 204);
    std::thread::sleep(Duration::from_millis(500));
    let path = rig.daemon.dir().join("novabmc.toml");
    let toml = std::fs::read_to_string(&path).expect("config");
    let changed = toml.replace(
        "[backend.virtual_media]\n",
        "[backend.virtual_media]\nkeep_unused_images = 3\n",
    );
    assert_ne!(toml, changed);
    std::fs::write(&path, changed).expect("write config");
    crate::redfish::hup(&rig.daemon);
    let v = wait_ready(&rig, "Floppy");
    assert_eq!(v["Image"], json!(media.url("slow/config.img")));
    let node = rig.daemon.nodes[0];
    assert!(
        ipmitool(node, ADMIN, &["power", "status"])
            .ok()
            .contains("Chassis Power")
    );
    let slow: Vec<Value> = media_images(&rig)
        .into_iter()
        .filter(|i| i["name"].as_str().is_some_and(|n| n.contains("config.img")))
        .collect();
    assert_eq!(slow.len(), 1, "{slow:?}");
    // Insert into the USB stick and eject at once: no volume stays.
    let (s, _) = insert(
        &rig,
        "UsbStick",
        json!({"Image": media.url("slow/config.img")}),
    );
    assert_eq!(s, 204);
    let (s, _) = send(
        reqwest::Method::POST,
        &rig.url(0),
        &format!(
            "{}/Actions/VirtualMedia.EjectMedia",
            manager_media(&rig, "UsbStick")
        ),
        ADMIN,
        "",
        &[],
    );
    assert_eq!(s, 204);
    assert_eq!(device(&rig, "UsbStick")["Inserted"], false);
    eventually_within("only the floppy's volume", Duration::from_secs(30), || {
        let vols = sim_get(&rig, "volumes")["volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let n = vols
            .iter()
            .filter(|v| {
                v["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("novabmc-"))
            })
            .count();
        n == 1
    });
}

/// Loads are counted by outcome on the metrics endpoint.
#[test]
fn loads_are_counted_in_the_metrics() {
    let media = MediaServer::start();
    let listen = std::net::SocketAddr::from((unique_loopback(), 9464));
    let rig = rig(&format!("\n[metrics]\nlisten = \"{listen}\""));
    let (s, _) = insert(&rig, "Cd", json!({"Image": media.url("deploy.iso")}));
    assert_eq!(s, 204);
    wait_ready(&rig, "Cd");
    let text = reqwest::blocking::get(format!("http://{listen}/metrics"))
        .expect("metrics")
        .text()
        .expect("text");
    assert!(
        text.contains("novabmc_media_loads_total{outcome=\"ok\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("novabmc_media_load_seconds_total{outcome=\"ok\"}"),
        "{text}"
    );
    assert!(
        text.contains("operation=\"import_image\",status=\"ok\"")
            || text.contains("status=\"ok\",operation=\"import_image\""),
        "{text}"
    );
}

/// Two nodes inserting the same URL at once load it once and share the
/// image; ejected from both, it stays cached for the next insert.
#[test]
fn two_nodes_inserting_one_url_share_one_import() {
    let media = MediaServer::start();
    let rig = Rig::with_servers(2, "", |sim, i| sim.add_server(&format!("vm-{i}"), false));
    let url = media.url("slow/deploy.iso");
    let inserts: Vec<_> = (0..2)
        .map(|i| {
            let base = rig.url(i);
            let path = format!(
                "/redfish/v1/Managers/{}/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia",
                rig.servers[i]
            );
            let body = json!({ "Image": url }).to_string();
            std::thread::spawn(move || {
                send(reqwest::Method::POST, &base, &path, ADMIN, &body, &[]).0
            })
        })
        .collect();
    for t in inserts {
        assert_eq!(t.join().expect("insert"), 204);
    }
    for i in 0..2 {
        let path = format!("/redfish/v1/Managers/{}/VirtualMedia/Cd", rig.servers[i]);
        eventually_within("both loaded", Duration::from_secs(60), || {
            get(&rig.url(i), &path, ADMIN)
                .is_some_and(|(_, v)| v["Status"]["State"] == "Enabled" && v["Inserted"] == true)
        });
    }
    assert_eq!(imports(&rig), 1, "one import for both nodes");
    assert_eq!(media_images(&rig).len(), 1);
    assert!(
        rig.daemon
            .log()
            .contains("reusing the image already in Glance")
    );
}
