-- wrk script of contrib/bench/redfish.sh: GETs the system paths listed in
-- a file, in turn, with HTTP Basic credentials, optionally closing the
-- connection after every request, and prints one machine-readable line.
--
--   wrk ... -s redfish.lua URL -- PATHS_FILE "Basic ..." keep|close

local paths = {}
local auth
local close = false
local next_path = 1

function init(args)
    for line in io.lines(args[1]) do
        if line ~= "" then paths[#paths + 1] = line end
    end
    auth = args[2]
    close = args[3] == "close"
    -- Threads start at different places in the list.
    next_path = math.random(#paths)
end

function request()
    local path = paths[next_path]
    next_path = next_path % #paths + 1
    local headers = { Authorization = auth }
    if close then headers["Connection"] = "close" end
    return wrk.format("GET", path, headers)
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
        e.connect, e.read, e.write, e.status, e.timeout))
end
