#!/usr/bin/env python3
"""Follows one notify.sh scenario: polls tokend's /metrics every 100 ms over one
kept-alive connection and writes the timeline (seconds since T0, rows delivered,
transfers in flight) until ROWS more rows were delivered.

One process for the whole delivery: the shell loop it replaces started about
nine processes (curl, awk, date, sleep) per poll, which took a fifth of this
2-core machine away from tokend and the receiver.

usage: watch_delivery.py URL T0 ROWS DELIVERED0 DEAD0 TIMEOUT_S TIMELINE
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
    url, t0, rows, d0, x0, timeout_s, timeline = sys.argv[1:8]
    t0, rows, d0, x0, timeout_s = float(t0), int(rows), int(d0), int(x0), float(timeout_s)
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    with open(timeline, "w") as tl:
        while True:
            time.sleep(0.1)
            try:
                m = metrics(conn)
            except (OSError, http.client.HTTPException) as e:
                print(f"watch_delivery: {e}", file=sys.stderr)
                return 4
            el = time.time() - t0
            d = int(m.get("tokend_notifications_delivered_total", "0")) - d0
            tl.write(f"{el:.3f} {d} {m.get('tokend_notifications_in_flight', '')}\n")
            if d >= rows:
                return 0
            if int(m.get("tokend_notifications_dead_total", "0")) != x0:
                return 2
            if el > timeout_s:
                print(f"watch_delivery: {d} of {rows} delivered after {el:.1f}s", file=sys.stderr)
                return 3


if __name__ == "__main__":
    sys.exit(main())
