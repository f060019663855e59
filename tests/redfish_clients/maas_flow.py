#!/usr/bin/env python3
"""Makes the HTTP requests MAAS's Redfish power driver makes, with requests.

usage: maas_flow.py URL USER PASSWORD [--node-id ID] [--retries N] [STEP ...]

Run with the python of the virtualenv contrib/redfish-tools.sh makes. With no
STEP, runs the whole flow: query, power-off, power-on, power-reset, query.
A STEP is one of
  node-id         GET /redfish/v1/Systems, basename of the first member
  query           GET the system: PowerState mapped as MAAS maps it
  set-pxe         MAAS's set_pxe_boot: GET the system (for
                  @Redfish.Settings.SettingsObject), GET the target for its
                  ETag (@odata.etag, else the ETag header), PATCH
                  {"Boot": {"BootSourceOverrideEnabled": "Once",
                  "BootSourceOverrideTarget": "Pxe"}} with If-Match only
                  when there is an ETag; then (the test's own check, not
                  MAAS's) GET the system and want Once/Pxe read back
  reset TYPE      POST .../Actions/ComputerSystem.Reset {"ResetType": TYPE};
                  after ForceOff waits for off, after On waits for on
  power-on        MAAS's power_on: query; ForceOff (and wait) if on;
                  set-pxe; On (and wait)
  power-off       MAAS's power_off: query; ForceOff (and wait) unless off;
                  set-pxe
  power-reset     MAAS's power_reset: set-pxe; GracefulRestart (no wait)

Each step prints one JSON line with what it saw; the first failure prints
{"step": ..., "ok": false, "error": ...} and exits 1.

What MAAS does and this script does too: Basic auth on every request
(never a session), headers User-Agent: MAAS, Accept: application/json,
Content-Type: application/json on every request, TLS never verified, the
system URL built from the basename of the first member's @odata.id (or the
node id given, MAAS's node_id setting), a 404 on a URL without a trailing
slash retried once with one, redirects followed (at most 5), a 401 or 403
fatal at once, state polls at 1, 2, 2, 4, 6, 8, 12 s intervals, and a
PowerState of Reset/Unknown/null re-read with backoff (at most 7 times).
What it does not do by default: MAAS retries every other failed request 5
times with backoff (0.5, 1.5, 3.5, 7.5, 15.5 s), which hides a wrong answer
for about 28 s; pass --retries 5 to do the same.
"""

import base64
import json
import os
import posixpath
import sys
import time

for _var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
    os.environ.pop(_var, None)

import requests  # noqa: E402
import urllib3  # noqa: E402

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

SYSTEMS = "redfish/v1/Systems"
RESET = "redfish/v1/Systems/%s/Actions/ComputerSystem.Reset"
WAITING_POLICY = (1, 2, 2, 4, 6, 8, 12)
MAX_STATUS_RETRIES = 7
MAX_REDIRECTS = 5
PXE_ONCE = {"Boot": {"BootSourceOverrideEnabled": "Once",
                     "BootSourceOverrideTarget": "Pxe"}}


class Fatal(Exception):
    """MAAS's PowerFatalError: never retried (401, 403, redirect loops)."""


class StepFailed(Exception):
    pass


def emit(step, **fields):
    print(json.dumps(dict(step=step, ok=True, **fields), sort_keys=True), flush=True)


class Maas:
    def __init__(self, url, user, password, node_id=None, retries=0):
        if "https" not in url and "http" not in url:
            url = "https://" + url  # MAAS's get_url
        self.url = url
        creds = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        self.headers = {
            "User-Agent": "MAAS",
            "Accept": "application/json",
            "Authorization": "Basic " + creds,
            "Content-Type": "application/json",
        }
        self.node_id = node_id
        self.retries = retries
        self.http = requests.Session()
        self.http.trust_env = False
        self.requests = []  # (method, path, status) of every request sent

    def join(self, endpoint):
        # os.path.join(url, endpoint), as MAAS builds its URLs.
        return posixpath.join(self.url, endpoint)

    def _once(self, method, uri, body, etag):
        headers = dict(self.headers)
        if etag:
            headers["If-Match"] = etag
        data = json.dumps(body).encode() if body is not None else None
        for _ in range(MAX_REDIRECTS + 1):
            resp = self.http.request(method, uri, headers=headers, data=data,
                                     verify=False, allow_redirects=False, timeout=60)
            self.requests.append((method, uri, resp.status_code))
            if resp.is_redirect and resp.headers.get("Location"):
                uri = requests.compat.urljoin(uri, resp.headers["Location"])
                continue
            break
        else:
            raise Fatal("more than %d redirects" % MAX_REDIRECTS)
        if resp.status_code >= 400:
            if resp.status_code == 404 and not uri.endswith("/"):
                resp = self.http.request(method, uri + "/", headers=headers, data=data,
                                         verify=False, allow_redirects=False, timeout=60)
                self.requests.append((method, uri + "/", resp.status_code))
                if resp.status_code >= 400:
                    raise StepFailed("%s %s/ answered %d: %s" % (
                        method, uri, resp.status_code, resp.text[:300]))
            elif resp.status_code in (401, 403):
                raise Fatal("%s %s answered %d" % (method, uri, resp.status_code))
            else:
                raise StepFailed("%s %s answered %d: %s" % (
                    method, uri, resp.status_code, resp.text[:300]))
        parsed = None
        if resp.content:
            try:
                parsed = json.loads(resp.content.decode("utf-8"))
            except ValueError as exc:
                raise StepFailed("%s %s: body is not JSON: %s" % (method, uri, exc))
        return parsed, resp

    def request(self, method, uri, body=None, get_etag=lambda: None):
        """MAAS's redfish_request: the ETag is fetched anew for each try."""
        attempt = 0
        while True:
            try:
                return self._once(method, uri, body, get_etag())
            except Fatal:
                raise
            except Exception:
                if attempt == self.retries:
                    raise
                attempt += 1
                time.sleep(((2 ** attempt) - 1) / 2)

    # The driver's operations.

    def get_node_id(self):
        if self.node_id:
            return self.node_id
        systems, _ = self.request("GET", self.join(SYSTEMS))
        member = systems.get("Members")[0].get("@odata.id").rstrip("/")
        self.node_id = posixpath.basename(member)
        return self.node_id

    def system_endpoint(self):
        return posixpath.join(SYSTEMS, self.get_node_id())

    def power_query(self):
        """Returns (MAAS state: on, off or error; the PowerState read)."""
        for retries in range(MAX_STATUS_RETRIES + 1):
            data, resp = self.request("GET", self.join(self.system_endpoint()))
            raw = data.get("PowerState") or "Null"
            state = raw.lower()
            if state in ("off", "poweringon"):
                return "off", raw
            if state in ("on", "paused", "poweringoff"):
                return "on", raw
            if state not in ("reset", "unknown", "null") or retries == MAX_STATUS_RETRIES:
                return "error", raw
            time.sleep(((2 ** (retries + 1)) - 1) / 2)
        return "error", raw

    def boot_endpoint(self):
        data, _ = self.request("GET", self.join(self.system_endpoint()))
        settings = (data or {}).get("@Redfish.Settings") or {}
        odata_id = (settings.get("SettingsObject") or {}).get("@odata.id") \
            if isinstance(settings, dict) else None
        if isinstance(odata_id, str) and odata_id:
            return odata_id.lstrip("/")
        return self.system_endpoint()

    def get_etag(self, endpoint):
        data, resp = self.request("GET", self.join(endpoint))
        return (data or {}).get("@odata.etag") or resp.headers.get("ETag")

    def set_pxe(self):
        endpoint = self.boot_endpoint()
        seen = {}

        def etag():
            seen["etag"] = self.get_etag(endpoint)
            return seen["etag"]

        body, resp = self.request("PATCH", self.join(endpoint), PXE_ONCE, etag)
        after, _ = self.request("GET", self.join(self.system_endpoint()))
        boot = (after or {}).get("Boot", {})
        return {"endpoint": "/" + endpoint, "if_match": seen.get("etag"),
                "patch_status": resp.status_code,
                "read_back": {k: boot.get(k) for k in
                              ("BootSourceOverrideEnabled", "BootSourceOverrideTarget")}}

    def wait_for(self, desired):
        state = None
        for wait in WAITING_POLICY:
            state, raw = self.power_query()
            if state == desired:
                return state
            time.sleep(wait)
        raise StepFailed("system did not become %s; MAAS state %s" % (desired, state))

    def reset(self, reset_type):
        endpoint = RESET % self.get_node_id()
        started = time.monotonic()
        _, resp = self.request("POST", self.join(endpoint), {"ResetType": reset_type})
        fields = {"reset_type": reset_type, "status": resp.status_code,
                  "answered_in_s": round(time.monotonic() - started, 3)}
        if reset_type == "ForceOff":
            fields["state"] = self.wait_for("off")
        elif reset_type == "On":
            fields["state"] = self.wait_for("on")
        return fields


def run_step(maas, step, args):
    if step == "node-id":
        return {"node_id": maas.get_node_id()}
    if step == "query":
        state, raw = maas.power_query()
        if state == "error":
            raise StepFailed("PowerState %r maps to MAAS's error state" % raw)
        return {"state": state, "power_state": raw}
    if step == "set-pxe":
        got = maas.set_pxe()
        if got["read_back"] != {"BootSourceOverrideEnabled": "Once",
                                "BootSourceOverrideTarget": "Pxe"}:
            raise StepFailed("boot override read back as %s" % json.dumps(got))
        return got
    if step == "reset":
        return maas.reset(args[0])
    if step == "power-on":
        fields = {}
        state, _ = maas.power_query()
        fields["state_before"] = state
        if state == "on":
            fields["off"] = maas.reset("ForceOff")
        fields["set_pxe"] = run_step(maas, "set-pxe", [])
        fields["on"] = maas.reset("On")
        return fields
    if step == "power-off":
        fields = {}
        state, _ = maas.power_query()
        fields["state_before"] = state
        if state != "off":
            fields["off"] = maas.reset("ForceOff")
        fields["set_pxe"] = run_step(maas, "set-pxe", [])
        return fields
    if step == "power-reset":
        return {"set_pxe": run_step(maas, "set-pxe", []),
                "reset": maas.reset("GracefulRestart")}
    raise AssertionError(step)


STEP_ARGS = {"node-id": 0, "query": 0, "set-pxe": 0, "reset": 1,
             "power-on": 0, "power-off": 0, "power-reset": 0}


def main(argv):
    args = argv[1:]
    options = {}
    for flag in ("--node-id", "--retries"):
        if flag in args:
            i = args.index(flag)
            if i + 1 >= len(args):
                raise SystemExit(__doc__)
            options[flag] = args[i + 1]
            del args[i:i + 2]
    if len(args) < 3:
        raise SystemExit(__doc__)
    url, user, password = args[:3]
    words = args[3:]
    steps = []
    while words:
        name = words.pop(0)
        if name not in STEP_ARGS or len(words) < STEP_ARGS[name]:
            raise SystemExit("bad step %r\n\n%s" % (name, __doc__))
        steps.append((name, words[:STEP_ARGS[name]]))
        del words[:STEP_ARGS[name]]
    if not steps:
        steps = [("node-id", []), ("query", []), ("power-off", []), ("power-on", []),
                 ("power-reset", []), ("query", [])]
    maas = Maas(url, user, password, options.get("--node-id"),
                int(options.get("--retries", 0)))
    step = None
    try:
        for step, step_args in steps:
            before = len(maas.requests)
            fields = run_step(maas, step, step_args)
            fields["requests"] = ["%s %s %d" % (m, requests.compat.urlparse(u).path, s)
                                  for m, u, s in maas.requests[before:]]
            emit(step, args=step_args, **fields)
    except Exception as exc:  # any failure is the test's failure
        print(json.dumps({"step": step, "ok": False,
                          "error": "%s: %s" % (type(exc).__name__, exc)}), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
