"""test_store_file.py — the SQLite store's files under a running tokend and
at start (src/store/sqlite/guard.c, docs/operations.md):

- the database or its -wal deleted under a running tokend: every later write
  503 with nothing acknowledged, /readyz not ready, the loss logged; a restart
  refuses to create an empty store beside the old master key unless told;
- a second tokend on the same file is refused while the first serves on;
- the store, its WAL and SHM and the key files are 0600 and their directory
  0700, even under umask 000;
- tokenctl store backup while writes go on, and restore: every write
  acknowledged before the backup started is in it, and the restored store
  serves them; restore refuses while a tokend serves the target, over an
  existing store without --replace, and a file that is not a store;
- /readyz says not ready when a write cannot commit: a stalled writer (both
  stores), too little free space (SQLite)."""

import os
import stat
import subprocess
import threading
import time

import pytest
import requests

import tdlib

sqlite_only = pytest.mark.skipif(tdlib.E2E_STORE != "sqlite", reason="the SQLite store's own files")
TOKENCTL = os.environ.get("TOKENCTL_BIN") or os.path.join(os.path.dirname(tdlib.TOKEND_BIN), "tokenctl")


def create_member(srv, name="m"):
    return srv.admin().post("/admin/v1/members", json={"displayName": name})


def member_ids(db_path):
    return {r["id"] for r in tdlib.sql(db_path, "SELECT id FROM members")}


def tokenctl(*args):
    return subprocess.run([TOKENCTL, *args], capture_output=True, text=True, timeout=120)


def serve_expecting_exit(srv, *extra):
    """tokend serve on srv's store and keys, expected to exit at once: (code, output)."""
    args = [tdlib.TOKEND_BIN, "serve", "--listen", f"127.0.0.1:{tdlib.free_port()}", "--store", srv.store_url,
            *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKEND_")}
    p = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env, cwd=srv.dir)
    return p.returncode, p.stdout + p.stderr


def assert_refused_write(srv):
    r = create_member(srv, "after the loss")
    assert r.status_code == 503, (r.status_code, r.text)
    assert r.json()["error"]["errorCode"] == "UNAVAILABLE"
    ready = srv.anon(capture=False).get("/readyz")
    assert ready.status_code == 503, ready.text
    assert "deleted or replaced" in ready.json()["error"]["message"]
    assert any(rec.get("event") == "store_lost" for rec in srv.log_records())


@sqlite_only
def test_deleted_store_refuses_writes_and_restart(tokend_factory):
    srv = tokend_factory.start()
    assert create_member(srv, "before").status_code == 201
    for suffix in ("", "-wal", "-shm"):
        os.unlink(srv.db_path + suffix)
    assert_refused_write(srv)
    # Sticky: a file put back at the path does not make the lost one writable again.
    open(srv.db_path, "wb").close()
    assert create_member(srv, "still refused").status_code == 503
    os.unlink(srv.db_path)
    assert srv.stop() == 0
    # The master key is still there: no silent empty store in its place.
    rc, out = serve_expecting_exit(srv)
    assert rc == 1, out
    assert "does not exist but its master key" in out and "--new-store true" in out, out
    assert not os.path.exists(srv.db_path)
    # Told, it starts an empty store with the same key.
    fresh = tokend_factory.restart(srv, settings={**tdlib.DEFAULT_SETTINGS, "new-store": "true"})
    assert create_member(fresh, "fresh").status_code == 201


@sqlite_only
def test_deleted_wal_alone_refuses_writes(tokend_factory):
    srv = tokend_factory.start()
    assert create_member(srv).status_code == 201
    os.unlink(srv.db_path + "-wal")
    assert_refused_write(srv)


@sqlite_only
def test_second_tokend_on_the_same_file_refused(tokend_factory):
    srv = tokend_factory.start()
    rc, out = serve_expecting_exit(srv, "--admin-key-file", os.path.join(srv.dir, "admin.key"))
    assert rc == 1, out
    assert "is the store of another running tokend" in out, out
    assert create_member(srv, "first still serves").status_code == 201


@sqlite_only
def test_files_private_whatever_the_umask(tokend_factory, tmp_path):
    # A store in directories tokend makes itself, its keys beside it.
    store_dir = tmp_path / "made" / "by" / "tokend"
    port = tdlib.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKEND_")}
    log = open(tmp_path / "loose.log", "wb")
    p = subprocess.Popen([tdlib.TOKEND_BIN, "serve", "--listen", f"127.0.0.1:{port}", "--store",
                          f"sqlite:{store_dir}/tokend.db"], env=env, stdout=log, stderr=log,
                         preexec_fn=lambda: os.umask(0))
    try:
        deadline = time.monotonic() + 30
        while True:
            assert p.poll() is None and time.monotonic() < deadline, open(tmp_path / "loose.log").read()
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.05)
        key = (store_dir / "admin.key").read_text().strip()
        r = requests.post(f"http://127.0.0.1:{port}/admin/v1/members", json={"displayName": "m"},
                                headers={"Authorization": "Bearer " + key}, timeout=10)
        assert r.status_code == 201, r.text
        for name in ("tokend.db", "tokend.db-wal", "tokend.db-shm", "master.key", "admin.key"):
            mode = stat.S_IMODE(os.stat(store_dir / name).st_mode)
            assert mode == 0o600, (name, oct(mode))
        for d in (tmp_path / "made", tmp_path / "made" / "by", store_dir):
            assert stat.S_IMODE(os.stat(d).st_mode) == 0o700, (str(d), oct(os.stat(d).st_mode))
    finally:
        p.terminate()
        assert p.wait(30) == 0
        log.close()

    # Files others could read (an older tokend, a copy by hand) are narrowed at the next start.
    srv = tokend_factory.start()
    assert srv.stop() == 0
    for name in ("master.key", "admin.key", "tokend.db"):
        os.chmod(os.path.join(srv.dir, name), 0o644)
    tokend_factory.restart(srv)
    for name in ("master.key", "admin.key", "tokend.db", "tokend.db-wal"):
        mode = stat.S_IMODE(os.stat(os.path.join(srv.dir, name)).st_mode)
        assert mode == 0o600, (name, oct(mode))


@sqlite_only
def test_backup_while_serving_then_restore(tokend_factory, tmp_path):
    srv = tokend_factory.start()
    acked, stop = [], threading.Event()

    def write_on():
        while not stop.is_set():
            r = create_member(srv, f"m{len(acked)}")
            if r.status_code == 201:
                acked.append((time.monotonic(), r.json()["memberId"]))

    writer = threading.Thread(target=write_on)
    writer.start()
    try:
        while len(acked) < 50:
            time.sleep(0.02)
        started = time.monotonic()
        backup = tmp_path / "store.backup"
        out = tokenctl("store", "backup", f"sqlite:{srv.db_path}", str(backup))
        assert out.returncode == 0, out.stderr
        assert "one snapshot, integrity checked" in out.stdout and "master key is not in it" in out.stdout
        time.sleep(0.2)
    finally:
        stop.set()
        writer.join()
    before_backup = {mid for t, mid in acked if t < started}
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    assert not os.path.exists(str(backup) + ".partial")
    in_backup = member_ids(str(backup))
    assert before_backup <= in_backup
    assert in_backup <= {mid for _, mid in acked} | member_ids(srv.db_path)  # nothing made up

    # Never over a file; never while tokend serves the target.
    again = tokenctl("store", "backup", f"sqlite:{srv.db_path}", str(backup))
    assert again.returncode == 1 and "never overwrites" in again.stderr
    busy = tokenctl("store", "restore", str(backup), f"sqlite:{srv.db_path}", "--replace")
    assert busy.returncode == 1 and "a tokend is serving" in busy.stderr, busy.stderr
    assert srv.stop() == 0
    kept = tokenctl("store", "restore", str(backup), f"sqlite:{srv.db_path}")
    assert kept.returncode == 1 and "--replace" in kept.stderr
    junk = tmp_path / "junk"
    junk.write_text("not a database")
    bad = tokenctl("store", "restore", str(junk), f"sqlite:{srv.db_path}", "--replace")
    assert bad.returncode == 1 and "damaged" in bad.stderr, bad.stderr
    everything = member_ids(srv.db_path)

    done = tokenctl("store", "restore", str(backup), f"sqlite:{srv.db_path}", "--replace")
    assert done.returncode == 0, done.stderr
    aside = [n for n in os.listdir(srv.dir) if n.startswith("tokend.db.before-restore-")]
    assert aside, os.listdir(srv.dir)
    assert member_ids(os.path.join(srv.dir, sorted(aside)[0])) == everything  # moved aside, whole
    back = tokend_factory.restart(srv)
    for mid in sorted(before_backup)[:5]:
        r = back.admin().post(f"/admin/v1/members/{mid}/api-keys", json={"level": "LOW"})
        assert r.status_code == 201, (mid, r.status_code, r.text)
    assert member_ids(back.db_path) == in_backup


def test_readyz_not_ready_while_writes_stall(tokend_factory):
    srv = tokend_factory.start(settings={**tdlib.DEFAULT_SETTINGS, "commit-timeout": "300"})
    assert srv.anon(capture=False).get("/readyz").status_code == 200
    srv.set_fault("stalled")
    assert create_member(srv).status_code == 504
    r = srv.anon(capture=False).get("/readyz")
    assert r.status_code == 503, r.text
    # Which of the two it says depends on whether another write (a timer's, a
    # delivery's) is still queued: either way it names the writers.
    message = r.json()["error"]["message"]
    assert ("timed out waiting for the store's writers" in message
            or "the store's writers are not taking writes" in message), message
    srv.set_fault("none")
    deadline = time.monotonic() + 15
    while srv.anon(capture=False).get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "ready again once writes go through"
        time.sleep(0.2)
    assert create_member(srv).status_code == 201


@sqlite_only
def test_readyz_not_ready_without_free_space(tokend_factory):
    srv = tokend_factory.start(settings={**tdlib.DEFAULT_SETTINGS, "min-free-mb": str(1 << 30)})
    r = srv.anon(capture=False).get("/readyz")
    assert r.status_code == 503, r.text
    assert "below the 1073741824 MiB tokend keeps for writes" in r.json()["error"]["message"]
    ok = tokend_factory.start()
    assert ok.anon(capture=False).get("/readyz").status_code == 200
