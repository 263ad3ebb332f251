"""test_bad_input.py — bad input gets a clear 4xx in the Token.io shape, changes
nothing (every table of the store is compared before and after), and the server
keeps serving: malformed or non-UTF-8 JSON, duplicate keys, wrong types, unknown
fields, ids outside their patterns, oversized bodies/URLs/headers, bad
pagination, lying Content-Length, unknown paths and methods, slow clients."""

import json
import socket

import pytest
import requests

from tdlib import (HTTP_TIMEOUT, assert_tokenio_error, assert_unchanged, authorize, consent_flow, db_snapshot,
                   decide, get_token, http_request_bytes, new_member, raw_exchange, request_body, standing_order_body,
                   store_request, transfer_body)


class World:
    pass


@pytest.fixture(scope="module")
def world(module_tokend_pool):
    """One server and a few records that no test here may change."""
    w = World()
    w.srv = module_tokend_pool.start(name="bad-input")
    w.bank = new_member(w.srv, "bank")
    w.tpp = new_member(w.srv, "tpp")
    w.tc = w.tpp.client()
    w.access = consent_flow(w.tc, w.tpp, w.bank, view_page=False).token_id
    w.transfer = consent_flow(w.tc, w.tpp, w.bank, kind="transfer", view_page=False).token_id
    w.pending = store_request(w.tc, request_body(w.tpp.id, w.bank.id))
    return w


def rejected(w, send, status=400, code="INVALID_ARGUMENT"):
    """send() must answer `status` in the Token.io shape and change nothing;
    afterwards the server still serves."""
    before = db_snapshot(w.srv.db_path)
    tokens = {t: get_token(w.tc, t) for t in (w.access, w.transfer)}
    r = send()
    err = assert_tokenio_error(r, status, code)
    assert_unchanged(before, db_snapshot(w.srv.db_path))
    assert {t: get_token(w.tc, t) for t in tokens} == tokens
    assert requests.get(w.srv.url + "/healthz", timeout=HTTP_TIMEOUT).status_code == 200
    return err


JSON = {"Content-Type": "application/json"}

# ---------------------------------------------------------------------------
# POST /token-requests bodies
# ---------------------------------------------------------------------------


def mutated(fn):
    def make(w):
        b = request_body(w.tpp.id, w.bank.id)
        fn(b, w)
        return json.dumps(b).encode()
    return make


def text_edit(old, new):
    def make(w):
        s = json.dumps(request_body(w.tpp.id, w.bank.id)).encode()
        assert old in s
        return s.replace(old, new, 1)
    return make


def setp(path, value):
    """Sets body[path...] = value (path: keys separated by '.')."""
    def fn(b, w):
        cur = b
        keys = path.split(".")
        for k in keys[:-1]:
            cur = cur[k]
        cur[keys[-1]] = value(w) if callable(value) else value
    return fn


def delp(path):
    def fn(b, w):
        cur = b
        keys = path.split(".")
        for k in keys[:-1]:
            cur = cur[k]
        del cur[keys[-1]]
    return fn


def payment_with(kind, instructions, **extra):
    """A transfer or standing-order request (in place of the access body) whose
    instructions are `instructions`."""
    def fn(b, w):
        body = dict(transfer_body() if kind == "transfer" else standing_order_body(), instructions=instructions, **extra)
        b["requestPayload"].pop("accessBody")
        b["requestPayload"]["transferBody" if kind == "transfer" else "standingOrderBody"] = body
    return mutated(fn)


def dup_top_level(w):
    b = request_body(w.tpp.id, w.bank.id)
    s = json.dumps(b)
    return (s[:-1] + ', "requestPayload": ' + json.dumps(b["requestPayload"]) + "}").encode()


BAD_BODIES = [
    # malformed JSON
    ("empty body", lambda w: b""),
    ("not json", lambda w: b"hello"),
    ("truncated", lambda w: json.dumps(request_body(w.tpp.id, w.bank.id)).encode()[:-3]),
    ("trailing garbage", lambda w: json.dumps(request_body(w.tpp.id, w.bank.id)).encode() + b" {}"),
    ("array not object", lambda w: b"[]"),
    ("string not object", lambda w: b'"x"'),
    ("NaN", text_edit(b'"ref-1"', b"NaN")),
    ("single quotes", text_edit(b'"ref-1"', b"'ref-1'")),
    ("comment", lambda w: b"/* c */" + json.dumps(request_body(w.tpp.id, w.bank.id)).encode()),
    # invalid UTF-8 / bad escapes inside a JSON string
    ("invalid utf-8 byte", text_edit(b'"ref-1"', b'"ref-\xff"')),
    ("truncated utf-8 sequence", text_edit(b'"ref-1"', b'"ref-\xc3("')),
    ("overlong utf-8", text_edit(b'"ref-1"', b'"ref-\xc0\xaf"')),
    ("utf-8 encoded surrogate", text_edit(b'"ref-1"', b'"ref-\xed\xa0\x80"')),
    ("lone surrogate escape", text_edit(b'"ref-1"', b'"ref-\\ud800"')),
    ("NUL escape", text_edit(b'"ref-1"', b'"ref-\\u0000"')),
    ("invalid utf-8 in a key", text_edit(b'"refId"', b'"ref\xffId"')),
    # duplicate keys
    ("duplicate top-level key", dup_top_level),
    ("duplicate nested key", text_edit(b'"refId": "ref-1"', b'"refId": "ref-1", "refId": "ref-2"')),
    ("duplicate deep key", text_edit(b'"resources": [', b'"resources": ["ACCOUNTS"], "resources": [')),
    # wrong types
    ("refId number", mutated(setp("requestPayload.refId", 5))),
    ("requestOptions string", mutated(setp("requestOptions", "x"))),
    ("requestPayload array", mutated(setp("requestPayload", []))),
    ("to.id number", mutated(setp("requestPayload.to.id", 42))),
    ("from null", mutated(setp("requestOptions.from", None))),
    ("resources string", mutated(setp("requestPayload.accessBody.resourceTypeList.resources", "ACCOUNTS"))),
    ("resources empty", mutated(setp("requestPayload.accessBody.resourceTypeList.resources", []))),
    ("resource unknown", mutated(setp("requestPayload.accessBody.resourceTypeList.resources", ["EVERYTHING"]))),
    ("transactionHistoryDays string", mutated(setp("requestPayload.accessBody.transactionHistoryDays", "90"))),
    ("transactionHistoryDays real", mutated(setp("requestPayload.accessBody.transactionHistoryDays", 9.5))),
    ("transactionHistoryDays out of range", mutated(setp("requestPayload.accessBody.transactionHistoryDays", 99999))),
    ("countries string", mutated(setp("requestPayload.countries", "DE"))),
    ("country code length", mutated(setp("requestPayload.countries", ["DEU"]))),
    ("receiptRequested string", mutated(setp("requestOptions.receiptRequested", "false"))),
    ("redirectUrl number", mutated(setp("requestPayload.redirectUrl", 1))),
    ("description boolean", mutated(setp("requestPayload.description", True))),
    ("tokenExpiration number", mutated(setp("requestPayload.tokenExpiration", 1700000000))),
    ("tokenExpiration text", mutated(setp("requestPayload.tokenExpiration", "soon"))),
    ("tokenExpiration zero", mutated(setp("requestPayload.tokenExpiration", "0"))),
    ("alias type unknown", mutated(setp("requestPayload.to.alias", {"type": "PIGEON", "value": "x"}))),
    ("disableFutureDated string", mutated(setp("requestPayload.disableFutureDatedPaymentConversion", "true"))),
    # unknown fields, top level and nested (the contract is closed)
    ("unknown top-level field", mutated(setp("extra", 1))),
    ("unknown requestPayload field", mutated(setp("requestPayload.extra", 1))),
    ("unknown requestOptions field", mutated(setp("requestOptions.tokenInternal", {"redirectUrl": "https://x"}))),
    ("unknown accessBody field", mutated(setp("requestPayload.accessBody.extra", 1))),
    ("unknown resourceTypeList field", mutated(setp("requestPayload.accessBody.resourceTypeList.extra", 1))),
    ("unknown member field", mutated(setp("requestPayload.to.name", "x"))),
    ("unknown alias field", mutated(setp("requestPayload.to.alias", {"type": "EMAIL", "colour": "red"}))),
    ("unknown actingAs field", mutated(setp("requestPayload.actingAs", {"displayName": "x", "x": 1}))),
    # required fields
    ("no requestPayload", mutated(delp("requestPayload"))),
    ("no from", mutated(delp("requestOptions.from"))),
    ("no refId", mutated(delp("requestPayload.refId"))),
    ("no redirectUrl", mutated(delp("requestPayload.redirectUrl"))),
    ("no body kind", mutated(delp("requestPayload.accessBody"))),
    ("two body kinds", mutated(setp("requestPayload.transferBody", lambda w: transfer_body()))),
    # ids and strings outside their patterns
    ("refId 19 chars", mutated(setp("requestPayload.refId", "r" * 19))),
    ("refId with underscore", mutated(setp("requestPayload.refId", "ref_1"))),
    ("refId with space", mutated(setp("requestPayload.refId", "ref 1"))),
    ("refId empty", mutated(setp("requestPayload.refId", ""))),
    ("member id with space", mutated(setp("requestOptions.from.id", "m:bad id"))),
    ("member id with $", mutated(setp("requestOptions.from.id", "m:x$y"))),
    ("member id too short", mutated(setp("requestOptions.from.id", "m:"))),
    ("member id too long", mutated(setp("requestOptions.from.id", "m:" + "x" * 95))),
    ("member id non-ascii", mutated(setp("requestPayload.to.id", "m:\u00e9t\u00e9"))),
    ("from is the caller", mutated(setp("requestOptions.from.id", lambda w: w.tpp.id))),
    ("description 256 chars", mutated(setp("requestPayload.description", "d" * 256))),
    ("redirectUrl not http", mutated(setp("requestPayload.redirectUrl", "ftp://tpp.example/cb"))),
    ("redirectUrl javascript", mutated(setp("requestPayload.redirectUrl", "javascript:alert(1)"))),
    ("redirectUrl with quote", mutated(setp("requestPayload.redirectUrl", 'https://tpp.example/"><script>'))),
    ("redirectUrl with space", mutated(setp("requestPayload.redirectUrl", "https://tpp.example/a b"))),
    ("callbackState too long", mutated(setp("requestPayload.callbackState", "s" * 1025))),
    # transfer bodies
    ("currency 4 letters", mutated(lambda b, w: b["requestPayload"].update(
        {"transferBody": dict(transfer_body(), currency="EURO")}) or b["requestPayload"].pop("accessBody"))),
    ("amount not a number", mutated(lambda b, w: b["requestPayload"].update(
        {"transferBody": dict(transfer_body(), lifetimeAmount="ten")}) or b["requestPayload"].pop("accessBody"))),
    ("amount two dots", mutated(lambda b, w: b["requestPayload"].update(
        {"transferBody": dict(transfer_body(), amount="1.2.3")}) or b["requestPayload"].pop("accessBody"))),
    ("amount as number", mutated(lambda b, w: b["requestPayload"].update(
        {"transferBody": dict(transfer_body(), amount=10)}) or b["requestPayload"].pop("accessBody"))),
    ("transfer unknown field", mutated(lambda b, w: b["requestPayload"].update(
        {"transferBody": dict(transfer_body(), extra=1)}) or b["requestPayload"].pop("accessBody"))),
    ("transfer without instructions", mutated(lambda b, w: b["requestPayload"].update(
        {"transferBody": {"currency": "EUR", "lifetimeAmount": "1"}}) or b["requestPayload"].pop("accessBody"))),
    ("destinations not an array", mutated(lambda b, w: b["requestPayload"].update(
        {"transferBody": {"currency": "EUR", "lifetimeAmount": "1", "instructions": {"transferDestinations": {}}}})
        or b["requestPayload"].pop("accessBody"))),
    ("tokenExpiration on a transfer", mutated(lambda b, w: b["requestPayload"].update(
        {"transferBody": transfer_body(), "tokenExpiration": "1900000000"}) or b["requestPayload"].pop("accessBody"))),
    # a payment without a payee (issue 12): TransferInstructions and each scheme's required fields
    *[(f"{kind} {name}", payment_with(kind, instructions)) for kind in ("transfer", "standing order")
      for name, instructions in [
          ("instructions empty", {}),
          ("destinations empty", {"transferDestinations": []}),
          ("destinations null", {"transferDestinations": None}),
          ("destination empty", {"transferDestinations": [{}]}),
          ("destination only nulls", {"transferDestinations": [{"sepa": None, "sepaInstant": None}]}),
          ("destination only a name", {"transferDestinations": [{"customerData": {"legalNames": ["Jane"]}}]}),
          ("sepa empty", {"transferDestinations": [{"sepa": {}}]}),
          ("sepa iban empty", {"transferDestinations": [{"sepa": {"iban": ""}}]}),
          ("sepa unknown field", {"transferDestinations": [{"sepa": {"iban": "DE89", "pan": "4111"}}]}),
          ("fasterPayments without sortCode", {"transferDestinations": [{"fasterPayments": {"accountNumber": "1"}}]}),
          ("token destination empty", {"transferDestinations": [{"token": {}}]}),
          ("virtualAccount bad instrument",
           {"transferDestinations": [{"virtualAccount": {"id": "pa:1", "localInstrument": "SWIFT"}}]}),
          ("two schemes", {"transferDestinations": [{"sepa": {"iban": "DE89"}, "elixir": {"accountNumber": "1"}}]}),
          ("second destination bad", {"transferDestinations": [{"sepa": {"iban": "DE89"}}, {"sepa": {}}]}),
          ("customerData without legalNames", {"transferDestinations": [{"sepa": {"iban": "DE89"}, "customerData": {}}]}),
          ("unknown instructions field", {"transferDestinations": [{"sepa": {"iban": "DE89"}}], "payee": "x"}),
      ]],
    ("transfer destinations later, none now", payment_with("transfer", {}, setTransferDestinationsUrl="https://tpp.example/d")),
]


@pytest.mark.parametrize("name,make", BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_token_request_body(world, name, make):
    body = make(world)
    rejected(world, lambda: world.tc.post("/token-requests", data=body, headers=JSON))


def test_valid_body_is_accepted_after_all_that(world):
    """The base body of the cases above is itself valid."""
    r = world.tc.post("/token-requests", json=request_body(world.tpp.id, world.bank.id))
    assert r.status_code == 200, r.text


def _deep(n):
    v = "leaf"
    for _ in range(n):
        v = {"a": v}
    return v


@pytest.mark.parametrize("name,extra", [
    ("real number", {"rate": 1.5}),
    ("nesting deeper than the canonical form allows", _deep(300)),
])
def test_unsignable_payload_is_refused_up_front(world, name, extra):
    """A token's payload must be signable: canonical JSON has integers only and a
    bounded depth (docs/signatures.md). transferBody.instructions is stored and
    signed as sent, so a request carrying a real number or a very deep tree there
    must be refused with 400 when it is stored — not accepted and then fail when
    the user approves it."""
    tb = transfer_body()
    tb["instructions"]["metadata"] = extra
    body = request_body(world.tpp.id, world.bank.id, kind="transfer", body=tb)
    r = world.tc.post("/token-requests", json=body)
    if r.status_code == 200:
        rid = r.json()["tokenRequest"]["id"]
        d = decide(authorize(world.tc, rid), "approve", accounts=())
        pytest.fail(f"POST /token-requests accepted a payload that cannot be signed ({name} in "
                    f"transferBody.instructions); approving it on the consent page answers {d.status_code}: "
                    f"{d.text[:160]!r}")
    assert_tokenio_error(r, 400, "INVALID_ARGUMENT")


# ---------------------------------------------------------------------------
# PUT /tokens/{id}/cancel, POST .../authorization
# ---------------------------------------------------------------------------

BAD_CANCELS = [
    ("non-empty body", {"body": b'{"reason":"x"}'}),
    ("malformed body", {"body": b"{"}),
    ("array body", {"body": b"[]"}),
    ("invalid utf-8 body", {"body": b'{"\xff":1}'}),
    ("bad ip header", {"headers": {"token-customer-ip-address": "999.1.1.1"}}),
    ("host name as ip", {"headers": {"token-customer-ip-address": "example.com"}}),
    ("customer-initiated yes", {"headers": {"customer-initiated": "yes"}}),
    ("device id too long", {"headers": {"token-customer-device-id": "d" * 200}}),
]


@pytest.mark.parametrize("name,spec", BAD_CANCELS, ids=[c[0] for c in BAD_CANCELS])
def test_bad_cancel(world, name, spec):
    h = dict(JSON) if "body" in spec else {}
    h.update(spec.get("headers", {}))
    rejected(world, lambda: world.tc.put(f"/tokens/{world.access}/cancel", data=spec.get("body"), headers=h))


def test_empty_object_body_on_cancel_is_tolerated(world):
    # On the module's world this would cancel a shared token: use a token of its own.
    tid = consent_flow(world.tc, world.tpp, world.bank, view_page=False).token_id
    r = world.tc.put(f"/tokens/{tid}/cancel", data=b"{}", headers=JSON)
    assert r.status_code == 200 and r.json()["result"]["status"] == "SUCCESS", r.text


@pytest.mark.parametrize("path", ["/tokens/ab", "/tokens/a%20b", "/tokens/ta:x$y", "/tokens/" + "t" * 97,
                                  "/tokens/ab/cancel", "/token-requests/r!q", "/token-requests/r!q/result",
                                  "/member/m$1/keys"])
def test_ids_outside_their_pattern_in_the_path(world, path):
    method = "PUT" if path.endswith("/cancel") else "GET"
    rejected(world, lambda: world.tc.request(method, path))


@pytest.mark.parametrize("body", [b'{"consentAccepted":"yes"}', b'{"unknown":true}', b"{", b"[1]"])
def test_bad_authorization_body(world, body):
    rejected(world, lambda: world.tc.post(f"/token-requests/{world.pending}/authorization", data=body, headers=JSON))


# ---------------------------------------------------------------------------
# GET /tokens pagination and filters
# ---------------------------------------------------------------------------

BAD_LISTS = [
    {},  # page.limit is required
    {"page.limit": "0"}, {"page.limit": "200"}, {"page.limit": "1000"}, {"page.limit": "abc"},
    {"page.limit": "-1"}, {"page.limit": ""}, {"page.limit": "10.5"}, {"page.limit": "1e1"}, {"page.limit": " 10"},
    {"page.limit": "99999999999999999999999"},
    {"page.limit": "10", "page.offset": "-1"}, {"page.limit": "10", "page.offset": "x"},
    {"page.limit": "10", "unknown": "1"}, {"page.limit": "10", "page.size": "5"},
    {"page.limit": "10", "type": "CARD"}, {"page.limit": "10", "type": "access"},
    {"page.limit": "10", "filter.role": "OWNER"},
    {"page.limit": "10", "filter.startTimeMs": "yesterday"}, {"page.limit": "10", "filter.endTimeMs": "-5"},
    {"page.limit": "10", "filter.sourceAccountId": ""}, {"page.limit": "10", "filter.actingAsRefId": "r" * 129},
]


@pytest.mark.parametrize("params", BAD_LISTS, ids=[json.dumps(p) for p in BAD_LISTS])
def test_bad_pagination_and_filters(world, params):
    rejected(world, lambda: world.tc.get("/tokens", params=params))


def test_pagination_bounds_accepted(world):
    for limit in ("1", "199"):
        assert world.tc.get("/tokens", params={"page.limit": limit}).status_code == 200


# ---------------------------------------------------------------------------
# Sizes: body (413), URL (414), headers (431)
# ---------------------------------------------------------------------------


def test_body_over_the_limit(world):
    body = b'{"x":"' + b"a" * 70000 + b'"}'
    rejected(world, lambda: world.tc.post("/token-requests", data=body, headers=JSON), 413)
    rejected(world, lambda: world.tc.put(f"/tokens/{world.access}/cancel", data=body, headers=JSON), 413)

    def chunked():  # no Content-Length: the limit applies while reading
        for _ in range(70):
            yield b"a" * 1000
    rejected(world, lambda: world.tc.post("/token-requests", data=chunked(), headers=JSON), 413)


def test_body_limit_boundary(world):
    """65536 bytes (the default body-max) is read and judged on its content; 65537 is 413."""
    def body_of(n):
        head = b'{"x":"'
        return head + b"a" * (n - len(head) - 2) + b'"}'
    assert len(body_of(65536)) == 65536
    err = rejected(world, lambda: world.tc.post("/token-requests", data=body_of(65536), headers=JSON), 400)
    assert "unknown field" in err["message"]
    rejected(world, lambda: world.tc.post("/token-requests", data=body_of(65537), headers=JSON), 413)


def test_url_over_the_limit(world):
    path = "/tokens?page.limit=10&filter.actingAsRefId="
    rejected(world, lambda: world.tc.get(path + "r" * (2049 - len(path))), 414)
    rejected(world, lambda: world.tc.get(f"/tokens/{world.access}?x=" + "y" * 5000), 414)
    # Exactly 2048 is not too long (it is a bad filter value instead).
    rejected(world, lambda: world.tc.get(path + "r" * (2048 - len(path))), 400)


def test_headers_over_the_limit(world):
    rejected(world, lambda: world.tc.get(f"/tokens/{world.access}", headers={"X-Pad": "p" * 17000}), 431)
    many = {f"X-H{i}": "v" * 100 for i in range(200)}
    rejected(world, lambda: world.tc.put(f"/tokens/{world.access}/cancel", headers=many), 431)


# ---------------------------------------------------------------------------
# Unknown paths, wrong methods
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/token", "/tokens/", "/tokens/ta:x:y/cancel/now", "/TOKENS", "/v1/tokens",
                                  "/tokens/ta:x:y/", "//tokens"])
def test_unknown_path(world, path):
    err = rejected(world, lambda: world.tc.get(path), 404, "NOT_FOUND")
    assert err["paymentId"] == ""


@pytest.mark.parametrize("method,path", [
    ("DELETE", "/tokens/{access}"), ("POST", "/tokens"), ("PUT", "/tokens"), ("GET", "/tokens/{access}/cancel"),
    ("POST", "/tokens/{access}/cancel"), ("PATCH", "/tokens/{access}"), ("PUT", "/token-requests"),
    ("DELETE", "/token-requests/{pending}"), ("GET", "/token-requests/{pending}/authorization"),
    ("OPTIONS", "/tokens"),
])
def test_wrong_method(world, method, path):
    p = path.format(access=world.access, pending=world.pending)
    rejected(world, lambda: world.tc.request(method, p), 405)


# ---------------------------------------------------------------------------
# Lying Content-Length, slow clients (raw sockets; a server with a 2 s connection timeout)
# ---------------------------------------------------------------------------


class FreshClient:
    """A client that opens a new connection per request: on a server that drops
    idle connections after 2 s, a pooled keep-alive connection could be closed
    by the server just as the client reuses it."""

    def __init__(self, member):
        self.member = member

    def __getattr__(self, name):
        def call(*args, **kw):
            c = self.member.client()
            try:
                return getattr(c, name)(*args, **kw)
            finally:
                c.close()
        return call


@pytest.fixture
def quick(tokend_factory):
    w = World()
    w.srv = tokend_factory.start(settings={"connection-timeout": "2"})
    w.bank = new_member(w.srv, "bank")
    w.tpp = new_member(w.srv, "tpp")
    w.tc = FreshClient(w.tpp)
    w.access = consent_flow(w.tc, w.tpp, w.bank, view_page=False).token_id
    w.transfer = consent_flow(w.tc, w.tpp, w.bank, kind="transfer", view_page=False).token_id
    w.key = w.tpp.keys["STANDARD"]
    return w


def _auth(w):
    return ("Authorization", "Bearer " + w.key)


def test_content_length_shorter_than_the_body(quick):
    w = quick
    before = db_snapshot(w.srv.db_path)
    body = json.dumps(request_body(w.tpp.id, w.bank.id)).encode()
    data = http_request_bytes("POST", "/token-requests", [_auth(w), ("Content-Type", "application/json"),
                                                           ("Content-Length", str(len(body) - 10))], body)
    r = raw_exchange(w.srv, data)
    assert r is not None and r.status == 400, r and r.raw
    err = r.json()["error"]
    assert err["errorCode"] == "INVALID_ARGUMENT" and err["tokenTraceId"] == r.headers["token-trace-id"]
    assert_unchanged(before, db_snapshot(w.srv.db_path))
    assert w.tc.get(f"/tokens/{w.access}").status_code == 200


def test_content_length_longer_than_the_body(quick):
    """The server waits for the rest, never processes the truncated request, and
    drops the connection after connection-timeout."""
    w = quick
    before = db_snapshot(w.srv.db_path)
    data = http_request_bytes("PUT", f"/tokens/{w.access}/cancel", [_auth(w), ("Content-Length", "2")], b"")
    for shut in (False, True):
        r = raw_exchange(w.srv, data, shut_write=shut, read_all=True)
        assert r is None or (r.status is not None and 400 <= r.status < 500), r.raw
    assert_unchanged(before, db_snapshot(w.srv.db_path))
    assert get_token(w.tc, w.access)["payloadSignatures"][-1]["action"] == "ENDORSED"


def test_content_length_not_a_number(quick):
    """Answered by libmicrohttpd before tokend sees the request: a 400, but as
    libmicrohttpd's own HTML page, not in the Token.io shape."""
    w = quick
    before = db_snapshot(w.srv.db_path)
    for cl in ("abc", "-1", "1e3", "0x10"):
        data = http_request_bytes("PUT", f"/tokens/{w.access}/cancel", [_auth(w), ("Content-Length", cl)], b"{}")
        r = raw_exchange(w.srv, data, read_all=True)
        assert r is not None and r.status == 400, (cl, r and r.raw)
    assert_unchanged(before, db_snapshot(w.srv.db_path))
    assert w.tc.get(f"/tokens/{w.access}").status_code == 200


def test_conflicting_content_lengths_are_refused(quick):
    """RFC 9112 6.3: several Content-Length values that differ make the framing
    unknowable; the request must be refused (400) — otherwise the server and a
    proxy in front of it may split the stream differently (request smuggling).
    Here the first value is 0, so a server that takes it applies the cancel."""
    w = quick
    before = db_snapshot(w.srv.db_path)
    data = http_request_bytes("PUT", f"/tokens/{w.access}/cancel",
                              [_auth(w), ("Content-Length", "0"), ("Content-Length", "2")], b"{}")
    r = raw_exchange(w.srv, data, read_all=True)
    status = r.status if r else None
    changed = db_snapshot(w.srv.db_path) != before
    assert status == 400 and not changed, (
        f"conflicting Content-Length headers (0 and 2) on a cancel: answered {status}, token "
        f"{'CANCELED' if changed else 'unchanged'}; expected 400 and no change")


def test_slow_clients_do_not_block_others(quick):
    w = quick
    held = []
    try:
        for i in range(20):  # half a request line / headers, then silence
            s = socket.create_connection(("127.0.0.1", w.srv.port), timeout=HTTP_TIMEOUT)
            s.sendall(b"GET /tokens?page.limit=10 HTTP/1.1\r\nHost: x\r\nAuthorization: Bear"[: 20 + i * 2])
            held.append(s)
        for _ in range(2):  # complete headers, half a body
            s = socket.create_connection(("127.0.0.1", w.srv.port), timeout=HTTP_TIMEOUT)
            s.sendall(http_request_bytes("POST", "/token-requests", [_auth(w), ("Content-Type", "application/json"),
                                                                      ("Content-Length", "400")], b'{"requestOpt'))
            held.append(s)
        # Everyone else is served meanwhile.
        for _ in range(3):
            assert w.tc.get("/tokens", params={"page.limit": "10"}).status_code == 200
        assert w.tc.put(f"/tokens/{w.transfer}/cancel").json()["result"]["status"] == "SUCCESS"
        before = db_snapshot(w.srv.db_path)
        # The slow connections are dropped after connection-timeout (2 s), unanswered or with a 4xx.
        for s in held:
            s.settimeout(HTTP_TIMEOUT)
            buf = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
            except ConnectionResetError:
                pass
            assert buf == b"" or buf.startswith(b"HTTP/1.1 4"), buf[:200]
    finally:
        for s in held:
            s.close()
    assert_unchanged(before, db_snapshot(w.srv.db_path))
    assert w.tc.get(f"/tokens/{w.access}").status_code == 200
