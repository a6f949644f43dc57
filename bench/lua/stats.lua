-- Shared by every scenario (loaded with dofile): counts status codes per thread and prints
-- one line "BENCH_RESULT {json}" when wrk finishes, which bench/run.py parses.
-- Each wrk thread has its own Lua state; `setup` runs in the main state once per thread.

local threads = {}

function setup(thread)
   thread:set("thread_id", #threads)
   table.insert(threads, thread)
end

statuses = {}
issued = 0 -- requests this thread has built (booking scripts stripe their lists with it)

function response(status, headers, body)
   local key = tostring(status)
   statuses[key] = (statuses[key] or 0) + 1
end

local function json_object(map)
   local parts = {}
   for key, value in pairs(map) do
      table.insert(parts, string.format('"%s": %d', key, value))
   end
   table.sort(parts)
   return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests)
   local merged, max_issued = {}, 0
   for _, thread in ipairs(threads) do
      for key, value in pairs(thread:get("statuses") or {}) do
         merged[key] = (merged[key] or 0) + value
      end
      max_issued = math.max(max_issued, thread:get("issued") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "p999": %d, "mean": %.1f, ' ..
      '"max": %d, "stdev": %.1f}, "statuses": %s, "threads": %d, "max_issued": %d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.mean, latency.max, latency.stdev,
      json_object(merged), #threads, max_issued))
end
