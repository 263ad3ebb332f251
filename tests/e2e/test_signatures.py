"""test_signatures.py — the ENDORSED and CANCELED signatures on real tokens,
verified independently with Node's built-in crypto (sigcheck.js: its own
canonical JSON writer, Ed25519 verify, SHA-256 key ids) against the public keys
tokend publishes at GET /member/{memberId}/keys. Also the member key API."""

import json
import os
import subprocess

from tdlib import (E2E_DIR, assert_tokenio_error, consent_flow, get_token, member_keys, node, signatures,
                   standing_order_body, transfer_body)

SIGCHECK = os.path.join(E2E_DIR, "sigcheck.js")

# Exercises the canonical form: bytewise key order, escapes, non-ASCII, U+2028,
# '/' unescaped, control characters (upper-case \u00XX).
TRICKY = 'Zahlung f\u00fcr "M\u00fcller" \\ a/b \n\t\u0001\u001f \u2028 \U0001F600 \uff01'


def keys_by_level(client, member_id):
    keys = member_keys(client, member_id)
    for k in keys:
        assert set(k) >= {"id", "keyId", "keyAlgorithm", "algorithm", "level", "publicKey"}, k
        assert k["id"] == k["keyId"] and k["keyAlgorithm"] == k["algorithm"] == "ED25519", k
    by_level = {k["level"]: k for k in keys}
    assert set(by_level) == {"LOW", "STANDARD", "PRIVILEGED"} and len(keys) == 3, keys
    return by_level


def verify(checks, keys=()):
    return node(SIGCHECK, {"keys": list(keys), "checks": checks})


def check_signature(payload, sig, suffix, key, expect_member):
    """The signature names its key and member, and verifies over exactly
    canonical(payload) + "." + suffix with that key — and not with the other
    suffix, another key, or a changed payload."""
    assert set(sig) == {"keyId", "memberId", "signature"}, sig
    assert sig["memberId"] == expect_member and sig["keyId"] == key["keyId"], (sig, key)
    other_suffix = {"endorsed": "cancelled", "cancelled": "endorsed"}[suffix]
    tampered = json.loads(json.dumps(payload))
    tampered["refId"] = payload.get("refId", "") + "x"
    out = verify([
        {"payload": payload, "suffix": suffix, "signature": sig["signature"], "publicKey": key["publicKey"]},
        {"payload": payload, "suffix": other_suffix, "signature": sig["signature"], "publicKey": key["publicKey"]},
        {"payload": tampered, "suffix": suffix, "signature": sig["signature"], "publicKey": key["publicKey"]},
    ], keys=[key["publicKey"]])
    assert out["keyIds"] == [key["keyId"]], (out["keyIds"], key)
    assert [r["valid"] for r in out["results"]] == [True, False, False], out
    return out["results"][0]["canonical"]


def test_key_ids_are_derived_from_the_public_keys(tokend, bank, tpp):
    for m in (bank, tpp):
        keys = member_keys(tpp.client(), m.id)
        out = verify([], keys=[k["publicKey"] for k in keys])
        assert out["keyIds"] == [k["keyId"] for k in keys]


def test_endorsed_and_canceled_signatures_of_an_access_token(tokend, bank, tpp):
    tc = tpp.client("LOW")  # access tokens can be canceled with a LOW key
    flow = consent_flow(tpp.client(), tpp, bank, kind="access", accounts=("a:1", "a:2"),
                        description=TRICKY, actingAs={"displayName": "\u00c9tude \U0001F600", "refId": "r-1"})
    token = get_token(tc, flow.token_id)
    payload = token["payload"]
    assert payload["description"] == TRICKY
    bank_keys = keys_by_level(tc, bank.id)
    tpp_keys = keys_by_level(tc, tpp.id)

    [endorsed] = signatures(token, "ENDORSED")
    canonical = check_signature(payload, endorsed, "endorsed", bank_keys["STANDARD"], bank.id)
    assert "\\u0001\\u001F" in canonical and "\u2028" in canonical and "a/b" in canonical
    assert flow.result["signature"] == endorsed
    # Not by any other key of the bank.
    for level in ("LOW", "PRIVILEGED"):
        out = verify([{"payload": payload, "suffix": "endorsed", "signature": endorsed["signature"],
                       "publicKey": bank_keys[level]["publicKey"]}])
        assert out["results"][0]["valid"] is False

    r = tc.put(f"/tokens/{flow.token_id}/cancel")
    assert r.status_code == 200 and r.json()["result"]["status"] == "SUCCESS", r.text
    canceled = r.json()["result"]["token"]
    assert canceled["payload"] == payload
    [cancel_sig] = signatures(canceled, "CANCELED")
    # By the canceller (the TPP), with its key at its API key's level (LOW).
    check_signature(payload, cancel_sig, "cancelled", tpp_keys["LOW"], tpp.id)
    assert signatures(canceled, "ENDORSED") == [endorsed]


def test_canceled_signature_uses_the_callers_key_level(tokend, bank, tpp):
    """The CANCELED signature is made with the canceller's key of its API key's
    level: the bank with PRIVILEGED on a transfer, the TPP with STANDARD on a
    standing order; the payloads (nulls in the destinations included) verify."""
    tc = tpp.client()
    bank_keys = keys_by_level(tc, bank.id)
    tpp_keys = keys_by_level(tc, tpp.id)

    flow = consent_flow(tc, tpp, bank, kind="transfer", body=transfer_body("a:dst-1"), view_page=False)
    token = get_token(tc, flow.token_id)
    dest = token["payload"]["transfer"]["instructions"]["transferDestinations"][0]
    assert dest["sepa"] is None  # the null members are served, and not signed
    canonical = check_signature(token["payload"], signatures(token, "ENDORSED")[0], "endorsed",
                                bank_keys["STANDARD"], bank.id)
    assert "null" not in canonical
    r = bank.client("PRIVILEGED", basic=True).put(f"/tokens/{flow.token_id}/cancel")
    assert r.json()["result"]["status"] == "SUCCESS", r.text
    check_signature(token["payload"], signatures(r.json()["result"]["token"], "CANCELED")[0], "cancelled",
                    bank_keys["PRIVILEGED"], bank.id)

    flow = consent_flow(tc, tpp, bank, kind="standing_order", body=standing_order_body(), view_page=False)
    token = get_token(tc, flow.token_id)
    check_signature(token["payload"], signatures(token, "ENDORSED")[0], "endorsed", bank_keys["STANDARD"], bank.id)
    r = tpp.client("STANDARD").put(f"/tokens/{flow.token_id}/cancel")
    assert r.json()["result"]["status"] == "SUCCESS", r.text
    check_signature(token["payload"], signatures(r.json()["result"]["token"], "CANCELED")[0], "cancelled",
                    tpp_keys["STANDARD"], tpp.id)


def test_repeat_cancel_keeps_the_first_signature(tokend, bank, tpp):
    """A repeat cancel by the other party, at another level, returns the first
    CANCELED signature: it is not re-signed with the new caller's key."""
    flow = consent_flow(tpp.client(), tpp, bank, kind="access", view_page=False)
    first = tpp.client("STANDARD").put(f"/tokens/{flow.token_id}/cancel").json()["result"]
    again = bank.client("PRIVILEGED").put(f"/tokens/{flow.token_id}/cancel").json()["result"]
    assert again == first
    [sig] = signatures(again["token"], "CANCELED")
    check_signature(first["token"]["payload"], sig, "cancelled", keys_by_level(tpp.client(), tpp.id)["STANDARD"],
                    tpp.id)


def _generate_ed25519():
    code = ("const c=require('crypto');const {publicKey}=c.generateKeyPairSync('ed25519');"
            "const raw=publicKey.export({format:'der',type:'spki'}).subarray(12);"
            "process.stdout.write(JSON.stringify({raw:raw.toString('base64url'),"
            "pem:publicKey.export({format:'pem',type:'spki'})}))")
    p = subprocess.run(["node", "-e", code], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(p.stdout)


def test_member_submitted_keys(tokend, bank, tpp):
    """POST /member/{id}/keys (raw base64url or PEM), GET one, DELETE; tokend's
    own signing keys cannot be deleted; a member manages only its own keys."""
    tc = tpp.client()
    own = keys_by_level(tc, tpp.id)  # tokend-held signing keys, before any is submitted
    raw_key, pem_key = _generate_ed25519(), _generate_ed25519()
    ids = []
    for pk, extra in ((raw_key["raw"], {"level": "STANDARD"}), (pem_key["pem"], {})):
        r = tc.post(f"/member/{tpp.id}/keys", json=dict({"keyAlgorithm": "ED25519", "publicKey": pk}, **extra))
        assert r.status_code == 200, (r.status_code, r.text)
        ids.append(r.json()["keyId"])
    expected = verify([], keys=[raw_key["raw"], pem_key["raw"]])["keyIds"]
    assert ids == expected
    listed = {k["keyId"]: k for k in member_keys(bank.client(), tpp.id)}  # public: anyone may read them
    assert listed[ids[0]]["publicKey"] == raw_key["raw"] and listed[ids[0]]["level"] == "STANDARD"
    assert listed[ids[1]]["publicKey"] == pem_key["raw"] and listed[ids[1]]["level"] == "LOW"
    r = tc.get(f"/member/{tpp.id}/keys/{ids[0]}")
    assert r.status_code == 200 and r.json() == {"key": [listed[ids[0]]]}, r.text
    # The same key twice: 409.
    assert_tokenio_error(tc.post(f"/member/{tpp.id}/keys", json={"keyAlgorithm": "ED25519",
                                                                  "publicKey": raw_key["raw"]}), 409)
    # Someone else's keys: 403; bad input: 400.
    assert_tokenio_error(bank.client().post(f"/member/{tpp.id}/keys", json={"keyAlgorithm": "ED25519",
                                                                             "publicKey": raw_key["raw"]}), 403)
    assert_tokenio_error(bank.client().delete(f"/member/{tpp.id}/keys/{ids[0]}"), 403)
    for bad in ({"keyAlgorithm": "RSA", "publicKey": raw_key["raw"]}, {"keyAlgorithm": "ED25519", "publicKey": "abc"},
                {"keyAlgorithm": "ED25519", "publicKey": raw_key["raw"], "level": "HIGH"},
                {"keyAlgorithm": "ED25519", "publicKey": raw_key["raw"], "expiresAtMs": "1000"},
                {"keyAlgorithm": "ED25519", "publicKey": raw_key["raw"], "color": "red"}):
        assert_tokenio_error(tc.post(f"/member/{tpp.id}/keys", json=bad), 400)
    # tokend-held signing keys stay.
    assert_tokenio_error(tc.delete(f"/member/{tpp.id}/keys/{own['STANDARD']['keyId']}"), 403)
    r = tc.delete(f"/member/{tpp.id}/keys/{ids[0]}")
    assert r.status_code == 200 and r.json() == {}, r.text
    assert_tokenio_error(tc.get(f"/member/{tpp.id}/keys/{ids[0]}"), 404, payment_id=ids[0])
    assert_tokenio_error(tc.delete(f"/member/{tpp.id}/keys/{ids[0]}"), 404, payment_id=ids[0])
    assert ids[0] not in {k["keyId"] for k in member_keys(tc, tpp.id)}
    assert_tokenio_error(tc.get("/member/m:nobody:1/keys"), 404, payment_id="m:nobody:1")
