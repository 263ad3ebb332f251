-- tokens.lua — wrk script for bench/run.sh: one request per token id, each
-- request a different token.
--
--   wrk -t T -c C -d D --latency -s bench/tokens.lua URL -- MODE IDS_FILE API_KEY T REPEAT
--
-- MODE is "cancel" (PUT /tokens/{id}/cancel, Content-Length: 0) or "get"
-- (GET /tokens/{id}). IDS_FILE has one token id a line; thread k of T takes
-- lines k, k+T, k+2T, ... so no two requests of a run name the same token
-- until the list is used up. REPEAT says what happens then: "wrap" starts
-- the list again (GET runs, and nginx, where a repeat changes nothing);
-- "once" never repeats a token: a thread whose share is used up stops, and
-- done() reports it, as the run's requests/s would then be too low.
-- Every request carries "Authorization: Bearer API_KEY"; the same script runs
-- against nginx, so both servers get the same method, paths and headers.
-- done() prints one "BENCH key=value ..." line that run.sh parses.

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
  local mode, file, key, nthreads, repeat_ = args[1], args[2], args[3], tonumber(args[4]), args[5]
  if (mode ~= "cancel" and mode ~= "get") or not file or not key or not nthreads
     or (repeat_ ~= "once" and repeat_ ~= "wrap") then
    error("usage: -- cancel|get IDS_FILE API_KEY NTHREADS once|wrap")
  end
  wrap = repeat_ == "wrap"
  local method, suffix = "GET", ""
  local headers = { ["Authorization"] = "Bearer " .. key }
  if mode == "cancel" then
    method, suffix = "PUT", "/cancel"
    headers["Content-Length"] = "0"
  end
  local i = 0
  for id in io.lines(file) do
    if i % nthreads == tid and id ~= "" then
      nreqs = nreqs + 1
      reqs[nreqs] = wrk.format(method, "/tokens/" .. id .. suffix, headers)
    end
    i = i + 1
  end
  if nreqs == 0 then error("no token ids for thread " .. tid .. " in " .. file) end
end

function request()
  pos = pos + 1
  if pos > nreqs then
    if wrap then
      pos = 1
    else
      -- No token left that this run has not used: stop rather than repeat one.
      -- (The request returned here may still go out: a repeat cancel, which
      -- answers 200 and changes nothing; it is not counted in "issued".)
      if exhausted == 0 then wrk.thread:stop() end
      exhausted = 1
      return reqs[nreqs]
    end
  end
  issued = issued + 1
  return reqs[pos]
end

function done(summary, latency, requests)
  local issued_all, exhausted_all = 0, 0
  for _, t in ipairs(threads) do
    issued_all = issued_all + t:get("issued")
    exhausted_all = exhausted_all + t:get("exhausted")
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "non2xx=%d err_connect=%d err_read=%d err_write=%d err_timeout=%d issued=%d exhausted_threads=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout, issued_all, exhausted_all))
end
