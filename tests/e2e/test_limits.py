"""test_limits.py — the abuse limits of issue 12 §3 other than slow clients
(test_slow_clients.py): all of a member's API keys spend one budget; the admin
key has its own; failed authentications are counted per source address, and
once they are spent every request needing a credential from that address is a
429 (a valid key's too); the consent pages are limited per source address; a
Transfer-Encoding tokend cannot read is a 501 in the face's shape, where
libmicrohttpd alone would have kept the client waiting. The answers that
libmicrohttpd still makes itself, as docs/api.md lists them, are pinned here
too. docs/api.md ("Rate limits", "The HTTP edge") describes each rule."""

import json
import socket
import time

import requests
from requests.structures import CaseInsensitiveDict

from tdlib import HTTP_TIMEOUT, RawResponse, assert_tokenio_error, http_request_bytes, new_member


class Answer:
    """A raw answer with the attributes assert_tokenio_error reads."""

    def __init__(self, raw):
        assert raw is not None and raw.status is not None, "no answer"
        self.status_code = raw.status
        self.headers = CaseInsensitiveDict(raw.headers)
        self.body = raw.body
        self.text = raw.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.text)


def exchange(server, data, source="127.0.0.1", timeout=HTTP_TIMEOUT, see_close=False):
    """Sends bytes from the source address given; the first answer (None if the
    server closed without one) and whether the server closed (after the answer:
    looked at only with see_close)."""
    s = socket.create_connection((server.host, server.port), timeout=timeout, source_address=(source, 0))
    try:
        s.sendall(data)
        buf, closed = b"", False
        while True:
            r = RawResponse(buf)
            if r.status is not None and len(r.body) >= int(r.headers.get("content-length", "0") or 0):
                closed = see_close and server_closes(s)
                break
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                closed = True
                break
            if not chunk:
                closed = True
                break
            buf += chunk
        return (Answer(RawResponse(buf)) if buf else None), closed
    finally:
        s.close()


def server_closes(s, wait=2):
    """True if the server closes the connection within `wait` seconds."""
    s.settimeout(wait)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def get_tokens(server, key, source="127.0.0.1"):
    data = http_request_bytes("GET", "/tokens?page.limit=1", [("Authorization", "Bearer " + key)])
    answer, _ = exchange(server, data, source)
    return answer


def assert_429(r):
    assert_tokenio_error(r, 429, "RESOURCE_EXHAUSTED", payment_id="")
    assert r.headers.get("Retry-After", "").isdigit() and int(r.headers["Retry-After"]) >= 1, r.headers


def test_a_members_keys_share_one_budget(tokend_factory):
    """--rate-limit 1:3: three keys of one member get 3 requests together, not 3 each."""
    srv = tokend_factory.start(settings={"rate-limit": "1:3"})
    a = new_member(srv, "a")  # LOW, STANDARD and PRIVILEGED keys
    b = new_member(srv, "b", levels=("STANDARD",))
    statuses = [c.get("/tokens", params={"page.limit": "1"}) for c in
                [a.client("LOW"), a.client("STANDARD"), a.client("PRIVILEGED")] * 2]
    codes = [r.status_code for r in statuses]
    assert codes.count(429) >= 2 and set(codes) <= {200, 429}, codes
    assert_429(next(r for r in statuses if r.status_code == 429))
    # Another member's budget is its own.
    assert b.client().get("/tokens", params={"page.limit": "1"}).status_code == 200


def test_the_admin_key_is_limited(tokend_factory):
    """--admin-rate-limit 1:2: the third quick admin request is a 429."""
    srv = tokend_factory.start(settings={"admin-rate-limit": "1:2"})
    admin = srv.admin()
    path = "/admin/v1/issuers/NOSUCH/card-policy"  # a 400 (the id's pattern) until the budget is spent
    codes = [admin.get(path).status_code for _ in range(4)]
    assert 429 not in codes[:2] and 429 in codes[2:], codes
    r = admin.get(path)
    assert_429(r)
    assert r.json()["error"]["message"] == "rate limit exceeded for this credential", r.text


def test_failed_authentications_are_counted_per_address(tokend_factory):
    """--auth-failure-limit 3:60: three wrong keys from one address, whatever they
    are, spend its budget; then everything needing a credential from there is a
    429, a valid key and the admin key included, in each face's shape; another
    address is not affected."""
    srv = tokend_factory.start(settings={"auth-failure-limit": "3:60"})
    m = new_member(srv, "m", levels=("STANDARD",))
    for i in range(3):
        assert_tokenio_error(get_tokens(srv, f"tk_guess{i}"), 401, "UNAUTHENTICATED")
    assert_429(get_tokens(srv, "tk_guess3"))
    assert_429(get_tokens(srv, m.keys["STANDARD"]))
    r, _ = exchange(srv, http_request_bytes("GET", "/admin/v1/issuers/X/outbox", [("Authorization", "Bearer " + srv.admin_key)]))
    assert_429(r)
    # The D1 face (the Issuer API): its own shape, the trace id in it.
    r, _ = exchange(srv, http_request_bytes("GET", "/banking/v1/issuers/ISS1/cards/c1",
                                            [("Authorization", "Bearer tk_guess4")]))
    assert r.status_code == 429 and r.headers.get("Retry-After", "").isdigit(), (r.status_code, r.text)
    body = r.json()
    assert body["errorCode"] == "RATE_LIMITED" and body["traceId"] == r.headers["Token-Trace-Id"], body
    # Another source address has its own budget.
    r = get_tokens(srv, m.keys["STANDARD"], source="127.0.0.2")
    assert r.status_code == 200, r.text
    # Requests needing no credential are not refused.
    assert requests.get(srv.url + "/healthz", timeout=HTTP_TIMEOUT).status_code == 200


def test_the_consent_pages_are_limited_per_address(tokend_factory):
    """--consent-rate-limit 1:3: a fourth quick consent request from one address
    is a 429 page with Retry-After and the trace id; another address is not."""
    srv = tokend_factory.start(settings={"consent-rate-limit": "1:3"})
    page = http_request_bytes("GET", "/consent/nosuchcode", [])
    codes = [exchange(srv, page)[0].status_code for _ in range(3)]
    assert 429 not in codes, codes
    r, _ = exchange(srv, page)
    assert r.status_code == 429, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("text/html") and r.headers.get("Retry-After", "").isdigit(), r.headers
    assert r.headers["Token-Trace-Id"] in r.text, r.text
    r, _ = exchange(srv, page, source="127.0.0.2")
    assert r.status_code != 429, r.text


def test_a_transfer_coding_tokend_cannot_read_is_a_501(tokend):
    """Anything but exactly `chunked` is answered at once with 501 in the face's
    shape, and the connection closed; libmicrohttpd alone would wait for the
    body until the client gave up."""
    for coding in ("gzip", "chunked, gzip", "identity", "x"):
        started = time.monotonic()
        r, closed = exchange(tokend, http_request_bytes("POST", "/token-requests", [("Transfer-Encoding", coding)]),
                             timeout=5, see_close=True)
        assert time.monotonic() - started < 3, coding
        err = assert_tokenio_error(r, 501, "UNIMPLEMENTED", payment_id="")
        assert "Transfer-Encoding" in err["message"], err
        assert closed, coding
    r, _ = exchange(tokend, http_request_bytes("POST", "/banking/v1/issuers/ISS1/cards", [("Transfer-Encoding", "gzip")]),
                    timeout=5)
    assert r.status_code == 501 and r.json()["traceId"] == r.headers["Token-Trace-Id"], r.text
    # chunked itself is read as before.
    body = b'{"displayName":"x"}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    r, _ = exchange(tokend, http_request_bytes("POST", "/admin/v1/members", [
        ("Authorization", "Bearer " + tokend.admin_key), ("Content-Type", "application/json"),
        ("Transfer-Encoding", "chunked")], chunked))
    assert r.status_code == 201, r.text


def test_answers_libmicrohttpd_still_makes(tokend):
    """What libmicrohttpd 0.9.75 answers before tokend sees the request, as
    docs/api.md lists it: its own HTML page, no trace id, and a close. If this
    changes (a libmicrohttpd upgrade), the docs must change with it."""
    cases = [
        (http_request_bytes("POST", "/token-requests", [("Content-Length", "12x")]), 400),
        (http_request_bytes("GET", "/tokens", [("X-Big", "a" * 60000)]), 431),
        (b"GET /tokens HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET /tokens HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400),
    ]
    for data, status in cases:
        r, closed = exchange(tokend, data, timeout=5, see_close=True)
        assert r is not None and r.status_code == status, (status, r and r.text)
        assert "Token-Trace-Id" not in r.headers and closed, (status, r.headers)
