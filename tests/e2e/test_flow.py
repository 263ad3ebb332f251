"""test_flow.py — the Token API end to end: consent -> token -> read -> list ->
cancel (SUCCESS, repeat, INVALID when expired, MORE_SIGNATURES_NEEDED), tenancy,
Bearer and Basic auth, reject, one-time consent codes."""

import json
import re
import time

import requests

from tdlib import (FORM, HTTP_TIMEOUT, access_body, assert_tokenio_error, assert_unchanged, authorize, consent_flow,
                   db_snapshot, decide, get_token, new_member, query_params, request_body, signatures,
                   spec_valid_destination, sql, standing_order_body, store_request, transfer_body)


def cancel(client, token_id, **kw):
    r = client.put(f"/tokens/{token_id}/cancel", **kw)
    assert r.status_code == 200, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"result"} and set(body["result"]) == {"status", "token"}, body
    return body["result"]


def list_tokens(client, **params):
    params.setdefault("page.limit", "10")
    r = client.get("/tokens", params=params)
    assert r.status_code == 200, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"tokens", "offset"} and isinstance(body["offset"], str), body
    return body


def ids(listing):
    return [t["id"] for t in listing["tokens"]]


# ---------------------------------------------------------------------------


def test_access_token_lifecycle(tokend, bank, tpp, other):
    tc = tpp.client("STANDARD")
    bc = bank.client("STANDARD", basic=True)  # Basic base64(memberId:apiKey)
    flow = consent_flow(tc, tpp, bank, kind="access", accounts=("a:1", "a:2"), callbackState="st 1/ü",
                        description="Budget overview", ref_id="budget-1")

    # GET /tokens/{id}: both parties see the same stored token.
    token = get_token(tc, flow.token_id)
    assert get_token(bc, flow.token_id) == token
    assert token["id"] == flow.token_id and token["tokenRequestId"] == flow.request_id
    p = token["payload"]
    assert p["from"] == {"id": bank.id} and p["to"] == {"id": tpp.id}
    assert p["refId"] == "budget-1" and p["description"] == "Budget overview" and p["version"] == "1.0"
    assert p["tokenRequestId"] == flow.request_id
    assert isinstance(p["effectiveAtMs"], str) and isinstance(p["expiresAtMs"], str)
    assert int(p["expiresAtMs"]) > int(p["effectiveAtMs"])
    assert sorted(json.dumps(x, sort_keys=True) for x in p["access"]["resources"]) == sorted(
        json.dumps(x, sort_keys=True) for x in [
            {"account": {"accountId": "a:1"}}, {"account": {"accountId": "a:2"}},
            {"balance": {"accountId": "a:1"}}, {"balance": {"accountId": "a:2"}}])
    assert [s["action"] for s in token["payloadSignatures"]] == ["ENDORSED"]
    assert token["payloadSignatures"][0]["signature"] == flow.result["signature"]

    # GET /token-requests/{id}: the stored request, with requestOptions.to filled in.
    r = tc.get(f"/token-requests/{flow.request_id}")
    assert r.status_code == 200, r.text
    tr = r.json()["tokenRequest"]
    assert tr["id"] == flow.request_id and tr["requestPayload"]["id"] == flow.request_id
    assert tr["requestOptions"]["to"] == {"id": tpp.id} and tr["requestOptions"]["from"] == {"id": bank.id}
    assert tr["requestPayload"]["accessBody"] == flow.request["requestPayload"]["accessBody"]

    # PUT cancel: SUCCESS, a CANCELED signature appended, the payload untouched.
    res = cancel(tc, flow.token_id, headers={"token-customer-ip-address": "203.0.113.7", "customer-initiated": "true",
                                            "token-customer-device-id": "device-1"})
    assert res["status"] == "SUCCESS"
    canceled = res["token"]
    assert canceled["payload"] == token["payload"]
    assert [s["action"] for s in canceled["payloadSignatures"]] == ["ENDORSED", "CANCELED"]
    assert canceled["payloadSignatures"][0] == token["payloadSignatures"][0]
    assert signatures(canceled, "CANCELED")[0]["memberId"] == tpp.id
    assert get_token(tc, flow.token_id) == canceled
    ev = [e for e in _events(tokend, flow.token_id)]
    assert [(e["seq"], e["type"]) for e in ev] == [(1, "CREATED"), (2, "CANCELED")]
    assert (ev[1]["actor"], ev[1]["customer_ip"], ev[1]["customer_initiated"], ev[1]["customer_device_id"]) == (
        tpp.id, "203.0.113.7", "true", "device-1")

    # A repeat cancel, by either party: SUCCESS, the same signature, nothing changed.
    before = db_snapshot(tokend.db_path)
    for client in (tc, bc, tpp.client("LOW")):
        again = cancel(client, flow.token_id)
        assert again == {"status": "SUCCESS", "token": canceled}
    assert_unchanged(before, db_snapshot(tokend.db_path))

    # Not a party: 404 exactly as if the token did not exist; nothing changes.
    oc = other.client("PRIVILEGED")
    assert_tokenio_error(oc.get(f"/tokens/{flow.token_id}"), 404, "NOT_FOUND", payment_id=flow.token_id)
    assert_tokenio_error(oc.put(f"/tokens/{flow.token_id}/cancel"), 404, "NOT_FOUND", payment_id=flow.token_id)
    assert_tokenio_error(oc.get(f"/token-requests/{flow.request_id}"), 404, "NOT_FOUND", payment_id=flow.request_id)
    assert_tokenio_error(oc.get(f"/token-requests/{flow.request_id}/result"), 404, "NOT_FOUND",
                         payment_id=flow.request_id)
    assert_tokenio_error(oc.post(f"/token-requests/{flow.request_id}/authorization"), 404, "NOT_FOUND",
                         payment_id=flow.request_id)
    assert list_tokens(oc)["tokens"] == []
    assert_unchanged(before, db_snapshot(tokend.db_path))


def _events(server, token_id):
    return sql(server.db_path, f"SELECT * FROM token_events WHERE token_id = '{token_id}' ORDER BY seq")


def test_cancel_by_the_granting_member_with_basic_auth(tokend, bank, tpp):
    flow = consent_flow(tpp.client(), tpp, bank, kind="access", view_page=False)
    res = cancel(bank.client("LOW", basic=True), flow.token_id)
    assert res["status"] == "SUCCESS"
    assert signatures(res["token"], "CANCELED")[0]["memberId"] == bank.id
    # The other party sees the same canceled token, and its repeat is a SUCCESS.
    assert cancel(tpp.client("LOW"), flow.token_id) == res


def test_more_signatures_needed_then_success(tokend, bank, tpp):
    """Default policy: transfer and standing-order tokens need a STANDARD key to cancel."""
    for kind, body in (("transfer", transfer_body("a:dst-1")), ("standing_order", standing_order_body())):
        flow = consent_flow(tpp.client(), tpp, bank, kind=kind, body=body, view_page=False)
        token = get_token(tpp.client(), flow.token_id)
        before = db_snapshot(tokend.db_path)
        for client in (tpp.client("LOW"), tpp.client("LOW", basic=True), bank.client("LOW")):
            res = cancel(client, flow.token_id)
            assert res == {"status": "MORE_SIGNATURES_NEEDED", "token": token}
        assert_unchanged(before, db_snapshot(tokend.db_path))
        res = cancel(tpp.client("STANDARD"), flow.token_id)
        assert res["status"] == "SUCCESS"
        assert [s["action"] for s in res["token"]["payloadSignatures"]] == ["ENDORSED", "CANCELED"]
        # Once canceled, a LOW key gets the SUCCESS of the repeat, not MORE_SIGNATURES_NEEDED.
        assert cancel(tpp.client("LOW"), flow.token_id) == res


def test_expired_token_cancels_invalid_and_nothing_changes(tokend, bank, tpp):
    exp_s = int(time.time()) + 3
    flow = consent_flow(tpp.client(), tpp, bank, kind="access", view_page=False, tokenExpiration=str(exp_s))
    token = get_token(tpp.client(), flow.token_id)
    assert token["payload"]["expiresAtMs"] == str(exp_s * 1000)
    while time.time() < exp_s + 0.5:  # wait until it has expired (same clock as tokend)
        time.sleep(0.1)
    before = db_snapshot(tokend.db_path)
    for client in (tpp.client("STANDARD"), bank.client("PRIVILEGED")):
        res = cancel(client, flow.token_id)
        assert res == {"status": "INVALID", "token": token}
    assert get_token(tpp.client(), flow.token_id) == token
    assert_unchanged(before, db_snapshot(tokend.db_path))


def test_token_expiration_in_milliseconds(tokend, bank, tpp):
    exp_ms = (int(time.time()) + 86400) * 1000 + 123
    flow = consent_flow(tpp.client(), tpp, bank, kind="access", view_page=False, tokenExpiration=str(exp_ms))
    assert get_token(tpp.client(), flow.token_id)["payload"]["expiresAtMs"] == str(exp_ms)


def test_transfer_and_standing_order_tokens(tokend, bank, tpp):
    tc = tpp.client()
    tb = transfer_body("a:dst-1")
    tb["setTransferDestinationsUrl"] = "https://tpp.example/destinations"
    flow = consent_flow(tc, tpp, bank, kind="transfer", body=tb, callbackState="pay-1")
    token = get_token(tc, flow.token_id)
    expected = dict(tb)
    del expected["setTransferDestinationsUrl"]  # not part of the token
    assert token["payload"]["transfer"] == expected
    assert "access" not in token["payload"] and "expiresAtMs" not in token["payload"]
    r = tc.get(f"/token-requests/{flow.request_id}")
    assert r.status_code == 200 and r.json()["tokenRequest"]["requestPayload"]["transferBody"] == tb

    so = standing_order_body("a:dst-2")
    flow = consent_flow(tc, tpp, bank, kind="standing_order", body=so)
    token = get_token(tc, flow.token_id)
    assert token["payload"]["standingOrder"] == so
    assert "transfer" not in token["payload"] and "expiresAtMs" not in token["payload"]


def test_transfer_without_destinations_is_refused(tokend, bank, tpp):
    """A payment names its payee when it is requested: the reference's
    TransferInstructions requires transferDestinations with at least one entry,
    even with setTransferDestinationsUrl (issue 12: tokend used to store such a
    request and sign a payment without a payee on approval). Nothing is stored."""
    tc = tpp.client()
    before = db_snapshot(tokend.db_path)
    for kind, body in (("transfer", {"currency": "EUR", "lifetimeAmount": "50.00", "instructions": {},
                                     "setTransferDestinationsUrl": "https://tpp.example/destinations"}),
                       ("standing_order", {"amount": "5.00", "currency": "EUR", "frequency": "MNTH",
                                           "instructions": {"transferDestinations": [{"sepa": {}}]}})):
        r = tc.post("/token-requests", json=request_body(tpp.id, bank.id, kind=kind, body=body))
        err = assert_tokenio_error(r, 400, "INVALID_ARGUMENT")
        assert "transferDestinations" in err["message"], err
    assert_unchanged(before, db_snapshot(tokend.db_path))


def test_list_tokens_filters_and_pagination(tokend, bank, tpp, other):
    tc = tpp.client()
    made = {}

    def make(name, client, asker, granter, **kw):
        made[name] = consent_flow(client, asker, granter, view_page=False, **kw).token_id
        time.sleep(0.005)  # distinct creation milliseconds, so "newest first" is one order

    make("acc1", tc, tpp, bank, accounts=("a:1",))
    make("acc12", tc, tpp, bank, accounts=("a:1", "a:2"), actingAs={"displayName": "Sub shop", "refId": "sub-1"})
    make("acc3", tc, tpp, bank, accounts=("a:3",))
    make("transfer", tc, tpp, bank, kind="transfer", body=transfer_body("a:dst-9"))
    make("so", tc, tpp, bank, kind="standing_order")
    # `other` asks the TPP for access: there the TPP is the granting (FROM) member.
    make("from_tpp", other.client(), other, tpp, accounts=("a:9",))
    order = ["from_tpp", "so", "transfer", "acc3", "acc12", "acc1"]  # newest first
    expected = [made[k] for k in order]

    everything = list_tokens(tc, **{"page.limit": "50"})
    assert ids(everything) == expected and everything["offset"] == ""
    for t in everything["tokens"]:
        assert t == get_token(tc, t["id"])
    assert ids(list_tokens(tc, type="INVALID", **{"page.limit": "50"})) == expected
    assert ids(list_tokens(tc, type="ACCESS")) == [made[k] for k in ("from_tpp", "acc3", "acc12", "acc1")]
    assert ids(list_tokens(tc, type="TRANSFER")) == [made["transfer"]]
    assert ids(list_tokens(tc, type="STANDING_ORDER")) == [made["so"]]
    assert ids(list_tokens(tc, **{"filter.role": "TO"})) == [made[k] for k in order[1:]]
    assert ids(list_tokens(tc, **{"filter.role": "FROM"})) == [made["from_tpp"]]
    assert ids(list_tokens(tc, **{"filter.role": "ANY"})) == expected
    assert ids(list_tokens(tc, **{"filter.role": "ISSUER"})) == []
    assert ids(list_tokens(tc, type="ACCESS", **{"filter.role": "FROM"})) == [made["from_tpp"]]
    assert ids(list_tokens(tc, **{"filter.sourceAccountId": "a:2"})) == [made["acc12"]]
    assert ids(list_tokens(tc, **{"filter.sourceAccountId": "a:1"})) == [made["acc12"], made["acc1"]]
    assert ids(list_tokens(tc, **{"filter.sourceAccountId": "a:404"})) == []
    assert ids(list_tokens(tc, **{"filter.destinationAccountId": "a:dst-9"})) == [made["transfer"]]
    assert ids(list_tokens(tc, **{"filter.actingAsRefId": "sub-1"})) == [made["acc12"]]
    # Creation-time window [start, end): the tokens' effectiveAtMs is their creation time.
    created = {t["id"]: int(t["payload"]["effectiveAtMs"]) for t in everything["tokens"]}
    start, end = created[made["acc12"]], created[made["so"]]
    window = [t for t in expected if start <= created[t] < end]
    assert ids(list_tokens(tc, **{"filter.startTimeMs": str(start), "filter.endTimeMs": str(end)})) == window
    # The bank sees its five tokens as FROM, `other` only its own.
    assert ids(list_tokens(bank.client(), **{"filter.role": "FROM"})) == [made[k] for k in order[1:]]
    assert ids(list_tokens(other.client())) == [made["from_tpp"]]

    # Pagination: page.offset is the previous answer's offset; "" once there is no more.
    seen, offset, pages = [], None, 0
    while True:
        params = {"page.limit": "4"}
        if offset:
            params["page.offset"] = offset
        page = list_tokens(tc, **params)
        pages += 1
        assert len(page["tokens"]) <= 4
        seen += ids(page)
        offset = page["offset"]
        if not offset:
            break
        assert pages < 10
    assert seen == expected
    assert ids(list_tokens(tc, **{"page.limit": "2", "page.offset": "1"})) == expected[1:3]
    assert list_tokens(tc, **{"page.limit": "2", "page.offset": "1"})["offset"] == "3"
    assert ids(list_tokens(tc, **{"page.limit": "10", "page.offset": "6"})) == []
    # An empty page.offset (`page.offset=`) is the first page, as the reference says.
    first = list_tokens(tc, **{"page.limit": "2"})
    assert list_tokens(tc, **{"page.limit": "2", "page.offset": ""}) == first
    assert ids(first) == expected[:2] and first["offset"] == "2"


def test_source_account_filter_matches_exactly(tokend, bank, tpp):
    """filter.sourceAccountId names one account. Account ids may contain '_'
    (tokend accepts [A-Za-z0-9:_-]); that must not act as a wildcard."""
    tc = tpp.client()
    underscore = consent_flow(tc, tpp, bank, accounts=("acc_1",), view_page=False).token_id
    lookalike = consent_flow(tc, tpp, bank, accounts=("accX1",), view_page=False).token_id
    assert ids(list_tokens(tc, **{"filter.sourceAccountId": "accX1"})) == [lookalike]
    assert ids(list_tokens(tc, **{"filter.sourceAccountId": "acc_1"})) == [underscore], (
        "filter.sourceAccountId=acc_1 also returned the token on accX1 ('_' used as a LIKE wildcard)")


def test_reject_flow(tokend, bank, tpp):
    tc = tpp.client()
    flow = consent_flow(tc, tpp, bank, kind="access", decision="reject", callbackState="s-9")
    assert flow.token_id is None
    assert query_params(flow.location) == {"error": "access_denied", "state": "s-9"}
    assert list_tokens(tc)["tokens"] == [] and list_tokens(bank.client())["tokens"] == []
    # The code was used: the page and a second decision answer 410, nothing changes.
    before = db_snapshot(tokend.db_path)
    for r in (requests.get(flow.consent_url, timeout=HTTP_TIMEOUT), decide(flow.consent_url, "approve")):
        assert r.status_code == 410 and r.headers["Content-Type"].startswith("text/html"), (r.status_code, r.text)
    assert tc.get(f"/token-requests/{flow.request_id}/result").json() == {"status": "REJECTED"}
    assert_unchanged(before, db_snapshot(tokend.db_path))


def test_consent_code_works_once(tokend, bank, tpp):
    tc = tpp.client()
    req = request_body(tpp.id, bank.id)
    rid = store_request(tc, req)
    assert tc.get(f"/token-requests/{rid}/result").json() == {"status": "PENDING"}
    url = authorize(tc, rid)
    # Approving access without choosing an account is refused, and the code stays usable.
    r = decide(url, "approve", accounts=())
    assert r.status_code == 400 and r.headers["Content-Type"].startswith("text/html"), (r.status_code, r.text)
    # Not a form: 415.
    r = requests.post(url, data=json.dumps({"decision": "approve"}), headers={"Content-Type": "application/json"},
                      timeout=HTTP_TIMEOUT, allow_redirects=False)
    assert r.status_code == 415, (r.status_code, r.text)
    assert tc.get(f"/token-requests/{rid}/result").json() == {"status": "PENDING"}

    r = decide(url, "approve", accounts=("a:1",))
    assert r.status_code == 303, (r.status_code, r.text)
    token_id = query_params(r.headers["Location"])["tokenId"]
    before = db_snapshot(tokend.db_path)
    for decision in ("approve", "reject"):
        r = decide(url, decision, accounts=("a:2",))
        assert r.status_code == 410, (r.status_code, r.text)
        assert r.headers["Content-Type"].startswith("text/html") and "<h1>410</h1>" in r.text
        assert "Location" not in r.headers
    assert requests.get(url, timeout=HTTP_TIMEOUT).status_code == 410
    # A processed request cannot be authorized again.
    assert_tokenio_error(tc.post(f"/token-requests/{rid}/authorization"), 400, "INVALID_ARGUMENT")
    result = tc.get(f"/token-requests/{rid}/result").json()
    assert result["status"] == "PROCESSED" and result["tokenId"] == token_id
    assert [t["id"] for t in list_tokens(tc)["tokens"]] == [token_id]
    assert_unchanged(before, db_snapshot(tokend.db_path))


def test_unknown_consent_code(tokend):
    for code in ("A" * 43, "short"):
        r = requests.get(f"{tokend.url}/consent/{code}", timeout=HTTP_TIMEOUT)
        assert r.status_code == 404 and r.headers["Content-Type"].startswith("text/html"), (r.status_code, r.text)
        r = requests.post(f"{tokend.url}/consent/{code}", data="decision=approve&accounts=a:1", headers=FORM,
                          timeout=HTTP_TIMEOUT, allow_redirects=False)
        assert r.status_code == 404, (r.status_code, r.text)


def test_consent_code_names_its_request_and_a_wrong_secret_is_unknown(tokend, bank, tpp):
    """docs/api.md: a consent code is <requestId>.<secret>. A real request id
    with a wrong secret answers exactly as an unknown code does (before and
    after the link is used: nothing tells which requests exist or where they
    stand), changes nothing, and leaves the real link working once."""
    tc = tpp.client()
    rid = store_request(tc, request_body(tpp.id, bank.id))
    url = authorize(tc, rid)
    base, code = url.rsplit("/consent/", 1)
    named, secret = code.rsplit(".", 1)
    assert named == rid and len(secret) == 43, code

    def answers(u):
        page = requests.get(u, timeout=HTTP_TIMEOUT)
        post = decide(u, "approve", accounts=("a:1",))
        # the same page but for its trace id
        return [(r.status_code, r.headers["Content-Type"], re.sub(r"trace [^<]*", "trace", r.text),
                 r.headers.get("Location")) for r in (page, post)]

    unknown = answers(f"{base}/consent/rq:{'1' * 27}:{'1' * 6}.{secret}")
    assert [a[0] for a in unknown] == [404, 404], unknown
    wrong = [f"{base}/consent/{rid}.{'A' * 43}", f"{base}/consent/{rid}.{secret[:-1]}", f"{base}/consent/{rid}.",
             f"{base}/consent/{secret}", f"{base}/consent/{rid}"]
    before = db_snapshot(tokend.db_path)
    for u in wrong:
        assert answers(u) == unknown, u
    assert_unchanged(before, db_snapshot(tokend.db_path))
    assert tc.get(f"/token-requests/{rid}/result").json() == {"status": "PENDING"}

    r = decide(url, "approve", accounts=("a:1",))
    assert r.status_code == 303, (r.status_code, r.text)
    assert decide(url, "approve", accounts=("a:1",)).status_code == 410
    # used: the real link says so (410), a wrong secret still knows nothing
    assert answers(wrong[0]) == unknown


def test_replaced_consent_code_answers_404(tokend, bank, tpp):
    """docs/api.md: a code replaced by a newer authorization -> 404 page (it is no
    longer known); nothing changes. A new authorization replaces the previous code."""
    tc = tpp.client()
    rid = store_request(tc, request_body(tpp.id, bank.id))
    first = authorize(tc, rid)
    second = authorize(tc, rid)
    assert first != second
    before = db_snapshot(tokend.db_path)
    page = requests.get(first, timeout=HTTP_TIMEOUT)
    post = decide(first, "approve", accounts=("a:1",))
    assert_unchanged(before, db_snapshot(tokend.db_path))
    # The newest code works.
    r = decide(second, "approve", accounts=("a:1",))
    assert r.status_code == 303, (r.status_code, r.text)
    assert (page.status_code, post.status_code) == (404, 404), (
        f"replaced consent code answered GET {page.status_code} / POST {post.status_code}, docs/api.md says 404")


def test_access_request_variants_round_trip(tokend, bank, tpp):
    """Optional request fields tokend accepts are stored and served back as sent."""
    tc = tpp.client()
    req = request_body(tpp.id, bank.id, body=access_body(("ACCOUNTS", "TRANSACTIONS", "STANDING_ORDERS"), days=90),
                       description="x" * 255, callbackState="cb", countries=["DE", "FR"], userRefId="user-1",
                       actingAs={"displayName": "Shop", "refId": "shop-1", "secondaryName": "Shop GmbH"},
                       disableFutureDatedPaymentConversion=True, tokenExpiration=str(int(time.time()) + 3600))
    req["requestOptions"].update({"bankId": "ob-modelo", "psuId": "psu-1", "receiptRequested": False,
                                  "to": {"id": tpp.id}})
    rid = store_request(tc, req)
    stored = tc.get(f"/token-requests/{rid}").json()["tokenRequest"]
    expected_payload = dict(req["requestPayload"], id=rid)
    assert stored == {"id": rid, "requestOptions": req["requestOptions"], "requestPayload": expected_payload}
    url = authorize(tc, rid)
    r = decide(url, "approve", accounts=("a:7",))
    token = get_token(tc, query_params(r.headers["Location"])["tokenId"])
    p = token["payload"]
    assert p["actingAs"] == req["requestPayload"]["actingAs"] and p["description"] == "x" * 255
    assert p["access"]["transactionHistoryDays"] == 90
    assert {k for r_ in p["access"]["resources"] for k in r_} == {"account", "transactions", "standingOrders"}


def test_second_tpp_cannot_use_anothers_request(tokend, bank, tpp, other):
    """A request belongs to its parties: another member cannot read or authorize it."""
    tc = tpp.client()
    rid = store_request(tc, request_body(tpp.id, bank.id))
    before = db_snapshot(tokend.db_path)
    oc = other.client()
    assert_tokenio_error(oc.get(f"/token-requests/{rid}"), 404, payment_id=rid)
    assert_tokenio_error(oc.post(f"/token-requests/{rid}/authorization"), 404, payment_id=rid)
    assert_unchanged(before, db_snapshot(tokend.db_path))
    # The granting member (from) may read it.
    assert bank.client().get(f"/token-requests/{rid}").status_code == 200


def test_destination_helper_is_what_tokend_stores(tokend, bank, tpp):
    """The spec-valid destinations (nulls included) are stored and served as sent."""
    dest = spec_valid_destination("a:dst-5", bank.id)
    tb = {"currency": "GBP", "lifetimeAmount": "5", "instructions": {"transferDestinations": [dest]}}
    flow = consent_flow(tpp.client(), tpp, bank, kind="transfer", body=tb, view_page=False)
    assert get_token(tpp.client(), flow.token_id)["payload"]["transfer"] == tb


def test_members_are_isolated_between_servers(tokend_factory):
    """Two servers share nothing: a key of one is unknown to the other."""
    a = tokend_factory.start()
    b = tokend_factory.start()
    m = new_member(a, "m", levels=("STANDARD",))
    assert m.client().get("/tokens", params={"page.limit": "1"}).status_code == 200
    assert_tokenio_error(m.client(server=b).get("/tokens", params={"page.limit": "1"}), 401, "UNAUTHENTICATED")


def test_consent_links_and_requests_expire(tokend_factory):
    """--consent-ttl 1: a link dies after a second (410), a new authorization
    gives a working one; --request-ttl 3: then the request itself is EXPIRED,
    cannot be authorized, and its links answer 410. Nothing changes meanwhile."""
    srv = tokend_factory.start(settings={"consent-ttl": "1", "request-ttl": "3"})
    bank = new_member(srv, "bank")
    tpp = new_member(srv, "tpp")
    tc = tpp.client()
    created = time.time()
    rid = store_request(tc, request_body(tpp.id, bank.id))
    old = authorize(tc, rid)
    time.sleep(1.2)
    before = db_snapshot(srv.db_path)
    assert requests.get(old, timeout=HTTP_TIMEOUT).status_code == 410
    assert decide(old, "approve", accounts=("a:1",)).status_code == 410
    assert_unchanged(before, db_snapshot(srv.db_path))
    fresh = authorize(tc, rid)
    assert requests.get(fresh, timeout=HTTP_TIMEOUT).status_code == 200
    while time.time() < created + 3.3:
        time.sleep(0.1)
    before = db_snapshot(srv.db_path)
    assert tc.get(f"/token-requests/{rid}/result").json() == {"status": "EXPIRED"}
    assert decide(fresh, "approve", accounts=("a:1",)).status_code == 410
    assert_tokenio_error(tc.post(f"/token-requests/{rid}/authorization"), 400, "INVALID_ARGUMENT")
    assert list_tokens(tc)["tokens"] == []
    assert_unchanged(before, db_snapshot(srv.db_path))
