"""test_docs.py — commands the documentation says run as written, run as
written: each block marked `<!-- test_docs: NAME -->` in README.md, with
build/tokend replaced by the binary under test. It starts its own PostgreSQL
(scripts/pg.sh), so it runs once, in the SQLite run of the suite."""

import os
import re
import subprocess

import pytest

import tdlib

pytestmark = pytest.mark.skipif(tdlib.E2E_STORE != "sqlite", reason="runs once, in the SQLite run")


def doc_block(path, name):
    text = open(os.path.join(tdlib.REPO, path)).read()
    m = re.search(r"<!-- test_docs: " + re.escape(name) + r" -->\s*```sh\n(.*?)```", text, re.S)
    assert m, f"no block '{name}' in {path}"
    return m.group(1)


def test_readme_several_nodes_on_postgres():
    script = doc_block("README.md", "several-nodes").replace("build/tokend", tdlib.TOKEND_BIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOKEND_", "PG"))}
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tdlib.REPO, env=env, capture_output=True,
                       text=True, timeout=180)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert p.stdout.strip().splitlines()[-1] == "0", p.stdout  # node A served the key node B made
    assert not os.path.exists("/tmp/tokend-pg"), "the block cleans up after itself"
