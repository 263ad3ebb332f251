-- events.lua — wrk script for bench/network.sh: POSTs a JSON body per
-- request, each from a pre-generated list, so a run sends exactly the
-- requests the list plans (distinct events, planned duplicates, distinct
-- tokenization requests) and can be checked against the store afterwards.
--
--   wrk -t T -c C -d D --latency -s bench/events.lua URL -- PATH BODIES_FILE API_KEY T REPEAT
--
-- PATH is the request path (/network/v1/events, /network/v1/tokenizations).
-- BODIES_FILE has one JSON body a line; thread k of T takes lines k, k+T,
-- k+2T, ... in that order (network.sh lays the list out so: a planned
-- duplicate repeats an earlier body of the same thread, and all the events of
-- one digital card belong to one thread, so their order is kept). REPEAT says
-- what happens when a thread's share is used up: "wrap" starts it again (nginx,
-- where a repeat changes nothing); "once" never repeats a body: the thread
-- stops, and done() reports it, as the run's requests/s would then be too low.
-- Every request is "POST PATH" with "Authorization: Bearer API_KEY" and
-- "Content-Type: application/json"; the same script runs against nginx, so
-- both servers get the same method, paths, headers and bodies.
-- done() prints one "BENCH key=value ..." line that network.sh parses, with
-- issued_by_thread= the number of bodies each thread handed out (in the
-- thread order above): with the list, it says which requests went out.

local threads = {}
local nsetup = 0

-- node_for(thread, k): thread k's server (WRK_NODES, bench/nodes.lua, from
-- this script's folder).
local node_for = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "nodes.lua")

function setup(thread)
  thread:set("tid", nsetup)
  node_for(thread, nsetup)
  nsetup = nsetup + 1
  table.insert(threads, thread)
end

local reqs, nreqs, pos = {}, 0, 0
issued = 0
exhausted = 0
local wrap = false

function init(args)
  local path, file, key, nthreads, repeat_ = args[1], args[2], args[3], tonumber(args[4]), args[5]
  if not path or not file or not key or not nthreads or (repeat_ ~= "once" and repeat_ ~= "wrap") then
    error("usage: -- PATH BODIES_FILE API_KEY NTHREADS once|wrap")
  end
  wrap = repeat_ == "wrap"
  local headers = { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }
  local i = 0
  for body in io.lines(file) do
    if i % nthreads == tid then
      if body == "" then error("empty line " .. (i + 1) .. " in " .. file) end
      nreqs = nreqs + 1
      reqs[nreqs] = wrk.format("POST", path, headers, body)
    end
    i = i + 1
  end
  if nreqs == 0 then error("no bodies for thread " .. tid .. " in " .. file) end
end

function request()
  pos = pos + 1
  if pos > nreqs then
    if wrap then
      pos = 1
    else
      -- Nothing left that this run has not sent: stop rather than repeat a body.
      -- (The request returned here may still go out: a repeat, which tokend
      -- answers as the first time and which changes nothing; it is not
      -- counted in "issued".)
      if exhausted == 0 then wrk.thread:stop() end
      exhausted = 1
      return reqs[nreqs]
    end
  end
  issued = issued + 1
  return reqs[pos]
end

function done(summary, latency, requests)
  local issued_all, exhausted_all, by_thread = 0, 0, {}
  for _, t in ipairs(threads) do
    issued_all = issued_all + t:get("issued")
    exhausted_all = exhausted_all + t:get("exhausted")
    by_thread[t:get("tid") + 1] = tostring(t:get("issued"))
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "non2xx=%d err_connect=%d err_read=%d err_write=%d err_timeout=%d issued=%d exhausted_threads=%d " ..
    "issued_by_thread=%s\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout, issued_all, exhausted_all, table.concat(by_thread, ",")))
end
