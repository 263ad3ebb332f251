"""conftest.py — fixtures for tokend's black-box tests.

- `tokend`: the real binary on a free loopback port, its own temp dir for the
  SQLite store and keys, --fault-injection true and a generous --rate-limit;
  ready once /healthz answers; stopped by pid with SIGTERM at the end of the
  test, which fails unless it exits 0 within 20 s (so sanitizer reports and
  leaks fail the test that caused them).
- `tokend_factory`: more servers with other settings (low rate limit, short
  commit timeout, ...), or restarts on the same store; same stop rule, except for
  servers the test killed on purpose.
- `bank`, `tpp`, `other`: members of `tokend` with API keys at every level.
- Every Token API response received through tdlib.Client is appended to a
  JSON Lines file (fixture `capture_file`: $TD_E2E_CAPTURES if set, else in
  pytest's temp dir); test_zz_contract.py validates them with
  tests/contract/validate.js.
- On failure, the tail of each relevant server's log (its JSON lines on stderr)
  is added to the report.

Helpers live in tdlib.py; tests import them from there."""

import os
import re
import time

import pytest

import tdlib


def pytest_configure(config):
    if not os.access(tdlib.TOKEND_BIN, os.X_OK):
        raise pytest.UsageError(f"tokend binary not found at {tdlib.TOKEND_BIN} (set TOKEND_BIN)")


def pytest_report_header(config):
    return [f"tokend: {tdlib.TOKEND_BIN}"]


@pytest.fixture(scope="session", autouse=True)
def capture_file(tmp_path_factory):
    """The session's capture file: $TD_E2E_CAPTURES, else one in pytest's temp dir."""
    path = os.environ.get("TD_E2E_CAPTURES") or str(tmp_path_factory.mktemp("captures") / "captures.jsonl")
    open(path, "w").close()
    tdlib.CAPTURE_PATH = path
    return path


_test_started = {"t": 0.0}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _test_started["t"] = time.time()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for srv in tdlib.servers_for_report(_test_started["t"]):
            rep.sections.append((f"tokend log tail: {srv.name} ({srv.log_path})", srv.tail(60)))


class ServerPool:
    """Starts servers in temp dirs; stops every one of them at the end."""

    def __init__(self, tmp_path_factory, label):
        self.tmp_path_factory = tmp_path_factory
        self.label = label
        self.servers = []

    def start(self, settings=None, env=None, name=None, workdir=None):
        """A new server; workdir=<an earlier server's dir> restarts on its store."""
        name = name or f"{self.label}-{len(self.servers)}"
        if workdir is None:
            workdir = str(self.tmp_path_factory.mktemp(name))
        srv = tdlib.Server(workdir, name=name, settings=settings, env=env)
        self.servers.append(srv)
        return srv.start()

    def restart(self, old, settings=None, env=None):
        """Another process on the same store dir (keys, admin key, database)."""
        assert not old.alive, "stop or kill the old server first"
        return self.start(settings=settings if settings is not None else _explicit(old),
                          env=env if env is not None else old.extra_env,
                          name=old.name + "-r", workdir=old.dir)

    def stop_all(self):
        problems = []
        for srv in self.servers:
            if srv.proc is None or srv.killed or (srv.exit_checked and not srv.alive):
                continue
            if srv.alive:
                rc = srv.stop()
                if rc is None:
                    srv.kill()
                    problems.append(f"{srv.name}: did not exit within {tdlib.STOP_TIMEOUT} s of SIGTERM (killed)")
                    continue
            rc = srv.returncode
            if rc != 0:
                problems.append(f"{srv.name}: exit code {rc} (expected 0)\n{srv.tail(40)}")
        return problems


def _explicit(srv):
    """The settings a server was started with, minus the defaults added anyway."""
    return {k: v for k, v in srv.settings.items() if tdlib.DEFAULT_SETTINGS.get(k) != v}


@pytest.fixture
def tokend_factory(tmp_path_factory, request):
    pool = ServerPool(tmp_path_factory, re.sub(r"[^A-Za-z0-9_-]+", "_", request.node.name)[:40])
    yield pool
    problems = pool.stop_all()
    if problems:
        pytest.fail("tokend shutdown: " + "\n".join(problems), pytrace=False)


@pytest.fixture
def tokend(tokend_factory):
    return tokend_factory.start()


@pytest.fixture(scope="module")
def module_tokend_pool(tmp_path_factory, request):
    """A pool shared by one module's tests (for worlds that tests do not change)."""
    pool = ServerPool(tmp_path_factory, request.module.__name__)
    yield pool
    problems = pool.stop_all()
    if problems:
        pytest.fail("tokend shutdown: " + "\n".join(problems), pytrace=False)


@pytest.fixture
def bank(tokend):
    """The granting member (the user's bank side): keys at every level."""
    return tdlib.new_member(tokend, "Alice at Bank")


@pytest.fixture
def tpp(tokend):
    """The requesting member (a TPP): keys at every level."""
    return tdlib.new_member(tokend, "Budget app")


@pytest.fixture
def other(tokend):
    """A member who is party to nothing."""
    return tdlib.new_member(tokend, "Mallory")
