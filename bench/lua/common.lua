-- Shared by every scenario (loaded with dofile from each script).
--
-- * setup() numbers the threads (global `id` = 1..n in each thread), so a scenario can
--   read its own pool file in init();
-- * response() counts every non-2xx status as an error (wrk itself only counts >= 400,
--   and only in summary.errors.status);
-- * done() prints one machine-readable line, `BENCH_JSON {...}`, that bench/run.py parses.
--   Latencies are in microseconds, as wrk records them.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("id", #threads)
end

non2xx = 0
starved = 0  -- requests sent without material (pool empty): they fail and are counted

function count(status)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   end
end

function response(status, headers, body)
   count(status)
end

function env(name)
   local value = os.getenv(name)
   if value == nil or value == "" then
      error("missing environment variable " .. name)
   end
   return value
end

-- One line per pool file, for thread `id`.
function read_pool(name)
   local items = {}
   for line in io.lines(env("BENCH_POOL_DIR") .. "/" .. name .. "_" .. id .. ".txt") do
      if line ~= "" then
         items[#items + 1] = line
      end
   end
   return items
end

function form_headers()
   return {
      ["Host"] = wrk.headers["Host"],
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Authorization"] = env("BENCH_BASIC"),
   }
end

function done(summary, latency, requests)
   local bad, short = 0, 0
   for _, t in ipairs(threads) do
      bad = bad + (t:get("non2xx") or 0)
      short = short + (t:get("starved") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"non2xx":%d,"starved":%d,'
      .. '"connect":%d,"read":%d,"write":%d,"timeout":%d,"status_ge_400":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
      summary.requests, summary.duration, summary.bytes, bad, short,
      e.connect, e.read, e.write, e.timeout, e.status,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
