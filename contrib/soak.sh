#!/bin/sh
# Soak test: 200 nodes served by novabmc against the Nova simulator, mixed
# ipmitool and ipmipower traffic (status, on, off, soft, cycle, reset,
# bootdev pxe) from several clients at once, while the simulator injects
# faults (409 storms, 500s and 503s, dropped connections, lost answers,
# stalled bodies, slow answers, revoked tokens, Nova down for a while).
# Then the clients stop, the faults are cleared, and the script checks that
# every node converged to the power state last requested of it (as the BMC
# reports it and as Nova shows it), that nothing is left pending, and that
# the daemon's resident memory, open file descriptors and sessions did not
# grow (sessions are counted once the idle timeout has reaped those clients
# left open). It prints a summary and exits non-zero if any check failed.
#
#   contrib/soak.sh [SECONDS]      default 60
#
# Everything runs on 127.0.0.1 (ports 7000-7199 and one for the simulator),
# in a temporary directory, and the processes it starts are stopped on exit.
# Needs ipmitool, ipmipower (freeipmi-tools), python3 and curl.
set -eu
cd "$(dirname "$0")/.."

SECONDS_TO_RUN="${1:-60}"
NODES=200
BASE_PORT=7000
SIM_PORT=7990
ADDRESS=127.0.0.1

for tool in ipmitool ipmipower python3 curl; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "soak.sh: $tool is missing (apt-get install ipmitool freeipmi-tools python3 curl)" >&2
        exit 2
    }
done

cargo build --release --locked --quiet
BIN="$(pwd)/target/release/novabmc"

WORK="$(mktemp -d)"
SIM_PID=""
BMC_PID=""
cleanup() {
    [ -n "$BMC_PID" ] && kill "$BMC_PID" 2>/dev/null && wait "$BMC_PID" 2>/dev/null || true
    [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

"$BIN" --log warn nova-simulator --listen "$ADDRESS:$SIM_PORT" \
    --clouds-yaml "$WORK/clouds.yaml" --servers "$NODES" --prefix soak \
    2>"$WORK/sim.log" &
SIM_PID=$!
SIM="http://$ADDRESS:$SIM_PORT"
for _ in $(seq 100); do
    curl -sf "$SIM/_sim/faults" >/dev/null 2>&1 && break
    sleep 0.1
done
# Transitions of a second or two: commands keep arriving during them.
curl -sf -X PUT -H 'content-type: application/json' "$SIM/_sim/timings" \
    -d '{"start_ms": 1500, "stop_ms": 1200, "reboot_ms": 1500, "rebuild_ms": 2500, "rescue_ms": 1500}'

{
    printf '[users.admin]\npassword = "password"\n'
    printf '[backend]\ntype = "nova"\ncloud = "sim"\nclouds_yaml = "%s"\n' "$WORK/clouds.yaml"
    printf 'refresh_secs = 2\nnetwork_boot = "rescue"\nipxe_image = "ipxe-boot"\n'
    printf 'request_timeout_secs = 5\nstate_dir = "%s"\n' "$WORK/state"
    i=0
    while [ "$i" -lt "$NODES" ]; do
        printf '[nodes.soak-%d]\naddress = "%s"\nport = %d\n' "$i" "$ADDRESS" $((BASE_PORT + i))
        i=$((i + 1))
    done
} >"$WORK/novabmc.toml"

"$BIN" --log info serve --config "$WORK/novabmc.toml" 2>"$WORK/daemon.log" &
BMC_PID=$!

export SOAK_SECONDS="$SECONDS_TO_RUN" SOAK_NODES="$NODES" SOAK_BASE_PORT="$BASE_PORT" \
    SOAK_ADDRESS="$ADDRESS" SOAK_SIM="$SIM" SOAK_PID="$BMC_PID" SOAK_WORK="$WORK"
python3 - <<'EOF'
import json, os, random, subprocess, sys, threading, time, urllib.request

seconds = int(os.environ["SOAK_SECONDS"])
nodes = int(os.environ["SOAK_NODES"])
base = int(os.environ["SOAK_BASE_PORT"])
address = os.environ["SOAK_ADDRESS"]
sim = os.environ["SOAK_SIM"]
pid = int(os.environ["SOAK_PID"])
work = os.environ["SOAK_WORK"]
CLIENTS = 8

def http(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(sim + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read()
        return json.loads(text) if text else None

def ipmitool(port, *args):
    return subprocess.run(["ipmitool", "-I", "lanplus", "-H", address, "-p", str(port),
                           "-U", "admin", "-P", "password", "-R", "2", "-N", "2", *args],
                          capture_output=True, text=True, timeout=60)

def ipmipower(port, *args):
    return subprocess.run(["ipmipower", "-D", "LAN_2_0", "-h", f"{address}:{port}",
                           "-u", "admin", "-p", "password", *args],
                          capture_output=True, text=True, timeout=60)

def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

def fds():
    return len(os.listdir(f"/proc/{pid}/fd"))

def alive():
    return os.path.exists(f"/proc/{pid}")

def say(*a):
    print("soak:", *a, flush=True)

# Ready: every node answers its power state.
deadline = time.time() + 120
for i in range(nodes):
    while ipmitool(base + i, "power", "status").returncode != 0:
        if time.time() > deadline or not alive():
            sys.exit(f"node {i} never answered; see {work}/daemon.log")
        time.sleep(0.2)

# Warm-up, so allocator pools and caches are in place before the baseline.
for i in range(nodes):
    ipmipower(base + i, "--stat")
rss0, fds0 = rss_kib(), fds()
say(f"{nodes} nodes ready; traffic for {seconds} s")

last = {}            # node -> True (on) / False (off): the last power command
lock = threading.Lock()
counts = {"ipmitool": 0, "ipmipower": 0}
failures = []
stop = threading.Event()

POWER = {"on": True, "off": False, "soft": False, "cycle": True, "reset": True}
TOOL_CMD = {
    "ipmitool": {"on": ["power", "on"], "off": ["power", "off"], "soft": ["power", "soft"],
                 "cycle": ["power", "cycle"], "reset": ["power", "reset"],
                 "status": ["power", "status"], "pxe": ["chassis", "bootdev", "pxe"]},
    "ipmipower": {"on": ["--on"], "off": ["--off"], "soft": ["--soft"], "cycle": ["--cycle"],
                  "reset": ["--reset"], "status": ["--stat"]},
}

def client(k):
    rng = random.Random(k)
    mine = [i for i in range(nodes) if i % CLIENTS == k]
    while not stop.is_set():
        i = rng.choice(mine)
        tool = rng.choice(["ipmitool", "ipmipower"])
        what = rng.choice(["status", "status", "on", "off", "soft", "cycle", "reset", "pxe"])
        if what not in TOOL_CMD[tool]:
            tool = "ipmitool"
        args = TOOL_CMD[tool][what]
        r = (ipmitool if tool == "ipmitool" else ipmipower)(base + i, *args)
        ok = r.returncode == 0 and (tool == "ipmitool" or ": ok" in r.stdout or
                                    (what == "status" and (": on" in r.stdout or ": off" in r.stdout)))
        with lock:
            counts[tool] += 1
            if not ok:
                failures.append(f"node {i} {tool} {' '.join(args)}: rc {r.returncode} {r.stdout.strip()} {r.stderr.strip()}"[:300])
            elif what in POWER:
                last[i] = POWER[what]

FAULTS = [
    {"conflict_next": 20},
    {"fail_next": 10, "fail_status": 500},
    {"fail_next": 10, "fail_status": 503},
    {"drop_next": 5},
    {"lose_answer_next": 3},
    {"stall_body_next": 2},
    {"latency_ms": 1500},
    {"nova_down": True},
    "expire-tokens",
]
injected = []

def injector():
    rng = random.Random(99)
    while not stop.wait(rng.uniform(3, 8)):
        f = rng.choice(FAULTS)
        injected.append(f if isinstance(f, str) else list(f)[0])
        if f == "expire-tokens":
            http("POST", "/_sim/expire-tokens")
            continue
        http("PUT", "/_sim/faults", f)
        if "latency_ms" in f or "nova_down" in f:
            stop.wait(rng.uniform(2, 5))
            http("PUT", "/_sim/faults", {})

threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
threads.append(threading.Thread(target=injector))
t0 = time.time()
for t in threads:
    t.start()
stop.wait(seconds)
stop.set()
for t in threads:
    t.join()
http("PUT", "/_sim/faults", {})
say("traffic stopped; waiting for every node to converge")

# Convergence: the BMC reports, and Nova shows, the last requested state,
# with nothing pending in the state directory.
def pending():
    d = os.path.join(work, "state", "nodes")
    out = []
    for name in os.listdir(d) if os.path.isdir(d) else []:
        try:
            with open(os.path.join(d, name)) as f:
                if json.load(f).get("power"):
                    out.append(name)
        except (OSError, ValueError):
            pass
    return out

def wrong():
    servers = {s["name"]: s for s in http("GET", "/_sim/servers")["servers"] if not s["deleted"]}
    bad = []
    for i, want in sorted(last.items()):
        s = servers[f"soak-{i}"]
        running = s["visible"]["power_state"] == 1
        if s["busy"] or running != want:
            bad.append(f"soak-{i}: want {'on' if want else 'off'}, nova {s['visible']['status']}"
                       f"{' (busy)' if s['busy'] else ''}")
    return bad

t1 = time.time()
converged = False
while time.time() - t1 < 300:
    if not pending() and not wrong():
        converged = True
        break
    time.sleep(1)
convergence = time.time() - t1
reported_wrong = []
for i, want in sorted(last.items()):
    out = ipmitool(base + i, "power", "status").stdout.strip()
    if out != f"Chassis Power is {'on' if want else 'off'}":
        reported_wrong.append(f"soak-{i}: want {'on' if want else 'off'}, BMC says {out!r}")

def sessions():
    counts = []
    for i in range(nodes):
        out = ipmitool(base + i, "session", "info", "active").stdout
        n = [l for l in out.splitlines() if l.lower().startswith("active sessions")]
        counts.append(int(n[0].split(":")[1]) if n else -1)
    return counts

# Sessions a client left open stay until the idle timeout (ipmipower
# --reset never sends Close Session: a FreeIPMI workaround for a BMC that
# did not answer it after a reset); a leak would stay for good.
abandoned = sum(1 for c in sessions() if c != 1)
say(f"{abandoned} nodes hold sessions clients left open; waiting out the 60 s idle timeout")
time.sleep(65)
say("checking sessions")
# Sessions: each node should report only the session asking.
leaked = [f"soak-{i}: {c} active sessions" for i, c in enumerate(sessions()) if c != 1]

time.sleep(1)
rss1, fds1 = rss_kib(), fds()
requests = http("GET", "/_sim/requests")["requests"]
actions = sum(1 for r in requests if r["path"].endswith("/action") and 200 <= r["status"] < 300)
growth = rss1 - rss0

print(f"soak: {seconds} s of traffic on {nodes} nodes, {CLIENTS} clients at once")
print(f"  commands: {counts['ipmitool']} with ipmitool, {counts['ipmipower']} with ipmipower; "
      f"{len(failures)} failed")
print(f"  faults injected: {len(injected)} ({', '.join(sorted(set(injected)))})")
print(f"  Nova: {len(requests)} requests, {actions} accepted actions")
print(f"  nodes commanded: {len(last)}; converged: {'yes' if converged else 'NO'} "
      f"({convergence:.1f} s after the traffic stopped)")
print(f"  reported state wrong: {len(reported_wrong)}; Nova state wrong: {len(wrong())}; "
      f"pending left: {len(pending())}")
print(f"  resident memory: {rss0} KiB after warm-up, {rss1} KiB at the end ({growth:+d} KiB)")
print(f"  file descriptors: {fds0} then {fds1}; nodes with sessions left open by clients when "
      f"the traffic stopped: {abandoned}; after the idle timeout: {len(leaked)}")
problems = failures[:5] + reported_wrong[:5] + wrong()[:5] + leaked[:5]
for p in problems:
    print("  problem:", p)
ok = (not failures and converged and not reported_wrong and not leaked
      and fds1 <= fds0 and growth < 8 * 1024 and alive())
print("soak: PASS" if ok else "soak: FAIL")
sys.exit(0 if ok else 1)
EOF
