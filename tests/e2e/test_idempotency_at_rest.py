"""test_idempotency_at_rest.py — what an Idempotency-Key record keeps in the
store (issue 12, Secrets; docs/api.md §Idempotency): its request hash is keyed
with the master key (not the SHA-256 of the body, which gave back a PAN or an
OTP by guessing), its answer is sealed (an API key or a consent link is not in
the store in clear), the replay still works after a restart and from another
node on the same PostgreSQL, and records written before the upgrade are
retired: a retry under such a key is refused with 409, never run again."""

import glob
import hashlib
import json
import os
import re
import sqlite3

import pytest

import tdlib
from conftest import NET_SETTINGS, NetIssuer, future_expiry, new_pan, unique
from tdlib import new_member, request_body, store_request

# The retiring migration of each store (src/store/*/migrations).
RETIRE_MIGRATION = {"sqlite": 9, "pg": 7}
RETIRE_FILE = {"sqlite": "src/store/sqlite/migrations/009_idempotency_keyed.sql",
               "pg": "src/store/pg/migrations/007_idempotency_keyed.sql"}


def unkeyed_hashes(method, path, body):
    """What a record's hash was before: SHA-256 of method, path (each with its
    NUL) and body; and the plain SHA-256 of the body."""
    old = hashlib.sha256(method.encode() + b"\0" + path.encode() + b"\0" + body).hexdigest()
    return {old, hashlib.sha256(body).hexdigest()}


def record(srv, key):
    rows = tdlib.sql(srv.db_path, f"SELECT req_hash, status, body FROM idempotency WHERE key = '{key}'")
    assert len(rows) == 1, rows
    return rows[0]


def post_card(iss, key, pan, card_id):
    """POST …/cards with exactly these body bytes; the bytes and the answer."""
    body = json.dumps({"cardId": card_id, "consumerId": "c-1", "pan": pan, "expiry": future_expiry()}).encode()
    r = iss.iss.post(iss.path("/cards"), data=body,
                     headers={"Idempotency-Key": key, "Content-Type": "application/json"})
    return body, r


def write_store(srv, statements):
    """Changes a stopped server's store, as a hand (or an older tokend) would."""
    if tdlib.E2E_STORE == "pg":
        tdlib.psql(srv.db_path, "; ".join(statements))
        return
    db = sqlite3.connect(srv.db_path)
    with db:
        for s in statements:
            db.execute(s)
    db.close()


def store_bytes(srv):
    """Every byte of a SQLite store (the file, its WAL and shared memory)."""
    out = b""
    for f in glob.glob(srv.db_path + "*"):
        with open(f, "rb") as fh:
            out += fh.read()
    return out


def test_hash_keyed_answer_sealed_replay_after_restart(tokend_factory):
    srv = tokend_factory.start(settings=NET_SETTINGS)
    iss = NetIssuer(srv)
    pan, card_id = new_pan(), unique("card")
    body, first = post_card(iss, "card-key-1", pan, card_id)
    assert first.status_code == 201, first.text

    rec = record(srv, "card-key-1")
    assert re.fullmatch(r"[0-9a-f]{64}", rec["req_hash"]), rec
    assert rec["req_hash"] not in unkeyed_hashes("POST", iss.path("/cards"), body)
    assert card_id not in rec["body"] and "{" not in rec["body"], "the stored answer is in clear"

    # Answers that are secrets themselves: an API key, a consent link.
    adm = srv.admin()
    member = new_member(srv, "at rest", levels=("STANDARD",))
    made = adm.post(f"/admin/v1/members/{member.id}/api-keys", json={"level": "STANDARD"},
                    headers={"Idempotency-Key": "api-key-1"})
    assert made.status_code == 201, made.text
    api_key = made.json()["apiKey"]
    bank, tpp = new_member(srv, "bank"), new_member(srv, "tpp")
    tc = tpp.client()
    rq = store_request(tc, request_body(tpp.id, bank.id))
    link = tc.post(f"/token-requests/{rq}/authorization", headers={"Idempotency-Key": "consent-1"})
    assert link.status_code == 200, link.text
    consent_secret = link.json()["redirectUrl"].rsplit(".", 1)[1]
    assert len(consent_secret) >= 32
    for key, secret in (("api-key-1", api_key), ("consent-1", consent_secret)):
        assert secret not in record(srv, key)["body"]

    assert srv.stop() == 0
    srv.exit_checked = True
    if tdlib.E2E_STORE == "sqlite":
        raw = store_bytes(srv)
        assert api_key.encode() not in raw and consent_secret.encode() not in raw
        assert pan.encode() not in raw

    # The replay after a restart: the same answer, byte for byte.
    srv2 = tokend_factory.restart(srv)
    iss.bind(srv2)
    _, again = post_card(iss, "card-key-1", pan, card_id)
    assert (again.status_code, again.content) == (first.status_code, first.content)
    made2 = srv2.admin().post(f"/admin/v1/members/{member.id}/api-keys", json={"level": "STANDARD"},
                              headers={"Idempotency-Key": "api-key-1"})
    assert (made2.status_code, made2.content) == (made.status_code, made.content)
    # The same key with another body (another PAN) is still a conflict.
    _, other = post_card(iss, "card-key-1", new_pan(), card_id)
    assert other.status_code == 409 and "different request" in other.text, other.text


def test_records_from_before_the_upgrade_are_retired(tokend_factory):
    srv = tokend_factory.start()
    adm = srv.admin()
    name = unique("retired")
    body = json.dumps({"displayName": name}).encode()
    headers = {"Idempotency-Key": "old-key", "Content-Type": "application/json"}
    first = adm.post("/admin/v1/members", data=body, headers=headers)
    assert first.status_code == 201, first.text
    assert srv.stop() == 0
    srv.exit_checked = True

    # The record as a tokend before the upgrade left it: the unkeyed hash and
    # the answer in clear; then the store goes back to before the migration.
    old_hash = hashlib.sha256(b"POST\0/admin/v1/members\0" + body).hexdigest()
    answer = first.text.replace("'", "''")
    version = RETIRE_MIGRATION[tdlib.E2E_STORE]
    statements = [f"UPDATE idempotency SET req_hash = '{old_hash}', body = '{answer}' WHERE key = 'old-key'"]
    if tdlib.E2E_STORE == "sqlite":  # SQLite applies any version missing from schema_migrations
        statements.append(f"DELETE FROM schema_migrations WHERE version = {version}")
    write_store(srv, statements)
    assert record(srv, "old-key")["req_hash"] == old_hash
    if tdlib.E2E_STORE == "pg":
        # PostgreSQL applies only versions above the newest recorded, and later
        # migrations are there: the retiring migration's own SQL is run as is.
        write_store(srv, [open(os.path.join(tdlib.REPO, RETIRE_FILE["pg"])).read()])

    srv2 = tokend_factory.restart(srv)  # (SQLite) applies the migration again
    rec = record(srv2, "old-key")
    assert (rec["req_hash"], rec["body"]) == ("retired", "")

    # The retry is refused, not run a second time, and says why.
    again = srv2.admin().post("/admin/v1/members", data=body, headers=headers)
    assert again.status_code == 409, again.text
    err = again.json()["error"]
    assert err["errorCode"] == "ALREADY_EXISTS" and "upgrade" in err["message"], again.text
    rows = tdlib.sql(srv2.db_path, f"SELECT count(*) AS n FROM members WHERE display_name = '{name}'")
    assert rows[0]["n"] == 1, rows
    # A new key works as usual.
    fresh = srv2.admin().post("/admin/v1/members", data=body,
                              headers={"Idempotency-Key": "new-key", "Content-Type": "application/json"})
    assert fresh.status_code == 201, fresh.text


def test_tampered_answer_is_not_replayed(tokend_factory):
    """A sealed answer moved onto another record does not open: 500, and the
    answer of the other record is not served."""
    srv = tokend_factory.start()
    adm = srv.admin()
    a = adm.post("/admin/v1/members", json={"displayName": "a"}, headers={"Idempotency-Key": "key-a"})
    b = adm.post("/admin/v1/members", json={"displayName": "a"}, headers={"Idempotency-Key": "key-b"})
    assert a.status_code == b.status_code == 201
    sealed_a = record(srv, "key-a")["body"]
    assert srv.stop() == 0
    srv.exit_checked = True
    update = f"UPDATE idempotency SET body = '{sealed_a}' WHERE key = 'key-b'"
    write_store(srv, [update])
    srv2 = tokend_factory.restart(srv)
    r = srv2.admin().post("/admin/v1/members", json={"displayName": "a"}, headers={"Idempotency-Key": "key-b"})
    assert r.status_code == 500, r.text
    assert a.json()["memberId"] not in r.text
    assert "idempotency_answer_unreadable" in srv2.log_text()


@pytest.mark.skipif(tdlib.E2E_STORE != "pg", reason="two nodes share a PostgreSQL store")
def test_replay_from_the_other_node(tokend_factory):
    a = tokend_factory.start(settings=NET_SETTINGS, name="node-a")
    b = tokend_factory.start(settings=NET_SETTINGS, name="node-b", workdir=a.dir)
    iss = NetIssuer(a)
    pan, card_id = new_pan(), unique("card")
    body, first = post_card(iss, "two-nodes", pan, card_id)
    assert first.status_code == 201, first.text
    assert record(a, "two-nodes")["req_hash"] not in unkeyed_hashes("POST", iss.path("/cards"), body)
    iss.bind(b)
    _, replay = post_card(iss, "two-nodes", pan, card_id)
    assert (replay.status_code, replay.content) == (first.status_code, first.content)
