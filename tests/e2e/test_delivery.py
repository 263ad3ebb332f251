"""test_delivery.py — notification delivery end to end (issue 4, "End to end"):
the real tokend delivers its outbox (docs/notifications.md) to the reference
issuer backend, `tokenctl listen` (docs/receiver.md), a real process on a
free loopback port.

1. Canceled tokenization (YELLOW → OTP → the wallet deletes the pending card,
   the delete event sent twice): the receiver gets DIGITIZE FAILED (d1) /
   DELETE with source WALLET (classic) / the webhook event, once in effect; the
   end user gets the cancellation message; the card is tokenized again.
2. Enrollment failure (classic): DELETE_FROM_APP and DELETE with the
   enrolment's x-correlation-id; duplicate and late callbacks change nothing.
3. Cancel a CARD token with PUT /tokens/{id}/cancel → DELETE delivered.
4. Receiver down, then up: everything arrives, in order per digital card.
   Receiver answering 400: dead letters, visible (admin API and tokenctl),
   replayable under the same ids. A 401 makes tokend fetch a new OAuth2 token.
5. kill -9 tokend while deliveries are in flight (receiver slow), restart:
   every owed notification arrives at least once; the receiver's dedupe gives
   exactly one effect each.

The worker polls every 50 ms (conftest.DELIVERY_SETTINGS)."""

import base64
import json
import os
import secrets
import subprocess
import time

import pytest
import requests

import tdlib
from conftest import (DELIVERY_SETTINGS, TOKENCTL_BIN, NetIssuer, read_outbox, set_delivery, wait_delivered)

pytestmark = pytest.mark.skipif(not os.access(TOKENCTL_BIN, os.X_OK), reason="tokenctl not built (TOKENCTL_BIN)")

OTP = "918273"


def delivery_body(rx, profile, auth=None, **extra):
    base = rx.url + "/webhook" if profile == "webhook" else rx.url + "/issuer"
    body = {"profile": profile, "baseUrl": base, "messagingUrl": rx.url + "/messages", "timeoutMs": 2000}
    if auth:
        body["auth"] = auth
    body.update(extra)
    return body


def whsec():
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def applied(view, **match):
    """The history entries of a receiver token view that took effect and match."""
    return [h for h in (view or {}).get("history", []) if h["result"] in ("applied", "recorded")
            and all(h.get(k) == v for k, v in match.items())]


def wait_token(rx, dc, status, timeout=20):
    return tdlib.wait_until(lambda: (rx.token(dc) or {}).get("status") == status and rx.token(dc), timeout=timeout,
                            interval=0.05, what=f"the receiver to see {dc} {status}")


def wait_message(rx, dc, message, timeout=20):
    return tdlib.wait_until(
        lambda: [m for m in rx.state()["messages"] if m.get("digitalCardId") == dc and m["message"] == message],
        timeout=timeout, interval=0.05, what=f"the receiver to get {message} for {dc}")


def tokenctl(server, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKEND_")}
    env["TOKEND_ADMIN_KEY"] = server.admin_key
    return subprocess.run([TOKENCTL_BIN, "--url", server.url, *args], capture_output=True, text=True, env=env,
                          timeout=60)


# ---------------------------------------------------------------------------
# The admin API for delivery settings
# ---------------------------------------------------------------------------


def test_delivery_settings_admin_api(delivery_tokend, receivers):
    rx = receivers.start()
    iss = NetIssuer(delivery_tokend)
    adm = delivery_tokend.admin()
    path = f"/admin/v1/issuers/{iss.id}/delivery"
    # none yet
    assert adm.get(path).status_code == 404
    v = set_delivery(delivery_tokend, iss.id, delivery_body(rx, "d1", {"type": "bearer", "token": "s3cr3t-token"},
                                                              d1BatchMax=5, maxAgeSeconds=600,
                                                              templates={"OTP": "code {otp} for {last4}"}))
    assert v["profile"] == "d1" and v["baseUrl"] == rx.url + "/issuer", v
    assert v["auth"] == {"type": "bearer", "secretSet": True}, v
    assert v["d1BatchMax"] == 5 and v["maxAgeSeconds"] == 600 and v["timeoutMs"] == 2000, v
    assert v["templates"] == {"OTP": "code {otp} for {last4}"}, v
    assert "s3cr3t-token" not in json.dumps(v)
    g = adm.get(path)
    assert g.status_code == 200 and g.json() == v, (g.text, v)
    assert "s3cr3t-token" not in g.text
    # the secret may be left out: the stored one is kept
    v2 = set_delivery(delivery_tokend, iss.id, delivery_body(rx, "d1", {"type": "bearer"}))
    assert v2["auth"] == {"type": "bearer", "secretSet": True}, v2
    # OAuth2: the client id and token URL are shown, not the secret
    v3 = set_delivery(delivery_tokend, iss.id, delivery_body(
        rx, "classic", {"type": "oauth2", "clientId": "tokend", "clientSecret": "cl13nt-s3cret",
                        "tokenUrl": rx.url + "/oauth2/token", "scope": "notify"}))
    assert v3["auth"] == {"type": "oauth2", "secretSet": True, "clientId": "tokend",
                          "tokenUrl": rx.url + "/oauth2/token", "scope": "notify"}, v3
    assert "cl13nt-s3cret" not in json.dumps(v3)
    # the log never holds a secret
    assert "s3cr3t-token" not in delivery_tokend.log_text() and "cl13nt-s3cret" not in delivery_tokend.log_text()

    # bad input: 400 in the Token.io shape, naming the field
    bad = [
        ({"profile": "d2", "baseUrl": rx.url}, "profile"),
        ({"profile": "d1", "baseUrl": "ftp://x"}, "baseUrl"),
        ({"profile": "d1", "baseUrl": rx.url, "unknown": 1}, "unknown"),
        ({"profile": "d1", "baseUrl": rx.url, "d1BatchMax": 0}, "d1BatchMax"),
        ({"profile": "d1", "baseUrl": rx.url, "maxAgeSeconds": 10}, "maxAgeSeconds"),
        ({"profile": "d1", "baseUrl": rx.url, "timeoutMs": 60001}, "timeoutMs"),
        ({"profile": "d1", "baseUrl": rx.url, "auth": {"type": "bearer", "token": "x", "extra": 1}}, "extra"),
        ({"profile": "d1", "baseUrl": rx.url, "auth": {"type": "webhook", "secret": whsec()}}, "webhook"),
        ({"profile": "d1", "baseUrl": rx.url, "templates": {"NOPE": "x"}}, "NOPE"),
        ({"profile": "d1", "baseUrl": rx.url, "tls": {"keyFile": "/k.pem"}}, "certFile"),
    ]
    for body, name in bad:
        r = adm.put(path, json=body)
        assert r.status_code == 400, (body, r.status_code, r.text)
        err = r.json()["error"]
        assert err["errorCode"] == "INVALID_ARGUMENT" and name in err["message"], (body, err)
    # an unknown issuer
    assert adm.put("/admin/v1/issuers/NOSUCHISS1/delivery", json=delivery_body(rx, "d1")).status_code == 404
    # the previous settings are untouched by refusals
    assert adm.get(path).json() == v3

    # tokenctl delivery set/get (the secret from a file)
    secret_file = os.path.join(rx.dir, "bearer.txt")
    with open(secret_file, "w") as f:
        f.write("file-s3cret\n")
    p = tokenctl(delivery_tokend, "delivery", "set", iss.id, "--profile", "d1", "--base-url", rx.url + "/issuer",
                 "--bearer", "@" + secret_file, "--batch", "3", "--messaging-url", rx.url + "/messages")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["auth"] == {"type": "bearer", "secretSet": True}
    p = tokenctl(delivery_tokend, "-q", "delivery", "get", iss.id)
    assert p.returncode == 0 and p.stdout.strip() == "d1", (p.stdout, p.stderr)
    assert "file-s3cret" not in p.stdout + p.stderr


# ---------------------------------------------------------------------------
# 1. Canceled tokenization
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["d1", "classic", "webhook"])
def test_canceled_tokenization(delivery_tokend, receivers, profile):
    if profile == "webhook":
        secret = whsec()
        rx = receivers.start("--webhook-secret", secret)
        auth = {"type": "webhook", "secret": secret}
    else:
        rx = receivers.start("--bearer", "rx-bearer-" + profile)
        auth = {"type": "bearer", "token": "rx-bearer-" + profile}
    iss = NetIssuer(delivery_tokend)
    set_delivery(delivery_tokend, iss.id, delivery_body(rx, profile, auth))
    card = iss.register_card()
    a = iss.yellow(card)
    dc, op = a["digitalCardId"], a["operationId"]
    assert iss.otp(dc, otp=OTP).status_code == 202
    wait_message(rx, dc, "OTP")  # the end user got the OTP (masked at the receiver)
    if profile != "classic":
        wait_token(rx, dc, "pending")  # classic has no "pending" callback

    # The end user deletes the pending card in the wallet; the TSP sends the event twice.
    ev = {"eventId": "ev-cancel-1", "digitalCardId": dc, "type": "DELETE", "source": "WALLET"}
    r1 = iss.net.post("/network/v1/events", json=ev)
    r2 = iss.net.post("/network/v1/events", json=ev)
    assert r1.status_code == r2.status_code == 200 and r1.json() == r2.json(), (r1.text, r2.text)

    view = wait_token(rx, dc, "canceled")
    wait_message(rx, dc, "CANCELLATION")
    rows = wait_delivered(delivery_tokend, iss.id)
    if profile == "d1":
        failed = applied(view, kind="d1.card", operation="DIGITIZE", status="FAILED")
        assert len(failed) == 1, view
        assert failed[0]["errorCode"] == "CANCELED_BY_USER" and failed[0]["source"] == "WALLET", failed
        assert failed[0]["key"] == f"d1.card|{iss.id}|{op}|FAILED", failed
    elif profile == "classic":
        deletes = applied(view, kind="classic", operation="DELETE")
        assert len(deletes) == 1, view
        assert deletes[0]["source"] in ("WALLET", "TSP") and deletes[0]["errorCode"] == "CANCELED_BY_USER", deletes
        # the enrolment's correlation id (the tokenization request's)
        assert deletes[0]["correlationId"] == iss.dcard(dc)["correlationId"], (deletes, iss.dcard(dc))
    else:
        failed = applied(view, kind="webhook", operation="DIGITIZE", status="FAILED")
        assert len(failed) == 1 and failed[0]["userStatus"] == "canceled", view
    assert view["stepUpStopped"] is True and view["reenrolmentAllowed"] is True, view
    assert rx.state()["cards"][card.id]["reenrolmentAllowed"] is True

    # Every row the change owed went exactly once in effect.
    st = rx.state()
    owed_issuer = [r for r in rows if r["channel"] == "ISSUER" and r["digitalCardId"] == dc
                   and not (profile == "classic" and r["operation"] == "DIGITIZE" and r["status"] == "PENDING")]
    assert len(applied(st["tokens"][dc])) == len(owed_issuer), (st["tokens"][dc], owed_issuer)
    # The OTP reached the messaging endpoint, but is never printed or kept by the receiver.
    assert OTP not in rx.text() and OTP not in json.dumps(st)
    assert OTP not in delivery_tokend.log_text()

    # Re-enrolment: the same card again; the receiver sees the new token active.
    dc2 = iss.green(card)
    wait_token(rx, dc2, "active")
    wait_message(rx, dc2, "ACTIVATION")


# ---------------------------------------------------------------------------
# 2. Enrollment failure (classic)
# ---------------------------------------------------------------------------


def test_enrollment_failure_classic(delivery_tokend, receivers):
    rx = receivers.start("--oauth-client", "tokend-client:cl13nt-s3cret")
    iss = NetIssuer(delivery_tokend)
    set_delivery(delivery_tokend, iss.id, delivery_body(
        rx, "classic", {"type": "oauth2", "clientId": "tokend-client", "clientSecret": "cl13nt-s3cret",
                        "tokenUrl": rx.url + "/oauth2/token"}))
    card = iss.register_card()
    body = iss.tokenize_body(card)
    a = iss.net.post("/network/v1/tokenizations", json=body).json()
    assert a["decision"] == "GREEN", a
    dc, corr = a["digitalCardId"], body["correlationId"]
    view = wait_token(rx, dc, "active")
    act = applied(view, operation="ACTIVATE")
    assert len(act) == 1 and act[0]["correlationId"] == corr, view

    # The wallet removes the card from the app, twice (same event id).
    ev = {"eventId": "ev-dfa-1", "digitalCardId": dc, "type": "DELETE_FROM_APP", "source": "WALLET"}
    for _ in range(2):
        assert iss.net.post("/network/v1/events", json=ev).status_code == 200
    view = wait_token(rx, dc, "deleted")
    dfa = applied(view, operation="DELETE_FROM_APP")
    assert len(dfa) == 1 and dfa[0]["source"] == "WALLET", view
    assert dfa[0]["correlationId"] == corr, (dfa, corr)  # the enrolment's x-correlation-id
    assert view["stepUpStopped"] is True and view["reenrolmentAllowed"] is True

    # A second enrolment deleted by the TSP.
    body2 = iss.tokenize_body(card)
    dc2 = iss.net.post("/network/v1/tokenizations", json=body2).json()["digitalCardId"]
    wait_token(rx, dc2, "active")
    iss.event(dc2, "DELETE", "TSP", "APPLIED")
    view2 = wait_token(rx, dc2, "deleted")
    dels = applied(view2, operation="DELETE")
    assert len(dels) == 1 and dels[0]["source"] == "TSP" and dels[0]["correlationId"] == body2["correlationId"], view2

    # Late events at tokend (a resume after the delete) owe nothing.
    assert iss.event(dc, "RESUME", "WALLET")["result"] == "IGNORED"
    rows = wait_delivered(delivery_tokend, iss.id)
    before = rx.state()

    # Duplicate and late callbacks sent straight to the receiver change nothing.
    hdrs = {"x-correlation-id": corr, "x-issuer-id": iss.id}
    row = [r for r in rows if r["digitalCardId"] == dc and r["operation"] == "DELETE_FROM_APP"][0]
    seq = row["sequence"]
    dup = {"issuerCardRefId": card.id, "virtualCardId": dc, "walletProviderId": "APPLE_PAY", "isPrimary": True,
           "tokenStorageId": "SE-01", "action": "DELETE_FROM_APP", "source": "WALLET",
           "operationId": row["operationId"], "sequence": seq}
    late_activate = dict(dup, action="ACTIVATE", operationId="op_late_activate", sequence=1)
    late_resume = dict(dup, action="RESUME", operationId="op_late_resume", sequence=seq + 5)
    tokens_issued = rx.state()["counts"].get("tokensIssued", 0)
    assert tokens_issued >= 1
    # the receiver wants its OAuth2 token: get one as tokend does
    import requests
    t = requests.post(rx.url + "/oauth2/token", data="grant_type=client_credentials",
                      headers={"Authorization": "Basic " + base64.b64encode(b"tokend-client:cl13nt-s3cret").decode(),
                               "Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    assert t.status_code == 200, t.text
    hdrs["Authorization"] = "Bearer " + t.json()["access_token"]
    for cb in (dup, late_activate, late_resume):
        r = rx.post("/issuer/notifyVirtualCardChange", cb, hdrs)
        assert r.status_code == 200, r.text
    # and without the token: 401
    assert rx.post("/issuer/notifyVirtualCardChange", dup, {"x-correlation-id": corr, "x-issuer-id": iss.id}) \
        .status_code == 401
    after = rx.state()
    assert after["tokens"][dc]["status"] == "deleted"
    assert after["counts"]["duplicates"] == before["counts"].get("duplicates", 0) + 1, after["counts"]
    assert after["counts"]["ignored"] == before["counts"].get("ignored", 0) + 2, after["counts"]
    ignored = [h for h in after["tokens"][dc]["history"] if h["result"] == "ignored"]
    assert {h["operation"] for h in ignored} == {"ACTIVATE", "RESUME"}, ignored
    assert after["tokens"][dc2]["status"] == "deleted"


# ---------------------------------------------------------------------------
# 3. Cancel a CARD token through the Token API
# ---------------------------------------------------------------------------


def test_cancel_card_token_delivers_delete(delivery_tokend, receivers):
    rx = receivers.start()
    iss = NetIssuer(delivery_tokend)
    set_delivery(delivery_tokend, iss.id, delivery_body(rx, "d1"))
    card = iss.register_card()
    dc = iss.green(card)
    wait_token(rx, dc, "active")
    r = iss.iss.put(f"/tokens/{dc}/cancel")
    assert r.status_code == 200 and r.json()["result"]["status"] == "SUCCESS", r.text
    view = wait_token(rx, dc, "deleted")
    dels = applied(view, kind="d1.digitalCard", operation="DELETE", status="SUCCESSFUL")
    assert len(dels) == 1, view
    wait_message(rx, dc, "DELETION")
    # a pending one: the cancel is DIGITIZE FAILED CANCELED_BY_ISSUER
    y = iss.yellow(card)["digitalCardId"]
    wait_token(rx, y, "pending")
    assert iss.iss.put(f"/tokens/{y}/cancel").json()["result"]["status"] == "SUCCESS"
    v = wait_token(rx, y, "canceled")
    assert applied(v, operation="DIGITIZE", status="FAILED")[0]["errorCode"] == "CANCELED_BY_ISSUER", v


def metric(server, name):
    for line in server.anon(capture=False).get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def test_owed_without_settings_waits_visibly_then_goes(delivery_tokend, receivers):
    """An issuer owed notifications before it has delivery settings: its rows
    wait (never dead, never claimed), /metrics counts them, the log names the
    issuer once, and they all go out, in order, once the settings exist."""
    iss = NetIssuer(delivery_tokend)
    card = iss.register_card()
    dc = iss.green(card)
    iss.dcard_op_ok(dc, "suspend")
    tdlib.wait_until(lambda: metric(delivery_tokend, "tokend_outbox_unroutable_rows") >= 2, timeout=15,
                     interval=0.1, what="the unroutable rows counted")
    assert metric(delivery_tokend, "tokend_outbox_unroutable_issuers") >= 1
    warned = [r for r in delivery_tokend.log_records() if r.get("event") == "delivery_unconfigured"
              and iss.id in r.get("msg", "")]
    assert len(warned) == 1, warned
    rows = read_outbox(delivery_tokend, iss.id)
    assert rows and all(r["state"] == "PENDING" and r["attempts"] == 0 for r in rows), rows
    time.sleep(2.5)  # more refreshes: still one warning, still waiting
    assert len([r for r in delivery_tokend.log_records() if r.get("event") == "delivery_unconfigured"
                and iss.id in r.get("msg", "")]) == 1
    rx = receivers.start()
    set_delivery(delivery_tokend, iss.id, delivery_body(rx, "d1"))
    wait_delivered(delivery_tokend, iss.id)
    view = wait_token(rx, dc, "suspended")
    assert [(h["operation"], h["status"]) for h in view["history"] if h["result"] != "duplicate"][:2] == \
        [("DIGITIZE", "SUCCESSFUL"), ("SUSPEND", "SUCCESSFUL")], view


# ---------------------------------------------------------------------------
# 4. Receiver down then up; dead letters and replay; 401 and OAuth2
# ---------------------------------------------------------------------------


def test_receiver_down_then_up_in_order(delivery_tokend, receivers):
    rx = receivers.start("--bearer", "rx-down-up")
    port = rx.port
    assert rx.stop() == 0  # down
    iss = NetIssuer(delivery_tokend)
    set_delivery(delivery_tokend, iss.id, delivery_body(rx, "d1", {"type": "bearer", "token": "rx-down-up"},
                                                         d1BatchMax=10))
    cards = [iss.register_card() for _ in range(2)]
    dcs = [iss.green(c) for c in cards]
    for dc in dcs:
        iss.dcard_op_ok(dc, "suspend")
        iss.dcard_op_ok(dc, "resume")
        iss.dcard_op_ok(dc, "suspend")
        iss.dcard_op_ok(dc, "delete")
    # attempts fail while the receiver is down: visible with their error
    failing = tdlib.wait_until(lambda: [r for r in read_outbox(delivery_tokend, iss.id) if r["attempts"] >= 1],
                               timeout=15, interval=0.05, what="a failed attempt")
    assert failing[0]["state"] in ("PENDING", "IN_FLIGHT") and failing[0]["lastError"], failing[0]
    assert failing[0]["lastStatus"] == 0 and failing[0]["firstAttemptAt"], failing[0]
    rx.start(port=port)  # up again
    rows = wait_delivered(delivery_tokend, iss.id, timeout=45)
    st = rx.state()
    for dc in dcs:
        view = st["tokens"][dc]
        assert view["status"] == "deleted", view
        got = [(h["operation"], h["status"]) for h in view["history"] if h["result"] != "duplicate"]
        owed = [(r["operation"], r["status"]) for r in rows if r["channel"] == "ISSUER" and r["digitalCardId"] == dc]
        assert got == owed, (got, owed)  # all of them, in order
        assert all(h["result"] != "ignored" for h in view["history"]), view
        seqs = [h["sequence"] for h in view["history"] if "sequence" in h]
        assert seqs == sorted(seqs), seqs
    for r in rows:
        if r["state"] == "DELIVERED":
            assert r["doneAt"] and r["attempts"] >= 1, r


def test_dead_letters_and_replay(delivery_tokend, receivers):
    rx = receivers.start("--fail-first", "1", "--fail-mode", "400")
    iss = NetIssuer(delivery_tokend)
    other = NetIssuer(delivery_tokend)
    set_delivery(delivery_tokend, iss.id, delivery_body(rx, "d1"))
    card = iss.register_card()
    dc = iss.green(card)
    iss.dcard_op_ok(dc, "suspend")
    dead = wait_delivered(delivery_tokend, iss.id, states=("DEAD",))
    assert len(dead) == 3, dead  # DIGITIZE SUCCESSFUL, ACTIVATION, SUSPEND
    for r in dead:
        assert r["attempts"] == 1 and r["lastStatus"] == 400 and r["lastError"], r
        assert r["doneAt"] and r["firstAttemptAt"], r
    assert rx.token(dc) is None  # nothing took effect
    adm = delivery_tokend.admin()
    listed = adm.get(f"/admin/v1/issuers/{iss.id}/outbox", params={"state": "DEAD"}).json()["outbox"]
    assert [r["id"] for r in listed] == [r["id"] for r in dead]
    assert adm.get(f"/admin/v1/issuers/{iss.id}/outbox", params={"state": "dead"}).status_code == 400
    p = tokenctl(delivery_tokend, "outbox", "list", iss.id, "--state", "DEAD", "--lines")
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 3 and "attempts=1" in p.stdout, (p.stdout, p.stderr)

    # replay one (the first), then the rest with tokenctl
    first = dead[0]["id"]
    r = adm.post(f"/admin/v1/issuers/{iss.id}/outbox/{first}/replay")
    assert r.status_code == 200 and r.json() == {"replayed": 1}, r.text
    tdlib.wait_until(lambda: read_outbox(delivery_tokend, iss.id)[0]["state"] == "DELIVERED", timeout=15,
                     interval=0.05, what="the replayed row")
    assert wait_token(rx, dc, "active")
    # not dead any more: 409; unknown or another issuer's row: 404
    r = adm.post(f"/admin/v1/issuers/{iss.id}/outbox/{first}/replay")
    assert r.status_code == 409, r.text
    assert adm.post(f"/admin/v1/issuers/{other.id}/outbox/{first}/replay").status_code == 404
    assert adm.post(f"/admin/v1/issuers/{iss.id}/outbox/999999999/replay").status_code == 404
    assert adm.post(f"/admin/v1/issuers/{iss.id}/outbox/x1/replay").status_code == 400
    p = tokenctl(delivery_tokend, "-q", "outbox", "replay", iss.id, "--all")
    assert p.returncode == 0 and p.stdout.strip() == "2", (p.stdout, p.stderr)
    rows = wait_delivered(delivery_tokend, iss.id)
    # the same ids, a second attempt each
    assert [r["operationId"] for r in rows] == [r["operationId"] for r in dead]
    assert all(r["attempts"] == 2 for r in rows), rows
    # replayed after their first attempt; the maximum age counts from there
    assert all(r["replayedAt"] and r["firstAttemptAt"] < r["replayedAt"] for r in rows), rows
    view = wait_token(rx, dc, "suspended")
    assert [h["operation"] for h in view["history"]] == ["DIGITIZE", "SUSPEND"], view
    wait_message(rx, dc, "ACTIVATION")
    # nothing dead left: replay all answers 0
    assert adm.post(f"/admin/v1/issuers/{iss.id}/outbox:replay").json() == {"replayed": 0}


def test_401_refreshes_oauth2_token(delivery_tokend, receivers):
    rx = receivers.start("--oauth-client", "cid:csecret", "--fail-first", "1", "--fail-mode", "401")
    iss = NetIssuer(delivery_tokend)
    set_delivery(delivery_tokend, iss.id, delivery_body(
        rx, "d1", {"type": "oauth2", "clientId": "cid", "clientSecret": "csecret",
                   "tokenUrl": rx.url + "/oauth2/token"}))
    dc = iss.green(iss.register_card())
    wait_token(rx, dc, "active")
    rows = wait_delivered(delivery_tokend, iss.id)
    assert all(r["lastStatus"] in (200, 204) for r in rows), rows
    counts = rx.state()["counts"]
    assert counts["failedInjected"] == len(rows), counts  # each row got a 401 first
    assert counts["tokensIssued"] >= 2, counts  # a new token was fetched after the 401


# ---------------------------------------------------------------------------
# 5. kill -9 mid-delivery, restart: nothing lost
# ---------------------------------------------------------------------------


def test_kill9_mid_delivery_nothing_lost(tokend_factory, receivers):
    rx = receivers.start("--fail-first", "1", "--fail-mode", "slow", "--slow-ms", "1000")
    settings = dict(DELIVERY_SETTINGS, **{"delivery-lease-ms": "3000"})
    srv = tokend_factory.start(settings=settings)
    iss = NetIssuer(srv)
    set_delivery(srv, iss.id, delivery_body(rx, "d1", timeoutMs=2500))
    dcs = []
    for _ in range(4):
        dc = iss.green(iss.register_card())
        iss.dcard_op_ok(dc, "suspend")
        dcs.append(dc)
    # deliveries are in flight (the receiver holds them for 1 s): crash now
    tdlib.wait_until(lambda: any(l.get("result") == "injected" for l in rx.lines()), timeout=15, interval=0.02,
                     what="a delivery in flight")
    srv.kill()
    srv2 = tokend_factory.restart(srv)
    iss.bind(srv2)
    rows = wait_delivered(srv2, iss.id, timeout=40)
    st = rx.state()
    for r in rows:
        if r["channel"] == "USER":
            assert any(m["messageId"] == f"msg_{iss.id}_{r['id']}" for m in st["messages"]), r
            continue
        kind = "d1.card" if r["operation"] == "DIGITIZE" else "d1.digitalCard"
        key = f"{kind}|{iss.id}|{r['operationId']}|{r['status']}"
        hits = [h for h in st["tokens"][r["digitalCardId"]]["history"] if h["key"] == key]
        assert len(hits) == 1 and hits[0]["result"] == "applied", (key, st["tokens"][r["digitalCardId"]])
    for dc in dcs:
        assert st["tokens"][dc]["status"] == "suspended", st["tokens"][dc]
    # at least once: those in flight at the crash were received twice (their
    # answers were cut), and took effect once
    assert st["counts"]["duplicates"] >= 1, st["counts"]
    messages = [m["messageId"] for m in st["messages"]]
    assert len(messages) == len(set(messages))


def test_receiver_counts_each_operation_of_a_d1_batch(receivers):
    """--fail-first holds per operation in d1 batches: an operation failed once
    in a batch is not failed again in a batch led by another (what tokend does
    when a retried batch is claimed in parts); a batch of fresh operations is."""
    import requests
    rx = receivers.start("--bearer", "b", "--fail-first", "1", "--fail-mode", "500", "--fail-percent", "100")
    url = rx.url + "/issuer/notifications/d1/v2/issuers/ISS1/cards"

    def batch(*op_ids):
        ops = [{"operationId": o, "operation": "DIGITIZE", "status": "SUCCESSFUL", "cardId": "card-1",
                "startTime": "2026-12-04T10:00:00.000Z", "endTime": "2026-12-04T10:00:00.000Z",
                "details": {"digitalCardId": "dc-" + o, "sequence": 1}} for o in op_ids]
        return requests.post(url, json={"operations": ops}, headers={"Authorization": "Bearer b"},
                             timeout=5).status_code

    assert batch("op-a", "op-b") == 500       # both on their first attempt
    assert batch("op-b", "op-c") in (200, 204)  # op-b's second attempt: not failed, though op-c is new
    assert batch("op-d", "op-e") == 500       # fresh operations fail as before
    assert batch("op-a", "op-d", "op-e") in (200, 204)
