-- wrk script: sustained POST /v1/batch with 100-event batches, every message with a
-- unique messageId, over a pool of users. Counts responses by status.
--
--   WRITE_KEY=wk_... wrk -t2 -c16 -d30s -s scripts/load_batch.lua http://127.0.0.1:7878
--
-- Env: WRITE_KEY (required), BATCH (events per request, default 100), USERS (distinct
-- userIds, default 10000), RUN (messageId prefix, default the start time).

local batch_size = tonumber(os.getenv("BATCH") or "100")
local users = tonumber(os.getenv("USERS") or "10000")
local run = os.getenv("RUN") or tostring(os.time())
local key = os.getenv("WRITE_KEY") or error("set WRITE_KEY")

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(data)
  return ((data:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#data % 3 + 1])
end

local threads = {}
local thread_id = 0

function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  statuses = {}
  math.randomseed(id * 7919 + os.time())
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Basic " .. base64(key .. ":")
end

function request()
  counter = counter + 1
  local items = {}
  for i = 1, batch_size do
    local u = math.random(users)
    items[i] = string.format(
      '{"type":"track","userId":"u%d","event":"Product Viewed","messageId":"%s-%d-%d-%d","timestamp":"2024-05-01T10:00:00Z","properties":{"sku":"SKU-%d","price":%d.99,"currency":"EUR"},"context":{"ip":"10.0.0.%d"}}',
      u, run, id, counter, i, math.random(500), math.random(200), i % 250)
  end
  return wrk.format(nil, "/v1/batch", nil, '{"batch":[' .. table.concat(items, ",") .. ']}')
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for code, n in pairs(s) do totals[code] = (totals[code] or 0) + n end
  end
  local secs = summary.duration / 1e6
  io.write("------------------------------\n")
  for code, n in pairs(totals) do
    io.write(string.format("status %d: %d requests\n", code, n))
  end
  local ok = totals[200] or 0
  io.write(string.format("durable events/s (200 x %d / %.1f s): %.0f\n", batch_size, secs, ok * batch_size / secs))
  io.write(string.format("latency p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
