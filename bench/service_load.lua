-- wrk script for bench/service_load.sh: every connection cycles through the service's list and
-- show endpoints with the bearer token in STILLPOINT_TOKEN and the point id in STILLPOINT_POINT.
local token = os.getenv("STILLPOINT_TOKEN")
local point = os.getenv("STILLPOINT_POINT")
local paths = {
  "/api/v1/vms",
  "/api/v1/vms/web01",
  "/api/v1/snapshots?limit=50",
  "/api/v1/snapshots/" .. point,
  "/api/v1/jobs",
  "/api/v1/events?limit=50",
}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  next_path = id
  wrk.headers["Authorization"] = "Bearer " .. token
end

function request()
  next_path = next_path % #paths + 1
  return wrk.format("GET", paths[next_path])
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.2f, "p50_ms": %.2f, "p90_ms": %.2f, "p99_ms": %.2f, ' ..
    '"max_ms": %.2f, "non_2xx": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "timeouts": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    errors.status, errors.connect, errors.read, errors.write, errors.timeout))
end
