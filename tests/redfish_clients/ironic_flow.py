#!/usr/bin/env python3
"""Drives a Redfish service through sushy the way Ironic's redfish driver does.

usage: ironic_flow.py URL USER PASSWORD SYSTEM_ID [--verify true|false|CA] [STEP ...]

Run with the python of the virtualenv contrib/redfish-tools.sh makes. With no
STEP, runs the whole flow. A STEP is one of
  power-state                  read PowerState
  reset TYPE                   POST a ComputerSystem.Reset (On, ForceOff,
                               GracefulShutdown, GracefulRestart, ForceRestart,
                               PowerCycle, ForceOn, Nmi); refused by sushy
                               itself when not in ResetType@Redfish.AllowableValues
  reset-types                  the advertised reset types
  inject-nmi                   Ironic's inject_nmi: a Reset of type Nmi
  set-boot DEVICE once|persistent
                               DEVICE: pxe, hdd (disk), cd, bios, uefihttp
  boot                         read the boot override (target, enabled, mode)
  boot-mode                    read BootSourceOverrideMode
  set-boot-mode uefi|legacy    set it; it must read back at once
  secure-boot                  read SecureBoot if the system links one
  eject-all                    Ironic's _eject_vmedia: eject every device
                               of the system's managers that has media in it
  insert-media URL DEVICE      Ironic's _insert_vmedia: the first device of
                               the managers whose MediaTypes hold DEVICE (cd,
                               usbstick, floppy) and that is empty (or holds
                               URL already) gets URL through sushy's
                               insert_media
  media                        every device: id, media types, inserted, image
Several steps may follow one another (`reset ForceOff power-state`).

Each step prints one JSON line {"step": ..., "ok": true, ...what was read
back...}. The first failure prints {"step": ..., "ok": false, "error": ...}
and exits 1; a wrong command line exits 1 with this text. SYSTEM_ID is
the system's path, as Ironic's redfish_system_id (/redfish/v1/Systems/ID),
or a bare ID under /redfish/v1/Systems/, or "-" for get_system() without an
id (the Systems collection must then hold exactly one member).

The connection is made as Ironic's SessionCache makes it: auth type "auto"
(sushy.auth.SessionOrBasicAuth: a session, falling back to Basic), verify as
given (default false here: the test service's certificate is self-signed),
connect timeout 30 s and read timeout 60 s (Ironic's defaults). Boot changes
follow Ironic's management interface: BootSourceOverrideEnabled is sent only
when it differs from the current value, the boot mode alone for a mode
change. Set REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE aside when not verifying:
requests lets them override verify=False (this script unsets them itself).
"""

import json
import os
import sys
import time

# requests prefers these to a session's verify=False.
for _var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
    os.environ.pop(_var, None)

import sushy  # noqa: E402
from sushy import auth as sushy_auth  # noqa: E402

DEVICES = {
    "pxe": sushy.BootSource.PXE,
    "hdd": sushy.BootSource.HDD,
    "disk": sushy.BootSource.HDD,
    "cd": sushy.BootSource.CD,
    "bios": sushy.BootSource.BIOS_SETUP,
    "uefihttp": sushy.BootSource.UEFI_HTTP,
}
PERSISTENCE = {
    "once": sushy.BootSourceOverrideEnabled.ONCE,
    "persistent": sushy.BootSourceOverrideEnabled.CONTINUOUS,
}
MODES = {
    "uefi": sushy.BootSourceOverrideMode.UEFI,
    "legacy": sushy.BootSourceOverrideMode.LEGACY,
}
MEDIA = {
    "cd": sushy.VirtualMediaType.CD,
    "usbstick": sushy.VirtualMediaType.USB_STICK,
    "floppy": sushy.VirtualMediaType.FLOPPY,
}
# Ironic's power interface: the reset types it sends, in this order.
IRONIC_RESETS = ["On", "ForceOff", "GracefulShutdown", "On", "GracefulRestart",
                 "ForceRestart"]
# Sent as well when the service advertises them.
OPTIONAL_RESETS = ["PowerCycle", "ForceOn", "Nmi"]


class StepFailed(Exception):
    pass


def plain(value):
    """Enum members and sets of them, as JSON can carry them."""
    if isinstance(value, (set, frozenset, list, tuple)):
        return sorted(plain(v) for v in value)
    return getattr(value, "value", value)


def emit(step, **fields):
    print(json.dumps(dict(step=step, ok=True, **fields), sort_keys=True), flush=True)


class Flow:
    def __init__(self, url, user, password, system_id, verify):
        self.conn = sushy.Sushy(
            url,
            verify=verify,
            auth=sushy_auth.SessionOrBasicAuth(username=user, password=password),
            connect_timeout=30,
            read_timeout=60,
        )
        # Ironic's redfish_system_id is the system's path; a bare id is
        # taken as a member of the Systems collection.
        if system_id != "-" and not system_id.startswith("/"):
            system_id = "/redfish/v1/Systems/" + system_id
        self.system_id = system_id

    def system(self):
        # Ironic fetches the system anew for every operation.
        if self.system_id == "-":
            return self.conn.get_system()
        return self.conn.get_system(self.system_id)

    def boot_fields(self, system):
        return {
            "target": plain(system.boot.target),
            "enabled": plain(system.boot.enabled),
            "mode": plain(system.boot.mode),
        }

    # Steps. Each returns the fields of its JSON line.

    def power_state(self):
        return {"power_state": plain(self.system().power_state)}

    def reset_types(self):
        return {"reset_types": plain(self.system().get_allowed_reset_system_values())}

    def reset(self, reset_type):
        try:
            value = sushy.ResetType(reset_type)
        except ValueError:
            raise StepFailed("unknown reset type %r" % reset_type)
        system = self.system()
        before = plain(system.power_state)
        started = time.monotonic()
        system.reset_system(value)
        took = time.monotonic() - started
        return {"reset_type": reset_type, "power_state_before": before,
                "answered_in_s": round(took, 3),
                "power_state_after": plain(self.system().power_state)}

    def inject_nmi(self):
        system = self.system()
        system.reset_system(sushy.ResetType.NMI)
        return {"power_state": plain(self.system().power_state)}

    def boot(self):
        system = self.system()
        fields = self.boot_fields(system)
        fields["allowed_targets"] = plain(system.boot.allowed_values or [])
        return fields

    def set_boot(self, device, persistence):
        if device not in DEVICES or persistence not in PERSISTENCE:
            raise StepFailed("set-boot wants DEVICE (%s) and once|persistent"
                             % ", ".join(DEVICES))
        target, desired = DEVICES[device], PERSISTENCE[persistence]
        system = self.system()
        # Ironic leaves BootSourceOverrideEnabled out when it already matches.
        enabled = desired if desired != system.boot.enabled else None
        system.set_system_boot_options(target, enabled=enabled)
        got = self.boot_fields(self.system())
        got["sent_enabled"] = plain(enabled)
        if got["target"] != target.value or got["enabled"] != desired.value:
            raise StepFailed("boot override read back as %s, wanted target %s enabled %s"
                             % (json.dumps(got, sort_keys=True), target.value, desired.value))
        return got

    def boot_mode(self):
        return {"mode": plain(self.system().boot.mode)}

    def set_boot_mode(self, mode):
        if mode not in MODES:
            raise StepFailed("set-boot-mode wants uefi or legacy")
        system = self.system()
        if system.boot.mode is None:
            raise StepFailed("BootSourceOverrideMode is not readable: Ironic "
                             "takes boot mode as unsupported")
        system.set_system_boot_options(mode=MODES[mode])
        got = plain(self.system().boot.mode)
        if got != MODES[mode].value:
            # Ironic would reboot the node and wait up to 900 s here.
            raise StepFailed("boot mode read back as %s right after setting %s"
                             % (got, MODES[mode].value))
        return {"mode": got}

    def secure_boot(self):
        system = self.system()
        try:
            sb = system.secure_boot
        except sushy.exceptions.MissingAttributeError:
            return {"present": False}
        return {"present": True, "enabled": sb.enabled,
                "current_boot": plain(sb.current_boot), "mode": plain(sb.mode)}

    def devices(self):
        for manager in self.system().managers:
            for v_media in manager.virtual_media.get_members():
                yield v_media

    def eject_all(self):
        ejected = []
        for v_media in self.devices():
            if v_media.inserted:
                v_media.eject_media()
                ejected.append(v_media.identity)
        return {"ejected": ejected}

    def insert_media(self, url, device):
        if device not in MEDIA:
            raise StepFailed("insert-media wants DEVICE (%s)" % ", ".join(MEDIA))
        wanted = MEDIA[device]
        for v_media in self.devices():
            if wanted not in v_media.media_types:
                continue
            if v_media.inserted:
                if v_media.image == url:
                    return {"device": v_media.identity, "already": True}
                continue
            v_media.insert_media(url, inserted=True, write_protected=True)
            return {"device": v_media.identity, "already": False}
        raise StepFailed("no suitable virtual media device for %s" % device)

    def media(self):
        return {"devices": [
            {"id": v.identity, "types": plain(v.media_types),
             "inserted": v.inserted, "image": v.image}
            for v in self.devices()]}

    def whole(self):
        """The whole flow, one line per step; optional parts when advertised."""
        steps = [("power-state", [])]
        steps.append(("reset-types", []))
        allowed = {v.value for v in self.system().get_allowed_reset_system_values()}
        for reset_type in IRONIC_RESETS:
            steps.append(("reset", [reset_type]))
        for reset_type in OPTIONAL_RESETS:
            if reset_type in allowed and reset_type != "Nmi":
                steps.append(("reset", [reset_type]))
        if "Nmi" in allowed:
            steps.append(("inject-nmi", []))
        steps += [
            ("set-boot", ["pxe", "once"]),
            ("set-boot", ["pxe", "persistent"]),
            ("set-boot", ["hdd", "persistent"]),
            ("set-boot", ["bios", "once"]),
            ("boot-mode", []),
            ("set-boot-mode", ["legacy"]),
            ("set-boot-mode", ["uefi"]),
            ("secure-boot", []),
            ("reset", ["ForceOff"]),
            ("power-state", []),
        ]
        return steps


STEPS = {
    "power-state": ("power_state", 0),
    "reset-types": ("reset_types", 0),
    "reset": ("reset", 1),
    "inject-nmi": ("inject_nmi", 0),
    "boot": ("boot", 0),
    "set-boot": ("set_boot", 2),
    "boot-mode": ("boot_mode", 0),
    "set-boot-mode": ("set_boot_mode", 1),
    "secure-boot": ("secure_boot", 0),
    "eject-all": ("eject_all", 0),
    "insert-media": ("insert_media", 2),
    "media": ("media", 0),
}


def parse_steps(words):
    steps = []
    while words:
        name = words.pop(0)
        if name not in STEPS:
            raise SystemExit("unknown step %r\n\n%s" % (name, __doc__))
        argc = STEPS[name][1]
        if len(words) < argc:
            raise SystemExit("step %s wants %d argument(s)" % (name, argc))
        steps.append((name, words[:argc]))
        del words[:argc]
    return steps


def main(argv):
    args = argv[1:]
    verify = False
    if "--verify" in args:
        i = args.index("--verify")
        if i + 1 >= len(args):
            raise SystemExit(__doc__)
        value = args[i + 1]
        verify = {"true": True, "false": False}.get(value.lower(), value)
        del args[i:i + 2]
    if len(args) < 4:
        raise SystemExit(__doc__)
    url, user, password, system_id = args[:4]
    steps = parse_steps(args[4:])
    step = "connect"
    try:
        flow = Flow(url, user, password, system_id, verify)
        system = flow.system()
        emit("connect", system=system.identity, path=system.path,
             redfish_version=flow.conn.redfish_version)
        if not steps:
            steps = flow.whole()
        for step, step_args in steps:
            fields = getattr(flow, STEPS[step][0])(*step_args)
            emit(step, args=step_args, **fields)
    except Exception as exc:  # any failure is the test's failure
        print(json.dumps({"step": step, "ok": False,
                          "error": "%s: %s" % (type(exc).__name__, exc)}), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
