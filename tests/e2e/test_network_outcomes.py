"""test_network_outcomes.py — every tokenization outcome of PRODUCT.md's
table, end to end against the real tokend (docs/network.md):

GREEN; YELLOW then OTP then activation (TSP event, or the issuer's :resume);
YELLOW canceled by the wallet's delete (DIGITIZE FAILED CANCELED_BY_USER, a
CANCELLATION message, re-enrolment); YELLOW left to expire (reminders, then
DELETED and DIGITIZE FAILED STEP_UP_EXPIRED); RED for each rule; enrollment
failure (DELETE_FROM_APP); and a restart in the middle of a step-up session.

Step-up sessions are made seconds long through the card policy; tokend runs
its timers every 100 ms (conftest.NET_SETTINGS)."""

import time

import pytest

import tdlib
from conftest import (ISO_MS, NET_SETTINGS, OP_ID, NetIssuer, assert_d1_error, new_pan, summaries)

OUTBOX_KEYS = {"id", "channel", "digitalCardId", "cardId", "sequence", "operationId", "operation", "status",
               "errorCode", "source", "correlationId", "walletProviderId", "message", "methodId", "eventTime",
               "createdAt", "dueAt", "state", "attempts", "lastStatus", "lastError", "firstAttemptAt", "doneAt",
               "replayedAt"}
SHORT_SESSION = {"stepUp": {"firstReminderAfterSeconds": 1, "reminderEverySeconds": 1, "maxReminders": 2,
                            "sessionSeconds": 3}}


def wait_state(iss, dc, state, timeout=20):
    return tdlib.wait_until(lambda: iss.state(dc) == state, timeout=timeout, interval=0.1,
                            what=f"digital card {dc} to be {state}")


def rows_of(iss, dc, after=0):
    return iss.outbox(after=after, dc=dc)


# ---------------------------------------------------------------------------
# GREEN
# ---------------------------------------------------------------------------


def test_green(net_issuer):
    iss = net_issuer
    card = iss.register_card()
    before = iss.last_outbox_id()
    body = iss.tokenize_body(card, wallet=5, device=5)
    r = iss.net.post("/network/v1/tokenizations", json=body)
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["decision"] == "GREEN", a
    assert "reason" not in a, a
    assert "idvMethods" not in a, a
    dc, op = a["digitalCardId"], a["operationId"]

    v = iss.dcard(dc)
    assert v["digitalCardId"] == dc and v["cardId"] == card.id, v
    assert v["state"] == "ACTIVE" and v["suspendedBy"] == [], v
    assert v["decision"] == "GREEN" and v["last4"] == card.pan[-4:], v
    assert v["walletProviderId"] == "APPLE_PAY" and v["tokenRequestorId"] == "40010030273", v
    assert v["tokenStorageId"] == "SE-01" and v["isPrimary"] is True, v
    assert v["correlationId"] == body["correlationId"], v
    assert ISO_MS.match(v["createdAt"]) and ISO_MS.match(v["updatedAt"]), v

    o = iss.operation(op)
    assert o["operation"] == "DIGITIZE" and o["status"] == "SUCCESSFUL", o
    assert o["digitalCardId"] == dc and o["cardId"] == card.id, o

    rows = rows_of(iss, dc, before)
    assert summaries(rows) == ["ISSUER DIGITIZE SUCCESSFUL", "USER ACTIVATION"], rows
    assert set(rows[0]) == OUTBOX_KEYS, set(rows[0]) ^ OUTBOX_KEYS
    assert rows[0]["operationId"] == op and rows[0]["sequence"] == v["sequence"], (rows, v)
    assert rows[0]["cardId"] == card.id and rows[0]["walletProviderId"] == "APPLE_PAY", rows
    assert rows[0]["correlationId"] == body["correlationId"] and rows[0]["source"] == "TSP", rows
    assert rows[0]["state"] == "PENDING" and ISO_MS.match(rows[0]["createdAt"]), rows

    view = iss.card(card.id)
    assert [d["digitalCardId"] for d in view["digitalCards"]] == [dc], view

    # A retried request (same correlationId) gets the first answer and changes nothing.
    last = iss.last_outbox_id()
    r2 = iss.net.post("/network/v1/tokenizations", json=body)
    assert r2.status_code == 200 and r2.json() == a, r2.text
    # Even with other scores: the first answer.
    r3 = iss.net.post("/network/v1/tokenizations", json=dict(body, scores={"wallet": 1, "device": 1}))
    assert r3.status_code == 200 and r3.json() == a, r3.text
    assert iss.outbox(after=last) == []
    assert [d["digitalCardId"] for d in iss.card(card.id)["digitalCards"]] == [dc]


def test_green_by_card_reference(net_issuer):
    iss = net_issuer
    card = iss.register_card()
    a = iss.tokenize(card, "GREEN", by_ref=True)
    assert iss.dcard(a["digitalCardId"])["cardId"] == card.id
    # A cardId may carry an expiry, which is then checked.
    b = iss.tokenize({"cardId": card.id, "expiry": card.expiry}, "GREEN")
    assert b["digitalCardId"] != a["digitalCardId"]


# ---------------------------------------------------------------------------
# YELLOW, OTP, activation
# ---------------------------------------------------------------------------


def test_yellow_phone_mismatch_offers_methods(net_issuer):
    iss = net_issuer
    card = iss.register_card(phone="+33 6 12 34 56 78", email="jane@example.com")
    a = iss.tokenize(card, "YELLOW", phone="+33 7 99 99 99 99")
    assert a["reason"] == "PHONE_MISMATCH", a
    methods = a["idvMethods"]
    by_type = {m["type"]: m for m in methods}
    # From the issuer's registered contact data, masked; never the wallet's number.
    assert by_type["OTP_SMS"] == {"id": "otp-sms", "type": "OTP_SMS", "value": "*******5678"}, methods
    assert by_type["OTP_EMAIL"] == {"id": "otp-email", "type": "OTP_EMAIL", "value": "j***@example.com"}, methods
    # The default policy has no service number: CUSTOMER_SERVICE is not offered.
    assert "CUSTOMER_SERVICE" not in by_type, methods
    assert ISO_MS.match(a["stepUpExpiresAt"]), a
    assert "99999999" not in str(a)
    assert iss.operation(a["operationId"])["status"] == "PENDING"
    v = iss.dcard(a["digitalCardId"])
    assert v["state"] == "PENDING_IDV" and v["decision"] == "YELLOW", v
    assert v["decisionReason"] == "PHONE_MISMATCH", v


def test_yellow_email_mismatch(net_issuer):
    iss = net_issuer
    card = iss.register_card()
    a = iss.tokenize(card, "YELLOW", email="other@example.com")
    assert a["reason"] == "EMAIL_MISMATCH", a


def test_yellow_low_scores(net_issuer):
    iss = net_issuer
    card = iss.register_card()
    a = iss.tokenize(card, "YELLOW", wallet=3)
    assert a["reason"] == "LOW_WALLET_SCORE", a
    b = iss.tokenize(card, "YELLOW", wallet=5, device=2)
    assert b["reason"] == "LOW_DEVICE_SCORE", b


def test_yellow_methods_follow_policy(net_issuer):
    iss = net_issuer
    iss.set_policy({"idv": {"methods": ["ISSUER_APP", "OTP_EMAIL", "CUSTOMER_SERVICE"], "appLabel": "MyBank app",
                            "serviceNumber": "+33 1 00 00 00 00"}})
    card = iss.register_card()
    a = iss.yellow(card)
    assert [m["type"] for m in a["idvMethods"]] == ["ISSUER_APP", "OTP_EMAIL", "CUSTOMER_SERVICE"], a
    assert a["idvMethods"][0] == {"id": "issuer-app", "type": "ISSUER_APP", "value": "MyBank app"}, a
    assert a["idvMethods"][2]["value"] == "+33 1 00 00 00 00", a
    # A card with no contact data: no OTP method, customer service still offered.
    bare = iss.register_card(phone=None, email=None)
    b = iss.yellow(bare)
    assert "OTP_EMAIL" not in [m["type"] for m in b["idvMethods"]], b
    assert "CUSTOMER_SERVICE" in [m["type"] for m in b["idvMethods"]], b


def test_customer_service_only_with_a_number(net_issuer):
    """CUSTOMER_SERVICE is offered only at the number the issuer configured
    (issue 12: it was offered with value "" and the wallet had nothing to show).
    A YELLOW that leaves nothing the user could pass is RED NO_IDV_METHOD."""
    iss = net_issuer
    iss.set_policy({"idv": {"methods": ["OTP_SMS", "CUSTOMER_SERVICE"]}})
    card = iss.register_card()
    a = iss.yellow(card)
    assert [m["type"] for m in a["idvMethods"]] == ["OTP_SMS"], a
    bare = iss.register_card(phone=None, email=None)
    b = iss.tokenize(bare, "RED", wallet=3)
    assert b["reason"] == "NO_IDV_METHOD" and "idvMethods" not in b, b
    assert iss.dcard(b["digitalCardId"])["decisionReason"] == "NO_IDV_METHOD"
    iss.set_policy({"idv": {"methods": ["OTP_SMS", "CUSTOMER_SERVICE"], "serviceNumber": "+33 1 00 00 00 00"}})
    c = iss.yellow(bare)
    assert c["idvMethods"] == [{"id": "customer-service", "type": "CUSTOMER_SERVICE", "value": "+33 1 00 00 00 00"}], c


@pytest.mark.parametrize("type_", ["IDV_SUCCESS", "ACTIVATE", "IDV_SUCCEEDED"])
def test_yellow_otp_then_tsp_activation(net_issuer, type_):
    iss = net_issuer
    card = iss.register_card()
    before = iss.last_outbox_id()
    a = iss.yellow(card)
    dc, op = a["digitalCardId"], a["operationId"]
    assert summaries(rows_of(iss, dc, before)) == ["ISSUER DIGITIZE PENDING"]

    r = iss.otp(dc, "otp-sms", "482913")
    assert r.status_code == 202, r.text
    assert r.json() == {"status": "QUEUED", "methodId": "otp-sms", "target": "*******5678"}, r.text
    rows = rows_of(iss, dc, before)
    assert summaries(rows) == ["ISSUER DIGITIZE PENDING", "USER OTP"], rows
    assert rows[1]["methodId"] == "otp-sms", rows

    ev = iss.event(dc, type_, "TSP", "APPLIED")
    assert ev["state"] == "ACTIVE" and ev["digitalCardId"] == dc, ev
    assert OP_ID.match(ev["operationId"]), ev
    v = iss.dcard(dc)
    assert v["state"] == "ACTIVE" and ev["sequence"] == v["sequence"], (ev, v)
    assert iss.operation(op)["status"] == "SUCCESSFUL"
    rows = rows_of(iss, dc, before)
    assert summaries(rows)[2:] == ["ISSUER DIGITIZE SUCCESSFUL", "USER ACTIVATION"], rows
    assert rows[2]["operationId"] == op, rows  # the same DIGITIZE operation completes
    # The OTP can no longer be sent once the card left PENDING_IDV.
    assert_d1_error(iss.otp(dc), 409)


def test_yellow_issuer_resume_activates(net_issuer):
    iss = net_issuer
    card = iss.register_card()
    a = iss.yellow(card)
    dc = a["digitalCardId"]
    before = iss.last_outbox_id()
    op = iss.dcard_op_ok(dc, "resume")
    assert iss.state(dc) == "ACTIVE"
    assert iss.operation(a["operationId"])["status"] == "SUCCESSFUL"
    o = iss.operation(op)
    # The activation completes the DIGITIZE operation (the answer names it);
    # the contract leaves open whether a separate RESUME operation is made.
    assert o["status"] == "SUCCESSFUL", o
    assert (o["operation"] == "DIGITIZE" and op == a["operationId"]) or \
        (o["operation"] == "RESUME" and o["requestorType"] == "ISSUER"), o
    assert summaries(rows_of(iss, dc, before)) == ["ISSUER DIGITIZE SUCCESSFUL", "USER ACTIVATION"]


def test_otp_rate_limit(net_issuer):
    iss = net_issuer
    iss.set_policy({"otp": {"max": 2, "windowSeconds": 600}})
    card = iss.register_card()
    dc = iss.yellow(card)["digitalCardId"]
    other = iss.yellow(card)["digitalCardId"]
    assert iss.otp(dc, "otp-sms", "1111").status_code == 202
    assert iss.otp(dc, "otp-email", "2222").status_code == 202
    before = iss.last_outbox_id()
    r = iss.otp(dc, "otp-sms", "3333")
    assert_d1_error(r, 429, "RATE_LIMITED")
    assert int(r.headers["Retry-After"]) >= 1, r.headers
    assert rows_of(iss, dc, before) == []
    # The limit is per digital card.
    assert iss.otp(other, "otp-sms", "4444").status_code == 202


def test_idv_failed_keeps_session(net_issuer):
    iss = net_issuer
    card = iss.register_card()
    dc = iss.yellow(card)["digitalCardId"]
    before = iss.last_outbox_id()
    ev = iss.event(dc, "IDV_FAILED", "TSP", "APPLIED")
    assert ev["state"] == "PENDING_IDV", ev
    assert rows_of(iss, dc, before) == []  # owes nothing
    assert iss.otp(dc).status_code == 202  # the user may retry
    iss.event(dc, "IDV_SUCCESS", "TSP", "APPLIED")
    assert iss.state(dc) == "ACTIVE"


# ---------------------------------------------------------------------------
# YELLOW canceled by the end user (the wallet deletes the pending card)
# ---------------------------------------------------------------------------


def test_yellow_cancel_by_wallet_delete(net_issuer):
    iss = net_issuer
    iss.set_policy(SHORT_SESSION)
    card = iss.register_card()
    before = iss.last_outbox_id()
    a = iss.yellow(card)
    dc, op = a["digitalCardId"], a["operationId"]
    assert iss.otp(dc).status_code == 202

    ev = iss.event(dc, "DELETE", "WALLET", "APPLIED")
    assert ev["state"] == "DELETED", ev
    assert iss.state(dc) == "DELETED"
    assert iss.operation(op)["status"] == "FAILED"
    rows = rows_of(iss, dc, before)
    assert summaries(rows) == ["ISSUER DIGITIZE PENDING", "USER OTP", "ISSUER DIGITIZE FAILED CANCELED_BY_USER",
                               "USER CANCELLATION"], rows
    assert rows[2]["source"] == "WALLET" and rows[2]["operationId"] == op, rows
    # The pending OTP delivery is cancelled.
    assert rows[1]["state"] != "PENDING", rows

    # No more OTP, and the step-up timers were stopped: no reminder, no expiry.
    assert_d1_error(iss.otp(dc), 409)
    time.sleep(3.5)
    later = rows_of(iss, dc, before)
    assert summaries(later) == summaries(rows), later
    assert iss.state(dc) == "DELETED"

    # Re-enrolment: the same card can be tokenized again.
    again = iss.tokenize(card, "GREEN")
    assert again["digitalCardId"] != dc
    assert iss.state(again["digitalCardId"]) == "ACTIVE"


def test_yellow_cancel_without_cancellation_message(net_issuer):
    iss = net_issuer
    iss.set_policy({"notifyCancellation": False})
    card = iss.register_card()
    dc = iss.yellow(card)["digitalCardId"]
    before = iss.last_outbox_id()
    iss.event(dc, "DELETE_FROM_APP", "WALLET", "APPLIED")
    assert summaries(rows_of(iss, dc, before)) == ["ISSUER DIGITIZE FAILED CANCELED_BY_USER"]


def test_yellow_cancel_by_tsp_and_by_issuer(net_issuer):
    iss = net_issuer
    card = iss.register_card()
    dc1 = iss.yellow(card)["digitalCardId"]
    before = iss.last_outbox_id()
    iss.event(dc1, "DELETE", "TSP", "APPLIED")
    rows = rows_of(iss, dc1, before)
    assert summaries(rows)[0] == "ISSUER DIGITIZE FAILED CANCELED_BY_USER" and rows[0]["source"] == "TSP", rows

    dc2 = iss.yellow(card)["digitalCardId"]
    before = iss.last_outbox_id()
    iss.dcard_op_ok(dc2, "delete")
    rows = rows_of(iss, dc2, before)
    assert summaries(rows) == ["ISSUER DIGITIZE FAILED CANCELED_BY_ISSUER"], rows
    assert rows[0]["source"] == "ISSUER", rows


# ---------------------------------------------------------------------------
# YELLOW left unfinished: reminders, then the session expires
# ---------------------------------------------------------------------------


def test_yellow_expiry(net_issuer):
    iss = net_issuer
    pol = iss.set_policy(SHORT_SESSION)
    assert pol["stepUp"]["sessionSeconds"] == 3, pol
    card = iss.register_card()
    before = iss.last_outbox_id()
    plain = iss.yellow(card)
    failed = iss.yellow(card)
    # An ID&V attempt failed on the second one: its expiry reports IDV_FAILED.
    iss.event(failed["digitalCardId"], "IDV_FAILED", "TSP", "APPLIED")

    for a in (plain, failed):
        wait_state(iss, a["digitalCardId"], "DELETED")
    time.sleep(1.0)  # nothing more after the expiry

    rows = rows_of(iss, plain["digitalCardId"], before)
    assert summaries(rows) == ["ISSUER DIGITIZE PENDING", "USER REMINDER", "USER REMINDER",
                               "ISSUER DIGITIZE FAILED STEP_UP_EXPIRED"], rows
    assert rows[3]["operationId"] == plain["operationId"], rows
    assert iss.operation(plain["operationId"])["status"] == "FAILED"
    rows2 = rows_of(iss, failed["digitalCardId"], before)
    assert summaries(rows2)[-1] == "ISSUER DIGITIZE FAILED IDV_FAILED", rows2
    assert summaries(rows2).count("USER REMINDER") == 2, rows2
    # The card may be tokenized again.
    iss.tokenize(card, "GREEN")


def test_expiry_does_not_touch_an_activated_card(net_issuer):
    iss = net_issuer
    iss.set_policy({"stepUp": {"firstReminderAfterSeconds": 1, "reminderEverySeconds": 1, "maxReminders": 1,
                               "sessionSeconds": 1}})
    card = iss.register_card()
    dc = iss.yellow(card)["digitalCardId"]
    iss.event(dc, "ACTIVATE", "TSP", "APPLIED")
    before = iss.last_outbox_id()
    time.sleep(2.0)
    assert iss.state(dc) == "ACTIVE"
    assert rows_of(iss, dc, before) == []


def test_restart_during_step_up_session(tokend_factory):
    srv = tokend_factory.start(settings=NET_SETTINGS)
    iss = NetIssuer(srv)
    iss.set_policy({"stepUp": {"firstReminderAfterSeconds": 1, "reminderEverySeconds": 1, "maxReminders": 2,
                               "sessionSeconds": 4}})
    card = iss.register_card()
    active = iss.green(card)
    first = iss.event_raw(active, "SUSPEND", "WALLET", event_id="ev-before-restart")
    assert first.status_code == 200 and first.json()["result"] == "APPLIED", first.text
    a = iss.yellow(card)
    dc = a["digitalCardId"]
    tdlib.wait_until(lambda: "USER REMINDER" in summaries(iss.outbox(dc=dc)), timeout=15, interval=0.1,
                     what="the first reminder")
    assert srv.stop() == 0, srv.tail()
    srv.exit_checked = True

    srv2 = tokend_factory.restart(srv)
    iss.bind(srv2)
    assert iss.state(dc) in ("PENDING_IDV", "DELETED")
    wait_state(iss, dc, "DELETED")
    time.sleep(1.5)  # a second expiry or reminder would show by now
    s = summaries(iss.outbox(dc=dc))
    assert s.count("ISSUER DIGITIZE FAILED STEP_UP_EXPIRED") == 1, s
    assert s.count("USER REMINDER") == 2, s
    assert s[-1] == "ISSUER DIGITIZE FAILED STEP_UP_EXPIRED", s
    # Events are still deduplicated across the restart.
    again = iss.event_raw(active, "SUSPEND", "WALLET", event_id="ev-before-restart")
    assert again.status_code == 200 and again.content == first.content, again.text


# ---------------------------------------------------------------------------
# RED, for each rule
# ---------------------------------------------------------------------------


def assert_red(iss, a, reason, card_known=True, before=0):
    assert a["decision"] == "RED" and a["reason"] == reason, a
    assert "idvMethods" not in a and "stepUpExpiresAt" not in a, a
    dc = a["digitalCardId"]
    assert iss.operation(a["operationId"])["status"] == "FAILED"
    v = iss.dcard(dc)
    assert v["state"] == "DECLINED" and v["decision"] == "RED" and v["decisionReason"] == reason, v
    rows = rows_of(iss, dc, before)
    if card_known:
        assert summaries(rows) == ["ISSUER DIGITIZE FAILED DECLINED"], rows
    else:
        assert rows == [], rows
    # No lifecycle call can use a declined record.
    assert_d1_error(iss.dcard_op(dc, "suspend"), 409, "NOT_ALLOWED_IN_STATE")
    assert iss.event(dc, "ACTIVATE", "TSP")["result"] == "IGNORED"
    assert iss.state(dc) == "DECLINED"
    # The Token API's cancel on a declined card answers INVALID.
    r = iss.iss.put(f"/tokens/{dc}/cancel")
    assert r.status_code == 200 and r.json()["result"]["status"] == "INVALID", r.text


def test_red_unknown_card(net_issuer):
    iss = net_issuer
    before = iss.last_outbox_id()
    a = iss.tokenize({"pan": new_pan(), "expiry": "1230"})
    assert_red(iss, a, "CARD_UNKNOWN", card_known=False, before=before)
    b = iss.tokenize({"cardId": "no-such-card"})
    assert_red(iss, b, "CARD_UNKNOWN", card_known=False, before=before)


def test_red_suspended_card(net_issuer):
    iss = net_issuer
    card = iss.register_card(state="SUSPENDED")
    before = iss.last_outbox_id()
    assert_red(iss, iss.tokenize(card), "CARD_SUSPENDED", before=before)
    other = iss.register_card()
    r = iss.card_op(other.id, "suspend")
    assert r.status_code == 200, r.text
    before = iss.last_outbox_id()
    assert_red(iss, iss.tokenize(other), "CARD_SUSPENDED", before=before)


def test_red_deleted_card(net_issuer):
    iss = net_issuer
    card = iss.register_card()
    assert iss.card_op(card.id, "delete").status_code == 200
    before = iss.last_outbox_id()
    assert_red(iss, iss.tokenize(card, by_ref=True), "CARD_DELETED", before=before)


def test_red_expired_card(net_issuer):
    iss = net_issuer
    card = iss.register_card(expiry="0120")
    before = iss.last_outbox_id()
    assert_red(iss, iss.tokenize(card), "CARD_EXPIRED", before=before)


def test_red_too_many_tokens(net_issuer):
    iss = net_issuer
    iss.set_policy({"decision": {"maxActiveTokens": 2}})
    card = iss.register_card()
    first = iss.green(card)
    iss.yellow(card)  # a pending one counts too
    before = iss.last_outbox_id()
    assert_red(iss, iss.tokenize(card), "TOO_MANY_TOKENS", before=before)
    # A deleted one no longer counts.
    iss.dcard_op_ok(first, "delete")
    iss.tokenize(card, "GREEN")


def test_red_too_many_attempts(net_issuer):
    iss = net_issuer
    iss.set_policy({"decision": {"maxAttemptsPerHour": 2}})
    card = iss.register_card()
    iss.tokenize(card, "GREEN")
    iss.tokenize(card, "RED", wallet=1)  # a declined attempt is an attempt
    before = iss.last_outbox_id()
    assert_red(iss, iss.tokenize(card), "TOO_MANY_ATTEMPTS", before=before)


def test_red_low_wallet_score(net_issuer):
    iss = net_issuer
    card = iss.register_card()
    before = iss.last_outbox_id()
    assert_red(iss, iss.tokenize(card, wallet=1), "LOW_WALLET_SCORE", before=before)
    before = iss.last_outbox_id()
    assert_red(iss, iss.tokenize(card, device=1), "LOW_DEVICE_SCORE", before=before)


def test_red_phone_mismatch_by_policy(net_issuer):
    iss = net_issuer
    iss.set_policy({"decision": {"phoneMismatch": "RED"}})
    card = iss.register_card()
    a = iss.tokenize(card, "RED", phone="+1 555 000 1111")
    assert a["reason"] == "PHONE_MISMATCH", a


def test_red_rules_in_order(net_issuer):
    """The most severe verdict with the first rule that gave it."""
    iss = net_issuer
    card = iss.register_card(state="SUSPENDED", expiry="0120")
    a = iss.tokenize(card, wallet=1, phone="+1 555 000 1111")
    assert a["decision"] == "RED" and a["reason"] == "CARD_SUSPENDED", a


# ---------------------------------------------------------------------------
# Enrollment failure: the wallet deletes after enrolment
# ---------------------------------------------------------------------------


def test_enrollment_failure_delete_from_app(net_issuer):
    iss = net_issuer
    card = iss.register_card()
    dc = iss.green(card)
    before = iss.last_outbox_id()
    ev = iss.event(dc, "DELETE_FROM_APP", "WALLET", "APPLIED")
    assert ev["state"] == "DELETED", ev
    rows = rows_of(iss, dc, before)
    assert summaries(rows) == ["ISSUER DELETE_FROM_APP SUCCESSFUL", "USER DELETION"], rows
    assert rows[0]["source"] == "WALLET" and rows[0]["sequence"] == ev["sequence"], rows
    o = iss.operation(ev["operationId"])
    assert o["operation"] == "DELETE_FROM_APP" and o["status"] == "SUCCESSFUL" and o["requestorType"] == "USER", o
    # Re-enrolment.
    assert iss.tokenize(card, "GREEN")["digitalCardId"] != dc


def test_enrollment_failure_delete_by_tsp(net_issuer):
    iss = net_issuer
    card = iss.register_card()
    dc = iss.green(card)
    before = iss.last_outbox_id()
    ev = iss.event(dc, "DELETE", "TSP", "APPLIED")
    rows = rows_of(iss, dc, before)
    assert summaries(rows) == ["ISSUER DELETE SUCCESSFUL", "USER DELETION"], rows
    assert rows[0]["source"] == "TSP", rows
    assert iss.operation(ev["operationId"])["requestorType"] == "TSP"


def test_token_expire_event(net_issuer):
    iss = net_issuer
    card = iss.register_card()
    dc = iss.green(card)
    assert iss.event(dc, "EXPIRE", "TSP", "APPLIED")["state"] == "EXPIRED"
    # Only a delete still applies.
    assert iss.event(dc, "RESUME", "TSP")["result"] == "IGNORED"
    assert_d1_error(iss.dcard_op(dc, "suspend"), 409, "NOT_ALLOWED_IN_STATE")
    iss.dcard_op_ok(dc, "delete")
    assert iss.state(dc) == "DELETED"
