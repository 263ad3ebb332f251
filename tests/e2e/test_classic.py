"""test_classic.py — the classic RPC face (Thales IGW-compatible,
docs/network.md §Classic RPC): updateCardState, getCardInfo and getTokenInfo
on the same engine as the Issuer API, and every error code it answers in
400 {"responseCode", "errorMessage"}: 111, 112, 113, 116, 119, 160, 432, 911."""

import pytest

from conftest import assert_classic_error, net_snapshot, new_issuer_id, summaries, unique

BASE = "/igwapi/v2.0/"


def call(iss, op, body=None, headers=None, raw=None, key=None):
    h = {"x-correlation-id": unique("corr"), "x-issuer-id": iss.id}
    if headers is not None:
        h.update(headers)
        h = {k: v for k, v in h.items() if v is not None}
    if key is not None:
        h["Authorization"] = "Bearer " + key
    if raw is not None:
        h["Content-Type"] = "application/json"
        return iss.iss.post(BASE + op, data=raw, headers=h)
    return iss.iss.post(BASE + op, json=body if body is not None else {}, headers=h)


@pytest.fixture
def tsp_accept(net_tokend):
    yield
    r = net_tokend.admin().post("/admin/v1/tsp", json={"mode": "accept", "count": 0})
    assert r.status_code == 200, r.text


@pytest.fixture
def world(net_issuer):
    """A card with an ACTIVE, an INACTIVE (pending) and a DECLINED token."""
    iss = net_issuer
    card = iss.register_card()
    active = iss.green(card)
    pending = iss.yellow(card)["digitalCardId"]
    declined = iss.tokenize(card, "RED", wallet=1)["digitalCardId"]
    return iss, card, active, pending, declined


def test_get_card_info(world):
    iss, card, active, pending, declined = world
    r = call(iss, "getCardInfo", {"issuerCardRefId": card.id})
    assert r.status_code == 200, r.text
    lst = r.json()["virtualCardList"]
    by_id = {v["virtualCardId"]: v for v in lst}
    assert set(by_id) == {active, pending}, lst  # declined records are not listed
    assert by_id[active]["status"] == "RESUMED" and by_id[pending]["status"] == "INACTIVE", lst
    v = by_id[active]
    assert set(v) == {"virtualCardId", "issuerCardRefId", "walletProviderId", "deviceInformation", "status",
                      "isPrimary", "tokenStorageId"}, v
    assert v["issuerCardRefId"] == card.id and v["walletProviderId"] == "APPLE_PAY", v
    assert v["isPrimary"] is True and v["tokenStorageId"] == "SE-01", v
    assert card.pan not in r.text


def test_get_token_info(world):
    iss, card, active, pending, declined = world
    r = call(iss, "getTokenInfo", {"issuerCardRefId": card.id, "virtualCardId": active})
    assert r.status_code == 200, r.text
    v = r.json()
    assert set(v) == {"virtualCardId", "issuerCardRefId", "walletProviderId", "tokenRequestorId",
                      "deviceInformation", "status", "isPrimary", "tokenStorageId", "last4", "suspendedBy"}, v
    assert v["virtualCardId"] == active and v["status"] == "RESUMED" and v["last4"] == card.pan[-4:], v
    assert v["tokenRequestorId"] == "40010030273", v
    assert card.pan not in r.text
    r = call(iss, "getTokenInfo", {"issuerCardRefId": card.id, "virtualCardId": pending})
    assert r.status_code == 200 and r.json()["status"] == "INACTIVE", r.text


def test_update_card_state_one_token(world):
    iss, card, active, pending, declined = world
    before = iss.last_outbox_id()
    r = call(iss, "updateCardState", {"issuerCardRefId": card.id, "virtualCardId": active, "action": "SUSPEND",
                                      "reason": "Lost phone"})
    assert r.status_code == 200, r.text
    lst = r.json()["virtualCardList"]
    assert len(lst) == 1 and lst[0]["virtualCardId"] == active and lst[0]["status"] == "SUSPENDED", lst
    assert set(lst[0]) == {"virtualCardId", "status", "operationId"}, lst
    o = iss.operation(lst[0]["operationId"])
    assert o["operation"] == "SUSPEND" and o["requestorType"] == "ISSUER", o
    assert iss.dcard(active)["suspendedBy"] == ["ISSUER"]
    r = call(iss, "updateCardState", {"issuerCardRefId": card.id, "virtualCardId": active, "action": "RESUME"})
    assert r.status_code == 200 and r.json()["virtualCardList"][0]["status"] == "RESUMED", r.text
    assert summaries(iss.outbox(after=before, dc=active)) == ["ISSUER SUSPEND SUCCESSFUL",
                                                              "ISSUER RESUME SUCCESSFUL"]


def test_resume_inactive_token_activates_it(world):
    iss, card, active, pending, declined = world
    r = call(iss, "updateCardState", {"issuerCardRefId": card.id, "virtualCardId": pending, "action": "RESUME"})
    assert r.status_code == 200, r.text
    assert r.json()["virtualCardList"][0]["status"] == "RESUMED", r.text
    assert iss.state(pending) == "ACTIVE"


def test_update_card_state_whole_card(world):
    iss, card, active, pending, declined = world
    r = call(iss, "updateCardState", {"issuerCardRefId": card.id, "action": "DELETE"})
    assert r.status_code == 200, r.text
    lst = r.json()["virtualCardList"]
    assert {v["virtualCardId"] for v in lst} == {active, pending}, lst
    assert {v["status"] for v in lst} == {"DELETED"}, lst
    # The card's tokens, not the card.
    assert iss.card(card.id)["state"] == "ACTIVE"
    assert iss.state(declined) == "DECLINED"
    r = call(iss, "getCardInfo", {"issuerCardRefId": card.id})
    assert r.status_code == 200, r.text
    assert {v["status"] for v in r.json()["virtualCardList"]} <= {"DELETED"}, r.text


def test_whole_card_suspend_and_resume(net_issuer):
    iss = net_issuer
    card = iss.register_card()
    dcs = [iss.green(card), iss.green(card)]
    r = call(iss, "updateCardState", {"issuerCardRefId": card.id, "action": "SUSPEND"})
    assert r.status_code == 200, r.text
    lst = r.json()["virtualCardList"]
    assert sorted(v["virtualCardId"] for v in lst) == sorted(dcs), lst
    assert {v["status"] for v in lst} == {"SUSPENDED"}, lst
    assert len({v["operationId"] for v in lst}) == 2, lst
    assert [iss.state(dc) for dc in dcs] == ["SUSPENDED"] * 2
    r = call(iss, "updateCardState", {"issuerCardRefId": card.id, "action": "RESUME"})
    assert r.status_code == 200, r.text
    assert {v["status"] for v in r.json()["virtualCardList"]} == {"RESUMED"}, r.text
    assert iss.card(card.id)["state"] == "ACTIVE"


# ---------------------------------------------------------------------------
# Error codes
# ---------------------------------------------------------------------------


def test_111_missing_mandatory(world):
    iss, card, active, pending, declined = world
    snap = net_snapshot(iss.server.db_path)
    assert_classic_error(call(iss, "getCardInfo", {"issuerCardRefId": card.id}, headers={"x-correlation-id": None}),
                         111)
    assert_classic_error(call(iss, "getCardInfo", {"issuerCardRefId": card.id}, headers={"x-issuer-id": None}), 111)
    assert_classic_error(call(iss, "getCardInfo", {}), 111)
    assert_classic_error(call(iss, "getTokenInfo", {"issuerCardRefId": card.id}), 111)
    assert_classic_error(call(iss, "updateCardState", {"issuerCardRefId": card.id, "virtualCardId": active}), 111)
    assert_classic_error(call(iss, "updateCardState", {"virtualCardId": active, "action": "SUSPEND"}), 111)
    assert net_snapshot(iss.server.db_path) == snap
    assert iss.state(active) == "ACTIVE"


def test_112_bad_format(world):
    iss, card, active, pending, declined = world
    snap = net_snapshot(iss.server.db_path)
    cases = [
        ({"issuerCardRefId": "bad*id"}, None),
        ({"issuerCardRefId": "x" * 49}, None),
        ({"issuerCardRefId": card.id, "unknownField": 1}, None),
        ({"issuerCardRefId": 42}, None),
        (None, "{not json"),
        (None, '{"issuerCardRefId": "a", "issuerCardRefId": "b"}'),
        (None, '{"issuerCardRefId": "%s"} trailing' % card.id),
    ]
    for body, raw in cases:
        assert_classic_error(call(iss, "getCardInfo", body, raw=raw), 112)
    assert_classic_error(call(iss, "updateCardState", {"issuerCardRefId": card.id, "virtualCardId": active,
                                                       "action": "FREEZE"}), 112)
    assert_classic_error(call(iss, "getTokenInfo", {"issuerCardRefId": card.id, "virtualCardId": "v" * 65}), 112)
    assert_classic_error(call(iss, "getCardInfo", {"issuerCardRefId": card.id},
                              headers={"x-correlation-id": "c" * 65}), 112)
    assert_classic_error(call(iss, "getCardInfo", {"issuerCardRefId": card.id}, headers={"x-issuer-id": iss.id[:9]}),
                         112)
    assert_classic_error(call(iss, "getCardInfo", {"issuerCardRefId": card.id},
                              headers={"x-issuer-id": iss.id + "X"}), 112)
    assert net_snapshot(iss.server.db_path) == snap


def test_113_unknown_issuer(world, net_issuer2):
    iss, card, active, pending, declined = world
    for other in (net_issuer2.id, new_issuer_id("ZZ")):
        assert_classic_error(call(iss, "getCardInfo", {"issuerCardRefId": card.id}, headers={"x-issuer-id": other}),
                             113)
    r = call(iss, "updateCardState", {"issuerCardRefId": card.id, "virtualCardId": active, "action": "SUSPEND"},
             headers={"x-issuer-id": net_issuer2.id})
    assert_classic_error(r, 113)
    assert iss.state(active) == "ACTIVE"


def test_116_unknown_card(world, net_issuer2):
    iss, card, active, pending, declined = world
    assert_classic_error(call(iss, "getCardInfo", {"issuerCardRefId": "nosuchcard"}), 116)
    assert_classic_error(call(iss, "updateCardState", {"issuerCardRefId": "nosuchcard", "action": "DELETE"}), 116)
    # Another issuer's card is unknown too.
    assert_classic_error(call(net_issuer2, "getCardInfo", {"issuerCardRefId": card.id}), 116)


def test_119_unknown_virtual_card(world, net_issuer2):
    iss, card, active, pending, declined = world
    assert_classic_error(call(iss, "getTokenInfo", {"issuerCardRefId": card.id, "virtualCardId": "dc_nosuch"}), 119)
    r = call(iss, "updateCardState", {"issuerCardRefId": card.id, "virtualCardId": "dc_nosuch", "action": "SUSPEND"})
    assert_classic_error(r, 119)
    # A token of another card of mine, or a declined record, is not this card's token.
    other_card = iss.register_card()
    other_dc = iss.green(other_card)
    assert_classic_error(call(iss, "getTokenInfo", {"issuerCardRefId": card.id, "virtualCardId": other_dc}), 119)
    assert iss.state(other_dc) == "ACTIVE"


def test_160_card_deleted(world):
    iss, card, active, pending, declined = world
    iss.dcard_op_ok(active, "delete")
    for action in ("SUSPEND", "RESUME"):
        r = call(iss, "updateCardState", {"issuerCardRefId": card.id, "virtualCardId": active, "action": action})
        assert_classic_error(r, 160)
    assert iss.state(active) == "DELETED"


def test_432_not_allowed_in_state(world):
    iss, card, active, pending, declined = world
    r = call(iss, "updateCardState", {"issuerCardRefId": card.id, "virtualCardId": pending, "action": "SUSPEND"})
    assert_classic_error(r, 432)
    iss.event(active, "SUSPEND", "WALLET", "APPLIED")
    r = call(iss, "updateCardState", {"issuerCardRefId": card.id, "virtualCardId": active, "action": "RESUME"})
    assert_classic_error(r, 432)
    assert iss.state(pending) == "PENDING_IDV"
    assert iss.dcard(active)["suspendedBy"] == ["WALLET"]


def test_911_tsp_failed(world, tsp_accept):
    iss, card, active, pending, declined = world
    last = iss.last_outbox_id()
    for mode in ("fail", "refuse", "timeout"):
        iss.set_tsp(mode, 1)
        r = call(iss, "updateCardState", {"issuerCardRefId": card.id, "virtualCardId": active, "action": "SUSPEND"})
        assert_classic_error(r, 911)
        assert iss.state(active) == "ACTIVE"
    assert iss.outbox(after=last) == []


def test_wrong_keys(world, net_member):
    iss, card, active, pending, declined = world
    for key in (iss.network_key, net_member.keys["STANDARD"], "tk_not_a_key"):
        r = call(iss, "getCardInfo", {"issuerCardRefId": card.id}, key=key)
        assert r.status_code == 401, r.text
        if r.content:
            body = r.json()
            assert set(body) == {"responseCode", "errorMessage"}, body
    r = iss.iss.post(BASE + "getCardInfo", json={"issuerCardRefId": card.id},
                     headers={"Authorization": "", "x-correlation-id": "c1", "x-issuer-id": iss.id})
    assert r.status_code == 401, r.text
