-- wrk script: GET /api/v1/profiles/{id} for random profile ids read from a file.
--
--   sqlite3 DATA/kinship.sqlite "select id from profiles" > ids.txt
--   TOKEN=kt_... IDS=ids.txt wrk -t2 -c64 -d30s --latency -s scripts/get_profile.lua http://127.0.0.1:7878

local ids = {}
local threads = {}
local thread_id = 0

function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  local path = os.getenv("IDS") or error("set IDS to a file of profile ids")
  for line in io.lines(path) do ids[#ids + 1] = line end
  math.randomseed(id * 104729 + os.time())
  wrk.headers["Authorization"] = "Bearer " .. (os.getenv("TOKEN") or error("set TOKEN"))
  statuses = {}
end

function request()
  return wrk.format("GET", "/api/v1/profiles/" .. ids[math.random(#ids)])
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write("------------------------------\n")
  local totals = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do totals[code] = (totals[code] or 0) + n end
  end
  for code, n in pairs(totals) do io.write(string.format("status %d: %d requests\n", code, n)) end
  io.write(string.format("p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000))
end
