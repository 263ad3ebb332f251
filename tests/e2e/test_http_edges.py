"""test_http_edges.py — the HTTP edge as an attacker drives it, over raw
sockets: the path is routed as sent (an encoded '/' never splits a segment,
so PUT /tokens/<id>%2Fcancel cancels nothing), an encoded NUL in the path or a
query value and HTTP/1.1 without Host are 400s in the face's own error shape,
pipelined requests after an error are answered in turn, a body over the limit
gets its 413 read by a client that sends it whole, consent redirects are never
cut short (redirectUrl is limited at the token request instead), and tokend
listens on IPv6. docs/api.md ("The HTTP edge") describes each rule."""

import json
import socket
import time
import urllib.parse

import pytest
import requests

from tdlib import (HTTP_TIMEOUT, RawResponse, assert_tokenio_error, assert_unchanged, authorize, consent_flow,
                   db_snapshot, decide, get_token, new_member, query_params, request_body, store_request)


class World:
    pass


@pytest.fixture(scope="module")
def world(module_tokend_pool):
    w = World()
    w.srv = module_tokend_pool.start(name="http-edges")
    w.bank = new_member(w.srv, "bank")
    w.tpp = new_member(w.srv, "tpp")
    w.tc = w.tpp.client()
    w.key = w.tpp.keys["STANDARD"]
    w.access = consent_flow(w.tc, w.tpp, w.bank, view_page=False).token_id
    return w


def request_bytes(method, target, headers=(), body=b"", version="HTTP/1.1", host=True):
    lines = [f"{method} {target} {version}"] + (["Host: 127.0.0.1"] if host else [])
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_responses(sock, count, timeout=HTTP_TIMEOUT):
    """Reads up to `count` whole responses; returns (responses, how the stream
    ended: "open", "closed" or "reset")."""
    sock.settimeout(timeout)
    buf, out = b"", []
    while len(out) < count:
        r = RawResponse(buf)
        if r.status is not None and len(r.body) >= int(r.headers.get("content-length", "0") or 0):
            out.append(r)
            buf = r.rest
            continue
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return out, "reset"
        if not chunk:
            return out, "closed"
        buf += chunk
    return out, "open"


def exchange(srv, data, count=1):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=HTTP_TIMEOUT) as s:
        s.sendall(data)
        return read_responses(s, count)


def auth(w):
    return ("Authorization", "Bearer " + w.key)


def tokenio_error(r, status):
    """A RawResponse in the Token.io error shape; returns error."""
    assert r.status == status, r.raw
    err = r.json()["error"]
    assert set(err) <= {"errorCode", "message", "tokenTraceId", "paymentId"}, err
    assert err["tokenTraceId"] == r.headers["token-trace-id"], (err, r.headers)
    return err


def d1_error(r, status):
    assert r.status == status, r.raw
    body = r.json()
    assert set(body) == {"error", "errorCode", "traceId"}, body
    assert body["traceId"] == r.headers["token-trace-id"], body
    return body


def classic_error(r):
    assert r.status == 400, r.raw
    body = r.json()
    assert set(body) == {"responseCode", "errorMessage"}, body
    return body


# ---------------------------------------------------------------------------
# The raw path: %2F never splits a segment; %00 and bad escapes are 400s
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/tokens/{id}%2Fcancel", "/tokens/{id}%2fcancel", "/tokens%2F{id}/cancel"])
def test_encoded_slash_never_reaches_the_cancel(world, target):
    w = world
    before = db_snapshot(w.srv.db_path)
    (r,), _ = exchange(w.srv, request_bytes("PUT", target.format(id=w.access), [auth(w), ("Content-Length", "0")]))
    assert r.status in (404, 405), r.raw
    tokenio_error(r, r.status)
    assert_unchanged(before, db_snapshot(w.srv.db_path))
    assert get_token(w.tc, w.access)["payloadSignatures"][-1]["action"] == "ENDORSED"


def test_encoded_slash_is_part_of_the_id(world):
    """GET /tokens/<id>%2Fcancel asks for a token whose id ends in "/cancel":
    the id's own pattern refuses it (400), it is never the token <id>."""
    w = world
    (r,), _ = exchange(w.srv, request_bytes("GET", f"/tokens/{w.access}%2Fcancel", [auth(w)]))
    assert r.status in (400, 404), r.raw
    assert w.access not in r.body.decode(), r.raw


def test_percent_encoded_id_still_routes(world):
    """Escapes of ordinary characters decode per segment: ':' as %3A is the same id."""
    w = world
    (r,), _ = exchange(w.srv, request_bytes("GET", "/tokens/" + w.access.replace(":", "%3A"), [auth(w)]))
    assert r.status == 200, r.raw
    assert r.json()["token"]["id"] == w.access


@pytest.mark.parametrize("target,shape", [
    ("/tokens/{id}%00", tokenio_error),
    ("/tokens/{id}%00/cancel", tokenio_error),
    ("/tokens/%zz", tokenio_error),
    ("/banking/v1/issuers/ISS0000001/cards/c1%00", d1_error),
    ("/network/v1/digitalCards/dc%00x/otp", d1_error),
    ("/igwapi/v2.0/getCardInfo%00", classic_error),
])
def test_bad_escape_in_path_is_400_in_the_face_shape(world, target, shape):
    w = world
    method = "GET" if target.startswith(("/tokens", "/banking")) else "POST"
    before = db_snapshot(w.srv.db_path)
    (r,), _ = exchange(w.srv, request_bytes(method, target.format(id=w.access), [auth(w), ("Content-Length", "0")]))
    if shape is classic_error:
        shape(r)
    else:
        shape(r, 400)
    assert_unchanged(before, db_snapshot(w.srv.db_path))


# ---------------------------------------------------------------------------
# %00 in a query value, HTTP/1.1 without Host
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["filter.actingAsRefId=a%00b", "page.limit=10%00", "page%00.limit=10", "x=%00"])
def test_nul_in_query_is_400(world, query):
    w = world
    (r,), _ = exchange(w.srv, request_bytes("GET", "/tokens?" + query, [auth(w)]))
    err = tokenio_error(r, 400)
    assert err["errorCode"] == "INVALID_ARGUMENT" and "NUL" in err["message"], err


def test_nul_in_query_on_the_issuer_api_is_400_in_its_shape(world):
    (r,), _ = exchange(world.srv, request_bytes("GET", "/banking/v1/issuers/ISS0000001/cards/c1?view=%00"))
    assert d1_error(r, 400)["errorCode"] == "INVALID_ARGUMENT"


def test_http11_without_host_is_400(world):
    w = world
    (r,), _ = exchange(w.srv, request_bytes("GET", f"/tokens/{w.access}", [auth(w)], host=False))
    assert "Host" in tokenio_error(r, 400)["message"]
    (r,), _ = exchange(w.srv, request_bytes("GET", "/banking/v1/issuers/ISS0000001/cards/c1", host=False))
    d1_error(r, 400)
    # HTTP/1.0 has no Host requirement.
    (r,), _ = exchange(w.srv, request_bytes("GET", f"/tokens/{w.access}", [auth(w)], version="HTTP/1.0", host=False))
    assert r.status == 200, r.raw


# ---------------------------------------------------------------------------
# Pipelining: every request after an error is answered, in order
# ---------------------------------------------------------------------------


def test_pipelined_requests_after_errors_are_answered(world):
    """tokend answers an error once the request has been read to its end, so a
    connection never falls out of step: every pipelined request gets its
    answer, in order, and the connection stays open."""
    w = world
    good = request_bytes("GET", f"/tokens/{w.access}", [auth(w)])
    bad = [
        request_bytes("GET", "/no/such/endpoint"),                                   # 404 before any body
        request_bytes("GET", "/tokens?x=%00", [auth(w)]),                            # 400 from the query
        request_bytes("PUT", f"/tokens/{w.access}%2Fcancel", [auth(w), ("Content-Length", "2")], b"{}"),  # 405
        request_bytes("POST", "/token-requests", [("Content-Length", "2")], b"{}"),  # 401 with a body
        request_bytes("POST", "/token-requests", [auth(w), ("Content-Length", "70000")], b"a" * 70000),  # 413
        request_bytes("POST", "/token-requests", [auth(w), ("Content-Length", "5")], b"{nope"),  # 400 from the handler
    ]
    with socket.create_connection(("127.0.0.1", w.srv.port), timeout=HTTP_TIMEOUT) as s:
        s.sendall(b"".join(b + good for b in bad))
        got, end = read_responses(s, 2 * len(bad))
    assert [r.status for r in got] == [404, 200, 400, 200, 405, 200, 401, 200, 413, 200, 400, 200], \
        ([r.status for r in got], end)
    assert end == "open"
    for r in got[1::2]:
        assert r.json()["token"]["id"] == w.access


# ---------------------------------------------------------------------------
# 413: the client that sends its whole body reads the answer
# ---------------------------------------------------------------------------


def test_413_reaches_a_client_that_sends_the_whole_body(world):
    """Headers first, then (as most clients do) the whole body before reading:
    the body is read and dropped, then the 413 sent; the connection is not
    reset under the client and stays usable."""
    w = world
    before = db_snapshot(w.srv.db_path)
    for size in (70_000, 2_000_000):
        with socket.create_connection(("127.0.0.1", w.srv.port), timeout=HTTP_TIMEOUT) as s:
            s.sendall(request_bytes("POST", "/token-requests", [auth(w), ("Content-Type", "application/json"),
                                                                ("Content-Length", str(size))]))
            time.sleep(0.2)  # the server has decided on the headers by now
            s.sendall(b"a" * size)  # old servers reset the connection here (EPIPE / ECONNRESET)
            s.sendall(request_bytes("GET", f"/tokens/{w.access}", [auth(w)]))
            got, end = read_responses(s, 2)
        assert [r.status for r in got] == [413, 200], ([r.raw[:200] for r in got], end)
        assert tokenio_error(got[0], 413)["errorCode"] == "INVALID_ARGUMENT"
    assert_unchanged(before, db_snapshot(w.srv.db_path))


def test_413_through_a_plain_http_client(world):
    w = world
    for _ in range(3):
        r = w.tc.post("/token-requests", data=b"a" * 3_000_000, headers={"Content-Type": "application/json"})
        assert_tokenio_error(r, 413)


def test_413_with_expect_100_continue_is_sent_before_the_body(world):
    """A client that waits for 100 Continue never sends the body: the 413 comes at once."""
    w = world
    with socket.create_connection(("127.0.0.1", w.srv.port), timeout=HTTP_TIMEOUT) as s:
        s.sendall(request_bytes("POST", "/token-requests", [auth(w), ("Content-Length", "5000000"),
                                                            ("Expect", "100-continue")]))
        (r,), _ = read_responses(s, 1)
    tokenio_error(r, 413)


# ---------------------------------------------------------------------------
# Consent redirects are built whole; redirectUrl is limited at the request
# ---------------------------------------------------------------------------


def test_long_redirect_is_built_whole(world):
    """A 2,000-character redirectUrl plus tokenId and a long callbackState make
    a Location well over 2,047 bytes: it arrives whole, with a usable tokenId."""
    w = world
    base = "https://tpp.example/cb/"
    redirect = base + "r" * (2000 - len(base))
    state = "s t/" * 250  # 1000 characters, 3 bytes each once encoded where needed
    flow = consent_flow(w.tc, w.tpp, w.bank, view_page=False, redirect=redirect, callbackState=state)
    assert len(flow.location) > 2500, len(flow.location)
    assert flow.location.startswith(redirect + "?tokenId="), flow.location[:100]
    q = query_params(flow.location)
    assert q["state"] == state
    assert get_token(w.tc, q["tokenId"])["id"] == q["tokenId"] == flow.token_id


def test_reject_redirect_is_built_whole(world):
    w = world
    redirect = "https://tpp.example/cb?x=1#" + "f" * (2000 - 27)
    state = "z" * 1024
    body = request_body(w.tpp.id, w.bank.id, redirect=redirect, callbackState=state)
    url = authorize(w.tc, store_request(w.tc, body))
    r = decide(url, "reject")
    assert r.status_code == 303, r.text
    loc = r.headers["Location"]
    # the parameters go into the query, the fragment stays last
    assert loc == f"https://tpp.example/cb?x=1&error=access_denied&state={state}#" + "f" * (2000 - 27), loc[:120]


def test_redirect_url_over_2000_characters_is_refused(world):
    w = world
    base = "https://tpp.example/cb/"
    for n, ok in ((2000, True), (2001, False), (2048, False)):
        body = request_body(w.tpp.id, w.bank.id, redirect=base + "p" * (n - len(base)))
        r = w.tc.post("/token-requests", json=body)
        if ok:
            assert r.status_code == 200, r.text
        else:
            err = assert_tokenio_error(r, 400, "INVALID_ARGUMENT")
            assert "redirectUrl" in err["message"] and "2000" in err["message"], err


# ---------------------------------------------------------------------------
# IPv6
# ---------------------------------------------------------------------------


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback (::1) to listen on")
def test_listen_on_ipv6(tokend_factory):
    srv = tokend_factory.start(host="::1")
    assert srv.listen.startswith("[::1]:")
    r = requests.get(srv.url + "/healthz", timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    # Consent links use the bracketed address by default.
    bank, tpp = new_member(srv, "bank"), new_member(srv, "tpp")
    url = authorize(tpp.client(), store_request(tpp.client(), request_body(tpp.id, bank.id)))
    assert urllib.parse.urlsplit(url).netloc == f"[::1]:{srv.port}", url
    assert requests.get(url, timeout=HTTP_TIMEOUT).status_code == 200
    # Nothing listens on IPv4 for it.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=5).close()
