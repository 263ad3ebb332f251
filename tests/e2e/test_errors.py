"""test_errors.py — every error the Token.io reference lists, in its shape
{error:{errorCode, message, tokenTraceId[, paymentId]}} with the trace id also in
the Token-Trace-Id header: 400, 401, 403, 404, 429, (500), 501, 503, 504; and
Idempotency-Key replays (same stored answer, byte for byte) and reuse (409)."""

import base64
import re
import subprocess
import threading
import time

import pytest

import tdlib
from tdlib import (Client, assert_tokenio_error, assert_unchanged, authorize, basic_auth, consent_flow, db_snapshot,
                   decide, get_token, new_member, request_body, store_request, transfer_body)


def test_success_responses_carry_a_trace_id(tokend, tpp):
    seen = set()
    for _ in range(3):
        r = tpp.client().get("/tokens", params={"page.limit": "1"})
        assert r.status_code == 200
        trace = r.headers["Token-Trace-Id"]
        assert re.fullmatch(r"[0-9a-f]{32}", trace), trace
        seen.add(trace)
    assert len(seen) == 3


def test_400(tokend, tpp):
    err = assert_tokenio_error(tpp.client().get("/tokens", params={"page.limit": "0"}), 400, "INVALID_ARGUMENT")
    assert "page.limit" in err["message"]
    assert_tokenio_error(tpp.client().get("/tokens/bad!id"), 400, "INVALID_ARGUMENT")


# (description, headers) -> 401 on every Token API route
def _bad_credentials(tpp, other):
    key = tpp.keys["STANDARD"]
    return [
        ("missing", {}),
        ("unknown key", {"Authorization": "Bearer tk_" + "A" * 43}),
        ("empty bearer", {"Authorization": "Bearer "}),
        ("other scheme", {"Authorization": "Digest username=x"}),
        ("token scheme", {"Authorization": "Token " + key}),
        ("key without scheme", {"Authorization": key}),
        ("basic with another member", {"Authorization": basic_auth(other.id, key)}),
        ("basic with an unknown member", {"Authorization": basic_auth("m:nobody:1", key)}),
        ("basic not base64", {"Authorization": "Basic !!!notbase64"}),
        ("basic without colon", {"Authorization": "Basic " + base64.b64encode(key.encode()).decode()}),
        ("admin key on the Token API", {"Authorization": "Bearer " + tpp.server.admin_key}),
    ]


def test_401(tokend, bank, tpp, other):
    flow = consent_flow(tpp.client(), tpp, bank, view_page=False)
    before = db_snapshot(tokend.db_path)
    for what, headers in _bad_credentials(tpp, other):
        c = Client(tokend, headers=headers)
        for method, path, body in (("GET", "/tokens?page.limit=5", None), ("GET", f"/tokens/{flow.token_id}", None),
                                   ("PUT", f"/tokens/{flow.token_id}/cancel", None),
                                   ("POST", "/token-requests", request_body(tpp.id, bank.id)),
                                   ("GET", f"/member/{tpp.id}/keys", None)):
            r = c.request(method, path, json=body)
            assert_tokenio_error(r, 401, "UNAUTHENTICATED")
            assert tpp.keys["STANDARD"] not in r.text, what
    # A member key on the admin API.
    r = Client(tokend, headers={"Authorization": "Bearer " + tpp.keys["PRIVILEGED"]}, capture=False).post(
        "/admin/v1/members", json={"displayName": "x"})
    assert_tokenio_error(r, 401, "UNAUTHENTICATED")
    assert_unchanged(before, db_snapshot(tokend.db_path))
    # Scheme names are case-insensitive; Basic with the right member works.
    assert Client(tokend, {"Authorization": "bearer " + tpp.keys["LOW"]}).get(f"/tokens/{flow.token_id}").status_code == 200
    assert tpp.client(basic=True).get(f"/tokens/{flow.token_id}").status_code == 200


def test_403(tokend, bank, tpp, other):
    before = db_snapshot(tokend.db_path)
    # requestPayload.to is another member than the caller.
    body = request_body(other.id, bank.id)
    assert_tokenio_error(tpp.client().post("/token-requests", json=body), 403, "PermissionDenied")
    # requestOptions.to disagrees with requestPayload.to.
    body = request_body(tpp.id, bank.id)
    body["requestOptions"]["to"] = {"id": other.id}
    assert_tokenio_error(tpp.client().post("/token-requests", json=body), 403, "PermissionDenied")
    assert_unchanged(before, db_snapshot(tokend.db_path))


def test_404(tokend, bank, tpp):
    tc = tpp.client()
    for tid in ("ta:missing:1", "tt:x:y"):
        assert_tokenio_error(tc.get(f"/tokens/{tid}"), 404, "NOT_FOUND", payment_id=tid)
        assert_tokenio_error(tc.put(f"/tokens/{tid}/cancel"), 404, "NOT_FOUND", payment_id=tid)
    rid = "rq:missing:1"
    assert_tokenio_error(tc.get(f"/token-requests/{rid}"), 404, "NOT_FOUND", payment_id=rid)
    assert_tokenio_error(tc.get(f"/token-requests/{rid}/result"), 404, "NOT_FOUND", payment_id=rid)
    assert_tokenio_error(tc.post(f"/token-requests/{rid}/authorization"), 404, "NOT_FOUND", payment_id=rid)
    assert_tokenio_error(tc.get("/member/m:missing:1/keys"), 404, "NOT_FOUND", payment_id="m:missing:1")
    assert_tokenio_error(tc.get("/no/such/path"), 404, "NOT_FOUND", payment_id="")
    # Storing a request from a member that does not exist is a 400, not a 404.
    assert_tokenio_error(tc.post("/token-requests", json=request_body(tpp.id, "m:nobody:1")), 400)


def test_429_with_retry_after(tokend_factory):
    """--rate-limit 2:2 (set through TOKEND_RATE_LIMIT, the environment form)."""
    srv = tokend_factory.start(settings={"rate-limit": None}, env={"TOKEND_RATE_LIMIT": "2:2"})
    a = new_member(srv, "a", levels=("STANDARD",))
    b = new_member(srv, "b", levels=("STANDARD",))
    ac = a.client()
    limited = None
    for _ in range(50):
        r = ac.get("/tokens", params={"page.limit": "1"})
        if r.status_code == 429:
            limited = r
            break
        assert r.status_code == 200, r.text
    assert limited is not None, "no 429 after 50 quick requests at 2 req/s, burst 2"
    assert_tokenio_error(limited, 429, "RESOURCE_EXHAUSTED", payment_id="")
    retry_after = limited.headers.get("Retry-After")
    assert retry_after and retry_after.isdigit() and int(retry_after) >= 1, limited.headers
    # A write refused by the limit changes nothing.
    before = db_snapshot(srv.db_path)
    r = ac.put("/tokens/ta:x:y/cancel")
    if r.status_code == 429:
        assert_tokenio_error(r, 429, payment_id="")
        assert_unchanged(before, db_snapshot(srv.db_path))
    # Buckets are per credential: b is not limited by a's traffic.
    assert b.client().get("/tokens", params={"page.limit": "1"}).status_code == 200
    # After Retry-After the credential works again.
    time.sleep(int(retry_after) + 0.2)
    assert ac.get("/tokens", params={"page.limit": "1"}).status_code == 200


def set_sealed_keys(db_path, member_id, hex_by_key):
    """Writes members' sealed private keys (hex), as a damaged store would hold them."""
    for key_id, h in hex_by_key.items():
        blob = f"decode('{h}', 'hex')" if db_path.startswith("postgres") else f"X'{h}'"
        stmt = f"UPDATE member_keys SET sealed_secret = {blob} WHERE member_id = '{member_id}' AND key_id = '{key_id}'"
        if db_path.startswith("postgres"):
            tdlib.psql(db_path, stmt)
        else:
            subprocess.run(["sqlite3", db_path, stmt], check=True, timeout=60)


def test_500_when_signing_keys_cannot_be_unsealed(tokend_factory):
    """Members' private keys are sealed with the master key. When the members'
    sealed keys cannot be opened (damaged in the store: a node with another
    master key does not even start, test_master_key.py), tokend cannot sign:
    a cancel (which signs CANCELED) answers 500 in the Token.io shape, and
    nothing changes; reads still work. With the keys intact again, the cancel
    succeeds."""
    srv = tokend_factory.start()
    bank = new_member(srv, "bank")
    tpp = new_member(srv, "tpp")
    flow = consent_flow(tpp.client(), tpp, bank, view_page=False)
    assert srv.stop() == 0
    sealed = {m.id: {r["key_id"]: r["h"] for r in tdlib.sql(
        srv.db_path, f"SELECT key_id, hex(sealed_secret) AS h FROM member_keys WHERE member_id = '{m.id}' "
                     "AND length(sealed_secret) > 0")} for m in (bank, tpp)}
    assert all(sealed.values())
    for member_id, keys in sealed.items():
        set_sealed_keys(srv.db_path, member_id, {k: "00" * (len(h) // 2) for k, h in keys.items()})
    bad = tokend_factory.restart(srv)
    tc = tpp.client(server=bad)
    token = get_token(tc, flow.token_id)
    before = db_snapshot(bad.db_path)
    err = assert_tokenio_error(tc.put(f"/tokens/{flow.token_id}/cancel"), 500, "InternalServerError")
    assert "paymentId" not in err
    assert_unchanged(before, db_snapshot(bad.db_path))
    # Approving a new request needs the bank's ENDORSED signature: the consent page answers 500.
    rid = store_request(tc, request_body(tpp.id, bank.id))
    url = authorize(tc, rid)
    before = db_snapshot(bad.db_path)
    r = decide(url, "approve", accounts=("a:1",))
    assert r.status_code == 500 and r.headers["Content-Type"].startswith("text/html"), (r.status_code, r.text)
    assert tc.get(f"/token-requests/{rid}/result").json() == {"status": "PENDING"}
    assert get_token(tc, flow.token_id) == token
    assert_unchanged(before, db_snapshot(bad.db_path))
    assert bad.stop() == 0
    for member_id, keys in sealed.items():
        set_sealed_keys(bad.db_path, member_id, keys)
    good = tokend_factory.restart(bad)
    r = tpp.client(server=good).put(f"/tokens/{flow.token_id}/cancel")
    assert r.status_code == 200 and r.json()["result"]["status"] == "SUCCESS", r.text


NOT_IMPLEMENTED = [
    ("POST", "/transfers"), ("GET", "/transfers"), ("GET", "/transfers/t:1:2"),
    ("PUT", "/webhook/config"), ("GET", "/webhook/config"), ("DELETE", "/webhook/config"),
    ("GET", "/banks"), ("GET", "/accounts"), ("POST", "/refunds"), ("GET", "/v2/banks"),
    ("GET", "/member/sub-tpps"), ("POST", "/virtual-accounts"),
]


@pytest.mark.parametrize("method,path", NOT_IMPLEMENTED)
def test_501(tokend, tpp, method, path):
    r = tpp.client().request(method, path, json={} if method in ("POST", "PUT") else None)
    expect_id = path.rsplit("/", 1)[1] if path.startswith("/transfers/") else ""
    assert_tokenio_error(r, 501, "UNIMPLEMENTED", payment_id=expect_id)


# The reference's operations tokend implements; every other one answers 501.
IMPLEMENTED = {
    ("GET", "/tokens"), ("GET", "/tokens/{tokenId}"), ("PUT", "/tokens/{tokenId}/cancel"),
    ("POST", "/token-requests"), ("GET", "/token-requests/{requestId}"),
    ("GET", "/token-requests/{tokenRequestId}/result"), ("POST", "/token-requests/{tokenRequestId}/authorization"),
    ("GET", "/member/{memberId}/keys"), ("POST", "/member/{memberId}/keys"),
    ("GET", "/member/{memberId}/keys/{keyId}"), ("DELETE", "/member/{memberId}/keys/{keyId}"),
}


def test_every_operation_of_the_reference_is_answered(tokend, tpp):
    """Walks every path and method of the reference (tests/contract/spec): an
    operation tokend implements answers as its handler does (never the router's
    404 "no such endpoint" or 405); any other answers 501 UNIMPLEMENTED in the
    Token API error shape with paymentId = the first path parameter (issue 12:
    17 operations answered 404). The answers are also captured for the contract
    check (test_zz_contract.py)."""
    ops = tdlib.spec_operations()
    with open(tdlib.SPEC_PATH, encoding="utf-8") as f:
        assert len(ops) == len(re.findall(r"^      operationId:", f.read(), re.M)) > 60
    assert IMPLEMENTED <= set(ops)
    problems = []
    for method, tmpl in ops:
        first = re.search(r"\{([^}]+)\}", tmpl)
        path = re.sub(r"\{memberId\}", tpp.id, tmpl)
        path = re.sub(r"\{[^}]+\}", "x-1", path)
        r = tpp.client().request(method, path, json={} if method in ("POST", "PUT") else None)
        try:
            if (method, tmpl) in IMPLEMENTED:
                assert r.status_code != 405, (r.status_code, r.text)
                assert r.status_code < 400 or "no such endpoint" not in assert_tokenio_error(r, r.status_code)["message"]
            else:
                want = "" if not first else (tpp.id if first.group(1) == "memberId" else "x-1")
                assert_tokenio_error(r, 501, "UNIMPLEMENTED", payment_id=want)
        except AssertionError as e:
            problems.append(f"{method} {tmpl}: {e}")
    assert not problems, "\n".join(problems)


def test_501_credential_flow(tokend, bank, tpp):
    rid = store_request(tpp.client(), request_body(tpp.id, bank.id))
    before = db_snapshot(tokend.db_path)
    for body in ({"useCredentialFlow": True}, {"credentials": {"user": "x"}}, {"useWebappCredentialsFlow": True}):
        r = tpp.client().post(f"/token-requests/{rid}/authorization", json=body)
        assert_tokenio_error(r, 501, "UNIMPLEMENTED", payment_id=rid)
    assert_unchanged(before, db_snapshot(tokend.db_path))
    # The redirect flow with an explicit body works.
    r = tpp.client().post(f"/token-requests/{rid}/authorization", json={"consentAccepted": True,
                                                                        "useCredentialFlow": False})
    assert r.status_code == 200 and "/consent/" in r.json()["redirectUrl"], r.text


def test_503_store_unavailable(tokend, bank, tpp):
    tc = tpp.client()
    flow = consent_flow(tc, tpp, bank, view_page=False)
    token = get_token(tc, flow.token_id)
    before = db_snapshot(tokend.db_path)
    assert tokend.anon(capture=False).get("/readyz").status_code == 200
    tokend.set_fault("unavailable")
    try:
        for r in (tc.get(f"/tokens/{flow.token_id}"), tc.put(f"/tokens/{flow.token_id}/cancel"),
                  tc.get("/tokens", params={"page.limit": "5"}),
                  tc.post("/token-requests", json=request_body(tpp.id, bank.id)),
                  tc.get(f"/token-requests/{flow.request_id}/result")):
            assert_tokenio_error(r, 503, "UNAVAILABLE")  # also: no token-external-error header
        ready = tokend.anon(capture=False).get("/readyz")
        assert_tokenio_error(ready, 503, "UNAVAILABLE")
        assert tokend.anon(capture=False).get("/healthz").status_code == 200  # alive, not ready
        r = tokend.admin().post("/admin/v1/members", json={"displayName": "x"})
        assert_tokenio_error(r, 503, "UNAVAILABLE")
    finally:
        tokend.set_fault("none")
    assert tokend.anon(capture=False).get("/readyz").status_code == 200
    assert get_token(tc, flow.token_id) == token
    assert_unchanged(before, db_snapshot(tokend.db_path))
    r = tc.put(f"/tokens/{flow.token_id}/cancel")
    assert r.status_code == 200 and r.json()["result"]["status"] == "SUCCESS"


def test_504_commit_timeout(tokend_factory):
    """--commit-timeout 200: a write that cannot reach the writer within 200 ms
    answers 504 and changes nothing; once the store recovers, writes work."""
    srv = tokend_factory.start(settings={"commit-timeout": "200"})
    bank = new_member(srv, "bank")
    tpp = new_member(srv, "tpp")
    tc = tpp.client()
    flow = consent_flow(tc, tpp, bank, view_page=False)
    token = get_token(tc, flow.token_id)
    before = db_snapshot(srv.db_path)

    srv.set_fault("stalled")
    answer = {}

    def write():
        answer["r"] = tpp.client().put(f"/tokens/{flow.token_id}/cancel")
        answer["at"] = time.monotonic()

    t = threading.Thread(target=write)
    t.start()
    # 10 s is 50 commit timeouts: if there is no answer by then, there will be none while stalled.
    t.join(10)
    answered_while_stalled = not t.is_alive()
    # Reads do not need the writer.
    assert get_token(tc, flow.token_id) == token
    srv.set_fault("none")
    t.join(60)
    assert not t.is_alive(), "the write never completed"
    assert_tokenio_error(answer["r"], 504, "DEADLINE_EXCEEDED", payment_id=flow.token_id)
    assert get_token(tc, flow.token_id) == token
    assert_unchanged(before, db_snapshot(srv.db_path))
    r = tc.put(f"/tokens/{flow.token_id}/cancel")
    assert r.status_code == 200 and r.json()["result"]["status"] == "SUCCESS", r.text
    assert answered_while_stalled, (
        "with --commit-timeout 200 the write got no answer for 10 s while the writer was stalled; "
        "its 504 came only after the writer resumed")


# ---------------------------------------------------------------------------
# Idempotency-Key
# ---------------------------------------------------------------------------


def test_idempotent_store_request(tokend, bank, tpp):
    tc = tpp.client()
    body = request_body(tpp.id, bank.id, ref_id="idem-1")
    first = tc.post("/token-requests", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 200, first.text
    before = db_snapshot(tokend.db_path)
    replay = tc.post("/token-requests", json=body, headers={"Idempotency-Key": "k-1"})
    assert replay.status_code == 200 and replay.content == first.content
    assert replay.headers["Token-Trace-Id"] != first.headers["Token-Trace-Id"]
    assert_unchanged(before, db_snapshot(tokend.db_path))
    # Same key, another request: 409, nothing changes.
    other_body = request_body(tpp.id, bank.id, ref_id="idem-2")
    assert_tokenio_error(tc.post("/token-requests", json=other_body, headers={"Idempotency-Key": "k-1"}), 409,
                         "ALREADY_EXISTS")
    assert_unchanged(before, db_snapshot(tokend.db_path))
    # Keys are scoped to the credential: another key of the same member starts afresh.
    fresh = tpp.client("LOW").post("/token-requests", json=body, headers={"Idempotency-Key": "k-1"})
    assert fresh.status_code == 200
    assert fresh.json()["tokenRequest"]["id"] != first.json()["tokenRequest"]["id"]


def test_idempotent_cancel(tokend, bank, tpp):
    tc = tpp.client()
    t1 = consent_flow(tc, tpp, bank, view_page=False).token_id
    t2 = consent_flow(tc, tpp, bank, view_page=False).token_id
    first = tc.put(f"/tokens/{t1}/cancel", headers={"Idempotency-Key": "cancel-1"})
    assert first.status_code == 200 and first.json()["result"]["status"] == "SUCCESS", first.text
    before = db_snapshot(tokend.db_path)
    for _ in range(2):
        replay = tc.put(f"/tokens/{t1}/cancel", headers={"Idempotency-Key": "cancel-1"})
        assert replay.status_code == 200 and replay.content == first.content
    assert_unchanged(before, db_snapshot(tokend.db_path))
    # The same key for another token: 409, that token untouched.
    t2_before = get_token(tc, t2)
    assert_tokenio_error(tc.put(f"/tokens/{t2}/cancel", headers={"Idempotency-Key": "cancel-1"}), 409)
    assert get_token(tc, t2) == t2_before
    assert_unchanged(before, db_snapshot(tokend.db_path))


def test_idempotent_replay_of_a_refusal_style_answer(tokend, bank, tpp):
    """MORE_SIGNATURES_NEEDED is a 200 and is stored like any 2xx; replaying it
    returns it even after the token was canceled by a stronger key."""
    tc = tpp.client()
    tid = consent_flow(tc, tpp, bank, kind="transfer", body=transfer_body(), view_page=False).token_id
    low = tpp.client("LOW")
    first = low.put(f"/tokens/{tid}/cancel", headers={"Idempotency-Key": "msn"})
    assert first.json()["result"]["status"] == "MORE_SIGNATURES_NEEDED"
    assert tc.put(f"/tokens/{tid}/cancel").json()["result"]["status"] == "SUCCESS"
    replay = low.put(f"/tokens/{tid}/cancel", headers={"Idempotency-Key": "msn"})
    assert replay.content == first.content
    fresh = low.put(f"/tokens/{tid}/cancel")
    assert fresh.json()["result"]["status"] == "SUCCESS"


def test_malformed_idempotency_key(tokend, bank, tpp):
    tc = tpp.client()
    tid = consent_flow(tc, tpp, bank, view_page=False).token_id
    before = db_snapshot(tokend.db_path)
    for key in ("has space", "x" * 256, "tab\there"):
        assert_tokenio_error(tc.put(f"/tokens/{tid}/cancel", headers={"Idempotency-Key": key}), 400,
                             "INVALID_ARGUMENT")
        assert_tokenio_error(tc.post("/token-requests", json=request_body(tpp.id, bank.id),
                                     headers={"Idempotency-Key": key}), 400, "INVALID_ARGUMENT")
    assert_unchanged(before, db_snapshot(tokend.db_path))
    ok = tc.put(f"/tokens/{tid}/cancel", headers={"Idempotency-Key": "x" * 255})
    assert ok.status_code == 200 and ok.json()["result"]["status"] == "SUCCESS"
