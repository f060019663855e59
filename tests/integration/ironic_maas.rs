//! Ironic and MAAS as they really drive a BMC, command line for command
//! line (clients.md sections 2 and 3), against the daemon and the Nova
//! simulator, with their own output parsing, and what each flow does to the
//! Nova server.

use crate::cloud;
use crate::common;

use std::net::SocketAddr;

use cloud::{Sim, TestCloud, TestServer};
use common::*;

struct Rig {
    cloud: TestCloud,
    server: TestServer,
    daemon: Daemon,
    pwfile: std::path::PathBuf,
}

impl Rig {
    fn new(mode: &str) -> Rig {
        let cloud = TestCloud::Sim(Sim::start());
        let server = cloud.servers(&format!("ironic-{mode}"), 1, false).remove(0);
        let (toml, nodes) = cloud::config(
            &cloud.backend_toml(mode),
            unique_loopback(),
            &[("node-0", server.reference.as_str())],
            "",
        );
        let daemon = Daemon::start_with(&toml, nodes);
        let pwfile = write_file(daemon.dir(), "ironic-pw", ADMIN.1);
        eventually("server resolved", || {
            ipmitool(
                daemon.nodes[0],
                ADMIN,
                &["-R", "1", "-N", "1", "power", "status"],
            )
            .code
                == Some(0)
        });
        Rig {
            cloud,
            server,
            daemon,
            pwfile,
        }
    }

    fn node(&self) -> SocketAddr {
        self.daemon.nodes[0]
    }

    /// What Ironic's ipmitool driver runs.
    fn ironic(&self, sub: &[&str]) -> Out {
        ironic_ipmitool(self.node(), &self.pwfile, sub)
    }

    /// Ironic's `_power_status`: exactly these two lines, else an error.
    fn ironic_power_state(&self) -> &'static str {
        let out = self.ironic(&["power", "status"]);
        match out.ok() {
            "Chassis Power is on\n" => "power on",
            "Chassis Power is off\n" => "power off",
            other => panic!("Ironic would set the node to error: {other:?}"),
        }
    }

    /// Ironic's `_set_and_wait`: the action, then status polls until the
    /// target state.
    fn ironic_power(&self, action: &str, target: &str) {
        self.ironic(&["power", action]).ok();
        eventually(target, || self.ironic_power_state() == target);
    }

    /// Ironic's reboot: status, off unless already off, on.
    fn ironic_reboot(&self) {
        if self.ironic_power_state() != "power off" {
            self.ironic_power("off", "power off");
        }
        self.ironic_power("on", "power on");
    }

    /// Ironic's `get_boot_device`, parsing `chassis bootparam get 5` with
    /// its expressions.
    fn ironic_boot_device(&self) -> (Option<&'static str>, bool) {
        let out = self.ironic(&["chassis", "bootparam", "get", "5"]);
        let text = out.ok();
        let selector = text.lines().find_map(|l| {
            l.split_once("Boot Device Selector : ")
                .map(|(_, v)| v.to_string())
        });
        let device = selector.map(|s| {
            if s.contains("PXE") {
                "pxe"
            } else if s.contains("Hard-Drive") {
                if s.contains("Safe-Mode") {
                    "safe"
                } else {
                    "disk"
                }
            } else if s.contains("BIOS") {
                "bios"
            } else if s.contains("CD/DVD") {
                "cdrom"
            } else {
                "none"
            }
        });
        (device, text.contains("Options apply to all future boots"))
    }

    /// Ironic's UEFI `set_boot_device`: param 3 ("don't clear the valid
    /// bit on timeout"), then param 5 with the EFI bit.
    fn ironic_set_boot_uefi(&self, device: u8, persistent: bool) {
        self.ironic(&["raw", "0x00", "0x08", "0x03", "0x08"]).ok();
        let flags = if persistent { "0xe0" } else { "0xa0" };
        let dev = format!("{device:#04x}");
        self.ironic(&[
            "raw", "0x00", "0x08", "0x05", flags, &dev, "0x00", "0x00", "0x00",
        ])
        .ok();
    }

    /// Ironic's legacy-BIOS `set_boot_device`.
    fn ironic_set_boot_legacy(&self, device: &str, persistent: bool) {
        self.ironic(&["raw", "0x00", "0x08", "0x03", "0x08"]).ok();
        let mut sub = vec!["chassis", "bootdev", device];
        if persistent {
            sub.push("options=persistent");
        }
        let out = self.ironic(&sub);
        assert_eq!(out.ok(), format!("Set Boot Device to {device}\n"));
        assert_eq!(
            out.stderr, "",
            "ipmitool exits 0 on errors here: stderr is the only trace"
        );
    }

    fn actions(&self) -> Vec<String> {
        self.cloud.actions(&self.server.id).expect("simulator")
    }

    fn boots(&self) -> Vec<String> {
        self.cloud.boots(&self.server.id).expect("simulator")
    }

    /// Waits until everything acknowledged is carried out.
    fn wait_settled(&self) {
        self.cloud.wait_settled(&self.server.id);
    }
}

/// Power status parsing and every power action Ironic takes, each followed
/// by Ironic's own polling.
#[test]
fn ironic_power_actions() {
    let r = Rig::new("rebuild");
    assert_eq!(r.ironic_power_state(), "power off");
    // Each action carried out before the next, so each shows its own call.
    r.ironic_power("on", "power on");
    r.wait_settled();
    r.ironic_power("soft", "power off");
    r.wait_settled();
    r.ironic_power("on", "power on");
    r.wait_settled();
    // disable_power_off nodes reboot with a reset.
    r.ironic(&["power", "reset"]).ok();
    assert_eq!(r.ironic_power_state(), "power on");
    r.wait_settled();
    r.ironic(&["power", "diag"]).ok();
    r.wait_settled();
    r.ironic_power("off", "power off");
    r.wait_settled();
    r.cloud.wait_for(&r.server.id, "SHUTOFF");
    assert_eq!(
        r.actions(),
        [
            "os-start",
            "os-stop",
            "os-start",
            "reboot",
            "trigger_crash_dump",
            "os-stop"
        ]
    );
    // Vendor detection: lower-cased "Manufacturer Name".
    let text = r.ironic(&["mc", "info"]).ok().to_string();
    let vendor = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("Manufacturer Name")
                .map(|v| v.trim_start().trim_start_matches(':').trim().to_lowercase())
        })
        .expect("Manufacturer Name");
    // Not "supermicro", for which Ironic changes its UEFI boot device codes.
    assert_eq!(vendor, "unknown");
}

/// An Ironic UEFI deployment: one-time PXE, power on, then boot device disk
/// (persistent) and reboot. Exactly one network boot reaches Nova (one
/// rebuild with the iPXE image), then the disk boots.
#[test]
fn ironic_uefi_deploy() {
    let r = Rig::new("rebuild");
    r.ironic_set_boot_uefi(0x04, false);
    assert_eq!(r.ironic_boot_device(), (Some("pxe"), false));
    r.ironic_reboot();
    r.wait_settled();
    r.cloud.wait_for(&r.server.id, "ACTIVE");
    // The one-time flag was used by that boot.
    assert_eq!(r.ironic_boot_device(), (Some("none"), false));
    // Deployed: disk, persistent, and Ironic's reboot.
    r.ironic_set_boot_uefi(0x08, true);
    assert_eq!(r.ironic_boot_device(), (Some("disk"), true));
    r.ironic_reboot();
    r.wait_settled();
    r.cloud.wait_for(&r.server.id, "ACTIVE");
    let actions = r.actions();
    assert_eq!(actions[..2], ["rebuild", "os-start"]);
    assert!(cloud::is_one_disk_reboot(&actions[2..]), "{actions:?}");
    let rebuilds = r.actions().iter().filter(|a| *a == "rebuild").count();
    assert_eq!(rebuilds, 1, "exactly one network boot");
    assert_eq!(r.boots().len(), 2, "{:?}", r.boots());
    assert_eq!(
        r.ironic_boot_device(),
        (Some("disk"), true),
        "persistent stays"
    );
}

/// The legacy BIOS path (`chassis bootdev`) with and without persistence,
/// read back through Ironic's parsing, and a rescue-mode deploy.
#[test]
fn ironic_legacy_bootdev_and_rescue_deploy() {
    let r = Rig::new("rescue");
    for (device, persistent) in [
        ("pxe", false),
        ("disk", true),
        ("cdrom", false),
        ("bios", true),
        ("safe", false),
        ("pxe", true),
    ] {
        r.ironic_set_boot_legacy(device, persistent);
        assert_eq!(
            r.ironic_boot_device(),
            (Some(device), persistent),
            "{device}"
        );
    }
    r.ironic_set_boot_legacy("pxe", false);
    r.ironic_reboot();
    r.wait_settled();
    r.cloud.wait_for(&r.server.id, "RESCUE");
    r.ironic_set_boot_legacy("disk", true);
    r.ironic_reboot();
    r.wait_settled();
    r.cloud.wait_for(&r.server.id, "ACTIVE");
    let actions = r.actions();
    assert_eq!(actions[..1], ["rescue"]);
    assert!(cloud::is_one_disk_reboot(&actions[1..]), "{actions:?}");
    let b = r.boots();
    assert_eq!(b.first().map(String::as_str), Some("rescue"), "{b:?}");
    assert_eq!(b.last().map(String::as_str), Some("disk"), "{b:?}");
    assert_eq!(b.iter().filter(|x| *x == "rescue").count(), 1, "{b:?}");
}

/// A FreeIPMI tool as MAAS runs it, as MAAS's operator.
fn maas_op(tool: &str, node: SocketAddr, extra: &[&str]) -> Out {
    maas(tool, node, OPERATOR, extra)
}

/// How MAAS reads ipmipower's output: an auth or setting error string is
/// fatal, a connection error string is retried, else the first
/// `:\s*(on|off)`, else the whole output.
fn maas_state(out: &Out) -> String {
    assert_eq!(out.code, Some(0), "{out:?}");
    for fatal in [
        "username invalid",
        "password invalid",
        "password verification timeout",
        "k_g invalid",
        "privilege level insufficient",
        "privilege level cannot be obtained for this user",
        "authentication type unavailable",
        "cipher suite id unavailable",
        "ipmi 2.0 unavailable",
        "BMC busy",
        "timeout",
        "internal IPMI error",
    ] {
        assert!(!out.stdout.contains(fatal), "{fatal}: {out:?}");
    }
    out.stdout
        .split_once(':')
        .map(|(_, rest)| rest.trim().to_string())
        .unwrap_or_else(|| out.stdout.clone())
}

/// MAAS's power-on: commit the boot flags file, then cycle-or-on.
fn maas_power_on(r: &Rig, boot_type: Option<&str>) {
    let file = maas_boot_file(r.daemon.dir(), boot_type);
    let out = maas_op(
        "ipmi-chassis-config",
        r.node(),
        &["--commit", "--filename", file.to_str().expect("path")],
    );
    out.ok();
    assert_eq!(out.stderr, "", "MAAS logs anything on stderr as a failure");
    let out = maas_op("ipmipower", r.node(), &["--cycle", "--on-if-off"]);
    assert_eq!(maas_state(&out), "ok");
}

/// MAAS's boot-flag commit for each boot type: auto keeps the firmware
/// type we report (the server's image is UEFI), EFI and legacy set it.
#[test]
fn maas_boot_types() {
    let r = Rig::new("rescue");
    let param5 = |r: &Rig| {
        ipmitool(r.node(), ADMIN, &["chassis", "bootparam", "get", "5"])
            .ok()
            .lines()
            .find_map(|l| l.strip_prefix("Boot parameter data: ").map(str::to_string))
            .expect("data line")
    };
    // Auto keeps the EFI bit we report (the image is UEFI); legacy clears
    // it; auto after legacy keeps legacy, since MAAS writes back what it
    // read; EFI sets it again.
    for (boot_type, expect) in [
        (None, "a004000000"),
        (Some("PC-COMPATIBLE"), "8004000000"),
        (None, "8004000000"),
        (Some("EFI"), "a004000000"),
        (None, "a004000000"),
    ] {
        let file = maas_boot_file(r.daemon.dir(), boot_type);
        let out = maas_op(
            "ipmi-chassis-config",
            r.node(),
            &["--commit", "--filename", file.to_str().expect("path")],
        );
        out.ok();
        assert_eq!(out.stderr, "");
        assert_eq!(param5(&r), expect, "{boot_type:?}");
    }
    let p3 = ipmitool(r.node(), ADMIN, &["chassis", "bootparam", "get", "3"])
        .ok()
        .to_string();
    assert!(p3.contains("Boot parameter data: 1f"), "{p3}");
    // FreeIPMI writes every bit of the boot-info acknowledge (mask FFh,
    // data FFh, reserved bits included); it is kept as written.
    let p4 = ipmitool(r.node(), ADMIN, &["chassis", "bootparam", "get", "4"])
        .ok()
        .to_string();
    assert!(p4.contains("Boot parameter data: 00ff"), "{p4}");
}

/// MAAS's power flow: on while off, on while on (a power cycle), off,
/// soft, and its state query; each PXE-then-cycle makes exactly one
/// network boot in Nova.
#[test]
fn maas_power_flow() {
    let r = Rig::new("rescue");
    assert_eq!(
        maas_state(&maas_op("ipmipower", r.node(), &["--stat"])),
        "off"
    );
    maas_power_on(&r, None);
    assert_eq!(
        maas_state(&maas_op("ipmipower", r.node(), &["--stat"])),
        "on"
    );
    r.wait_settled();
    r.cloud.wait_for(&r.server.id, "RESCUE");
    assert_eq!(r.actions(), ["rescue"]);
    // Power on while on: MAAS cycles, and PXE boots once more.
    maas_power_on(&r, None);
    r.wait_settled();
    r.cloud.wait_for(&r.server.id, "RESCUE");
    assert_eq!(r.actions(), ["rescue", "unrescue", "rescue"]);
    assert_eq!(
        maas_state(&maas_op("ipmipower", r.node(), &["--off"])),
        "ok"
    );
    assert_eq!(
        maas_state(&maas_op("ipmipower", r.node(), &["--stat"])),
        "off"
    );
    r.wait_settled();
    r.cloud.wait_for(&r.server.id, "SHUTOFF");
    maas_power_on(&r, Some("EFI"));
    r.wait_settled();
    assert_eq!(
        maas_state(&maas_op("ipmipower", r.node(), &["--soft"])),
        "ok"
    );
    r.wait_settled();
    r.cloud.wait_for(&r.server.id, "SHUTOFF");
    assert_eq!(
        maas_state(&maas_op("ipmipower", r.node(), &["--stat"])),
        "off"
    );
    let actions = r.actions();
    assert_eq!(
        actions,
        [
            "rescue", "unrescue", "rescue", "unrescue", "os-stop", "rescue", "unrescue", "os-stop"
        ]
    );
    let rescues = r.boots().iter().filter(|b| *b == "rescue").count();
    assert_eq!(
        rescues,
        3,
        "one network boot per MAAS power-on: {:?}",
        r.boots()
    );
}

/// MAAS with the rebuild mode: PXE-then-cycle while off makes one rebuild
/// and one start, while on one rebuild.
#[test]
fn maas_pxe_then_cycle_rebuild() {
    let r = Rig::new("rebuild");
    maas_power_on(&r, Some("EFI"));
    r.wait_settled();
    r.cloud.wait_for(&r.server.id, "ACTIVE");
    assert_eq!(r.actions(), ["rebuild", "os-start"]);
    maas_power_on(&r, Some("EFI"));
    r.wait_settled();
    r.cloud.wait_for(&r.server.id, "ACTIVE");
    assert_eq!(r.actions(), ["rebuild", "os-start", "rebuild"]);
}
