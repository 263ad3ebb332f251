"""test_network_secrets.py — PAN and OTP never appear in any answer, in
tokend's log, in the outbox listing, or in clear in the store
(docs/network.md §Conventions, Secrets). Every face is driven with known PANs
and OTPs (good requests and refused ones), then everything tokend said and
wrote is searched for them. And every face that takes a secret (PAN, CVV,
OTP, delivery secrets, credentials, API keys, the admin key, consent codes)
refuses a bad value of it without quoting it (docs/api.md, Errors)."""

import base64
import glob
import time

import tdlib
from conftest import NET_SETTINGS, NetIssuer, luhn_complete, new_pan, read_outbox, unique
from tdlib import new_member, request_body, store_request


class Recorder:
    """Keeps every response body and header of the clients it wraps (and the
    request line, unless answers_only: a path may carry the secret sent)."""

    def __init__(self, answers_only=False):
        self.seen = []
        self.answers_only = answers_only

    def wrap(self, client):
        orig = client.request

        def request(method, path, **kw):
            r = orig(method, path, **kw)
            line = "" if self.answers_only else f"{method} {path} -> "
            self.seen.append(f"{line}{r.status_code}\n{dict(r.headers)}\n{r.text}")
            return r

        client.request = request
        return client

    def text(self):
        return "\n".join(self.seen)


def test_pan_and_otp_never_shown(tokend_factory):
    srv = tokend_factory.start(settings=dict(NET_SETTINGS, debug="true"))
    rec = Recorder()
    iss = NetIssuer(srv)
    for c in (iss.iss, iss.net, iss.adm):
        rec.wrap(c)
    iss.set_policy({"stepUp": {"firstReminderAfterSeconds": 1, "reminderEverySeconds": 1, "maxReminders": 1,
                               "sessionSeconds": 60}})

    pan = luhn_complete("4970101234567" + "89")  # 16 digits, fixed so it is easy to spot
    secret_pans = [pan]
    card = iss.register_card(pan=pan, phone="+33 6 12 34 56 78", email="jane.doe@example.com")
    # Refused registrations carry PANs too.
    bad_luhn = pan[:-1] + str((int(pan[-1]) + 1) % 10)
    secret_pans.append(bad_luhn)
    iss.iss.post(iss.path("/cards"), json={"cardId": unique("c"), "consumerId": "c", "pan": bad_luhn,
                                           "expiry": "1230"})
    iss.iss.post(iss.path("/cards"), json={"cardId": unique("c"), "consumerId": "c", "pan": pan, "expiry": "1230"})
    iss.iss.post(iss.path("/cards"), json={"cardId": unique("c"), "consumerId": "c", "pan": pan + "9",
                                           "expiry": "1230", "extra": 1})

    # With an Idempotency-Key (the stored answer must not hold the PAN either).
    idem_pan = new_pan()
    secret_pans.append(idem_pan)
    for _ in range(2):
        r = iss.iss.post(iss.path("/cards"), json={"cardId": "idem-card", "consumerId": "c", "pan": idem_pan,
                                                   "expiry": "1230"}, headers={"Idempotency-Key": "idem-1"})
        assert r.status_code == 201, r.text
    iss.tokenize({"pan": idem_pan, "expiry": "1230"}, "GREEN", correlation_id="corr-idem")

    # Tokenizations: GREEN, YELLOW, RED for an unknown PAN, and a malformed one.
    iss.tokenize(card, "GREEN")
    y = iss.yellow(card, phone="+44 7700 900123")
    dc = y["digitalCardId"]
    unknown = new_pan()
    secret_pans.append(unknown)
    iss.tokenize({"pan": unknown, "expiry": "1230"}, "RED")
    iss.net.post("/network/v1/tokenizations", json=iss.tokenize_body({"pan": pan, "expiry": "1230", "cvv": "123"}))
    iss.net.post("/network/v1/tokenizations", json=iss.tokenize_body({"pan": pan + "x", "expiry": "1230"}))

    # OTPs: delivered, refused for format, refused for method, refused for rate.
    otps = ["Zq7Xw91K", "83710462", "55501234"]
    r = iss.otp(dc, "otp-sms", otps[0])
    assert r.status_code == 202, r.text
    r = iss.otp(dc, "otp-email", otps[1])
    assert r.status_code == 202, r.text
    iss.otp(dc, "customer-service", otps[2])
    iss.otp(dc, "otp-sms", "Zq7Xw91K!!")
    r = iss.otp(dc, "otp-sms", otps[2])
    assert r.status_code == 202, r.text
    r = iss.otp(dc, "otp-sms", "44448888")
    otps.append("44448888")
    assert r.status_code == 429 and r.headers.get("Retry-After"), r.text

    # The other faces.
    iss.iss.get(iss.path(f"/cards/{card.id}"))
    iss.iss.get(iss.path(f"/cards/{card.id}/digitalCards"))
    iss.iss.get(iss.path(f"/digitalCards/{dc}"))
    iss.iss.get(f"/tokens/{dc}")
    iss.iss.get("/tokens", params={"page.limit": "50", "type": "CARD"})
    h = {"x-correlation-id": "corr-1", "x-issuer-id": iss.id}
    iss.iss.post("/igwapi/v2.0/getCardInfo", json={"issuerCardRefId": card.id}, headers=h)
    iss.iss.post("/igwapi/v2.0/getTokenInfo", json={"issuerCardRefId": card.id, "virtualCardId": dc}, headers=h)
    iss.event(dc, "IDV_FAILED", "TSP")
    time.sleep(1.5)  # a reminder is owed too
    iss.event(dc, "DELETE", "WALLET", "APPLIED")
    iss.iss.put(f"/tokens/{dc}/cancel")

    outbox = read_outbox(srv, iss.id)
    assert any(o["message"] == "OTP" for o in outbox), outbox
    assert any(o["message"] == "REMINDER" for o in outbox), outbox
    outbox_text = str(outbox)
    outbox_raw = iss.adm.get(f"/admin/v1/issuers/{iss.id}/outbox").text
    answers = rec.text()
    assert srv.stop() == 0
    srv.exit_checked = True
    log = srv.log_text()

    store = b""
    for f in glob.glob(srv.db_path + "*"):
        with open(f, "rb") as fh:
            store += fh.read()

    for p in secret_pans:
        for where, text in (("answers", answers), ("log", log), ("outbox", outbox_text + outbox_raw)):
            assert p not in text, f"a PAN appears in the {where}"
        assert p.encode() not in store, "a PAN is stored in clear"
    for otp in otps:
        for where, text in (("answers", answers), ("log", log), ("outbox", outbox_text + outbox_raw)):
            assert otp not in text, f"an OTP appears in the {where}"
        assert otp.encode() not in store, "an OTP is stored in clear"
    # Contact data is stored sealed, and shown masked.
    assert b"jane.doe@example.com" not in store and b"12 34 56 78" not in store, "a contact is stored in clear"
    assert "jane.doe@example.com" not in answers and "12 34 56 78" not in answers
    assert "612345678" not in answers
    # The log has lines for these requests (so the search above meant something).
    assert "/network/v1/digitalCards/" in log or "/network/v1/" in log, log[-2000:]


def test_contacts_stored_in_clear_are_sealed_at_start(tokend_factory):
    """A card an older tokend wrote (phone and email in clear, no seal) is
    sealed at the next start, and its contact still decides and shows."""
    srv = tokend_factory.start(settings=NET_SETTINGS)
    iss = NetIssuer(srv)
    card = iss.register_card(phone="+33 6 12 34 56 78", email="old.style@example.com")
    assert srv.stop() == 0
    tdlib.write_sql(srv.db_path, "UPDATE cards SET phone = '+33 6 12 34 56 78', email = 'old.style@example.com', "
                           f"contact_sealed = substr(contact_sealed, 1, 0) WHERE card_id = '{card.id}'")
    srv = tokend_factory.restart(srv)
    assert any(r.get("event") == "contacts_sealed" for r in srv.log_records()), srv.tail()
    row = tdlib.sql(srv.db_path, f"SELECT phone, email, length(contact_sealed) AS n FROM cards "
                                 f"WHERE card_id = '{card.id}'")[0]
    assert row["phone"] == "" and row["email"] == "" and row["n"] > 0, row
    iss.bind(srv)
    view = iss.card(card.id)
    assert view["phone"] != "" and "12 34 56 78" not in view["phone"], view  # masked, from the seal
    assert "old.style@example.com" not in str(view) and view["email"], view
    iss.tokenize(card, "GREEN", phone="+33 6 12 34 56 78")
    iss.yellow(card, phone="+44 7700 900123")  # compared with the registered phone, opened from the seal


def test_bad_secret_values_never_echoed(tokend_factory):
    """Every face that takes a secret, sent bad values of it (wrong rule, wrong
    type, too long, inside a body the JSON parser refuses, in a path): the
    refusal names the field and the rule, never the value — in no answer and
    no log line. The values are distinctive so that a quote of any part shows."""
    srv = tokend_factory.start(settings=dict(NET_SETTINGS, debug="true"))
    rec = Recorder(answers_only=True)
    iss = NetIssuer(srv)
    for c in (iss.iss, iss.net, iss.adm):
        rec.wrap(c)
    anon = rec.wrap(tdlib.Client(srv, capture=False))
    secrets = []

    def bad(value):
        secrets.append(value)
        return value

    def raw(client, method, path, text):
        return client.request(method, path, data=text.encode(), headers={"Content-Type": "application/json"})

    # PAN: the Issuer API's registration and the network's tokenization.
    good_pan = luhn_complete("49701099887766" + "5")
    bad_luhn = bad(good_pan[:-1] + str((int(good_pan[-1]) + 1) % 10))
    letters = bad("4970109988776X55")
    long_pan = bad("4970109988776655" * 5)
    for pan in (bad_luhn, letters, long_pan):
        r = iss.iss.post(iss.path("/cards"), json={"cardId": unique("c"), "consumerId": "c", "pan": pan,
                                                   "expiry": "1230"})
        assert r.status_code == 400 and "body.pan" in r.text, r.text
        r = iss.net.post("/network/v1/tokenizations", json=iss.tokenize_body({"pan": pan, "expiry": "1230"}))
        assert r.status_code == 400 and "card.pan" in r.text, r.text
    secrets.append(bad("49701099887766123"))  # a number where a string goes, and in bodies the parser refuses
    r = iss.iss.post(iss.path("/cards"), json={"cardId": "c", "consumerId": "c", "pan": 49701099887766123,
                                               "expiry": "1230"})
    assert r.status_code == 400, r.text
    r = raw(iss.iss, "POST", iss.path("/cards"), '{"cardId":"c","pan" "49701099887766123"}')
    assert r.status_code == 400, r.text
    r = raw(iss.net, "POST", "/network/v1/tokenizations", '{"card":{"pan":4970109988776655x}}')
    assert r.status_code == 400, r.text
    secrets.append("4970109988776655")
    # CVV: not a field tokend takes; named, never shown.
    cvv = bad("8317")
    r = iss.net.post("/network/v1/tokenizations", json=iss.tokenize_body({"pan": good_pan, "expiry": "1230",
                                                                          "cvv": cvv}))
    assert r.status_code == 400 and "cvv" in r.text, r.text

    # OTP: wrong characters, too long, a number, a refused body.
    for otp in (bad("83!7104"), bad("8317046299551"), bad("")):
        r = iss.otp("dc_nope", "otp-sms", otp)
        assert r.status_code == 400 and "otp" in r.text, r.text
    r = iss.net.post("/network/v1/digitalCards/dc_nope/otp", json={"methodId": "otp-sms", "otp": 73910462})
    assert r.status_code == 400, r.text
    secrets.append("73910462")
    r = raw(iss.net, "POST", "/network/v1/digitalCards/dc_nope/otp", '{"methodId":"otp-sms","otp" "73910462"}')
    assert r.status_code == 400, r.text

    # Delivery secrets (bearer token, OAuth2 client secret, webhook secret).
    base = {"profile": "d1", "baseUrl": "http://127.0.0.1:9/issuer", "timeoutMs": 2000}
    for auth in ({"type": "bearer", "token": bad("Tk-9zQ8 with-space")},
                 {"type": "oauth2", "clientId": "cid", "clientSecret": bad("Cs\u00e9-7y6x5w4"),
                  "tokenUrl": "http://127.0.0.1:9/token"},
                 {"type": "webhook", "secret": bad("whsec_!!notbase64!!Qw7")},
                 {"type": "bearer", "token": bad("Lz3" * 200)}):
        r = iss.adm.put(f"/admin/v1/issuers/{iss.id}/delivery", json=dict(base, auth=auth))
        assert r.status_code == 400 and "body.auth" in r.text, r.text
    r = raw(iss.adm, "PUT", f"/admin/v1/issuers/{iss.id}/delivery",
            '{"profile":"d1","auth":{"type":"bearer","token" "Tk-5RwQpL2"}}')
    assert r.status_code == 400, r.text
    secrets.append("Tk-5RwQpL2")

    # Token.io: credentials in an authorization, API keys, the admin key.
    bank, tpp = new_member(srv, "bank"), new_member(srv, "tpp")
    tc = rec.wrap(tpp.client())
    rq = store_request(tc, request_body(tpp.id, bank.id))
    r = tc.post(f"/token-requests/{rq}/authorization", json={"credentials": {"password": bad("Pw-hunter2-Qz")}})
    assert r.status_code == 501, r.text
    r = raw(tc, "POST", f"/token-requests/{rq}/authorization", '{"credentials":{"password" "Pw-s3cret-Xy"}}')
    assert r.status_code == 400, r.text
    secrets.append("Pw-s3cret-Xy")
    key = bad("tdk_" + "Zz9" * 14)
    for h in ("Bearer " + key, "Basic " + base64.b64encode(f"{tpp.id}:{key}".encode()).decode()):
        r = anon.post("/token-requests", json={}, headers={"Authorization": h})
        assert r.status_code == 401, r.text
    admin_guess = bad("adm-" + "Q7" * 20)
    r = anon.post("/admin/v1/members", json={"displayName": "x"}, headers={"Authorization": "Bearer " + admin_guess})
    assert r.status_code == 401, r.text

    # Consent codes: a real one with a method its path does not take, under a
    # path that does not exist, and a bad one.
    # (the link is the answer meant to carry it: asked for unrecorded)
    link = tpp.client().post(f"/token-requests/{rq}/authorization").json()["redirectUrl"]
    code = link.rsplit("/consent/", 1)[1]
    secrets.append(code.rsplit(".", 1)[1])
    for method, path in (("PUT", f"/consent/{code}"), ("DELETE", f"/consent/{code}"),
                         ("GET", f"/consent/{code}/more"), ("GET", f"/consents/{code}")):
        r = anon.request(method, path)
        assert r.status_code in (404, 405), (method, path, r.status_code, r.text)
    wrong = code.rsplit(".", 1)[0] + "." + bad("Cq" * 22)
    assert anon.get(f"/consent/{wrong}").status_code == 404
    # A PAN typed into a path that does not exist.
    pan_path = bad(luhn_complete("49701055554444" + "3"))
    r = iss.net.get(f"/network/v1/cards/{pan_path}")
    assert r.status_code == 404, r.text

    answers = rec.text()
    assert srv.stop() == 0
    srv.exit_checked = True
    log = srv.log_text()
    for s in secrets:
        if not s:
            continue
        assert s not in answers, f"a secret value appears in an answer: {s!r}"
        assert s not in log, f"a secret value appears in the log: {s!r}"
    assert "/network/v1/" in log and "/consent/" in log  # the requests were logged (by route)
