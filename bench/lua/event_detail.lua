-- GET /events/{id} for ids drawn at random from a file: wrk ... URL -- event_ids.txt
dofile(os.getenv("BENCH_LUA_DIR") .. "/stats.lua")

local ids = {}

function init(args)
   for line in io.lines(args[1]) do
      if line ~= "" then table.insert(ids, line) end
   end
   math.randomseed(os.time() + 7919 * thread_id)
end

function request()
   issued = issued + 1
   return wrk.format("GET", "/events/" .. ids[math.random(#ids)])
end
