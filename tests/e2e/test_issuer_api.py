"""test_issuer_api.py — the Issuer API (D1-compatible, docs/network.md):
cards (register, read, list digital cards), digital card and card operations
carried out at the (simulated) TSP, operations, refusals with no TSP call,
TSP failures and timeouts that change nothing, tenancy, and the Token API's
view of digital cards as CARD tokens."""

import pytest

import tdlib
from conftest import (ISO_MS, OP_ID, assert_d1_error, net_snapshot, new_pan, summaries, unique)

CARD_VIEW_KEYS = {"cardId", "consumerId", "last4", "expiry", "state", "phone", "email", "createdAt", "updatedAt",
                  "digitalCards"}
DCARD_VIEW_KEYS = {"digitalCardId", "cardId", "state", "suspendedBy", "walletProviderId", "tokenRequestorId",
                   "tokenStorageId", "isPrimary", "last4", "decision", "decisionReason", "deviceInformation",
                   "idvMethods", "stepUpExpiresAt", "correlationId", "sequence", "createdAt", "updatedAt"}
OP_VIEW_KEYS = {"operationId", "operation", "status", "startTime", "endTime", "requestorType", "reason",
                "reasonCode", "digitalCardId", "cardId", "errorCode"}


@pytest.fixture
def tsp_accept(net_tokend):
    """Leaves the simulated TSP accepting, whatever the test did."""
    yield
    r = net_tokend.admin().post("/admin/v1/tsp", json={"mode": "accept", "count": 0})
    assert r.status_code == 200, r.text


def assert_masked_phone(v, last4):
    assert v.endswith(last4) and set(v[:-4]) == {"*"}, v


# ---------------------------------------------------------------------------
# Cards
# ---------------------------------------------------------------------------


def test_register_and_read_card(net_issuer):
    iss = net_issuer
    pan = new_pan()
    card = iss.register_card(card_id="card-0001", pan=pan, expiry="1230", phone="+33 6 12 34 56 78",
                             email="jane@example.com", consumer_id="cons-42")
    v = card.view
    assert set(v) == CARD_VIEW_KEYS, v
    assert v["cardId"] == "card-0001" and v["consumerId"] == "cons-42", v
    assert v["last4"] == pan[-4:] and v["expiry"] == "1230" and v["state"] == "ACTIVE", v
    assert_masked_phone(v["phone"], "5678")
    assert v["email"] == "j***@example.com", v
    assert v["digitalCards"] == [], v
    assert ISO_MS.match(v["createdAt"]) and ISO_MS.match(v["updatedAt"]), v
    assert pan not in str(v)
    got = iss.card("card-0001")
    assert got == v, (got, v)
    r = iss.iss.get(iss.path("/cards/card-0001/digitalCards"))
    assert r.status_code == 200 and r.json() == {"digitalCards": []}, r.text


def test_register_suspended_and_optional_contacts(net_issuer):
    iss = net_issuer
    card = iss.register_card(phone=None, email=None, state="SUSPENDED")
    assert card.view["state"] == "SUSPENDED", card.view


def test_register_conflicts(net_issuer, net_issuer2):
    iss = net_issuer
    card = iss.register_card()
    r = iss.iss.post(iss.path("/cards"), json={"cardId": card.id, "consumerId": "c", "pan": new_pan(),
                                               "expiry": "1230"})
    assert_d1_error(r, 409, "CONFLICT")
    r = iss.iss.post(iss.path("/cards"), json={"cardId": unique("card"), "consumerId": "c", "pan": card.pan,
                                               "expiry": "1230"})
    assert_d1_error(r, 409, "CONFLICT")
    assert card.pan not in r.text
    # The same PAN for another issuer is another card.
    net_issuer2.register_card(pan=card.pan)


def test_register_idempotency_key(net_issuer):
    iss = net_issuer
    body = {"cardId": unique("card"), "consumerId": "c", "pan": new_pan(), "expiry": "1230"}
    h = {"Idempotency-Key": unique("idem")}
    r1 = iss.iss.post(iss.path("/cards"), json=body, headers=h)
    r2 = iss.iss.post(iss.path("/cards"), json=body, headers=h)
    assert r1.status_code == r2.status_code == 201 and r1.json() == r2.json(), (r1.text, r2.text)
    other = dict(body, cardId=unique("card"), pan=new_pan())
    assert_d1_error(iss.iss.post(iss.path("/cards"), json=other, headers=h), 409, "IDEMPOTENCY_KEY_REUSED")
    assert_d1_error(iss.iss.get(iss.path(f"/cards/{other['cardId']}")), 404, "NOT_FOUND")


def test_register_refuses_bad_pan(net_issuer):
    iss = net_issuer
    good = new_pan()
    bad_luhn = good[:-1] + str((int(good[-1]) + 1) % 10)
    for pan in (bad_luhn, "4111 1111 1111 1111", "411111111", "41111111111111111111", ""):
        r = iss.iss.post(iss.path("/cards"), json={"cardId": unique("card"), "consumerId": "c", "pan": pan,
                                                   "expiry": "1230"})
        assert_d1_error(r, 400, "INVALID_ARGUMENT")
        if pan:
            assert pan not in r.text
    for exp in ("1330", "123", "12/30", "0030"):
        r = iss.iss.post(iss.path("/cards"), json={"cardId": unique("card"), "consumerId": "c", "pan": new_pan(),
                                                   "expiry": exp})
        assert_d1_error(r, 400, "INVALID_ARGUMENT")


def test_digital_card_view_and_list(net_issuer):
    iss = net_issuer
    card = iss.register_card()
    g = iss.tokenize(card, "GREEN")
    y = iss.yellow(card)
    v = iss.dcard(y["digitalCardId"])
    assert set(v) == DCARD_VIEW_KEYS, set(v) ^ DCARD_VIEW_KEYS
    assert v["state"] == "PENDING_IDV" and v["decision"] == "YELLOW", v
    assert v["idvMethods"] == y["idvMethods"], v
    assert v["stepUpExpiresAt"] == y["stepUpExpiresAt"], v
    assert v["deviceInformation"]["name"] == "Jane's phone", v
    r = iss.iss.get(iss.path(f"/cards/{card.id}/digitalCards"))
    assert r.status_code == 200, r.text
    ids = [d["digitalCardId"] for d in r.json()["digitalCards"]]
    assert ids == [g["digitalCardId"], y["digitalCardId"]], ids  # oldest first
    assert [d["digitalCardId"] for d in iss.card(card.id)["digitalCards"]] == ids


# ---------------------------------------------------------------------------
# Digital card operations
# ---------------------------------------------------------------------------


def test_suspend_resume_delete(net_issuer):
    iss = net_issuer
    card = iss.register_card()
    dc = iss.green(card)
    before = iss.last_outbox_id()

    r = iss.dcard_op(dc, "suspend", {"reason": "Lost phone", "reasonCode": "DEVICE_LOST"},
                     headers={"x-correlation-id": "corr-susp-1"})
    assert r.status_code == 200 and set(r.json()) == {"operationId"}, r.text
    op = r.json()["operationId"]
    assert OP_ID.match(op), op
    o = iss.operation(op)
    assert set(o) == OP_VIEW_KEYS, o
    assert o["operation"] == "SUSPEND" and o["status"] == "SUCCESSFUL" and o["requestorType"] == "ISSUER", o
    assert o["reason"] == "Lost phone" and o["reasonCode"] == "DEVICE_LOST", o
    assert o["digitalCardId"] == dc and o["cardId"] == card.id and o["errorCode"] == "", o
    assert ISO_MS.match(o["startTime"]) and ISO_MS.match(o["endTime"]), o
    v = iss.dcard(dc)
    assert v["state"] == "SUSPENDED" and v["suspendedBy"] == ["ISSUER"], v

    # Already suspended by the issuer: success, a new operation, nothing owed.
    last = iss.last_outbox_id()
    op2 = iss.dcard_op_ok(dc, "suspend")
    assert op2 != op and iss.operation(op2)["status"] == "SUCCESSFUL"
    assert iss.outbox(after=last) == []

    op3 = iss.dcard_op_ok(dc, "resume")
    assert iss.operation(op3)["reasonCode"] == "ISSUER_DECISION"  # the default
    assert iss.state(dc) == "ACTIVE"
    op4 = iss.dcard_op_ok(dc, "delete", {"reasonCode": "ACCOUNT_CLOSED"})
    assert iss.state(dc) == "DELETED"
    rows = iss.outbox(after=before, dc=dc)
    assert summaries(rows) == ["ISSUER SUSPEND SUCCESSFUL", "ISSUER RESUME SUCCESSFUL", "ISSUER DELETE SUCCESSFUL",
                               "USER DELETION"], rows
    assert [r["operationId"] for r in rows[:3]] == [op, op3, op4], rows
    assert all(r["source"] == "ISSUER" for r in rows[:3]), rows
    # Nothing moves a deleted card.
    assert_d1_error(iss.dcard_op(dc, "suspend"), 409, "NOT_ALLOWED_IN_STATE")
    assert_d1_error(iss.dcard_op(dc, "resume"), 409, "NOT_ALLOWED_IN_STATE")
    # A delete again: the target state is reached (cards.md §1.4: no-op), a new
    # SUCCESSFUL operation and nothing owed. (network.md's "anything on DELETED
    # is a 409" reads otherwise; the engine table and this agree.)
    last = iss.last_outbox_id()
    op5 = iss.dcard_op_ok(dc, "delete")
    assert op5 != op4 and iss.operation(op5)["status"] == "SUCCESSFUL"
    assert iss.outbox(after=last) == []


def test_refusals_make_no_tsp_call(net_issuer, tsp_accept):
    """409 NOT_ALLOWED_IN_STATE comes before the TSP: with the TSP failing
    every call, a refusal is still a 409, not a 502; nothing changes."""
    iss = net_issuer
    card = iss.register_card()
    pending = iss.yellow(card)["digitalCardId"]
    declined = iss.tokenize(card, "RED", wallet=1)["digitalCardId"]
    deleted = iss.green(card)
    iss.dcard_op_ok(deleted, "delete")
    wallet_held = iss.green(card)
    iss.event(wallet_held, "SUSPEND", "WALLET", "APPLIED")
    snap = net_snapshot(iss.server.db_path)
    iss.set_tsp("fail")
    cases = [(pending, "suspend"), (declined, "suspend"), (declined, "resume"), (declined, "delete"),
             (deleted, "suspend"), (deleted, "resume"), (wallet_held, "resume")]
    for dc, verb in cases:
        assert_d1_error(iss.dcard_op(dc, verb), 409, "NOT_ALLOWED_IN_STATE")
    assert net_snapshot(iss.server.db_path) == snap


@pytest.mark.parametrize("mode,status,code", [("fail", 502, "TSP_FAILED"), ("refuse", 502, "TSP_FAILED"),
                                              ("timeout", 504, "TSP_TIMEOUT")])
def test_tsp_failure_changes_nothing(net_issuer, tsp_accept, mode, status, code):
    iss = net_issuer
    card = iss.register_card()
    dc = iss.green(card)
    v0 = iss.dcard(dc)
    last = iss.last_outbox_id()
    iss.set_tsp(mode, 1)
    assert_d1_error(iss.dcard_op(dc, "suspend"), status, code)
    v1 = iss.dcard(dc)
    assert v1["state"] == "ACTIVE" and v1["sequence"] == v0["sequence"], v1
    assert iss.outbox(after=last) == []
    # The next call is accepted again (count 1).
    iss.dcard_op_ok(dc, "suspend")
    assert iss.state(dc) == "SUSPENDED"


def test_pending_resume_and_delete_through_tsp_failure(net_issuer, tsp_accept):
    iss = net_issuer
    card = iss.register_card()
    a = iss.yellow(card)
    dc = a["digitalCardId"]
    iss.set_tsp("fail", 1)
    assert_d1_error(iss.dcard_op(dc, "resume"), 502, "TSP_FAILED")
    assert iss.state(dc) == "PENDING_IDV"
    assert iss.operation(a["operationId"])["status"] == "PENDING"
    iss.dcard_op_ok(dc, "resume")
    assert iss.state(dc) == "ACTIVE"


def test_operation_idempotency_key(net_issuer):
    iss = net_issuer
    dc = iss.green(iss.register_card())
    h = {"Idempotency-Key": unique("idem")}
    r1 = iss.dcard_op(dc, "suspend", {"reason": "Lost phone"}, headers=h)
    r2 = iss.dcard_op(dc, "suspend", {"reason": "Lost phone"}, headers=h)
    assert r1.status_code == r2.status_code == 200 and r1.json() == r2.json(), (r1.text, r2.text)
    assert_d1_error(iss.dcard_op(dc, "resume", headers=h), 409, "IDEMPOTENCY_KEY_REUSED")
    assert iss.state(dc) == "SUSPENDED"


# ---------------------------------------------------------------------------
# Card operations
# ---------------------------------------------------------------------------


def test_card_suspend_resume_leave_digital_cards(net_issuer):
    iss = net_issuer
    card = iss.register_card()
    dc = iss.green(card)
    before = iss.last_outbox_id()
    r = iss.card_op(card.id, "suspend", {"reason": "Card lost", "reasonCode": "CARD_LOST"})
    assert r.status_code == 200 and OP_ID.match(r.json()["operationId"]), r.text
    o = iss.operation(r.json()["operationId"])
    assert o["operation"] == "SUSPEND" and o["cardId"] == card.id and o["reasonCode"] == "CARD_LOST", o
    assert iss.card(card.id)["state"] == "SUSPENDED"
    assert iss.state(dc) == "ACTIVE"
    assert iss.tokenize(card)["reason"] == "CARD_SUSPENDED"
    r = iss.card_op(card.id, "resume", {"reasonCode": "CARD_FOUND"})
    assert r.status_code == 200, r.text
    assert iss.card(card.id)["state"] == "ACTIVE"
    assert iss.state(dc) == "ACTIVE"
    rows = iss.outbox(after=before, card_id=card.id)
    card_rows = [x for x in rows if x["digitalCardId"] == ""]
    assert summaries(card_rows) == ["ISSUER SUSPEND SUCCESSFUL", "ISSUER RESUME SUCCESSFUL"], rows
    # Already in the target state: success.
    assert iss.card_op(card.id, "resume").status_code == 200


def test_card_delete_cascades(net_issuer):
    iss = net_issuer
    card = iss.register_card()
    active = iss.green(card)
    pending = iss.yellow(card)["digitalCardId"]
    suspended = iss.green(card)
    iss.event(suspended, "SUSPEND", "WALLET", "APPLIED")
    declined = iss.tokenize(card, "RED", wallet=1)["digitalCardId"]
    before = iss.last_outbox_id()
    r = iss.card_op(card.id, "delete", {"reasonCode": "CLOSED_CARD"})
    assert r.status_code == 200, r.text
    o = iss.operation(r.json()["operationId"])
    assert o["operation"] == "DELETE" and o["cardId"] == card.id and o["status"] == "SUCCESSFUL", o
    assert iss.card(card.id)["state"] == "DELETED"
    for dc in (active, pending, suspended):
        assert iss.state(dc) == "DELETED", dc
    assert iss.state(declined) == "DECLINED"
    assert summaries(iss.outbox(after=before, dc=active)) == ["ISSUER DELETE SUCCESSFUL", "USER DELETION"]
    assert summaries(iss.outbox(after=before, dc=pending)) == ["ISSUER DIGITIZE FAILED CANCELED_BY_ISSUER"]
    assert summaries(iss.outbox(after=before, dc=suspended))[0] == "ISSUER DELETE SUCCESSFUL"
    assert iss.outbox(after=before, dc=declined) == []
    # Each digital card got its own operation.
    ops = {x["operationId"] for x in iss.outbox(after=before) if x["digitalCardId"] and x["channel"] == "ISSUER"}
    assert len(ops) == 3, ops
    # A deleted card cannot be suspended or resumed.
    assert_d1_error(iss.card_op(card.id, "suspend"), 409, "NOT_ALLOWED_IN_STATE")


def test_card_delete_partial_tsp_failure_then_retry(net_issuer, tsp_accept):
    iss = net_issuer
    card = iss.register_card()
    dcs = [iss.green(card) for _ in range(3)]
    iss.set_tsp("fail", 1)
    r = iss.card_op(card.id, "delete")
    body = assert_d1_error(r, 502, "TSP_FAILED")
    assert "1" in body["error"], body  # names how many failed
    states = [iss.state(dc) for dc in dcs]
    assert states.count("ACTIVE") == 1 and states.count("DELETED") == 2, states
    r = iss.card_op(card.id, "delete")
    assert r.status_code == 200, r.text
    assert [iss.state(dc) for dc in dcs] == ["DELETED"] * 3
    assert iss.card(card.id)["state"] == "DELETED"


# ---------------------------------------------------------------------------
# Tenancy
# ---------------------------------------------------------------------------


def test_tenancy(net_issuer, net_issuer2):
    iss, other = net_issuer, net_issuer2
    card = iss.register_card()
    a = iss.tokenize(card, "GREEN")
    dc, op = a["digitalCardId"], a["operationId"]
    snap = net_snapshot(iss.server.db_path)
    # Another issuer's path issuerId with my key.
    for path in (f"/cards/{card.id}", f"/digitalCards/{dc}", f"/operations/{op}", f"/cards/{card.id}/digitalCards"):
        assert_d1_error(other.iss.get(iss.path(path)), 404, "NOT_FOUND")
        assert_d1_error(other.iss.get(other.path(path)), 404, "NOT_FOUND")
    for verb in ("suspend", "resume", "delete"):
        assert_d1_error(other.iss.post(other.path(f"/digitalCards/{dc}/operations:{verb}")), 404, "NOT_FOUND")
        assert_d1_error(other.iss.post(other.path(f"/cards/{card.id}/operations:{verb}")), 404, "NOT_FOUND")
        assert_d1_error(other.iss.post(iss.path(f"/digitalCards/{dc}/operations:{verb}")), 404, "NOT_FOUND")
    r = other.iss.post(iss.path("/cards"), json={"cardId": unique("c"), "consumerId": "c", "pan": new_pan(),
                                                 "expiry": "1230"})
    assert_d1_error(r, 404, "NOT_FOUND")
    # The other issuer's tokenization of my card's PAN knows no such card.
    assert other.tokenize(card)["reason"] == "CARD_UNKNOWN"
    assert other.tokenize(card, by_ref=True)["reason"] == "CARD_UNKNOWN"
    after = net_snapshot(iss.server.db_path)
    for t in ("cards", "operations", "issuers", "timers"):
        if t == "operations":
            mine = lambda rows: [x for x in rows if x["issuer_id"] == iss.id]  # noqa: E731
            assert mine(after[t]) == mine(snap[t]), t
        else:
            assert after[t] == snap[t], t
    assert iss.state(dc) == "ACTIVE"


def test_unknown_ids_are_404(net_issuer):
    iss = net_issuer
    for path in ("/cards/nosuchcard", "/digitalCards/dc_nosuch", "/operations/op_nosuch",
                 "/cards/nosuchcard/digitalCards"):
        assert_d1_error(iss.iss.get(iss.path(path)), 404, "NOT_FOUND")
    assert_d1_error(iss.dcard_op("dc_nosuch", "suspend"), 404, "NOT_FOUND")
    assert_d1_error(iss.card_op("nosuchcard", "delete"), 404, "NOT_FOUND")


# ---------------------------------------------------------------------------
# Token API: CARD tokens
# ---------------------------------------------------------------------------


def test_card_tokens_get_list_cancel(net_issuer, net_issuer2, net_member):
    iss = net_issuer
    card = iss.register_card(consumer_id="cons-77")
    a = iss.tokenize(card, "GREEN")
    dc = a["digitalCardId"]
    r = iss.iss.get(f"/tokens/{dc}")
    assert r.status_code == 200, r.text
    tok = r.json()["token"]
    assert tok["id"] == dc, tok
    p = tok["payload"]
    assert p["version"] == "1.0" and p["issuer"] == {"id": iss.id}, p
    assert p["refId"] == iss.dcard(dc)["correlationId"], p
    # "<consumerId or cardId>" (docs/network.md): tokend gives the cardId.
    assert p["from"]["id"] in ("cons-77", card.id), p
    c = p["card"]
    assert c["cardId"] == card.id and c["digitalCardId"] == dc and c["last4"] == card.pan[-4:], c
    assert c["state"] == "ACTIVE" and c["suspendedBy"] == [] and c["walletProviderId"] == "APPLE_PAY", c
    assert tok["payloadSignatures"] == [], tok
    # No empty strings standing for ids (issue 12): a digital card has no token request.
    assert "tokenRequestId" not in tok, tok
    assert card.pan not in r.text

    y = iss.yellow(card)["digitalCardId"]
    # CARD tokens are listed only when asked for: a Token.io client's schema rejects
    # their `card` body (issue 12). Without type=CARD, or with another type, none.
    for params in ({}, {"type": "INVALID"}, {"type": "ACCESS"}, {"type": "TRANSFER"}, {"type": "STANDING_ORDER"}):
        r = iss.iss.get("/tokens", params={"page.limit": "10", **params})
        assert r.status_code == 200 and r.json() == {"tokens": [], "offset": ""}, (params, r.text)
    r = iss.iss.get("/tokens", params={"page.limit": "10", "type": "CARD"})
    assert r.status_code == 200, r.text
    ids = [t["id"] for t in r.json()["tokens"]]
    assert set(ids) == {dc, y}, ids
    r = iss.iss.get("/tokens", params={"page.limit": "1", "type": "CARD"})
    assert r.status_code == 200 and len(r.json()["tokens"]) == 1, r.text
    nxt = r.json().get("offset")
    assert nxt, r.text
    r2 = iss.iss.get("/tokens", params={"page.limit": "1", "page.offset": nxt, "type": "CARD"})
    assert r2.status_code == 200 and len(r2.json()["tokens"]) == 1, r2.text
    assert r2.json()["tokens"][0]["id"] != r.json()["tokens"][0]["id"]

    # Another issuer or a member sees none of them.
    tdlib.assert_tokenio_error(net_issuer2.iss.get(f"/tokens/{dc}"), 404)
    assert net_issuer2.iss.get("/tokens", params={"page.limit": "10", "type": "CARD"}).json().get("tokens", []) == []
    tdlib.assert_tokenio_error(net_member.client("STANDARD").get(f"/tokens/{dc}"), 404)
    tdlib.assert_tokenio_error(net_issuer2.iss.put(f"/tokens/{dc}/cancel"), 404)
    # The network key is not a Token API credential (the contract gives no status for
    # the Token API; D1 says 401 for a wrong role).
    r = iss.net.get(f"/tokens/{dc}")
    assert r.status_code in (401, 403), r.text
    tdlib.assert_tokenio_error(r, r.status_code)

    before = iss.last_outbox_id()
    r = iss.iss.put(f"/tokens/{dc}/cancel")
    assert r.status_code == 200, r.text
    res = r.json()["result"]
    assert res["status"] == "SUCCESS" and res["token"]["payload"]["card"]["state"] == "DELETED", res
    assert iss.state(dc) == "DELETED"
    rows = iss.outbox(after=before, dc=dc)
    assert summaries(rows)[0] == "ISSUER DELETE SUCCESSFUL" and rows[0]["source"] == "ISSUER", rows
    r = iss.iss.put(f"/tokens/{dc}/cancel")
    assert r.status_code == 200 and r.json()["result"]["status"] == "SUCCESS", r.text
    # A pending one: the cancellation of the tokenization.
    before = iss.last_outbox_id()
    assert iss.iss.put(f"/tokens/{y}/cancel").json()["result"]["status"] == "SUCCESS"
    assert summaries(iss.outbox(after=before, dc=y)) == ["ISSUER DIGITIZE FAILED CANCELED_BY_ISSUER"]


def test_card_token_cancel_tsp_failure(net_issuer, tsp_accept):
    iss = net_issuer
    dc = iss.green(iss.register_card())
    iss.set_tsp("fail", 1)
    r = iss.iss.put(f"/tokens/{dc}/cancel")
    assert r.status_code >= 500, r.text
    err = r.json()["error"]
    assert err["errorCode"] and err["message"] and err["tokenTraceId"], r.text
    assert iss.state(dc) == "ACTIVE"
