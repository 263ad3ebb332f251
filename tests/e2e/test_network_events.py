"""test_network_events.py — lifecycle events from the TSP and the wallet
(POST /network/v1/events, docs/network.md): exactly once per (source,
eventId) with the first answer byte for byte, never backwards (late and
stale events are recorded and IGNORED), suspension precedence between
parties, unknown types STORED, and tenancy."""

import pytest

import tdlib
from conftest import OP_ID, assert_d1_error, iso_now, summaries, unique

ANSWER_KEYS = {"eventId", "digitalCardId", "result", "state", "sequence"}


def post_event(iss, body):
    return iss.net.post("/network/v1/events", json=body)


def ev_body(dc, type_, source="WALLET", **kw):
    b = {"eventId": unique("ev"), "digitalCardId": dc, "type": type_, "source": source}
    b.update(kw)
    return b


def test_answer_shape(net_issuer):
    iss = net_issuer
    dc = iss.green(iss.register_card())
    body = ev_body(dc, "SUSPEND", "WALLET", eventTime="2026-11-22T07:42:27Z", reasonCode="DEVICE_LOST",
                   suspendedBy="TOKEN_REQUESTOR", details={"anything": [1, 2, {"x": None}]})
    r = post_event(iss, body)
    assert r.status_code == 200, r.text
    a = r.json()
    assert ANSWER_KEYS <= set(a) <= ANSWER_KEYS | {"operationId", "reason"}, a
    assert a["eventId"] == body["eventId"] and a["digitalCardId"] == dc, a
    assert a["result"] == "APPLIED" and a["state"] == "SUSPENDED", a
    assert OP_ID.match(a["operationId"]), a
    v = iss.dcard(dc)
    assert v["suspendedBy"] == ["WALLET"] and v["sequence"] == a["sequence"], v
    o = iss.operation(a["operationId"])
    assert o["operation"] == "SUSPEND" and o["requestorType"] == "USER" and o["status"] == "SUCCESSFUL", o


def test_duplicate_gets_first_answer_byte_for_byte(net_issuer):
    iss = net_issuer
    dc = iss.green(iss.register_card())
    body = ev_body(dc, "SUSPEND", "WALLET", eventTime=iso_now())
    first = post_event(iss, body)
    assert first.status_code == 200 and first.json()["result"] == "APPLIED", first.text
    seq = iss.dcard(dc)["sequence"]
    last = iss.last_outbox_id()

    again = post_event(iss, body)
    assert again.status_code == 200
    assert again.content == first.content
    # Same (source, eventId) with another body: still the first answer, nothing moves.
    other = dict(body, type="DELETE")
    third = post_event(iss, other)
    assert third.status_code == 200 and third.content == first.content, third.text
    assert iss.outbox(after=last) == []
    v = iss.dcard(dc)
    assert v["state"] == "SUSPENDED" and v["sequence"] == seq, v

    # The same eventId from another source is another event.
    fourth = post_event(iss, dict(body, source="TSP"))
    assert fourth.status_code == 200 and fourth.content != first.content, fourth.text
    assert fourth.json()["result"] in ("APPLIED", "ALREADY"), fourth.text


@pytest.mark.parametrize("type_,result", [("DELETE", "APPLIED"), ("FOO_BAR", "STORED"), ("RESUME", "ALREADY")])
def test_duplicate_of_each_result(net_issuer, type_, result):
    iss = net_issuer
    dc = iss.green(iss.register_card())
    body = ev_body(dc, type_, "TSP")
    first = post_event(iss, body)
    assert first.status_code == 200 and first.json()["result"] == result, first.text
    last = iss.last_outbox_id()
    seq = iss.dcard(dc)["sequence"]
    for _ in range(2):
        r = post_event(iss, body)
        assert r.status_code == 200 and r.content == first.content, r.text
    assert iss.outbox(after=last) == []
    assert iss.dcard(dc)["sequence"] == seq


def test_duplicate_ignored_event(net_issuer):
    iss = net_issuer
    dc = iss.green(iss.register_card())
    iss.event(dc, "DELETE", "WALLET", "APPLIED")
    body = ev_body(dc, "RESUME", "WALLET")
    first = post_event(iss, body)
    assert first.json()["result"] == "IGNORED", first.text
    assert post_event(iss, body).content == first.content


def test_late_resume_after_delete_is_ignored(net_issuer):
    iss = net_issuer
    dc = iss.green(iss.register_card())
    iss.event(dc, "SUSPEND", "WALLET", "APPLIED")
    iss.event(dc, "DELETE", "TSP", "APPLIED")
    last = iss.last_outbox_id()
    for type_, source in (("RESUME", "WALLET"), ("RESUME", "TSP"), ("ACTIVATE", "TSP"), ("SUSPEND", "TSP"),
                          ("IDV_SUCCESS", "TSP")):
        a = iss.event(dc, type_, source, "IGNORED")
        assert a["state"] == "DELETED" and a.get("reason"), a
    # A repeated delete is already so.
    assert iss.event(dc, "DELETE", "WALLET")["result"] == "ALREADY"
    assert iss.state(dc) == "DELETED"
    assert iss.outbox(after=last) == []


def test_reordered_suspend_and_resume(net_issuer):
    """SUSPEND@t1 and RESUME@t2 delivered in reverse: the card ends ACTIVE."""
    iss = net_issuer
    dc = iss.green(iss.register_card())
    t1, t2 = "2030-01-01T10:00:00Z", "2030-01-01T10:00:05+00:00"
    last = iss.last_outbox_id()
    a = iss.event(dc, "RESUME", "WALLET", eventTime=t2)
    assert a["result"] == "ALREADY" and a["state"] == "ACTIVE", a
    b = iss.event(dc, "SUSPEND", "WALLET", eventTime=t1)
    assert b["result"] == "IGNORED" and b["state"] == "ACTIVE", b
    assert iss.state(dc) == "ACTIVE"
    assert iss.outbox(after=last) == []
    # A newer suspend applies; an offset time is the same instant as Z.
    c = iss.event(dc, "SUSPEND", "WALLET", eventTime="2030-01-01T11:00:06+01:00")
    assert c["result"] == "APPLIED", c


def test_suspend_on_pending_card_is_ignored(net_issuer):
    iss = net_issuer
    dc = iss.yellow(iss.register_card())["digitalCardId"]
    a = iss.event(dc, "SUSPEND", "TSP", "IGNORED")
    assert a["state"] == "PENDING_IDV" and a.get("reason"), a
    # A wallet's resume cannot activate a pending card.
    assert iss.event(dc, "RESUME", "WALLET", "IGNORED")["state"] == "PENDING_IDV"
    # The TSP's resume activates it.
    assert iss.event(dc, "RESUME", "TSP", "APPLIED")["state"] == "ACTIVE"


def test_suspend_by_wallet_and_issuer_resume_by_wallet(net_issuer):
    iss = net_issuer
    dc = iss.green(iss.register_card())
    last = iss.last_outbox_id()
    iss.event(dc, "SUSPEND", "WALLET", "APPLIED")
    iss.dcard_op_ok(dc, "suspend")
    assert iss.dcard(dc)["suspendedBy"] == ["ISSUER", "WALLET"]
    a = iss.event(dc, "RESUME", "WALLET", "APPLIED")
    assert a["state"] == "SUSPENDED", a
    v = iss.dcard(dc)
    assert v["state"] == "SUSPENDED" and v["suspendedBy"] == ["ISSUER"], v
    rows = iss.outbox(after=last, dc=dc)
    assert summaries(rows) == ["ISSUER SUSPEND SUCCESSFUL", "ISSUER SUSPEND SUCCESSFUL",
                               "ISSUER RESUME SUCCESSFUL"], rows
    assert [r["source"] for r in rows] == ["WALLET", "ISSUER", "WALLET"], rows
    iss.dcard_op_ok(dc, "resume")
    v = iss.dcard(dc)
    assert v["state"] == "ACTIVE" and v["suspendedBy"] == [], v


def test_issuer_suspension_not_lifted_by_wallet_or_tsp(net_issuer):
    iss = net_issuer
    dc = iss.green(iss.register_card())
    iss.dcard_op_ok(dc, "suspend")
    last = iss.last_outbox_id()
    a = iss.event(dc, "RESUME", "WALLET", "IGNORED")
    assert a["state"] == "SUSPENDED", a
    b = iss.event(dc, "RESUME", "TSP", "IGNORED", suspendedBy="ISSUER")
    assert b["state"] == "SUSPENDED", b
    v = iss.dcard(dc)
    assert v["state"] == "SUSPENDED" and v["suspendedBy"] == ["ISSUER"], v
    assert iss.outbox(after=last) == []


def test_issuer_resume_refused_while_another_party_holds(net_issuer):
    iss = net_issuer
    dc = iss.green(iss.register_card())
    iss.event(dc, "SUSPEND", "WALLET", "APPLIED")
    assert_d1_error(iss.dcard_op(dc, "resume"), 409, "NOT_ALLOWED_IN_STATE")
    assert iss.dcard(dc)["suspendedBy"] == ["WALLET"]


def test_mdes_suspended_by_parties(net_issuer):
    iss = net_issuer
    dc = iss.green(iss.register_card())
    iss.event(dc, "SUSPEND", "TSP", "APPLIED", suspendedBy="MOBILE_PIN_LOCKED")
    iss.event(dc, "SUSPEND", "TSP", "APPLIED", suspendedBy="CARDHOLDER")
    assert iss.dcard(dc)["suspendedBy"] == ["MOBILE_PIN_LOCKED", "CARDHOLDER"]
    # The same party again: already so.
    assert iss.event(dc, "SUSPEND", "TSP", suspendedBy="CARDHOLDER")["result"] == "ALREADY"
    iss.event(dc, "RESUME", "TSP", "APPLIED", suspendedBy="CARDHOLDER")
    assert iss.state(dc) == "SUSPENDED"
    assert iss.event(dc, "RESUME", "TSP", "APPLIED", suspendedBy="MOBILE_PIN_LOCKED")["state"] == "ACTIVE"


def test_unknown_type_is_stored(net_issuer):
    iss = net_issuer
    dc = iss.green(iss.register_card())
    last = iss.last_outbox_id()
    for t in ("DEVICE_BOUND", "RENEW", "something.new"):
        a = iss.event(dc, t, "TSP", "STORED")
        assert a["state"] == "ACTIVE", a
    assert iss.state(dc) == "ACTIVE"
    assert iss.outbox(after=last) == []


def test_type_is_case_insensitive(net_issuer):
    iss = net_issuer
    dc = iss.green(iss.register_card())
    assert iss.event(dc, "suspend", "WALLET", "APPLIED")["state"] == "SUSPENDED"


def test_events_on_unknown_or_other_issuers_card(net_issuer, net_issuer2):
    iss, other = net_issuer, net_issuer2
    dc = iss.green(iss.register_card())
    assert_d1_error(post_event(other, ev_body(dc, "SUSPEND")), 404, "NOT_FOUND")
    assert_d1_error(post_event(iss, ev_body("dc_doesnotexist0000000000", "SUSPEND")), 404, "NOT_FOUND")
    assert_d1_error(other.otp(dc), 404, "NOT_FOUND")
    assert iss.state(dc) == "ACTIVE"
    # The same eventId from two issuers are two events.
    dc2 = other.green(other.register_card())
    body = ev_body(dc, "SUSPEND", "WALLET")
    assert post_event(iss, body).json()["result"] == "APPLIED"
    r = post_event(other, dict(body, digitalCardId=dc2))
    assert r.status_code == 200 and r.json()["result"] == "APPLIED" and r.json()["digitalCardId"] == dc2, r.text


def test_sequence_grows_with_each_recorded_event(net_issuer):
    iss = net_issuer
    dc = iss.green(iss.register_card())
    s0 = iss.dcard(dc)["sequence"]
    a = iss.event(dc, "SUSPEND", "WALLET", "APPLIED")
    b = iss.event(dc, "RESUME", "WALLET", "APPLIED")
    assert s0 < a["sequence"] < b["sequence"], (s0, a, b)
    rows = iss.outbox(dc=dc)
    assert [r["sequence"] for r in rows if r["operation"] in ("SUSPEND", "RESUME")] == [a["sequence"], b["sequence"]]


def test_idempotency_key_on_event(net_issuer):
    iss = net_issuer
    dc = iss.green(iss.register_card())
    body = ev_body(dc, "SUSPEND", "WALLET")
    h = {"Idempotency-Key": unique("idem")}
    r1 = iss.net.post("/network/v1/events", json=body, headers=h)
    r2 = iss.net.post("/network/v1/events", json=body, headers=h)
    assert r1.status_code == r2.status_code == 200 and r1.content == r2.content
    r3 = iss.net.post("/network/v1/events", json=ev_body(dc, "RESUME", "WALLET"), headers=h)
    assert_d1_error(r3, 409, "IDEMPOTENCY_KEY_REUSED")
    assert iss.state(dc) == "SUSPENDED"


def test_many_duplicates_concurrently(net_issuer):
    """Exactly once under concurrency: one APPLIED answer, repeated."""
    import concurrent.futures

    iss = net_issuer
    dc = iss.green(iss.register_card())
    body = ev_body(dc, "SUSPEND", "WALLET")
    last = iss.last_outbox_id()

    def one(_):
        c = tdlib.Client(iss.server, headers={"Authorization": "Bearer " + iss.network_key}, capture=False)
        return c.post("/network/v1/events", json=body)

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        rs = list(ex.map(one, range(16)))
    assert {r.status_code for r in rs} == {200}, [r.text for r in rs]
    assert len({r.content for r in rs}) == 1, {r.content for r in rs}
    assert summaries(iss.outbox(after=last)) == ["ISSUER SUSPEND SUCCESSFUL"]
