"""test_master_key.py — a node started with another master key than the one
its store's secrets were sealed with refuses to start (service/master_key.c),
on both stores: nodes on one PostgreSQL database must share one key, and a
missing --master-key-file makes a fresh one. The first node to serve a store
records a check sealed with its key; a store made before the check is checked
against its oldest sealed member key."""

import concurrent.futures
import os
import subprocess

import pytest
import requests

import tdlib
from tdlib import TOKEND_BIN, free_port, new_member

REFUSED = "is not the key this store's secrets were sealed with"


def other_key(tmp_path):
    key = os.urandom(32).hex()
    path = tmp_path / "other.key"
    path.write_text(key + "\n")
    return path, key


def start_with_key(srv, key_path):
    """tokend serve on srv's store with this master key, expected to exit: (code, output)."""
    args = [TOKEND_BIN, "serve", "--listen", f"127.0.0.1:{free_port()}", "--store", srv.store_url,
            "--master-key-file", str(key_path), "--admin-key-file", os.path.join(srv.dir, "admin.key")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKEND_")}
    p = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env, cwd=srv.dir)
    return p.returncode, p.stdout + p.stderr


def checks(srv):
    return tdlib.sql(srv.db_path, "SELECT name, hex(value) AS v FROM store_meta ORDER BY name")


def test_other_master_key_refused(tokend_factory, tmp_path):
    srv = tokend_factory.start()
    new_member(srv, "Sealed keys")
    before = checks(srv)
    assert [c["name"] for c in before] == ["master_key_check"]
    assert srv.stop() == 0
    path, key = other_key(tmp_path)
    rc, out = start_with_key(srv, path)
    assert rc == 1, out
    assert REFUSED in out and "other.key" in out, out
    assert key not in out
    assert checks(srv) == before  # nothing written
    # the right key still starts, and finds its check
    srv.start()
    assert requests.get(srv.url + "/readyz", timeout=10).status_code == 200
    assert checks(srv) == before


def test_store_without_check_is_checked_against_its_sealed_keys(tokend_factory, tmp_path):
    """A store made before the check (no store_meta row): its oldest sealed
    member key must open with the node's key."""
    srv = tokend_factory.start()
    new_member(srv, "Older store")
    assert srv.stop() == 0
    tdlib.write_sql(srv.db_path, "DELETE FROM store_meta")
    path, _ = other_key(tmp_path)
    rc, out = start_with_key(srv, path)
    assert rc == 1 and REFUSED in out, out
    assert checks(srv) == []  # still none: the wrong key wrote nothing
    srv.start()
    assert [c["name"] for c in checks(srv)] == ["master_key_check"]


@pytest.mark.skipif(tdlib.E2E_STORE != "pg", reason="several nodes on one store: PostgreSQL")
def test_nodes_starting_together_share_one_check(tokend_factory, tmp_path):
    """Two nodes on a new database at the same instant: one writes the
    check, the other reads it; both serve."""
    first = tokend_factory.start(name="a")
    workdir = first.dir
    assert first.stop() == 0
    tdlib.write_sql(first.db_path, "DELETE FROM store_meta")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        nodes = list(pool.map(lambda n: tokend_factory.start(name=n, workdir=workdir), ["b", "c"]))
    assert all(n.alive for n in nodes)
    assert len(checks(first)) == 1
    path, _ = other_key(tmp_path)
    rc, out = start_with_key(first, path)
    assert rc == 1 and REFUSED in out, out
