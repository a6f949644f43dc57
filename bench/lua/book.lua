-- POST /bookings/ {"event_id": N} as a different user each time.
-- wrk ... URL -- tokens.txt pairs.txt offset threads [answers_per_thread done_dir]
-- pairs.txt has "user_index event_id" lines (user_index is a 0-based line of tokens.txt).
-- Thread t of T sends pairs offset+t, offset+t+T, ... so no pair is sent twice in a run,
-- and the runner starts the next run past the highest pair this one used (max_issued).
dofile(os.getenv("BENCH_LUA_DIR") .. "/stats.lua")

local tokens, pairs_list = {}, {}
local offset, stride = 0, 1
local answers_per_thread, answered, done_dir = nil, 0, nil

function init(args)
   for line in io.lines(args[1]) do
      if line ~= "" then table.insert(tokens, line) end
   end
   for line in io.lines(args[2]) do
      local user, event = line:match("^(%d+) (%d+)$")
      if user then
         table.insert(pairs_list, {"Bearer " .. tokens[tonumber(user) + 1],
                                   '{"event_id": ' .. event .. '}'})
      end
   end
   offset, stride = tonumber(args[3]), tonumber(args[4])
   answers_per_thread, done_dir = tonumber(args[5]), args[6]
end

-- With answers_per_thread (the rush), a thread stops after that many answers: a bounded
-- number of attempts, however fast or slow the server is. wrk itself runs until its
-- duration, so the thread leaves a file in done_dir and the runner interrupts wrk (SIGINT
-- makes it stop and report the time actually run) once every thread has one.
local count_status = response
function response(status, headers, body)
   count_status(status, headers, body)
   answered = answered + 1
   if answers_per_thread and answered == answers_per_thread then
      io.open(done_dir .. "/thread-" .. thread_id, "w"):close()
      wrk.thread:stop()
   end
end

function request()
   -- Past the end of the list it wraps around: repeats answer 409 (already booked).
   local index = (offset + thread_id + issued * stride) % #pairs_list + 1
   issued = issued + 1
   local pair = pairs_list[index]
   return wrk.format("POST", "/bookings/", {
      ["Authorization"] = pair[1],
      ["Content-Type"] = "application/json",
   }, pair[2])
end
