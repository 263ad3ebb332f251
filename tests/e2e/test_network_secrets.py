"""test_network_secrets.py — PAN and OTP never appear in any answer, in
tokend's log, in the outbox listing, or in clear in the store
(docs/network.md §Conventions, Secrets). Every face is driven with known PANs
and OTPs (good requests and refused ones), then everything tokend said and
wrote is searched for them."""

import glob
import time

from conftest import NET_SETTINGS, NetIssuer, luhn_complete, new_pan, read_outbox, unique


class Recorder:
    """Keeps every response body and header of the clients it wraps."""

    def __init__(self):
        self.seen = []

    def wrap(self, client):
        orig = client.request

        def request(method, path, **kw):
            r = orig(method, path, **kw)
            self.seen.append(f"{method} {path} -> {r.status_code}\n{dict(r.headers)}\n{r.text}")
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
    # Contact data is shown masked.
    assert "jane.doe@example.com" not in answers and "12 34 56 78" not in answers
    assert "612345678" not in answers
    # The log has lines for these requests (so the search above meant something).
    assert "/network/v1/digitalCards/" in log or "/network/v1/" in log, log[-2000:]
