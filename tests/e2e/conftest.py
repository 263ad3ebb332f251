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

    def start(self, settings=None, env=None, name=None, workdir=None, host="127.0.0.1", tls_ca=None):
        """A new server; workdir=<an earlier server's dir> restarts on its store;
        tls_ca: an HTTPS server's CA file (tdlib.Server)."""
        name = name or f"{self.label}-{len(self.servers)}"
        if workdir is None:
            workdir = str(self.tmp_path_factory.mktemp(name))
        srv = tdlib.Server(workdir, name=name, settings=settings, env=env, host=host, tls_ca=tls_ca)
        self.servers.append(srv)
        return srv.start()

    def restart(self, old, settings=None, env=None):
        """Another process on the same store dir (keys, admin key, database)."""
        assert not old.alive, "stop or kill the old server first"
        return self.start(settings=settings if settings is not None else _explicit(old),
                          env=env if env is not None else old.extra_env,
                          name=old.name + "-r", workdir=old.dir, tls_ca=old.tls_ca)

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


# ---------------------------------------------------------------------------
# Network tokenization (docs/network.md): issuers with issuer and network
# keys, the card policy, the simulated TSP and the admin outbox.
# ---------------------------------------------------------------------------

import random as _random
import string as _string

# tokend's timer runner period; the step-up tests use sessions of seconds.
TIMER_FLAG = "timer-interval-ms"
NET_SETTINGS = {TIMER_FLAG: "100"}

D1_ERROR_KEYS = {"error", "errorCode", "traceId"}
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
DC_ID = re.compile(r"^dc_[A-Za-z0-9_-]{1,61}$")
OP_ID = re.compile(r"^op_[A-Za-z0-9_-]{1,61}$")

# The tables the network faces write (src/store/sqlite/migrations/003_cards.sql):
# equal snapshots = nothing changed.
NET_SNAPSHOT_QUERIES = {
    "issuers": "SELECT * FROM issuers ORDER BY id",
    "cards": "SELECT issuer_id, card_id, consumer_id, pan_fp, hex(pan_sealed) AS sealed, last4, expiry, phone, "
             "email, state, seq, created_ms, updated_ms FROM cards ORDER BY issuer_id, card_id",
    "digital_cards": "SELECT * FROM digital_cards ORDER BY id",
    "dcard_events": "SELECT * FROM dcard_events ORDER BY digital_card_id, seq",
    "operations": "SELECT * FROM operations ORDER BY id",
    "outbox": "SELECT id, issuer_id, channel, digital_card_id, card_id, dcard_seq, operation_id, operation, status, "
              "error_code, source, correlation_id, message, method_id, hex(secret_sealed) AS secret, event_ms, "
              "created_ms, due_ms, state FROM outbox ORDER BY id",
    "timers": "SELECT * FROM timers ORDER BY id",
    "idempotency": "SELECT * FROM idempotency ORDER BY scope, key",
}


def net_snapshot(db_path):
    """Every row the network faces write (for 'nothing changed' checks)."""
    return tdlib.sql_many(db_path, NET_SNAPSHOT_QUERIES)


def luhn_complete(digits):
    """digits + the Luhn check digit."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return digits + str((10 - total % 10) % 10)


def new_pan(prefix="4", length=16):
    """A random PAN that passes the Luhn check."""
    body = prefix + "".join(_random.choice(_string.digits) for _ in range(length - len(prefix) - 1))
    return luhn_complete(body)


def future_expiry(years=3):
    return "12%02d" % ((time.gmtime().tm_year + years) % 100)


def new_issuer_id(prefix="IS"):
    return prefix + "".join(_random.choice(_string.ascii_uppercase + _string.digits) for _ in range(10 - len(prefix)))


def unique(prefix):
    return prefix + "-" + "".join(_random.choice(_string.ascii_lowercase + _string.digits) for _ in range(10))


def iso_now(offset_ms=0):
    t = time.time() + offset_ms / 1000.0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def assert_d1_error(r, status, error_code=None, names=None):
    """The D1 error shape: {"error", "errorCode", "traceId"}, all non-empty
    strings; `names` must appear in the message (e.g. the unknown field)."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == D1_ERROR_KEYS, body
    for k in D1_ERROR_KEYS:
        assert isinstance(body[k], str) and body[k], body
    if error_code is not None:
        assert body["errorCode"] == error_code, body
    if names:
        assert names in body["error"], (names, body)
    return body


def assert_classic_error(r, code):
    """Classic: 400 {"responseCode": <number>, "errorMessage": "..."}."""
    assert r.status_code == 400, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"responseCode", "errorMessage"}, body
    assert isinstance(body["responseCode"], int) and not isinstance(body["responseCode"], bool), body
    assert isinstance(body["errorMessage"], str) and body["errorMessage"], body
    assert body["responseCode"] == code, body
    return body


class Card:
    def __init__(self, card_id, pan, expiry, phone, email, view):
        self.id = card_id
        self.pan = pan
        self.expiry = expiry
        self.phone = phone
        self.email = email
        self.view = view


class NetIssuer:
    """An issuer with an API key of each role (issuer, network) on one server,
    and helpers for every face of docs/network.md. The clients do not record
    captures: the Token.io contract check is for member tokens."""

    def __init__(self, server, issuer_id=None, name="Test Issuer"):
        self.server = server
        self.id = issuer_id or new_issuer_id()
        adm = server.admin()
        r = adm.post("/admin/v1/issuers", json={"issuerId": self.id, "displayName": name})
        assert r.status_code == 201, (r.status_code, r.text)
        self.issuer_key = self._key("issuer")
        self.network_key = self._key("network")
        self.bind(server)

    def _key(self, role):
        r = self.server.admin().post(f"/admin/v1/issuers/{self.id}/api-keys", json={"role": role})
        assert r.status_code == 201, (r.status_code, r.text)
        return r.json()["apiKey"]

    def bind(self, server):
        """Points the clients at server (e.g. a restart on the same store)."""
        self.server = server
        self.iss = tdlib.Client(server, headers={"Authorization": "Bearer " + self.issuer_key}, capture=False)
        self.net = tdlib.Client(server, headers={"Authorization": "Bearer " + self.network_key}, capture=False)
        self.adm = server.admin()
        return self

    # -- Issuer API --

    def path(self, rest=""):
        return f"/banking/v1/issuers/{self.id}{rest}"

    def register_card(self, card_id=None, pan=None, expiry=None, phone="+33 6 12 34 56 78",
                      email="jane@example.com", consumer_id="cons-42", state=None, expect=201):
        card_id = card_id or unique("card")
        pan = pan or new_pan()
        expiry = expiry or future_expiry()
        body = {"cardId": card_id, "consumerId": consumer_id, "pan": pan, "expiry": expiry}
        if phone is not None:
            body["phone"] = phone
        if email is not None:
            body["email"] = email
        if state is not None:
            body["state"] = state
        r = self.iss.post(self.path("/cards"), json=body)
        assert r.status_code == expect, (r.status_code, r.text)
        return Card(card_id, pan, expiry, phone, email, r.json() if r.status_code == 201 else None)

    def card(self, card_id, expect=200):
        r = self.iss.get(self.path(f"/cards/{card_id}"))
        assert r.status_code == expect, (r.status_code, r.text)
        return r.json()

    def dcard(self, dc, expect=200):
        r = self.iss.get(self.path(f"/digitalCards/{dc}"))
        assert r.status_code == expect, (r.status_code, r.text)
        return r.json()

    def state(self, dc):
        return self.dcard(dc)["state"]

    def operation(self, op_id, expect=200):
        r = self.iss.get(self.path(f"/operations/{op_id}"))
        assert r.status_code == expect, (r.status_code, r.text)
        return r.json()

    def dcard_op(self, dc, verb, body=None, headers=None):
        """POST …/digitalCards/{dc}/operations:{verb}; the response."""
        kw = {"headers": headers}
        if body is not None:
            kw["json"] = body
        return self.iss.post(self.path(f"/digitalCards/{dc}/operations:{verb}"), **kw)

    def card_op(self, card_id, verb, body=None, headers=None):
        kw = {"headers": headers}
        if body is not None:
            kw["json"] = body
        return self.iss.post(self.path(f"/cards/{card_id}/operations:{verb}"), **kw)

    def dcard_op_ok(self, dc, verb, body=None):
        r = self.dcard_op(dc, verb, body)
        assert r.status_code == 200, (r.status_code, r.text)
        assert set(r.json()) == {"operationId"} and OP_ID.match(r.json()["operationId"]), r.text
        return r.json()["operationId"]

    # -- Network API --

    def tokenize_body(self, card, wallet=5, device=5, correlation_id=None, by_ref=False, phone=None, email=None,
                      wallet_provider="APPLE_PAY", **extra):
        if isinstance(card, Card):
            card_obj = {"cardId": card.id} if by_ref else {"pan": card.pan, "expiry": card.expiry}
        else:
            card_obj = card
        body = {"correlationId": correlation_id or unique("corr"), "card": card_obj,
                "walletProviderId": wallet_provider, "tokenRequestorId": "40010030273", "tokenStorageId": "SE-01",
                "isPrimary": True, "device": {"id": "dev-1", "type": "PHONE", "name": "Jane's phone", "os": "iOS"}}
        scores = {}
        if wallet is not None:
            scores["wallet"] = wallet
        if device is not None:
            scores["device"] = device
        if scores:
            body["scores"] = scores
        end_user = {}
        if phone is not None:
            end_user["phone"] = phone
        if email is not None:
            end_user["email"] = email
        if end_user:
            body["endUser"] = end_user
        body.update(extra)
        return body

    def tokenize_raw(self, card, **kw):
        return self.net.post("/network/v1/tokenizations", json=self.tokenize_body(card, **kw))

    def tokenize(self, card, expect_decision=None, **kw):
        """A tokenization; the 200 answer as a dict."""
        r = self.tokenize_raw(card, **kw)
        assert r.status_code == 200, (r.status_code, r.text)
        a = r.json()
        assert a["decision"] in ("GREEN", "YELLOW", "RED"), a
        assert DC_ID.match(a["digitalCardId"]) and OP_ID.match(a["operationId"]), a
        if expect_decision:
            assert a["decision"] == expect_decision, a
        return a

    def green(self, card, **kw):
        return self.tokenize(card, "GREEN", **kw)["digitalCardId"]

    def yellow(self, card, **kw):
        kw.setdefault("wallet", 3)
        return self.tokenize(card, "YELLOW", **kw)

    def event_raw(self, dc, type_, source="TSP", event_id=None, **kw):
        body = {"eventId": event_id or unique("ev"), "digitalCardId": dc, "type": type_, "source": source}
        body.update(kw)
        return self.net.post("/network/v1/events", json=body)

    def event(self, dc, type_, source="TSP", expect_result=None, **kw):
        r = self.event_raw(dc, type_, source, **kw)
        assert r.status_code == 200, (r.status_code, r.text)
        a = r.json()
        if expect_result:
            assert a["result"] == expect_result, a
        return a

    def otp(self, dc, method_id="otp-sms", otp="123456"):
        return self.net.post(f"/network/v1/digitalCards/{dc}/otp", json={"methodId": method_id, "otp": otp})

    # -- admin --

    def set_policy(self, policy):
        return set_card_policy(self.server, self.id, policy)

    def policy(self):
        r = self.adm.get(f"/admin/v1/issuers/{self.id}/card-policy")
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def outbox(self, after=0, state=None, dc=None, card_id=None):
        rows = read_outbox(self.server, self.id, after=after, state=state)
        if dc is not None:
            rows = [o for o in rows if o["digitalCardId"] == dc]
        if card_id is not None:
            rows = [o for o in rows if o["cardId"] == card_id]
        return rows

    def last_outbox_id(self):
        rows = read_outbox(self.server, self.id)
        return rows[-1]["id"] if rows else 0

    def set_tsp(self, mode, count=0):
        set_tsp(self.server, mode, count)


def set_card_policy(server, issuer_id, policy):
    """PUT /admin/v1/issuers/{id}/card-policy with the fields to change; the policy in effect."""
    r = server.admin().put(f"/admin/v1/issuers/{issuer_id}/card-policy", json=policy)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def read_outbox(server, issuer_id, after=0, state=None, limit=100):
    """Every outbox row of the issuer after `after` (all pages), in order."""
    rows = []
    while True:
        params = {"after": str(after), "limit": str(limit)}
        if state:
            params["state"] = state
        r = server.admin().get(f"/admin/v1/issuers/{issuer_id}/outbox", params=params)
        assert r.status_code == 200, (r.status_code, r.text)
        page = r.json()["outbox"]
        rows += page
        if len(page) < limit:
            return rows
        after = page[-1]["id"]


def set_tsp(server, mode, count=0):
    r = server.admin().post("/admin/v1/tsp", json={"mode": mode, "count": count})
    assert r.status_code == 200, (r.status_code, r.text)


def summary(row):
    """'ISSUER DIGITIZE FAILED CANCELED_BY_USER' or 'USER OTP'."""
    if row["channel"] == "USER":
        return "USER " + row["message"]
    s = f'{row["channel"]} {row["operation"]} {row["status"]}'
    return s + (" " + row["errorCode"] if row.get("errorCode") else "")


def summaries(rows):
    return [summary(r) for r in rows]


@pytest.fixture(scope="module")
def net_tokend(module_tokend_pool):
    """One tokend per test module for the network faces, with a fast timer runner."""
    return module_tokend_pool.start(settings=NET_SETTINGS)


@pytest.fixture
def net_issuer(net_tokend):
    """A fresh issuer (own tenant) with issuer and network keys, on net_tokend."""
    return NetIssuer(net_tokend)


@pytest.fixture
def net_issuer2(net_tokend):
    """A second issuer on the same server (tenancy checks)."""
    return NetIssuer(net_tokend)


@pytest.fixture
def net_member(net_tokend):
    """A Token API member (wrong-role key checks)."""
    return tdlib.new_member(net_tokend, "Member", levels=("STANDARD",))


# ---------------------------------------------------------------------------
# Notification delivery (docs/notifications.md): the reference receiver
# (`tokenctl listen`, docs/receiver.md) as a real process, and an issuer's
# delivery settings through the admin API.
# ---------------------------------------------------------------------------

import json as _json
import os as _os
import signal as _signal
import subprocess as _subprocess

TOKENCTL_BIN = _os.environ.get("TOKENCTL_BIN") or _os.path.join(tdlib.REPO, "build", "tokenctl")
# The delivery worker looks for due rows every 50 ms in these tests.
DELIVERY_SETTINGS = dict(NET_SETTINGS, **{"delivery-poll-ms": "50"})


class Receiver:
    """`tokenctl listen` on a loopback port: its JSON lines in a file, its view
    from GET /state. restart() keeps the port and the state file."""

    def __init__(self, workdir, name, args):
        self.dir = workdir
        self.name = name
        self.args = list(args)
        self.state_file = _os.path.join(workdir, f"{name}.state.json")
        self.out_path = _os.path.join(workdir, f"{name}.out")
        self.err_path = _os.path.join(workdir, f"{name}.err")
        self.proc = None
        self.port = 0

    def start(self, port=None, args=None):
        if args is not None:
            self.args = list(args)
        cmd = [TOKENCTL_BIN, "listen", "--port", str(port if port is not None else self.port),
               "--state-file", self.state_file] + self.args
        out = open(self.out_path, "ab")
        start_at = out.tell()
        err = open(self.err_path, "ab")
        self.proc = _subprocess.Popen(cmd, stdin=_subprocess.DEVNULL, stdout=out, stderr=err)
        out.close()
        err.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(self.out_path, "rb") as f:
                f.seek(start_at)
                first = f.readline()
            if first.endswith(b"\n"):
                info = _json.loads(first)
                self.port = info["port"]
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"tokenctl listen did not start: {self.stderr()}")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM by pid; the exit code (the receiver exits 0)."""
        if self.alive:
            _os.kill(self.proc.pid, _signal.SIGTERM)
            self.proc.wait(20)
        return self.proc.returncode if self.proc else 0

    def kill(self):
        if self.alive:
            _os.kill(self.proc.pid, _signal.SIGKILL)
            self.proc.wait(20)

    def stderr(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def text(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def lines(self):
        """Every JSON line printed so far (all runs)."""
        return [_json.loads(l) for l in self.text().splitlines() if l.startswith("{")]

    def state(self):
        import requests as _requests
        r = _requests.get(self.url + "/state", timeout=10)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def token(self, dc):
        return self.state()["tokens"].get(dc)

    def post(self, path, body, headers=None):
        """A callback sent by the test itself (duplicates, late ones)."""
        import requests as _requests
        return _requests.post(self.url + path, data=body if isinstance(body, (bytes, str)) else _json.dumps(body),
                              headers=dict({"Content-Type": "application/json"}, **(headers or {})), timeout=10)


class ReceiverPool:
    def __init__(self, tmp_path_factory, label):
        self.tmp_path_factory = tmp_path_factory
        self.label = label
        self.receivers = []

    def start(self, *args, port=0):
        rx = Receiver(str(self.tmp_path_factory.mktemp(f"{self.label}-rx{len(self.receivers)}")),
                      f"rx{len(self.receivers)}", args)
        self.receivers.append(rx)
        return rx.start(port=port)

    def stop_all(self):
        problems = []
        for rx in self.receivers:
            if rx.alive:
                rc = rx.stop()
                if rc != 0:
                    problems.append(f"{rx.name}: exit code {rc}\n{rx.stderr()}")
        return problems


@pytest.fixture
def receivers(tmp_path_factory, request):
    """Reference receivers (`tokenctl listen`), stopped by pid at the end."""
    pool = ReceiverPool(tmp_path_factory, re.sub(r"[^A-Za-z0-9_-]+", "_", request.node.name)[:40])
    yield pool
    problems = pool.stop_all()
    if problems:
        pytest.fail("tokenctl listen: " + "\n".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def delivery_tokend(module_tokend_pool):
    """One tokend per module with a fast timer runner and delivery worker."""
    return module_tokend_pool.start(settings=DELIVERY_SETTINGS)


def set_delivery(server, issuer_id, body, expect=200):
    """PUT /admin/v1/issuers/{id}/delivery; the answer's JSON."""
    r = server.admin().put(f"/admin/v1/issuers/{issuer_id}/delivery", json=body)
    assert r.status_code == expect, (r.status_code, r.text)
    return r.json()


def wait_delivered(server, issuer_id, timeout=30, states=("DELIVERED",)):
    """Waits until every outbox row of the issuer is in `states` (CANCELLED rows
    — an OTP whose step-up ended — never go); the rows."""
    def done():
        rows = read_outbox(server, issuer_id)
        return rows if rows and all(r["state"] in states + ("CANCELLED",) for r in rows) else None
    return tdlib.wait_until(done, timeout=timeout, interval=0.1, what=f"{issuer_id}'s outbox to be delivered")
