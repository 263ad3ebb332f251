-- nodes.lua — which server each wrk thread connects to, for bench/tokens.lua
-- and bench/events.lua (they load it with dofile from their own folder and
-- call the function it returns from setup(), with the thread's index).
--
-- WRK_NODES (environment, optional): "HOST:PORT,HOST:PORT,...", several tokend
-- nodes on one PostgreSQL database (bench/lib.sh, pg_measured). Thread k then
-- connects to node k mod N instead of the URL's host: with -t2 and two nodes,
-- each node gets one thread and half the connections. The requests do not
-- change, nor which thread sends which. Without it, every thread connects to
-- the URL's host.

local nodes = nil -- the resolved addresses, once

return function(thread, k)
  local spec = os.getenv("WRK_NODES")
  if not spec or spec == "" then return end
  if not nodes then
    nodes = {}
    for hp in spec:gmatch("[^,]+") do
      local host, port = hp:match("^(.+):(%d+)$")
      local addrs = host and wrk.lookup(host, port)
      if not addrs or #addrs == 0 then error("WRK_NODES: cannot resolve " .. hp) end
      nodes[#nodes + 1] = addrs[1]
    end
  end
  thread.addr = nodes[k % #nodes + 1]
end
