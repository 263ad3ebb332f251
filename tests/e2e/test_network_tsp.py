"""test_network_tsp.py — the HTTP TSP connector (docs/network.md §The TSP
connector): with --tsp-url every issuer operation (and every step-up expiry)
is a POST to the TSP with the documented body, x-correlation-id and bearer;
4xx is a refusal (not retried, 502), 5xx and connection errors are retried
--tsp-retries times, a timeout is a 504; nothing changes on a failure; and
POST /admin/v1/tsp answers 409 when an HTTP connector is configured."""

import http.server
import json
import threading
import time

import pytest

import tdlib
from conftest import NET_SETTINGS, NetIssuer, assert_d1_error, summaries

BEARER = "tsp-bearer-Secret-7f3a"
BODY_KEYS = {"operation", "issuerId", "digitalCardId", "cardId", "operationId", "reason", "reasonCode", "requestor"}


class Stub:
    """A TSP on a free port: records each call; answers from a script of
    statuses (then 200), sleeping `delay` seconds first when set."""

    def __init__(self):
        self.calls = []
        self.script = []
        self.delay = 0.0
        self.lock = threading.Lock()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0") or 0)
                raw = self.rfile.read(n)
                with stub.lock:
                    stub.calls.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                       "body": json.loads(raw.decode()) if raw else None})
                    status = stub.script.pop(0) if stub.script else 200
                    delay = stub.delay
                if delay:
                    time.sleep(delay)
                out = b"{}"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/tsp/v1/operations"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def reset(self, script=(), delay=0.0):
        with self.lock:
            self.calls.clear()
            self.script = list(script)
            self.delay = delay

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def stub():
    s = Stub()
    yield s
    s.close()


@pytest.fixture(scope="module")
def tsp_tokend(module_tokend_pool, stub):
    return module_tokend_pool.start(settings=dict(NET_SETTINGS, **{
        "tsp-url": stub.url, "tsp-timeout-ms": "300", "tsp-retries": "2"}), env={"TOKEND_TSP_BEARER": BEARER})


@pytest.fixture
def iss(tsp_tokend, stub):
    i = NetIssuer(tsp_tokend)
    stub.reset()
    return i


def test_operation_request_shape(iss, stub):
    card = iss.register_card()
    dc = iss.green(card)  # a tokenization does not call the TSP
    assert stub.calls == []
    r = iss.dcard_op(dc, "suspend", {"reason": "Lost phone", "reasonCode": "DEVICE_LOST"})
    assert r.status_code == 200, r.text
    op = r.json()["operationId"]
    assert len(stub.calls) == 1, stub.calls
    c = stub.calls[0]
    assert c["path"] == "/tsp/v1/operations", c
    assert set(c["body"]) == BODY_KEYS, c["body"]
    b = c["body"]
    assert b["operation"] == "SUSPEND" and b["issuerId"] == iss.id and b["digitalCardId"] == dc, b
    assert b["cardId"] == card.id and b["operationId"] == op, b
    assert b["reason"] == "Lost phone" and b["reasonCode"] == "DEVICE_LOST", b
    assert isinstance(b["requestor"], str) and b["requestor"], b
    assert c["headers"]["x-correlation-id"] == op, c["headers"]
    assert c["headers"]["authorization"] == "Bearer " + BEARER, c["headers"]
    assert c["headers"]["content-type"].startswith("application/json"), c["headers"]
    assert card.pan not in json.dumps(c)
    for verb, name in (("resume", "RESUME"), ("delete", "DELETE")):
        iss.dcard_op_ok(dc, verb)
        assert stub.calls[-1]["body"]["operation"] == name, stub.calls[-1]
    assert len(stub.calls) == 3
    assert BEARER not in iss.server.log_text()


def test_refusal_is_not_retried(iss, stub):
    dc = iss.green(iss.register_card())
    last = iss.last_outbox_id()
    for status in (400, 404, 409):
        stub.reset([status])
        assert_d1_error(iss.dcard_op(dc, "suspend"), 502, "TSP_FAILED")
        assert len(stub.calls) == 1, (status, stub.calls)
    assert iss.state(dc) == "ACTIVE"
    assert iss.outbox(after=last) == []


def test_5xx_is_retried(iss, stub):
    dc = iss.green(iss.register_card())
    stub.reset([500, 503])
    op = iss.dcard_op_ok(dc, "suspend")
    assert len(stub.calls) == 3, stub.calls
    # The operation id stays the same on every attempt.
    assert {c["body"]["operationId"] for c in stub.calls} == {op}
    assert {c["headers"]["x-correlation-id"] for c in stub.calls} == {op}
    assert iss.state(dc) == "SUSPENDED"

    stub.reset([500, 502, 503])
    last = iss.last_outbox_id()
    assert_d1_error(iss.dcard_op(dc, "resume"), 502, "TSP_FAILED")
    assert len(stub.calls) == 3, stub.calls  # 1 + --tsp-retries 2
    assert iss.state(dc) == "SUSPENDED"
    assert iss.outbox(after=last) == []


def test_timeout(iss, stub):
    dc = iss.green(iss.register_card())
    last = iss.last_outbox_id()
    stub.reset(delay=1.0)
    t0 = time.monotonic()
    assert_d1_error(iss.dcard_op(dc, "delete"), 504, "TSP_TIMEOUT")
    assert time.monotonic() - t0 < 5
    assert len(stub.calls) == 3, stub.calls
    stub.reset()
    assert iss.state(dc) == "ACTIVE"
    assert iss.outbox(after=last) == []


def test_card_delete_cascade_calls_tsp_per_digital_card(iss, stub):
    card = iss.register_card()
    dcs = {iss.green(card) for _ in range(2)}
    r = iss.card_op(card.id, "delete")
    assert r.status_code == 200, r.text
    assert {c["body"]["digitalCardId"] for c in stub.calls} == dcs, stub.calls
    assert {c["body"]["operation"] for c in stub.calls} == {"DELETE"}
    assert len({c["body"]["operationId"] for c in stub.calls}) == 2


def test_step_up_expiry_deletes_through_tsp(iss, stub):
    iss.set_policy({"stepUp": {"firstReminderAfterSeconds": 60, "reminderEverySeconds": 60, "maxReminders": 0,
                               "sessionSeconds": 1}})
    card = iss.register_card()
    dc = iss.yellow(card)["digitalCardId"]
    tdlib.wait_until(lambda: iss.state(dc) == "DELETED", timeout=15, interval=0.1, what="the step-up expiry")
    calls = [c for c in stub.calls if c["body"]["digitalCardId"] == dc]
    assert len(calls) == 1, calls
    assert calls[0]["body"]["operation"] == "DELETE" and calls[0]["body"]["requestor"] == "D1", calls
    assert summaries(iss.outbox(dc=dc))[-1] == "ISSUER DIGITIZE FAILED STEP_UP_EXPIRED"


def test_admin_tsp_refused_with_http_connector(iss):
    r = iss.adm.post("/admin/v1/tsp", json={"mode": "fail", "count": 0})
    tdlib.assert_tokenio_error(r, 409)


def test_connection_error(tokend_factory):
    srv = tokend_factory.start(settings=dict(NET_SETTINGS, **{
        "tsp-url": f"http://127.0.0.1:{tdlib.free_port()}/tsp", "tsp-timeout-ms": "300", "tsp-retries": "1"}))
    i = NetIssuer(srv)
    dc = i.green(i.register_card())
    r = i.dcard_op(dc, "suspend")
    assert r.status_code in (502, 504), r.text
    assert_d1_error(r, r.status_code)
    assert i.state(dc) == "ACTIVE"
