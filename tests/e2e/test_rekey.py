"""test_rekey.py — master key rotation (issue 12 §6, docs/operations.md):
`tokenctl store rekey` reseals every sealed value of a stopped store, one row
per transaction; killed half-way (kill -9, through the TD_REKEY_KILL_AFTER
test hook) tokend refuses to start with either key, and a rerun finishes the
job; then tokend starts with the new key only, and everything opens: members
sign, cards show their contact and decide, an idempotent replay answers, and
the rotation is in the credential audit log. On both stores."""

import os
import subprocess

import requests

import tdlib
from conftest import TOKENCTL_BIN, NetIssuer
from tdlib import consent_flow, new_member

ROTATING = "master key rotation of this store is under way"


def rekey(srv, old, new, kill_after=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKEND_")}
    if kill_after:
        env["TD_REKEY_KILL_AFTER"] = str(kill_after)
    return subprocess.run([TOKENCTL_BIN, "store", "rekey", srv.store_url, "--old-key", old, "--new-key", new],
                          capture_output=True, text=True, timeout=120, env=env)


def start_fails(srv, key):
    from test_master_key import start_with_key
    return start_with_key(srv, key)


def sealed_bytes(srv):
    """Every sealed column's bytes, to see them change."""
    hx = (lambda c: f"encode({c}, 'hex')") if srv.db_path.startswith("postgres") else (lambda c: f"hex({c})")
    q = (f"SELECT 'k' AS t, {hx('sealed_secret')} AS v FROM member_keys WHERE length(sealed_secret) > 0 "
         f"UNION ALL SELECT 'c', {hx('pan_sealed')} FROM cards UNION ALL SELECT 'd', {hx('secret_sealed')} "
         "FROM issuer_delivery UNION ALL SELECT 'i', body FROM idempotency")
    return sorted((r["t"], r["v"]) for r in tdlib.sql(srv.db_path, q))


def test_rekey_killed_half_way_then_finished(tokend_factory, tmp_path):
    srv = tokend_factory.start()
    old_key = os.path.join(srv.dir, "master.key")
    new_key = str(tmp_path / "new.key")
    with open(new_key, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    # Every kind of sealed value: members' keys, a card's PAN and contact, a
    # delivery secret, idempotency answers.
    tpp = new_member(srv, "TPP")
    bank = new_member(srv, "Bank")
    ni = NetIssuer(srv)
    card = ni.register_card()
    r = srv.admin().put(f"/admin/v1/issuers/{ni.id}/delivery",
                        json={"profile": "d1", "baseUrl": "https://127.0.0.1:9/d1",
                              "auth": {"type": "bearer", "token": "bearer-secret-123"}})
    assert r.status_code == 200, r.text
    idem = {"Idempotency-Key": "rekey-1", "Content-Type": "application/json"}
    first = srv.admin().post(f"/admin/v1/members/{tpp.id}/api-keys", data='{"level":"LOW"}', headers=idem)
    assert first.status_code == 201, first.text
    before = sealed_bytes(srv)
    assert srv.stop() == 0

    # Killed after 3 rows: neither key starts tokend.
    p = rekey(srv, old_key, new_key, kill_after=3)
    assert p.returncode == -9, (p.returncode, p.stdout, p.stderr)
    for key in (old_key, new_key):
        rc, out = start_fails(srv, key)
        assert rc == 1 and ROTATING in out, out
    # A rerun with another new key is refused; the right one finishes.
    other = str(tmp_path / "other.key")
    with open(other, "w") as f:
        f.write(os.urandom(32).hex())
    p = rekey(srv, old_key, other)
    assert p.returncode == 1 and "another new key" in p.stderr, p.stderr
    p = rekey(srv, old_key, new_key)
    assert p.returncode == 0, p.stderr
    assert "(3 were resealed by an earlier run)" in p.stdout, p.stdout
    after = sealed_bytes(srv)
    assert len(after) == len(before) and not set(after) & set(before)
    assert rekey(srv, old_key, new_key).stdout.endswith("nothing to do\n")

    # The old key is refused; the new one opens everything.
    rc, out = start_fails(srv, old_key)
    assert rc == 1 and "is not the key this store's secrets were sealed with" in out, out
    srv.settings["master-key-file"] = new_key
    srv.start()
    flow = consent_flow(tpp.client(), tpp, bank, kind="access", view_page=False)  # the bank signs
    assert flow.token_id
    got = ni.iss.get(ni.path(f"/cards/{card.id}"))
    assert got.status_code == 200, got.text
    assert card.phone[-2:] in got.text, got.text  # the masked contact: the seal opened
    again = srv.admin().post(f"/admin/v1/members/{tpp.id}/api-keys", data='{"level":"LOW"}', headers=idem)
    assert again.status_code == 201 and again.json() == first.json(), again.text
    assert srv.admin().get(f"/admin/v1/issuers/{ni.id}/delivery").json()["auth"]["secretSet"] is True
    events = srv.admin().get("/admin/v1/credential-events").json()["events"]
    rotated = [e for e in events if e["type"] == "MASTER_KEY_ROTATED"]
    assert len(rotated) == 1 and rotated[0]["ownerKind"] == "store", events
    assert rotated[0]["detail"]["resealedBefore"] == 3
    assert requests.get(srv.url + "/readyz", timeout=10).status_code == 200


def test_rekey_refused_while_tokend_serves(tokend_factory, tmp_path):
    srv = tokend_factory.start()
    new_member(srv, "m")
    new_key = str(tmp_path / "new.key")
    with open(new_key, "w") as f:
        f.write(os.urandom(32).hex())
    old_key = os.path.join(srv.dir, "master.key")
    p = rekey(srv, old_key, new_key)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert new_key not in p.stderr and open(old_key).read().strip() not in p.stderr + p.stdout
    # Nothing changed: the serving node goes on, and restarts with its key.
    assert tdlib.sql(srv.db_path, "SELECT name FROM store_meta WHERE name = 'rekey_to'") == []
    srv.stop()
    srv.start()
    # A wrong old key is refused before anything is written.
    srv.stop()
    wrong = str(tmp_path / "wrong.key")
    with open(wrong, "w") as f:
        f.write(os.urandom(32).hex())
    p = rekey(srv, wrong, new_key)
    assert p.returncode == 1 and "old key is not the key" in p.stderr, p.stderr
    srv.start()
