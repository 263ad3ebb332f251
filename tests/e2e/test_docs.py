"""test_docs.py — commands the documentation says run as written, run as
written: each block marked `<!-- test_docs: NAME -->` in README.md,
docs/operations.md and docs/postgres.md, with build/tokend, build/tokenctl and $REPO/build replaced by
the binaries under test. Each block starts its own PostgreSQL (scripts/pg.sh,
scripts/pgaf.sh or pg_autoctl by hand), so they run once, in the SQLite run of
the suite; a block that fails half-way is cleaned up after."""

import os
import re
import shutil
import signal
import subprocess

import pytest

import tdlib

pytestmark = pytest.mark.skipif(tdlib.E2E_STORE != "sqlite", reason="runs once, in the SQLite run")


def doc_block(path, name):
    text = open(os.path.join(tdlib.REPO, path)).read()
    m = re.search(r"<!-- test_docs: " + re.escape(name) + r" -->\s*```sh\n(.*?)```", text, re.S)
    assert m, f"no block '{name}' in {path}"
    return m.group(1)


def run_block(path, name, timeout=300):
    """Runs the block with bash -euo pipefail from the repository root, in a
    process group of its own (killed if it fails); its output."""
    bindir = os.path.dirname(tdlib.TOKEND_BIN)
    script = (doc_block(path, name).replace("build/tokend", tdlib.TOKEND_BIN)
              .replace("build/tokenctl", os.path.join(bindir, "tokenctl")).replace("$REPO/build", bindir))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOKEND_", "PG"))}
    p = subprocess.Popen(["bash", "-euo", "pipefail", "-c", script], cwd=tdlib.REPO, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out, err = "", "timed out"
    finally:
        if p.poll() is None or p.returncode:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
    assert p.returncode == 0, f"{path} block {name} failed:\n" + out[-3000:] + err[-4000:]
    return out


def test_operations_md_backup_restore():
    try:
        out = run_block("docs/operations.md", "backup-restore", timeout=120)
    finally:
        shutil.rmtree("/tmp/td-ops", ignore_errors=True)
    lines = out.strip().splitlines()
    assert lines[-1] == "Before the backup", out  # the member made after the backup is not in it
    assert any("one snapshot, integrity checked" in line for line in lines), out
    assert any("the store that was there is in /tmp/td-ops/tokend.db.before-restore-" in line for line in lines), out


def test_operations_md_key_rotation():
    try:
        out = run_block("docs/operations.md", "key-rotation", timeout=120)
    finally:
        shutil.rmtree("/tmp/td-keys", ignore_errors=True)
    lines = out.strip().splitlines()
    assert lines[0] == "401", out  # the old admin key, after the SIGHUP
    assert lines[-2:] == ["ADMIN_KEY_ROTATED", "MASTER_KEY_ROTATED"], out


def test_readme_several_nodes_on_postgres():
    out = run_block("README.md", "several-nodes", timeout=180)
    assert out.strip().splitlines()[-1] == "0", out  # node A served the key node B made
    assert not os.path.exists("/tmp/tokend-pg"), "the block cleans up after itself"


def test_postgres_md_cut_over():
    try:
        out = run_block("docs/postgres.md", "cut-over")
    finally:
        subprocess.run([os.path.join(tdlib.REPO, "scripts", "pg.sh"), "stop", "/tmp/td-cutover-pg"])
        shutil.rmtree("/tmp/td-cutover-pg", ignore_errors=True)
    assert "row counts and digests equal, committed" in out, out
    assert "hold the same rows" in out, out
    assert '"keyAlgorithm"' in out and '"maxActiveTokens"' in out, out  # the copied member's keys, issuer's policy


needs_pgaf = pytest.mark.skipif(not shutil.which("pg_autoctl"), reason="pg_autoctl not installed (scripts/deps.sh --test)")


@needs_pgaf
def test_postgres_md_failover_with_pgaf_sh():
    try:
        out = run_block("docs/postgres.md", "pgaf-failover")
    finally:
        subprocess.run([os.path.join(tdlib.REPO, "scripts", "pgaf.sh"), "stop", "/tmp/td-ha"])
        shutil.rmtree("/tmp/td-ha", ignore_errors=True)
    assert out.count('"errorCode":"UNAVAILABLE"') == 2, out  # readyz and the write during the failover
    assert out.count('"memberId"') == 2, out  # a member made before the failover, one after
    assert '"status": "ready"' in out, out


@needs_pgaf
@pytest.mark.skipif(os.geteuid() != 0, reason="the block runs the servers as tokend-pg through runuser (root)")
def test_postgres_md_formation_by_hand():
    # The block expects the servers' user to exist, as its text says.
    if subprocess.run(["getent", "passwd", "tokend-pg"], capture_output=True).returncode:
        subprocess.run(["useradd", "--system", "--user-group", "tokend-pg"], check=True)
    try:
        out = run_block("docs/postgres.md", "pgaf-by-hand")
    finally:
        subprocess.run(["pkill", "-KILL", "-f", "/tmp/td-ha-byhand"])
        shutil.rmtree("/tmp/td-ha-byhand", ignore_errors=True)
    assert "ANY 1" in out, out  # the standby is synchronous
    assert '"status": "ready"' in out, out  # tokend on the new primary after the switchover


@pytest.mark.skipif(not shutil.which("openssl"), reason="the block makes its certificates with openssl")
def test_operations_md_tls():
    try:
        out = run_block("docs/operations.md", "tls", timeout=120)
    finally:
        shutil.rmtree("/tmp/td-tls", ignore_errors=True)
    lines = out.strip().splitlines()
    assert '"this endpoint needs a client certificate (mutual TLS)"' in lines[0], out
    assert lines[1] == "400", out  # the bound key, with its certificate, past authentication
    assert lines[-1] == "subject=CN = server-renewed", out  # the certificate renewed by SIGHUP
