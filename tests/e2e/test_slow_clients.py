"""test_slow_clients.py — slow clients (issue 12 §3): ~2,000 connections that
trickle a request's header one byte at a time, from 249 loopback addresses
(127.0.0.2-250), while fresh clients keep getting answers at once; once
request-timeout has passed since they connected, every trickler is closed,
although none was ever idle for connection-timeout. A body must arrive at
body-min-rate after its grace, and max-connections-per-ip closes the
connections of one address beyond the cap. docs/api.md ("Slow clients")."""

import resource
import socket
import threading
import time

import requests

from tdlib import HTTP_TIMEOUT

TRICKLERS = 2000
SOURCES = [f"127.0.0.{i}" for i in range(2, 251)]


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


def open_trickler(srv, source):
    s = socket.create_connection((srv.host, srv.port), timeout=5, source_address=(source, 0))
    s.setblocking(False)
    s.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    return s


def is_closed(s):
    try:
        return s.recv(4096) == b""
    except BlockingIOError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True


def trickle(socks):
    """One more header byte on every open connection; the ones found closed."""
    closed = set()
    for s in socks:
        try:
            s.send(b"a")
        except (BrokenPipeError, ConnectionResetError):
            closed.add(s)
            continue
        except BlockingIOError:
            pass
        if is_closed(s):
            closed.add(s)
    return closed


def fresh_clients(srv, stop, results):
    """Fresh clients, each on a new connection, until stop: (seconds, status)."""
    while not stop.is_set():
        t = time.monotonic()
        try:
            status = requests.get(srv.url + "/healthz", timeout=HTTP_TIMEOUT,
                                  headers={"Connection": "close"}).status_code
        except requests.RequestException as e:
            status = repr(e)
        results.append((time.monotonic() - t, status))
        time.sleep(0.05)


def test_tricklers_are_closed_and_fresh_clients_answered(tokend_factory):
    raise_fd_limit(TRICKLERS + 512)
    # connection-timeout far beyond the test: only the request deadline can close them.
    srv = tokend_factory.start(settings={"request-timeout": "6", "connection-timeout": "600",
                                         "max-connections-per-ip": "16", "max-connections": "4096"})
    stop, results = threading.Event(), []
    watcher = threading.Thread(target=fresh_clients, args=(srv, stop, results))
    socks, opened_at = [], time.monotonic()
    try:
        for i in range(TRICKLERS):
            socks.append(open_trickler(srv, SOURCES[i % len(SOURCES)]))
        opened = time.monotonic() - opened_at
        assert opened < 5, f"opening {TRICKLERS} connections took {opened:.1f} s"
        watcher.start()
        # Before the deadline: every trickler still open, bytes still going in.
        open_socks = set(socks)
        while time.monotonic() - opened_at < 4:
            gone = trickle(open_socks)
            assert not gone, f"{len(gone)} tricklers closed before request-timeout"
            time.sleep(1)
        # After it (6 s from each one's start, plus a sweep): every one closed.
        while open_socks and time.monotonic() - opened_at < 6 + opened + 4:
            open_socks -= trickle(open_socks)
            time.sleep(0.5)
        assert not open_socks, f"{len(open_socks)} of {TRICKLERS} tricklers still open after request-timeout"
    finally:
        stop.set()
        if watcher.is_alive():
            watcher.join()
        for s in socks:
            s.close()
    assert len(results) >= 20, results
    bad = [(d, st) for d, st in results if st != 200 or d > 2]
    assert not bad, f"{len(bad)} of {len(results)} fresh requests failed or took > 2 s: {bad[:5]}"
    assert "whose request had not arrived whole in time" in srv.log_text(), srv.tail()


def test_a_body_must_keep_up_the_minimum_rate(tokend_factory):
    """request-timeout 2, body-min-rate 100: a 1,000-byte body sent at 10 bytes
    a second is cut off after about 2 + (bytes so far / 100) s; the same body
    sent at once is answered."""
    srv = tokend_factory.start(settings={"request-timeout": "2", "body-min-rate": "100", "connection-timeout": "600"})
    head = (b"POST /admin/v1/members HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + srv.admin_key.encode() + b"\r\nContent-Length: 1000\r\n\r\n")
    s = socket.create_connection((srv.host, srv.port), timeout=5)
    s.sendall(head)
    s.setblocking(False)
    started, closed = time.monotonic(), False
    while time.monotonic() - started < 8:
        try:
            s.send(b" ")
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        if is_closed(s):
            closed = True
            break
        time.sleep(0.1)
    took = time.monotonic() - started
    s.close()
    assert closed and 2 <= took < 5, (closed, took)
    body = b'{"displayName":"quick"}'.ljust(1000)
    r = requests.post(srv.url + "/admin/v1/members", data=body, timeout=HTTP_TIMEOUT,
                      headers={"Authorization": "Bearer " + srv.admin_key, "Content-Type": "application/json"})
    assert r.status_code == 201, r.text


def test_connections_beyond_the_per_address_cap_are_closed(tokend_factory):
    """max-connections-per-ip 4: a fifth connection from one address is closed
    without an answer (libmicrohttpd's way); another address still connects,
    and the first address does again once one of its connections ends."""
    srv = tokend_factory.start(settings={"max-connections-per-ip": "4"})
    held = [socket.create_connection((srv.host, srv.port), timeout=5, source_address=("127.0.0.3", 0)) for _ in range(4)]
    try:
        time.sleep(0.3)  # accepted by the daemon
        fifth = socket.create_connection((srv.host, srv.port), timeout=5, source_address=("127.0.0.3", 0))
        fifth.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            got = fifth.recv(4096)
        except ConnectionResetError:
            got = b""
        fifth.close()
        assert got == b"", got
        other = socket.create_connection((srv.host, srv.port), timeout=5, source_address=("127.0.0.4", 0))
        other.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert other.recv(4096).startswith(b"HTTP/1.1 200"), "another address is refused"
        other.close()
        held.pop().close()
        time.sleep(0.3)
        again = socket.create_connection((srv.host, srv.port), timeout=5, source_address=("127.0.0.3", 0))
        again.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert again.recv(4096).startswith(b"HTTP/1.1 200"), "the address stays refused"
        again.close()
    finally:
        for s in held:
            s.close()
