"""test_multinode.py — two tokend nodes on one PostgreSQL database answer as one
node would (issue 11): a token created on A and canceled on B, the repeat
cancel on A answers the same signature; an Idempotency-Key replays from either
node; one network event sent to both nodes at the same instant is applied once;
a consent code works once whichever node gets it; one step-up session's
reminders and expiry fire once with both nodes' timer runners going; both
nodes deliver notifications, in order per digital card, none lost or doubled;
a node killed mid-delivery has its leased rows delivered by the other; rate
limits are counted per node (docs/scaling.md).

Several nodes need a shared store: these tests run in the PostgreSQL run of
the suite (TD_E2E_STORE=pg) and are skipped in the SQLite one."""

import threading
import time

import pytest
import requests

import tdlib
from conftest import DELIVERY_SETTINGS, NET_SETTINGS, NetIssuer, set_delivery, summaries, unique, wait_delivered
from tdlib import HTTP_TIMEOUT, consent_flow, get_token, new_member, request_body, signatures, store_request

pytestmark = pytest.mark.skipif(tdlib.E2E_STORE != "pg", reason="several nodes share a PostgreSQL store")


@pytest.fixture
def nodes(tokend_factory):
    """Nodes A and B: two processes on one database, with the same keys."""
    a = tokend_factory.start(settings=NET_SETTINGS, name="node-a")
    b = tokend_factory.start(settings=NET_SETTINGS, name="node-b", workdir=a.dir)
    assert a.db_path == b.db_path
    return a, b


def at_once(*calls):
    """Runs the calls in threads released together; their results in order."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, call):
        barrier.wait()
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HTTP_TIMEOUT)
    return results


def cancel(client, token_id):
    r = client.put(f"/tokens/{token_id}/cancel")
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()["result"]


def test_cancel_on_b_repeat_on_a(nodes):
    a, b = nodes
    bank, tpp = new_member(a, "bank"), new_member(a, "tpp")
    flow = consent_flow(tpp.client(), tpp, bank)
    on_b = cancel(bank.client(server=b), flow.token_id)
    assert on_b["status"] == "SUCCESS", on_b
    again_on_a = cancel(bank.client(server=a), flow.token_id)
    assert again_on_a["status"] == "SUCCESS", again_on_a
    assert signatures(again_on_a["token"], "CANCELED") == signatures(on_b["token"], "CANCELED")
    assert len(signatures(on_b["token"], "CANCELED")) == 1
    assert get_token(tpp.client(server=a), flow.token_id) == get_token(tpp.client(server=b), flow.token_id)


def test_concurrent_cancels_on_both_nodes_sign_once(nodes):
    a, b = nodes
    bank, tpp = new_member(a, "bank"), new_member(a, "tpp")
    flow = consent_flow(tpp.client(), tpp, bank)
    ra, rb = at_once(lambda: cancel(bank.client(server=a), flow.token_id),
                     lambda: cancel(bank.client(server=b), flow.token_id))
    assert ra["status"] == rb["status"] == "SUCCESS", (ra, rb)
    assert signatures(ra["token"], "CANCELED") == signatures(rb["token"], "CANCELED")
    assert len(signatures(ra["token"], "CANCELED")) == 1


def test_idempotency_key_replays_from_the_other_node(nodes):
    a, b = nodes
    bank, tpp = new_member(a, "bank"), new_member(a, "tpp")
    body = request_body(tpp.id, bank.id)
    key = {"Idempotency-Key": unique("idem")}
    first = tpp.client(server=a).post("/token-requests", json=body, headers=key)
    assert first.status_code == 200, first.text
    replay = tpp.client(server=b).post("/token-requests", json=body, headers=key)
    assert (replay.status_code, replay.content) == (first.status_code, first.content)
    other = dict(body, requestPayload=dict(body["requestPayload"], refId="another"))
    tdlib.assert_tokenio_error(tpp.client(server=b).post("/token-requests", json=other, headers=key), 409)


def test_same_idempotency_key_on_both_nodes_at_once(nodes):
    a, b = nodes
    bank, tpp = new_member(a, "bank"), new_member(a, "tpp")
    body = request_body(tpp.id, bank.id)
    key = {"Idempotency-Key": unique("idem")}
    ra, rb = at_once(lambda: tpp.client(server=a).post("/token-requests", json=body, headers=key),
                     lambda: tpp.client(server=b).post("/token-requests", json=body, headers=key))
    assert ra.status_code == rb.status_code == 200, (ra.text, rb.text)
    assert ra.content == rb.content  # one request created, the other node replayed it
    rows = tdlib.sql(a.db_path, "SELECT count(*) AS n FROM token_requests WHERE from_id = '%s'" % bank.id)
    assert rows == [{"n": 1}], rows


def test_one_event_sent_to_both_nodes_is_applied_once(nodes):
    a, b = nodes
    iss = NetIssuer(a)
    card = iss.register_card()
    dc = iss.green(card)
    iss_b = NetIssuer.__new__(NetIssuer)
    iss_b.__dict__.update(iss.__dict__)
    iss_b.bind(b)
    event_id = unique("ev")
    ra, rb = at_once(lambda: iss.event_raw(dc, "SUSPEND", "WALLET", event_id=event_id),
                     lambda: iss_b.event_raw(dc, "SUSPEND", "WALLET", event_id=event_id))
    assert ra.status_code == rb.status_code == 200, (ra.text, rb.text)
    assert ra.content == rb.content, (ra.text, rb.text)  # the duplicate gets the first answer
    assert ra.json()["result"] == "APPLIED", ra.text
    events = tdlib.sql(a.db_path, f"SELECT count(*) AS n FROM dcard_events WHERE event_id = '{event_id}'")
    assert events == [{"n": 1}], events
    assert summaries(iss.outbox(dc=dc)).count("ISSUER SUSPEND SUCCESSFUL") <= 1


def test_consent_code_works_once_across_nodes(nodes):
    a, b = nodes
    bank, tpp = new_member(a, "bank"), new_member(a, "tpp")
    rid = store_request(tpp.client(), request_body(tpp.id, bank.id))
    url = tdlib.authorize(tpp.client(), rid)
    url_b = url.replace(a.url, b.url)
    ra, rb = at_once(lambda: tdlib.decide(url, "approve"), lambda: tdlib.decide(url_b, "approve"))
    codes = sorted([ra.status_code, rb.status_code])
    assert codes[0] == 303 and codes[1] != 303, (ra.status_code, rb.status_code, rb.text[:200])
    tokens = tdlib.sql(a.db_path, f"SELECT count(*) AS n FROM tokens WHERE token_request_id = '{rid}'")
    assert tokens == [{"n": 1}], tokens


def test_step_up_timers_fire_once_with_two_runners(nodes):
    a, b = nodes
    iss = NetIssuer(a)
    iss.set_policy({"stepUp": {"firstReminderAfterSeconds": 1, "reminderEverySeconds": 1, "maxReminders": 2,
                               "sessionSeconds": 3}})
    card = iss.register_card()
    dc = iss.yellow(card)["digitalCardId"]
    tdlib.wait_until(lambda: iss.state(dc) == "DELETED", timeout=30, interval=0.1, what="the session's expiry")
    time.sleep(1.5)  # a second reminder or expiry would show by now
    s = summaries(iss.outbox(dc=dc))
    assert s.count("USER REMINDER") == 2, s
    assert s.count("ISSUER DIGITIZE FAILED STEP_UP_EXPIRED") == 1, s
    assert s[-1] == "ISSUER DIGITIZE FAILED STEP_UP_EXPIRED", s


@pytest.fixture
def delivery_nodes(tokend_factory):
    """Nodes A and B with fast delivery workers and short leases."""
    settings = dict(DELIVERY_SETTINGS, **{"delivery-lease-ms": "3000"})
    a = tokend_factory.start(settings=settings, name="node-a")
    b = tokend_factory.start(settings=settings, name="node-b", workdir=a.dir)
    return a, b


def d1_delivery(rx, **extra):
    return dict({"profile": "d1", "baseUrl": rx.url + "/issuer", "messagingUrl": rx.url + "/messages",
                 "timeoutMs": 2500}, **extra)


def check_received_once_in_order(rx, issuer_id, rows):
    """Every ISSUER row took effect once at the receiver, in order per digital card."""
    st = rx.state()
    for dc in {r["digitalCardId"] for r in rows if r["channel"] == "ISSUER"}:
        view = st["tokens"][dc]
        got = [(h["operation"], h["status"]) for h in view["history"] if h["result"] == "applied"]
        owed = [(r["operation"], r["status"]) for r in rows if r["channel"] == "ISSUER" and r["digitalCardId"] == dc]
        assert got == owed, (dc, got, owed)
        seqs = [h["sequence"] for h in view["history"] if "sequence" in h and h["result"] == "applied"]
        assert seqs == sorted(seqs), seqs


def test_both_nodes_deliver_in_order_nothing_lost(delivery_nodes, receivers):
    a, b = delivery_nodes
    rx = receivers.start()
    iss = NetIssuer(a)
    set_delivery(a, iss.id, d1_delivery(rx))
    dcs = [iss.green(iss.register_card()) for _ in range(4)]
    for dc in dcs:
        for verb in ("suspend", "resume", "suspend", "resume"):
            iss.dcard_op_ok(dc, verb)
    rows = wait_delivered(a, iss.id, timeout=60)
    check_received_once_in_order(rx, iss.id, rows)
    # Each node's /metrics counts what its own worker delivered: together,
    # every row once (whichever node claimed it).
    per_node = [sum(v for name, _, v in tdlib.parse_metrics(requests.get(n.url + "/metrics", timeout=10).text)
                    if name == "tokend_notifications_delivered_total") for n in (a, b)]
    assert sum(per_node) == len([r for r in rows if r["state"] == "DELIVERED"]), per_node


def test_kill9_one_node_the_other_delivers_its_leased_rows(delivery_nodes, receivers):
    a, b = delivery_nodes
    rx = receivers.start("--fail-first", "1", "--fail-mode", "slow", "--slow-ms", "1500")
    iss = NetIssuer(b)
    set_delivery(b, iss.id, d1_delivery(rx))
    dcs = []
    for _ in range(4):
        dc = iss.green(iss.register_card())
        iss.dcard_op_ok(dc, "suspend")
        dcs.append(dc)
    tdlib.wait_until(lambda: any(l.get("result") == "injected" for l in rx.lines()), timeout=15, interval=0.02,
                     what="a delivery in flight")
    a.kill()  # whatever A had leased goes out again from B once the lease ends
    rows = wait_delivered(b, iss.id, timeout=60)
    check_received_once_in_order(rx, iss.id, rows)
    for dc in dcs:
        assert rx.token(dc)["status"] == "suspended", rx.token(dc)
    assert requests.get(b.url + "/readyz", timeout=10).status_code == 200


def test_rate_limit_is_per_node(tokend_factory):
    """docs/scaling.md: each node counts the requests it serves. With 2:2 a
    credential limited on A is still served by B."""
    a = tokend_factory.start(settings={"rate-limit": "2:2"}, name="node-a")
    b = tokend_factory.start(settings={"rate-limit": "2:2"}, name="node-b", workdir=a.dir)
    m = new_member(a, "m", levels=("STANDARD",))
    on_a, on_b = m.client(server=a), m.client(server=b)
    limited = None
    for _ in range(50):
        r = on_a.get("/tokens", params={"page.limit": "1"})
        if r.status_code == 429:
            limited = r
            break
        assert r.status_code == 200, r.text
    assert limited is not None, "no 429 on node A after 50 quick requests at 2 req/s, burst 2"
    tdlib.assert_tokenio_error(limited, 429, "RESOURCE_EXHAUSTED", payment_id="")
    assert on_b.get("/tokens", params={"page.limit": "1"}).status_code == 200
