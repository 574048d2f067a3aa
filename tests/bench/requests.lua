-- wrk script: each request is a random (agency, client) pair, sent with that agency's own
-- API key. The pairs come from a tab-separated file: `<path>\t<authorization header>`.
-- Requests are pre-formatted in init() so that request() costs one table lookup.

local reqs = {}
local thread_id = 0

function setup(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  for line in io.lines(args[1]) do
    local path, auth = line:match("^([^\t]+)\t(.+)$")
    if path then
      reqs[#reqs + 1] = wrk.format("GET", path, { ["Authorization"] = auth })
    end
  end
  math.randomseed(os.time() * 1000 + (thread_id or 0))
end

function request()
  return reqs[math.random(#reqs)]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
