"""test_failover.py — tokend on a pg_auto_failover formation (issue 11, section 5
"Failover with an existing engine").

The formation is the test module's own (scripts/pgaf.sh: a monitor, a primary
and a synchronous secondary on loopback ports, stopped by PID at the end), and
tokend is given both hosts with target_session_attrs=read-write.

1. Failover under load: two tokend nodes on the formation; writers in threads
   on both nodes send Token API cancels, network events and issuer operations,
   and every answer is recorded. The primary's postmaster is killed with
   SIGKILL (pgaf.sh kill-primary, which keeps pg_autoctl from restarting it in
   place until the monitor has failed over); the secondary is promoted; the
   writers go on until each has 2xx answers again. Then:
   - every 2xx is in the database: a canceled token is CANCELED with the
     signature the answer carried, an answered event is in dcard_events under
     the answer's sequence, an answered operation exists;
   - every other answer is a 503 in its face's error shape (Token.io, D1) or a
     504: never a 500, never a hang, never a 2xx missing afterwards; a 503 that
     says nothing was changed changed nothing;
   - every notification owed (outbox ISSUER rows) ends DELIVERED and the
     reference receiver took each into effect once (duplicates allowed);
   - /readyz answered 503 while no primary was reachable, or the outage was
     shorter than the poll could see (recorded, not asserted);
   - both nodes serve 2xx afterwards without a restart; so does a third node
     that was idle through the failover (the requests its stale connections
     failed are recorded).
2. kill -9 of one tokend node under load: the other keeps serving and
   delivers the rows the dead node had leased.

PostgreSQL run only (TD_E2E_STORE=pg); skipped without pg_autoctl
(scripts/deps.sh --test installs pg_auto_failover). Timings of the failover
are printed (pytest -s) and kept in the report's user properties."""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

import pytest
import requests

import tdlib
from conftest import DELIVERY_SETTINGS, TOKENCTL_BIN, NetIssuer, assert_d1_error, set_delivery, unique, wait_delivered
from tdlib import consent_flow, new_member, signatures

PGAF_SH = os.path.join(tdlib.REPO, "scripts", "pgaf.sh")
PG_AUTOCTL = os.environ.get("PG_AUTOCTL") or shutil.which("pg_autoctl")

pytestmark = [
    pytest.mark.skipif(tdlib.E2E_STORE != "pg", reason="PostgreSQL store (TD_E2E_STORE=pg)"),
    pytest.mark.skipif(not PG_AUTOCTL, reason="pg_autoctl not installed: scripts/deps.sh --test installs "
                                              "pg_auto_failover (pg-auto-failover-cli, postgresql-15-auto-failover)"),
    pytest.mark.skipif(not os.access(TOKENCTL_BIN, os.X_OK), reason="tokenctl not built (TOKENCTL_BIN)"),
]

# Fast delivery workers and short leases (a dead node's rows go out again soon).
NODE_SETTINGS = dict(DELIVERY_SETTINGS, **{"delivery-lease-ms": "3000"})
REQUEST_TIMEOUT = 20  # a request unanswered this long is a hang: the test fails
PACE = 0.04           # seconds between two requests of one writer
TOKENS_PER_NODE = 40  # tokens each node's cancel writer cancels (then cancels again)
LOAD_CAP = 90         # seconds: the load stops by then whatever happens,
MAX_PER_WRITER = 1500  # or after so many requests of one writer


class Formation:
    def __init__(self, path, url, workdir):
        self.path = path
        self.url = url
        self.workdir = workdir  # tokend's keys and pg_url, shared by its nodes
        self.pgpass = os.path.join(path, "pgpass")

    def sh(self, *args, timeout=120):
        p = subprocess.run(["bash", PGAF_SH, args[0], self.path, *args[1:]], capture_output=True, text=True,
                           timeout=timeout)
        assert p.returncode == 0, f"pgaf.sh {args[0]}: {p.stderr}{p.stdout}"
        return p.stdout.strip()

    def sql(self, query):
        """Rows of a read-only query on the primary, as dicts."""
        env = dict(os.environ, PGPASSFILE=self.pgpass)
        p = subprocess.run(["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", self.url, "-c",
                            f"SELECT coalesce(json_agg(q), '[]') FROM ({query}) AS q"],
                           capture_output=True, text=True, timeout=60, env=env)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout.strip())


@pytest.fixture(scope="module")
def formation(tmp_path_factory):
    """A formation of this module's own, stopped by PID at the end (also on
    failure). Not under pytest's temp dir: that is 0700, and the servers run as
    another user (scripts/pgaf.sh)."""
    top = tempfile.mkdtemp(prefix="td-pgaf-")
    os.chmod(top, 0o755)
    path = os.path.join(top, "f")
    try:
        p = subprocess.run(["bash", PGAF_SH, "start", path], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, f"pgaf.sh start failed:\n{p.stderr}"
        url = p.stdout.strip().splitlines()[-1]
        workdir = str(tmp_path_factory.mktemp("failover"))
        with open(os.path.join(workdir, "pg_url"), "w") as f:  # tdlib.pg_database: the nodes' database
            f.write(url)
        yield Formation(path, url, workdir)
    finally:
        subprocess.run(["bash", PGAF_SH, "stop", path], timeout=180)
        # pg_autoctl's and PostgreSQL's logs, kept with pytest's temp dirs.
        logs = tmp_path_factory.mktemp("formation-logs")
        for name in ("monitor", "node1", "node2"):
            for src, dst in ((f"{name}.log", f"{name}.pg_autoctl.log"), (f"pg/{name}/log", f"{name}.postgres")):
                src = os.path.join(path, src)
                if os.path.isdir(src):
                    shutil.copytree(src, os.path.join(logs, dst), dirs_exist_ok=True)
                elif os.path.exists(src):
                    shutil.copy(src, os.path.join(logs, dst))
        shutil.rmtree(top, ignore_errors=True)


def start_node(tokend_factory, formation, name):
    return tokend_factory.start(settings=NODE_SETTINGS, name=name, workdir=formation.workdir,
                                env={"PGPASSFILE": formation.pgpass})


def issuer_on(iss, server):
    """The same issuer's credentials with clients of their own on server."""
    other = NetIssuer.__new__(NetIssuer)
    other.__dict__.update(iss.__dict__)
    return other.bind(server)


def d1_delivery(rx):
    return {"profile": "d1", "baseUrl": rx.url + "/issuer", "messagingUrl": rx.url + "/messages", "timeoutMs": 10000}


def check_received_once(rx, rows):
    """Every ISSUER row took effect at the receiver once, in order per digital
    card (a row sent again after a failover is a duplicate, not an effect)."""
    st = rx.state()
    owed_dcs = {r["digitalCardId"] for r in rows if r["channel"] == "ISSUER"}
    for dc in owed_dcs:
        view = st["tokens"].get(dc) or {"history": []}
        got = [(h["operation"], h["status"]) for h in view["history"] if h["result"] == "applied"]
        owed = [(r["operation"], r["status"]) for r in rows if r["channel"] == "ISSUER" and r["digitalCardId"] == dc]
        assert got == owed, (dc, got, owed)
    return len(owed_dcs)


# ---------------------------------------------------------------------------
# The load: writers in threads, every answer recorded
# ---------------------------------------------------------------------------


class Answer:
    __slots__ = ("kind", "node", "key", "t0", "t1", "status", "resp", "error")

    def __init__(self, kind, node, key, t0):
        self.kind, self.node, self.key, self.t0 = kind, node, key, t0
        self.t1 = None
        self.status = None
        self.resp = None
        self.error = None

    @property
    def ok(self):
        return self.status is not None and 200 <= self.status < 300

    def message(self):
        try:
            body = self.resp.json()
        except ValueError:
            return ""
        err = body.get("error")
        return err.get("message", "") if isinstance(err, dict) else (err or "")


class Load:
    """Writers on both nodes until stopped; each answer appended to .answers."""

    def __init__(self):
        self.answers = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.deadline = time.monotonic() + LOAD_CAP
        self.threads = []
        self.ok_after = {}  # writer -> 2xx answers since mark()
        self.sent = {}  # writer -> requests sent
        self.mark_t = 0.0

    def call(self, writer, kind, node, key, fn):
        a = Answer(kind, node, key, time.monotonic())
        try:
            a.resp = fn()
            a.status = a.resp.status_code
        except requests.RequestException as e:  # a hang or a dropped connection: always a finding
            a.error = f"{type(e).__name__}: {e}"
        a.t1 = time.monotonic()
        with self.lock:
            self.answers.append(a)
            if a.ok and a.t0 >= self.mark_t:
                self.ok_after[writer] = self.ok_after.get(writer, 0) + 1
        return a

    def running(self, writer=None):
        if writer is not None:
            with self.lock:
                self.sent[writer] = self.sent.get(writer, 0) + 1
                if self.sent[writer] > MAX_PER_WRITER:
                    return False
        return not self.stop.is_set() and time.monotonic() < self.deadline

    def spawn(self, name, target, *args):
        t = threading.Thread(target=target, args=(self, name) + args, name=name, daemon=True)
        self.threads.append(t)
        self.ok_after[name] = 0

    def start(self):
        for t in self.threads:
            t.start()

    def mark(self):
        """From now on, count each writer's 2xx answers afresh."""
        with self.lock:
            self.mark_t = time.monotonic()
            self.ok_after = {k: 0 for k in self.ok_after}

    def each_writer_ok(self, n):
        with self.lock:
            return all(v >= n for v in self.ok_after.values())

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(REQUEST_TIMEOUT + 10)
        assert not any(t.is_alive() for t in self.threads), "a writer is stuck"


def cancel_writer(load, name, node, client, tokens, pace=PACE, repeat=True):
    """Cancels the tokens one after the other; after a 503 or 504 it asks again
    for the same token (the answer says that is safe). Past the last token it
    starts again from the first (a repeat cancel answers the same signature),
    unless repeat is false."""
    i = 0
    while load.running(name) and (repeat or i < len(tokens)):
        tok = tokens[i % len(tokens)]
        a = load.call(name, "cancel", node, tok, lambda: client.put(f"/tokens/{tok}/cancel", timeout=REQUEST_TIMEOUT))
        if a.ok or a.error:
            i += 1
        time.sleep(pace)


def event_writer(load, name, node, iss, dc):
    """SUSPEND and RESUME by the wallet in turn, each a new event id; after a
    503 or 504 the same event again (as a network retries)."""
    k = 0
    ev = unique("ev")
    while load.running(name):
        typ = ("SUSPEND", "RESUME")[k % 2]
        a = load.call(name, "event", node, (dc, ev, typ),
                      lambda: iss.net.post("/network/v1/events", json={"eventId": ev, "digitalCardId": dc, "type": typ,
                                                                       "source": "WALLET"}, timeout=REQUEST_TIMEOUT))
        if a.ok or a.error:
            k += 1
            ev = unique("ev")
        time.sleep(PACE)


def operation_writer(load, name, node, iss, dc):
    """The issuer suspends and resumes its digital card in turn; after a 503 or
    504 the same verb again (reaching the target state again is a 200)."""
    k = 0
    while load.running(name):
        verb = ("suspend", "resume")[k % 2]
        a = load.call(name, "operation", node, (dc, verb),
                      lambda: iss.iss.post(iss.path(f"/digitalCards/{dc}/operations:{verb}"), timeout=REQUEST_TIMEOUT))
        if a.ok or a.error:
            k += 1
        time.sleep(PACE)


def readyz_poller(load, name, nodes, log):
    while load.running():
        for n in nodes:
            t = time.monotonic()
            try:
                status = requests.get(n.url + "/readyz", timeout=5).status_code
            except requests.RequestException as e:
                status = f"{type(e).__name__}"
            log.append((t, n.name, status))
        time.sleep(0.1)


def create_tokens(bank, tpp, server, n):
    """n access tokens from bank to tpp (the consent flow, four threads)."""
    out, lock = [], threading.Lock()

    def work(count):
        c = tpp.client(server=server)
        for _ in range(count):
            flow = consent_flow(c, tpp, bank, view_page=False)
            with lock:
                out.append(flow.token_id)

    threads = [threading.Thread(target=work, args=(n // 4 + (i < n % 4),)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(out) == n, (len(out), n)
    return out


class IdleNode:
    """A node without load during the failover. Its pooled connections
    (a reader per HTTP thread, the writers) still point at the dead primary's
    backends when the next requests come: tokend reads what waits on an idle
    connection before using it, finds it closed and reopens it, so none of
    those requests may fail."""

    def __init__(self, server, bank):
        self.client = tdlib.Client(server, headers={"Authorization": "Bearer " + bank.keys["STANDARD"]},
                                   capture=False)
        self.load = Load()

    def cancel(self, tokens):
        """Cancels the tokens one by one; their answers."""
        self.load.answers.clear()
        for tok in tokens:
            self.load.call("idle", "cancel", "e", tok,
                           lambda: self.client.put(f"/tokens/{tok}/cancel", timeout=REQUEST_TIMEOUT))
        return list(self.load.answers)


IDLE_CANCELS = 16


def check_error_shape(a):
    """A non-2xx answer: a 503 or 504 in its face's error shape."""
    assert a.error is None, f"{a.kind} on {a.node} {a.key}: no answer ({a.error})"
    assert a.status in (503, 504), (a.kind, a.node, a.key, a.status, a.resp.text[:300])
    if a.kind == "cancel":
        tdlib.assert_tokenio_error(a.resp, a.status, "UNAVAILABLE" if a.status == 503 else None)
    else:
        assert_d1_error(a.resp, a.status, "UNAVAILABLE" if a.status == 503 else None)


MAYBE = "may have been made"


def report(request, **kv):
    for k, v in kv.items():
        request.node.user_properties.append((k, v))
    print("failover:", json.dumps(kv, default=str))


# ---------------------------------------------------------------------------
# 1. Failover under load
# ---------------------------------------------------------------------------


def test_failover_under_load(formation, tokend_factory, receivers, request):
    a = start_node(tokend_factory, formation, "node-a")
    b = start_node(tokend_factory, formation, "node-b")
    # Node E takes no load: its connections sit idle through the failover.
    e = start_node(tokend_factory, formation, "node-e")
    nodes = {"a": a, "b": b}
    rx = receivers.start()

    bank, tpp = new_member(a, "bank"), new_member(a, "tpp")
    tokens = create_tokens(bank, tpp, a, 2 * TOKENS_PER_NODE + IDLE_CANCELS)
    idle_tokens = tokens[2 * TOKENS_PER_NODE:]
    iss = NetIssuer(a)
    set_delivery(a, iss.id, d1_delivery(rx))
    event_dcs = [iss.green(iss.register_card()) for _ in range(4)]
    op_dcs = [iss.green(iss.register_card()) for _ in range(4)]

    load = Load()
    ready_log = []
    for i, (key, node) in enumerate(nodes.items()):
        c = tdlib.Client(node, headers={"Authorization": "Bearer " + bank.keys["STANDARD"]}, capture=False)
        load.spawn(f"cancel-{key}", cancel_writer, key, c, tokens[i * TOKENS_PER_NODE:(i + 1) * TOKENS_PER_NODE])
        for j in range(2):
            load.spawn(f"event-{key}{j}", event_writer, key, issuer_on(iss, node), event_dcs[2 * i + j])
            load.spawn(f"op-{key}{j}", operation_writer, key, issuer_on(iss, node), op_dcs[2 * i + j])
    poller = threading.Thread(target=readyz_poller, args=(load, "readyz", list(nodes.values()), ready_log),
                              daemon=True)
    idle = IdleNode(e, bank)
    warm = idle.cancel(idle_tokens[:2])
    assert all(x.ok for x in warm), [(x.status, x.error) for x in warm]
    load.start()
    poller.start()
    try:
        tdlib.wait_until(lambda: load.each_writer_ok(2), timeout=20, interval=0.05, what="every writer's first 2xx")
        t_kill = time.monotonic()
        killed = formation.sh("kill-primary")
        failed_over = formation.sh("wait-failover", "60", timeout=90)
        t_primary = time.monotonic()
        # The nodes recover by themselves: every writer gets 2xx again.
        load.mark()
        tdlib.wait_until(lambda: load.each_writer_ok(3), timeout=30, interval=0.05,
                         what="every writer's 2xx after the failover")
    finally:
        load.finish()
        poller.join(10)

    answers = load.answers
    # -- every answer: 2xx, or a 503/504 in its face's shape; nothing else
    for x in answers:
        if not x.ok:
            check_error_shape(x)
    failed = [x for x in answers if not x.ok]
    maybe = [x for x in failed if MAYBE in x.message()]

    # -- every 2xx is in the database
    api = tpp.client(server=b)
    canceled = [x for x in answers if x.kind == "cancel" and x.ok]
    by_token = {}
    for x in canceled:
        assert x.resp.json()["result"]["status"] == "SUCCESS", x.resp.text
        sig = signatures(x.resp.json()["result"]["token"], "CANCELED")
        assert len(sig) == 1, x.resp.text
        by_token.setdefault(x.key, []).append((x.node, sig))
    for tok, sigs in by_token.items():  # every answer for a token carries the one stored signature
        stored_sig = signatures(tdlib.get_token(api, tok), "CANCELED")
        assert all(sig == stored_sig for _, sig in sigs), (tok, stored_sig, sigs)
    events = [x for x in answers if x.kind == "event" and x.ok]
    rows = formation.sql(f"SELECT digital_card_id AS dc, seq, event_id, type FROM dcard_events "
                         f"WHERE issuer_id = '{iss.id}' AND event_id <> ''")
    stored = {r["event_id"]: r for r in rows}
    for x in events:
        dc, ev, typ = x.key
        body = x.resp.json()
        assert body["eventId"] == ev and body["digitalCardId"] == dc, body
        assert ev in stored, f"event {ev} answered {x.status} on node {x.node} is not in dcard_events: {body}"
        assert (stored[ev]["dc"], stored[ev]["seq"], stored[ev]["type"]) == (dc, body["sequence"], typ), \
            (stored[ev], body)
    ops = [x for x in answers if x.kind == "operation" and x.ok]
    op_ids = {x.resp.json()["operationId"] for x in ops}
    found = {r["id"] for r in formation.sql(f"SELECT id FROM operations WHERE issuer_id = '{iss.id}'")}
    assert op_ids <= found, f"operations answered 200 but missing: {sorted(op_ids - found)}"

    # -- a 503 or 504 that says nothing was changed changed nothing: a token or
    # an event id that only ever got such answers (the writer stopped before
    # asking again) is not canceled, not recorded
    attempts = {}
    for x in answers:
        if x.kind in ("cancel", "event"):
            attempts.setdefault((x.kind, x.key if x.kind == "cancel" else x.key[1]), []).append(x)
    unchanged = 0
    for (kind, key), xs in attempts.items():
        if any(x.ok or MAYBE in x.message() for x in xs):
            continue
        unchanged += 1
        if kind == "cancel":
            assert signatures(tdlib.get_token(api, key), "CANCELED") == [], (key, [x.resp.text for x in xs])
        else:
            assert key not in stored, (key, [x.resp.text for x in xs])

    # -- every notification owed is delivered and took effect once
    outbox = wait_delivered(b, iss.id, timeout=60)
    cards_notified = check_received_once(rx, outbox)

    # -- the idle node serves again at once: its connections that sat idle
    # through the failover are found closed before use (see IdleNode)
    idle_answers = idle.cancel(idle_tokens[2:])
    idle_failed = [(x.kind, x.status, x.message()) for x in idle_answers if not x.ok]
    assert idle_failed == [], idle_failed

    # -- both nodes serve again, without a restart
    for key, node in nodes.items():
        assert node.alive and node.starts == 1, key
        assert requests.get(node.url + "/readyz", timeout=10).status_code == 200, key
        r = issuer_on(iss, node).event_raw(event_dcs[0], "RESUME", "WALLET")
        assert r.status_code == 200, (key, r.text)
        assert "store_reconnected" in node.log_text(), key  # it did lose its connections, and found the new primary

    # -- readiness while no primary could be reached
    not_ready = [(round(t - t_kill, 2), n, s) for t, n, s in ready_log if t >= t_kill and s != 200]
    outage = {}  # per node, seconds after the kill: first failed answer, last one, first 2xx after the first
    for k in nodes:
        fails = [x for x in failed if x.node == k and x.t0 >= t_kill]
        if not fails:
            outage[k] = None
            continue
        first_fail = min(x.t0 for x in fails)
        back = min((x.t1 for x in answers if x.node == k and x.ok and x.t0 > first_fail), default=None)
        outage[k] = [round(first_fail - t_kill, 2), round(max(x.t1 for x in fails) - t_kill, 2),
                     round(back - t_kill, 2) if back else None]
    # Requests sent once the new primary took writes (wait-failover checked it)
    # that still failed: the nodes' stale connections, each failing once.
    late = sorted((round(x.t0 - t_primary, 2), x.node, x.kind, x.status) for x in failed if x.t0 > t_primary)
    late_ready = [(t - round(t_primary - t_kill, 2), n, s) for t, n, s in not_ready if t > round(t_primary - t_kill, 2)]
    readyz_seen = "503 seen" if any(s == 503 for _, _, s in not_ready) else "outage too short to see"
    assert all(s == 503 for _, _, s in not_ready), not_ready  # not ready is a 503, never a hang or a 500

    report(request, killed=killed, failover=failed_over, kill_to_new_primary_s=round(t_primary - t_kill, 2),
           outage_per_node_s=outage, failed_after_new_primary=late, readyz_503_after_new_primary=late_ready,
           idle_node_failed_after_failover=idle_failed,
           readyz=readyz_seen, readyz_not_ready=len(not_ready),
           readyz_first_503_s=not_ready[0][0] if not_ready else None,
           readyz_last_503_s=not_ready[-1][0] if not_ready else None,
           answers=len(answers), ok=len(answers) - len(failed),
           status_503=sum(1 for x in failed if x.status == 503), status_504=sum(1 for x in failed if x.status == 504),
           maybe_made=len(maybe), unresolved_nothing_changed=unchanged, cancels_ok=len(canceled),
           tokens_canceled=len(by_token),
           events_ok=len(events), operations_ok=len(ops),
           outbox_rows=len(outbox), cards_notified=cards_notified)


# ---------------------------------------------------------------------------
# 2. kill -9 of one tokend node under load
# ---------------------------------------------------------------------------


def test_kill9_one_node_other_serves_and_delivers(formation, tokend_factory, receivers, request):
    # The receiver holds the first attempt of every notification 5 s: node C,
    # alone at first, has its rows leased (in flight) when it dies.
    rx = receivers.start("--fail-first", "1", "--fail-mode", "slow", "--slow-ms", "5000")
    c = start_node(tokend_factory, formation, "node-c")
    bank, tpp = new_member(c, "bank"), new_member(c, "tpp")
    tokens = create_tokens(bank, tpp, c, 40)
    iss = NetIssuer(c)
    set_delivery(c, iss.id, d1_delivery(rx))
    dcs = [iss.green(iss.register_card()) for _ in range(3)]
    for dc in dcs:
        iss.dcard_op_ok(dc, "suspend")
    tdlib.wait_until(lambda: any(l.get("result") == "injected" for l in rx.lines()), timeout=15, interval=0.02,
                     what="a delivery in flight from node C")
    # Node D joins; its load (Token API cancels, which owe no notification)
    # goes on while C dies.
    d = start_node(tokend_factory, formation, "node-d")
    load = Load()
    client = tdlib.Client(d, headers={"Authorization": "Bearer " + bank.keys["STANDARD"]}, capture=False)
    load.spawn("cancel-d", cancel_writer, "d", client, tokens, 0.1, False)
    load.start()
    try:
        tdlib.wait_until(lambda: load.each_writer_ok(2), timeout=20, interval=0.05, what="node D serving")
        c.kill()
        t_kill = time.monotonic()
        load.mark()
        tdlib.wait_until(lambda: load.each_writer_ok(10), timeout=30, interval=0.05, what="node D serving on")
        outbox = wait_delivered(d, iss.id, timeout=60)
        t_delivered = time.monotonic()
    finally:
        load.finish()
    bad = [(x.kind, x.status, x.error, x.resp.text[:200] if x.resp is not None else "") for x in load.answers
           if not x.ok]
    assert not bad, bad  # the database is fine: node D answers everything
    check_received_once(rx, outbox)
    for dc in dcs:
        assert rx.token(dc)["status"] == "suspended", rx.token(dc)
    assert requests.get(d.url + "/readyz", timeout=10).status_code == 200
    report(request, delivered_after_kill_s=round(t_delivered - t_kill, 2), answers=len(load.answers),
           outbox_rows=len(outbox))
