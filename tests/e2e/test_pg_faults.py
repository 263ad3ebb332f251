"""test_pg_faults.py — tokend on PostgreSQL when the database is wrong or gone
(issue 11, "Bad input and faults"): a wrong URL, an unreachable server, a bad
password, a schema newer than the binary: a clear message and a non-zero exit
at start, and never the password. PostgreSQL stopped while serving: 503 in
each face's error shape with nothing changed, /readyz not ready, and recovery
on its own when it returns.

The outage stops a cluster of the test's own (scripts/pg.sh), not the suite's.
PostgreSQL-only: skipped in the SQLite run."""

import os
import shutil
import subprocess
import tempfile

import pytest

import tdlib
from conftest import NET_SETTINGS, NetIssuer, assert_classic_error, assert_d1_error, unique
from tdlib import TOKEND_BIN, consent_flow, free_port, get_token, new_member

pytestmark = pytest.mark.skipif(tdlib.E2E_STORE != "pg", reason="PostgreSQL store")

PG_SH = os.path.join(tdlib.REPO, "scripts", "pg.sh")
SECRET = "s3cr3t-not-for-logs"


def start_failing(tmp_path, url, env=None):
    """tokend serve on url, expected to refuse to start: (exit code, output)."""
    args = [TOKEND_BIN, "serve", "--listen", f"127.0.0.1:{free_port()}", "--store", url,
            "--master-key-file", str(tmp_path / "master.key"), "--admin-key-file", str(tmp_path / "admin.key")]
    e = {k: v for k, v in os.environ.items() if not k.startswith("TOKEND_")}
    e.update(env or {})
    p = subprocess.run(args, capture_output=True, text=True, timeout=60, env=e, cwd=tmp_path)
    return p.returncode, p.stdout + p.stderr


def test_unreachable_server(tmp_path):
    rc, out = start_failing(tmp_path, f"postgres://tokend:{SECRET}@127.0.0.1:1/tokend?connect_timeout=3")
    assert rc != 0, out
    assert "cannot connect" in out and "127.0.0.1" in out, out
    assert SECRET not in out


def test_bad_password(tmp_path):
    url = tdlib.PG_URL.replace("postgres://tokend@", f"postgres://tokend:{SECRET}@")
    rc, out = start_failing(tmp_path, url, env={"PGPASSFILE": "/nonexistent"})
    assert rc != 0, out
    assert "password authentication failed" in out, out
    assert SECRET not in out


def test_unknown_database(tmp_path):
    rc, out = start_failing(tmp_path, tdlib.PG_URL.rsplit("/", 1)[0] + "/no_such_database")
    assert rc != 0, out
    assert "no_such_database" in out and "does not exist" in out, out


def test_wrong_url(tmp_path):
    rc, out = start_failing(tmp_path, f"mysql://tokend:{SECRET}@127.0.0.1/tokend")
    assert rc != 0, out
    assert "unsupported store URL" in out, out
    assert SECRET not in out


def test_newer_schema_refused(tokend_factory, tmp_path):
    srv = tokend_factory.start()
    assert srv.stop() == 0
    srv.exit_checked = True
    tdlib.psql(srv.db_path, "INSERT INTO schema_migrations(version, applied_ms) "
                            "SELECT max(version) + 1, 0 FROM schema_migrations")
    rc, out = start_failing(tmp_path, srv.db_path)
    assert rc != 0, out
    assert "newer than this tokend" in out, out


@pytest.fixture
def own_cluster():
    """A PostgreSQL cluster of this test's own, stopped by its PID at the end.
    Not under pytest's temp dir: that is 0700, and the server runs as another
    user (scripts/pg.sh)."""
    top = tempfile.mkdtemp(prefix="td-pg-")
    os.chmod(top, 0o755)
    d = os.path.join(top, "c")
    try:
        url = subprocess.run(["bash", PG_SH, "start", d], capture_output=True, text=True, check=True).stdout.strip()
        yield d, url
    finally:
        subprocess.run(["bash", PG_SH, "stop", d], check=True)
        shutil.rmtree(top, ignore_errors=True)


def test_postgres_stopped_while_serving(tokend_factory, tmp_path_factory, own_cluster):
    d, url = own_cluster
    workdir = str(tmp_path_factory.mktemp("outage"))
    with open(os.path.join(workdir, "pg_url"), "w") as f:  # tdlib.pg_database: this server's database
        f.write(url)
    srv = tokend_factory.start(settings=NET_SETTINGS, workdir=workdir,
                               env={"PGPASSFILE": os.path.join(d, "pgpass")})
    bank, tpp = new_member(srv, "bank"), new_member(srv, "tpp")
    flow = consent_flow(tpp.client(), tpp, bank, view_page=False)
    token = get_token(tpp.client(), flow.token_id)
    iss = NetIssuer(srv)
    card = iss.register_card()
    dc = iss.green(card)
    assert srv.anon(capture=False).get("/readyz").status_code == 200

    subprocess.run(["bash", PG_SH, "stop", d], check=True)
    tc = tpp.client()
    tdlib.assert_tokenio_error(tc.put(f"/tokens/{flow.token_id}/cancel"), 503, "UNAVAILABLE")
    tdlib.assert_tokenio_error(tc.get(f"/tokens/{flow.token_id}"), 503, "UNAVAILABLE")
    assert_d1_error(iss.dcard_op(dc, "suspend"), 503)
    r = iss.iss.post("/igwapi/v2.0/updateCardState", json={"issuerCardRefId": card.id, "virtualCardId": dc,
                                                             "action": "SUSPEND"},
                     headers={"x-correlation-id": unique("corr"), "x-issuer-id": iss.id})
    assert_classic_error(r, 921)
    assert iss.event_raw(dc, "SUSPEND", "WALLET").status_code == 503
    tdlib.assert_tokenio_error(srv.anon(capture=False).get("/readyz"), 503, "UNAVAILABLE")
    assert srv.anon(capture=False).get("/healthz").status_code == 200  # alive, not ready

    subprocess.run(["bash", PG_SH, "resume", d], check=True)
    tdlib.wait_until(lambda: srv.anon(capture=False).get("/readyz").status_code == 200, timeout=30,
                     interval=0.2, what="ready again once PostgreSQL is back")
    assert get_token(tc, flow.token_id) == token  # nothing changed during the outage
    assert iss.state(dc) == "ACTIVE"
    r = tc.put(f"/tokens/{flow.token_id}/cancel")
    assert r.status_code == 200 and r.json()["result"]["status"] == "SUCCESS", r.text
    assert iss.event(dc, "SUSPEND", "WALLET")["result"] == "APPLIED"


def test_password_in_the_url_never_logged(tokend_factory, tmp_path_factory):
    """A password written into --store works and appears in no log line."""
    password = open(os.environ["PGPASSFILE"]).read().strip().rsplit(":", 1)[1]
    workdir = str(tmp_path_factory.mktemp("pw-in-url"))
    name = tdlib.pg_database(workdir).rsplit("/", 1)[1]
    url = tdlib.PG_URL.replace("postgres://tokend@", f"postgres://tokend:{password}@").rsplit("/", 1)[0] + "/" + name
    with open(os.path.join(workdir, "pg_url"), "w") as f:
        f.write(url)
    srv = tokend_factory.start(workdir=workdir, env={"PGPASSFILE": "/nonexistent"})
    new_member(srv, "bank")
    assert srv.stop() == 0
    srv.exit_checked = True
    log = open(srv.log_path).read()
    log = log[log.index("\n"):]  # past the test harness's own "=== start <argv>" line
    assert "listening" in log and "tokend@127.0.0.1" in log, log[-500:]
    assert password not in log
