-- GET the URL given to wrk, optionally with a bearer token: wrk ... URL -- [token]
dofile(os.getenv("BENCH_LUA_DIR") .. "/stats.lua")

function init(args)
   if args[1] and args[1] ~= "" then
      wrk.headers["Authorization"] = "Bearer " .. args[1]
   end
end
