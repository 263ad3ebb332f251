"""test_network_bad_input.py — bad input on every endpoint of the network
faces (docs/network.md): ids outside their patterns, unknown fields, wrong
types, bad reasons and reason codes, bad JSON, duplicate keys, trailing data,
missing classic headers, and keys of the wrong role. Each gets the face's
exact error shape and status (D1, classic or Token.io), and nothing changes:
the store's network tables are compared before and after."""

import contextlib

import pytest

import tdlib
from conftest import (NetIssuer, assert_classic_error, assert_d1_error, net_snapshot, new_pan, unique)


class World:
    pass


@pytest.fixture(scope="module")
def world(net_tokend):
    """An issuer with a card, a GREEN, a YELLOW and a RED digital card, and an
    operation; a member; all under the default policy (no timer fires)."""
    w = World()
    w.server = net_tokend
    w.iss = NetIssuer(net_tokend)
    w.card = w.iss.register_card()
    w.green = w.iss.green(w.card)
    w.yellow = w.iss.yellow(w.card)["digitalCardId"]
    w.red = w.iss.tokenize(w.card, "RED", wallet=1)["digitalCardId"]
    w.op = w.iss.dcard_op_ok(w.green, "suspend")
    w.iss.dcard_op_ok(w.green, "resume")
    w.member = tdlib.new_member(net_tokend, "Member", levels=("STANDARD",))
    return w


@contextlib.contextmanager
def no_change(w):
    before = net_snapshot(w.server.db_path)
    yield
    after = net_snapshot(w.server.db_path)
    for t in before:
        assert before[t] == after[t], f"table {t} changed"


# Unknown fields must be named in the error (the contract); other refusals
# need only the status and shape.
UNKNOWN_FIELDS = {"color", "cvv", "account", "nickname", "extra", "channel"}


def bad(r, names=None):
    return assert_d1_error(r, 400, "INVALID_ARGUMENT", names if names in UNKNOWN_FIELDS else None)


def raw(client, method, path, data, content_type="application/json", headers=None):
    h = {"Content-Type": content_type}
    h.update(headers or {})
    return client.request(method, path, data=data, headers=h)


BAD_JSON = [
    b"{",
    b'{"a": 1,}',
    b"[]",
    b'"text"',
    b"{} trailing",
    b"{}{}",
    b'{"x": "\xff\xfe"}',
    b"\xef\xbb\xbf{}",  # a BOM is not JSON
]

LONG = "x" * 65
BAD_ISSUERS = ["ISSUER001", "ISSUER00001", "ISS.ER0001"]


# ---------------------------------------------------------------------------
# Issuer API
# ---------------------------------------------------------------------------


def issuer_endpoints(w, issuer=None, card=None, dc=None, op=None):
    """(method, path, json body or None) for every Issuer API endpoint."""
    i = issuer or w.iss.id
    c = card or w.card.id
    d = dc or w.green
    o = op or w.op
    base = f"/banking/v1/issuers/{i}"
    eps = [("GET", f"{base}/cards/{c}", None), ("GET", f"{base}/cards/{c}/digitalCards", None),
           ("GET", f"{base}/digitalCards/{d}", None), ("GET", f"{base}/operations/{o}", None)]
    for verb in ("suspend", "resume", "delete"):
        eps.append(("POST", f"{base}/digitalCards/{d}/operations:{verb}", {}))
        eps.append(("POST", f"{base}/cards/{c}/operations:{verb}", {}))
    return eps


@pytest.mark.parametrize("issuer", BAD_ISSUERS)
def test_issuer_api_bad_issuer_id(world, issuer):
    w = world
    with no_change(w):
        for method, path, body in issuer_endpoints(w, issuer=issuer):
            bad(w.iss.iss.request(method, path, json=body))
        bad(w.iss.iss.post(f"/banking/v1/issuers/{issuer}/cards",
                           json={"cardId": unique("c"), "consumerId": "c", "pan": new_pan(), "expiry": "1230"}))


@pytest.mark.parametrize("card_id", ["c" * 49, "card.1", "card%20one", "caf%C3%A9"])
def test_issuer_api_bad_card_id(world, card_id):
    w = world
    base = f"/banking/v1/issuers/{w.iss.id}"
    with no_change(w):
        bad(w.iss.iss.get(f"{base}/cards/{card_id}"))
        bad(w.iss.iss.get(f"{base}/cards/{card_id}/digitalCards"))
        for verb in ("suspend", "resume", "delete"):
            bad(w.iss.iss.post(f"{base}/cards/{card_id}/operations:{verb}"))


@pytest.mark.parametrize("value", [LONG, "dc.1", "dc%20x", "d%C3%A9"])
def test_issuer_api_bad_dcard_and_operation_ids(world, value):
    w = world
    base = f"/banking/v1/issuers/{w.iss.id}"
    with no_change(w):
        bad(w.iss.iss.get(f"{base}/digitalCards/{value}"))
        bad(w.iss.iss.get(f"{base}/operations/{value}"))
        for verb in ("suspend", "resume", "delete"):
            bad(w.iss.iss.post(f"{base}/digitalCards/{value}/operations:{verb}"))


def register_body(**over):
    b = {"cardId": unique("card"), "consumerId": "cons-1", "pan": new_pan(), "expiry": "1230",
         "phone": "+33612345678", "email": "a@example.com"}
    b.update(over)
    return {k: v for k, v in b.items() if v is not None}


@pytest.mark.parametrize("body,names", [
    (register_body(color="red"), "color"),
    (register_body(cardId=5), "cardId"),
    (register_body(cardId="bad id"), "cardId"),
    (register_body(cardId="c" * 49), "cardId"),
    (register_body(consumerId="c" * 65), "consumerId"),
    (register_body(consumerId=None), "consumerId"),
    (register_body(pan=None), "pan"),
    (register_body(pan=4111111111111111), "pan"),
    (register_body(expiry=1230), "expiry"),
    (register_body(expiry=None), "expiry"),
    (register_body(phone=33612345678), "phone"),
    (register_body(email=["a@example.com"]), "email"),
    (register_body(state="DELETED"), "state"),
    (register_body(state="PENDING_IDV"), "state"),
    (register_body(cardId=None), "cardId"),
])
def test_register_bad_bodies(world, body, names):
    w = world
    with no_change(w):
        bad(w.iss.iss.post(w.iss.path("/cards"), json=body), names)


@pytest.mark.parametrize("data", BAD_JSON + [b'{"cardId": "a", "cardId": "b", "consumerId": "c", "pan": "x"}', b""])
def test_register_bad_json(world, data):
    w = world
    with no_change(w):
        bad(raw(w.iss.iss, "POST", w.iss.path("/cards"), data))


OP_BAD_BODIES = [
    ({"reason": "Lost phone!"}, "reason"),
    ({"reason": "x" * 65}, "reason"),
    ({"reason": ""}, "reason"),
    ({"reason": 5}, "reason"),
    ({"reason": "Perdu téléphone"}, "reason"),
    ({"reasonCode": "FOO"}, "reasonCode"),
    ({"reasonCode": "device_lost"}, "reasonCode"),
    ({"reasonCode": 1}, "reasonCode"),
    ({"reason": "ok", "extra": 1}, "extra"),
]


@pytest.mark.parametrize("verb", ["suspend", "resume", "delete"])
def test_dcard_operation_bad_bodies(world, verb):
    w = world
    with no_change(w):
        for body, names in OP_BAD_BODIES + [({"reasonCode": "CARD_LOST"}, "reasonCode")]:
            bad(w.iss.dcard_op(w.green, verb, body), names)
        for data in BAD_JSON + [b'{"reason": "a", "reason": "b"}']:
            bad(raw(w.iss.iss, "POST", w.iss.path(f"/digitalCards/{w.green}/operations:{verb}"), data))
    assert w.iss.state(w.green) == "ACTIVE"


@pytest.mark.parametrize("verb", ["suspend", "resume", "delete"])
def test_card_operation_bad_bodies(world, verb):
    w = world
    with no_change(w):
        for body, names in OP_BAD_BODIES + [({"reasonCode": "DEVICE_LOST"}, "reasonCode")]:
            bad(w.iss.card_op(w.card.id, verb, body), names)
        for data in BAD_JSON + [b'{"reasonCode": "FRAUD", "reasonCode": "FRAUD"}']:
            bad(raw(w.iss.iss, "POST", w.iss.path(f"/cards/{w.card.id}/operations:{verb}"), data))
    assert w.iss.card(w.card.id)["state"] == "ACTIVE"


def test_operation_bad_correlation_header(world):
    """x-correlation-id is 1-64 characters."""
    w = world
    dc = w.iss.green(w.card)
    try:
        with no_change(w):
            bad(w.iss.dcard_op(dc, "suspend", headers={"x-correlation-id": "c" * 65}))
    finally:
        w.iss.dcard_op_ok(dc, "delete")


# ---------------------------------------------------------------------------
# Network API
# ---------------------------------------------------------------------------


def tok_body(w, **over):
    b = w.iss.tokenize_body(w.card, correlation_id=unique("corr"))
    for k, v in over.items():
        if v is None:
            b.pop(k, None)
        else:
            b[k] = v
    return b


def tokenization_cases(w):
    pan = w.card.pan
    return [
        (tok_body(w, color="red"), "color"),
        (tok_body(w, correlationId=None), "correlationId"),
        (tok_body(w, correlationId="bad id"), "correlationId"),
        (tok_body(w, correlationId=LONG), "correlationId"),
        (tok_body(w, correlationId=7), "correlationId"),
        (tok_body(w, card=None), "card"),
        (tok_body(w, card={}), "card"),
        (tok_body(w, card={"pan": pan, "expiry": w.card.expiry, "cvv": "123"}), "cvv"),
        (tok_body(w, card={"pan": pan, "expiry": w.card.expiry, "cardId": w.card.id}), "card"),
        (tok_body(w, card={"pan": pan}), "expiry"),
        (tok_body(w, card={"pan": "4111-1111-1111-1111", "expiry": "1230"}), "pan"),
        (tok_body(w, card={"pan": pan, "expiry": "13/30"}), "expiry"),
        (tok_body(w, card={"cardId": "bad id"}), "cardId"),
        (tok_body(w, card="4111111111111111"), "card"),
        (tok_body(w, walletProviderId=""), "walletProviderId"),
        (tok_body(w, walletProviderId="w" * 129), "walletProviderId"),
        (tok_body(w, walletProviderId=5), "walletProviderId"),
        (tok_body(w, isPrimary="yes"), "isPrimary"),
        (tok_body(w, device=["PHONE"]), "device"),
        (tok_body(w, device={"blob": "x" * 2100}), "device"),
        (tok_body(w, scores={"wallet": 6}), "wallet"),
        (tok_body(w, scores={"wallet": "5"}), "wallet"),
        (tok_body(w, scores={"device": 1.5}), "device"),
        (tok_body(w, scores={"account": 3}), "account"),
        (tok_body(w, endUser={"phone": "+33612345678", "nickname": "J"}), "nickname"),
        (tok_body(w, endUser={"email": 5}), "email"),
        (tok_body(w, tokenRequestorId=40010030273), "tokenRequestorId"),
    ]


def test_tokenization_bad_bodies(world):
    w = world
    with no_change(w):
        for body, names in tokenization_cases(w):
            r = w.iss.net.post("/network/v1/tokenizations", json=body)
            bad(r, names)
            assert w.card.pan not in r.text
        for data in BAD_JSON + [b'{"correlationId": "a", "correlationId": "b"}', b""]:
            bad(raw(w.iss.net, "POST", "/network/v1/tokenizations", data))
    # Bad requests are not attempts: the card still gets GREEN (limit 10 an hour).
    assert w.iss.tokenize(w.card)["decision"] == "GREEN"


def test_tokenization_free_device_object(world):
    """device is free: unknown fields inside it are kept, not refused."""
    w = world
    body = tok_body(w, device={"id": "d", "anything": {"nested": [1, 2]}, "x-vendor": True})
    r = w.iss.net.post("/network/v1/tokenizations", json=body)
    assert r.status_code == 200, r.text
    assert w.iss.dcard(r.json()["digitalCardId"])["deviceInformation"]["anything"] == {"nested": [1, 2]}
    w.iss.dcard_op_ok(r.json()["digitalCardId"], "delete")


@pytest.mark.parametrize("body,names", [
    ({"methodId": "otp-sms", "otp": "123"}, "otp"),
    ({"methodId": "otp-sms", "otp": "1234567890123"}, "otp"),
    ({"methodId": "otp-sms", "otp": "12 345"}, "otp"),
    ({"methodId": "otp-sms", "otp": "12345!"}, "otp"),
    ({"methodId": "otp-sms", "otp": 123456}, "otp"),
    ({"methodId": "otp-sms"}, "otp"),
    ({"otp": "123456"}, "methodId"),
    ({"methodId": "otp-fax", "otp": "123456"}, "methodId"),
    ({"methodId": "customer-service", "otp": "123456"}, "methodId"),
    ({"methodId": "issuer-app", "otp": "123456"}, "methodId"),
    ({"methodId": "otp-sms", "otp": "123456", "channel": "sms"}, "channel"),
])
def test_otp_bad_bodies(world, body, names):
    w = world
    with no_change(w):
        r = w.iss.net.post(f"/network/v1/digitalCards/{w.yellow}/otp", json=body)
        bad(r, names)
        if isinstance(body.get("otp"), str) and len(body["otp"]) >= 4:
            assert body["otp"] not in r.text


def test_otp_bad_json_and_ids(world):
    w = world
    with no_change(w):
        for data in BAD_JSON + [b'{"methodId": "otp-sms", "methodId": "otp-email", "otp": "123456"}']:
            bad(raw(w.iss.net, "POST", f"/network/v1/digitalCards/{w.yellow}/otp", data))
        for dc in (LONG, "dc.1", "dc%20x"):
            bad(w.iss.net.post(f"/network/v1/digitalCards/{dc}/otp", json={"methodId": "otp-sms", "otp": "123456"}))


def ev(w, **over):
    b = {"eventId": unique("ev"), "digitalCardId": w.green, "type": "SUSPEND", "source": "WALLET"}
    for k, v in over.items():
        if v is None:
            b.pop(k, None)
        else:
            b[k] = v
    return b


def event_cases(w):
    return [
        (ev(w, eventId=None), "eventId"),
        (ev(w, eventId="bad id"), "eventId"),
        (ev(w, eventId=LONG), "eventId"),
        (ev(w, eventId=12), "eventId"),
        (ev(w, digitalCardId=None), "digitalCardId"),
        (ev(w, digitalCardId="dc.1"), "digitalCardId"),
        (ev(w, digitalCardId=LONG), "digitalCardId"),
        (ev(w, type=None), "type"),
        (ev(w, type=5), "type"),
        (ev(w, source=None), "source"),
        (ev(w, source="BANK"), "source"),
        (ev(w, source=1), "source"),
        (ev(w, eventTime="yesterday"), "eventTime"),
        (ev(w, eventTime="2026-13-01T00:00:00Z"), "eventTime"),
        (ev(w, eventTime="2026-11-22T07:42:27"), "eventTime"),
        (ev(w, eventTime=1763797347000), "eventTime"),
        (ev(w, reasonCode="r" * 41), "reasonCode"),
        (ev(w, reasonCode=3), "reasonCode"),
        (ev(w, suspendedBy=3), "suspendedBy"),
        (ev(w, details="text"), "details"),
        (ev(w, color="red"), "color"),
    ]


def test_event_bad_bodies(world):
    w = world
    with no_change(w):
        for body, names in event_cases(w):
            bad(w.iss.net.post("/network/v1/events", json=body), names)
        for data in BAD_JSON + [b'{"eventId": "e1", "eventId": "e2", "digitalCardId": "dc_x", "type": "SUSPEND", '
                                b'"source": "WALLET"}']:
            bad(raw(w.iss.net, "POST", "/network/v1/events", data))
    assert w.iss.state(w.green) == "ACTIVE"


def test_event_free_details_and_open_values(world):
    """details is free; reasonCode and suspendedBy are open values."""
    w = world
    body = ev(w, type="SOMETHING_NEW", reasonCode="r" * 40, suspendedBy="SOMEONE_ELSE",
              details={"any": {"thing": [1]}}, eventTime="2026-11-22T07:42:27.5+01:00")
    r = w.iss.net.post("/network/v1/events", json=body)
    assert r.status_code == 200 and r.json()["result"] == "STORED", r.text


# ---------------------------------------------------------------------------
# Classic RPC
# ---------------------------------------------------------------------------

CLASSIC_OPS = ["updateCardState", "getCardInfo", "getTokenInfo"]


def classic_body(w, op):
    return {"updateCardState": {"issuerCardRefId": w.card.id, "virtualCardId": w.green, "action": "SUSPEND"},
            "getCardInfo": {"issuerCardRefId": w.card.id},
            "getTokenInfo": {"issuerCardRefId": w.card.id, "virtualCardId": w.green}}[op]


@pytest.mark.parametrize("op", CLASSIC_OPS)
def test_classic_bad_input(world, op):
    w = world
    good_h = {"x-correlation-id": "corr-1", "x-issuer-id": w.iss.id}
    url = "/igwapi/v2.0/" + op
    with no_change(w):
        for h in ({"x-issuer-id": w.iss.id}, {"x-correlation-id": "corr-1"}, {}):
            assert_classic_error(w.iss.iss.post(url, json=classic_body(w, op), headers=h), 111)
        for h in ({"x-correlation-id": "c" * 65, "x-issuer-id": w.iss.id},
                  {"x-correlation-id": "corr-1", "x-issuer-id": w.iss.id[:9]},
                  {"x-correlation-id": "corr-1", "x-issuer-id": w.iss.id + "0"}):
            assert_classic_error(w.iss.iss.post(url, json=classic_body(w, op), headers=h), 112)
        assert_classic_error(w.iss.iss.post(url, json=dict(classic_body(w, op), extra=1), headers=good_h), 112)
        assert_classic_error(w.iss.iss.post(url, json=dict(classic_body(w, op), issuerCardRefId="bad id"),
                                            headers=good_h), 112)
        assert_classic_error(w.iss.iss.post(url, json=dict(classic_body(w, op), issuerCardRefId=7), headers=good_h),
                             112)
        for data in BAD_JSON + [b'{"issuerCardRefId": "a", "issuerCardRefId": "b"}']:
            assert_classic_error(raw(w.iss.iss, "POST", url, data, headers=good_h), 112)
        for key in (w.iss.network_key, w.member.keys["STANDARD"]):
            r = w.iss.iss.post(url, json=classic_body(w, op), headers=dict(good_h, Authorization="Bearer " + key))
            assert r.status_code == 401, r.text
    assert w.iss.state(w.green) == "ACTIVE"


# ---------------------------------------------------------------------------
# Wrong keys
# ---------------------------------------------------------------------------


def test_issuer_api_wrong_keys(world):
    w = world
    keys = {"network": w.iss.network_key, "member": w.member.keys["STANDARD"], "admin": w.server.admin_key,
            "garbage": "tk_garbage", "none": None}
    eps = issuer_endpoints(w) + [("POST", w.iss.path("/cards"), register_body())]
    with no_change(w):
        for name, key in keys.items():
            h = {"Authorization": "Bearer " + key} if key else {"Authorization": ""}
            for method, path, body in eps:
                r = w.iss.iss.request(method, path, json=body, headers=h)
                assert_d1_error(r, 401, "UNAUTHENTICATED")
                assert (key or "tk_") not in r.text or name == "none"


def test_network_api_wrong_keys(world):
    w = world
    keys = {"issuer": w.iss.issuer_key, "member": w.member.keys["STANDARD"], "admin": w.server.admin_key,
            "garbage": "tk_garbage", "none": None}
    eps = [("/network/v1/tokenizations", tok_body(w)),
           (f"/network/v1/digitalCards/{w.yellow}/otp", {"methodId": "otp-sms", "otp": "123456"}),
           ("/network/v1/events", ev(w))]
    with no_change(w):
        for name, key in keys.items():
            h = {"Authorization": "Bearer " + key} if key else {"Authorization": ""}
            for path, body in eps:
                assert_d1_error(w.iss.net.post(path, json=body, headers=h), 401, "UNAUTHENTICATED")


def test_admin_additions_wrong_keys(world):
    w = world
    for key in (w.iss.issuer_key, w.iss.network_key, w.member.keys["STANDARD"]):
        c = tdlib.Client(w.server, headers={"Authorization": "Bearer " + key}, capture=False)
        tdlib.assert_tokenio_error(c.get(f"/admin/v1/issuers/{w.iss.id}/card-policy"), 401)
        tdlib.assert_tokenio_error(c.put(f"/admin/v1/issuers/{w.iss.id}/card-policy", json={}), 401)
        tdlib.assert_tokenio_error(c.get(f"/admin/v1/issuers/{w.iss.id}/outbox"), 401)
        tdlib.assert_tokenio_error(c.post("/admin/v1/tsp", json={"mode": "fail", "count": 0}), 401)
    # The TSP was not told to fail.
    w.iss.dcard_op_ok(w.green, "resume")


# ---------------------------------------------------------------------------
# Admin additions
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("policy", [
    {"color": "red"},
    {"decision": {"maxActiveTokens": 0}},
    {"decision": {"maxActiveTokens": "10"}},
    {"decision": {"maxAttemptsPerHour": 0}},
    {"decision": {"redBelow": 5, "yellowBelow": 4}},
    {"decision": {"yellowBelow": 7}},
    {"decision": {"redBelow": -1}},
    {"decision": {"phoneMismatch": "ORANGE"}},
    {"decision": {"unknown": 1}},
    {"idv": {"methods": ["OTP_FAX"]}},
    {"idv": {"methods": ["OTP_SMS", "OTP_SMS"]}},
    {"idv": {"methods": "OTP_SMS"}},
    {"stepUp": {"sessionSeconds": -1}},
    {"stepUp": {"maxReminders": -1}},
    {"stepUp": {"sessionSeconds": "60"}},
    {"otp": {"max": -1}},
    {"otp": {"windowSeconds": 0, "extra": 1}},
    {"notifyCancellation": "yes"},
    {"decision": []},
])
def test_card_policy_bad(world, policy):
    w = world
    before = w.iss.policy()
    with no_change(w):
        r = w.iss.adm.put(f"/admin/v1/issuers/{w.iss.id}/card-policy", json=policy)
        tdlib.assert_tokenio_error(r, 400)
    assert w.iss.policy() == before


def test_card_policy_bad_json_and_ids(world):
    w = world
    with no_change(w):
        for data in BAD_JSON + [b'{"notifyCancellation": true, "notifyCancellation": false}']:
            tdlib.assert_tokenio_error(raw(w.iss.adm, "PUT", f"/admin/v1/issuers/{w.iss.id}/card-policy", data), 400)
        for issuer in BAD_ISSUERS:
            tdlib.assert_tokenio_error(w.iss.adm.get(f"/admin/v1/issuers/{issuer}/card-policy"), 400)
            tdlib.assert_tokenio_error(w.iss.adm.put(f"/admin/v1/issuers/{issuer}/card-policy", json={}), 400)
            tdlib.assert_tokenio_error(w.iss.adm.get(f"/admin/v1/issuers/{issuer}/outbox"), 400)
        tdlib.assert_tokenio_error(w.iss.adm.get("/admin/v1/issuers/NOSUCHISS0/card-policy"), 404)
        tdlib.assert_tokenio_error(w.iss.adm.put("/admin/v1/issuers/NOSUCHISS0/card-policy", json={}), 404)
        tdlib.assert_tokenio_error(w.iss.adm.get("/admin/v1/issuers/NOSUCHISS0/outbox"), 404)


def test_outbox_bad_params(world):
    w = world
    for params in ({"after": "-1"}, {"after": "abc"}, {"limit": "x"}):
        tdlib.assert_tokenio_error(w.iss.adm.get(f"/admin/v1/issuers/{w.iss.id}/outbox", params=params), 400)


@pytest.mark.parametrize("body", [
    {"mode": "explode", "count": 0},
    {"mode": "fail", "count": -1},
    {"mode": "fail", "count": "1"},
    {"mode": 1},
    {"count": 1},
    {"mode": "fail", "count": 0, "delay": 5},
])
def test_tsp_admin_bad(world, body):
    w = world
    tdlib.assert_tokenio_error(w.iss.adm.post("/admin/v1/tsp", json=body), 400)
    # Still accepting.
    w.iss.dcard_op_ok(w.green, "resume")
