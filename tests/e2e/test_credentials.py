"""test_credentials.py — API keys' lifecycle (issue 12 §6, docs/api.md
Credentials): a key revoked by its id stops authenticating at once on the node
that revoked it, cache included; on another node of one PostgreSQL within the
cache's bound (5 s); revoking again keeps the first time; another owner's key
id is not found; keys are listed with their status, never in clear; each
creation and revocation is in the credential audit log. The admin key file
rewritten and SIGHUP: the new key replaces the old at once."""

import os
import secrets
import signal
import stat
import time

import pytest
import requests

import tdlib
from conftest import NetIssuer
from tdlib import new_member

CACHE_TTL_S = 5  # TD_CRED_CACHE_TTL_S


def listed_keys(member):
    """The member's keys as the admin API lists them."""
    r = member.server.admin().get(f"/admin/v1/members/{member.id}/api-keys")
    assert r.status_code == 200, r.text
    return r.json()["apiKeys"]


def new_key(server, member_id, level="STANDARD"):
    r = server.admin().post(f"/admin/v1/members/{member_id}/api-keys", json={"level": level})
    assert r.status_code == 201, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"apiKey", "keyId"}
    assert len(body["keyId"]) == 16 and body["keyId"] not in body["apiKey"]
    return body["apiKey"], body["keyId"]


def probe(client, member_id):
    """A member request that needs nothing but authentication (the member's
    public keys): 200, or 401 when its key is refused."""
    return client.get(f"/member/{member_id}/keys")


def bearer(server, key):
    return tdlib.Client(server, headers={"Authorization": "Bearer " + key}, capture=False)


def test_revoked_key_refused_at_once_cache_included(tokend):
    m = new_member(tokend, "alice", levels=())
    key, key_id = new_key(tokend, m.id)
    other, other_id = new_key(tokend, m.id)
    c = bearer(tokend, key)
    # Authenticated twice: the second answer comes from the credential cache.
    for _ in range(2):
        assert probe(c, m.id).status_code == 200
    r = tokend.admin().delete(f"/admin/v1/members/{m.id}/api-keys/{key_id}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["keyId"] == key_id and body["status"] == "REVOKED" and body["revokedAt"]
    r = probe(c, m.id)
    assert r.status_code == 401, r.text
    assert key not in r.text
    # The member's other key still works; revoking again keeps the first time.
    assert probe(bearer(tokend, other), m.id).status_code == 200
    again = tokend.admin().delete(f"/admin/v1/members/{m.id}/api-keys/{key_id}")
    assert again.status_code == 200 and again.json()["revokedAt"] == body["revokedAt"]
    keys = {k["keyId"]: k for k in listed_keys(m)}
    assert keys[key_id]["status"] == "REVOKED" and keys[key_id]["revokedAt"] == body["revokedAt"]
    assert keys[other_id]["status"] == "ACTIVE" and keys[other_id]["revokedAt"] == ""
    assert keys[other_id]["level"] == "STANDARD"
    listing = tokend.admin().get(f"/admin/v1/members/{m.id}/api-keys").text
    assert key not in listing and other not in listing
    # Still refused after a restart (the store, not only the cache).
    tokend.stop()
    tokend.start()
    assert probe(bearer(tokend, key), m.id).status_code == 401
    assert probe(bearer(tokend, other), m.id).status_code == 200


def test_revoke_is_per_owner_and_checked(tokend):
    a = new_member(tokend, "a", levels=())
    b = new_member(tokend, "b", levels=())
    key, key_id = new_key(tokend, a.id)
    adm = tokend.admin()
    assert adm.delete(f"/admin/v1/members/{b.id}/api-keys/{key_id}").status_code == 404
    assert adm.delete(f"/admin/v1/members/m:nobody:1/api-keys/{key_id}").status_code == 404
    assert adm.delete(f"/admin/v1/members/{a.id}/api-keys/XYZ").status_code == 400
    assert adm.delete(f"/admin/v1/members/{a.id}/api-keys/{key}").status_code == 400  # the key itself is not an id
    assert probe(bearer(tokend, key), a.id).status_code == 200
    assert adm.get("/admin/v1/members/m:nobody:1/api-keys").status_code == 404
    # Only the admin key may revoke.
    assert bearer(tokend, key).delete(f"/admin/v1/members/{a.id}/api-keys/{key_id}").status_code in (401, 403)


def test_issuer_key_revoked(tokend):
    ni = NetIssuer(tokend)
    assert ni.iss.get(ni.path("/cards/nope")).status_code == 404  # authenticated, no such card
    keys = tokend.admin().get(f"/admin/v1/issuers/{ni.id}/api-keys").json()["apiKeys"]
    assert sorted(k["role"] for k in keys) == ["issuer", "network"]
    issuer_key_id = next(k["keyId"] for k in keys if k["role"] == "issuer")
    r = tokend.admin().delete(f"/admin/v1/issuers/{ni.id}/api-keys/{issuer_key_id}")
    assert r.status_code == 200, r.text
    assert ni.iss.get(ni.path("/cards/nope")).status_code == 401
    keys = {k["role"]: k for k in tokend.admin().get(f"/admin/v1/issuers/{ni.id}/api-keys").json()["apiKeys"]}
    assert keys["issuer"]["status"] == "REVOKED" and keys["network"]["status"] == "ACTIVE"


def test_events_listed(tokend):
    m = new_member(tokend, "ev", levels=())
    _, key_id = new_key(tokend, m.id, "LOW")
    tokend.admin().delete(f"/admin/v1/members/{m.id}/api-keys/{key_id}")
    tokend.admin().delete(f"/admin/v1/members/{m.id}/api-keys/{key_id}")  # a repeat records nothing
    r = tokend.admin().get("/admin/v1/credential-events")
    assert r.status_code == 200, r.text
    mine = [e for e in r.json()["events"] if e["keyId"] == key_id]
    assert [(e["type"], e["ownerKind"], e["ownerId"]) for e in mine] == [
        ("API_KEY_CREATED", "member", m.id), ("API_KEY_REVOKED", "member", m.id)]
    assert mine[0]["detail"] == {"level": "LOW"} and mine[0]["time"]
    after = tokend.admin().get("/admin/v1/credential-events", params={"after": mine[0]["id"], "limit": 1}).json()
    assert [e["id"] for e in after["events"]] == [mine[1]["id"]]
    assert tokend.admin().get("/admin/v1/credential-events", params={"limit": 0}).status_code == 400
    assert tokend.admin().get("/admin/v1/credential-events", params={"x": 1}).status_code == 400


@pytest.mark.skipif(tdlib.E2E_STORE != "pg", reason="several nodes share a PostgreSQL store")
def test_revoked_on_a_refused_on_b_within_the_cache_bound(tokend_factory):
    a = tokend_factory.start(name="node-a")
    b = tokend_factory.start(name="node-b", workdir=a.dir)
    m = new_member(a, "multi", levels=())
    key, key_id = new_key(a, m.id)
    on_b = bearer(b, key)
    assert probe(on_b, m.id).status_code == 200  # cached on B
    r = a.admin().delete(f"/admin/v1/members/{m.id}/api-keys/{key_id}")
    assert r.status_code == 200, r.text
    revoked = time.monotonic()
    assert probe(bearer(a, key), m.id).status_code == 401
    while probe(on_b, m.id).status_code == 200:
        assert time.monotonic() - revoked < CACHE_TTL_S + 1, "B still accepts the key after the cache's bound"
        time.sleep(0.2)
    assert probe(on_b, m.id).status_code == 401


def admin_status(server, key):
    return requests.get(server.url + "/admin/v1/credential-events", headers={"Authorization": "Bearer " + key},
                        timeout=10).status_code


def test_admin_key_rotated_by_sighup(tokend):
    """The admin key file rewritten, then SIGHUP: the new key works and the old
    one is refused from then on, recorded as ADMIN_KEY_ROTATED; a file that is
    not a usable key keeps the key in use, and says why in the log."""
    old = tokend.admin_key
    path = os.path.join(tokend.dir, "admin.key")
    assert admin_status(tokend, old) == 200
    new = secrets.token_hex(24)
    with open(path + ".new", "w") as f:
        f.write(new + "\n")
    os.replace(path + ".new", path)  # the way docs/operations.md says to write it
    assert admin_status(tokend, old) == 200  # nothing changes before the signal
    tokend.signal(signal.SIGHUP)
    tdlib.wait_until(lambda: admin_status(tokend, new) == 200, timeout=10, interval=0.05,
                     what="the new admin key accepted")
    assert admin_status(tokend, old) == 401
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    def rotations():
        events = requests.get(tokend.url + "/admin/v1/credential-events",
                              headers={"Authorization": "Bearer " + new}, timeout=10).json()["events"]
        return [e["ownerKind"] for e in events if e["type"] == "ADMIN_KEY_ROTATED"]
    # recorded just after the swap, by its own commit
    assert tdlib.wait_until(rotations, timeout=10, interval=0.05, what="ADMIN_KEY_ROTATED recorded") == ["admin"]
    assert new not in tokend.log_text() and old not in tokend.log_text()

    with open(path, "w") as f:
        f.write("short\n")
    tokend.signal(signal.SIGHUP)
    tdlib.wait_until(lambda: any(r.get("event") == "admin_key_reload" and "stays" in r.get("msg", "")
                                 for r in tokend.log_records()), timeout=10, interval=0.05,
                     what="the refused reload logged")
    assert admin_status(tokend, new) == 200
    with open(path, "w") as f:
        f.write(new + "\n")  # the fixture's stop reads the key from the file
