"""test_store_copy.py — moving from the embedded SQLite store to PostgreSQL
(issue 11 §4; docs/postgres.md, docs/tokenctl.md "store copy").

A SQLite tokend is filled through the real flows: members and their sealed
keys, token requests (processed, rejected, one with its consent link still
open), tokens of each kind with their signatures and events, cancels (one
under an Idempotency-Key), issuers with delivery settings (a sealed bearer
token), cards with sealed PANs, GREEN and YELLOW tokenizations, an OTP (a
sealed secret in the outbox), network events, operations, step-up timers,
an outbox with dead letters, a replayed one and rows of an issuer without
delivery settings (pending). It is stopped, `tokenctl store copy` copies it
into a new PostgreSQL database, and a tokend started on that database with
the SAME master key and admin key files answers the same GETs with the same
bodies, replays the stored Idempotency-Key answers, and goes on writing:
cancels (signed with the copied sealed keys), a consent link, a tokenization
of a copied card by its PAN, new outbox rows after the copied ids.

Also: a non-empty target is refused, bad sources and targets fail cleanly
before touching anything, `tokenctl store verify` names a table changed
behind its back, and the target URL's password never shows.

The suite runs once per store: this module runs in the SQLite pass only (it
needs a SQLite source), and needs the PostgreSQL cluster scripts/test.sh
starts (TD_TEST_PG_URL, PGPASSFILE)."""

import os
import re
import shutil
import sqlite3
import subprocess
import time
import types

import pytest

import tdlib
from conftest import (DELIVERY_SETTINGS, TOKENCTL_BIN, NetIssuer, ReceiverPool, ServerPool, read_outbox,
                      set_delivery, wait_delivered)
from tdlib import (authorize, consent_flow, decide, request_body, signatures, standing_order_body, store_request,
                   transfer_body)

pytestmark = [
    pytest.mark.skipif(tdlib.E2E_STORE != "sqlite",
                       reason="store copy needs a SQLite source: it runs in the SQLite pass of the suite"),
    pytest.mark.skipif(not tdlib.PG_URL, reason="needs a PostgreSQL cluster: TD_TEST_PG_URL (scripts/test.sh)"),
    pytest.mark.skipif(not os.access(TOKENCTL_BIN, os.X_OK), reason="tokenctl not built (TOKENCTL_BIN)"),
]

# Every table tokend keeps (schema_migrations is each engine's own).
TABLES = ["members", "member_keys", "credentials", "issuers", "issuer_delivery", "token_requests", "tokens",
          "token_events", "idempotency", "cards", "digital_cards", "dcard_events", "operations", "outbox", "timers",
          "store_meta", "credential_events"]

# Sealed bytes, compared byte for byte between the engines.
SEALED = {"member_keys": ("member_id, key_id", "sealed_secret"), "cards": ("issuer_id, card_id", "pan_sealed"),
          "outbox": ("id", "secret_sealed"), "issuer_delivery": ("issuer_id", "secret_sealed")}

OTP = "518273"
BEARER = "copy-rx-bearer"
ROW = re.compile(r"^(\w+)\s+(\d+)\s+([0-9a-f]{64})$")


def tokenctl(*args, env=None, drop_pgpass=False):
    e = {k: v for k, v in os.environ.items() if not k.startswith("TOKEND_")}
    if drop_pgpass:
        e.pop("PGPASSFILE", None)
    e.update(env or {})
    return subprocess.run([TOKENCTL_BIN, *args], capture_output=True, text=True, env=e, timeout=300)


def db_url(name):
    return tdlib.PG_URL.rsplit("/", 1)[0] + "/" + name


def pg_password():
    """The test role's password, from the PGPASSFILE line scripts/pg.sh wrote."""
    with open(os.environ["PGPASSFILE"]) as f:
        return f.readline().rstrip("\n").split(":", 4)[4]


def with_password(url, password):
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


def printed_rows(stdout):
    """{table: (rows, digest)} from the table copy and verify print."""
    out = {}
    for line in stdout.splitlines():
        m = ROW.match(line)
        if m:
            out[m.group(1)] = (int(m.group(2)), m.group(3))
    return out


class PgNode(tdlib.Server):
    """tokend on a PostgreSQL URL, with the key files of the SQLite node it replaces."""

    def __init__(self, workdir, name, settings, store_url, admin_key_file):
        super().__init__(workdir, name=name, settings=settings)
        self.db_path = self.store_url = store_url
        self.admin_key_file = admin_key_file

    @property
    def admin_key(self):
        with open(self.admin_key_file) as f:
            return f.read().strip()


def delivery_body(rx):
    return {"profile": "d1", "baseUrl": rx.url + "/issuer", "messagingUrl": rx.url + "/messages", "timeoutMs": 2000,
            "auth": {"type": "bearer", "token": BEARER}}


def observe(srv, w):
    """The answers to every GET the copied data shows through: {what: (status, body)}."""
    tc, bc = w.tpp.client(server=srv), w.bank.client("PRIVILEGED", server=srv)
    adm = srv.admin()
    out = {}

    def get(name, client, path, **kw):
        r = client.get(path, **kw)
        out[name] = (r.status_code, r.text)

    for tid in w.token_ids:
        get("token " + tid, tc, f"/tokens/{tid}")
        get("token (bank) " + tid, bc, f"/tokens/{tid}")
    for kind in ("ACCESS", "TRANSFER", "STANDING_ORDER"):
        get("tokens " + kind, tc, "/tokens", params={"type": kind, "page.limit": "50"})
    get("tokens all", bc, "/tokens", params={"page.limit": "50"})
    for rid in w.request_ids:
        get("request " + rid, tc, f"/token-requests/{rid}")
        get("result " + rid, tc, f"/token-requests/{rid}/result")
    for m in (w.bank, w.tpp):
        get("keys " + m.id, tc, f"/member/{m.id}/keys")
    for iss in (w.iss, w.other):
        iss.bind(srv)
        for card_id in w.cards[iss.id]:
            get(f"card {iss.id} {card_id}", iss.iss, iss.path(f"/cards/{card_id}"))
            get(f"dcards {iss.id} {card_id}", iss.iss, iss.path(f"/cards/{card_id}/digitalCards"))
        for dc in w.dcards[iss.id]:
            get(f"dcard {dc}", iss.iss, iss.path(f"/digitalCards/{dc}"))
            get(f"card token {dc}", iss.iss, f"/tokens/{dc}")
        for op in w.ops[iss.id]:
            get(f"op {op}", iss.iss, iss.path(f"/operations/{op}"))
        get(f"outbox {iss.id}", adm, f"/admin/v1/issuers/{iss.id}/outbox", params={"limit": "100"})
        get(f"dead {iss.id}", adm, f"/admin/v1/issuers/{iss.id}/outbox", params={"state": "DEAD"})
        get(f"policy {iss.id}", adm, f"/admin/v1/issuers/{iss.id}/card-policy")
    get("delivery", adm, f"/admin/v1/issuers/{w.iss.id}/delivery")
    get("consent page", tdlib.Client(srv, capture=False), "/consent/" + w.open_consent_url.split("/consent/", 1)[1])
    return out


def fill(w, src, rx):
    """Writes every kind of row through the real faces of src (SQLite)."""
    # Names are stored as typed: tabs, newlines, CR and backslashes reach the copy raw.
    w.bank = tdlib.new_member(src, "Alice\tat Bank\n\\ \u00e9\r")
    w.tpp = tdlib.new_member(src, "Budget app")
    tc = w.tpp.client()
    access = consent_flow(tc, w.tpp, w.bank, kind="access", description="caf\u00e9 \\ tab\t \u2028")
    transfer = consent_flow(tc, w.tpp, w.bank, kind="transfer", body=transfer_body("a:dst-1"), view_page=False)
    standing = consent_flow(tc, w.tpp, w.bank, kind="standing_order", body=standing_order_body(), view_page=False)
    access2 = consent_flow(tc, w.tpp, w.bank, kind="access", view_page=False)
    rejected = consent_flow(tc, w.tpp, w.bank, kind="access", decision="reject", view_page=False)
    # A request whose one-time consent link is still open.
    w.open_request = store_request(tc, request_body(w.tpp.id, w.bank.id, ref_id="ref-open"))
    w.open_consent_url = authorize(tc, w.open_request)
    # Cancels: by the TPP, and by the bank under an Idempotency-Key (the answer is stored).
    r = w.tpp.client("LOW").put(f"/tokens/{access.token_id}/cancel")
    assert r.status_code == 200 and r.json()["result"]["status"] == "SUCCESS", r.text
    w.access_cancel = r.json()["result"]
    w.idem_cancel = bank_cancel = w.bank.client("PRIVILEGED").put(f"/tokens/{transfer.token_id}/cancel",
                                                                   headers={"Idempotency-Key": "copy-cancel-1"})
    assert bank_cancel.status_code == 200, bank_cancel.text
    w.idem_request_body = request_body(w.tpp.id, w.bank.id, ref_id="ref-idem")
    w.idem_request = tc.post("/token-requests", json=w.idem_request_body, headers={"Idempotency-Key": "copy-req-1"})
    assert w.idem_request.status_code == 200, w.idem_request.text
    w.standing, w.access, w.access2 = standing.token_id, access.token_id, access2.token_id
    w.token_ids = [access.token_id, transfer.token_id, standing.token_id, access2.token_id]
    w.request_ids = [access.request_id, transfer.request_id, standing.request_id, access2.request_id,
                     rejected.request_id, w.open_request, w.idem_request.json()["tokenRequest"]["id"]]

    # Network tokenization: an issuer whose backend answers 400 once per operation (dead letters).
    w.iss = iss = NetIssuer(src, name="Copy\tIssuer\\n")
    set_delivery(src, iss.id, delivery_body(rx))
    cards = [iss.register_card(), iss.register_card(), iss.register_card()]
    w.unused_card = iss.register_card()  # tokenized by PAN on PostgreSQL only
    w.cards = {iss.id: [c.id for c in cards + [w.unused_card]]}
    green = iss.green(cards[0])
    op_suspend = iss.dcard_op_ok(green, "suspend")
    w.event_body = {"eventId": "copy-ev-1", "digitalCardId": green, "type": "RESUME", "source": "WALLET"}
    w.event_answer = iss.net.post("/network/v1/events", json=w.event_body)
    assert w.event_answer.status_code == 200, w.event_answer.text
    yellow = iss.yellow(cards[1])
    assert iss.otp(yellow["digitalCardId"], otp=OTP).status_code == 202
    green2 = iss.green(cards[2])
    op_card = iss.card_op(cards[2].id, "suspend", {"reason": "Lost card", "reasonCode": "CARD_LOST"})
    assert op_card.status_code == 200, op_card.text
    w.green = green
    w.dcards = {iss.id: [green, yellow["digitalCardId"], green2]}
    w.ops = {iss.id: [yellow["operationId"], op_suspend, op_card.json()["operationId"]]}
    dead = wait_delivered(src, iss.id, states=("DEAD", "DELIVERED"), timeout=60)
    dead = [r for r in dead if r["state"] == "DEAD"]
    assert len(dead) >= 3, dead
    # One dead letter replayed and delivered on its second attempt.
    r = src.admin().post(f"/admin/v1/issuers/{iss.id}/outbox/{dead[0]['id']}/replay")
    assert r.status_code == 200, r.text
    tdlib.wait_until(lambda: [o for o in read_outbox(src, iss.id) if o["id"] == dead[0]["id"]][0]["state"]
                     == "DELIVERED", timeout=30, what="the replayed dead letter")
    wait_delivered(src, iss.id, states=("DEAD", "DELIVERED"), timeout=60)

    # An issuer without delivery settings: its rows stay PENDING.
    w.other = other = NetIssuer(src, name="Quiet Issuer")
    oc = other.register_card()
    odc = other.green(oc)
    w.cards[other.id] = [oc.id]
    w.dcards[other.id] = [odc]
    w.ops[other.id] = [other.dcard_op_ok(odc, "suspend")]
    assert {o["state"] for o in read_outbox(src, other.id)} == {"PENDING"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    pool = ServerPool(tmp_path_factory, "store_copy")
    rxs = ReceiverPool(tmp_path_factory, "store_copy")
    w = types.SimpleNamespace(pool=pool, dbs=[], tmp=tmp_path_factory)

    def new_database():
        name = f"td_copy_{os.getpid()}_{len(w.dbs) + 1}"
        tdlib.psql(tdlib.PG_URL, f"CREATE DATABASE {name}")
        w.dbs.append(name)
        return db_url(name)

    w.new_database = new_database
    try:
        rx = rxs.start("--bearer", BEARER, "--fail-first", "1", "--fail-mode", "400")
        src = w.src = pool.start(settings=DELIVERY_SETTINGS, name="sqlite-node")
        fill(w, src, rx)
        w.before = observe(src, w)
        assert src.stop() == 0
        w.sqlite_path = src.db_path
        w.counts = {t: tdlib.sql(src.db_path, f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in TABLES}

        w.pg = new_database()
        w.copy = tokenctl("store", "copy", f"sqlite:{w.sqlite_path}", w.pg)
        assert w.copy.returncode == 0, (w.copy.stdout, w.copy.stderr)
        w.node = PgNode(str(tmp_path_factory.mktemp("pg-node")), "pg-node", dict(DELIVERY_SETTINGS, **{
            "master-key-file": os.path.join(src.dir, "master.key"),
            "admin-key-file": os.path.join(src.dir, "admin.key")}), w.pg, os.path.join(src.dir, "admin.key"))
        pool.servers.append(w.node)
        w.node.start()
        yield w
    finally:
        problems = pool.stop_all() + rxs.stop_all()
        # The cluster is a throwaway one; still, leave it as found. A drop may
        # race an autovacuum worker on a freshly loaded database: tried again.
        for name in w.dbs:
            for _ in range(5):
                d = subprocess.run(["psql", "-X", "-q", tdlib.PG_URL, "-c",
                                    f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True, timeout=60)
                if d.returncode == 0:
                    break
                time.sleep(0.5)
        if problems:
            pytest.fail("shutdown: " + "\n".join(problems), pytrace=False)


def pg_rows(url, query):
    return tdlib.sql(url, query)


# ---------------------------------------------------------------------------


def test_copy_prints_every_table_verified(world):
    w = world
    printed = printed_rows(w.copy.stdout)
    assert list(printed) == TABLES, w.copy.stdout
    for t in TABLES:
        assert printed[t][0] == w.counts[t], (t, printed[t], w.counts[t])
        assert w.counts[t] > 0, f"the fill left {t} empty: the copy of that table is not exercised"
        assert pg_rows(w.pg, f"SELECT count(*) AS n FROM {t}")[0]["n"] >= w.counts[t], t
    assert "row counts and digests equal, committed" in w.copy.stdout, w.copy.stdout
    assert w.copy.stderr == "", w.copy.stderr
    # The outbox as it was: dead letters, the replayed one delivered, pending rows.
    states = {r["state"] for r in pg_rows(w.pg, "SELECT DISTINCT state FROM outbox")}
    assert {"DEAD", "DELIVERED", "PENDING"} <= states, states
    assert pg_rows(w.pg, "SELECT count(*) AS n FROM timers WHERE state = 'PENDING'")[0]["n"] > 0


def test_sealed_bytes_and_order_are_kept(world):
    w = world
    for table, (key, col) in SEALED.items():
        k = " || '|' || ".join(key.split(", "))
        src = {r["k"]: r["h"] for r in tdlib.sql(
            w.sqlite_path, f"SELECT CAST({k} AS TEXT) AS k, lower(hex({col})) AS h FROM {table}")}
        dst = {r["k"]: r["h"] for r in pg_rows(
            w.pg, f"SELECT ({k})::text AS k, coalesce(encode({col}, 'hex'), '') AS h FROM {table}")}
        assert {x: dst.get(x) for x in src} == src, table  # rows written on PostgreSQL since are extra
        assert any(src.values()), f"no sealed bytes in {table}"
    # No PAN in clear anywhere in the copied cards.
    cards_text = tdlib.psql(w.pg, "SELECT c::text FROM cards c")
    assert w.unused_card.pan not in cards_text
    # digital_cards.seq_no follows SQLite's rowid (insertion order).
    src_order = [r["id"] for r in tdlib.sql(w.sqlite_path, "SELECT id FROM digital_cards ORDER BY rowid")]
    dst_order = [r["id"] for r in pg_rows(w.pg, "SELECT id FROM digital_cards ORDER BY seq_no")]
    assert dst_order[:len(src_order)] == src_order
    # schema_migrations is PostgreSQL's own, not SQLite's.
    mig = os.listdir(os.path.join(tdlib.REPO, "src", "store", "pg", "migrations"))
    assert pg_rows(w.pg, "SELECT count(*) AS n FROM schema_migrations")[0]["n"] == len(
        [m for m in mig if m.endswith(".sql")])


def test_postgres_node_answers_the_same_bodies(world):
    w = world
    after = observe(w.node, w)
    assert set(after) == set(w.before) and len(after) >= 55, sorted(after)
    differ = {k: (w.before[k], after[k]) for k in w.before if w.before[k] != after[k]}
    assert not differ, differ
    assert all(status == 200 for status, _ in after.values()), {k: v for k, v in after.items() if v[0] != 200}


def test_postgres_node_replays_stored_answers(world):
    w = world
    # An Idempotency-Key answer stored on SQLite replays byte for byte.
    bc = w.bank.client("PRIVILEGED", server=w.node)
    again = bc.put(f"/tokens/{w.token_ids[1]}/cancel", headers={"Idempotency-Key": "copy-cancel-1"})
    assert (again.status_code, again.content) == (w.idem_cancel.status_code, w.idem_cancel.content)
    tc = w.tpp.client(server=w.node)
    again = tc.post("/token-requests", json=w.idem_request_body, headers={"Idempotency-Key": "copy-req-1"})
    assert (again.status_code, again.content) == (w.idem_request.status_code, w.idem_request.content)
    # the same key with another body: refused, as it was
    other = request_body(w.tpp.id, w.bank.id, ref_id="ref-other")
    tdlib.assert_tokenio_error(tc.post("/token-requests", json=other, headers={"Idempotency-Key": "copy-req-1"}), 409)
    # A network event already applied: the first answer, byte for byte.
    w.iss.bind(w.node)
    ev = w.iss.net.post("/network/v1/events", json=w.event_body)
    assert (ev.status_code, ev.content) == (w.event_answer.status_code, w.event_answer.content)
    # A repeat cancel answers the first CANCELED signature.
    r = w.bank.client("PRIVILEGED", server=w.node).put(f"/tokens/{w.access}/cancel")
    assert r.status_code == 200 and r.json()["result"] == w.access_cancel, r.text


def test_postgres_node_writes_with_the_copied_keys(world):
    w = world
    node = w.node
    tc = w.tpp.client(server=node)
    keys = {k["keyId"]: k for k in tdlib.member_keys(tc, w.bank.id) + tdlib.member_keys(tc, w.tpp.id)}
    # A cancel signs with the canceller's sealed key, opened with the same master key.
    r = w.tpp.client("STANDARD", server=node).put(f"/tokens/{w.standing}/cancel")
    assert r.status_code == 200 and r.json()["result"]["status"] == "SUCCESS", r.text
    token = r.json()["result"]["token"]
    [sig] = signatures(token, "CANCELED")
    assert sig["memberId"] == w.tpp.id and sig["keyId"] in keys
    sigcheck = os.path.join(tdlib.E2E_DIR, "sigcheck.js")
    out = tdlib.node(sigcheck, {"keys": [], "checks": [{"payload": token["payload"], "suffix": "cancelled",
                                                       "signature": sig["signature"],
                                                       "publicKey": keys[sig["keyId"]]["publicKey"]}]})
    assert out["results"][0]["valid"] is True, out
    # The consent link opened on SQLite works once on PostgreSQL; the bank endorses.
    d = decide(w.open_consent_url.replace(w.src.url, node.url), "approve", accounts=("a:1",))
    assert d.status_code == 303 and "tokenId=" in d.headers["Location"], (d.status_code, d.text)
    res = tc.get(f"/token-requests/{w.open_request}/result").json()
    assert res["status"] == "PROCESSED" and res["signature"]["memberId"] == w.bank.id, res
    assert decide(w.open_consent_url.replace(w.src.url, node.url), "approve").status_code == 410
    # A copied card is found by its PAN (the keyed fingerprint) and tokenized.
    iss = w.iss.bind(node)
    before = max(o["id"] for o in read_outbox(node, iss.id))
    dc = iss.green(w.unused_card)
    assert dc not in w.dcards[iss.id]
    assert iss.state(dc) == "ACTIVE"
    # New outbox rows take ids after the copied ones.
    new = [o for o in read_outbox(node, iss.id) if o["digitalCardId"] == dc]
    assert new and all(o["id"] > before for o in new), (before, new)
    # Existing digital cards go on: an issuer operation on a copied one.
    iss.dcard_op_ok(w.green, "suspend")


def test_copy_refuses_a_non_empty_target(world):
    w = world
    before = {t: pg_rows(w.pg, f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in TABLES}
    p = tokenctl("store", "copy", f"sqlite:{w.sqlite_path}", w.pg)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "refusing to copy" in p.stderr and "members" in p.stderr and "tokens" in p.stderr, p.stderr
    assert p.stdout == ""
    assert {t: pg_rows(w.pg, f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in TABLES} == before


def test_bad_source_or_target_fails_cleanly(world, tmp_path):
    w = world
    fresh = w.new_database()

    def untouched():
        return pg_rows(fresh, "SELECT count(*) AS n FROM information_schema.tables "
                              "WHERE table_schema = current_schema()")[0]["n"] == 0

    missing = str(tmp_path / "nowhere" / "tokend.db")
    p = tokenctl("store", "copy", f"sqlite:{missing}", fresh)
    assert p.returncode == 2 and f"cannot read the source {missing}" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.splitlines()) == 1 and p.stdout == ""
    junk = tmp_path / "junk.db"
    junk.write_text("not a database\n" * 100)
    p = tokenctl("store", "copy", f"sqlite:{junk}", fresh)
    assert p.returncode == 2 and "is not a tokend SQLite store" in p.stderr, p.stderr
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    p = tokenctl("store", "copy", f"sqlite:{other}", fresh)
    assert p.returncode == 2 and "is not a tokend SQLite store" in p.stderr, p.stderr
    assert untouched()
    # Arguments: the wrong engine on either side, one missing.
    p = tokenctl("store", "copy", w.sqlite_path, fresh)
    assert p.returncode == 2 and "sqlite:PATH" in p.stderr, p.stderr
    p = tokenctl("store", "copy", f"sqlite:{w.sqlite_path}", "sqlite:/tmp/x.db")
    assert p.returncode == 2 and "postgres://" in p.stderr, p.stderr
    assert tokenctl("store", "copy", f"sqlite:{w.sqlite_path}").returncode == 2
    assert tokenctl("store", "copy", "--help").returncode == 0
    # Nobody listening: a transport failure.
    closed = re.sub(r"@[^/]+/", f"@127.0.0.1:{tdlib.free_port()}/", fresh)
    p = tokenctl("store", "copy", f"sqlite:{w.sqlite_path}", closed)
    assert p.returncode == 3 and "cannot connect to" in p.stderr, p.stderr
    assert untouched()


def test_copy_warns_while_the_source_is_written(world, tmp_path):
    """A source whose write-ahead log holds frames (a tokend still running on
    it): a warning, and one consistent snapshot all the same."""
    w = world
    busy = tmp_path / "busy.db"
    shutil.copy(w.sqlite_path, busy)
    con = sqlite3.connect(busy)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        con.execute("PRAGMA wal_autocheckpoint = 0")
        con.execute("UPDATE members SET display_name = display_name || ' (busy)'")
        con.commit()
        assert os.path.getsize(f"{busy}-wal") > 0
        p = tokenctl("store", "copy", f"sqlite:{busy}", w.new_database())
    finally:
        con.close()
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert "-wal is not empty: is a tokend still running on the source?" in p.stderr, p.stderr
    copied, before = printed_rows(p.stdout), printed_rows(w.copy.stdout)
    assert {t: n for t, (n, _) in copied.items()} == {t: n for t, (n, _) in before.items()}
    assert [t for t in TABLES if copied[t] != before[t]] == ["members"]  # the change made


def test_verify_names_a_changed_table(world):
    w = world
    target = w.new_database()
    p = tokenctl("-q", "store", "copy", f"sqlite:{w.sqlite_path}", target)
    assert p.returncode == 0 and p.stdout == "", (p.stdout, p.stderr)
    p = tokenctl("store", "verify", f"sqlite:{w.sqlite_path}", target)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert printed_rows(p.stdout) == printed_rows(w.copy.stdout), "verify and copy disagree on the digests"
    assert "row counts and digests equal" in p.stdout

    def changed(sql, undo, table, why):
        tdlib.psql(target, sql)
        q = tokenctl("store", "verify", f"sqlite:{w.sqlite_path}", target)
        tdlib.psql(target, undo)
        assert q.returncode == 1, (q.stdout, q.stderr)
        assert f"differs from the source in {table} ({why}" in q.stderr, q.stderr
        assert q.stderr.count("(") == 1, q.stderr  # that table only
        assert re.search(rf"^{table}\s+\d+\s+[0-9a-f]{{64}}\s+source$", q.stdout, re.M), q.stdout
        # undone: equal again
        assert tokenctl("store", "verify", f"sqlite:{w.sqlite_path}", target).returncode == 0

    tid = w.token_ids[0]
    changed(f"UPDATE tokens SET json = json || ' ' WHERE id = '{tid}'",
            f"UPDATE tokens SET json = rtrim(json, ' ') WHERE id = '{tid}'", "tokens", "content digest")
    card = w.cards[w.iss.id][0]
    changed(f"UPDATE cards SET pan_sealed = set_byte(pan_sealed, 0, get_byte(pan_sealed, 0) # 1) "
            f"WHERE card_id = '{card}'",
            f"UPDATE cards SET pan_sealed = set_byte(pan_sealed, 0, get_byte(pan_sealed, 0) # 1) "
            f"WHERE card_id = '{card}'", "cards", "content digest")
    # NULL and "" are different values.
    changed("UPDATE token_events SET customer_ip = '' WHERE customer_ip IS NULL AND seq = 1",
            "UPDATE token_events SET customer_ip = NULL WHERE customer_ip = '' AND seq = 1", "token_events",
            "content digest")
    changed("CREATE TABLE saved AS SELECT * FROM timers WHERE id = (SELECT min(id) FROM timers); "
            "DELETE FROM timers WHERE id = (SELECT id FROM saved)",
            "INSERT INTO timers OVERRIDING SYSTEM VALUE SELECT * FROM saved; DROP TABLE saved", "timers", "rows")
    changed("SELECT setval(pg_get_serial_sequence('outbox', 'id'), 1)",
            "SELECT setval(pg_get_serial_sequence('outbox', 'id'), (SELECT max(id) FROM outbox))", "outbox",
            "id sequence behind")


def test_password_never_shown(world, tmp_path):
    w = world
    password = pg_password()
    # The refusal message names the target without the password in the URL.
    p = tokenctl("store", "copy", f"sqlite:{w.sqlite_path}", with_password(w.pg, password), drop_pgpass=True)
    assert p.returncode == 1 and "refusing to copy" in p.stderr, p.stderr
    assert password not in p.stderr + p.stdout
    assert w.pg.split("@", 1)[1] in p.stderr  # host, port and database are shown
    # A wrong password: a connection failure that does not repeat it.
    wrong = "Wr0ng-pa%73sword-" + os.urandom(4).hex()
    for url in (with_password(w.pg, wrong), w.pg + "?password=" + wrong):
        p = tokenctl("store", "verify", f"sqlite:{w.sqlite_path}", url, drop_pgpass=True)
        assert p.returncode == 3 and "password authentication failed" in p.stderr, p.stderr
        assert wrong not in p.stderr and "Wr0ng-pass" not in p.stderr, p.stderr
    # A client key's passphrase (sslpassword=) is a secret too.
    passphrase = "key-passphrase-" + os.urandom(4).hex()
    p = tokenctl("store", "verify", f"sqlite:{w.sqlite_path}", w.pg + "?sslpassword=" + passphrase,
                 drop_pgpass=True)
    assert p.returncode == 3, p.stderr
    assert passphrase not in p.stderr + p.stdout, p.stderr
    # The passfile= parameter instead of PGPASSFILE.
    target = w.new_database()
    p = tokenctl("store", "copy", f"sqlite:{w.sqlite_path}", f"{target}?passfile={os.environ['PGPASSFILE']}",
                 drop_pgpass=True)
    assert p.returncode == 0, p.stderr
    assert printed_rows(p.stdout) == printed_rows(w.copy.stdout)
