"""test_ops.py — operations: /healthz, /readyz, /metrics (Prometheus text),
one JSON log line per request carrying the response's Token-Trace-Id, no
secret in the log, and settings from flags, environment and config file."""

import base64
import os
import subprocess

import requests

from tdlib import (HTTP_TIMEOUT, TOKEND_BIN, Client, assert_tokenio_error, authorize, consent_flow, decide,
                   new_member, parse_metrics, query_params, request_body, store_request, wait_until)


def test_healthz_and_readyz(tokend):
    for path, body in (("/healthz", {"status": "ok"}), ("/readyz", {"status": "ready"})):
        r = requests.get(tokend.url + path, timeout=HTTP_TIMEOUT)
        assert r.status_code == 200 and r.json() == body, r.text
        assert r.headers["Content-Type"].startswith("application/json")
        assert len(r.headers["Token-Trace-Id"]) == 32


def _metrics(srv):
    r = requests.get(srv.url + "/metrics", timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain"), r.headers
    return r.text


def _value(samples, name, **labels):
    vals = [v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in labels.items())]
    return sum(vals) if vals else 0


def test_metrics(tokend, bank, tpp):
    tc = tpp.client()
    flow = consent_flow(tc, tpp, bank, view_page=False)
    for _ in range(3):
        assert tc.get(f"/tokens/{flow.token_id}").status_code == 200
    assert tc.get("/tokens/ta:missing:1").status_code == 404
    assert Client(tokend).get(f"/tokens/{flow.token_id}").status_code == 401
    assert tc.get("/nowhere").status_code == 404
    assert tc.put(f"/tokens/{flow.token_id}/cancel").status_code == 200

    # Metrics are counted when a request completes, just after its answer: poll.
    def ready():
        s = parse_metrics(_metrics(tokend))
        return s if _value(s, "tokend_requests_total", route="/tokens/{tokenId}/cancel", status="200") >= 1 else None
    samples = wait_until(ready, what="the cancel to be counted")
    text = _metrics(tokend)
    assert "# TYPE tokend_requests_total counter" in text
    assert "# TYPE tokend_request_duration_seconds histogram" in text
    assert "# TYPE tokend_store_commit_batch_size histogram" in text

    get_token = dict(method="GET", route="/tokens/{tokenId}")
    assert _value(samples, "tokend_requests_total", status="200", **get_token) >= 3
    assert _value(samples, "tokend_requests_total", status="404", **get_token) >= 1
    assert _value(samples, "tokend_requests_total", status="401", **get_token) >= 1
    assert _value(samples, "tokend_requests_total", route="unmatched", status="404") >= 1
    assert _value(samples, "tokend_requests_total", method="PUT", route="/tokens/{tokenId}/cancel", status="200") == 1
    for name, labels, _ in samples:
        if name == "tokend_requests_total":
            assert set(labels) == {"method", "route", "status"}, labels

    # The latency histogram: cumulative buckets per route, +Inf = count.
    routes = {(l["method"], l["route"]) for n, l, _ in samples if n == "tokend_request_duration_seconds_bucket"}
    assert ("GET", "/tokens/{tokenId}") in routes
    for method, route in routes:
        buckets = [(l["le"], v) for n, l, v in samples
                   if n == "tokend_request_duration_seconds_bucket" and l["route"] == route and l["method"] == method]
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), (route, buckets)
        assert buckets[-1][0] == "+Inf"
        count = _value(samples, "tokend_request_duration_seconds_count", method=method, route=route)
        assert buckets[-1][1] == count > 0
        assert _value(samples, "tokend_request_duration_seconds_sum", method=method, route=route) >= 0

    # Group commit: jobs per transaction.
    batch = [(l["le"], v) for n, l, v in samples if n == "tokend_store_commit_batch_size_bucket"]
    assert [le for le, _ in batch] == ["1", "3", "7", "15", "31", "63", "127", "+Inf"], batch
    assert [v for _, v in batch] == sorted(v for _, v in batch)
    commits = _value(samples, "tokend_store_commit_batch_size_count")
    jobs = _value(samples, "tokend_store_commit_batch_size_sum")
    assert batch[-1][1] == commits and 1 <= commits <= jobs
    # At least: 2 members + 6 API keys + request + authorization + consent + cancel.
    assert jobs >= 12, jobs
    assert _value(samples, "tokend_requests_in_flight") >= 1


def test_one_log_line_per_request_and_no_secrets(tokend_factory):
    srv = tokend_factory.start()
    bank = new_member(srv, "bank")
    tpp = new_member(srv, "tpp")
    tc = tpp.client()
    sent = []  # (response, method, route, member)

    def note(r, method, route, member=None):
        sent.append((r, method, route, member))
        return r

    rid = store_request(tc, request_body(tpp.id, bank.id))
    url = authorize(tc, rid)
    code = url.rsplit("/", 1)[1]
    note(requests.get(url, timeout=HTTP_TIMEOUT), "GET", "/consent/{code}")
    r = note(decide(url, "approve", accounts=("a:1",)), "POST", "/consent/{code}")
    token_id = query_params(r.headers["Location"])["tokenId"]
    note(tc.get(f"/tokens/{token_id}"), "GET", "/tokens/{tokenId}", tpp.id)
    note(tpp.client("LOW", basic=True).put(f"/tokens/{token_id}/cancel"), "PUT", "/tokens/{tokenId}/cancel", tpp.id)
    note(tc.get("/tokens", params={"page.limit": "0"}), "GET", "/tokens", tpp.id)
    wrong_key = "tk_" + "S3cr3t" * 7
    note(Client(srv, {"Authorization": "Bearer " + wrong_key}).get("/tokens?page.limit=1"), "GET", "/tokens")
    wrong_basic = base64.b64encode(f"{bank.id}:{tpp.keys['STANDARD']}".encode()).decode()
    note(Client(srv, {"Authorization": "Basic " + wrong_basic}).get("/tokens?page.limit=1"), "GET", "/tokens")
    note(tc.get("/no/such/path"), "GET", "unmatched", None)
    note(tc.delete(f"/tokens/{token_id}"), "DELETE", "unmatched", None)
    note(requests.get(srv.url + "/healthz", timeout=HTTP_TIMEOUT), "GET", "/healthz")
    srv.set_fault("unavailable")
    note(requests.get(srv.url + "/readyz", timeout=HTTP_TIMEOUT), "GET", "/readyz")
    srv.set_fault("none")
    note(srv.admin().post("/admin/v1/members", json={"displayName": "c"}), "POST", "/admin/v1/members")

    assert srv.stop() == 0  # every line is written once the process is gone
    records = srv.log_records()
    text = srv.log_text()
    lines = [l for l in text.splitlines() if l.strip() and not l.startswith("=== start")]
    assert all(l.startswith("{") for l in lines), [l for l in lines if not l.startswith("{")][:5]
    assert len(records) == len(lines), "every log line is one JSON object"
    for rec in records:
        assert isinstance(rec["tsMs"], int) and rec["level"] in ("debug", "info", "warn", "error") and rec["event"]
    by_trace = {}
    for rec in records:
        if rec["event"] == "request":
            by_trace.setdefault(rec["tokenTraceId"], []).append(rec)
    for r, method, route, member in sent:
        trace = r.headers["Token-Trace-Id"]
        recs = by_trace.get(trace, [])
        assert len(recs) == 1, (trace, r.status_code, recs)
        rec = recs[0]
        assert rec["status"] == r.status_code and rec["route"] == route, (rec, r.status_code, route)
        if method in ("GET", "POST", "PUT", "DELETE"):
            assert rec["method"] == method, rec
        assert rec.get("memberId") == member, rec
        assert isinstance(rec["durationUs"], int) and rec["durationUs"] >= 0
        if r.status_code >= 500:
            assert rec["level"] == "error" and rec["fault"] == "server" and rec["errorCode"], rec
        elif r.status_code >= 400:
            assert rec["fault"] == "caller" and rec["errorCode"], rec
        else:
            assert "fault" not in rec and "errorCode" not in rec, rec
    # Every request of the run is logged, and no trace id twice.
    assert all(len(v) == 1 for v in by_trace.values())

    secrets = {"admin key": srv.admin_key, "consent code": code, "wrong key": wrong_key, "basic": wrong_basic}
    for m in (bank, tpp):
        for level, key in m.keys.items():
            secrets[f"{m.name} {level} key"] = key
            secrets[f"{m.name} {level} key secret"] = key[3:]
    with open(os.path.join(srv.dir, "master.key")) as f:
        secrets["master key"] = f.read().strip()
    leaked = [name for name, value in secrets.items() if value in text]
    assert not leaked, f"secrets in the log: {leaked}"


def _run(args, env=None, timeout=60, cwd=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("TOKEND_")}
    e.update(env or {})
    return subprocess.run([TOKEND_BIN] + args, capture_output=True, text=True, timeout=timeout, env=e, cwd=cwd)


def test_command_line(tmp_path):
    p = _run(["serve", "--help"])
    assert p.returncode == 0
    for name in ("listen", "store", "rate-limit", "commit-timeout", "body-max", "fault-injection"):
        assert f"--{name}" in p.stderr
    store = ["--store", f"sqlite:{tmp_path}/x.db"]
    for bad in (["serve", "--bogus", "1"], ["serve", "--rate-limit", "fast"], ["serve", "--listen", "nowhere"],
                ["serve", "--cancel-levels", "ACCESS=HIGH"], ["serve"] + store + ["--commit-timeout"], ["frobnicate"]):
        p = _run(bad, cwd=tmp_path)
        assert p.returncode == 2, (bad, p.returncode, p.stderr)
    p = _run(["serve"] + store, env={"TOKEND_BODY_MAX": "12"}, cwd=tmp_path)
    assert p.returncode == 2 and "body_max" in p.stderr
    assert not os.path.exists(f"{tmp_path}/x.db"), "a refused configuration must not create the store"


def test_settings_from_file_environment_and_flags(tokend_factory, tmp_path):
    """Flags override the environment, which overrides the config file."""
    conf = tmp_path / "tokend.conf"
    conf.write_text("# test\nbody-max = 2048\nrate-limit = 2:2\n")
    srv = tokend_factory.start(settings={"config": str(conf), "rate-limit": None},
                               env={"TOKEND_RATE_LIMIT": "1000:1000"})
    m = new_member(srv, "m", levels=("STANDARD",))
    c = m.client()
    body = b'{"x":"' + b"a" * 3000 + b'"}'
    assert_tokenio_error(c.post("/token-requests", data=body, headers={"Content-Type": "application/json"}), 413)
    for _ in range(10):  # env 1000:1000 beats the file's 2:2
        assert c.get("/tokens", params={"page.limit": "1"}).status_code == 200
    srv2 = tokend_factory.start(settings={"config": str(conf), "body-max": "4096"})
    m2 = new_member(srv2, "m", levels=("STANDARD",))
    r = m2.client().post("/token-requests", data=body, headers={"Content-Type": "application/json"})
    assert_tokenio_error(r, 400)  # the flag beats the file: 3 KB is allowed, and judged on content


def test_admin_key_from_the_environment(tokend_factory):
    """TOKEND_ADMIN_KEY replaces the generated admin.key; other keys are refused."""
    key = "adm-" + base64.urlsafe_b64encode(os.urandom(18)).decode()
    srv = tokend_factory.start(env={"TOKEND_ADMIN_KEY": key})
    assert not os.path.exists(os.path.join(srv.dir, "admin.key"))
    m = new_member(srv, "m", levels=("LOW",))  # bootstrap with the environment's key
    assert m.client("LOW").get("/tokens", params={"page.limit": "1"}).status_code == 200
    for auth in ("Bearer " + key + "x", "Bearer " + key[:-1], "Basic " + key, key):
        r = Client(srv, {"Authorization": auth}, capture=False).post("/admin/v1/members", json={"displayName": "x"})
        assert_tokenio_error(r, 401, "UNAUTHENTICATED")
        assert key not in r.text
    assert key not in srv.log_text()
