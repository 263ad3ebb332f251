#!/usr/bin/env python3
"""Follows one notify.sh delivery: polls tokend's /metrics every 100 ms over one
kept-alive connection per node and writes the timeline (the time since the
epoch, rows delivered, transfers in flight) until ROWS more rows were
delivered. It starts before the delivery does (notify.sh waits for its first
line, then PUTs the delivery settings), so that its own start-up, about half a
second on a busy machine, is not in the delivery's time. URL may list several
tokend nodes, comma-separated (several nodes on one PostgreSQL database): their
counters are summed (DELIVERED0 and DEAD0 are sums too).

One process for the whole delivery: the shell loop it replaces started about
nine processes (curl, awk, date, sleep) per poll, which took a fifth of this
2-core machine away from tokend and the receiver.

usage: watch_delivery.py URL[,URL...] ROWS DELIVERED0 DEAD0 TIMEOUT_S TIMELINE
exit: 0 all delivered; 2 a row went dead; 3 timed out; 4 tokend unreachable.
"""
import http.client
import sys
import time
import urllib.parse


def metrics(conn):
    conn.request("GET", "/metrics")
    resp = conn.getresponse()
    body = resp.read().decode()
    if resp.status != 200:
        raise OSError(f"/metrics answered {resp.status}")
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition(" ")
            out[name] = value
    return out


def main():
    urls, rows, d0, x0, timeout_s, timeline = sys.argv[1:7]
    rows, d0, x0, timeout_s = int(rows), int(d0), int(x0), float(timeout_s)
    conns = []
    for url in urls.split(","):
        u = urllib.parse.urlsplit(url)
        conns.append(http.client.HTTPConnection(u.hostname, u.port, timeout=10))

    def total(ms, name):
        return sum(int(m.get(name, "0") or 0) for m in ms)

    start = time.time()
    with open(timeline, "w", buffering=1) as tl:
        while True:
            try:
                ms = [metrics(conn) for conn in conns]
            except (OSError, http.client.HTTPException) as e:
                print(f"watch_delivery: {e}", file=sys.stderr)
                return 4
            now = time.time()
            d = total(ms, "tokend_notifications_delivered_total") - d0
            tl.write(f"{now:.3f} {d} {total(ms, 'tokend_notifications_in_flight')}\n")
            if d >= rows:
                return 0
            if total(ms, "tokend_notifications_dead_total") != x0:
                return 2
            if now - start > timeout_s:
                print(f"watch_delivery: {d} of {rows} delivered after {now - start:.1f}s", file=sys.stderr)
                return 3
            time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
